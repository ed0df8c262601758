"""Teacher labelling and the derived frames of one parent: volume scan, relaxation, rattles, strains, MD.

Every labelled frame is an :class:`ase.Atoms` carrying a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` with energy (eV),
forces (eV/Å) and, for 3D-periodic cells only, stress (eV/Å³, Voigt, ASE sign), and
``atoms.info["kind"]`` / ``atoms.info["param"]`` saying how it was made. Frames the
teacher labels as nonsense (see :func:`reject_reason`) are dropped and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.neighborlist import neighbor_list
from ase.optimize import FIRE

log = logging.getLogger(__name__)

MAX_FORCE = 50.0  # eV/Å; larger teacher forces mark a frame as absurd
MIN_DISTANCE = 0.6  # Å; closer atoms mark a frame as absurd
MAX_ABS_ENERGY_PER_ATOM = 50.0  # eV/atom


@dataclass(frozen=True)
class Settings:
    """How the frames of a parent are made (lengths Å, times fs, temperatures K)."""

    scan_scales: tuple[float, ...] = tuple(np.round(np.linspace(0.76, 1.08, 9), 3))
    relax_fmax: float = 0.02  # eV/Å
    relax_steps: int = 100
    path_frames: int = 2  # intermediate relaxation frames kept
    rattle_stds: tuple[float, ...] = (0.01, 0.04, 0.08, 0.15)
    n_strains: int = 3
    strain_volume: float = 0.05  # ± fraction of volume
    strain_shear: float = 0.03  # ± off-diagonal strain
    strain_rattle: float = 0.02
    supercell_min_atoms: int = 8
    supercell_min_height: float = 4.0
    supercell_max_atoms: int = 16
    md_steps: int = 160
    md_interval: int = 20
    md_timestep_fs: float = 1.0
    md_friction_per_fs: float = 0.02
    md_temperatures: tuple[float, ...] = (300.0, 600.0, 1000.0, 1500.0)
    md_temperatures_molecule: tuple[float, ...] = (300.0, 600.0, 1000.0)
    md_fraction: float = 0.25  # share of parents that get an MD run
    md_fraction_molecule: float = 1.0


def is_bulk(atoms: Atoms) -> bool:
    """True for 3D-periodic cells (the ones that get a stress label and a cell relaxation)."""
    return bool(atoms.pbc.all())


def reject_reason(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None) -> str | None:
    """Why a labelled frame is unusable (non-finite, |F| > 50 eV/Å, atoms < 0.6 Å apart), or None."""
    values = [np.asarray(energy), forces] + ([stress] if stress is not None else [])
    if not all(np.all(np.isfinite(v)) for v in values):
        return "nan"
    if abs(energy) / len(atoms) > MAX_ABS_ENERGY_PER_ATOM:
        return "energy"
    if np.abs(forces).max(initial=0.0) > MAX_FORCE:
        return "force"
    if len(neighbor_list("i", atoms, MIN_DISTANCE)) > 0:
        return "close"
    return None


def snapshot(atoms: Atoms, kind: str, param: float, settings: str, skipped: Counter) -> Atoms | None:
    """Labelled copy of ``atoms`` (its calculator's energy, forces and, if 3D-periodic, stress), or None.

    Uses the calculator's cached results when it has them; rejected frames are counted
    in ``skipped`` under ``"<kind>:<reason>"``.
    """
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=float)
    stress = np.array(atoms.get_stress(), dtype=float) if is_bulk(atoms) else None
    reason = reject_reason(atoms, energy, forces, stress)
    if reason is not None:
        skipped[f"{kind}:{reason}"] += 1
        return None
    frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    labels = {"energy": energy, "forces": forces}
    if stress is not None:
        labels["stress"] = stress
    frame.calc = SinglePointCalculator(frame, **labels)
    frame.info.update(kind=kind, param=float(param), settings=settings)
    return frame


def label(atoms: Atoms, calc: Calculator, kind: str, param: float, settings: str, skipped: Counter) -> Atoms | None:
    """Run the teacher on a copy of ``atoms`` and return the labelled frame, or None when rejected."""
    atoms = atoms.copy()
    atoms.calc = calc
    try:
        return snapshot(atoms, kind, param, settings, skipped)
    except Exception as exc:  # a teacher crash on one frame must not stop the run
        log.warning("teacher failed on a %s frame of %s: %s", kind, atoms.get_chemical_formula(), exc)
        skipped[f"{kind}:error"] += 1
        return None


def volume_scan(atoms: Atoms, calc: Calculator, s: Settings, skipped: Counter) -> tuple[Atoms, list[Atoms]]:
    """Isotropic scan of the linear scale; returns the lowest-energy cell and its two scan neighbours as frames."""
    frames: list[Atoms | None] = []
    for scale in s.scan_scales:
        a = atoms.copy()
        a.set_cell(atoms.cell * scale, scale_atoms=True)
        frames.append(label(a, calc, "scan", scale, f"isotropic linear scale {scale}", skipped))
    energies = [f.get_potential_energy() if f is not None else np.inf for f in frames]
    best = int(np.argmin(energies))
    if not np.isfinite(energies[best]):
        raise RuntimeError("every volume-scan frame was rejected")
    kept = [frames[k] for k in (best - 1, best + 1) if 0 <= k < len(frames) and frames[k] is not None]
    start = atoms.copy()
    start.set_cell(atoms.cell * s.scan_scales[best], scale_atoms=True)
    return start, kept


def relax(atoms: Atoms, calc: Calculator, s: Settings, skipped: Counter) -> tuple[Atoms, list[Atoms]]:
    """FIRE relaxation (cell too, via FrechetCellFilter, for 3D-periodic cells).

    Returns the relaxed frame (kind "relaxed", with ``converged``, ``relax_steps`` and
    ``fmax`` in eV/Å in its info) and up to ``s.path_frames`` evenly spaced intermediate
    frames (kind "relax_path", param = step).
    """
    atoms = atoms.copy()
    atoms.calc = calc
    bulk = is_bulk(atoms)
    path: list[Atoms | None] = []
    method = f"FIRE fmax={s.relax_fmax} eV/A max {s.relax_steps} steps" + (" FrechetCellFilter" if bulk else " positions")

    def record() -> None:
        frame = snapshot(atoms, "relax_path", len(path), f"{method} step {len(path)}", Counter())
        path.append(frame)

    target = FrechetCellFilter(atoms) if bulk else atoms
    opt = FIRE(target, logfile=None)
    opt.attach(record, interval=1)
    converged = bool(opt.run(fmax=s.relax_fmax, steps=s.relax_steps))
    fmax = float(np.linalg.norm(target.get_forces(), axis=1).max())
    final = snapshot(atoms, "relaxed", opt.nsteps, f"{method} {opt.nsteps} steps", skipped)
    if final is None:
        raise RuntimeError(f"relaxed structure rejected after {opt.nsteps} steps: {dict(skipped)}")
    final.info.update(converged=converged, relax_steps=int(opt.nsteps), fmax=fmax)
    inner = path[1:-1]
    picks = np.linspace(0, len(inner) - 1, s.path_frames + 2)[1:-1].round().astype(int) if len(inner) > 4 else []
    kept = []
    for k in sorted(set(int(p) for p in picks)):
        if inner[k] is None:
            skipped["relax_path:rejected"] += 1
        else:
            inner[k].info["param"] = float(k + 1)
            kept.append(inner[k])
    return final, kept


def rattles(atoms: Atoms, calc: Calculator, rng: np.random.Generator, s: Settings, skipped: Counter) -> list[Atoms]:
    """Gaussian position noise (std per Cartesian component, Å) on the relaxed supercell."""
    out = []
    for std in s.rattle_stds:
        a = atoms.copy()
        a.positions += rng.normal(0.0, std, a.positions.shape)
        out.append(label(a, calc, "rattle", std, f"gaussian rattle std {std} A", skipped))
    return [f for f in out if f is not None]


def strains(atoms: Atoms, calc: Calculator, rng: np.random.Generator, s: Settings, skipped: Counter) -> list[Atoms]:
    """Random homogeneous strains (volume ±``strain_volume``, shears ±``strain_shear``) plus a small rattle."""
    out = []
    for _ in range(s.n_strains):
        vol = 1.0 + rng.uniform(-s.strain_volume, s.strain_volume)
        shear = np.triu(rng.uniform(-s.strain_shear, s.strain_shear, (3, 3)), 1)
        deform = vol ** (1 / 3) * (np.eye(3) + shear + shear.T)
        a = atoms.copy()
        a.set_cell(atoms.cell.array @ deform, scale_atoms=True)
        a.positions += rng.normal(0.0, s.strain_rattle, a.positions.shape)
        ratio = a.get_volume() / atoms.get_volume()
        note = f"strain V/V0={ratio:.4f} shear<={s.strain_shear} + rattle {s.strain_rattle} A"
        out.append(label(a, calc, "strain", ratio, note, skipped))
    return [f for f in out if f is not None]


def md(
    atoms: Atoms,
    calc: Calculator,
    rng: np.random.Generator,
    temperature: float,
    s: Settings,
    skipped: Counter,
) -> list[Atoms]:
    """Langevin MD at ``temperature`` (K); a frame every ``md_interval`` steps; stops at the first absurd frame."""
    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep=s.md_timestep_fs * units.fs,
        temperature_K=temperature,
        friction=s.md_friction_per_fs / units.fs,
        rng=rng,
    )
    frames: list[Atoms] = []
    for block in range(s.md_steps // s.md_interval):
        dyn.run(s.md_interval)
        step = (block + 1) * s.md_interval
        note = f"Langevin T={temperature:g}K dt={s.md_timestep_fs}fs friction={s.md_friction_per_fs}/fs step {step}"
        frame = snapshot(atoms, "md", temperature, note, skipped)
        if frame is None:
            skipped["md:stopped_runs"] += 1
            break
        frame.info["md_step"] = step
        frames.append(frame)
    return frames
