"""The ``alignn-ase`` command line (tiny sizes, shipped default potential) and the self-test
behind ``alignn-ase check``."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.io import read, write

from alignn_ase import load_model, save_model
from alignn_ase.check import CHECKS, builtin_structures, run_checks
from alignn_ase.cli import build_parser, main, make_calculator

from .conftest import FIXTURES
from .helpers import smooth_model


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Input structures in three formats, with the working directory in tmp_path."""
    monkeypatch.chdir(tmp_path)
    write("Si.cif", bulk("Si", "diamond", a=5.43))
    write("POSCAR", bulk("Si", "diamond", a=5.5, cubic=True), format="vasp")
    write("two.extxyz", [bulk("Si", "diamond", a=5.43), bulk("Cu", "fcc", a=3.6)])
    return tmp_path


#: a diamond cell whose one site is half Si, half Ge (ASE reads it as Ge alone)
PARTIAL_CIF = """data_SiGe
_cell_length_a 5.5
_cell_length_b 5.5
_cell_length_c 5.5
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F d -3 m'
_symmetry_Int_Tables_number 227
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Si1 Si 0 0 0 0.5
Ge1 Ge 0 0 0 0.5
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_relax(files, capsys):
    code, out, err = run(capsys, "relax", "POSCAR", "--max-steps", "3", "--fmax", "1e-6", "--trajectory", "r.traj")
    assert code == 0
    summary = json.loads(out)
    assert summary["steps"] == 3 and summary["converged"] is False
    assert "alignn-ase: warning: relaxation did not converge" in err
    relaxed = read(files / "POSCAR_relaxed.extxyz", format="extxyz")  # (ASE would guess VASP from the name)
    assert len(relaxed) == 8 and relaxed.get_potential_energy() == pytest.approx(summary["energy_eV"])
    assert len(read(files / "r.traj", ":")) == 4


def test_md(files, capsys):
    code, out, _ = run(capsys, "md", "Si.cif", "--steps", "6", "--log-interval", "2", "--repeat", "2", "1", "1")
    assert code == 0
    summary = json.loads(out)
    assert summary["steps"] == 6
    assert len((files / "md_output" / "md.csv").read_text().splitlines()) == 1 + 4
    assert len(read(files / "md_output" / "md.traj", ":")) == 4
    assert len(read(files / "md_output" / "final.extxyz")) == 4
    assert (files / "md_output" / "md.png").stat().st_size > 1000


def test_md_continues_with_the_final_velocities_and_takes_the_watchdog_limits(files, capsys):
    import csv

    def rows(folder):
        with open(files / folder / "md.csv") as handle:
            return list(csv.DictReader(handle))

    assert run(capsys, "md", "Si.cif", "--repeat", "2", "2", "2", "--steps", "4", "--log-interval", "2")[0] == 0
    assert run(capsys, "md", "md_output/final.extxyz", "--keep-velocities", "--steps", "2", "--output-dir", "again",
               "--ensemble", "nve")[0] == 0
    last, first = rows("md_output")[-1], rows("again")[0]
    assert float(first["temperature_K"]) == pytest.approx(float(last["temperature_K"]), rel=1e-6)
    code, _, err = run(capsys, "md", "Si.cif", "--repeat", "2", "2", "2", "--steps", "2", "--min-distance", "2.4",
                       "--output-dir", "watched")
    assert code == 1 and "watchdog limit 2.4 Å" in err


def test_phonons(files, capsys):
    argv = [
        "phonons",
        "Si.cif",
        "--supercell",
        "2",
        "2",
        "2",
        "--mesh",
        "4",
        "4",
        "4",
        "--tmax",
        "300",
        "--tstep",
        "100",
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    summary = json.loads(out)
    assert summary["supercell_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert set(summary["thermal"]) == {"0 K", "300 K"}
    assert summary["atoms_per_primitive_cell"] == 2  # Si: thermal properties per mole of Si2 cells
    at_300 = summary["thermal"]["300 K"]
    assert at_300["heat_capacity_J_per_K_per_mol_atoms"] == at_300["heat_capacity_J_per_K_per_mol_cells"] / 2
    for name in ("phonopy_params.yaml", "band.yaml", "total_dos.dat", "thermal_properties.yaml", "phonons.png"):
        assert (files / "phonons_output" / name).is_file()


def test_phonons_and_kappa_with_a_born_file(files, capsys):
    """--born (phonons and kappa) reads phonopy's BORN file: the summary says the correction is on; a file that does
    not fit the structure (one charge line for NaCl's two independent atoms) is a one-line error."""
    write("NaCl.cif", bulk("NaCl", "rocksalt", a=5.64))
    lines = ["14.4", " ".join(["2.4", "0", "0", "0", "2.4", "0", "0", "0", "2.4"]),
             " ".join(["1.1", "0", "0", "0", "1.1", "0", "0", "0", "1.1"])]
    (files / "SHORT").write_text("\n".join(lines) + "\n")
    (files / "BORN").write_text("\n".join([*lines, lines[-1].replace("1.1", "-1.1")]) + "\n")
    common = ["phonons", "NaCl.cif", "--supercell", "2", "2", "2", "--mesh", "2", "2", "2", "--tmax", "0"]
    code, out, _ = run(capsys, *common, "--born", "BORN")
    assert code == 0 and json.loads(out)["non_analytic_correction"] is True
    code, _, err = run(capsys, *common, "--born", "SHORT")
    assert code == 1 and err.startswith("alignn-ase: error: SHORT: not a phonopy BORN file for this structure")
    kappa = ["kappa", "NaCl.cif", "--supercell", "2", "2", "2", "--mesh", "3", "3", "3", "--tmin", "300",
             "--tmax", "300"]
    code, out, _ = run(capsys, *kappa, "--born", "BORN")
    assert code == 0 and json.loads(out)["non_analytic_correction"] is True
    code, _, err = run(capsys, *kappa, "--born", "SHORT")
    assert code == 1 and err.startswith("alignn-ase: error: SHORT: not a phonopy BORN file for this structure")


def test_qha(files, capsys):
    write("Cu.cif", bulk("Cu", "fcc", a=3.63))  # near the default potential's own lattice constant
    code, out, err = run(capsys, "qha", "Cu.cif", "--supercell", "3", "3", "3", "--mesh", "6", "6", "6", "--points",
                         "5", "--tmax", "300", "--tstep", "50", "--range", "0.04")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["eos"] == "vinet" and len(summary["volumes_A3_per_atom"]) == 5 and "0 K" in summary["at"]
    for name in ("qha.csv", "e_v.csv", "qha.png"):
        assert (files / "qha_output" / name).is_file()


def test_kappa(files, capsys):
    """The default potential's fcc Cu: a cubic tensor at each reported temperature, falling with temperature, and
    the files; a --phonon-supercell of two numbers is a one-line error."""
    write("Cu.cif", bulk("Cu", "fcc", a=3.63))
    common = ("kappa", "Cu.cif", "--supercell", "3", "3", "3", "--mesh", "5", "5", "5", "--tmin", "200", "--tmax",
              "800", "--tstep", "300")
    code, out, err = run(capsys, *common)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["method"] == "rta" and summary["mesh"] == [5, 5, 5] and set(summary["at"]) == {"200 K", "800 K"}
    low, high = (summary["at"][t]["kappa_W_per_mK"] for t in ("200 K", "800 K"))
    assert low[0] > high[0] > 0 and low[0] == pytest.approx(low[2], rel=1e-8)
    for name in ("phono3py_params.yaml", "fc2.hdf5", "fc3.hdf5", "kappa.csv", "kappa.png"):
        assert (files / "kappa_output" / name).is_file()
    code, _, err = run(capsys, *common, "--phonon-supercell", "4", "4")
    assert code == 1 and err.startswith("alignn-ase: error: --phonon-supercell takes 1, 3 or 9 numbers")


def test_neb(files, capsys):
    """Two end points of a vacancy hop in Cu (from one file each): the band's summary and files; a final state
    with other atoms is a one-line error."""
    cell = bulk("Cu", "fcc", a=3.63, cubic=True).repeat(2)
    del cell[0]
    initial, final = cell.copy(), cell.copy()
    final.positions[0] = bulk("Cu", "fcc", a=3.63, cubic=True).positions[0]  # the neighbour moved into the vacancy
    write("initial.extxyz", initial)
    write("final.extxyz", final)
    code, out, err = run(capsys, "neb", "initial.extxyz", "final.extxyz", "--images", "3", "--max-steps", "5",
                         "--dtype", "float64")
    assert code == 0, err
    summary = json.loads(out)
    assert len(summary["energies_eV"]) == 5 and summary["energies_eV"][0] == 0.0 and summary["steps"] == 5
    assert summary["barrier_forward_eV"] == max(summary["energies_eV"]) > 0
    for name in ("neb.traj", "neb.csv", "neb.png"):
        assert (files / "neb_output" / name).is_file()
    write("other.extxyz", initial[:-1])
    code, _, err = run(capsys, "neb", "initial.extxyz", "other.extxyz")
    assert code == 1 and "same atoms" in err


def test_phonons_with_a_supercell_matrix(files, capsys):
    """Nine numbers are a supercell matrix in phonopy's convention, zeros and negative entries included: here
    the primitive diamond cell to the conventional cubic one."""
    matrix = ["-1", "1", "1", "1", "-1", "1", "1", "1", "-1"]
    code, out, _ = run(capsys, "phonons", "Si.cif", "--supercell", *matrix, "--mesh", "2", "2", "2", "--tmax", "0")
    assert code == 0
    summary = json.loads(out)
    assert summary["supercell_matrix"] == [[-1, 1, 1], [1, -1, 1], [1, 1, -1]]
    assert len(summary["gamma_frequencies_THz"]) == 6 and summary["acoustic_ok"]


def test_md_summary_of_a_molecule_is_standard_json(files, capsys):
    write("co2.xyz", molecule("CO2"))
    code, out, _ = run(capsys, "md", "co2.xyz", "--ensemble", "nve", "--steps", "2")
    assert code == 0

    def no_nan(name):
        raise AssertionError(f"{name} is not JSON")

    summary = json.loads(out, parse_constant=no_nan)
    assert summary["mean_pressure_GPa_second_half"] is None and summary["mean_volume_A3_second_half"] is None


def test_relax_then_eos(files, capsys):
    code, out, _ = run(capsys, "relax", "Si.cif", "-o", "relaxed.cif", "--fix-symmetry")
    assert code == 0 and json.loads(out)["converged"]
    relaxed = read(files / "relaxed.cif")
    assert len(relaxed) == 2 and not relaxed.constraints  # the symmetry constraint is not written out
    code, out, _ = run(capsys, "eos", "relaxed.cif", "--points", "5", "--range", "0.04", "--output-dir", "e")
    assert code == 0
    summary = json.loads(out)
    assert len(summary["volumes_A3"]) == 5 and np.isfinite(summary["b0_GPa"])
    assert summary["volumes_A3"][0] < summary["v0_A3"] < summary["volumes_A3"][-1]
    assert (files / "e" / "eos.png").is_file() and (files / "e" / "eos.csv").is_file()
    code, out, _ = run(capsys, "elastic", "relaxed.cif", "--clamped-ions", "--output-dir", "el")
    summary = json.loads(out)
    assert code == 0 and np.array(summary["C_GPa"]).shape == (6, 6) and summary["relax_ions"] is False
    assert summary["bulk_modulus_GPa"]["voigt"] > 0 and (files / "el" / "elastic.json").is_file()


def test_predict_json_and_extxyz(files, capsys):
    code, out, _ = run(capsys, "predict", "two.extxyz", "Si.cif", "-o", "p.json")
    assert code == 0 and "3 structure(s)" in out
    data = json.loads((files / "p.json").read_text())
    assert [r["formula"] for r in data["structures"]] == ["Si2", "Cu", "Si2"]
    assert [r["index"] for r in data["structures"]] == [0, 1, 0]
    first = data["structures"][0]
    assert np.shape(first["forces"]) == (2, 3) and np.shape(first["stress"]) == (6,)
    assert data["structures"][2]["energy"] == pytest.approx(first["energy"], rel=1e-5)

    write("h2o.xyz", molecule("H2O"))
    code, _, _ = run(capsys, "predict", "h2o.xyz", "-o", "molecule.json")
    assert code == 0
    (water,) = json.loads((files / "molecule.json").read_text())["structures"]
    assert "stress" not in water and np.shape(water["forces"]) == (3, 3)

    code, _, _ = run(capsys, "predict", "two.extxyz", "-o", "p.extxyz")
    assert code == 0
    frames = read(files / "p.extxyz", ":")
    assert len(frames) == 2
    assert frames[0].get_potential_energy() == pytest.approx(first["energy"], rel=1e-5)
    np.testing.assert_allclose(frames[0].get_forces(), first["forces"], atol=1e-5)


def test_predict_names_the_file_and_frame_of_a_bad_structure(files, capsys):
    bad = bulk("Si", "diamond", a=5.43)
    bad.positions[1] = bad.positions[0] + 0.1
    write("mixed.extxyz", [bulk("Cu", "fcc", a=3.6), bad])
    code, _, err = run(capsys, "predict", "two.extxyz", "mixed.extxyz", "-o", "p.json")
    assert code == 1
    assert err.startswith("alignn-ase: error: mixed.extxyz, frame 1: structure 3 (of 4): atoms 0 (Si) and 1 (Si)")


def test_predict_with_a_property_model(files, capsys):
    model = FIXTURES / "upstream" / "classic_link_log"  # a small upstream band-gap model
    code, _, _ = run(capsys, "predict", "two.extxyz", "--property", str(model), "-o", "p.extxyz")
    assert code == 0
    frames = read(files / "p.extxyz", ":")
    assert all(np.isfinite(f.info["optb88vdw_bandgap"]) for f in frames)
    assert frames[0].info["optb88vdw_bandgap"] != frames[1].info["optb88vdw_bandgap"]


def test_predict_writes_a_classifier_per_structure_whatever_the_atom_count(files, capsys):
    # two log-probabilities on a 2-atom cell used to land in atoms.arrays, as if they were per-atom values
    write("mixed.extxyz", [bulk("Si"), bulk("Si", cubic=True)])
    model = FIXTURES / "upstream" / "classic_cls_logit"
    assert run(capsys, "predict", "mixed.extxyz", "--property", str(model), "-o", "c.extxyz")[0] == 0
    for frame in read(files / "c.extxyz", ":"):
        (key,) = [k for k in frame.info if k not in ("energy", "free_energy", "stress")] or [None]
        assert key is not None and len(frame.info[key]) == 2 and key not in frame.arrays


def test_info(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert load_model().card.splitlines()[0] in out  # the model card's title
    assert "architecture:" in out and "parameters:" in out
    # the default potential's radius graph has no neighbour cap to print
    assert "graph:         radius, cutoff 5.0 Å, three-body cutoff 3.5 Å" in out and "max_neighbors" not in out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_command(capsys, dtype):
    """The shipped default potential passes its own self-test, in float64 and (tolerances x30) in float32, the
    dtype the workflow commands compute in."""
    code, out, _ = run(capsys, "check", "--dtype", dtype)
    lines = out.strip().splitlines()
    assert code == 0, out
    passed = sum(line.startswith("PASS") for line in lines)
    skipped = [line for line in lines if line.startswith("SKIP")]  # structures with elements the model lacks
    n = len(CHECKS)
    assert passed >= 2 * n and passed + n * len(skipped) == 4 * n
    assert lines[-1].startswith(f"{passed} passed, 0 failed, {len(skipped)} skipped ({dtype})")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["relax", "missing.cif"], "no such file: missing.cif"),
        (["md", "Si.cif", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["md", "Si.cif", "--ensemble", "nvt_langevin", "--timestep", "0"], "timestep_fs > 0"),
        (["phonons", "Si.cif", "--supercell", "2", "2"], "--supercell takes 1, 3 or 9 numbers"),
        (["phonons", "Si.cif", "--supercell", "2", "0", "2"], "--supercell needs positive integers"),
        (["phonons", "Si.cif", "--supercell", "2", "0", "0", "0", "2", "0", "0", "0", "1.5"], "3x3 matrix.*integers"),
        (["phonons", "Si.cif", "--tstep", "0"], "--tstep > 0"),
        (["md", "Si.cif", "--ensemble", "nvt_nose_hoover", "--temperature", "0"], "needs temperature_K > 0"),
        (["predict", "Si.cif", "-o", "p.txt"], "--output must end in .json or .extxyz"),
        (["eos", "garbage.cif"], "cannot read a structure from garbage.cif"),
        (["relax", "Si.cif", "--model", "formation_energy_peratom"], "is a property model .*--property"),
        (["md", "Si.cif", "--seed", "-1"], "bad seed=-1"),
        (["md", "Si.cif", "--friction", "-1", "--seed", "-2"], "bad friction_per_fs=-1.0, seed=-2"),
        (["md", "Si.cif", "--ensemble", "nvt_bussi", "--tdamp", "0"], "tdamp_fs=0"),
        (["md", "Si.cif", "--ensemble", "npt_berendsen", "--pdamp", "0"], "pdamp_fs=0"),
        (["md", "Si.cif", "--repeat", "0", "1", "1"], "--repeat needs positive integers"),
        (["md", "water.xyz", "--repeat", "2", "2", "2"], "--repeat 2 2 2 repeats along a non-periodic direction"),
        (["phonons", "Si.cif", "--mesh", "-5"], "mesh must be a positive length"),
        (["phonons", "Si.cif", "--mesh", "0"], "mesh must be a positive length"),
        (["phonons", "Si.cif", "--tmin", "-100"], "temperatures must be .* >= 0 K"),
        (["relax", "two.extxyz", "--index", "5"], "two.extxyz holds 2 frame\\(s\\): none at index '5'"),
        (["relax", "two.extxyz", "--index", "0:2"], "--index 0:2 picks 2 frames"),
        (["relax", "Si.cif", "--pressure", "nan"], "pressure_GPa must be a finite number"),
        (["relax", "Si.cif", "--fmax", "nan"], "finite fmax > 0"),
        (["md", "Si.cif", "--min-distance", "nan"], "watchdog limits must be positive"),
        (["phonons", "Si.cif", "--tmin", "nan"], "need finite temperatures"),
        (["phonons", "Si.cif", "--tstep", "1e-9"], "at most 100000 temperatures"),
        (["phonons", "Si.cif", "--supercell", "inf"], "finite, positive length"),
        (["phonons", "Si.cif", "--displacement", "nan"], "displacement must be a finite number"),
        (["eos", "Si.cif", "--range", "1e-4"], "0.005 <= volume_range"),
        (["relax", "SiGe.cif"], r"SiGe.cif has \d+ partially occupied site"),
    ],
)
def test_user_errors_are_one_line(files, capsys, argv, message):
    (files / "garbage.cif").write_text("this is not a CIF file\n")
    (files / "SiGe.cif").write_text(PARTIAL_CIF)
    write(files / "water.xyz", molecule("H2O"))
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("alignn-ase: error: ") and re.search(message, err)


