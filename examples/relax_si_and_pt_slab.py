"""Relax bulk silicon (positions and cell) and a Pt(111) slab (positions, bottom layers fixed).

    python examples/relax_si_and_pt_slab.py [--out examples_output/relax] [--model default]

The slab is cut from bulk Pt relaxed with the same potential first (its lattice constant is
logged), so that it is not strained against the model's own bulk. Writes ``relax_si.png`` and
``relax_pt111.png`` (energy per atom vs step) and the relaxed structures as extended XYZ. The
shipped default potential is a small distillation of SevenNet-0 (lattice constants of Si and Pt
-0.3 % and +0.1 % from the teacher's; see its card).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ase.build import bulk, fcc111
from ase.constraints import FixAtoms
from ase.io import write

from alignn_ase import ALIGNNCalculator, relax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples_output/relax", type=Path)
    parser.add_argument("--model", default="default", help="shipped model name, checkpoint path or upstream model name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    calc = ALIGNNCalculator(args.model)

    si = bulk("Si", "diamond", a=5.6, cubic=True)
    si.rattle(0.05, seed=0)
    pt = relax(bulk("Pt", "fcc", a=3.92, cubic=True), calculator=calc, fmax=0.01, relax_cell=True).atoms
    a_pt = float(pt.cell.lengths()[0])
    logging.info("bulk Pt relaxed: a = %.4f Å", a_pt)
    slab = fcc111("Pt", size=(3, 3, 4), a=a_pt, vacuum=8.0)
    bottom = slab.positions[:, 2] < slab.positions[:, 2].min() + 2.5  # the two lowest layers
    slab.set_constraint(FixAtoms(mask=bottom))
    slab.rattle(0.02, seed=1)

    for name, atoms, options in (
        ("si", si, dict(fmax=0.02, relax_cell=True, max_steps=300)),
        ("pt111", slab, dict(fmax=0.05, relax_cell=False, optimizer="BFGS", max_steps=200)),
    ):
        result = relax(atoms, calculator=calc, **options)
        result.plot(args.out / f"relax_{name}.png")
        # written now: result.atoms shares the calculator, whose results the next relaxation replaces
        write(args.out / f"relaxed_{name}.extxyz", result.atoms, format="extxyz")
        logging.info("%s: %s", name, json.dumps(result.summary()))
    logging.info("figures and structures written to %s/", args.out)


if __name__ == "__main__":
    main()
