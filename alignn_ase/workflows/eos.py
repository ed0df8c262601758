"""Equation of state with ``ase.eos``: energies of isotropically scaled cells, fitted."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import BaseCalculator
from ase.eos import EquationOfState, eos_names
from matplotlib.figure import Figure

from ..errors import ConvergenceWarning, InvalidArgumentError
from ..graph import is_3d_periodic
from .calc import calculate_many, check_numbers, check_structure, get_calculator, output_folder, write_csv
from .results import EOSResult

logger = logging.getLogger(__name__)

#: the smallest half-width of the volume range (fraction): below it float32 energies resolve too little curvature
MIN_VOLUME_RANGE = 0.005
#: volumes of a scan at most
MAX_SCAN_POINTS = 1000


def volume_scan(atoms: Atoms, volume_range: float, points: int, workflow: str) -> list[Atoms]:
    """``points`` copies of ``atoms`` scaled isotropically (fractional positions fixed) over ``V0 * (1 ± volume_range)``,
    after the checks the volume scans of ``workflow`` share (:class:`~alignn_ase.errors.InvalidArgumentError`)."""
    check_structure(atoms)
    if not is_3d_periodic(atoms):
        raise InvalidArgumentError(f"{workflow} needs a 3D periodic cell")
    check_numbers(volume_range=volume_range, points=points)
    if (not MIN_VOLUME_RANGE <= volume_range < 0.5 or not float(points).is_integer()
            or not 5 <= points <= MAX_SCAN_POINTS):
        raise InvalidArgumentError(
            f"need {MIN_VOLUME_RANGE} <= volume_range < 0.5 (smaller ranges fit float rounding, not the curvature) and "
            f"a whole number of points from 5 to {MAX_SCAN_POINTS} (got {volume_range}, {points})"
        )
    structures = []
    for factor in np.linspace(1 - volume_range, 1 + volume_range, int(points)):
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * np.cbrt(factor), scale_atoms=True)
        structures.append(scaled)
    return structures


def eos(
    atoms: Atoms,
    volume_range: float = 0.06,
    points: int = 9,
    eos_name: str = "birchmurnaghan",
    calculator: BaseCalculator | None = None,
    output_dir: str | Path | None = "eos_output",
) -> EOSResult:
    """Fit E(V) of ``atoms`` scaled isotropically (fractional positions fixed) over
    ``V0 * (1 ± volume_range)``.

    Args:
        atoms: 3D periodic structure (not modified); relax it first for a centred curve.
        volume_range: half-width of the volume range as a fraction (0.06 = ±6 %).
        points: number of volumes (at least 5).
        eos_name: an ``ase.eos.EquationOfState`` form (``"birchmurnaghan"``,
            ``"murnaghan"``, ``"vinet"``, ``"sj"``, ...).
        calculator: ASE calculator; default the one attached to ``atoms``, else ``ALIGNNCalculator()``.
        output_dir: folder for ``eos.png`` and ``eos.csv`` (volume Å³, energy eV); None writes nothing.

    Returns V0 (Å³), E0 (eV) and B0 (GPa). A minimum outside the sampled range is a
    :class:`~alignn_ase.errors.ConvergenceWarning` (the fit extrapolates).
    """
    if eos_name not in eos_names:
        raise InvalidArgumentError(f"unknown EOS {eos_name!r}; use one of {eos_names}")
    structures = volume_scan(atoms, volume_range, points, "eos")
    calc = get_calculator(atoms, calculator)
    out = output_folder(output_dir)
    volumes = np.array([s.get_volume() for s in structures])
    energies = np.array([r["energy"] for r in calculate_many(structures, calc)])
    fit = EquationOfState(volumes, energies, eos=eos_name)
    try:
        v0, e0, b0 = fit.fit(warn=False)
    except (ValueError, RuntimeError) as exc:
        raise InvalidArgumentError(f"the {eos_name} EOS fit failed on these energies ({exc})") from None
    if not b0 > 0:
        raise InvalidArgumentError(
            f"the {eos_name} EOS fit gives B0 = {b0 / units.GPa:.3g} GPa: E(V) has no minimum here (a structure far "
            "from equilibrium, or a model whose energy does not bind it)"
        )
    if not volumes[0] <= v0 <= volumes[-1]:
        warnings.warn(
            f"EOS minimum V0 = {v0:.3f} Å³ lies outside the sampled volumes {volumes[0]:.3f}-{volumes[-1]:.3f} Å³ "
            "(relax the structure first or widen volume_range)",
            ConvergenceWarning,
            stacklevel=2,
        )
    result = EOSResult(float(v0), float(e0), float(b0 / units.GPa), volumes, energies, eos_name)
    if out is not None:
        result.files = {"data": out / "eos.csv", "plot": out / "eos.png"}
        write_csv(result.files["data"], ["volume_A3", "energy_eV"], [volumes, energies])
        fig = Figure(figsize=(4.5, 3.5), layout="tight")
        ax = fig.subplots()
        fit.plot(ax=ax)
        ax.set_title(  # ASE's one-line title is wider than the figure
            f"{eos_name}: V0 = {result.v0:.3f} Å³, E0 = {result.e0:.4f} eV\nB0 = {result.b0:.1f} GPa", fontsize=9
        )
        fig.savefig(result.files["plot"], dpi=120)
    logger.info("EOS (%s): V0 = %.4f Å³, E0 = %.6f eV, B0 = %.2f GPa", eos_name, result.v0, result.e0, result.b0)
    return result
