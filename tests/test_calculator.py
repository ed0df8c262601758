"""The ASE calculator: caching, property models, dtypes, checkpoint formats."""

import json
import shutil
import sys
import zipfile

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import read

from alignn_ase import (
    ALIGNNCalculator,
    InvalidArgumentError,
    InvalidStructureError,
    available_models,
    build_graph,
    evaluate,
    load_model,
    predict,
    save_model,
)

from .conftest import ROOT, UPSTREAM
from .helpers import calc64, random_crystal, smooth_model

HELD_OUT = ROOT / "scripts" / "distill" / "data" / "test.extxyz"
FORMATION_TEST = ROOT / "scripts" / "distill" / "data" / "formation_energy_test.extxyz"
REFERENCES = ROOT / "scripts" / "distill" / "data" / "elemental_references.json"


def test_default_potential_and_property_model_load_offline_and_follow_geometry():
    calc = ALIGNNCalculator(properties=["formation_energy_peratom"], device="cpu")
    assert "default" in available_models() and "formation_energy_peratom" in available_models()
    assert "distilled" in calc.model.card and "not DFT" in calc.model.card
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.calc = calc
    e0, p0 = atoms.get_potential_energy(), atoms.calc.get_property("formation_energy_peratom", atoms)
    atoms.set_cell(atoms.cell * 1.03, scale_atoms=True)
    assert atoms.get_potential_energy() != e0
    assert atoms.calc.get_property("formation_energy_peratom", atoms) != p0
    # trained on the teacher's total energies: Si near its -5.4 eV/atom (an untrained model gives ~0)
    assert -6.0 < atoms.get_potential_energy() / 2 < -4.5


def test_default_potential_tracks_its_teacher_on_held_out_structures():
    """A guard on the shipped weights: every 10th frame of the committed held-out set.

    On these 30 frames the shipped v5 gives 0.085 eV/atom and 0.133 eV/Å, its forces 0.90 times the teacher's
    (least-squares slope); the limits leave ~25 % for float rounding across machines. Measured: with its GCN
    layer re-initialised the model is off by 0.25 eV/atom and 0.30 eV/Å, and forces halved give a slope of 0.45.
    """
    frames = read(HELD_OUT, index="::10")
    results = predict(frames, progress=False)
    energy_mae = np.mean([abs(r["energy"] - a.get_potential_energy()) / len(a) for r, a in zip(results, frames)])
    predicted = np.concatenate([r["forces"].ravel() for r in results])
    teacher = np.concatenate([a.get_forces().ravel() for a in frames])
    assert energy_mae < 0.11  # eV/atom
    assert np.abs(predicted - teacher).mean() < 0.16  # eV/Å
    assert 0.8 < predicted @ teacher / (teacher @ teacher) < 1.1


def test_shipped_formation_energy_model_on_its_test_structures():
    """A guard on the shipped property model: its 195 committed test structures (labels from the teacher).

    The shipped v6 gives 0.126 eV/atom on all of them and 0.202 on the 13 below -3 eV/atom (v5 0.131 and 0.236); v4,
    which never saw labels below -3 eV/atom, gave 0.162 and 0.652, and predicting the labels' mean gives their MAD,
    0.99.
    """
    frames = read(FORMATION_TEST, index=":")
    labels = np.array([a.info["formation_energy_peratom"] for a in frames])
    results = predict(frames, properties=["formation_energy_peratom"], progress=False)
    error = np.abs(np.array([r["formation_energy_peratom"] for r in results]) - labels)
    assert len(frames) == 195
    assert error.mean() < 0.15  # eV/atom
    assert error[labels < -3.0].mean() < 0.26


