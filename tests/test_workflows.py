"""Workflows (relax, MD, watchdog, phonons, EOS) on physical calculators: ASE's EMT where the
physics must be right (the shipped default potential is a small, rough distillation), the small
smooth model in float64 for energy conservation, and the default potential where only the
machinery is tested."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import seekpath
from ase import Atoms, units
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.io import read
from ase.phonons import Phonons as AsePhonons

from alignn_ase import (
    ALIGNNCalculator,
    ConvergenceWarning,
    InvalidArgumentError,
    InvalidStructureError,
    SimulationError,
)
from alignn_ase.workflows import (
    MDResult,
    Watchdog,
    calculate_many,
    elastic,
    eos,
    get_calculator,
    neb,
    phonons,
    qha,
    relax,
    run_md,
    supercell_matrix,
)

from .helpers import au_hop_on_al100, calc64, smooth_model

QUIET = {"progress": False}


@pytest.fixture(scope="module")
def emt_cu_a0():
    """EMT copper's lattice constant (Å), from the EOS workflow itself."""
    return float(np.cbrt(eos(bulk("Cu", cubic=True), calculator=EMT(), output_dir=None).v0))


def strained_rattled_cu(a: float = 3.7) -> Atoms:
    atoms = bulk("Cu", cubic=True, a=a)
    atoms.set_cell(
        atoms.cell.array @ np.array([[1.03, 0.01, 0.0], [0.0, 0.98, 0.0], [0.0, 0.0, 1.0]]), scale_atoms=True
    )
    atoms.rattle(0.05, seed=1)
    return atoms


# ------------------------------------------------------------------ relaxation


def test_relax_recovers_lattice_constant(emt_cu_a0):
    start = strained_rattled_cu()
    start.calc = EMT()
    before = start.copy()
    result = relax(start, fmax=0.005, optimizer="LBFGS", **QUIET)
    assert result.converged and result.max_force < 0.005
    assert result.steps > 5 and len(result.energies) == result.steps + 1
    assert result.energy == pytest.approx(result.atoms.get_potential_energy())
    assert abs(3.7 - emt_cu_a0) > 0.1  # the start is far from the answer
    np.testing.assert_allclose(result.atoms.cell.lengths(), emt_cu_a0, atol=0.01)
    assert abs(np.cbrt(result.atoms.get_volume()) - emt_cu_a0) < 0.003
    np.testing.assert_allclose(result.atoms.cell.angles(), 90.0, atol=0.5)
    assert np.abs(result.stress).max() < 2e-3  # eV/Å³
    np.testing.assert_array_equal(start.positions, before.positions)  # the input is untouched
    np.testing.assert_array_equal(start.cell, before.cell)


def test_relax_not_converging_warns_and_reports():
    start = strained_rattled_cu()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = relax(start, fmax=0.001, max_steps=2, calculator=EMT(), **QUIET)
    assert not result.converged and result.steps == 2
    assert result.max_force > 0.001


@pytest.mark.parametrize("optimizer", ["FIRE", "BFGS", "LBFGS"])
def test_relax_slab_positions_only_with_fixed_layers(optimizer):
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=6.0)
    slab.set_constraint(FixAtoms(mask=slab.positions[:, 2] < slab.positions[:, 2].min() + 0.5))
    slab.calc = EMT()
    result = relax(slab, relax_cell=False, fmax=0.01, optimizer=optimizer, **QUIET)
    assert result.converged and result.max_force < 0.01 and result.stress is None
    fixed = slab.constraints[0].index
    np.testing.assert_allclose(result.atoms.positions[fixed], slab.positions[fixed])
    np.testing.assert_allclose(result.atoms.cell, slab.cell)
    top = np.argmax(slab.positions[:, 2])
    assert abs(result.atoms.positions[top, 2] - slab.positions[top, 2]) > 1e-3  # the surface moved
    assert result.energy < slab.get_potential_energy() - 1e-3


def test_relax_cell_needs_a_3d_cell():
    with pytest.raises(InvalidArgumentError, match="3D periodic"):
        relax(fcc111("Pt", size=(1, 1, 3), vacuum=6.0), calculator=EMT(), **QUIET)
    with pytest.raises(InvalidArgumentError, match="needs relax_cell=True"):  # a pressure would be ignored
        relax(bulk("Cu", cubic=True), relax_cell=False, pressure_GPa=5.0, calculator=EMT(), **QUIET)


class NoStress(EMT):
    """EMT without a stress, as many molecular calculators are."""

    implemented_properties = ["energy", "forces"]


def test_relax_with_a_calculator_that_has_no_stress():
    atoms = bulk("Cu", cubic=True, a=3.7)
    atoms.rattle(0.05, seed=2)
    result = relax(atoms, calculator=NoStress(), relax_cell=False, fmax=0.01, **QUIET)
    assert result.converged and result.stress is None
    with pytest.raises(InvalidArgumentError, match="needs a stress"):
        relax(atoms, calculator=NoStress(), **QUIET)


def test_relax_under_pressure_reports_the_enthalpy(emt_cu_a0, tmp_path):
    start = bulk("Cu", cubic=True, a=emt_cu_a0)
    start.calc = EMT()
    result = relax(start, fmax=1e-3, optimizer="BFGS", pressure_GPa=10.0, **QUIET)
    assert result.converged and result.atoms.get_volume() < start.get_volume()  # compressed
    assert result.stress[:3].mean() == pytest.approx(-10.0 * units.GPa, rel=0.01)  # stress = -P
    enthalpy = result.energy + 10.0 * units.GPa * result.atoms.get_volume()
    assert result.enthalpy == pytest.approx(enthalpy, abs=1e-8)
    assert len(result.enthalpies) == len(result.energies)
    assert result.enthalpies[-1] < result.enthalpies[0]  # what the optimiser minimised
    summary = result.summary()
    assert summary["target_pressure_GPa"] == 10.0 and summary["enthalpy_eV"] == pytest.approx(enthalpy, abs=1e-8)
    assert summary["pressure_GPa"] == pytest.approx(10.0, rel=0.01)  # the relaxed cell's, from its stress
    assert relax(start, fmax=0.01, **QUIET).summary()["enthalpy_eV"] is None
    assert result.plot(tmp_path / "relax.png").stat().st_size > 1000
    # the trajectory's and log's folders are made, as the MD's and the figures' are
    relax(start, fmax=0.01, trajectory=tmp_path / "a" / "r.traj", logfile=tmp_path / "b" / "r.log", **QUIET)
    assert len(read(tmp_path / "a" / "r.traj", ":")) >= 1 and "FIRE" in (tmp_path / "b" / "r.log").read_text()


