"""Test formation-energy models side by side on a split's test structures, broken down by where they came from.

For each model: MAE (eV/atom) on the test ids that an older split already had (``--old-split``: the structures
every earlier version was tested on), on the test ids new in the split, and on the test structures with a label
below ``--stable-below`` (the most stable compounds), with the mean absolute deviation of each subset's labels
for scale and the rank correlation (Spearman) of predictions and labels. Writes a markdown table and JSON, and
with ``--write-test`` the labelled test structures (small enough to commit, so that the shipped model's test
metrics can be re-checked without the data pipeline).

    git show 98707a2:scripts/distill/data/split_formation_energy.json > /tmp/split_v4.json   # v4's split
    git archive 98707a2 potentials/formation-energy-distill-v4 | tar -x -C /tmp                # and v4 itself
    /work/venv/bin/python scripts/distill/test_property.py --data /work/distill/formation_energy.extxyz \
        --split scripts/distill/data/split_formation_energy.json --old-split /tmp/split_v4.json \
        --model /tmp/potentials/formation-energy-distill-v4 --model potentials/formation-energy-distill-v5 \
        --out scripts/distill/results/formation_energy_test \
        --write-test scripts/distill/data/formation_energy_test.extxyz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import iread, write
from scipy.stats import spearmanr

from alignn_ase import predict  # with the default potential beside the property model (its results unused)

TARGET = "formation_energy_peratom"


def _row(name: str, ids: list[str], label: dict[str, float], pred: dict[str, float]) -> dict:
    if len(ids) < 2:
        return {"subset": name, "n": len(ids), "mae": None, "mad": None, "spearman": None}
    y = np.array([label[i] for i in ids])
    p = np.array([pred[i] for i in ids])
    return {"subset": name, "n": len(ids), "mae": float(np.mean(np.abs(p - y))),
            "mad": float(np.mean(np.abs(y - y.mean()))), "spearman": float(spearmanr(y, p).statistic)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--old-split", type=Path, required=True)
    p.add_argument("--model", action="append", required=True, help="a model folder (repeatable)")
    p.add_argument("--stable-below", type=float, default=-3.0, help="eV/atom")
    p.add_argument("--out", type=Path, required=True, help="output prefix (.md and .json are added)")
    p.add_argument("--write-test", type=Path, help="write the labelled test structures to this extxyz file")
    args = p.parse_args()

    test = json.loads(args.split.read_text())["test"]
    old_test = set(json.loads(args.old_split.read_text())["test"])
    wanted = set(test)
    atoms = {str(a.info["id"]): a for a in iread(args.data, ":") if str(a.info["id"]) in wanted}
    missing = wanted - set(atoms)
    if missing:
        raise SystemExit(f"{len(missing)} test ids are not in {args.data}, e.g. {sorted(missing)[0]!r}")
    label = {i: float(a.info[TARGET]) for i, a in atoms.items()}
    if args.write_test:
        write(args.write_test, [atoms[i] for i in test])
    subsets = {
        f"all test ({args.split.name})": test,
        f"test ids of {args.old_split.name}": [i for i in test if i in old_test],
        "test ids new in this split": [i for i in test if i not in old_test],
        f"label < {args.stable_below} eV/atom": [i for i in test if label[i] < args.stable_below],
    }
    rows = []
    for model in args.model:
        res = predict([atoms[i] for i in test], properties={TARGET: model}, dtype="float64",
                      progress=False)
        pred = {i: r[TARGET] for i, r in zip(test, res)}
        rows += [{"model": model, **_row(name, ids, label, pred)} for name, ids in subsets.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| model | test subset | structures | MAE (eV/atom) | MAD of labels (eV/atom) | Spearman |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['subset']} | {r['n']} | {r['mae']:.3f} | {r['mad']:.3f} | {r['spearman']:.2f} |"
              if r["mae"] is not None else f"| {r['model']} | {r['subset']} | {r['n']} | – | – | – |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