def test_shipped_formation_energy_model_follows_the_geometry():
    """The property model's prediction moves with the geometry as the teacher's label does.

    On the bulk frames of the default potential's held-out parents (rattled, strained, MD, scans, relaxed; no
    property model trained on them) the label is (E_teacher - sum n mu) / N at each frame. Taking each model's mean
    error over a parent's frames out, the shipped v6 (trained on every bulk geometry) is off by 0.065 eV/atom; v5,
    trained on relaxed structures alone, by 0.097; the default potential's own energy by 0.024
    (scripts/distill/formation_from_potential.py --all-frames).
    """
    sys.path.insert(0, str(ROOT / "scripts" / "distill"))
    from formation_from_potential import within_parent_mae
    from make_formation_energy import BULK
    from references import formation_energy

    mu = json.loads(REFERENCES.read_text())["mu"]
    frames = [a for a in read(HELD_OUT, index=":") if a.pbc.all() and a.info.get("group") in BULK
              and set(a.get_chemical_symbols()) <= set(mu)]
    labels = np.array([formation_energy(a, mu) for a in frames])
    results = predict(frames, properties=["formation_energy_peratom"], progress=False)
    error = np.array([r["formation_energy_peratom"] for r in results]) - labels
    parents = [a.info["parent_id"] for a in frames]
    assert len(frames) > 250 and len(set(parents)) > 31
    assert within_parent_mae(error, parents) < 0.08  # eV/atom


def test_one_model_evaluation_per_geometry():
    atoms = random_crystal("Si2O3Na", seed=1)
    atoms.calc = calc64()
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_stress()
    atoms.get_potential_energies()
    assert atoms.calc.n_model_evaluations == 1
    e0 = atoms.get_potential_energy()
    changes = [
        lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 0.01),
        lambda a: a.set_cell(a.cell * 1.01, scale_atoms=True),
        lambda a: a.numbers.__setitem__(0, 13),
        lambda a: a.set_pbc((True, True, False)),
    ]
    for k, change in enumerate(changes, start=2):
        change(atoms)
        e = atoms.get_potential_energy()
        atoms.get_forces()
        assert atoms.calc.n_model_evaluations == k
        assert e != e0
        e0 = e


def test_property_models_follow_the_geometry():
    calc = ALIGNNCalculator(smooth_model(), properties=[UPSTREAM / "classic_link_log"], dtype="float64")
    assert "optb88vdw_bandgap" in calc.implemented_properties
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.calc = calc
    first = atoms.calc.get_property("optb88vdw_bandgap", atoms)
    atoms.rattle(0.1, seed=0)
    second = atoms.calc.get_property("optb88vdw_bandgap", atoms)
    assert np.isfinite(first) and first != second
    renamed = ALIGNNCalculator(smooth_model(), properties={"gap": UPSTREAM / "classic_link_log"})
    assert "gap" in renamed.implemented_properties


def test_float32_agrees_with_float64():
    atoms = random_crystal("Si2O3Na", seed=4)
    model = smooth_model()
    results = {}
    for dtype in ("float32", "float64"):
        a = atoms.copy()
        a.calc = ALIGNNCalculator(model, dtype=dtype)
        results[dtype] = (a.get_potential_energy(), a.get_forces())
    assert np.isclose(results["float32"][0], results["float64"][0], rtol=1e-5)
    assert np.abs(results["float32"][1] - results["float64"][1]).max() < 1e-4


def test_float32_accuracy_does_not_depend_on_where_the_atoms_sit_or_how_many_there_are():
    model = smooth_model()
    f64 = ALIGNNCalculator(model, dtype="float64")
    f32 = ALIGNNCalculator(model, dtype="float32")
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.05]])
    reference = f64.get_forces(molecule)
    for offset in (0.0, 1e3, 1e4):  # float32 coordinates would round bond vectors by ~1e-3 Å at 1e4 Å
        far = molecule.copy()
        far.translate([offset] * 3)
        assert np.abs(f32.get_forces(far) - reference).max() < 1e-4, offset
    big = bulk("Si", "diamond", a=5.43, cubic=True).repeat((5, 5, 5))  # 1000 atoms
    big.rattle(0.05, seed=1)
    e32, e64 = f32.get_potential_energy(big), f64.get_potential_energy(big)
    assert e32 == pytest.approx(f32.results["energies"].sum(), abs=1e-9)  # summed in float64
    assert abs(e32 - e64) < 2e-4  # a float32 sum over 1000 site energies was off by ~1e-3 eV


