"""Molecular dynamics on ASE's integrators, with a CSV log, a progress bar and a watchdog."""

from __future__ import annotations

import csv
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import BaseCalculator
from ase.io.trajectory import Trajectory
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.nose_hoover_chain import MTKNPT, IsotropicMTKNPT, NoseHooverChainNVT
from ase.md.nptberendsen import NPTBerendsen
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm

from ..errors import InvalidArgumentError, InvalidStructureError, is_whole
from ..graph import is_3d_periodic
from .calc import check_numbers, check_structure, get_calculator, new_file, output_folder
from .results import MDResult
from .watchdog import Watchdog

logger = logging.getLogger(__name__)

#: ensemble name -> what it runs (ASE class).
ENSEMBLES = {
    "nve": "velocity Verlet (VelocityVerlet)",
    "nvt_langevin": "Langevin thermostat (Langevin)",
    "nvt_nose_hoover": "Nose-Hoover chain thermostat (NoseHooverChainNVT)",
    "nvt_bussi": "Bussi stochastic velocity rescaling (Bussi)",
    "npt_mtk": "MTK barostat, isotropic volume fluctuations + Nose-Hoover chain (IsotropicMTKNPT)",
    "npt_mtk_full": "MTK barostat, full cell fluctuations + Nose-Hoover chain (MTKNPT)",
    "npt_berendsen": "Berendsen thermostat and isotropic barostat (NPTBerendsen)",
}


class LogRow(NamedTuple):
    """One logged MD step: a line of ``md.csv``, whose header is these field names."""

    step: int
    time_fs: float
    potential_energy_eV: float
    kinetic_energy_eV: float
    total_energy_eV: float
    temperature_K: float
    pressure_GPa: float
    volume_A3: float



