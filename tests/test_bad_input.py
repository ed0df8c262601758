"""Bad input gets a clear alignn-ase exception that names the problem."""

import dataclasses
import json
import re
import shutil
import zipfile

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from alignn_ase import (
    ALIGNNCalculator,
    AlignnAseError,
    ConvergenceWarning,
    CheckpointError,
    InvalidArgumentError,
    InvalidStructureError,
    UnknownModelError,
    UnsupportedElementError,
    build_graph,
    load_model,
    save_model,
)

from .conftest import UPSTREAM
from .helpers import au_hop_on_al100, smooth_model


@pytest.fixture(scope="module")
def calc():
    return ALIGNNCalculator(smooth_model(), dtype="float64")


def _energy(atoms, calc):
    atoms.calc = calc
    return atoms.get_potential_energy()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Atoms(), "no atoms"),
        (lambda: Atoms("Si2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "atom 1 .*non-finite"),
        (lambda: Atoms("Si", cell=[[np.inf, 0, 0], [0, 3, 0], [0, 0, 3]], pbc=True), "cell has non-finite"),
        (lambda: Atoms("Si", pbc=True), "direction 0 is periodic .*zero length"),
        (lambda: Atoms("Si", cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True), "linearly dependent"),
        (lambda: Atoms("SiC", positions=[[0, 0, 0], [0.1, 0, 0]]), r"atoms 0 \(Si\) and 1 \(C\) are 0.1000 Å apart"),
        (lambda: Atoms("Si", cell=[0.2, 5, 5], pbc=True), "periodic image"),
    ],
)
def test_bad_structures(make, match, calc):
    with pytest.raises(InvalidStructureError, match=match):
        _energy(make(), calc)


def test_far_unwrapped_atoms_of_a_periodic_cell_are_not_spread_out(calc):
    near = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 2.3]], cell=[5, 5, 5], pbc=True)
    far = near.copy()
    far.positions[1, 0] += 5 * 1e6  # a million cells away along a periodic direction: the same structure
    assert _energy(far, calc) == pytest.approx(_energy(near, calc), abs=1e-6)


@pytest.mark.parametrize("far", [(1e6, 0, 0), (2500, 2500, 2), (1700, 1700, 4)])
def test_an_atom_far_from_the_rest_is_an_isolated_atom(calc, far):
    # vesin's cell list killed the process (SIGFPE) for such spreads; ASE's neighbour list takes them instead
    cluster = Atoms("Si4", positions=[[0, 0, 0], [2.3, 0, 0], [0, 2.3, 0], [0, 0, 2.3]])
    alone = Atoms("Si", positions=[[0, 0, 0]])
    spread = cluster + Atoms("Si", positions=[far])
    assert _energy(spread, calc) == pytest.approx(_energy(cluster, calc) + _energy(alone, calc), abs=1e-8)
    assert np.abs(spread.get_forces()[4]).max() == 0.0


def test_a_periodic_cell_too_long_for_vesin_still_gets_its_bonds(calc):
    atoms = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 2.3]], cell=[5, 5, 1e6], pbc=True)
    boxed = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 2.3]], cell=[5, 5, 50], pbc=True)  # no bond across 50 Å of c
    assert _energy(atoms, calc) == pytest.approx(_energy(boxed, calc), abs=1e-8)


def test_both_neighbour_lists_give_the_same_pairs(monkeypatch):
    from alignn_ase import neighbors

    rng = np.random.default_rng(3)
    cases = [(bulk("Si", "diamond", a=5.43).positions, bulk("Si", "diamond", a=5.43).cell.array, [True] * 3)]
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 3))
    slab.cell[2] = [0.0, 0.0, 0.0]
    slab.rattle(0.1, seed=1)
    cases.append((slab.positions, slab.cell.array, [True, True, False]))
    cases.append((rng.uniform(0, 6, (12, 3)), np.zeros((3, 3)), [False] * 3))
    cases.append((rng.uniform(-3, 9, (7, 3)), np.array([[4.0, 0.3, 0], [0.5, 4.2, 0.1], [0.2, 0.4, 3.9]]), [True] * 3))
    for positions, cell, pbc in cases:
        pbc = np.array(pbc)
        fast = neighbors.all_pairs(positions, cell, pbc, 4.0)
        monkeypatch.setattr(neighbors, "VESIN_MAX_CELLS", 0)  # every structure to ASE's list
        slow = neighbors.all_pairs(positions, cell, pbc, 4.0)
        monkeypatch.undo()
        key = lambda e: np.lexsort((*e.shift.T, e.dst, e.src))  # noqa: E731
        a, b = fast.select(key(fast)), slow.select(key(slow))
        assert len(a.src) == len(b.src) > 0
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-12)