def test_relax_with_default_potential_runs_and_reports(tmp_path):
    atoms = bulk("Si", "diamond", a=5.5)
    atoms.rattle(0.05, seed=0)
    with pytest.warns(ConvergenceWarning):
        result = relax(atoms, fmax=1e-6, max_steps=3, trajectory=tmp_path / "relax.traj", **QUIET)
    assert isinstance(result.atoms.calc, ALIGNNCalculator)
    assert np.isfinite(result.energy) and result.stress.shape == (6,) and result.steps == 3
    assert len(read(tmp_path / "relax.traj", ":")) == 4
    summary = result.summary()
    assert summary["converged"] is False and len(summary["cell_lengths_A"]) == 3
    assert result.plot(tmp_path / "relax.png").stat().st_size > 1000


def test_relax_rejects_unknown_optimizer():
    with pytest.raises(InvalidArgumentError, match="optimizer"):
        relax(bulk("Cu"), optimizer="SD", calculator=EMT())


# ------------------------------------------------------------------ molecular dynamics


def test_nve_conserves_energy_float64_smooth_model():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    result = run_md(
        atoms,
        "nve",
        temperature_K=300,
        steps=100,
        timestep_fs=1.0,
        log_interval=1,
        output_dir=None,
        calculator=calc64(),
        **QUIET,
    )
    n = len(atoms)
    drift = np.ptp(result.total_energy) / n
    swing = np.ptp(result.potential_energy) / n
    assert swing > 5e-3  # energy does flow between potential and kinetic
    assert drift < 1e-4 and drift < 0.01 * swing  # eV/atom
    assert result.steps == 100 and result.time_fs[-1] == pytest.approx(100.0)
    np.testing.assert_allclose(result.kinetic_energy, result.temperature_K * 1.5 * units.kB * n, rtol=1e-10)
    summary = result.summary()
    assert abs(summary["nve_energy_drift_eV_per_atom_per_ps"]) < 1e-3  # eV/atom/ps
    assert 0 < summary["nve_energy_drift_stderr_eV_per_atom_per_ps"] < 1e-3


def test_energy_drift_is_the_fitted_slope_and_nve_only():
    """A total energy rising by 2 meV/atom/ps under a larger oscillation: the slope comes out, last-minus-first
    would not; thermostatted runs report no drift."""
    t = np.linspace(0.0, 1000.0, 201)  # fs
    atoms = bulk("Cu", cubic=True)
    total = len(atoms) * (2e-3 * t / 1000.0 + 5e-3 * np.sin(t / 7.0))
    zero = np.zeros_like(t)
    nve = MDResult(atoms, "nve", 200, t, total, zero, total, zero, zero, zero)
    drift = nve.energy_drift()
    assert drift["drift_eV_per_atom_per_ps"] == pytest.approx(2e-3, abs=5 * drift["drift_stderr_eV_per_atom_per_ps"])
    assert drift["drift_stderr_eV_per_atom_per_ps"] < 1e-3
    assert abs((total[-1] - total[0]) / len(atoms) - 2e-3) > 1e-3  # last minus first over 1 ps: off by the swing
    assert nve.summary()["nve_energy_drift_eV_per_atom_per_ps"] == drift["drift_eV_per_atom_per_ps"]
    nvt = MDResult(atoms, "nvt_langevin", 200, t, total, zero, total, zero, zero, zero)
    assert nvt.summary()["nve_energy_drift_eV_per_atom_per_ps"] is None
    with pytest.raises(InvalidArgumentError, match="NVE"):
        nvt.energy_drift()


@pytest.mark.parametrize("ensemble", ["nvt_langevin", "nvt_bussi", "nvt_nose_hoover"])
def test_nvt_reaches_target_temperature(ensemble):
    # Maxwell-Boltzmann velocities at 300 K on a perfect crystal equipartition to ~150 K;
    # only a working thermostat brings the average back to 300 K.
    atoms = bulk("Cu", cubic=True, a=3.59).repeat(3)
    result = run_md(
        atoms,
        ensemble,
        temperature_K=300,
        steps=300,
        timestep_fs=2.0,
        friction_per_fs=0.02,
        tdamp_fs=40,
        log_interval=5,
        seed=1,
        output_dir=None,
        calculator=EMT(),
        **QUIET,
    )
    mean_t = result.temperature_K[len(result.temperature_K) // 2 :].mean()
    assert mean_t == pytest.approx(300, rel=0.15)


def test_nve_without_thermostat_stays_cold():
    """The counterpart of the NVT test: without a thermostat the crystal stays near T/2."""
    atoms = bulk("Cu", cubic=True, a=3.59).repeat(3)
    result = run_md(
        atoms, "nve", temperature_K=300, steps=150, timestep_fs=2.0, output_dir=None, calculator=EMT(), **QUIET
    )
    assert result.temperature_K[len(result.temperature_K) // 2 :].mean() < 220


@pytest.mark.parametrize("ensemble", ["npt_berendsen", "npt_mtk", "npt_mtk_full"])
def test_npt_expands_a_compressed_crystal(ensemble):
    atoms = bulk("Cu", cubic=True, a=3.50).repeat(2)
    result = run_md(
        atoms,
        ensemble,
        temperature_K=300,
        pressure_GPa=0.0,
        steps=60,
        timestep_fs=2.0,
        pdamp_fs=100,
        log_interval=5,
        output_dir=None,
        calculator=EMT(),
        **QUIET,
    )
    assert result.pressure_GPa[0] > 5  # compressed: positive pressure (GPa)
    assert result.volume_A3[-1] > result.volume_A3[0] * 1.01


def test_md_pressure_log_and_npt_target_pressure():
    """The logged pressure is -tr(σ)/3 with the kinetic term, in GPa; an NPT run at 10 GPa settles at a
    smaller volume than at 0 GPa, its second-half pressure near 10 GPa."""
    atoms = bulk("Cu", cubic=True, a=3.59).repeat(2)
    volumes = {}
    for pressure in (0.0, 10.0):
        result = run_md(atoms, "npt_berendsen", temperature_K=300, pressure_GPa=pressure, steps=400, timestep_fs=2.0,
                        pdamp_fs=100, log_interval=10, output_dir=None, calculator=EMT(), seed=1, **QUIET)
        volumes[pressure] = result.volume_A3[len(result.volume_A3) // 2:].mean()
        if pressure:
            assert result.pressure_GPa[len(result.pressure_GPa) // 2:].mean() == pytest.approx(10.0, abs=1.5)
    assert volumes[10.0] < 0.97 * volumes[0.0]
    start = atoms.copy()
    start.calc = EMT()
    first = run_md(start, "nve", temperature_K=300, steps=0, output_dir=None, calculator=EMT(), seed=2, **QUIET)
    moved = first.atoms.copy()
    moved.calc = EMT()
    expected = -moved.get_stress(include_ideal_gas=True)[:3].mean() / units.GPa
    assert first.pressure_GPa[0] == pytest.approx(expected, rel=1e-6)


def test_md_writes_csv_and_trajectory(tmp_path):
    atoms = bulk("Cu", cubic=True, a=3.59)
    result = run_md(
        atoms,
        "nvt_langevin",
        steps=22,
        log_interval=5,
        trajectory="frames/md.traj",  # folders that do not exist yet are made (it failed at the first frame)
        output_dir=tmp_path,
        calculator=EMT(),
        **QUIET,
    )
    with open(tmp_path / "md.csv") as handle:
        rows = list(csv.DictReader(handle))
    # every log_interval steps, and the last step too
    assert [float(r["step"]) for r in rows] == [0, 5, 10, 15, 20, 22]
    assert float(rows[-1]["time_fs"]) == pytest.approx(22.0) and result.time_fs[-1] == pytest.approx(22.0)
    assert float(rows[-1]["total_energy_eV"]) == pytest.approx(result.total_energy[-1])
    assert float(rows[-1]["volume_A3"]) == pytest.approx(atoms.get_volume())
    assert np.isfinite(float(rows[-1]["pressure_GPa"]))
    frames = read(tmp_path / "frames" / "md.traj", ":")
    assert len(frames) == 6
    np.testing.assert_array_equal(frames[-1].positions, result.atoms.positions)
    assert result.plot(tmp_path / "md.png").stat().st_size > 1000
    assert result.summary()["csv"] == str(tmp_path / "md.csv")


def test_md_velocities_are_seeded_and_momentum_free():
    atoms = bulk("Cu", cubic=True, a=3.59).repeat(2)
    runs = [run_md(atoms, "nve", steps=0, seed=5, output_dir=None, calculator=EMT(), **QUIET) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].atoms.get_momenta(), runs[1].atoms.get_momenta())
    np.testing.assert_allclose(runs[0].atoms.get_momenta().sum(axis=0), 0.0, atol=1e-10)
    assert runs[0].temperature_K[0] > 100


def test_md_rejects_bad_options():
    with pytest.raises(InvalidArgumentError, match="ensemble"):
        run_md(bulk("Cu"), "nvt_magic", calculator=EMT())
    with pytest.raises(InvalidArgumentError, match="timestep"):
        run_md(bulk("Cu"), "nve", timestep_fs=0, calculator=EMT())
    with pytest.raises(InvalidArgumentError, match="3D periodic"):
        run_md(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]]), "npt_mtk", calculator=EMT(), output_dir=None)
    with pytest.raises(InvalidArgumentError, match="at least 2 atoms"):  # its momenta would become NaN
        run_md(bulk("Cu"), "nvt_langevin", calculator=EMT(), output_dir=None)
    pair = bulk("Cu", cubic=True)
    for ensemble, options, bad in [("nvt_langevin", {"friction_per_fs": -0.1}, "friction_per_fs=-0.1"),
                                   ("nvt_bussi", {"tdamp_fs": 0.0}, "tdamp_fs=0.0"),
                                   ("npt_berendsen", {"pdamp_fs": 0.0, "bulk_modulus_GPa": -1.0},
                                    "pdamp_fs=0.0, bulk_modulus_GPa=-1.0"),
                                   ("npt_mtk", {"pressure_GPa": float("nan")}, "pressure_GPa=nan"),
                                   ("nve", {"seed": -1}, "seed=-1")]:
        with pytest.raises(InvalidArgumentError, match=f"{ensemble}: bad {bad}"):
            run_md(pair, ensemble, steps=1, calculator=EMT(), output_dir=None, **QUIET, **options)
    # what an ensemble does not use is not checked; friction 0 is a valid Langevin setting; seed None is random
    run_md(pair, "nve", steps=1, friction_per_fs=0.0, tdamp_fs=-1.0, calculator=EMT(), output_dir=None, **QUIET)
    run_md(pair, "nvt_langevin", steps=1, friction_per_fs=0.0, seed=None, calculator=EMT(), output_dir=None, **QUIET)