def run_md(
    atoms: Atoms,
    ensemble: str = "nvt_langevin",
    temperature_K: float = 300.0,
    steps: int = 1000,
    timestep_fs: float = 1.0,
    pressure_GPa: float = 0.0,
    friction_per_fs: float = 0.01,
    tdamp_fs: float | None = None,
    pdamp_fs: float | None = None,
    bulk_modulus_GPa: float = 100.0,
    trajectory: str | Path | None = None,
    log_interval: int = 10,
    seed: int | None = 0,
    init_velocities: bool = True,
    output_dir: str | Path | None = "md_output",
    calculator: BaseCalculator | None = None,
    min_distance: float = 0.5,
    max_temperature_K: float | None = None,
    progress: bool = True,
) -> MDResult:
    """Run ``steps`` MD steps of ``ensemble`` (see :data:`ENSEMBLES`) on a copy of ``atoms``.

    Args:
        atoms: starting structure (not modified). Its momenta are used when
            ``init_velocities`` is False.
        ensemble: one of :data:`ENSEMBLES`.
        temperature_K: target temperature (thermostats) and the Maxwell-Boltzmann
            temperature of the initial velocities, K; > 0 for the Nose-Hoover and MTK
            ensembles, whose thermostat masses are set by it (Bussi and Berendsen need
            non-zero starting velocities instead). ASE's thermostats (Langevin aside) and
            temperatures count 3N degrees of freedom, but the total momentum is zeroed and then
            conserved, so the N atoms' vibrations run at about T N / (N - 1): 14 % hotter for 8
            atoms, under 2 % from 64 atoms.
        steps: number of MD steps.
        timestep_fs: time step, fs.
        pressure_GPa: target pressure of the NPT ensembles, GPa.
        friction_per_fs: Langevin friction, 1/fs.
        tdamp_fs: thermostat time constant (Nose-Hoover, Bussi, MTK, Berendsen), fs;
            default 100 time steps.
        pdamp_fs: barostat time constant (MTK, Berendsen), fs; default 1000 time steps.
        bulk_modulus_GPa: estimate of the bulk modulus, GPa; Berendsen's barostat
            scales its volume steps by its inverse (the compressibility).
        trajectory: ASE trajectory file name (inside ``output_dir`` unless absolute), written
            every ``log_interval`` steps and after the last; None for none.
        log_interval: log (CSV row, result arrays, trajectory frame) every this many steps,
            and after the last step.
        seed: seeds the initial velocities and the stochastic thermostats (None: a fresh random seed).
        init_velocities: draw Maxwell-Boltzmann velocities at ``temperature_K`` and zero
            the total momentum; False keeps the momenta ``atoms`` has (e.g. to continue a run).
        output_dir: folder for ``md.csv``, the trajectory and, if the watchdog fires,
            ``md_last_good.extxyz``; None writes no files.
        calculator: ASE calculator; default the one attached to ``atoms``, else ``ALIGNNCalculator()``.
        min_distance: the watchdog stops the run when two atoms come closer than this, Å.
        max_temperature_K: the watchdog stops the run above this temperature, K;
            default ``10 * temperature_K + 1000``.
        progress: show a tqdm progress bar.

    Raises:
        SimulationError: the watchdog fired (NaN energies or forces, atoms too close,
            runaway temperature, or a structure the calculator rejects); the message names
            the file holding the last good frame.

    Returns an :class:`~alignn_ase.workflows.results.MDResult`: the final structure and the
    logged steps (time fs, energies eV, temperature K, pressure GPa, volume Å³).
    """
    check_structure(atoms)
    if ensemble not in ENSEMBLES:
        raise InvalidArgumentError(f"unknown ensemble {ensemble!r}; use one of {list(ENSEMBLES)}")
    optional = {"tdamp_fs": tdamp_fs, "pdamp_fs": pdamp_fs, "max_temperature_K": max_temperature_K}
    check_numbers(temperature_K=temperature_K, timestep_fs=timestep_fs, pressure_GPa=pressure_GPa,
                  friction_per_fs=friction_per_fs, bulk_modulus_GPa=bulk_modulus_GPa, min_distance=min_distance,
                  **{name: value for name, value in optional.items() if value is not None})
    if (not (0 < timestep_fs < np.inf) or not (0 <= temperature_K < np.inf) or not is_whole(steps, 0)
            or not is_whole(log_interval, 1)):
        raise InvalidArgumentError(
            f"need a finite timestep_fs > 0, whole steps >= 0 and log_interval >= 1, a finite temperature_K >= 0 "
            f"(got {timestep_fs}, {steps}, {log_interval}, {temperature_K})"
        )
    bad = [f"{k}={v}" for k, v in _bad_parameters(ensemble, friction_per_fs, tdamp_fs, pdamp_fs,
                                                         bulk_modulus_GPa, pressure_GPa).items()]
    if seed is not None and not is_whole(seed, 0):
        bad.append(f"seed={seed!r}")
    if bad:
        raise InvalidArgumentError(
            f"{ensemble}: bad {', '.join(bad)} (needs friction_per_fs >= 0, tdamp_fs, pdamp_fs and bulk_modulus_GPa "
            "> 0, a finite pressure_GPa, and a seed that is None or an integer >= 0)"
        )
    if temperature_K <= 0 and ensemble in ("nvt_nose_hoover", "npt_mtk", "npt_mtk_full"):
        raise InvalidArgumentError(
            f"{ensemble} needs temperature_K > 0 (its thermostat's mass is set by the target temperature); at 0 K "
            "use nve, nvt_langevin or npt_berendsen (with momenta to start from), or relax() to find a minimum"
        )
    if len(atoms) < 2:
        raise InvalidArgumentError(
            "MD needs at least 2 atoms: a single atom moves rigidly with its periodic images and has no "
            "vibrations; repeat the cell first (atoms.repeat(3), or --repeat 3 3 3 on the command line)"
        )
    calc = get_calculator(atoms, calculator)
    atoms = atoms.copy()
    atoms.calc = calc
    periodic_3d = is_3d_periodic(atoms)
    if ensemble.startswith("npt") and not periodic_3d:
        raise InvalidArgumentError(f"ensemble {ensemble!r} needs a 3D periodic cell")
    rng = np.random.default_rng(seed)
    if init_velocities:
        thermalize_momenta(atoms, temperature_K, rng=rng)
        Stationary(atoms)
    dt = timestep_fs * units.fs
    dyn = _integrator(
        ensemble,
        atoms,
        dt,
        temperature_K,
        pressure_GPa * units.GPa,
        friction_per_fs / units.fs,
        (tdamp_fs if tdamp_fs is not None else 100 * timestep_fs) * units.fs,
        (pdamp_fs if pdamp_fs is not None else 1000 * timestep_fs) * units.fs,
        1.0 / (bulk_modulus_GPa * units.GPa),
        rng,
    )
    out = output_folder(output_dir)
    watchdog = Watchdog(
        min_distance,
        max_temperature_K if max_temperature_K is not None else 10 * temperature_K + 1000,
        out / "md_last_good.extxyz" if out is not None else None,
    )
    with_stress = periodic_3d and "stress" in calc.implemented_properties
    rows: list[LogRow] = []
    csv_path = out / "md.csv" if out is not None else None
    traj_path = None if trajectory is None else new_file(out / trajectory if out is not None else trajectory)
    with ExitStack() as stack:
        writer = None
        if csv_path is not None:
            handle = stack.enter_context(open(csv_path, "w", newline=""))
            writer = csv.writer(handle)
            writer.writerow(LogRow._fields)
        bar = stack.enter_context(tqdm(total=steps, desc=f"MD {ensemble}", unit="step", disable=not progress))

        def log() -> None:
            row = _log_row(dyn, atoms, with_stress)
            rows.append(row)
            if writer is not None:
                writer.writerow([f"{v:.10g}" for v in row])
                handle.flush()
            bar.set_postfix(T=f"{row.temperature_K:.0f} K", E_tot=f"{row.total_energy_eV:.4f} eV")

        dyn.attach(lambda: watchdog.check(atoms, dyn.nsteps), interval=1)
        dyn.attach(log, interval=log_interval)
        traj = None if traj_path is None else stack.enter_context(Trajectory(str(traj_path), "w", atoms))
        if traj is not None:
            dyn.attach(traj, interval=log_interval)
        dyn.attach(lambda: bar.update(1) if dyn.nsteps else None, interval=1)
        try:
            dyn.run(steps)
        except InvalidStructureError as exc:
            # the step that failed: the force call at step 0 comes from dyn.run itself, later ones from step n + 1
            watchdog.stop(f"the calculator rejected the structure ({exc})", dyn.nsteps + 1 if rows else 0)
        if dyn.nsteps % log_interval:  # the last step is always logged
            log()
            if traj is not None:
                traj.write()
    log_data = LogRow(*np.array(rows, dtype=float).T)
    result = MDResult(
        atoms=atoms,
        ensemble=ensemble,
        steps=int(dyn.nsteps),
        time_fs=log_data.time_fs,
        potential_energy=log_data.potential_energy_eV,
        kinetic_energy=log_data.kinetic_energy_eV,
        total_energy=log_data.total_energy_eV,
        temperature_K=log_data.temperature_K,
        pressure_GPa=log_data.pressure_GPa,
        volume_A3=log_data.volume_A3,
        csv_path=csv_path,
        trajectory_path=traj_path,
    )
    logger.info("MD %s: %d steps, %s", ensemble, result.steps, result.summary())
    return result


