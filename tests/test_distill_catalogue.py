"""The distillation catalogue keeps the committed held-out parents out of every training part."""

from __future__ import annotations

import sys

from ase.io import read

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "distill"))
import catalogue  # noqa: E402


def test_held_out_parents_are_never_in_a_training_part():
    base, extra = catalogue.plan(0), catalogue.plan(0, "extra")
    held_out = {s["id"] for s in base if s["test"]}
    committed = {a.info["parent_id"] for a in read(ROOT / "scripts" / "distill" / "data" / "test.extxyz", ":")}
    assert committed <= held_out  # the committed test set was drawn from this plan's held-out parents
    assert extra and not any(s["test"] for s in extra)
    assert not {s["id"] for s in extra} & {s["id"] for s in base}
    assert {s["group"] for s in extra} >= {"elemental", "binary", "surface", "pyxtal"}