def test_check_that_checks_nothing_fails(tmp_path, capsys):
    """A model covering none of the built-in structures' elements: every structure skipped, exit status 1."""
    save_model(smooth_model(elements=["H", "C", "N", "O"]), tmp_path / "organic")
    code, out, err = run(capsys, "check", "--model", str(tmp_path / "organic"))
    assert code == 1 and "0 passed, 0 failed, 4 skipped" in out and "nothing was checked" in err


def test_debug_shows_the_traceback(files):
    with pytest.raises(FileNotFoundError):
        main(["relax", "missing.cif", "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "relax", "missing.cif"])


def test_console_script_missing_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "alignn_ase.cli", "relax", "nope.cif"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr == "alignn-ase: error: no such file: nope.cif\n"


def test_a_closed_pipe_stops_the_command_quietly(tmp_path):
    """``alignn-ase info | head -1``: the reader leaves before the card is written; the command stops with the
    status of a SIGPIPE and no error message, as Unix tools do (it used to print "error: [Errno 32] Broken pipe")."""
    proc = subprocess.Popen([sys.executable, "-m", "alignn_ase.cli", "info"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the child, still importing, writes anything
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert stderr == ""


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"relax", "md", "phonons", "eos", "predict", "info", "models", "check", "train", "evaluate",
                            "elastic", "qha", "neb", "kappa"}
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: alignn-ase {name}" in capsys.readouterr().out


# ------------------------------------------------------------------ the self-test itself


class NetForceAlongA1(EMT):
    """EMT plus a small force on every atom along the first cell vector (rotates with the structure)."""

    def calculate(self, atoms=None, *args, **kwargs):
        super().calculate(atoms, *args, **kwargs)
        a1 = atoms.cell.array[0] / np.linalg.norm(atoms.cell.array[0])
        self.results["forces"] = self.results["forces"] + 5e-4 * a1


class NaNForLargeCells(EMT):
    """EMT whose forces and stress are NaN for cells of more than 4 atoms."""

    def calculate(self, atoms=None, *args, **kwargs):
        super().calculate(atoms, *args, **kwargs)
        if len(atoms) > 4:
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)
            self.results["stress"] = np.full_like(self.results["stress"], np.nan)


class FlippedStress(EMT):
    """EMT with the stress sign flipped: what the self-test is there to catch."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        if "stress" in self.results:
            self.results["stress"] = -self.results["stress"]


def test_self_test_passes_a_correct_calculator_and_fails_a_flipped_stress():
    cu3au = {"Cu3Au": builtin_structures()["Cu3Au"]}
    good = run_checks(EMT(), cu3au)
    assert [r.passed for r in good] == [True] * len(CHECKS)
    bad = {r.check: r.passed for r in run_checks(FlippedStress(), cu3au)}
    assert bad["forces = -dE/dx"] and bad["rotation invariance"] and bad["2x2x2 supercell extensivity"]
    assert not bad["stress = (1/V) dE/dε"] and not bad["stress units and sign (pressure)"]
    # a force that turns with the cell: invisible to the rotation check, caught by the net force
    drift = {r.check: r.passed for r in run_checks(NetForceAlongA1(), cu3au)}
    assert drift["rotation invariance"] and not drift["zero net force"]
    # NaN in the supercell's forces and stress, the energy fine: no comparison with NaN may pass
    nan = {r.check: r.passed for r in run_checks(NaNForLargeCells(), cu3au)}
    assert nan["forces = -dE/dx"] and not nan["2x2x2 supercell extensivity"]


def test_self_test_skips_unsupported_elements():
    from alignn_ase.errors import UnsupportedElementError

    class OnlyCopper(EMT):
        def calculate(self, atoms=None, *args, **kwargs):
            if set(atoms.get_chemical_symbols()) - {"Cu", "Au"}:
                raise UnsupportedElementError("this model knows Cu and Au only")
            super().calculate(atoms, *args, **kwargs)

    results = run_checks(OnlyCopper())
    skipped = [r for r in results if r.passed is None]
    assert {r.structure for r in skipped} == {"Si2", "NaCl"} and "Cu and Au only" in skipped[0].line()
    assert all(r.passed for r in results if r.structure == "Cu3Au")


def test_compile_option_reaches_the_calculator():
    """``--compile`` (a shared option of every model command) asks the calculator to compile its models."""
    for command in ("relax", "md", "phonons", "eos", "check"):
        argv = [command] if command == "check" else [command, "Si.cif"]
        assert make_calculator(build_parser().parse_args([*argv, "--compile"])).compiled
        assert not make_calculator(build_parser().parse_args(argv)).compiled


def test_commands_compute_in_float32_unless_told_and_check_in_float64():
    """check's float64 default must not leak into the other commands (argparse shares the option between them)."""
    parser = build_parser()
    for command in ("relax", "md", "phonons", "eos", "predict"):
        assert make_calculator(parser.parse_args([command, "Si.cif"])).dtype == torch.float32, command
        assert make_calculator(parser.parse_args([command, "Si.cif", "--dtype", "float64"])).dtype == torch.float64


def test_outputs_are_checked_before_the_work(files, capsys):
    code, out, err = run(capsys, "relax", "POSCAR", "-o", "r.foo")
    assert code == 1 and out == "" and "cannot write structures to r.foo" in err
    assert not list(files.glob("*_relaxed*"))
    code, _, _ = run(capsys, "relax", "POSCAR", "--max-steps", "1", "-o", "new/folder/r.extxyz")
    assert code == 0 and len(read(files / "new" / "folder" / "r.extxyz")) == 8
    write("h2o.xyz", molecule("H2O"))
    code, _, err = run(capsys, "relax", "h2o.xyz")
    assert code == 1 and "use --fixed-cell" in err
    (files / "folder").mkdir()
    code, _, err = run(capsys, "predict", "folder")
    assert code == 1 and "folder is a folder, not a structure file" in err


def test_predict_refuses_to_write_non_finite_results(files, capsys):
    model = smooth_model()
    with torch.no_grad():
        for weight in model.readout.parameters():
            weight.fill_(3e38)  # finite weights, site energies float32 cannot hold
    save_model(model, files / "overflowing")
    for output in ("p.json", "p.extxyz"):
        code, _, err = run(capsys, "predict", "two.extxyz", "--model", "overflowing", "-o", output)
        assert code == 1 and "non-finite results for two.extxyz, frame 0; nothing written" in err
        assert not (files / output).exists()


def test_evaluate_tests_potentials_and_property_models_on_labelled_files(files, capsys):
    from alignn_ase.training import evaluate_dataset

    frames = []
    for i, a in enumerate([bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Al", "fcc", a=4.05, cubic=True)] * 2):
        a = a.copy()
        a.rattle(0.05, seed=i)
        a.calc = EMT()
        a.get_stress()
        a.info.update(epa=a.get_potential_energy() / len(a), metal=int(i % 2), id=f"s{i}")
        frames.append(a)
    write("labelled.extxyz", frames)
    save_model(smooth_model(elements=["Cu", "Al"]), "pot")
    assert main(["evaluate", "labelled.extxyz", "--model", "pot", "-o", "ev_pot"]) == 0
    printed = capsys.readouterr().out
    expected = evaluate_dataset(load_model("pot", "float64"), "labelled.extxyz", {"kind": "forcefield"}, "ref")
    assert f"force_mae_eV_per_A: {expected['force_mae_eV_per_A']:.6g}" in printed
    assert json.loads((files / "ev_pot" / "test_metrics.json").read_text()) == pytest.approx(expected)
    # a regression model against its own property name, then a classifier against another label
    classic = str(FIXTURES / "upstream" / "classic_4_4_256")
    # the file has no formation_energy_peratom label: named, exit status 1
    assert main(["evaluate", "labelled.extxyz", "--model", classic]) == 1
    assert "no value for target 'formation_energy_peratom'" in capsys.readouterr().err
    assert main(["evaluate", "labelled.extxyz", "--model", classic, "--target", "epa", "-o", "ev_reg"]) == 0
    assert "mae" in json.loads((files / "ev_reg" / "test_metrics.json").read_text())
    assert main(["evaluate", "labelled.extxyz", "--model", str(FIXTURES / "upstream" / "classic_cls_logit"),
                 "--target", "metal", "-o", "ev_cls"]) == 0
    assert json.loads((files / "ev_cls" / "test_metrics.json").read_text())["n"] == 4
