"""Self-test for users: is this calculator's output consistent with its own energy?

``alignn-ase check [--model M]`` runs :func:`run_checks` on a few built-in structures
(rattled and strained so that nothing vanishes by symmetry) and prints PASS/FAIL per
check with the numbers:

- forces equal -dE/dx (fourth-order central differences, every component);
- stress equals (1/V) dE/dε (same, for a symmetric strain, all six components);
- units and sign of the stress: the pressure -tr(σ)/3 equals -dE/dV, both in GPa
  (a stress in GPa or kbar instead of eV/Å³ is off by ~160× or ~1600×, a flipped sign by 2×);
- rotation invariance: rotating the structure leaves E unchanged and rotates F and σ;
- supercell extensivity: a 2x2x2 supercell has 8× the energy, the same forces and stress;
- zero net force: the forces sum to zero (translation invariance; a force that turns with the
  cell, which the rotation check cannot see, fails here).

A non-finite number fails its check.

Tolerances are absolute + relative to the size of what is compared, set for float64;
``tolerance_scale`` loosens them (``alignn-ase check --dtype float32`` uses 30).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import BaseCalculator
from ase.stress import voigt_6_to_full_3x3_stress
from scipy.spatial.transform import Rotation

from .errors import UnsupportedElementError
from .workflows.calc import calculate_many

#: finite-difference steps: displacement (Å) and strain (dimensionless).
DISPLACEMENT = 1e-3
STRAIN = 1e-3
#: the unit of checks that compare several quantities: each deviation divided by its own tolerance.
RELATIVE = "× tolerance"


@dataclass
class CheckResult:
    """One check on one structure.

    Attributes:
        check: what was checked.
        structure: which built-in structure.
        passed: True / False, or None when skipped.
        error: the largest deviation found, in ``unit``.
        tolerance: the largest deviation allowed, in ``unit``.
        unit: unit of ``error`` and ``tolerance``.
        detail: the compared numbers, or why it was skipped.
    """

    check: str
    structure: str
    passed: bool | None
    error: float
    tolerance: float
    unit: str
    detail: str = ""

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        if self.passed is None:
            return f"{status}  {self.structure:<8} {self.check:<34} {self.detail}"
        if self.unit == RELATIVE:
            numbers = f"worst deviation {self.error:.1e} of its tolerance"
        else:
            numbers = f"max deviation {self.error:.2e} {self.unit} (tolerance {self.tolerance:.1e})"
        return f"{status}  {self.structure:<8} {self.check:<34} {numbers}  {self.detail}".rstrip()


def builtin_structures() -> dict[str, Atoms]:
    """Small cells with different chemistry, rattled and strained (seeded); the last, hcp Cu with a = 2.55 Å, has
    cell vectors so short that an atom bonds to its own periodic images (what a supercell holds as distinct atoms)."""
    rng = np.random.default_rng(7)
    si = bulk("Si", "diamond", a=5.43)
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    cu3au = bulk("Cu", "fcc", a=3.75, cubic=True)
    cu3au.symbols[0] = "Au"
    cu = bulk("Cu", "hcp", a=2.55)  # two atoms: the rattle gives forces to check
    out = {}
    for name, atoms in (("Si2", si), ("NaCl", nacl), ("Cu3Au", cu3au), ("Cu2", cu)):
        strain = rng.normal(0.0, 0.015, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        out[name] = atoms
    return out


def _strained(atoms: Atoms, eps: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return out


def _within(error: float, scale: float, atol: float, rtol: float) -> tuple[bool, float]:
    tol = atol + rtol * scale
    return bool(error <= tol), tol


#: central-difference stencil of fourth order: offsets (in steps) and weights.
STENCIL = ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))


def _derivatives(structures_per_point: list[list[Atoms]], calc: BaseCalculator, step: float) -> np.ndarray:
    """dE/dx for each point, from the energies of its STENCIL structures (eV per unit of ``step``)."""
    flat = [s for group in structures_per_point for s in group]
    energies = [r["energy"] for r in calculate_many(flat, calc, progress=False)]
    return np.reshape(energies, (len(structures_per_point), len(STENCIL))) @ np.array([w for _, w in STENCIL]) / step


def _forces(atoms: Atoms, base: dict, calc: BaseCalculator, k: float) -> CheckResult:
    groups = []
    for i in range(len(atoms)):
        for d in range(3):
            group = []
            for offset, _ in STENCIL:
                moved = atoms.copy()
                moved.positions[i, d] += offset * DISPLACEMENT
                group.append(moved)
            groups.append(group)
    fd = -_derivatives(groups, calc, DISPLACEMENT).reshape(len(atoms), 3)
    err = float(np.abs(fd - base["forces"]).max())
    scale = float(np.abs(base["forces"]).max())
    ok, tol = _within(err, scale, 1e-4 * k, 1e-3 * k)
    return CheckResult("forces = -dE/dx", "", ok, err, tol, "eV/Å", f"(max |F| {scale:.3g} eV/Å)")


def _stress(atoms: Atoms, base: dict, calc: BaseCalculator, k: float) -> CheckResult:
    groups = []
    for i, j in ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)):  # Voigt order
        group = []
        for offset, _ in STENCIL:
            eps = np.zeros((3, 3))
            eps[i, j] += offset * STRAIN / 2
            eps[j, i] += offset * STRAIN / 2
            group.append(_strained(atoms, eps))
        groups.append(group)
    fd = _derivatives(groups, calc, STRAIN) / atoms.get_volume()
    err = float(np.abs(fd - base["stress"]).max())
    scale = float(np.abs(base["stress"]).max())
    ok, tol = _within(err, scale, 1e-5 * k, 1e-3 * k)
    return CheckResult("stress = (1/V) dE/dε", "", ok, err, tol, "eV/Å³", f"(max |σ| {scale:.3g} eV/Å³)")


def _pressure(atoms: Atoms, base: dict, calc: BaseCalculator, k: float) -> CheckResult:
    volume = atoms.get_volume()
    group = [_strained(atoms, np.eye(3) * (np.cbrt(1 + offset * STRAIN) - 1)) for offset, _ in STENCIL]
    p_energy = -float(_derivatives([group], calc, STRAIN * volume)[0]) / units.GPa
    p_stress = -float(np.mean(base["stress"][:3])) / units.GPa
    err = abs(p_stress - p_energy)
    ok, tol = _within(err, abs(p_energy), 1e-5 * k / units.GPa, 1e-3 * k)
    detail = f"(pressure from stress {p_stress:+.4f} GPa, -dE/dV {p_energy:+.4f} GPa)"
    return CheckResult("stress units and sign (pressure)", "", ok, err, tol, "GPa", detail)


def _same_results(check: str, de: float, df: float, ds: float, k: float) -> CheckResult:
    """Energy (eV/atom), force (eV/Å) and stress (eV/Å³) deviations against tolerances 1e-6, 1e-5, 1e-6 (× k),
    reported as one number: the largest deviation relative to its own tolerance."""
    tolerances = (1e-6 * k, 1e-5 * k, 1e-6 * k)
    worst = float(np.max(np.array([de, df, ds]) / np.array(tolerances)))  # NaN stays NaN (Python's max drops it)
    limits = ", ".join(f"{t:.0e}" for t in tolerances)
    detail = f"(ΔE {de:.1e} eV/atom, ΔF {df:.1e} eV/Å, Δσ {ds:.1e} eV/Å³; tolerances {limits})"
    return CheckResult(check, "", bool(worst <= 1), worst, 1.0, RELATIVE, detail)


def _rotation(atoms: Atoms, base: dict, calc: BaseCalculator, k: float) -> CheckResult:
    rot = Rotation.random(random_state=3).as_matrix()
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=True)
    r = calculate_many([turned], calc, progress=False)[0]
    s0, s1 = voigt_6_to_full_3x3_stress(base["stress"]), voigt_6_to_full_3x3_stress(r["stress"])
    return _same_results(
        "rotation invariance",
        abs(r["energy"] - base["energy"]) / len(atoms),
        float(np.abs(r["forces"] - base["forces"] @ rot.T).max()),
        float(np.abs(s1 - rot @ s0 @ rot.T).max()),
        k,
    )


def _extensivity(atoms: Atoms, base: dict, calc: BaseCalculator, k: float) -> CheckResult:
    r = calculate_many([atoms.repeat((2, 2, 2))], calc, progress=False)[0]
    return _same_results(
        "2x2x2 supercell extensivity",
        abs(r["energy"] / 8 - base["energy"]) / len(atoms),
        float(np.abs(r["forces"] - np.tile(base["forces"], (8, 1))).max()),
        float(np.abs(r["stress"] - base["stress"]).max()),
        k,
    )


def _net_force(atoms: Atoms, base: dict, calc: BaseCalculator, k: float) -> CheckResult:
    """|sum of the forces| / N, from the results already computed."""
    err = float(np.linalg.norm(base["forces"].sum(axis=0))) / len(atoms)
    scale = float(np.abs(base["forces"]).max())
    ok, tol = _within(err, scale, 1e-7 * k, 1e-7 * k)
    return CheckResult("zero net force", "", ok, err, tol, "eV/Å per atom", f"(max |F| {scale:.3g} eV/Å)")


CHECKS: tuple[Callable[[Atoms, dict, BaseCalculator, float], CheckResult], ...] = (
    _forces,
    _stress,
    _pressure,
    _rotation,
    _extensivity,
    _net_force,
)


def run_checks(
    calculator: BaseCalculator,
    structures: Mapping[str, Atoms] | None = None,
    tolerance_scale: float = 1.0,
) -> list[CheckResult]:
    """Run every check on every structure (default :func:`builtin_structures`).

    Works with any ASE calculator that gives energy, forces and stress for the structures'
    elements. A structure with an element an alignn-ase model does not support
    (:class:`~alignn_ase.errors.UnsupportedElementError`) is reported as SKIP; other
    calculators raise their own errors (EMT: ``NotImplementedError`` for Si), so pass them
    structures they cover.
    """
    results = []
    for name, atoms in (structures or builtin_structures()).items():
        try:
            base = calculate_many([atoms], calculator, progress=False)[0]
        except UnsupportedElementError as exc:
            results.append(CheckResult("all checks", name, None, np.nan, np.nan, "", f"skipped: {exc}"))
            continue
        for check in CHECKS:
            result = check(atoms, base, calculator, tolerance_scale)
            result.structure = name
            results.append(result)
    return results