def _bad_parameters(
    ensemble: str, friction: float, tdamp: float | None, pdamp: float | None, bulk_modulus: float, pressure: float
) -> dict[str, float]:
    """The parameters ``ensemble`` uses whose values it cannot take (None: the default time constant)."""
    bad: dict[str, float] = {}
    if ensemble == "nvt_langevin" and not (np.isfinite(friction) and friction >= 0):
        bad["friction_per_fs"] = friction
    if ensemble not in ("nve", "nvt_langevin") and tdamp is not None and not (np.isfinite(tdamp) and tdamp > 0):
        bad["tdamp_fs"] = tdamp
    if ensemble.startswith("npt"):
        if pdamp is not None and not (np.isfinite(pdamp) and pdamp > 0):
            bad["pdamp_fs"] = pdamp
        if not np.isfinite(pressure):
            bad["pressure_GPa"] = pressure
        if ensemble == "npt_berendsen" and not (np.isfinite(bulk_modulus) and bulk_modulus > 0):
            bad["bulk_modulus_GPa"] = bulk_modulus
    return bad


def _integrator(
    ensemble: str,
    atoms: Atoms,
    dt: float,
    temperature_K: float,
    pressure_au: float,
    friction: float,
    tdamp: float,
    pdamp: float,
    compressibility_au: float,
    rng: np.random.Generator,
) -> MolecularDynamics:
    """ASE's integrator for ``ensemble``; times and pressures in ASE units."""
    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if ensemble == "nvt_langevin":
        # fixcm=False: ASE's centre-of-mass fixing is deprecated (it biases the sampled distribution);
        # the thermostat then also thermalises the centre of mass, which is correct Langevin dynamics.
        return Langevin(atoms, timestep=dt, temperature_K=temperature_K, friction=friction, fixcm=False, rng=rng)
    if atoms.constraints and ensemble in ("nvt_nose_hoover", "npt_mtk", "npt_mtk_full", "npt_berendsen"):
        # ASE's Nose-Hoover chain ignores constraints (measured: a slab with fixed atoms cooled to 0 K), its MTK
        # barostats refuse them, and Berendsen's scales every position with the cell (fixed atoms moved 0.04 Å)
        raise InvalidArgumentError(
            f"{ensemble} does not support constraints ({', '.join(type(c).__name__ for c in atoms.constraints)}); "
            "use nvt_langevin or nvt_bussi for constrained atoms"
        )
    if ensemble == "nvt_nose_hoover":
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temperature_K, tdamp=tdamp)
    if ensemble in ("nvt_bussi", "npt_berendsen") and atoms.get_kinetic_energy() <= 0:
        # both rescale the velocities by a ratio of temperatures, the current one in the denominator
        raise InvalidArgumentError(
            f"{ensemble} needs non-zero initial velocities (init_velocities and temperature_K > 0, or momenta "
            "on the atoms with init_velocities=False)"
        )
    if ensemble == "nvt_bussi":
        return Bussi(atoms, timestep=dt, temperature_K=temperature_K, taut=tdamp, rng=rng)
    if ensemble in ("npt_mtk", "npt_mtk_full"):
        cls = IsotropicMTKNPT if ensemble == "npt_mtk" else MTKNPT
        return cls(atoms, timestep=dt, temperature_K=temperature_K, pressure_au=pressure_au, tdamp=tdamp, pdamp=pdamp)
    return NPTBerendsen(
        atoms,
        timestep=dt,
        temperature_K=temperature_K,
        pressure_au=pressure_au,
        taut=tdamp,
        taup=pdamp,
        compressibility_au=compressibility_au,
    )


def _log_row(dyn: MolecularDynamics, atoms: Atoms, with_stress: bool) -> LogRow:
    """The current state (eV, K, GPa, Å³, fs); pressure and volume NaN without a 3D cell."""
    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    pressure = volume = np.nan
    if is_3d_periodic(atoms):
        volume = float(atoms.get_volume())
        if with_stress:
            pressure = float(-atoms.get_stress(include_ideal_gas=True)[:3].mean() / units.GPa)
    return LogRow(
        step=int(dyn.nsteps),
        time_fs=dyn.get_time() / units.fs,
        potential_energy_eV=epot,
        kinetic_energy_eV=ekin,
        total_energy_eV=epot + ekin,
        temperature_K=float(atoms.get_temperature()),
        pressure_GPa=pressure,
        volume_A3=volume,
    )