def test_calculator_arguments_are_checked_and_recorded():
    with pytest.raises(InvalidArgumentError, match=r"\['path'\] \(upstream ALIGNN's calculator .* model="):
        ALIGNNCalculator(path="/nonexistent/model")
    with pytest.raises(InvalidArgumentError, match="skn"):
        ALIGNNCalculator(skn=0.0)
    calc = ALIGNNCalculator(dtype="float64", skin=0.5, directory=".")
    with pytest.raises(InvalidArgumentError, match="make a new one"):
        calc.set(dtype="float32")
    record = calc.todict()  # what ase.db stores as calculator_parameters
    assert record["model"].endswith("alignn-ase-distill-v5") and record["dtype"] == "float64"
    assert record["skin"] == 0.5 and record["properties"] == {}


def test_forces_also_under_inference_mode():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=2)
    calc = calc64()
    expected = calc.get_forces(atoms)
    calc.reset()
    with torch.inference_mode():
        np.testing.assert_allclose(calc.get_forces(atoms), expected, atol=1e-12)
        np.testing.assert_allclose(calc.predict([atoms])[0]["forces"], expected, atol=1e-12)
        made_inside = calc64()  # its weights made in inference mode too
        np.testing.assert_allclose(made_inside.get_forces(atoms), expected, atol=1e-12)
        # the public functions as well, with a graph built in inference mode
        graph = build_graph(atoms, calc.model.graph_settings)
        out = evaluate(calc.model, graph)
    np.testing.assert_allclose(out["forces"].numpy(), expected, atol=1e-12)


def test_a_failed_calculation_leaves_no_results_of_the_previous_structure():
    """ASE serves calc.results for calc.atoms: after an error, the last structure's results must be gone."""
    from ase.build import molecule

    calc = calc64()
    calc.calculate(bulk("Si", "diamond", a=5.43), ["energy"])
    si_energy = calc.results["energy"]
    mol = molecule("H2O")
    with pytest.raises(PropertyNotImplementedError, match="3D cell"):
        calc.calculate(mol, ["energy", "stress"])
    # refused before the new geometry is taken: the results kept are still those of calc.atoms, the Si cell
    assert calc.atoms.get_chemical_formula() == "Si2" and calc.results["energy"] == si_energy
    assert calc.get_potential_energy(mol) != si_energy
    overlapping = Atoms("Si2", positions=[[0, 0, 0], [0.05, 0, 0]])
    with pytest.raises(InvalidStructureError, match="apart"):
        calc.calculate(overlapping, ["energy"])
    assert calc.results == {}


def test_save_and_reload_round_trip(tmp_path):
    model = smooth_model(seed=3)
    folder = save_model(model, tmp_path / "mine", card="# test card\n")
    atoms = random_crystal("Si2O3Na", seed=2)
    e = []
    for m in (model, load_model(folder)):
        a = atoms.copy()
        a.calc = ALIGNNCalculator(m, dtype="float64")
        e.append(a.get_potential_energy())
    assert e[0] == pytest.approx(e[1], rel=1e-12)
    # An upstream model re-saved in alignn-ase's format keeps its numbers.
    upstream = load_model(UPSTREAM / "pure_2_2_64_cgcnn")
    again = load_model(save_model(upstream, tmp_path / "resaved"))
    a1, a2 = atoms.copy(), atoms.copy()
    a1.calc, a2.calc = calc64(upstream), calc64(again)
    assert a1.get_potential_energy() == pytest.approx(a2.get_potential_energy(), rel=1e-12)
    # Float64 weights (a float64 training run's) stay exact when loaded in float64, by name or by the calculator.
    model64 = smooth_model(seed=4).double()
    with torch.no_grad():
        next(model64.parameters()).add_(1e-12)  # below float32's resolution
    folder64 = save_model(model64, tmp_path / "mine64")
    for loaded in (load_model(folder64, torch.float64), ALIGNNCalculator(str(folder64), dtype="float64").model):
        for (name, p), q in zip(model64.state_dict().items(), loaded.state_dict().values()):
            assert q.dtype == p.dtype and torch.equal(q, p), name
    assert load_model(folder64).float_dtype == torch.float32