def test_unknown_element_is_named(calc):
    with pytest.raises(UnsupportedElementError, match="Og"):
        _energy(Atoms("SiOg", positions=[[0, 0, 0], [2, 0, 0]]), calc)
    restricted = ALIGNNCalculator(smooth_model(elements=["Si", "O"]))
    with pytest.raises(UnsupportedElementError, match="Cu"):
        _energy(Atoms("SiCu", positions=[[0, 0, 0], [2.2, 0, 0]]), restricted)


def test_an_element_a_property_model_lacks_is_named_with_the_model_before_anything_runs():
    prop = load_model("formation_energy_peratom")
    prop._known_elements.zero_()
    prop._known_elements[14] = True  # this copy knows Si only
    calc = ALIGNNCalculator(properties={"fe_si": prop})
    sio = Atoms("SiO", positions=[[0, 0, 0], [1.6, 0, 0]])
    with pytest.raises(UnsupportedElementError, match="^property model 'fe_si': element\\(s\\) O not covered"):
        _energy(sio, calc)
    assert calc.n_model_evaluations == 0  # the potential did not run first
    with pytest.raises(UnsupportedElementError, match="^structure 1 \\(of 2\\): property model 'fe_si'"):
        calc.predict([Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]]), sio], progress=False)


def _copy(tmp_path, name="pure_2_2_64_cgcnn"):
    dst = tmp_path / name
    shutil.copytree(UPSTREAM / name, dst)
    return dst


@pytest.mark.parametrize(
    "spoil, error, match",
    [
        (lambda a: a.positions.__setitem__((1, 0), np.nan), InvalidStructureError, "atom 1 .*non-finite"),
        (lambda a: a.positions.__setitem__(1, a.positions[0] + 0.1), InvalidStructureError, "apart"),
        (lambda a: a.numbers.__setitem__(0, 118), UnsupportedElementError, "Og"),
    ],
)
def test_batch_errors_name_the_structure(spoil, error, match, calc):
    structures = [bulk("Si", "diamond", a=5.43) for _ in range(5)]
    spoil(structures[3])
    # batches of two: structure 3 is the second of its batch, named by its index in the whole list
    with pytest.raises(error, match=rf"^structure 3 \(of 5\): .*{match}"):
        calc.predict(structures, batch_size=2, progress=False)
    with pytest.raises(error, match=f"^(?!structure).*{match}"):  # one structure: its own message
        calc.predict(structures[3:4], progress=False)



@pytest.mark.parametrize(
    "spoil, match",
    [
        (lambda a: a.positions.__setitem__((1, 0), np.nan), "atom 1 .*non-finite"),
        (lambda a: a.positions.__setitem__((1, 0), np.inf), "atom 1 .*non-finite"),
        (lambda a: a.cell.__setitem__((0, 0), np.nan), "cell has non-finite"),
        (lambda a: a.cell.__setitem__(2, a.cell[0]), "linearly dependent"),
        (lambda a: a.positions.__setitem__(1, a.positions[0] + 0.1), "apart"),
    ],
)
def test_a_skin_calculator_checks_every_geometry(spoil, match):
    """With neighbour-list reuse, a call after a good one still rejects bad input: the skin test passes only
    for input the last build validated, and the minimum distance is checked at every call."""
    calc = ALIGNNCalculator(smooth_model(), device="cpu", skin=1.0)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.positions[2] += 0.01  # a reuse
    atoms.get_potential_energy()
    assert calc.n_graph_builds == 1
    spoil(atoms)
    with pytest.raises(InvalidStructureError, match=match):
        atoms.get_potential_energy()