@pytest.mark.parametrize("ensemble", ["nvt_nose_hoover", "npt_mtk", "npt_mtk_full", "npt_berendsen"])
def test_md_refuses_constraints_its_integrator_ignores(ensemble):
    # ASE's Nose-Hoover chain runs a slab with fixed atoms without complaint and cools it to 0 K
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0 if ensemble == "nvt_nose_hoover" else None, periodic=True)
    slab.set_constraint(FixAtoms(indices=range(4)))
    with pytest.raises(InvalidArgumentError, match="constraints.*FixAtoms"):
        run_md(slab, ensemble, steps=2, calculator=EMT(), output_dir=None, **QUIET)


# ------------------------------------------------------------------ watchdog


class Exploding(EMT):
    """EMT until ``after`` evaluations, then ``mode``: NaN forces, forces scaled up 1e4, or a
    rejected structure (as ALIGNNCalculator rejects overlapping atoms)."""

    def __init__(self, after: int, mode: str):
        super().__init__()
        self.after, self.mode, self.calls = after, mode, 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.after and self.mode == "reject":
            raise InvalidStructureError("atoms 3 and 7 are 0.1 Å apart")
        super().calculate(*args, **kwargs)
        if self.calls > self.after:
            if self.mode == "nan":
                self.results["forces"] = np.full_like(self.results["forces"], np.nan)
            else:
                self.results["forces"] = self.results["forces"] * 1e4


@pytest.mark.parametrize(
    "mode, reason", [("nan", "non-finite"), ("kick", "temperature|apart"), ("reject", "rejected the structure")]
)
def test_watchdog_fires_on_planted_explosion(tmp_path, mode, reason):
    atoms = bulk("Cu", cubic=True, a=3.59).repeat(2)
    atoms.rattle(0.05, seed=0)
    with pytest.raises(SimulationError, match=reason) as info:
        run_md(atoms, "nve", steps=50, output_dir=tmp_path, calculator=Exploding(10, mode), **QUIET)
    frame_file = tmp_path / "md_last_good.extxyz"
    assert str(frame_file) in str(info.value) and info.value.path == frame_file
    frame = read(frame_file)
    assert len(frame) == len(atoms) and np.isfinite(frame.positions).all()
    assert np.isfinite(frame.get_forces()).all() and np.abs(frame.get_forces()).max() < 5
    # evaluation 11 is step 10's: the error names the step that failed (the last good frame is step 9)
    assert "MD stopped at step 10" in str(info.value)


def test_watchdog_names_the_close_pair():
    atoms = Atoms("Cu3", positions=[[0, 0, 0], [0, 0, 0.4], [3, 0, 0]])
    atoms.calc = EMT()
    problem = Watchdog(min_distance=0.5).problem(atoms)
    assert "atoms 0 and 1" in problem and "0.400 Å" in problem
    atoms.positions[1, 2] = 2.6
    assert Watchdog(min_distance=0.5).problem(atoms) is None
    atoms.set_momenta(np.full((3, 3), np.nan))
    assert Watchdog(min_distance=0.5).problem(atoms) == "non-finite momenta"


_FAR_ATOM = """
import sys
from ase import Atoms
from ase.build import fcc111
from ase.calculators.emt import EMT
from alignn_ase.workflows import Watchdog, run_md
molecule = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [600, 600, 0]])
slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
slab.positions[-1, 2] += 20000.0  # pbc (True, True, False)
for atoms in (molecule, slab):
    atoms.calc = EMT()
    print(Watchdog(0.5).problem(atoms))
print(run_md(molecule, "nve", steps=3, calculator=EMT(), output_dir=None, progress=False).steps)
"""


