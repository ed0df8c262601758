"""Lattice thermal conductivity with phono3py: the workflow equals phono3py driven structure by structure without
alignn-ase, shows the physics a Boltzmann solution must show, and names bad input."""

import csv
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from phono3py import Phono3py
from phono3py.file_IO import read_fc3_from_hdf5
from phonopy.interface.calculator import get_calculator_physical_units
from phonopy.structure.atoms import PhonopyAtoms
from phonopy.structure.cells import PrimitiveMatrixAutoDefaultWarning

from alignn_ase import ALIGNNCalculator, InvalidArgumentError, thermal_conductivity

CU = bulk("Cu", "fcc", a=3.59)  # EMT's own lattice constant, to 0.01 Å
COMMON = {"supercell": [3, 3, 3], "mesh": [7, 7, 7], "output_dir": None, "progress": False}


def phono3py_force_constants(atoms, calc, supercell, phonon_supercell=None, cutoff=None):
    """phono3py's symmetrised fc2 and fc3 as its documentation makes them: one ASE calculation per displaced
    supercell, no alignn-ase code."""
    unitcell = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                            scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())
    with warnings.catch_warnings():  # that "auto" is not phonopy v3's default
        warnings.simplefilter("ignore", PrimitiveMatrixAutoDefaultWarning)
        ph3 = Phono3py(unitcell, supercell_matrix=supercell, phonon_supercell_matrix=phonon_supercell,
                       primitive_matrix="auto")
    ph3.generate_displacements(distance=0.03, cutoff_pair_distance=cutoff)

    def forces(cell):
        a = Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        a.calc = calc
        return a.get_forces()

    skipped = np.zeros((len(ph3.supercell), 3))
    ph3.forces = [skipped if c is None else forces(c) for c in ph3.supercells_with_displacements]
    ph3.produce_fc3()
    if phonon_supercell is not None:
        ph3.phonon_forces = [forces(c) for c in ph3.phonon_supercells_with_displacements]
        ph3.produce_fc2()
    ph3.symmetrize_fc3()
    ph3.symmetrize_fc2()
    return ph3


