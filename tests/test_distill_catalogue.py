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
    # nor the same crystal under another id: dcdft Cu is fcc Cu, a held-out parent
    twins = catalogue.dcdft_twins([s for s in base if s["test"]])
    assert twins["elemental:dcdft:Cu"] == "elemental:fcc:Cu" and not set(twins) & layered_ids
    assert {"binary:rocksalt:Ti-O", "binary:rutile:Co-F", "ternary:perovskite:Sr-Hf-O"} <= {s["id"] for s in broad}
    assert "molecule:CH3CH2OH:CH3CH2OH" in {s["id"] for s in molecules}
    random_part = parts["random"]
    assert {s["group"] for s in random_part} == {"pyxtal"}
    assert {len(s["species"]) for s in random_part} == {1, 2}


def _frame(symbols: str, energy_per_atom: float, parent: str, group: str, kind: str = "relaxed"):
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = bulk(symbols, "rocksalt", a=4.2) if len(symbols) > 2 else bulk(symbols, "fcc", a=3.6)
    atoms.calc = SinglePointCalculator(atoms, energy=energy_per_atom * len(atoms))
    atoms.info.update(parent_id=parent, group=group, kind=kind)
    return atoms


def test_teacher_holes_flag_unphysical_minima_only():
    import merge

    frames = [
        _frame("Be", -3.7, "elemental:hcp:Be", "elemental"),
        _frame("Be", -3.6, "pyxtal:random:Be:1", "pyxtal"),  # a sane random cell, 0.1 eV/atom above hcp
        _frame("Be", -5.1, "pyxtal:random:Be:2", "pyxtal"),  # collapsed: 1.4 eV/atom below hcp
        _frame("O", -4.9, "elemental:dcdft:O", "elemental"),
        _frame("BeO", -7.5, "binary:rocksalt:Be-O", "binary"),  # formation energy -3.2 eV/atom
        _frame("BeO", -14.0, "binary:zincblende:Be-O", "binary"),  # -9.7 eV/atom: a hole
        _frame("BeO", -7.0, "binary:wurtzite:Be-O", "binary"),
        _frame("BeO", -9.5, "binary:wurtzite:Be-O", "binary", kind="md"),  # an MD frame 2.5 below its minimum
        _frame("Cu", -4.1, "elemental:fcc:Cu", "elemental"),
        _frame("BeCu", -5.4, "binary:rocksalt:Be-Cu", "binary"),  # metals alone at -1.5 eV/atom: kept
        _frame("BeCu", -6.4, "binary:cesiumchloride:Be-Cu", "binary"),  # metals alone at -2.5 eV/atom: a hole
    ]
    holes = merge.teacher_holes(frames)
    assert set(holes) == {"pyxtal:random:Be:2", "binary:zincblende:Be-O", "binary:wurtzite:Be-O",
                          "binary:cesiumchloride:Be-Cu"}
    assert "metals alone" in holes["binary:cesiumchloride:Be-Cu"]
    assert "below the best Be solid" in holes["pyxtal:random:Be:2"]


def test_extending_a_split_keeps_every_old_side():
    import extend_id_split

    old = {"train": ["a", "b", "gone"], "val": ["c"], "test": ["d"]}
    ids = ["a", "b", "c", "d"] + [f"new{k}" for k in range(10)]
    split, dropped = extend_id_split.extend(old, ids, (0.7, 0.1, 0.2), seed=0)
    assert dropped == {"train": 1, "val": 0, "test": 0}
    assert split["train"][:2] == ["a", "b"] and split["val"][0] == "c" and split["test"][0] == "d"
    assert [len(split[p]) for p in ("train", "val", "test")] == [2 + 7, 1 + 1, 1 + 2]
    assert sorted(i for p in split.values() for i in p) == sorted(ids)  # each id once
    again, _ = extend_id_split.extend(old, ids, (0.7, 0.1, 0.2), seed=0)
    assert again == split  # seeded
    # fractions that round past the number of new ids: training takes what is left, never a negative share
    tiny, _ = extend_id_split.extend({"train": ["a"]}, ["a", "x", "y", "z"], (0.0, 0.5, 0.5), seed=1)
    assert sorted(tiny["val"] + tiny["test"] + tiny["train"]) == ["a", "x", "y", "z"]
