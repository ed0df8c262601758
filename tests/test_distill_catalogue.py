"""The distillation catalogue keeps the committed held-out parents out of every training part."""

from __future__ import annotations

import sys

from ase.io import read

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "distill"))
import catalogue  # noqa: E402


def test_held_out_parents_are_never_in_a_training_part():
    base = catalogue.plan(0)
    parts = {name: catalogue.plan(0, name) for name in catalogue.TRAINING_PARTS}
    extra, layered, broad, molecules = (parts[k] for k in ("extra", "layered", "broad", "molecules"))
    held_out = {s["id"] for s in base if s["test"]}
    committed = {a.info["parent_id"] for a in read(ROOT / "scripts" / "distill" / "data" / "test.extxyz", ":")}
    assert committed <= held_out  # the committed test set was drawn from this plan's held-out parents
    seen = {s["id"] for s in base}
    for part in parts.values():
        assert part and not any(s["test"] for s in part)
        ids = {s["id"] for s in part}
        assert not ids & seen  # neither the base plan nor an earlier training part
        seen |= ids
    assert {s["group"] for s in extra} >= {"elemental", "binary", "surface", "pyxtal"}
    layered_ids = {s["id"] for s in layered}
    assert {"elemental:dcdft:C", "elemental:dcdft:N", "binary:2H-MX2:Mo-S", "binary:hBN:B-N"} <= layered_ids
    assert {"binary:rocksalt:Ti-O", "binary:rutile:Co-F", "ternary:perovskite:Sr-Hf-O"} <= {s["id"] for s in broad}
    assert "molecule:CH3CH2OH:CH3CH2OH" in {s["id"] for s in molecules}