@pytest.mark.parametrize("content", [b"\x00not a checkpoint" * 10, b"", b"PK"])  # empty: an interrupted download
def test_corrupt_weights(tmp_path, content):
    folder = _copy(tmp_path)
    (folder / "best_model.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="best_model.pt cannot be read"):
        load_model(folder)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_refused(tmp_path):
    folder = _copy(tmp_path)
    torch.save({"model": Payload()}, folder / "best_model.pt")
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_model(folder)


def test_training_checkpoints_are_read_for_their_weights_only(tmp_path):
    folder = _copy(tmp_path)
    weights = torch.load(folder / "best_model.pt", weights_only=True)
    reference = load_model(folder).state_dict()
    for key in ("state_dict", "model_state_dict"):
        torch.save({key: weights, "epoch": 3}, folder / "best_model.pt")
        loaded = load_model(folder).state_dict()
        assert all(torch.equal(loaded[k], reference[k]) for k in reference)
    # saved from a DataParallel / DDP wrapper: every name prefixed "module."
    torch.save({f"module.{k}": v for k, v in weights.items()}, folder / "best_model.pt")
    loaded = load_model(folder).state_dict()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)
    torch.save({"weights": weights}, folder / "best_model.pt")
    with pytest.raises(CheckpointError, match=r"holds no state_dict .*top-level keys: \['weights'\]"):
        load_model(folder)
    torch.save({"model": weights, "lr_scheduler": {"anneal_func": Payload()}}, folder / "best_model.pt")
    with pytest.raises(CheckpointError, match=r"If you trust the file, keep just the weights") as info:
        load_model(folder)
    assert "\x1b[" not in str(info.value)  # torch's message carries terminal colour codes


def test_a_folder_or_zip_of_several_models_is_ambiguous(tmp_path):
    for name in ("a", "b"):
        shutil.copytree(UPSTREAM / "pure_2_2_64_cgcnn", tmp_path / "two" / name)
    with pytest.raises(CheckpointError, match=r"holds 2 models \(a, b\); give the path of one"):
        load_model(tmp_path / "two")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        for f in (tmp_path / "two").rglob("*"):
            zf.write(f, f.relative_to(tmp_path / "two").as_posix())
    with pytest.raises(CheckpointError, match="holds 2 models .*extract it and give the path of one of its folders"):
        load_model(tmp_path / "two.zip")
    assert load_model(tmp_path / "two" / "a").source == str(tmp_path / "two" / "a")


def test_a_shipped_name_wins_over_a_local_folder_of_that_name(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()  # e.g. an output folder
    with caplog.at_level("WARNING"):
        model = load_model("default")
    assert model.source.endswith("alignn-ase-distill-v5") and "./default for the path" in caplog.text
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model("./default")


def test_odd_checkpoint_files_give_checkpoint_errors(tmp_path):
    folder = _copy(tmp_path)
    (folder / "MODEL_CARD.md").write_bytes(b"caf\xe9 \xff card")  # not UTF-8: read with replacements
    assert "caf" in load_model(folder).card
    cfg = json.loads((folder / "config.json").read_text())
    cfg["atom_features"] = ["cgcnn"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="atom_features"):
        load_model(folder)
    cfg["atom_features"], cfg["max_neighbors"] = "cgcnn", 12.5
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="max_neighbors must be a whole number"):
        load_model(folder)
    cfg["max_neighbors"] = 12
    cfg["model"]["energy_mult_natoms"] = False
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(folder))}.*energy_mult_natoms=false"):
        load_model(folder)


def test_config_values_of_the_wrong_kind_or_range(tmp_path):
    folder = _copy(tmp_path)
    original = json.loads((folder / "config.json").read_text())
    for spoil, match in [
        (lambda c: c.update(use_canonize="false"), "use_canonize must be true or false"),  # bool("false") is True
        (lambda c: c["model"].update(use_cutoff_function=True, inner_cutoff=0.0), "inner_cutoff > 0"),
        (lambda c: c["model"].update(use_cutoff_function=True, exponent=0), "exponent >= 1"),
    ]:
        cfg = json.loads(json.dumps(original))
        spoil(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match=match):
            load_model(folder)


