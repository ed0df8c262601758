"""Relax a strained rock-salt NaCl cell and print the property model's prediction at every step.

    python examples/relax_with_property.py [--model default] [--out examples_output/relax_property]

The calculator evaluates the shipped formation-energy model (``formation_energy_peratom``,
eV/atom, a property of the teacher SevenNet-0; see its model card) beside the potential at
every geometry (each model on its own graph: the property model's is upstream's 8 Å
k-nearest graph, the potential's a 5 Å radius graph), so the prediction follows the
relaxation. Writes ``relax_property.csv`` and ``relax_property.png``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from alignn_ase import ALIGNNCalculator

PROPERTY = "formation_energy_peratom"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default",
                        help="potential: shipped name, checkpoint path or upstream model name")
    parser.add_argument("--out", default="examples_output/relax_property", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    atoms = bulk("NaCl", "rocksalt", a=5.9, cubic=True)
    atoms.rattle(0.05, seed=0)
    calc = ALIGNNCalculator(args.model, properties=[PROPERTY])
    atoms.calc = calc
    rows: list[dict[str, float]] = []

    def report() -> None:
        row = {
            "step": len(rows),
            "energy_eV_per_atom": atoms.get_potential_energy() / len(atoms),
            "a_A": atoms.cell.lengths()[0],
            f"{PROPERTY}_eV_per_atom": calc.get_property(PROPERTY, atoms),
        }
        rows.append(row)
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))

    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    opt.attach(report)
    opt.run(fmax=0.02, steps=200)

    with (args.out / "relax_property.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(2, 1, sharex=True, figsize=(5, 5))
    ax[0].plot([r["step"] for r in rows], [r["energy_eV_per_atom"] for r in rows])
    ax[0].set_ylabel("energy (eV/atom)")
    ax[1].plot([r["step"] for r in rows], [r[f"{PROPERTY}_eV_per_atom"] for r in rows])
    ax[1].set_ylabel("predicted E_form (eV/atom)")
    ax[1].set_xlabel("FIRE step")
    fig.tight_layout()
    fig.savefig(args.out / "relax_property.png", dpi=120)
    print(f"wrote {args.out}/relax_property.csv and relax_property.png")


if __name__ == "__main__":
    main()
