"""Formation-energy labels at every bulk geometry of the distillation data (for the property model from v6 on).

The label is ``make_formation_energy.py``'s, unchanged: ``formation_energy_peratom`` (eV/atom) = (E - sum_el n_el
mu_el) / N with the teacher's energy E and the committed elemental references mu
(``data/elemental_references.json``). For a relaxed structure it is the teacher's formation energy; for any other
geometry it is the same difference of teacher energies at that geometry, so a model trained on it learns how the
formation energy follows the geometry, from ~12x more labels than the relaxed structures alone give.

What is written (``--out``, with its split ``--split-out`` in the trainer's split-file format):

- train: every bulk frame (relaxed, relaxation path, volume scan, rattled, strained, MD; groups as in
  ``make_formation_energy.BULK``) of the parents that ``data/split_formation_energy.json`` puts in its training
  part, each frame its own record (``<parent id>#<n>``);
- val: the relaxed structures of its validation parents (``--relaxed``), so that the checkpoint is chosen on the
  kind of structure the test holds;
- test: the committed test structures (``data/formation_energy_test.extxyz``), the shipped models' common test set.

Frames of validation and test parents never reach training. Labels outside ``make_formation_energy``'s range are
dropped (counted in the log).

    /work/venv/bin/python scripts/distill/make_formation_energy_frames.py --frames /work/distill/train_all.extxyz \\
        --relaxed /work/distill/relaxed.extxyz --out /work/distill/formation_energy_frames.extxyz \\
        --split-out /work/distill/split_formation_energy_frames.json
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from ase.io import iread, read, write
from make_formation_energy import labelled_structure

log = logging.getLogger("formation_energy_frames")
DATA = Path(__file__).parent / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=Path, default=Path("/work/distill/train_all.extxyz"))
    p.add_argument("--relaxed", type=Path, default=Path("/work/distill/relaxed.extxyz"))
    p.add_argument("--split", type=Path, default=DATA / "split_formation_energy.json")
    p.add_argument("--test", type=Path, default=DATA / "formation_energy_test.extxyz")
    p.add_argument("--references", type=Path, default=DATA / "elemental_references.json")
    p.add_argument("--out", type=Path, default=Path("/work/distill/formation_energy_frames.extxyz"))
    p.add_argument("--split-out", type=Path, default=Path("/work/distill/split_formation_energy_frames.json"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    mu = json.loads(args.references.read_text())["mu"]
    parents = json.loads(args.split.read_text())
    train_parents, val_parents = set(parents["train"]), set(parents["val"])
    test = read(args.test, index=":")
    split: dict[str, list[str]] = {"train": [], "val": [], "test": [str(a.info["id"]) for a in test]}
    out, skipped, per_parent = [], Counter(), Counter()

    def add(atoms, record_id: str, part: str) -> None:
        labelled, reason = labelled_structure(atoms, mu, record_id)
        if reason:
            skipped[reason] += 1
        elif labelled is not None:
            out.append(labelled)
            split[part].append(record_id)

    for atoms in iread(args.frames, index=":"):
        parent = str(atoms.info.get("parent_id"))
        if parent in train_parents:
            add(atoms, f"{parent}#{per_parent[parent]}", "train")
            per_parent[parent] += 1
    for atoms in iread(args.relaxed, index=":"):
        if str(atoms.info.get("parent_id")) in val_parents:
            add(atoms, str(atoms.info["parent_id"]), "val")
    out.extend(test)
    if skipped:
        log.warning("skipped bulk frames (reason or elements lacking a reference: count): %s", dict(skipped))
    log.info("%d training frames of %d of the split's %d training parents (the rest are not in %s), %d of %d "
             "validation parents, %d test structures", len(split["train"]), len(per_parent), len(train_parents),
             args.frames, len(split["val"]), len(val_parents), len(split["test"]))
    write(args.out, out)
    args.split_out.write_text(json.dumps(split, indent=1) + "\n")
    log.info("-> %s, %s", args.out, args.split_out)


if __name__ == "__main__":
    main()