def test_load_model_takes_the_dtype_names_the_calculator_takes():
    assert next(load_model(UPSTREAM / "pure_2_2_64_cgcnn", "float64").parameters()).dtype == torch.float64
    for bad in ("double precision", torch.int32, torch.float16):
        with pytest.raises(InvalidArgumentError, match="unknown dtype"):
            load_model(UPSTREAM / "pure_2_2_64_cgcnn", bad)


def test_malformed_config(tmp_path):
    folder = _copy(tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(folder)
    cfg = json.loads((UPSTREAM / "pure_2_2_64_cgcnn" / "config.json").read_text())
    cfg["model"]["hidden_features"] = "wide"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="hidden_features"):
        load_model(folder)
    cfg["model"]["hidden_features"] = 64
    cfg["neighbor_strategy"] = "voronoi"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="voronoi"):
        load_model(folder)


def test_config_values_no_model_can_be_built_with(tmp_path):
    folder = _copy(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["hidden_features"] = -1  # torch raised this one from inside nn.Linear
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(folder))}.*no model can be built.*hidden_features = -1"):
        load_model(folder)
    smooth = tmp_path / "smooth"
    save_model(smooth_model(), smooth)
    cfg = json.loads((smooth / "config.json").read_text())
    cfg["model"]["cutoff"] = 0.0  # an InvalidArgumentError of the architecture, not naming the file
    (smooth / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(smooth))}.*cutoff must be a positive"):
        load_model(smooth)


