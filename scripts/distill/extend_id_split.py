"""Extend an id-keyed split (a property model's ``data.split_file``) to a dataset with more ids.

Every id the old split holds keeps its side (train, validation or test), so a new model is tested on the
old model's test structures; ids of the dataset that the old split lacks are shuffled by ``--seed`` and dealt
to train, validation and test by ``--fractions``; ids of the old split that the dataset no longer holds are
dropped and counted. The ids are the dataset's ``info["id"]``, as the training loop reads them.

    /work/venv/bin/python scripts/distill/extend_id_split.py --data /work/distill/formation_energy.extxyz \
        --old-split scripts/distill/data/split_formation_energy.json --out /tmp/split.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from ase.io import iread

logger = logging.getLogger("extend_id_split")
PARTS = ("train", "val", "test")


def extend(old: dict[str, list[str]], ids: list[str], fractions: tuple[float, float, float], seed: int
           ) -> tuple[dict[str, list[str]], dict[str, int]]:
    """The extended split, and per part how many old ids were dropped (absent from ``ids``)."""
    if len(set(ids)) != len(ids):
        raise SystemExit("the dataset holds an id twice; a split by id needs unique ids")
    present = set(ids)
    split = {p: [i for i in old.get(p, []) if i in present] for p in PARTS}
    dropped = {p: len(old.get(p, [])) - len(split[p]) for p in PARTS}
    placed = {i for p in PARTS for i in split[p]}
    new = [i for i in ids if i not in placed]
    order = np.random.default_rng(seed).permutation(len(new))
    n_test = int(round(fractions[2] * len(new)))
    n_val = min(int(round(fractions[1] * len(new))), len(new) - n_test)  # train takes the rest
    shuffled = [new[k] for k in order]
    split["test"] += shuffled[:n_test]
    split["val"] += shuffled[n_test : n_test + n_val]
    split["train"] += shuffled[n_test + n_val :]
    return split, dropped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="labelled extxyz whose info['id'] the split lists")
    p.add_argument("--old-split", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="how the new ids are dealt (default 0.8 0.1 0.1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if any(f < 0 for f in args.fractions) or abs(sum(args.fractions) - 1) > 1e-9:
        raise SystemExit(f"--fractions must be >= 0 and sum to 1, got {args.fractions}")

    ids = [str(a.info["id"]) for a in iread(args.data, ":")]
    old = json.loads(args.old_split.read_text())
    split, dropped = extend(old, ids, tuple(args.fractions), args.seed)
    args.out.write_text(json.dumps(split, indent=1) + "\n")
    for part in PARTS:
        kept = len(old.get(part, [])) - dropped[part]
        logger.info("%s: %d old ids kept, %d dropped (not in the data), %d new -> %d", part, kept, dropped[part],
                    len(split[part]) - kept, len(split[part]))
    logger.info("written %s", args.out)


if __name__ == "__main__":
    main()
