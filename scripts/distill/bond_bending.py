"""The energy of bond bending in diamond-structure crystals: a quick probe of a potential's angular stiffness.

A volume-conserving tetragonal strain of the cubic diamond cell, diag(1+e, (1+e)^-1/2, (1+e)^-1/2), leaves the four
bond lengths of every atom unchanged to first order (and equal to each other) and changes the bond angles, so the
energy it costs (meV/atom) is the bond-bending part of C11 - C12. Every model is probed at the same geometry (fixed lattice constants, below), so the
numbers compare models, not lattice constants. Used in ``README.md`` ("Elastic part") to follow training runs
between full elastic-constant checks (``benchmarks/validate_potential.py --parts elastic``).

    /work/venv/bin/python scripts/distill/bond_bending.py default /work/distill/run_x/last_model
    /work/upvenv/bin/python scripts/distill/bond_bending.py sevenn     # the teacher, in its own venv

Prints one markdown table row per model.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.build import bulk
from ase.calculators.calculator import Calculator

#: crystal -> (element, cubic lattice constant in Å): near the experimental and PBE values, the same for every model
CRYSTALS = {"Si": ("Si", 5.43), "Ge": ("Ge", 5.76), "C": ("C", 3.57)}
STRAINS = (-0.02, 0.02)


def bending_energies(calc: Calculator, element: str, a: float) -> list[float]:
    """Energy (meV/atom) of each strain in :data:`STRAINS` relative to the unstrained diamond cell of ``element``."""
    cubic = bulk(element, "diamond", a=a, cubic=True)
    cubic.calc = calc
    e0 = cubic.get_potential_energy() / len(cubic)
    out = []
    for e in STRAINS:
        strained = cubic.copy()
        strained.set_cell(cubic.cell.array @ np.diag([1 + e, (1 + e) ** -0.5, (1 + e) ** -0.5]), scale_atoms=True)
        strained.calc = calc
        out.append(1000 * (strained.get_potential_energy() / len(strained) - e0))
    return out


def calculator(name: str) -> Calculator:
    """``chgnet`` / ``sevenn``: the teacher (in its venv); anything else: an alignn-ase model name or path (float64)."""
    if name in ("chgnet", "sevenn"):
        from teachers import load_teacher

        return load_teacher(name).calc
    from alignn_ase import ALIGNNCalculator

    return ALIGNNCalculator(name, dtype="float64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="alignn-ase model names or paths, or chgnet / sevenn")
    args = parser.parse_args()
    print("| model | " + " | ".join(f"{c} (a = {a} Å), e = -2 % / +2 %" for c, (_, a) in CRYSTALS.items()) + " |")
    print("|---|" + "---:|" * len(CRYSTALS))
    for name in args.models:
        calc = calculator(name)
        cells = [" / ".join(f"{v:.2f}" for v in bending_energies(calc, el, a)) for el, a in CRYSTALS.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