def test_the_angle_basis_width_is_read_saved_and_checked(tmp_path):
    # triplet_lengthscale l gives the bond-angle cosine's Gaussians gamma = 1 / l^2; None keeps upstream's 1 / spacing
    assert smooth_model().angle_embedding[0].gamma == pytest.approx(19 / 2)  # 20 bins on [-1, 1]
    sharp = smooth_model(triplet_lengthscale=0.1)
    assert sharp.angle_embedding[0].gamma == pytest.approx(100.0)
    save_model(sharp, tmp_path / "sharp")
    assert load_model(tmp_path / "sharp").angle_embedding[0].gamma == pytest.approx(100.0)
    with pytest.raises(InvalidArgumentError, match="triplet_lengthscale must be positive"):
        smooth_model(triplet_lengthscale=0.0)
    # a field this version does not know (from a newer writer) could change the model: refused, not ignored
    cfg = json.loads((tmp_path / "sharp" / "config.json").read_text())
    cfg["model"]["a_future_option"] = 1.0
    (tmp_path / "sharp" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown field.*a_future_option"):
        load_model(tmp_path / "sharp")


@pytest.mark.parametrize("spoil", [lambda t: t.long(), lambda t: t.to_sparse(), lambda t: torch.empty_like(t, device="meta")])
def test_weights_of_the_wrong_kind(tmp_path, spoil):
    folder = _copy(tmp_path)
    state = torch.load(folder / "best_model.pt", weights_only=True)
    torch.save({k: spoil(v) if v.is_floating_point() else v for k, v in state.items()}, folder / "best_model.pt")
    with pytest.raises(CheckpointError, match="weight tensor\\(s\\) of the wrong kind"):
        load_model(folder)


def test_config_that_does_not_match_the_weights(tmp_path):
    folder = _copy(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["hidden_features"] = 128
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match the config.*shape"):
        load_model(folder)
    cfg["model"]["hidden_features"] = 64
    cfg["model"]["alignn_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(folder)


def test_missing_files_and_unknown_names(tmp_path):
    folder = _copy(tmp_path)
    (folder / "best_model.pt").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_model(folder)
    with pytest.raises(UnknownModelError, match="no-such-model"):
        load_model("no-such-model")
    with pytest.raises(UnknownModelError, match="empty model name"):  # was "no config.json" in the current folder
        load_model("")
    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a folder and not a readable zip"):
        load_model(tmp_path / "junk.zip")


def test_argument_mistakes_get_clear_errors(calc):
    with pytest.raises(InvalidArgumentError, match="a model is a shipped name, a path, an upstream model name or a loaded model, not None"):
        ALIGNNCalculator(None)
    one = ALIGNNCalculator(smooth_model(), properties=str(UPSTREAM / "classic_link_log"))  # not its letters
    assert list(one.property_models) == ["optb88vdw_bandgap"]
    (result,) = calc.predict([bulk("Si")], batch_size=np.int64(4))
    assert np.isfinite(result["energy"])
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        calc.predict([bulk("Si")], batch_size=True)


def test_unknown_property_device_dtype(calc):
    with pytest.raises(InvalidArgumentError, match="dtype"):
        ALIGNNCalculator(smooth_model(), dtype="float16")
    with pytest.raises(InvalidArgumentError, match="device"):
        ALIGNNCalculator(smooth_model(), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="CUDA is not available"):
            ALIGNNCalculator(smooth_model(), device="cuda")
    atoms = bulk("Si")
    atoms.calc = calc
    with pytest.raises(PropertyNotImplementedError, match="band_gap"):
        calc.get_property("band_gap", atoms)
    with pytest.raises(InvalidArgumentError, match="potential, not a property model"):
        ALIGNNCalculator(smooth_model(), properties=[smooth_model()])
    prop = UPSTREAM / "classic_link_log"
    with pytest.raises(InvalidArgumentError, match="'energy' is a result of the potential"):
        ALIGNNCalculator(smooth_model(), properties={"energy": prop})
    with pytest.raises(InvalidArgumentError, match="is used twice; pass a mapping to rename"):
        ALIGNNCalculator(smooth_model(), properties=[prop, prop])


def test_errors_share_a_base_class():
    for exc in (InvalidStructureError, UnsupportedElementError, CheckpointError, InvalidArgumentError):
        assert issubclass(exc, AlignnAseError) and issubclass(exc, ValueError)


def test_upstream_max_neighbors_null_means_no_cap_for_pure_torch(tmp_path):
    folder = _copy(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["neighbor_strategy"] == "pure_torch"
    for value in (None, 0):  # upstream caps only when max_neighbors > 0
        cfg["max_neighbors"] = value
        (folder / "config.json").write_text(json.dumps(cfg))
        settings = load_model(folder).graph_settings
        assert settings.max_neighbors is None
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.02, seed=0)
    uncapped = build_graph(atoms, settings)
    capped = build_graph(atoms, dataclasses.replace(settings, max_neighbors=12))
    huge = build_graph(atoms, dataclasses.replace(settings, max_neighbors=10_000))
    assert uncapped.num_edges == huge.num_edges > capped.num_edges == 12 * len(atoms)
    assert torch.equal(uncapped.triplet_e1, huge.triplet_e1) and torch.equal(uncapped.triplet_e2, huge.triplet_e2)
    cfg["neighbor_strategy"] = "k-nearest"
    cfg["max_neighbors"] = None
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="k-nearest strategy needs max_neighbors"):
        load_model(folder)


def test_upstream_force_fields_without_a_consistent_energy_are_refused_and_stress_multiplier_is_upstreams(tmp_path):
    """Upstream differentiates the un-linked sum of all outputs but reports the linked first one: refused. Its
    stress_multiplier scales the reported stress (as upstream's calculator does), energy and forces unchanged."""
    folder = _copy(tmp_path)
    original = json.loads((folder / "config.json").read_text())
    for change, match in (
        ({"link": "log"}, "force field with link='log'"),
        ({"classification": True}, "more than one output"),
        ({"output_features": 2}, "more than one output"),
    ):
        cfg = json.loads(json.dumps(original))
        cfg["model"].update(change)
        (folder / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match=match):
            load_model(folder)
    atoms = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
    atoms.rattle(0.05, seed=3)
    results = []
    for factor in (1.0, 2.0):
        cfg = json.loads(json.dumps(original))
        cfg["model"]["stress_multiplier"] = factor
        (folder / "config.json").write_text(json.dumps(cfg))
        a = atoms.copy()
        a.calc = ALIGNNCalculator(load_model(folder), dtype="float64")
        results.append((a.get_potential_energy(), a.get_forces(), a.get_stress()))
    assert results[1][0] == results[0][0]
    np.testing.assert_array_equal(results[1][1], results[0][1])
    np.testing.assert_allclose(results[1][2], 2 * results[0][2], rtol=1e-12)


@pytest.mark.parametrize(
    "make, match",
    [
        # a periodic block of H 0.8 Å apart: ~1000 atoms within 5 Å of each (it took 4 GB at 8 atoms)
        (lambda: Atoms("H8", positions=[[i * 0.8, j * 0.8, k * 0.8] for i in (0, 1) for j in (0, 1) for k in (0, 1)],
                       cell=[1.6] * 3, pbc=True), "the cell holds 8 atoms in 4.1 Å³"),
        # a cell 2e-5 Å thick: the neighbour list would enumerate ~1e6 images per pair before any other check
        (lambda: Atoms("Si2", positions=[[0, 0, 0], [1.3, 1.3, 0]], cell=[5.43, 5.43, 2e-5], pbc=True),
         "the cell holds 2 atoms"),
        (lambda: Atoms("Si2", positions=[[0, 0, 0], [1.3, 0, 3]], cell=[1e-3, 5.43, 10], pbc=[True, True, False]),
         r"2D lattice puts ~\d+ periodic images"),
        # a finite cluster, 0.6 Å apart: found on the pair list
        (lambda: Atoms("H343", positions=[[i * 0.6, j * 0.6, k * 0.6] for i in range(7) for j in range(7)
                                          for k in range(7)]), r"atom \d+ \(H\) has 342 neighbours within 4 Å"),
    ],
)
def test_structures_denser_than_any_material_are_refused_before_the_graph(make, match, calc):
    with pytest.raises(InvalidStructureError, match=match):
        _energy(make(), calc)


def test_a_strongly_compressed_crystal_is_not_refused(calc):
    diamond = bulk("C", "diamond", a=3.567 * 0.5 ** (1 / 3), cubic=True)  # half its volume: 0.35 atoms/Å³
    assert np.isfinite(_energy(diamond, calc))


def test_a_skin_beyond_the_cutoff_is_refused():
    with pytest.raises(InvalidArgumentError, match="skin 300 Å exceeds the cut-off"):
        ALIGNNCalculator(smooth_model(), skin=300.0)


def test_calculator_and_predict_arguments_are_checked(calc):
    with pytest.raises(InvalidArgumentError, match="compile must be True or False"):
        ALIGNNCalculator(smooth_model(), compile="false")
    with pytest.raises(InvalidArgumentError, match=r"pass \[atoms\]"):
        calc.predict(bulk("Si"), progress=False)
    with pytest.raises(InvalidArgumentError, match="list of ase.Atoms, not NoneType"):
        calc.predict(None, progress=False)
    with pytest.raises(InvalidArgumentError, match="properties must be a list"):
        ALIGNNCalculator(smooth_model(), properties=5)
    for key in ("", 7):
        with pytest.raises(InvalidArgumentError, match="result name must be a non-empty string"):
            ALIGNNCalculator(smooth_model(), properties={key: UPSTREAM / "classic_4_4_256"})


def test_upstream_radius_graph_steps_over_radii_without_neighbour_lists(monkeypatch):
    """Upstream's radius_graph grows its radius by cutoff_extra until the last atom has a neighbour: two atoms
    1e4 Å apart took ~3000 neighbour lists (minutes); the radii without a neighbour are now stepped over."""
    from alignn_ase import neighbors

    calls = []
    real = neighbors.radius_edges
    monkeypatch.setattr(neighbors, "radius_edges", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    calc = ALIGNNCalculator(UPSTREAM / "atomwise_radius", dtype="float64")
    near, far = (Atoms("Si2", positions=[[0, 0, 0], [d, 0, 0]]) for d in (20.0, 1e4))
    assert _energy(far, calc) == _energy(near, calc)  # isolated atoms either way
    assert len(calls) <= 4 and max(calls) >= 1e4


def test_phonon_qha_and_neb_workflows_refuse_bad_input(tmp_path):
    """Found by fuzzing the new workflows: each used to segfault in spglib, crash in phonopy or ASE, hang, or give
    a silent wrong number."""
    from ase.calculators.emt import EMT

    from alignn_ase.workflows import neb, phonons, qha

    cu = bulk("Cu", "fcc", a=3.59)
    quick = dict(supercell=(2, 2, 2), mesh=(4, 4, 4), calculator=EMT(), output_dir=None)
    broken = cu.copy()
    broken.positions[0, 0] = np.nan
    for run in (lambda: qha(broken, progress=False, **quick), lambda: phonons(broken, **quick)):
        with pytest.raises(InvalidStructureError, match="non-finite position"):  # spglib segfaulted
            run()
    with pytest.raises(InvalidArgumentError, match="more than 1000000 points"):  # phonopy aborted the process
        phonons(cu, supercell=(2, 2, 2), mesh=1e4, calculator=EMT(), output_dir=None)
    with pytest.raises(InvalidArgumentError, match="points from 5 to"):  # numpy's MemoryError
        qha(cu, points=10**12, progress=False, **quick)
    with pytest.raises(InvalidArgumentError, match="temperatures must hold numbers"):
        qha(cu, temperatures="abc", progress=False, **quick)
    with pytest.raises(InvalidArgumentError, match="fit of F.V. failed|leaves the sampled"):  # phonopy's RuntimeError
        qha(cu, pressure_GPa=-1e6, progress=False, **quick)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(InvalidArgumentError, match="not a folder"):  # after the whole computation, before
        qha(cu, progress=False, **{**quick, "output_dir": tmp_path / "a_file"})

    nacl = bulk("NaCl", "rocksalt", a=5.64)
    eps, charges = np.eye(3) * 2.4, [np.eye(3) * 1.1, -np.eye(3) * 1.1]
    for header, match in (("0", "first line"), ("nan", "first line"), ("14.4 -1", "first line")):
        born_file = tmp_path / f"BORN_{header.replace(' ', '_')}"
        born_file.write_text(f"{header}\n2.4 0 0 0 2.4 0 0 0 2.4\n1.1 0 0 0 1.1 0 0 0 1.1\n-1.1 0 0 0 -1.1 0 0 0 -1.1\n")
        with pytest.raises(InvalidArgumentError, match=match):  # a silent zero or flipped correction, or a crash
            phonons(nacl, born=born_file, **quick)
    for bad in ({"born": charges, "dielectric": np.diag([np.inf, 5, 5])},
                {"born": np.array(charges) * 1e200, "dielectric": eps},
                {"born": np.array(charges) * (1 + 1j), "dielectric": eps}):
        with pytest.raises(InvalidArgumentError):
            phonons(nacl, born=bad, **quick)

    slab, final = au_hop_on_al100()
    band = dict(images=1, max_steps=0, calculator=EMT(), output_dir=None, progress=False)
    with pytest.raises(InvalidArgumentError, match="same structure"):  # a singular fit after the whole run
        neb(slab, slab.copy(), **band)
    with pytest.raises(InvalidArgumentError, match="images from 1 to"):  # hung copying a million images
        neb(slab, final, **{**band, "images": 10**6})
    shifted = final.copy()
    shifted.positions[0] += 0.3  # a fixed atom moved
    with pytest.raises(InvalidArgumentError, match="constraints"):  # ASE's multi-line RuntimeError
        neb(slab, shifted, **band)
    nearly = final.copy()
    nearly.set_cell(final.cell.array * (1 + 1e-7), scale_atoms=False)  # rounding in a file: ASE refused the band
    with pytest.warns(ConvergenceWarning):
        neb(slab, nearly, **band)
    wrapped = final.copy()
    wrapped.positions[-1] += slab.cell[0]  # an image one cell further: a different, longer path
    with pytest.warns(UserWarning, match="unwrap it"):
        neb(slab, wrapped, **band)
