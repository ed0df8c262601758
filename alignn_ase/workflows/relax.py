"""Structure relaxation with ASE's optimisers and ``FrechetCellFilter``."""

from __future__ import annotations

import logging
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import BaseCalculator
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.io.trajectory import Trajectory
from ase.optimize import BFGS, FIRE, LBFGS
from tqdm import tqdm

from ..errors import ConvergenceWarning, InvalidArgumentError, is_whole
from ..graph import is_3d_periodic
from .calc import check_numbers, check_structure, get_calculator, new_file
from .results import RelaxResult

logger = logging.getLogger(__name__)

OPTIMIZERS = {"FIRE": FIRE, "BFGS": BFGS, "LBFGS": LBFGS}


def relax(
    atoms: Atoms,
    fmax: float = 0.02,
    relax_cell: bool = True,
    optimizer: str = "FIRE",
    max_steps: int = 500,
    trajectory: str | Path | None = None,
    logfile: str | Path | IO | None = None,
    calculator: BaseCalculator | None = None,
    pressure_GPa: float = 0.0,
    progress: bool = True,
    fix_symmetry: bool = False,
    symprec: float = 1e-3,
) -> RelaxResult:
    """Relax positions (and, with ``relax_cell``, the cell) until every force is below ``fmax``.

    Args:
        atoms: the starting structure; it is not modified (the result holds a relaxed copy).
            Constraints on it (e.g. ``FixAtoms``) are honoured.
        fmax: force criterion in eV/Å; with ``relax_cell`` ASE's ``FrechetCellFilter``
            applies it to the cell's generalised forces too (virial / number of atoms, eV).
        relax_cell: relax the cell as well (needs a 3D periodic cell).
        optimizer: ``"FIRE"``, ``"BFGS"`` or ``"LBFGS"`` (ASE's).
        max_steps: optimiser steps at most. Stopping there is a :class:`ConvergenceWarning`
            and ``converged=False``, not an exception.
        trajectory: path of an ASE trajectory of every step, or None.
        logfile: ASE optimiser log (path, open file, ``"-"`` for stdout), or None.
        calculator: the ASE calculator; default the one attached to ``atoms``, else
            ``ALIGNNCalculator()``.
        pressure_GPa: external pressure for the cell relaxation, GPa.
        progress: show a tqdm progress bar.
        fix_symmetry: keep the space group the structure has at ``symprec`` (ASE's ``FixSymmetry``: forces,
            stress and steps are symmetrised, so float rounding cannot break the symmetry, e.g. before phonons);
            3D periodic structures without constraints of their own only (the symmetrisation would move fixed
            atoms); the relaxed copy does not keep the constraint.
        symprec: symmetry tolerance of ``fix_symmetry``, Å (1e-3: loose enough for positions rounded to four
            decimals in a CIF, where 1e-5 finds a lower group).

    Returns a :class:`~alignn_ase.workflows.results.RelaxResult`: the relaxed copy of ``atoms`` and
    its energy (eV), largest force (eV/Å), stress (eV/Å³), step count and energy after every step (eV).
    """
    if optimizer not in OPTIMIZERS:
        raise InvalidArgumentError(f"unknown optimizer {optimizer!r}; use one of {list(OPTIMIZERS)}")
    check_numbers(fmax=fmax, pressure_GPa=pressure_GPa, symprec=symprec)
    if not isinstance(fix_symmetry, bool) or not 0 < symprec < np.inf:
        raise InvalidArgumentError(f"need fix_symmetry True or False and a finite symprec > 0 (Å), got "
                                   f"{fix_symmetry!r}, {symprec!r}")
    if not 0 < fmax < np.inf or not is_whole(max_steps, 0):
        raise InvalidArgumentError(
            f"need a finite fmax > 0 (eV/Å) and a whole max_steps >= 0 (got fmax={fmax!r}, max_steps={max_steps!r})"
        )
    check_structure(atoms)
    calc = get_calculator(atoms, calculator)
    atoms = atoms.copy()
    atoms.calc = calc
    if relax_cell and not is_3d_periodic(atoms):
        raise InvalidArgumentError(
            "relax_cell=True needs a 3D periodic cell; pass relax_cell=False for molecules and slabs "
            "(command line: use --fixed-cell)"
        )
    with_stress = is_3d_periodic(atoms) and "stress" in calc.implemented_properties
    if relax_cell and not with_stress:
        raise InvalidArgumentError(
            f"relax_cell=True needs a stress, which {type(calc).__name__} does not compute; pass relax_cell=False"
        )
    if not np.isfinite(pressure_GPa):
        raise InvalidArgumentError(f"pressure_GPa must be a finite number, got {pressure_GPa}")
    if pressure_GPa and not relax_cell:
        raise InvalidArgumentError(
            f"pressure_GPa={pressure_GPa} needs relax_cell=True: with a fixed cell an external pressure changes nothing"
        )
    constraints = atoms.constraints
    if fix_symmetry:
        if not is_3d_periodic(atoms) or constraints:
            raise InvalidArgumentError(
                "fix_symmetry needs a 3D periodic structure without constraints of its own (got "
                f"{'no 3D cell' if not is_3d_periodic(atoms) else ', '.join(type(c).__name__ for c in constraints)}): "
                "the symmetrisation would move fixed atoms"
            )
        atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
    target = FrechetCellFilter(atoms, scalar_pressure=pressure_GPa * units.GPa) if relax_cell else atoms
    energies: list[float] = []
    enthalpies: list[float] = []  # what the optimiser minimises under pressure: E + PV (the filter's energy)
    with ExitStack() as stack:
        if isinstance(logfile, (str, Path)) and str(logfile) != "-":
            logfile = new_file(logfile)
        opt = stack.enter_context(OPTIMIZERS[optimizer](target, logfile=logfile))
        if trajectory is not None:
            opt.attach(stack.enter_context(Trajectory(str(new_file(trajectory)), "w", atoms)))
        bar = stack.enter_context(tqdm(total=max_steps, desc=f"relax ({optimizer})", disable=not progress, leave=False))

        def observe() -> None:
            energies.append(atoms.get_potential_energy())
            if pressure_GPa:
                enthalpies.append(target.get_potential_energy())
            if progress:
                bar.update(1 if opt.nsteps else 0)
                bar.set_postfix(energy=f"{energies[-1]:.4f} eV", fmax=f"{_criterion(target):.3g}")

        opt.attach(observe)
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
    atoms.set_constraint(constraints)  # the symmetry was for the relaxation; MD on the result must not keep it
    result = RelaxResult(
        atoms=atoms,
        energy=float(atoms.get_potential_energy()),
        max_force=_max_force(atoms),
        stress=atoms.get_stress() if with_stress else None,
        steps=int(opt.nsteps),
        converged=converged,
        energies=np.array(energies),
        pressure_GPa=float(pressure_GPa),
        enthalpies=np.array(enthalpies) if pressure_GPa else None,
    )
    if converged:
        logger.info(
            "relaxed in %d steps: E = %.6f eV, max |F| = %.3g eV/Å", result.steps, result.energy, result.max_force
        )
    else:
        warnings.warn(
            f"relaxation did not converge to fmax={fmax} eV/Å within {max_steps} steps (largest force "
            f"{_criterion(target):.3g}{', cell included' if relax_cell else ''}); returning the last structure",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result


def _criterion(target: Atoms | FrechetCellFilter) -> float:
    """What the optimiser compares with ``fmax``: the largest force norm of atoms and, for a filter, cell (eV/Å, eV)."""
    return float(np.linalg.norm(target.get_forces(), axis=1).max())


def _max_force(atoms: Atoms) -> float:
    """Largest atomic force norm, eV/Å (constraints applied)."""
    forces = atoms.get_forces()
    return float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