def assert_same_as_phono3py(ours, reference, mesh, temperatures, nac=None, **options):
    """Our force constants equal ``reference``'s to 1e-9 (eV/Å², eV/Å³), and phono3py's conductivity from them
    (``options``: of ``run_thermal_conductivity``) equals ours. The conductivity is computed from our force
    constants, bit for bit: on coarse meshes phono3py's tetrahedron sums over degenerate bands turn force-constant
    differences of 1e-13 into conductivity differences of a few per cent."""
    np.testing.assert_allclose(ours.phono3py.fc2, reference.fc2, atol=1e-9)
    np.testing.assert_allclose(ours.phono3py.fc3, reference.fc3, atol=1e-9)
    reference.fc2, reference.fc3 = ours.phono3py.fc2, ours.phono3py.fc3
    reference.nac_params = nac
    reference.mesh_numbers = mesh
    reference.init_phph_interaction()
    reference.run_thermal_conductivity(temperatures=temperatures, **options)
    np.testing.assert_allclose(ours.kappa, reference.thermal_conductivity.kappa[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("extra", [{}, {"phonon_supercell": [4, 4, 4], "cutoff_pair_distance": 3.0}],
                         ids=["fc2-in-the-fc3-supercell", "larger-fc2-supercell-and-pair-cutoff"])
def test_equals_phono3py_driven_structure_by_structure(extra):
    temperatures = [300.0, 900.0]
    ours = thermal_conductivity(CU, temperatures=temperatures, calculator=EMT(), **COMMON, **extra)
    reference = phono3py_force_constants(CU, EMT(), COMMON["supercell"], extra.get("phonon_supercell"),
                                         extra.get("cutoff_pair_distance"))
    assert_same_as_phono3py(ours, reference, COMMON["mesh"], temperatures)
    assert ours.kappa[0, 0] > 1.0 and ours.imaginary_modes == 0 and ours.mesh == (7, 7, 7)
    if extra:  # the cut-off left pairs out: fewer supercells than without it
        full = thermal_conductivity(CU, temperatures=temperatures, calculator=EMT(), **COMMON,
                                    phonon_supercell=[4, 4, 4])
        assert ours.n_supercells < full.n_supercells


def test_polar_crystal_with_born_charges():
    """Rock salt with Born charges: the non-analytic correction reaches phono3py as its own nac_params would (per
    input atom in a conventional cell, mapped to phono3py's primitive cell), and it changes the conductivity."""
    nacl = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    z = np.array([np.eye(3) * (1.1 if s == "Na" else -1.1) for s in nacl.get_chemical_symbols()])
    born = {"born": z, "dielectric": np.eye(3) * 2.4}
    calc = ALIGNNCalculator(dtype="float64")
    kwargs = {"supercell": [2, 2, 2], "mesh": [5, 5, 5], "temperatures": [300.0], "calculator": calc,
              "output_dir": None, "progress": False}
    ours = thermal_conductivity(nacl, born=born, **kwargs)
    plain = thermal_conductivity(nacl, **kwargs)
    reference = phono3py_force_constants(nacl, calc, [2, 2, 2])
    assert list(reference.primitive.symbols) == ["Na", "Cl"]
    nac = {"born": [1.1 * np.eye(3), -1.1 * np.eye(3)], "dielectric": np.eye(3) * 2.4,
           "factor": get_calculator_physical_units("vasp").nac_factor}  # phonopy's for eV and Å
    assert_same_as_phono3py(ours, reference, [5, 5, 5], [300.0], nac)
    assert ours.non_analytic_correction and not plain.non_analytic_correction
    assert abs(ours.kappa[0, 0] / plain.kappa[0, 0] - 1) > 0.02


class ForceField(Calculator):
    """EMT plus a constant force on each atom (a different one per atom index): an energy term linear in the
    positions, which changes no force constant."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        emt = EMT()
        emt.calculate(atoms, ["energy", "forces"], all_changes)
        push = np.random.default_rng(len(atoms)).normal(0, 0.3, (len(atoms), 3))
        self.results = {"energy": emt.results["energy"] - float(np.sum(push * atoms.positions)),
                        "forces": emt.results["forces"] + push}


def test_residual_forces_are_subtracted():
    """Forces that do not vanish in the undisplaced supercell (an unrelaxed structure) are taken off every
    displaced one, as phonons() does: a linear energy term leaves the force constants as they were."""
    plain = thermal_conductivity(CU, temperatures=[300.0], calculator=EMT(), **COMMON)
    pushed = thermal_conductivity(CU, temperatures=[300.0], calculator=ForceField(), **COMMON)
    np.testing.assert_allclose(pushed.phono3py.fc2, plain.phono3py.fc2, atol=1e-9)
    np.testing.assert_allclose(pushed.phono3py.fc3, plain.phono3py.fc3, atol=1e-9)


def test_boltzmann_physics():
    """A cubic crystal's tensor is isotropic; at high temperature three-phonon scattering grows as T, so the
    conductivity falls as 1/T; isotope scattering lowers it; the full solution of the linearised equation is
    at least the relaxation-time approximation (which counts momentum-conserving normal processes as resistive)."""
    t = [600.0, 1200.0]
    rta = thermal_conductivity(CU, temperatures=t, calculator=EMT(), **COMMON)
    k = rta.kappa
    np.testing.assert_allclose(k[:, 1:3], k[:, [0, 0]], rtol=1e-8)
    assert np.abs(k[:, 3:]).max() < 1e-8 * k[:, 0].min()
    np.testing.assert_allclose(rta.kappa_mean, k[:, 0], rtol=1e-8)
    assert 1.85 < k[0, 0] / k[1, 0] <= 2.0
    iso = thermal_conductivity(CU, temperatures=t, calculator=EMT(), isotope=True, **COMMON)
    assert np.all(iso.kappa[:, 0] < (1 - 1e-3) * k[:, 0])  # Cu: 69 % 63Cu, 31 % 65Cu
    lbte = thermal_conductivity(CU, temperatures=t, calculator=EMT(), method="lbte", **COMMON)
    assert np.all(lbte.kappa[:, 0] >= k[:, 0] * (1 - 1e-6)) and lbte.method == "lbte"


def test_files_and_summary(tmp_path):
    result = thermal_conductivity(CU, temperatures=[200.0, 300.0, 500.0], calculator=EMT(),
                                  **{**COMMON, "output_dir": tmp_path / "k"})
    fc3 = read_fc3_from_hdf5(result.files["fc3"])
    np.testing.assert_allclose(fc3, result.phono3py.fc3)
    with open(result.files["kappa_csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["temperature_K"]) for r in rows] == [200.0, 300.0, 500.0]
    assert float(rows[1]["kappa_xx_W_per_mK"]) == pytest.approx(result.kappa[1, 0], rel=1e-12)
    assert result.files["kappa_plot"].stat().st_size > 10_000
    summary = result.summary()
    assert set(summary["at"]) == {"200 K", "300 K", "500 K"}
    assert summary["at"]["300 K"]["kappa_mean_W_per_mK"] == pytest.approx(result.kappa_mean[1])


class Einstein(Calculator):
    """Each atom on a spring to where it sits in the undisplaced supercell: a harmonic energy, no anharmonicity."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        sites = np.round(atoms.get_scaled_positions(wrap=False) * 6) / 6  # fcc Cu 3x3x3: sites on a 1/3 grid
        u = (atoms.get_scaled_positions(wrap=False) - sites) @ atoms.cell.array
        self.results = {"energy": 0.5 * float(np.sum(u**2)), "forces": -u}


def test_a_harmonic_potential_is_refused():
    with pytest.raises(InvalidArgumentError, match="every third-order force constant is zero"):
        thermal_conductivity(CU, temperatures=[300.0], calculator=Einstein(), **COMMON)


@pytest.mark.parametrize("change, message", [
    ({"atoms": molecule("H2O")}, "3D periodic"),
    ({"temperatures": [0.0, 300.0]}, r"> 0 K"),
    ({"method": "bte"}, "method must be one of"),
    ({"mesh": [0, 4, 4]}, "mesh must be"),
    ({"mesh": [4.5, 4, 4]}, "mesh must be"),
    ({"cutoff_pair_distance": -1.0}, "cutoff_pair_distance"),
    ({"isotope": "yes"}, "isotope must be True or False"),
    ({"displacement": 0.0}, "displacement must be"),
    ({"supercell": [1000, 1000, 1000]}, "would hold"),
    ({"mesh": [200, 200, 200]}, "more than 1000000 points"),
    ({"method": "lbte", "mesh": [90, 90, 90], "temperatures": [300.0] * 20}, "LBTE collision matrix would take"),
])
def test_bad_input_is_named(change, message):
    kwargs = {"atoms": CU, "temperatures": [300.0], "calculator": EMT(), **COMMON, **change}
    with pytest.raises(InvalidArgumentError, match=message):
        thermal_conductivity(**kwargs)
