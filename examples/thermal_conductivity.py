"""Lattice thermal conductivity of diamond-structure Si and Ge with the default potential (phono3py), beside
experiment.

    python examples/thermal_conductivity.py [--out examples_output/kappa] [--model default] [--mesh 19]

Needs phono3py (``pip install phono3py``). Each crystal is relaxed (float64, 1e-4 eV/Å, cell included, symmetry
kept), then :func:`alignn_ase.thermal_conductivity` as phono3py's silicon example does it: the 8-atom conventional
cell in a 2x2x2 supercell (64 atoms; 111 displaced supercells for the third-order force constants, in batched
evaluations), the second-order ones in a 4x4x4 supercell (512 atoms, beyond the model's reach through its layers),
a 19x19x19 q-point mesh, the relaxation-time approximation, natural isotope scattering. Writes
``<crystal>/kappa.png``, ``kappa.csv`` and phono3py's ``fc2.hdf5``/``fc3.hdf5`` per crystal, ``summary.json``,
and prints κ at 300 K beside experiment. The conductivity is the sharpest test of a potential's anharmonicity (its
third derivatives): see the default potential's model card (Known limits) for what it shows there.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from ase.build import bulk

from alignn_ase import ALIGNNCalculator, relax, thermal_conductivity

#: W/(m K) at 300 K, natural isotopes (Glassbrenner & Slack, Phys. Rev. 134, A1058, 1964)
EXPERIMENT = {"Si": 150.0, "Ge": 60.0}
LATTICE = {"Si": 5.43, "Ge": 5.66}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples_output/kappa", type=Path)
    parser.add_argument("--model", default="default", help="shipped model name, checkpoint path or upstream model name")
    parser.add_argument("--mesh", default=19, type=int, help="q-points along each axis (default 19)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    calc = ALIGNNCalculator(args.model, dtype="float64")
    summary = {}
    for name, a in LATTICE.items():
        cell = relax(bulk(name, "diamond", a=a, cubic=True), fmax=1e-4, calculator=calc, fix_symmetry=True,
                     progress=False).atoms
        result = thermal_conductivity(cell, supercell=(2, 2, 2), phonon_supercell=(4, 4, 4), mesh=(args.mesh,) * 3,
                                      temperatures=np.arange(100.0, 1001.0, 50.0), isotope=True, calculator=calc,
                                      output_dir=args.out / name)
        summary[name] = {"a_A": float(cell.cell[0, 0]), **result.summary()}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{'':<4} {'a (Å)':>7} {'κ at 300 K (W/(m K))':>22} {'experiment':>11} {'imaginary modes':>16}")
    for name, row in summary.items():
        print(f"{name:<4} {row['a_A']:>7.3f} {row['at']['300 K']['kappa_mean_W_per_mK']:>22.3g} "
              f"{EXPERIMENT[name]:>11.0f} {row['imaginary_modes']:>16}")
    print(f"figures and data in {args.out}/")


if __name__ == "__main__":
    main()