def test_upstream_zip_with_subfolder(tmp_path):
    src = UPSTREAM / "pure_atomic_number"
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("config.json", "best_model.pt"):
            zf.write(src / name, f"pure_atomic_number/{name}")
    atoms = random_crystal("Si2O3Na", seed=0)
    a1, a2 = atoms.copy(), atoms.copy()
    a1.calc = calc64(load_model(archive))
    a2.calc = calc64(load_model(src))
    assert a1.get_potential_energy() == a2.get_potential_energy()


def test_checkpoint_dict_and_latest_checkpoint_file(tmp_path):
    folder = tmp_path / "classic"
    shutil.copytree(UPSTREAM / "classic_cls_logit", folder)
    model = load_model(folder)
    assert not model.is_potential and model.property_name == "is_metal"


def test_a_loaded_model_keeps_its_dtype_unless_told():
    """A model object runs in its own dtype (a float64 model gives float64 results); names and paths load in
    float32; an explicit dtype wins."""
    assert ALIGNNCalculator(smooth_model().double(), device="cpu").dtype == torch.float64
    assert ALIGNNCalculator(smooth_model(), device="cpu").dtype == torch.float32
    assert ALIGNNCalculator(smooth_model().double(), device="cpu", dtype="float32").dtype == torch.float32
    assert ALIGNNCalculator(UPSTREAM / "pure_2_2_64_cgcnn", device="cpu").dtype == torch.float32


def test_stress_of_a_molecule_is_refused_clearly():
    from ase.build import molecule

    mol = molecule("H2O")
    mol.calc = calc64()
    forces = mol.get_forces()
    with pytest.raises(PropertyNotImplementedError, match="3D cell"):
        mol.get_stress()
    # the refusal leaves this geometry's results (what ASE's writers and ase.db save)
    assert mol.calc.get_property("forces", mol, allow_calculation=False) is not None
    np.testing.assert_array_equal(mol.calc.results["forces"], forces)


def test_atoms_without_neighbours_are_warned_about_once(caplog):
    """bcc Cs (nearest neighbours 5.24 Å apart) has no bond under a 5 Å cut-off: the calculator says so,
    once; bcc Cs compressed to 4.8 Å neighbours and a single isolated atom do not warn."""
    calc = calc64()
    far = bulk("Cs", "bcc", a=6.05, cubic=True)
    near = bulk("Cs", "bcc", a=5.55, cubic=True)
    with caplog.at_level("WARNING", logger="alignn_ase.calculator"):
        for atoms in (near, Atoms("Cs", positions=[[0, 0, 0]])):
            atoms.calc = calc
            atoms.get_potential_energy()
        assert "no neighbour" not in caplog.text
        far.calc = calc
        far.get_potential_energy()
        assert "2 of 2 atoms have no neighbour within this potential's 5.00 Å cut-off" in caplog.text
        far.rattle(0.01, seed=0)
        far.get_potential_energy()
    assert caplog.text.count("no neighbour") == 1
    caplog.clear()
    with caplog.at_level("WARNING", logger="alignn_ase.calculator"):  # the one-atom primitive cell too
        primitive = bulk("Cs", "bcc", a=6.05)
        primitive.calc = calc64()
        primitive.get_potential_energy()
    assert "1 of 1 atoms have no neighbour" in caplog.text
