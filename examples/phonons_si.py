"""Phonons of silicon: band structure beside DOS, and the heat capacity.

    python examples/phonons_si.py [--out examples_output/phonons_si] [--model default]

Relaxes the primitive cell, then runs phonopy (finite displacements in a 4x4x4
supercell, 128 atoms). Writes ``phonons.png`` (bands + DOS), ``heat_capacity.png``
(C_V vs T with the Dulong-Petit limit), ``thermal_properties.png`` and phonopy's
files. Reports imaginary modes if any. The shipped default potential is a small
distillation of SevenNet-0 (Si: a = 5.446 Å; Γ optical 11.4 THz vs the teacher's 12.5 and
15.5 measured, X TA 4.2 THz vs 5.9 and 4.5; see its model card), so the optical bands are softer than silicon's.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ase import units
from ase.build import bulk
from matplotlib.figure import Figure

from alignn_ase import ALIGNNCalculator, phonons, relax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples_output/phonons_si", type=Path)
    parser.add_argument("--model", default="default", help="shipped model name, checkpoint path or upstream model name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    calc = ALIGNNCalculator(args.model)

    cell = relax(bulk("Si", "diamond", a=5.43), fmax=1e-3, calculator=calc, fix_symmetry=True).atoms
    result = phonons(cell, supercell=(4, 4, 4), mesh=(20, 20, 20), calculator=calc, output_dir=args.out)

    dulong_petit = 3 * units.kB * units.mol / units.J  # 3R, J/K per mole of atoms
    fig = Figure(figsize=(4.5, 3.5), layout="tight")
    ax = fig.subplots()
    ax.plot(result.temperatures, result.heat_capacity / result.atoms_per_cell)
    ax.axhline(dulong_petit, color="grey", ls="--", label="Dulong-Petit 3R")
    ax.set(xlabel="temperature (K)", ylabel="$C_V$ (J/K per mol of atoms)", title="Si heat capacity (harmonic)")
    ax.legend()
    fig.savefig(args.out / "heat_capacity.png", dpi=120)
    logging.info("%s", json.dumps(result.summary(), indent=1))
    logging.info("figures and phonopy files written to %s/", args.out)


if __name__ == "__main__":
    main()