def test_watchdog_survives_an_atom_far_from_the_rest():
    """An atom hundreds of Å away once killed the process with a floating-point exception in vesin's
    cell list (the watchdog called vesin directly, at its 0.5 Å cut-off, without all_pairs' guard)."""
    run = subprocess.run([sys.executable, "-c", _FAR_ATOM], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["None", "None", "3"]


# ------------------------------------------------------------------ phonons


def test_phonons_of_a_stable_crystal(tmp_path, emt_cu_a0):
    result = phonons(
        bulk("Cu", "fcc", a=emt_cu_a0), supercell=(4, 4, 4), mesh=(8, 8, 8), calculator=EMT(), output_dir=tmp_path
    )
    assert result.acoustic_ok and np.abs(result.gamma_frequencies).max() < 0.05
    assert result.imaginary_modes == [] and result.stable
    bands = np.concatenate(result.phonopy.band_structure.frequencies)
    assert 5 < bands.max() < 12  # THz: a real, stiff spectrum (EMT Cu's maximum is ~7-8 THz)
    # the frequencies equal ASE's own finite-displacement phonons of the same supercell (measured: within 0.02 THz)
    q = [[0.5, 0.0, 0.5], [0.5, 0.25, 0.75], [0.3, 0.1, 0.0]]  # X, W and a general point (primitive reduced coords)
    result.phonopy.run_qpoints(q)
    reference = AsePhonons(bulk("Cu", "fcc", a=emt_cu_a0), EMT(), supercell=(4, 4, 4), delta=0.01,
                           name=str(tmp_path / "ase_phonons"))
    reference.run()
    reference.read(acoustic=True)
    thz = reference.band_structure(q) / (units._hplanck / units._e * 1e12)  # eV -> THz
    np.testing.assert_allclose(result.phonopy.qpoints.frequencies, thz, atol=0.05)
    i = int(np.argmin(np.abs(result.temperatures - 1000)))
    assert result.atoms_per_cell == 1  # fcc primitive cell: per mole of cells is per mole of atoms
    assert result.heat_capacity[i] == pytest.approx(3 * units.kB * units.mol / units.J, rel=0.02)  # Dulong-Petit
    assert result.heat_capacity[0] == pytest.approx(0, abs=1e-6)
    thermal = result.summary()["thermal"]["1000 K"]
    assert thermal["heat_capacity_J_per_K_per_mol_atoms"] == thermal["heat_capacity_J_per_K_per_mol_cells"]
    for name in ("phonopy_params.yaml", "band.yaml", "total_dos.dat", "thermal_properties.yaml"):
        assert (tmp_path / name).stat().st_size > 100
    for name in ("phonons.png", "thermal_properties.png"):
        assert (tmp_path / name).stat().st_size > 5000
    assert "force_constants" in (tmp_path / "phonopy_params.yaml").read_text()


class NoisyEMT(EMT):
    """EMT with seeded noise on the forces (0.05 eV/Å): force constants that break translational invariance."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(0)

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = self.results["forces"] + self.rng.normal(0.0, 0.05, self.results["forces"].shape)


def test_phonons_acoustic_check_reads_the_forces_before_symmetrisation(emt_cu_a0):
    cu = bulk("Cu", "fcc", a=emt_cu_a0)
    noisy = phonons(cu, supercell=(3, 3, 3), mesh=(4, 4, 4), calculator=NoisyEMT(), output_dir=None)
    assert not noisy.acoustic_ok and not noisy.stable
    assert np.abs(np.sort(np.abs(noisy.gamma_frequencies))[:3]).max() < 1e-3  # symmetrised: the sum rule imposed
    assert phonons(cu, supercell=(3, 3, 3), mesh=(4, 4, 4), calculator=EMT(), output_dir=None).acoustic_ok


def test_phonons_of_a_left_handed_cell_equal_those_of_the_right_handed_one(emt_cu_a0):
    right = bulk("Cu", "fcc", a=emt_cu_a0)
    left = right.copy()
    left.set_cell(right.cell.array[[1, 0, 2]], scale_atoms=False)  # the same lattice, vectors swapped
    assert np.linalg.det(left.cell.array) < 0
    results = [phonons(a, supercell=(3, 3, 3), mesh=(4, 4, 4), calculator=EMT(), output_dir=None) for a in (right, left)]
    np.testing.assert_allclose(results[1].heat_capacity, results[0].heat_capacity, rtol=1e-8, atol=1e-10)
    for r in results:
        r.phonopy.run_qpoints([[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(*(r.phonopy.qpoints.frequencies for r in results), atol=1e-6)
    with pytest.raises(InvalidArgumentError, match="mesh must be"):
        phonons(right, supercell=(2, 2, 2), mesh=(4.5, 4.5, 4.5), calculator=EMT(), output_dir=None)
    with pytest.raises(InvalidArgumentError, match="whole number of points"):
        eos(right, points=6.5, calculator=EMT(), output_dir=None)


def test_born_charges_split_the_lo_mode_as_the_dipole_formula_says(tmp_path):
    """Rock salt with Born charges +-Z and dielectric constant eps: near Γ the longitudinal optical mode is raised
    by w_LO^2 - w_TO^2 = Z^2 e^2 / (eps_0 eps V mu) (V the primitive cell's volume, mu the reduced mass), the TO
    modes and Γ's reported (TO) frequencies unchanged; a BORN file and the mapping give the same bands."""
    from scipy.constants import atomic_mass, e, epsilon_0

    atoms = bulk("NaCl", "rocksalt", a=5.64)
    calc = ALIGNNCalculator(dtype="float64", device="cpu")
    kw = dict(supercell=(2, 2, 2), mesh=(4, 4, 4), calculator=calc)
    z, eps = 1.1, 2.4
    plain = phonons(atoms, output_dir=None, **kw)
    nac = phonons(atoms, output_dir=tmp_path / "map", born={"born": [np.eye(3) * z, -np.eye(3) * z],
                                                            "dielectric": np.eye(3) * eps}, **kw)
    born_file = tmp_path / "BORN"
    born_file.write_text(f"14.399652\n{' '.join(map(str, (np.eye(3) * eps).ravel()))}\n"
                         f"{' '.join(map(str, (np.eye(3) * z).ravel()))}\n{' '.join(map(str, (-np.eye(3) * z).ravel()))}\n")
    from_file = phonons(atoms, output_dir=None, born=born_file, **kw)
    near_gamma = [r.phonopy.band_structure.frequencies[0][0] for r in (plain, nac, from_file)]  # Γ along Γ-X
    to = plain.gamma_frequencies[-1]
    np.testing.assert_allclose(near_gamma[0][3:], to, atol=1e-6)  # no correction: LO = TO
    np.testing.assert_allclose(near_gamma[1][3:5], to, atol=1e-6)  # the two TO modes
    mu = atomic_mass * 22.98977 * 35.453 / (22.98977 + 35.453)
    lo = np.sqrt((2e12 * np.pi * to) ** 2 + z**2 * e**2 / (epsilon_0 * eps * atoms.get_volume() * 1e-30 * mu))
    assert near_gamma[1][5] == pytest.approx(lo / 2e12 / np.pi, rel=0.01)
    assert near_gamma[1][5] > to + 2.0  # THz
    np.testing.assert_allclose(near_gamma[2], near_gamma[1], atol=1e-4)
    np.testing.assert_allclose(nac.gamma_frequencies, plain.gamma_frequencies, atol=1e-6)
    assert nac.summary()["non_analytic_correction"] and not plain.summary()["non_analytic_correction"]
    conventional = bulk("NaCl", "rocksalt", a=5.64, cubic=True)  # 8 atoms, Na and Cl alternating
    charges = [np.eye(3) * (z if symbol == "Na" else -z) for symbol in conventional.get_chemical_symbols()]
    from_conventional = phonons(conventional, output_dir=None, born={"born": charges, "dielectric": np.eye(3) * eps},
                                **{**kw, "supercell": (1, 1, 1)})
    assert from_conventional.phonopy.nac_params["born"][:, 0, 0].tolist() == pytest.approx([z, -z])
    charges[5] = charges[5] * 1.5
    with pytest.raises(InvalidArgumentError, match="translation-equivalent"):
        phonons(conventional, output_dir=None, born={"born": charges, "dielectric": np.eye(3) * eps},
                **{**kw, "supercell": (1, 1, 1)})
    saved = (tmp_path / "map" / "phonopy_params.yaml").read_text()  # phonopy.load reads the correction back
    assert "born_effective_charge:" in saved and "dielectric_constant:" in saved
    for bad, match in (({"born": np.zeros((3, 3, 3)), "dielectric": np.eye(3)}, "one 3x3 tensor per atom"),
                       ({"born": np.zeros((2, 3, 3)), "dielectric": np.eye(3) * 0.5}, "eigenvalues"),
                       ({"born": np.zeros((2, 3, 3))}, "keys"), (tmp_path / "nope", "no such BORN file"), (3, "path or")):
        with pytest.raises(InvalidArgumentError, match=match):
            phonons(atoms, output_dir=None, born=bad, **kw)


def test_qha_of_emt_copper_is_thermodynamically_consistent(tmp_path, emt_cu_a0):
    """Quasi-harmonic Cu (EMT): zero-point expansion of a fraction of a percent, B(0 K) near the static EOS's B0,
    the reported expansion equal to (1/V) dV/dT of the reported volumes, C_P at 300 K near Dulong-Petit and above
    phonopy's C_V, thermal softening, a smaller volume under pressure, and results cut where the equilibrium
    volume leaves the sampled range."""
    atoms = bulk("Cu", "fcc", a=emt_cu_a0)
    kw = dict(supercell=(3, 3, 3), mesh=(10, 10, 10), temperatures=np.arange(0.0, 601.0, 10.0), calculator=EMT(),
              progress=False)
    r = qha(atoms, output_dir=tmp_path, **kw)
    static = eos(atoms, calculator=EMT(), output_dir=None)
    v_static = static.v0 / len(atoms)
    assert 0.0 < r.volume[0] / v_static - 1 < 0.01
    assert r.bulk_modulus[0] == pytest.approx(static.b0, rel=0.05)
    t, v = r.temperatures, r.volume
    i300 = int(np.argmin(np.abs(t - 300)))
    assert t[i300] == 300 and np.all(np.diff(v[1:]) > 0) and np.all(np.diff(r.bulk_modulus[1:]) < 0)
    numeric = np.gradient(v, t) / v
    np.testing.assert_allclose(r.thermal_expansion[5:-5], numeric[5:-5], rtol=0.02)
    harmonic = phonons(atoms, supercell=(3, 3, 3), mesh=(10, 10, 10), temperatures=[300.0], calculator=EMT(),
                       output_dir=None, progress=False)
    c_v = harmonic.heat_capacity[0] / harmonic.atoms_per_cell
    assert c_v < r.heat_capacity_p[i300] < 1.05 * c_v and 23.0 < c_v < 25.0  # C_P - C_V = alpha^2 B V T, small
    assert 1e-5 < r.thermal_expansion[i300] / 3 < 5e-5  # linear, 1/K (experiment 1.65e-5, EMT runs hotter)
    for name in ("qha.csv", "e_v.csv", "qha.png"):
        assert (tmp_path / name).is_file()
    assert set(r.summary()["at"]) == {"0 K", "300 K", f"{t[-1]:g} K"}
    assert np.isnan(r.gruneisen[0]) and r.summary()["at"]["0 K"]["gruneisen"] is None  # 0/0, not phonopy's 0
    assert 1.5 < r.gruneisen[i300] < 3.5
    squeezed = qha(atoms, pressure_GPa=10.0, output_dir=None, volume_range=0.08, **kw)
    assert squeezed.volume[0] < r.volume[0]
    with pytest.warns(ConvergenceWarning, match="leaves the sampled"):
        narrow = qha(atoms, volume_range=0.01, points=5, output_dir=None, **kw)
    assert narrow.temperatures[-1] < 590 and narrow.volume[-1] <= narrow.volumes.max()
    for bad, match in (({"points": 4}, "points"), ({"eos_name": "sj"}, "unknown EOS"),
                       ({"temperatures": [0, 10, 30]}, "evenly spaced"), ({"temperatures": [300, 320, 340]}, "from 0 K")):
        with pytest.raises(InvalidArgumentError, match=match):
            qha(atoms, output_dir=None, **{**kw, **bad})


def _ase_band(initial, final, calculators, steps, fmax=0.02):
    """ASE's own NEB, one calculator per image, for comparison."""
    from ase.mep import NEB
    from ase.optimize import FIRE

    images = [initial.copy() for _ in range(len(calculators) - 1)] + [final.copy()]
    for image, calc in zip(images, calculators):
        image.calc = calc
    band = NEB(images, k=0.1, climb=True, method="improvedtangent")
    band.interpolate(method="idpp")
    opt = FIRE(band, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    return np.array([image.get_potential_energy() for image in images]), opt.nsteps


def test_neb_gives_ases_own_band(tmp_path):
    """The workflow's band (interior images evaluated together) is ASE's NEB with one EMT calculator per image:
    the same energies and step count; the symmetric hop has equal barriers with the climbing image midway."""
    initial, final = au_hop_on_al100()
    result = neb(initial, final, images=3, fmax=0.02, calculator=EMT(), output_dir=tmp_path, **QUIET)
    energies, steps = _ase_band(initial, final, [EMT() for _ in range(5)], steps=500)
    assert result.converged and result.steps == steps and result.band_evaluations == steps + 1
    np.testing.assert_allclose(result.energies, energies - energies[0], atol=1e-8)
    assert 0.3 < result.barrier_forward < 0.45 and result.barrier_reverse == pytest.approx(result.barrier_forward, abs=1e-6)
    assert result.images[2][-1].x == pytest.approx((initial[-1].x + final[-1].x) / 2, abs=1e-3)  # the saddle
    straight = np.linalg.norm(final.positions - initial.positions)
    assert straight < result.reaction_coordinate[-1] < 1.1 * straight  # over the bridge site, not through it
    for name in ("neb.traj", "neb.csv", "neb.png"):
        assert (tmp_path / name).is_file()
    assert read(tmp_path / "neb.traj", ":")[2].get_potential_energy() == pytest.approx(result.energies[2] + energies[0])
    for bad, match in ((dict(final=final[:-1]), "same atoms"), (dict(images=0), "images"),
                       (dict(method="nope"), "method")):
        with pytest.raises(InvalidArgumentError, match=match):
            neb(**{"initial": initial, "final": final, "calculator": EMT(), "output_dir": None, **QUIET, **bad})
    moved = final.copy()
    moved.cell[2, 2] += 0.5
    with pytest.raises(InvalidArgumentError, match="same cell"):
        neb(initial, moved, calculator=EMT(), output_dir=None, **QUIET)


def test_neb_evaluates_all_images_in_one_predict_call():
    """With an ALIGNNCalculator each optimiser step costs one batched predict over the interior images, and the
    band equals ASE's NEB with a separate calculator per image (float64, a small random smooth model)."""
    initial, final = au_hop_on_al100()
    model = smooth_model(seed=3)
    calc = calc64(model)
    calls = []
    batched_predict = calc.predict
    calc.predict = lambda structures, **kw: calls.append(len(structures)) or batched_predict(structures, **kw)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = neb(initial, final, images=4, max_steps=6, calculator=calc, output_dir=None, **QUIET)
    assert calls == [2] + [4] * (result.steps + 1)  # the end points once, then every interior image per step
    energies, _ = _ase_band(initial, final, [calc64(model) for _ in range(6)], steps=6)
    np.testing.assert_allclose(result.energies, energies - energies[0], atol=1e-8)


def test_phonons_report_imaginary_modes_of_an_unstable_crystal():
    # bcc copper is dynamically unstable (Bain path); EMT agrees
    result = phonons(bulk("Cu", "bcc", a=2.87), supercell=(4, 4, 4), mesh=(6, 6, 6), calculator=EMT(), output_dir=None)
    assert result.acoustic_ok and not result.stable
    worst, q = result.imaginary_modes[0]
    assert worst < -0.5 and worst == min(f for f, _ in result.imaginary_modes)
    assert np.abs(q).max() > 0  # away from Γ
    assert result.summary()["n_imaginary_qpoints"] == len(result.imaginary_modes)


def test_band_path_labels_stand_at_their_points_in_a_triclinic_crystal():
    # seekpath's standard path is written in the basis of its standardised (here Niggli-reduced) cell; phonopy's
    # auto_band_structure read it in the basis of the input cell, which put Y's label at Z's point and U's at V's
    atoms = Atoms("CuAu", cell=[[4.0, 0, 0], [0.8, 4.6, 0], [0.7, 0.9, 5.3]], scaled_positions=[[0, 0, 0], [0.4, 0.3, 0.6]],
                  pbc=True)
    result = phonons(atoms, supercell=(1, 1, 1), mesh=(2, 2, 2), calculator=EMT(), output_dir=None)
    standard = seekpath.get_path((atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers))
    cartesian = 2 * np.pi * np.linalg.inv(result.phonopy.primitive.cell)  # reduced -> Cartesian q (1/Å)
    coords, reciprocal = standard["point_coords"], np.array(standard["reciprocal_primitive_lattice"])
    assert len(result.phonopy.band_structure.qpoints) == len(standard["path"])
    for band, ends in zip(result.phonopy.band_structure.qpoints, standard["path"]):
        for q, name in ((band[0], ends[0]), (band[-1], ends[1])):
            assert np.linalg.norm(cartesian @ q) == pytest.approx(np.linalg.norm(np.dot(coords[name], reciprocal)))


def test_band_labels_are_tex_with_subscripts():
    # body-centred tetragonal: seekpath's path has a point named S_0
    result = phonons(bulk("Cu", "bct", a=2.6, c=3.6), supercell=(2, 2, 2), mesh=(2, 2, 2), calculator=EMT(),
                     output_dir=None)
    labels = result.phonopy.band_structure.labels
    assert r"$\Gamma$" in labels and r"$\mathrm{S}_{0}$" in labels and r"$\mathrm{X}$" in labels


def test_supercell_from_minimum_length():
    cubic = bulk("Cu", cubic=True, a=3.6)
    np.testing.assert_array_equal(supercell_matrix(cubic, 10.0), np.diag([3, 3, 3]))
    prim = bulk("Cu", a=3.6)  # perpendicular heights a/sqrt(3) = 2.08 Å
    np.testing.assert_array_equal(supercell_matrix(prim, 10.0), np.diag([5, 5, 5]))
    np.testing.assert_array_equal(supercell_matrix(prim, (2, 3, 4)), np.diag([2, 3, 4]))
    with pytest.raises(InvalidArgumentError):
        supercell_matrix(prim, (2, 2))
    with pytest.raises(InvalidArgumentError, match="positive"):
        supercell_matrix(prim, 0.0)
    with pytest.raises(InvalidArgumentError, match="positive determinant"):  # left-handed
        supercell_matrix(prim, (-2, 2, 2))


def test_phonons_reject_a_supercell_too_small_for_any_force():
    with pytest.raises(InvalidArgumentError, match="too small"):
        phonons(bulk("Cu", a=3.6), supercell=(1, 1, 1), calculator=EMT(), output_dir=None)


# ------------------------------------------------------------------ equation of state


def test_eos_minimum_has_zero_pressure_and_the_fitted_curvature(tmp_path):
    atoms = bulk("Cu", cubic=True, a=3.6)
    result = eos(atoms, calculator=EMT(), output_dir=tmp_path)
    assert result.volumes[0] == pytest.approx(atoms.get_volume() * 0.94)
    assert result.volumes[-1] == pytest.approx(atoms.get_volume() * 1.06)
    at_v0 = scaled_to_volume(atoms, result.v0)
    assert abs(at_v0.get_stress()[:3].mean() / units.GPa) < 0.05  # the calculator's own pressure vanishes at V0
    assert result.e0 == pytest.approx(at_v0.get_potential_energy(), abs=1e-4)
    # B = V d2E/dV2 at V0 by central differences, independent of the fit
    h = 0.01 * result.v0
    e = [scaled_to_volume(atoms, result.v0 + d).get_potential_energy() for d in (-h, 0.0, h)]
    assert result.b0 == pytest.approx(result.v0 * (e[0] - 2 * e[1] + e[2]) / h**2 / units.GPa, rel=0.03)
    assert (tmp_path / "eos.png").stat().st_size > 5000
    assert len((tmp_path / "eos.csv").read_text().splitlines()) == 10


def scaled_to_volume(atoms: Atoms, volume: float) -> Atoms:
    scaled = atoms.copy()
    scaled.set_cell(atoms.cell * np.cbrt(volume / atoms.get_volume()), scale_atoms=True)
    scaled.calc = EMT()
    return scaled


def test_eos_warns_when_the_minimum_is_outside_the_range():
    with pytest.warns(ConvergenceWarning, match="outside"):
        eos(bulk("Cu", cubic=True, a=3.3), calculator=EMT(), output_dir=None)


# ------------------------------------------------------------------ calculators


class BatchedEMT(EMT):
    """EMT with a ``predict`` method, counting how it is called."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def predict(self, structures, progress=True):
        self.batches.append(len(structures))
        out = []
        for atoms in structures:
            atoms = atoms.copy()
            atoms.calc = EMT()
            out.append({"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()})
        return out


def test_phonons_and_eos_use_batched_predict_when_available():
    calc = BatchedEMT()
    eos(bulk("Cu", cubic=True), points=7, calculator=calc, output_dir=None)
    result = phonons(bulk("Cu", a=3.59), supercell=(3, 3, 3), mesh=(4, 4, 4), calculator=calc, output_dir=None)
    assert calc.batches == [7, 2]  # one call each: 7 volumes; perfect + 1 displaced supercell
    assert result.acoustic_ok


def test_calculate_many_matches_the_calculator_one_by_one():
    structures = [bulk("Cu", a=a) for a in (3.5, 3.6)] + [bulk("Cu", cubic=True).repeat((1, 1, 2))]
    results = calculate_many(structures, EMT(), progress=False)
    for atoms, r in zip(structures, results):
        atoms = atoms.copy()
        atoms.calc = EMT()
        assert r["energy"] == pytest.approx(atoms.get_potential_energy())
        np.testing.assert_allclose(r["forces"], atoms.get_forces())
        np.testing.assert_allclose(r["stress"], atoms.get_stress())
    # a slab (periodic in two directions, 3D cell): stress like ALIGNNCalculator.predict gives it
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
    (r,) = calculate_many([slab], EMT(), progress=False)
    assert not slab.pbc.all() and r["stress"].shape == (6,)


def test_default_calculator():
    atoms = bulk("Si")
    assert isinstance(get_calculator(atoms), ALIGNNCalculator)
    atoms.calc = EMT()
    assert isinstance(get_calculator(atoms), EMT)
    given = EMT()
    assert get_calculator(atoms, given) is given


def test_berendsen_quench_to_zero_kelvin_needs_starting_velocities():
    atoms = bulk("Cu", cubic=True, a=3.6).repeat(2)
    atoms.rattle(0.05, seed=1)
    with pytest.raises(InvalidArgumentError, match="npt_berendsen needs non-zero initial velocities"):
        run_md(atoms, "npt_berendsen", temperature_K=0, steps=2, output_dir=None, calculator=EMT(), **QUIET)
    hot = atoms.copy()
    hot.set_momenta(np.random.default_rng(0).normal(0.0, 1.0, (len(hot), 3)))
    result = run_md(hot, "npt_berendsen", temperature_K=0, init_velocities=False, steps=20, log_interval=10,
                    output_dir=None, calculator=EMT(), **QUIET)
    assert np.isfinite(result.temperature_K).all() and result.temperature_K[-1] < result.temperature_K[0]


@pytest.mark.parametrize(
    "run, match",
    [
        (lambda a, c: relax(a, calculator=c, fmax=float("nan"), **QUIET), "finite fmax > 0"),
        (lambda a, c: relax(a, calculator=c, max_steps=2.5, **QUIET), "whole max_steps"),
        (lambda a, c: run_md(a, calculator=c, timestep_fs=float("nan"), steps=2, progress=False), "finite timestep_fs"),
        (lambda a, c: run_md(a, calculator=c, temperature_K=float("inf"), steps=2, progress=False), "finite temperature_K"),
        (lambda a, c: run_md(a, calculator=c, steps=2.5, progress=False), "whole steps"),
        (lambda a, c: run_md(a, calculator=c, steps=2, min_distance=float("nan"), progress=False), "watchdog limits"),
        (lambda a, c: run_md(a, calculator=c, steps=2, max_temperature_K=float("nan"), progress=False), "watchdog limits"),
        (lambda a, c: phonons(a, calculator=c, symprec=-1.0), "symprec must be a finite number > 0"),  # segfaulted
        (lambda a, c: phonons(a, calculator=c, symprec=float("nan")), "symprec must be"),
        (lambda a, c: phonons(a, calculator=c, displacement=float("nan")), "displacement must be"),
        (lambda a, c: phonons(a, calculator=c, acoustic_tolerance=0.0), "acoustic_tolerance must be"),
        (lambda a, c: phonons(a, calculator=c, supercell=float("inf")), "finite, positive length"),
        (lambda a, c: phonons(a, calculator=c, supercell=(100, 100, 100)), "would hold 4000000 atoms"),
        (lambda a, c: eos(a, calculator=c, volume_range=1e-4, output_dir=None), "0.005 <= volume_range"),
        # strings and None (e.g. from a hand-written config) were compared with numbers: TypeError
        (lambda a, c: relax(a, calculator=c, fmax="0.1", **QUIET), "expected numbers, got fmax='0.1'"),
        (lambda a, c: relax(a, calculator=c, pressure_GPa=None, **QUIET), "got pressure_GPa=None"),
        (lambda a, c: eos(a, calculator=c, points="9", output_dir=None), "got points='9'"),
        (lambda a, c: run_md(a, calculator=c, temperature_K="300", steps=2, progress=False), "got temperature_K='300'"),
        (lambda a, c: run_md(a, calculator=c, tdamp_fs="10", steps=2, progress=False), "got tdamp_fs='10'"),
        (lambda a, c: phonons(a, calculator=c, supercell="2"), "got supercell='2'"),
        (lambda a, c: phonons(a, calculator=c, supercell=[2, "x", 2]), "supercell must hold numbers"),
        (lambda a, c: phonons(a, calculator=c, mesh="20"), "got mesh='20'"),
        (lambda a, c: phonons(a, calculator=c, temperatures=["300"]), "temperatures must hold numbers"),
        (lambda a, c: phonons(a, calculator=c, displacement="0.01"), "got displacement='0.01'"),
    ],
)
def test_workflow_arguments_that_are_not_finite_or_sensible_are_refused(run, match):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    with pytest.raises(InvalidArgumentError, match=match):
        run(atoms, EMT())


@pytest.mark.parametrize("workflow", [relax, run_md, phonons, eos])
def test_workflows_name_a_structure_or_calculator_of_the_wrong_kind(workflow):
    with pytest.raises(InvalidArgumentError, match="expected an ase.Atoms, got str 'Si.cif'"):
        workflow("Si.cif")
    with pytest.raises(InvalidArgumentError, match="calculator must be an ASE calculator, got 'default'"):
        workflow(bulk("Cu", "fcc", a=3.6, cubic=True), calculator="default")


class _NoisyEMT(EMT):
    """EMT plus a small fixed random force on every atom: symmetry-breaking noise, as a float32 model's rounding."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"] + np.random.default_rng(0).normal(
            0, 0.02, self.results["forces"].shape)


def test_relax_with_fix_symmetry_keeps_the_space_group_and_not_the_constraint():
    import spglib

    def space_group(a):
        return spglib.get_symmetry_dataset((a.cell[:], a.get_scaled_positions(), a.numbers), symprec=1e-4).number

    start = bulk("Cu", "fcc", a=3.7, cubic=True)  # space group 225, 3 % off EMT's lattice constant
    kept = relax(start, calculator=_NoisyEMT(), fmax=0.005, fix_symmetry=True, **QUIET)
    assert space_group(kept.atoms) == 225 and kept.converged and kept.summary()["space_group"] == "Fm-3m (225)"
    assert not kept.atoms.constraints and not start.constraints  # MD on the result must not keep the symmetry
    lost = relax(start, calculator=_NoisyEMT(), fmax=0.005, **QUIET)
    assert space_group(lost.atoms) != 225
    with pytest.raises(InvalidArgumentError, match="finite symprec > 0"):
        relax(start, calculator=EMT(), fix_symmetry=True, symprec=0.0, **QUIET)
    # the symmetrisation would move a fixed atom (it did, by its free mirror image's step), and spglib would
    # fail deep inside on a molecule
    fixed = start.copy()
    fixed.set_constraint(FixAtoms(indices=[0]))
    with pytest.raises(InvalidArgumentError, match="without constraints of its own \\(got FixAtoms\\)"):
        relax(fixed, calculator=EMT(), fix_symmetry=True, **QUIET)
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    with pytest.raises(InvalidArgumentError, match="got no 3D cell"):
        relax(water, calculator=EMT(), relax_cell=False, fix_symmetry=True, **QUIET)


def _relaxed(atoms):
    out = relax(atoms, calculator=EMT(), fmax=1e-5, **QUIET).atoms
    out.set_constraint()
    return out


def test_elastic_constants_of_emt_copper_equal_the_energys_second_derivatives(tmp_path):
    cu = _relaxed(bulk("Cu", "fcc", a=3.6, cubic=True))
    result = elastic(cu, calculator=EMT(), output_dir=tmp_path, progress=False)
    c = result.c
    # an independent route: C = (1/V) d2E/de2 for the same strains
    volume, d = cu.get_volume(), 0.005

    def energy(strain):
        a = cu.copy()
        a.set_cell(cu.cell @ (np.eye(3) + strain), scale_atoms=True)
        a.calc = EMT()
        return a.get_potential_energy()

    for index, (i, j) in ((0, (0, 0)), (3, (1, 2))):
        e = np.zeros((3, 3))
        e[i, j] = e[j, i] = d if i == j else d / 2
        second = (energy(e) + energy(-e) - 2 * energy(0 * e)) / (volume * d**2) / units.GPa
        assert c[index, index] == pytest.approx(second, rel=2e-3), index
    # cubic: three independent constants, nothing coupling normal strains to shear stresses
    np.testing.assert_allclose(np.diag(c)[:3], c[0, 0], rtol=1e-6)
    np.testing.assert_allclose(np.diag(c)[3:], c[3, 3], rtol=1e-6)
    np.testing.assert_allclose([c[0, 1], c[0, 2], c[1, 2]], c[0, 1], rtol=1e-6)
    assert np.abs(c[:3, 3:]).max() < 1e-6 and result.asymmetry_GPa < 1e-6
    assert result.bulk_voigt == pytest.approx(result.bulk_reuss, rel=1e-9)  # a cubic crystal's K: (C11 + 2 C12) / 3
    assert result.bulk_voigt == pytest.approx(eos(cu, calculator=EMT(), output_dir=None).b0, rel=0.01)
    assert result.born_stable and 0 < result.poisson_ratio < 0.5 and result.ions_converged
    saved = json.loads((tmp_path / "elastic.json").read_text())
    np.testing.assert_allclose(saved["C_GPa"], c)
    # the same crystal turned in space: its eigenvalues (Mandel form) stay, where the Voigt matrix's would not
    turned = cu.copy()
    turned.rotate(37, (1, 2, 3), rotate_cell=True)
    again = elastic(turned, calculator=EMT(), output_dir=None, progress=False)
    np.testing.assert_allclose(again.eigenvalues, result.eigenvalues, atol=0.2)
    assert again.bulk_hill == pytest.approx(result.bulk_hill, abs=0.1)


def test_relaxed_ion_constants_are_softer_than_clamped_ion_ones():
    """hcp: strains move the two atoms off their sites; letting them relax lowers the energy's curvature, so
    C(clamped) - C(relaxed) is positive semi-definite, and the relaxed tensor keeps hexagonal symmetry."""
    hcp = _relaxed(bulk("Cu", "hcp", a=2.55, c=4.16))
    relaxed = elastic(hcp, calculator=EMT(), output_dir=None, progress=False)
    clamped = elastic(hcp, calculator=EMT(), relax_ions=False, output_dir=None, progress=False)
    assert np.linalg.eigvalsh(clamped.c - relaxed.c).min() > -0.05
    assert clamped.c[0, 0] - relaxed.c[0, 0] > 5.0
    c = relaxed.c
    assert c[5, 5] == pytest.approx((c[0, 0] - c[0, 1]) / 2, abs=0.2)  # C66 = (C11 - C12) / 2


def test_elastic_refuses_what_it_cannot_measure():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    with pytest.raises(InvalidArgumentError, match="3D periodic"):
        elastic(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]]), calculator=EMT())
    with pytest.raises(InvalidStructureError, match="no atoms"):
        elastic(Atoms(cell=np.eye(3) * 3, pbc=True), calculator=EMT())
    with pytest.raises(InvalidArgumentError, match="1e-4 <= strain <= 0.05"):
        elastic(cu, calculator=EMT(), strain=0.2)
    with pytest.raises(InvalidArgumentError, match="expected numbers, got strain='0.01'"):
        elastic(cu, calculator=EMT(), strain="0.01")
    fixed = cu.copy()
    fixed.set_constraint(FixAtoms(indices=[0]))
    with pytest.raises(InvalidArgumentError, match="remove the constraints \\(FixAtoms\\)"):
        elastic(fixed, calculator=EMT())

    class NoStress(EMT):
        implemented_properties = ["energy", "forces"]

    with pytest.raises(InvalidArgumentError, match="need a stress, which NoStress"):
        elastic(cu, calculator=NoStress())
    with pytest.warns(ConvergenceWarning, match="under a stress of up to"):  # 3.6 Å is not EMT's lattice constant
        elastic(cu, calculator=EMT(), relax_ions=False, output_dir=None, progress=False)
