"""Extend a finished run's train/validation split to a training file that appends frames to its data.

A fine-tuning stage on a larger file must not validate on frames the earlier stage trained on.
``merge.py`` writes the base part first and the training-only parts after it in the order given,
so a file with one more ``--extra-out`` holds the earlier file's frames first, in the same order
(checked here frame by frame: same species, positions and energy). Those keep their side of the
earlier split; the appended frames are split by ``--seed`` with the same validation fraction.

    /work/upvenv/bin/python scripts/distill/extend_split.py --old-data /work/distill/train_all_broad.extxyz \
        --old-split /work/distill/run_default_v5/split.json \
        --new-data /work/distill/train_all_random.extxyz --out /work/distill/split_stage6.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from ase.io import iread

logger = logging.getLogger("extend_split")


def same_frame(a, b) -> bool:
    return (
        a.get_chemical_symbols() == b.get_chemical_symbols()
        and np.array_equal(a.positions, b.positions)
        and a.get_potential_energy() == b.get_potential_energy()
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old-data", type=Path, required=True, help="the earlier stage's training file")
    p.add_argument("--old-split", type=Path, required=True, help="the earlier run's split.json")
    p.add_argument("--new-data", type=Path, required=True, help="the larger training file")
    p.add_argument("--out", type=Path, required=True, help="split file to write (data.split_file)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    old_split = json.loads(args.old_split.read_text())
    n_old = 0
    new_frames = iread(args.new_data, ":")
    for old, new in zip(iread(args.old_data, ":"), new_frames):
        if not same_frame(old, new):
            raise SystemExit(f"frame {n_old} differs between {args.old_data} and {args.new_data}: "
                             "the new file does not start with the old one")
        n_old += 1
    n_new = n_old + sum(1 for _ in new_frames)
    old_ids = {i for part in old_split.values() for i in part}
    if old_ids != {str(i) for i in range(n_old)}:
        raise SystemExit(f"{args.old_split} does not cover exactly the {n_old} frames of {args.old_data}")

    fraction = len(old_split.get("val", [])) / n_old
    appended = np.random.default_rng(args.seed).permutation(np.arange(n_old, n_new))
    n_val = int(round(fraction * len(appended)))
    split = {
        "train": list(old_split["train"]) + [str(i) for i in appended[n_val:]],
        "val": list(old_split.get("val", [])) + [str(i) for i in appended[:n_val]],
        "test": list(old_split.get("test", [])),
    }
    args.out.write_text(json.dumps(split, indent=1) + "\n")
    logger.info("%d old frames keep their side; %d appended frames: %d train, %d val -> %s",
                n_old, len(appended), len(appended) - n_val, n_val, args.out)


if __name__ == "__main__":
    main()
