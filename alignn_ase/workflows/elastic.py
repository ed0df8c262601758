"""Elastic constants: the full 6x6 stiffness tensor from central differences of the stress under small strains."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import BaseCalculator
from ase.stress import voigt_6_to_full_3x3_strain
from tqdm import tqdm

from ..errors import ConvergenceWarning, InvalidArgumentError
from ..graph import is_3d_periodic
from .calc import calculate_many, check_numbers, check_structure, get_calculator, output_folder
from .relax import relax
from .results import ElasticResult

logger = logging.getLogger(__name__)

#: GPa; a residual stress above this means the structure was not relaxed first
RESIDUAL_STRESS_WARNING_GPA = 0.5

#: optimiser steps at most of each strained cell's ionic relaxation
ION_RELAX_STEPS = 1000


def elastic(
    atoms: Atoms,
    strain: float = 0.005,
    relax_ions: bool = True,
    fmax: float = 1e-4,
    calculator: BaseCalculator | None = None,
    output_dir: str | Path | None = "elastic_output",
    progress: bool = True,
) -> ElasticResult:
    """The elastic stiffness tensor C_ij = dσ_i/dε_j (GPa, Voigt order xx yy zz yz xz xy, engineering shear
    strains) of ``atoms`` at its own cell, by central differences of the stress over strains of ±``strain``.

    Args:
        atoms: 3D periodic structure, relaxed first (cell included): the constants are those of the stressed
            state otherwise (a residual stress above 0.5 GPa is warned about). Not modified; it may hold no
            constraints.
        strain: the strain magnitude (1e-4 to 0.05; 0.5 % is linear for most crystals and well above float
            rounding in float32).
        relax_ions: relax the ions in each strained cell (fixed cell, FIRE to ``fmax``): the relaxed-ion
            constants that experiment measures. False gives the clamped-ion ones, from one batched evaluation.
            They differ where a strain moves atoms off their sites (C44 of diamond-structure crystals).
        fmax: force criterion of the ionic relaxations, eV/Å.
        calculator: ASE calculator with a stress; default the one attached to ``atoms``, else ``ALIGNNCalculator()``.
        output_dir: folder for ``elastic.json`` (the tensor and moduli); None writes nothing.
        progress: show a tqdm progress bar over the strained cells.

    Returns an :class:`~alignn_ase.workflows.results.ElasticResult`: the symmetrised tensor and its asymmetry
    (GPa), Voigt, Reuss and Hill bulk and shear moduli (GPa), Young's modulus (GPa) and Poisson's ratio (Hill),
    the tensor's eigenvalues (GPa) and Born stability (all of them positive).
    """
    check_structure(atoms)
    check_numbers(strain=strain, fmax=fmax)
    if not is_3d_periodic(atoms):
        raise InvalidArgumentError("elastic constants need a 3D periodic cell")
    if not 1e-4 <= strain <= 0.05 or not 0 < fmax < np.inf or not isinstance(relax_ions, bool):
        raise InvalidArgumentError(f"need 1e-4 <= strain <= 0.05, a finite fmax > 0 (eV/Å) and relax_ions True or "
                                   f"False (got {strain!r}, {fmax!r}, {relax_ions!r})")
    if atoms.constraints:
        raise InvalidArgumentError(
            f"elastic constants need every ion free and the strained cell's own symmetry; remove the constraints "
            f"({', '.join(type(c).__name__ for c in atoms.constraints)}) first"
        )
    calc = get_calculator(atoms, calculator)
    out = output_folder(output_dir)
    if "stress" not in calc.implemented_properties:
        raise InvalidArgumentError(f"elastic constants need a stress, which {type(calc).__name__} does not compute")
    base = atoms.copy()
    base.calc = None
    cell = base.cell.array.copy()
    residual = calculate_many([base], calc, progress=False)[0]["stress"] / units.GPa
    if np.abs(residual).max() > RESIDUAL_STRESS_WARNING_GPA:
        warnings.warn(
            f"the structure is under a stress of up to {np.abs(residual).max():.2f} GPa: relax it (cell included) "
            "first, or these are the constants of the stressed state",
            ConvergenceWarning,
            stacklevel=2,
        )
    strained = []
    for index in range(6):
        for sign in (1.0, -1.0):
            s = base.copy()
            # engineering shear: a Voigt shear strain g puts g / 2 in each of the two off-diagonal entries
            s.set_cell(cell @ voigt_6_to_full_3x3_strain(np.eye(6)[index] * sign * strain), scale_atoms=True)
            strained.append(s)
    converged = True
    if relax_ions:
        stresses = []
        for s in tqdm(strained, desc="strained cells", disable=not progress, leave=False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                result = relax(s, fmax=fmax, relax_cell=False, calculator=calc, max_steps=ION_RELAX_STEPS,
                               progress=False)
            converged &= result.converged
            stresses.append(result.stress)
        if not converged:
            warnings.warn(f"some strained cells' ions did not relax to fmax={fmax} eV/Å in {ION_RELAX_STEPS} steps",
                          ConvergenceWarning, stacklevel=2)
    else:
        stresses = [r["stress"] for r in calculate_many(strained, calc, progress=progress)]
    sigma = np.array(stresses).reshape(6, 2, 6) / units.GPa  # (strained component, sign, stress component)
    c = ((sigma[:, 0] - sigma[:, 1]) / (2 * strain)).T  # C[i, j] = dσ_i / dε_j
    result = ElasticResult.from_tensor(
        c, strain=strain, relax_ions=relax_ions, ions_converged=converged, residual_stress_GPa=residual
    )
    if out is not None:
        path = out / "elastic.json"
        path.write_text(json.dumps(result.summary(), indent=1) + "\n")
        result.files["elastic.json"] = path
    logger.info("elastic tensor (GPa):\n%s", np.array2string(result.c, precision=1, suppress_small=True))
    return result
