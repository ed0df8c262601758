"""What each workflow returns: dataclasses with units in their field docs, a JSON-able
``summary()``, and a ``plot()`` where a person would rather look than read numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, ScalarFormatter
from phonopy import Phonopy

from ..errors import InvalidArgumentError
from ..graph import is_3d_periodic


def _floats(values: Any) -> Any:
    """Numpy arrays and scalars as plain Python lists and floats (for JSON)."""
    return np.asarray(values, dtype=float).tolist() if values is not None else None


#: Å, the tolerance of the space group a summary reports (loose enough for float32 positions)
SPACE_GROUP_SYMPREC = 1e-3


def space_group(atoms: Atoms, symprec: float = SPACE_GROUP_SYMPREC) -> str | None:
    """The space group of a 3D periodic ``atoms`` as spglib finds it at ``symprec`` (Å): international symbol and
    number, e.g. ``"Fd-3m (227)"``; None if spglib finds none."""
    import spglib

    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if data is None:
        return None
    if isinstance(data, dict):  # spglib < 2.5
        return f"{data['international']} ({data['number']})"
    return f"{data.international} ({data.number})"


def _reported_temperatures(t: np.ndarray) -> list[int]:
    """Indices of the temperatures a summary reports: the lowest, the one nearest 300 K and the highest."""
    return sorted({int(np.argmin(np.abs(t - x))) for x in (t.min(), 300.0, t.max())}) if len(t) else []


def _finite_or_none(value: float) -> float | None:
    """``value`` as a Python float, or None where it is NaN or infinite (for JSON)."""
    return float(value) if np.isfinite(value) else None


@dataclass
class RelaxResult:
    """Outcome of :func:`~alignn_ase.workflows.relax`.

    Attributes:
        atoms: the relaxed structure (a copy; the calculator stays attached).
        energy: final potential energy, eV.
        max_force: largest atomic force norm at the end, eV/Å.
        stress: final stress, eV/Å³, Voigt (xx yy zz yz xz xy), ASE sign (positive =
            tensile); None without a 3D periodic cell.
        steps: optimiser steps taken.
        converged: whether the force criterion was reached within ``max_steps``.
        energies: potential energy after every step (index 0 = start), eV.
        pressure_GPa: the external pressure of the cell relaxation, GPa.
        enthalpies: under a non-zero pressure, the enthalpy E + PV after every step (what the
            optimiser minimises), eV; None at zero pressure.
    """

    atoms: Atoms
    energy: float
    max_force: float
    stress: np.ndarray | None
    steps: int
    converged: bool
    energies: np.ndarray
    pressure_GPa: float = 0.0
    enthalpies: np.ndarray | None = None

    @property
    def enthalpy(self) -> float | None:
        """Final enthalpy E + PV under ``pressure_GPa``, eV; None at zero pressure."""
        return None if self.enthalpies is None else float(self.enthalpies[-1])

    def summary(self) -> dict[str, Any]:
        """Scalars and small arrays, with units in the key names (``pressure_GPa``: of the final cell, from its
        stress; ``target_pressure_GPa``: the external pressure the cell was relaxed to)."""
        cell = self.atoms.cell
        return {
            "formula": self.atoms.get_chemical_formula(),
            "converged": self.converged,
            "steps": self.steps,
            "energy_eV": self.energy,
            "target_pressure_GPa": self.pressure_GPa,
            "pressure_GPa": _finite_or_none(-np.mean(self.stress[:3]) / units.GPa) if self.stress is not None else None,
            "enthalpy_eV": self.enthalpy,
            "max_force_eV_per_A": self.max_force,
            "stress_eV_per_A3": _floats(self.stress),
            "cell_lengths_A": _floats(cell.lengths()) if self.atoms.pbc.any() else None,
            "cell_angles_deg": _floats(cell.angles()) if self.atoms.pbc.any() else None,
            "volume_A3": float(self.atoms.get_volume()) if is_3d_periodic(self.atoms) else None,
            "space_group": space_group(self.atoms) if is_3d_periodic(self.atoms) else None,
        }

    def plot(self, path: str | Path) -> Path:
        """Energy per atom (the enthalpy E + PV under pressure) vs optimiser step, written as a PNG to ``path``."""
        fig = Figure(figsize=(4.5, 3.2), layout="tight")
        ax = fig.subplots()
        under_pressure = self.enthalpies is not None
        ax.plot((self.enthalpies if under_pressure else self.energies) / len(self.atoms), marker=".")
        ax.set(
            xlabel="optimiser step",
            ylabel=f"{'enthalpy' if under_pressure else 'energy'} (eV/atom)",
            title=f"relaxation of {self.atoms.get_chemical_formula()}"
            + (f" at {self.pressure_GPa:g} GPa" if under_pressure else ""),
        )
        fig.savefig(path, dpi=120)
        return Path(path)


@dataclass
class MDResult:
    """Outcome of :func:`~alignn_ase.workflows.run_md`: the final frame and the logged
    quantities, one entry per logged step.

    Attributes:
        atoms: the final frame (positions, momenta, cell; calculator attached).
        ensemble: the ensemble name.
        steps: MD steps taken.
        time_fs: simulation time of each logged step, fs.
        potential_energy: eV.
        kinetic_energy: eV.
        total_energy: potential + kinetic, eV.
        temperature_K: instantaneous temperature, K.
        pressure_GPa: instantaneous pressure including the kinetic (ideal-gas) part, GPa;
            NaN without a 3D periodic cell or a calculator stress.
        volume_A3: cell volume, Å³; NaN without a 3D periodic cell.
        csv_path: the CSV log, or None when no output folder was given.
        trajectory_path: the ASE trajectory, or None.
    """

    atoms: Atoms
    ensemble: str
    steps: int
    time_fs: np.ndarray
    potential_energy: np.ndarray
    kinetic_energy: np.ndarray
    total_energy: np.ndarray
    temperature_K: np.ndarray
    pressure_GPa: np.ndarray
    volume_A3: np.ndarray
    csv_path: Path | None = None
    trajectory_path: Path | None = None

    def energy_drift(self) -> dict[str, float]:
        """Drift of the total energy, for NVE runs (thermostats and barostats exchange energy by design).

        Returns the least-squares slope of the logged total energy per atom against time (eV/atom/ps), its
        standard error (treating the logged points as independent, so a lower bound when the fluctuations are
        correlated) and the energy's standard deviation about the line (eV/atom). Over a short run the
        difference of the last and first points is dominated by that fluctuation; the slope is not.
        """
        if self.ensemble != "nve":
            raise InvalidArgumentError(f"an energy drift is defined for NVE runs, not {self.ensemble!r}")
        if len(self.time_fs) < 3:
            raise InvalidArgumentError("an energy drift needs at least 3 logged steps")
        time_ps = self.time_fs / 1000.0
        energy = self.total_energy / len(self.atoms)
        slope, intercept = np.polyfit(time_ps, energy, 1)
        residual = energy - (slope * time_ps + intercept)
        spread = np.sum((time_ps - time_ps.mean()) ** 2)
        stderr = np.sqrt(np.sum(residual**2) / (len(time_ps) - 2) / spread)
        return {"drift_eV_per_atom_per_ps": float(slope), "drift_stderr_eV_per_atom_per_ps": float(stderr),
                "fluctuation_eV_per_atom": float(residual.std())}

    def summary(self) -> dict[str, Any]:
        """Averages over the second half of the run, the NVE energy drift (:meth:`energy_drift`; None for other
        ensembles or fewer than 3 logged steps) and the file paths."""
        half = slice(len(self.time_fs) // 2, None)
        try:
            drift = self.energy_drift()
        except InvalidArgumentError:  # not NVE, or too short a run
            drift = {}
        return {
            "formula": self.atoms.get_chemical_formula(),
            "ensemble": self.ensemble,
            "steps": self.steps,
            "time_fs": float(self.time_fs[-1]),
            "mean_temperature_K_second_half": float(np.mean(self.temperature_K[half])),
            # None without a 3D cell (JSON has no NaN)
            "mean_pressure_GPa_second_half": _finite_or_none(np.mean(self.pressure_GPa[half])),
            "mean_volume_A3_second_half": _finite_or_none(np.mean(self.volume_A3[half])),
            "nve_energy_drift_eV_per_atom_per_ps": drift.get("drift_eV_per_atom_per_ps"),
            "nve_energy_drift_stderr_eV_per_atom_per_ps": drift.get("drift_stderr_eV_per_atom_per_ps"),
            "csv": str(self.csv_path) if self.csv_path else None,
            "trajectory": str(self.trajectory_path) if self.trajectory_path else None,
        }

    def plot(self, path: str | Path) -> Path:
        """Energies (per atom) and temperature vs time, written as a PNG to ``path``."""
        n = len(self.atoms)
        fig = Figure(figsize=(9, 3.2), layout="tight")
        ax_e, ax_t = fig.subplots(1, 2)
        ax_e.plot(self.time_fs, self.total_energy / n, label="total")
        ax_e.plot(self.time_fs, self.potential_energy / n, label="potential")
        ax_e.set(
            xlabel="time (fs)", ylabel="energy (eV/atom)", title=f"{self.ensemble}, {self.atoms.get_chemical_formula()}"
        )
        ax_e.legend()
        ax_t.plot(self.time_fs, self.temperature_K)
        ax_t.set(xlabel="time (fs)", ylabel="temperature (K)")
        fig.savefig(path, dpi=120)
        return Path(path)


@dataclass
class PhononResult:
    """Outcome of :func:`~alignn_ase.workflows.phonons`.

    Attributes:
        phonopy: the ``Phonopy`` object with force constants, band structure, mesh,
            total DOS and thermal properties computed (phonopy's units: THz, kJ/mol, J/K/mol).
        gamma_frequencies: all frequencies at Γ, ascending, THz (negative = imaginary).
        acoustic_ok: whether the three acoustic frequencies at Γ satisfy |ω| < ``acoustic_tolerance`` before
            the force constants are symmetrised (a check of the forces: symmetrisation imposes the sum rule).
        acoustic_tolerance: THz.
        imaginary_modes: ``(frequency THz, q-point in reduced coordinates)`` of the lowest
            mode at every band-path or mesh q-point away from Γ, and of the lowest optical mode
            at Γ (the acoustic ones are judged by ``acoustic_ok``), whose frequency is below
            ``-acoustic_tolerance``, most negative first.
        temperatures: K.
        free_energy: Helmholtz vibrational free energy, kJ per mole of primitive cells (phonopy's unit).
        entropy: J/K per mole of primitive cells.
        heat_capacity: constant-volume heat capacity, J/K per mole of primitive cells (divide by
            ``atoms_per_cell`` for J/K per mole of atoms: Dulong-Petit is 3R = 24.9 J/K/mol of atoms).
        atoms_per_cell: atoms in phonopy's primitive cell, the cell the thermal properties are per mole of.
        files: name -> path of every file written (empty without an output folder).
    """

    phonopy: Phonopy
    gamma_frequencies: np.ndarray
    acoustic_ok: bool
    acoustic_tolerance: float
    imaginary_modes: list[tuple[float, tuple[float, float, float]]]
    temperatures: np.ndarray
    free_energy: np.ndarray
    entropy: np.ndarray
    heat_capacity: np.ndarray
    atoms_per_cell: int
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def stable(self) -> bool:
        """No imaginary modes (see ``imaginary_modes``) and acoustic frequencies at Γ within tolerance."""
        return self.acoustic_ok and not self.imaginary_modes

    def summary(self) -> dict[str, Any]:
        """Γ frequencies, the worst imaginary modes, thermal properties at the lowest, ~300 K and the
        highest temperature, files."""
        t = self.temperatures
        picks = _reported_temperatures(t)
        return {
            "supercell_matrix": self.phonopy.supercell_matrix.tolist(),
            "gamma_frequencies_THz": _floats(self.gamma_frequencies),
            "acoustic_ok": self.acoustic_ok,
            "imaginary_modes": [{"frequency_THz": f, "q": list(q)} for f, q in self.imaginary_modes[:10]],
            "n_imaginary_qpoints": len(self.imaginary_modes),
            "atoms_per_primitive_cell": self.atoms_per_cell,
            "non_analytic_correction": self.phonopy.nac_params is not None,
            "thermal": {
                f"{t[i]:g} K": {
                    "free_energy_kJ_per_mol_cells": float(self.free_energy[i]),
                    "entropy_J_per_K_per_mol_cells": float(self.entropy[i]),
                    "heat_capacity_J_per_K_per_mol_cells": float(self.heat_capacity[i]),
                    "heat_capacity_J_per_K_per_mol_atoms": float(self.heat_capacity[i]) / self.atoms_per_cell,
                }
                for i in picks
            },
            "files": {k: str(v) for k, v in self.files.items()},
        }


@dataclass
class EOSResult:
    """Outcome of :func:`~alignn_ase.workflows.eos` (ASE's ``EquationOfState`` fit).

    Attributes:
        v0: equilibrium volume, Å³ (of the cell passed in).
        e0: energy at ``v0``, eV.
        b0: bulk modulus at ``v0``, GPa.
        volumes: sampled volumes, Å³.
        energies: energies at ``volumes``, eV.
        eos_name: the ASE EOS form fitted (e.g. ``"birchmurnaghan"``).
        files: name -> path of every file written (empty without an output folder).
    """

    v0: float
    e0: float
    b0: float
    volumes: np.ndarray
    energies: np.ndarray
    eos_name: str
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "eos": self.eos_name,
            "v0_A3": self.v0,
            "e0_eV": self.e0,
            "b0_GPa": self.b0,
            "volumes_A3": _floats(self.volumes),
            "energies_eV": _floats(self.energies),
            "files": {k: str(v) for k, v in self.files.items()},
        }


@dataclass
class ElasticResult:
    """Outcome of :func:`~alignn_ase.workflows.elastic`. Every modulus in GPa.

    Attributes:
        c: the 6x6 stiffness tensor C_ij = dσ_i/dε_j, Voigt order xx yy zz yz xz xy with engineering shear
            strains, symmetrised ((C + Cᵀ) / 2).
        asymmetry_GPa: the largest |C_ij - C_ji| before symmetrising: finite-difference and relaxation noise,
            or a strain too large.
        eigenvalues: of the tensor in Mandel form (shear rows and columns times √2, so that they do not depend
            on the crystal's orientation); all positive is Born's stability criterion.
        bulk_voigt, bulk_reuss, bulk_hill, shear_voigt, shear_reuss, shear_hill: the Voigt (uniform strain) and
            Reuss (uniform stress) bounds of a polycrystal's moduli and their Hill average.
        youngs_modulus: 9 K G / (3 K + G) of the Hill moduli.
        poisson_ratio: (3 K - 2 G) / (2 (3 K + G)) of the Hill moduli (dimensionless).
        strain: the strain magnitude used.
        relax_ions: whether the ions were relaxed in each strained cell (relaxed-ion constants).
        ions_converged: every strained cell's ions relaxed to ``fmax`` (True when not relaxed).
        residual_stress_GPa: the stress of the unstrained structure (Voigt, ASE sign).
        files: name -> path of every file written.
    """

    c: np.ndarray
    asymmetry_GPa: float
    eigenvalues: np.ndarray
    bulk_voigt: float
    bulk_reuss: float
    bulk_hill: float
    shear_voigt: float
    shear_reuss: float
    shear_hill: float
    youngs_modulus: float
    poisson_ratio: float
    strain: float
    relax_ions: bool
    ions_converged: bool
    residual_stress_GPa: np.ndarray
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def born_stable(self) -> bool:
        """Mechanically stable: every eigenvalue of the stiffness tensor positive."""
        return bool(np.all(self.eigenvalues > 0))

    @classmethod
    def from_tensor(cls, c: np.ndarray, **fields: Any) -> ElasticResult:
        """The result for a measured (unsymmetrised) tensor ``c`` (GPa), with its moduli."""
        sym = 0.5 * (c + c.T)
        kv = (np.trace(sym[:3, :3]) + 2 * (sym[0, 1] + sym[1, 2] + sym[0, 2])) / 9
        gv = (np.trace(sym[:3, :3]) - (sym[0, 1] + sym[1, 2] + sym[0, 2]) + 3 * np.trace(sym[3:, 3:])) / 15
        mandel = np.array([1, 1, 1, np.sqrt(2), np.sqrt(2), np.sqrt(2)])
        eigenvalues = np.linalg.eigvalsh(sym * np.outer(mandel, mandel))
        if np.all(eigenvalues > 0):
            s = np.linalg.inv(sym)
            kr = 1 / (np.trace(s[:3, :3]) + 2 * (s[0, 1] + s[1, 2] + s[0, 2]))
            gr = 15 / (4 * np.trace(s[:3, :3]) - 4 * (s[0, 1] + s[1, 2] + s[0, 2]) + 3 * np.trace(s[3:, 3:]))
        else:  # the Reuss bound needs a positive-definite tensor
            kr = gr = float("nan")
        kh, gh = (kv + kr) / 2, (gv + gr) / 2
        return cls(
            c=sym, asymmetry_GPa=float(np.abs(c - c.T).max()), eigenvalues=eigenvalues,
            bulk_voigt=float(kv), bulk_reuss=float(kr), bulk_hill=float(kh),
            shear_voigt=float(gv), shear_reuss=float(gr), shear_hill=float(gh),
            youngs_modulus=float(9 * kh * gh / (3 * kh + gh)),
            poisson_ratio=float((3 * kh - 2 * gh) / (2 * (3 * kh + gh))),
            **fields,
        )

    def summary(self) -> dict[str, Any]:
        """The tensor and moduli (GPa), JSON-ready (NaN, e.g. a Reuss bound of an unstable tensor, as None)."""
        return {
            "C_GPa": [[_finite_or_none(v) for v in row] for row in self.c],
            "voigt_order": "xx yy zz yz xz xy (engineering shear strain)",
            "asymmetry_GPa": self.asymmetry_GPa,
            "eigenvalues_GPa": _floats(self.eigenvalues),
            "born_stable": self.born_stable,
            "bulk_modulus_GPa": {"voigt": self.bulk_voigt, "reuss": _finite_or_none(self.bulk_reuss),
                                 "hill": _finite_or_none(self.bulk_hill)},
            "shear_modulus_GPa": {"voigt": self.shear_voigt, "reuss": _finite_or_none(self.shear_reuss),
                                  "hill": _finite_or_none(self.shear_hill)},
            "youngs_modulus_GPa": _finite_or_none(self.youngs_modulus),
            "poisson_ratio": _finite_or_none(self.poisson_ratio),
            "strain": self.strain,
            "relax_ions": self.relax_ions,
            "ions_converged": self.ions_converged,
            "residual_stress_GPa": _floats(self.residual_stress_GPa),
            "files": {k: str(v) for k, v in self.files.items()},
        }


@dataclass
class QHAResult:
    """Outcome of :func:`~alignn_ase.workflows.qha` (phonopy's ``PhonopyQHA``), per temperature at ``pressure_GPa``.

    Attributes:
        temperatures: K.
        volume: equilibrium volume, Å³/atom.
        thermal_expansion: volumetric thermal expansion coefficient (1/V) dV/dT, 1/K (a third of it is the
            linear coefficient of a cubic crystal).
        bulk_modulus: isothermal bulk modulus at the equilibrium volume, GPa.
        heat_capacity_p: heat capacity at constant pressure, J/K per mole of atoms (Dulong-Petit: 3R = 24.9).
        gibbs_energy: Gibbs energy E + F_vib + PV at the equilibrium volume, eV/atom.
        gruneisen: average Grüneisen parameter α B V / C_V (dimensionless; NaN at 0 K, where it is 0/0).
        volumes: the sampled volumes, Å³/atom.
        energies: the potential energy of each sampled volume (ions relaxed), eV/atom.
        free_energies: vibrational Helmholtz energy of each sampled volume (rows) at each of the input
            temperatures (columns), eV/atom.
        pressure_GPa: the external pressure, GPa.
        eos_name: phonopy's EOS form fitted at each temperature.
        phonopy_qha: the ``PhonopyQHA`` object (per primitive cell, phonopy's units).
        files: name -> path of every file written (empty without an output folder).
    """

    temperatures: np.ndarray
    volume: np.ndarray
    thermal_expansion: np.ndarray
    bulk_modulus: np.ndarray
    heat_capacity_p: np.ndarray
    gibbs_energy: np.ndarray
    gruneisen: np.ndarray
    volumes: np.ndarray
    energies: np.ndarray
    free_energies: np.ndarray
    pressure_GPa: float
    eos_name: str
    phonopy_qha: Any = None
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The results at the lowest temperature, the one nearest 300 K and the highest, and the files."""
        t = self.temperatures
        picks = _reported_temperatures(t)
        return {
            "eos": self.eos_name,
            "pressure_GPa": self.pressure_GPa,
            "volumes_A3_per_atom": _floats(self.volumes),
            "at": {
                f"{t[i]:g} K": {
                    "volume_A3_per_atom": float(self.volume[i]),
                    "thermal_expansion_per_K": float(self.thermal_expansion[i]),
                    "bulk_modulus_GPa": float(self.bulk_modulus[i]),
                    "heat_capacity_p_J_per_K_per_mol_atoms": float(self.heat_capacity_p[i]),
                    "gibbs_energy_eV_per_atom": float(self.gibbs_energy[i]),
                    "gruneisen": _finite_or_none(self.gruneisen[i]),
                }
                for i in picks
            },
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def plot(self, path: str | Path) -> Path:
        """Volume, thermal expansion, bulk modulus and heat capacity against temperature, as a PNG at ``path``."""
        fig = Figure(figsize=(8, 6), layout="tight")
        axes = fig.subplots(2, 2, sharex=True)
        t = self.temperatures
        panels = (
            (self.volume, "volume (Å³/atom)"),
            (self.thermal_expansion * 1e6, "volumetric expansion (10⁻⁶/K)"),
            (self.bulk_modulus, "bulk modulus (GPa)"),
            (self.heat_capacity_p, "C_P (J/K/mol atoms)"),
        )
        for ax, (values, label) in zip(axes.ravel(), panels):
            ax.plot(t, values)
            ax.set_ylabel(label)
        for ax in axes[1]:
            ax.set_xlabel("temperature (K)")
        fig.suptitle(f"quasi-harmonic, {self.pressure_GPa:g} GPa ({self.eos_name})", fontsize=10)
        fig.savefig(path, dpi=120)
        return Path(path)


@dataclass
class ConductivityResult:
    """Outcome of :func:`~alignn_ase.workflows.thermal_conductivity` (phono3py), per temperature.

    Attributes:
        temperatures: K.
        kappa: (temperatures, 6) lattice thermal conductivity tensor, W/(m K), phono3py's order xx yy zz yz xz xy.
        method: ``"rta"`` (relaxation-time approximation) or ``"lbte"`` (linearised Boltzmann equation solved).
        isotope: whether isotope scattering was included.
        mesh: the q-point mesh.
        n_supercells: structures evaluated (the displaced supercells and the undisplaced ones).
        imaginary_modes: phonon modes below -0.05 THz on the mesh (Γ's acoustic modes aside), which phono3py
            leaves out: the result is then not that of a stable crystal.
        lowest_frequency: the lowest such frequency, THz.
        non_analytic_correction: whether Born charges corrected the harmonic phonons (LO-TO splitting).
        phono3py: the ``Phono3py`` object (force constants, the conductivity calculator with mode-resolved data).
        files: name -> path of every file written (empty without an output folder).
    """

    temperatures: np.ndarray
    kappa: np.ndarray
    method: str
    isotope: bool
    mesh: tuple[int, int, int]
    n_supercells: int
    imaginary_modes: int
    lowest_frequency: float
    non_analytic_correction: bool = False
    phono3py: Any = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def kappa_mean(self) -> np.ndarray:
        """(temperatures,) a third of the tensor's trace, W/(m K): a polycrystal's or cubic crystal's value."""
        return self.kappa[:, :3].mean(axis=1)

    def summary(self) -> dict[str, Any]:
        """The tensor and its mean at the lowest temperature, the one nearest 300 K and the highest, and the files."""
        t = self.temperatures
        return {
            "method": self.method,
            "isotope_scattering": self.isotope,
            "mesh": list(self.mesh),
            "supercells_evaluated": self.n_supercells,
            "imaginary_modes": self.imaginary_modes,
            "lowest_frequency_THz": self.lowest_frequency,
            "non_analytic_correction": self.non_analytic_correction,
            "at": {
                f"{t[i]:g} K": {"kappa_W_per_mK": _floats(self.kappa[i]),
                                 "kappa_mean_W_per_mK": float(self.kappa_mean[i])}
                for i in _reported_temperatures(t)
            },
            "voigt_order": "xx yy zz yz xz xy",
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def plot(self, path: str | Path) -> Path:
        """The diagonal components and the mean against temperature, log-log, as a PNG at ``path``."""
        fig = Figure(figsize=(5, 3.8), layout="tight")
        ax = fig.subplots()
        t = self.temperatures
        for k, name in enumerate(("xx", "yy", "zz")):
            ax.plot(t, self.kappa[:, k], lw=1, alpha=0.6, label=f"κ_{name}")
        ax.plot(t, self.kappa_mean, "k-", lw=2, label="mean")
        if len(t) > 1:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # labels at 200 and 500 K, not 2 x 10^2
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel("temperature (K)")
        ax.set_ylabel("κ (W/(m K))")
        ax.set_title(f"{self.method.upper()}, mesh {'x'.join(map(str, self.mesh))}"
                     + (", isotopes" if self.isotope else ""), fontsize=9)
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=120)
        return Path(path)


@dataclass
class NEBResult:
    """Outcome of :func:`~alignn_ase.workflows.neb`: the band after the optimisation.

    Attributes:
        images: the band, end points included, each with its energy (eV) and forces (eV/Å) in a single-point
            calculator.
        energies: each image's energy relative to the initial end point, eV.
        reaction_coordinate: the cumulative distance along the band at each image, Å (ASE's ``fit_images``).
        profile: the smooth energy profile between the images that ASE fits to their energies and the forces
            along the band: (coordinate Å, energy eV relative to the initial end point).
        barrier_forward: the highest image's energy above the initial end point, eV (with ``climb``, the saddle
            point's).
        barrier_reverse: the same above the final end point, eV.
        climb: whether the highest image climbed.
        converged: whether the band's forces fell below ``fmax``.
        steps: optimiser steps taken.
        band_evaluations: batched evaluations of the interior images (one per optimiser step, and one more).
        files: name -> path of every file written (empty without an output folder).
    """

    images: list[Atoms]
    energies: np.ndarray
    reaction_coordinate: np.ndarray
    profile: tuple[np.ndarray, np.ndarray]
    barrier_forward: float
    barrier_reverse: float
    climb: bool
    converged: bool
    steps: int
    band_evaluations: int
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "barrier_forward_eV": self.barrier_forward,
            "barrier_reverse_eV": self.barrier_reverse,
            "reaction_energy_eV": float(self.energies[-1]),
            "energies_eV": _floats(self.energies),
            "reaction_coordinate_A": _floats(self.reaction_coordinate),
            "climbing_image": self.climb,
            "converged": self.converged,
            "steps": self.steps,
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def plot(self, path: str | Path) -> Path:
        """The energy profile along the band (eV against Å), written as a PNG to ``path``."""
        fig = Figure(figsize=(4.5, 3.2), layout="tight")
        ax = fig.subplots()
        ax.plot(*self.profile, color="C0")
        ax.plot(self.reaction_coordinate, self.energies, "o", color="C0")
        ax.set(xlabel="reaction coordinate (Å)", ylabel="energy (eV)",
               title=f"barrier {self.barrier_forward:.3f} eV" + (" (climbing image)" if self.climb else ""))
        fig.savefig(path, dpi=120)
        return Path(path)
