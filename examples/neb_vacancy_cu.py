"""Vacancy migration in copper by the nudged elastic band, with the default potential beside ASE's EMT.

    python examples/neb_vacancy_cu.py [--out examples_output/neb_vacancy_cu] [--model default]

A 3x3x3 cubic Cu supercell (108 sites) loses one atom; a nearest neighbour hops into the vacancy. Each model relaxes
its own lattice constant (cell and all), then both end points (ions only), then :func:`alignn_ase.neb` finds the
minimum-energy path (5 interior images, climbing image, to 0.03 eV/Å). Writes ``neb.png``, ``neb.traj`` and
``neb.csv`` per model and prints the barriers (experiment: a migration energy of about 0.7 eV).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from alignn_ase import ALIGNNCalculator, neb, relax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples_output/neb_vacancy_cu", type=Path)
    parser.add_argument("--model", default="default", help="shipped model name, checkpoint path or upstream model name")
    args = parser.parse_args()
    for label, calc in ((args.model, ALIGNNCalculator(args.model)), ("EMT", EMT())):
        unit = relax(bulk("Cu", "fcc", a=3.6, cubic=True), fmax=1e-3, calculator=calc, progress=False).atoms
        cell = unit.repeat(3)
        site = cell.positions[0].copy()
        del cell[0]
        hopper = int(np.argmin(np.linalg.norm(cell.positions - site, axis=1)))  # a nearest neighbour of the vacancy
        final = cell.copy()
        final.positions[hopper] = site
        ends = [relax(a, fmax=0.01, relax_cell=False, calculator=calc, progress=False).atoms for a in (cell, final)]
        result = neb(*ends, images=5, fmax=0.03, calculator=calc, output_dir=args.out / label.replace("/", "_"))
        print(f"{label}: a = {unit.cell[0, 0]:.3f} Å, barrier {result.barrier_forward:.3f} eV "
              f"({result.steps} steps, converged: {result.converged})")
    print(f"figures and bands in {args.out}/")


if __name__ == "__main__":
    main()
