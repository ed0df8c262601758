"""Speed features: neighbour-list/line-graph reuse (skin), batched prediction, subset line-graph gates.

Every reuse or batching result is compared with the plain one-structure,
fresh-graph path in float64.
"""

import copy
import json
import os
import pickle
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule

import alignn_ase
import alignn_ase.cli
from alignn_ase import (
    ALIGNNCalculator,
    GraphCache,
    GraphSettings,
    InvalidArgumentError,
    InvalidStructureError,
    UnsupportedElementError,
    batch_graphs,
    build_graph,
    build_graphs,
    load_model,
)
from alignn_ase import compute
from alignn_ase.compute import evaluate
from alignn_ase.neighbors import Edges, _rank_by_distance
from alignn_ase.nn import layers, tabulate
from alignn_ase.nn.layers import EdgeGatedGraphConv, edge_endpoints
from alignn_ase.nn.smooth import SmoothALIGNN, SmoothConfig

from .conftest import UPSTREAM
from .helpers import random_crystal, smooth_model

KEYS = ("energy", "free_energy", "forces", "stress", "energies")


def _results(calc, atoms):
    calc.calculate(atoms, ["energy", "forces"] + (["stress"] if atoms.cell.volume > 1e-8 else []))
    return {k: np.copy(v) for k, v in calc.results.items()}


def _assert_same(a, b, tol=1e-10):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=tol, err_msg=k)


def _pair(model, skin):
    return (
        ALIGNNCalculator(model, dtype="float64", device="cpu", skin=skin),
        ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.0),
    )


def _topology(graph):
    src, dst, shift = graph.src.numpy(), graph.dst.numpy(), graph.shift.long().numpy()
    e1, e2 = graph.triplet_e1.numpy(), graph.triplet_e2.numpy()
    bonds = sorted(zip(src.tolist(), dst.tolist(), map(tuple, shift.tolist())))
    triplets = np.concatenate([src[e1, None], dst[e1, None], dst[e2, None], shift[e1], shift[e2]], axis=1)
    return bonds, sorted(map(tuple, triplets.tolist()))


def test_reused_neighbour_list_gives_the_fresh_graph():
    settings = smooth_model().graph_settings
    cache = GraphCache(settings, torch.float64, "cpu", min_distance=0.3, skin=1.0)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=0)
    cache(atoms)
    rng = np.random.default_rng(1)
    for _ in range(3):
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        reused = _topology(cache(atoms))
        fresh = _topology(build_graph(atoms, settings))
        assert reused[0] == fresh[0] and reused[1] == fresh[1]
        assert len(fresh[1]) > 0
    assert cache.n_builds == 1


def test_skin_reuse_equals_fresh_build_along_md_like_path():
    model = smooth_model()
    reuse, fresh = _pair(model, skin=0.4)
    atoms = random_crystal("Si4O6Na2", seed=3, a=6.0)
    rng = np.random.default_rng(0)
    steps = 25
    for _ in range(steps):
        atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)
        _assert_same(_results(reuse, atoms), _results(fresh, atoms))
    assert fresh.n_graph_builds == steps
    assert 1 < reuse.n_graph_builds < steps  # reused, and rebuilt once atoms moved beyond skin / 2


def test_skin_keeps_a_bond_that_comes_within_the_cutoff():
    model = smooth_model(seed=1)
    cutoff = model.graph_settings.cutoff
    reuse, fresh = _pair(model, skin=1.0)
    dimer = Atoms("SiO", positions=[[0, 0, 0], [cutoff + 0.3, 0, 0]])
    far = _results(reuse, dimer)["energy"]
    dimer.positions[:, 0] += [0.2, -0.2]  # each atom moves 0.2 Å < skin / 2: reused
    near = _results(reuse, dimer)
    assert reuse.n_graph_builds == 1
    assert near["energy"] != far  # the bond now inside the cutoff counts
    _assert_same(near, _results(fresh, dimer))
    dimer.positions[:, 0] += [0.35, -0.35]  # 0.55 Å from the build geometry > skin / 2: rebuilt
    _assert_same(_results(reuse, dimer), _results(fresh, dimer))
    assert reuse.n_graph_builds == 2
    # Displacements add up from the last build, not from the last call.
    dimer.positions = [[0, 0, 0], [cutoff + 1.5, 0, 0]]  # beyond cutoff + skin: no bond stored
    far = _results(reuse, dimer)["energy"]
    for _ in range(2):
        dimer.positions[:, 0] += [0.4, -0.4]
        _assert_same(_results(reuse, dimer), _results(fresh, dimer))
    assert reuse.n_graph_builds == 4 and reuse.results["energy"] != far


def test_skin_rebuilds_on_cell_species_and_pbc_changes():
    model = smooth_model(seed=2)
    reuse, fresh = _pair(model, skin=1.0)
    atoms = random_crystal("Si2O3Na", seed=5)
    _results(reuse, atoms)
    builds = reuse.n_graph_builds
    changes = [
        (lambda a: a.set_cell(a.cell * 1.004, scale_atoms=True), False),  # small homogeneous strain: reused
        (lambda a: a.set_cell(a.cell * 0.8, scale_atoms=True), True),  # bonds shrink by 20%: rebuilt
        (lambda a: a.set_cell(a.cell.array + 0.4 * np.eye(3)[::-1], scale_atoms=False), True),  # shear
        (lambda a: a.numbers.__setitem__(0, 13), True),
        (lambda a: a.set_pbc((True, True, False)), True),
    ]
    for change, rebuilds in changes:
        change(atoms)
        _assert_same(_results(reuse, atoms), _results(fresh, atoms))
        assert reuse.n_graph_builds == builds + rebuilds
        builds = reuse.n_graph_builds


def test_skin_still_rejects_atoms_that_come_too_close():
    model = smooth_model()
    calc = ALIGNNCalculator(model, dtype="float64", skin=1.0)
    dimer = Atoms("SiO", positions=[[0, 0, 0], [0.8, 0, 0]])
    _results(calc, dimer)
    dimer.positions[1, 0] = 0.2  # moved 0.6 Å: rebuilt, and refused
    with pytest.raises(InvalidStructureError, match="0.2000 Å apart"):
        _results(calc, dimer)
    dimer.positions[1, 0] = 0.8
    _results(calc, dimer)
    builds = calc.n_graph_builds
    dimer.positions[:, 0] += [0.3, -0.3]  # 0.2 Å apart, each moved < skin / 2: reused, still refused
    with pytest.raises(InvalidStructureError, match="0.2000 Å apart, closer than this model's minimum distance"):
        _results(calc, dimer)
    assert calc.n_graph_builds == builds


@pytest.mark.parametrize("name", ["pure_2_2_64_cgcnn", "atomwise_knn"])
def test_upstream_graphs_rebuild_every_call(name):
    calc = ALIGNNCalculator(load_model(UPSTREAM / name), dtype="float64", skin=1.0)
    assert calc.skin == 0.0
    atoms = bulk("Si", "diamond", a=5.43)
    for _ in range(3):
        atoms.positions[0, 0] += 0.01
        _results(calc, atoms)
    assert calc.n_graph_builds == 3


def test_skin_argument_is_checked():
    for bad in (-0.5, float("nan"), "1", True):
        with pytest.raises(InvalidArgumentError, match="skin"):
            ALIGNNCalculator(smooth_model(), skin=bad)
    for good in (np.float32(0.5), np.int64(1)):
        assert ALIGNNCalculator(smooth_model(), skin=good).skin == float(good)
    # without a minimum distance a pair overlapping at a build would be lost from the reused list
    with pytest.raises(InvalidArgumentError, match="skin needs min_distance"):
        GraphCache(GraphSettings("radius", 5.0), torch.float64, "cpu", min_distance=0.0, skin=1.0)


def _mixed_structures():
    water = molecule("H2O")
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    big = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    big.rattle(0.05, seed=1)
    return [random_crystal("Si2O3Na", seed=s) for s in range(3)] + [water, slab, big, bulk("Cu", "fcc", a=3.6)]


def test_predict_equals_one_by_one():
    model = smooth_model(seed=4)
    calc = ALIGNNCalculator(model, dtype="float64", properties=[UPSTREAM / "classic_link_log"])
    structures = _mixed_structures()
    snapshot = [a.copy() for a in structures]
    batched = calc.predict(structures, batch_size=3, progress=False)
    assert len(batched) == len(structures)
    assert calc.n_model_evaluations == 3  # one per batch, the one mixing molecules and crystals included
    single = ALIGNNCalculator(model, dtype="float64", properties=[UPSTREAM / "classic_link_log"])
    for atoms, res, before in zip(structures, batched, snapshot):
        assert atoms == before and atoms.calc is None
        ref = _results(single, atoms)
        assert ("stress" in res) == (atoms.cell.volume > 1e-8)
        assert "optb88vdw_bandgap" in res
        _assert_same(res, ref)
    # the module-level function: one batch with everything in it
    again = alignn_ase.predict(structures, model=model, batch_size=64, dtype="float64", progress=False)
    for a, b in zip(again, batched):
        _assert_same({k: v for k, v in a.items() if k in KEYS}, {k: v for k, v in b.items() if k in KEYS})


@pytest.mark.parametrize("name", ["pure_2_2_64_cgcnn", "atomwise_knn"])
def test_graphs_built_together_equal_graphs_built_one_by_one(name):
    settings = load_model(UPSTREAM / name).graph_settings
    structures = _mixed_structures()
    together = build_graphs(structures, settings, torch.float64)
    apart = batch_graphs([build_graph(a, settings, torch.float64) for a in structures])
    for field in together.__dataclass_fields__:
        assert torch.equal(getattr(together, field), getattr(apart, field)), field


@pytest.mark.parametrize("n_atoms", [50, 70_000])  # 16-bit and 64-bit source keys
def test_distance_ranking_orders_as_lexsort(n_atoms):
    rng = np.random.default_rng(0)
    n = 5000
    src = rng.integers(0, n_atoms, n)
    distance = rng.choice(np.linspace(1.0, 5.0, 40), n)  # many exact ties, broken by position as lexsort does
    edges = Edges(src, src, np.zeros((n, 3), dtype=np.int64), distance)
    order, rank = _rank_by_distance(edges, n_atoms)
    assert np.array_equal(order, np.lexsort((distance, src)))
    first = np.searchsorted(src[order], src[order])
    assert np.array_equal(rank, np.arange(n) - first)


def test_predict_with_an_upstream_potential():
    calc = ALIGNNCalculator(load_model(UPSTREAM / "pure_2_2_64_cgcnn"), dtype="float64")
    structures = [random_crystal("Si2O3Na", seed=s) for s in range(4)]
    for atoms, res in zip(structures, calc.predict(structures, batch_size=4)):
        _assert_same(res, _results(calc, atoms))


def test_predict_bad_input():
    calc = ALIGNNCalculator(smooth_model())
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        calc.predict([bulk("Si")], batch_size=0)
    with pytest.raises(InvalidArgumentError, match="structure 1"):
        calc.predict([bulk("Si"), "Si"])
    with pytest.raises(InvalidStructureError, match="apart"):
        calc.predict([bulk("Si"), Atoms("Si2", positions=[[0, 0, 0], [0.1, 0, 0]])])
    assert calc.predict([]) == []


def test_calculator_works_on_its_own_copy_of_the_model():
    model = smooth_model()
    ALIGNNCalculator(model, dtype="float64")
    p = next(model.parameters())
    assert p.dtype == torch.float32 and p.requires_grad


def test_line_graph_gates_on_touched_bonds_only():
    torch.manual_seed(0)
    conv = EdgeGatedGraphConv(16, 16).double()
    n_bonds, n_triplets = 40, 60
    bonds = torch.randn(n_bonds, 16, dtype=torch.float64)
    angles = torch.randn(n_triplets, 16, dtype=torch.float64)
    e1 = torch.randint(0, 25, (n_triplets,))  # bonds 25.. touch no triplet
    e2 = torch.randint(5, 25, (n_triplets,))
    weight = torch.rand(n_triplets, dtype=torch.float64)
    endpoints = edge_endpoints(e1, e2, n_bonds)
    assert endpoints.nodes.tolist() == sorted(set(e1.tolist()) | set(e2.tolist()))
    for w in (None, weight):
        full = conv(bonds, angles, e1, e2, w)
        subset = conv(bonds, angles, e1, e2, w, endpoints)
        for a, b in zip(full, subset):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_compiled_calculator_equals_eager():
    """``compile=True`` (inductor; the potential's forward and backward compiled together through torch.func.grad,
    with the gather/scatter operators it calls as they are) gives the eager numbers, also when the skin graph is
    reused, and for a batch of structures with and without a cell."""
    model = smooth_model(seed=5)
    eager = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.0)
    compiled = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.5, compile=True)
    atoms = random_crystal("Si2O3Na", seed=1)
    for step in range(3):
        _assert_same(_results(compiled, atoms), _results(eager, atoms))
        atoms.positions += 0.05 * np.random.default_rng(step).normal(size=atoms.positions.shape)
    assert compiled.n_graph_builds < 3
    for atoms in (random_crystal("Si2O3Na", seed=2), _mixed_structures()[5]):
        _assert_same(_results(compiled, atoms), _results(eager, atoms))
    # a second compiled model of the same class, narrower, with another cut-off and the explicit three-body energy
    other = SmoothALIGNN(SmoothConfig(hidden_features=16, embedding_features=16, cutoff=4.5, angle_energy=True)).eval()
    torch.nn.init.normal_(other.angle_readout[2].weight, std=0.3)  # it starts at zero
    compiled_other = ALIGNNCalculator(other, dtype="float64", device="cpu", skin=0.0, compile=True)
    eager_other = ALIGNNCalculator(other, dtype="float64", device="cpu", skin=0.0)
    _assert_same(_results(compiled_other, atoms), _results(eager_other, atoms))
    assert compiled.compile_mode == compiled_other.compile_mode == "functional"  # compiled, not fallen back
    _assert_same(_results(compiled, atoms), _results(eager, atoms))
    batch = _mixed_structures()[2:5]  # a crystal, a molecule, a slab
    for a, b in zip(compiled.predict(batch, progress=False), eager.predict(batch, progress=False)):
        _assert_same(a, b)


def test_gather_and_scatter_operators_and_their_gradients():
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 3, 3, 6, 1, 0, 0, 2])
    values = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    # the operator's own checks; its autograd is the autograd.Function's, not registered on the operator
    torch.library.opcheck(layers._scatter_sum_op, (values.detach(), index, 7),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    summed = layers._ScatterSum.apply(values, index, 7).detach()
    np.testing.assert_allclose(summed, layers.scatter_sum(values, index, 7).detach())
    torch.autograd.gradcheck(lambda v: layers._ScatterSum.apply(v, index, 7), (values,))
    assert torch.equal(layers._GatherRows.apply(x, index), x[index])
    torch.autograd.gradcheck(lambda v: layers._GatherRows.apply(v, index), (x,))


def test_compile_failure_falls_back_to_eager(caplog):
    """A compiler that cannot build (here: no working C++ compiler) leaves a working calculator: the error is
    caught, logged, and the models run eagerly from then on."""
    torch.compiler.reset()  # no compiled code from earlier tests: this calculator must compile (and fail)
    model = smooth_model(seed=7)
    eager = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.0)
    compiled = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.0, compile=True)
    no_compiler = torch._inductor.config.patch({"cpp.cxx": ("/bin/false",), "fx_graph_cache": False})
    with no_compiler, torch._functorch.config.patch(enable_autograd_cache=False):
        for seed in (4, 5):
            atoms = random_crystal("Si2O3Na", seed=seed)
            _assert_same(_results(compiled, atoms), _results(eager, atoms))
    assert compiled.compile_mode == "eager"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("compiling its forward alone" in m for m in messages) == 1
    assert sum("potential failed" in m and "runs eagerly" in m for m in messages) == 1


def test_compile_falls_back_to_the_forward_alone(caplog):
    """Where the potential's forward and backward cannot be compiled together (as under torch 2.11 before NOTES
    item 23: an internal AssertionError, simulated here), the calculator compiles its forward alone and gives the eager numbers; errors
    about the input still reach the caller."""
    model = smooth_model(seed=8)
    eager = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.0)
    compiled = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=0.0, compile=True)

    def broken(*args, **kwargs):
        raise AssertionError("Expected FakeTensor, got <class 'torch.Tensor'>")

    compiled._derivatives = broken
    for seed in (4, 5):
        atoms = random_crystal("Si2O3Na", seed=seed)
        _assert_same(_results(compiled, atoms), _results(eager, atoms))
    assert compiled.compile_mode == "forward" and compiled.model._compiled_call_impl is not None
    assert sum("compiling its forward alone" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(UnsupportedElementError):
        compiled.get_potential_energy(Atoms("Og2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[8, 8, 8], pbc=True))
    assert compiled.compile_mode == "forward"


def test_compile_failures_of_property_models_and_errors_that_are_not_compilation(monkeypatch, caplog):
    """A property model whose compiled forward fails runs eagerly from then on, the potential stays compiled;
    an error that eager evaluation raises too (here a broken model) reaches the caller and changes no mode."""
    from alignn_ase import calculator as calculator_module
    from alignn_ase.compute import autograd_derivatives

    potential, prop = smooth_model(seed=9), load_model("formation_energy_peratom")
    compiled = ALIGNNCalculator(potential, dtype="float64", device="cpu", skin=0.0, compile=True,
                                properties=[prop])
    eager = ALIGNNCalculator(potential, dtype="float64", device="cpu", skin=0.0, properties=[prop])
    compiled._derivatives = autograd_derivatives  # the potential's compilation is not what this test is about
    real_evaluate, failures = calculator_module.evaluate, {"property": 1, "broken": 0}

    def evaluate(model, *args, **kwargs):
        if model is compiled.property_models["formation_energy_peratom"] and failures["property"]:
            failures["property"] -= 1
            raise AssertionError("Expected FakeTensor, got <class 'torch.Tensor'>")  # as a failed compilation
        if failures["broken"]:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")  # as a corrupt model, eager or not
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(calculator_module, "evaluate", evaluate)
    atoms = random_crystal("Si2O3Na", seed=3)
    for key in ("formation_energy_peratom", "energy"):
        assert compiled.get_property(key, atoms.copy()) == pytest.approx(eager.get_property(key, atoms.copy()))
    assert compiled._eager_properties == {"formation_energy_peratom"} and compiled.compile_mode == "functional"
    assert sum("property model 'formation_energy_peratom'" in r.getMessage() for r in caplog.records) == 1
    failures["broken"] = 1
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        compiled.get_potential_energy(random_crystal("Si2O3Na", seed=4))
    assert compiled.compile_mode == "functional"


def test_functional_derivatives_equal_autograd_derivatives():
    """The compiled path's torch.func.grad derivatives, run eagerly, give autograd's energy, forces and stress;
    they refuse to keep a graph for training."""
    model = smooth_model(seed=3).double().requires_grad_(False)
    atoms = random_crystal("Si2O3Na", seed=3)
    graph = build_graph(atoms, model.graph_settings, torch.float64)
    a = evaluate(model, graph, derivatives=compute.autograd_derivatives)
    b = evaluate(model, graph, derivatives=compute.functional_derivatives)
    assert set(a) == set(b) == {"energy", "energies", "forces", "stress"}
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="inference"):
        evaluate(model, graph, create_graph=True, derivatives=compute.functional_derivatives)


def test_a_potential_running_eagerly_leaves_its_compiled_property_models_compiled(monkeypatch):
    """Each model keeps its own compile record: after the potential fell back to eager, property models whose
    compilation worked are not forced eager with it."""
    prop = load_model("formation_energy_peratom")
    calc = ALIGNNCalculator(smooth_model(seed=9), dtype="float64", device="cpu", skin=0.0, compile=True,
                            properties=[prop])
    calc.compile_mode = "eager"  # as after a failed compilation of the potential
    stances = []
    real = torch.compiler.set_stance

    def recording(*args, **kwargs):
        stances.append(args[0] if args else kwargs.get("stance"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.compiler, "set_stance", recording)
    calc.get_property("formation_energy_peratom", random_crystal("Si2O3Na", seed=3))
    assert stances.count("force_eager") == 1  # the potential's evaluation only


_KEEPS_FREED = """
import json, sys, torch
from alignn_ase import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tune" else None
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
x = torch.ones(32 * 2**20)  # 128 MiB, above glibc's largest dynamic mmap threshold (32 MiB)
with_x = rss()
del x
print(json.dumps({"tuned": tuned, "released_MiB": with_x - rss()}))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
@pytest.mark.parametrize("env", [{}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_tune_malloc_keeps_freed_buffers_unless_the_environment_says_otherwise(env):
    """After tune_malloc a freed 128 MiB buffer stays in the process (no page faults to get it back);
    glibc's defaults give it back, and so does tune_malloc when the user set the allocator in the environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = {}
    for mode in ("stock", "tune"):
        run = subprocess.run([sys.executable, "-c", _KEEPS_FREED, mode], env={**base, **env},
                             capture_output=True, text=True, check=True)
        out[mode] = json.loads(run.stdout)
    assert out["stock"]["released_MiB"] > 100
    if env:
        assert out["tune"] == {"tuned": False, "released_MiB": pytest.approx(out["stock"]["released_MiB"], abs=8)}
    else:
        assert out["tune"]["tuned"] is True and out["tune"]["released_MiB"] < 8


def test_the_command_line_tunes_the_allocator(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("alignn_ase.cli.tune_malloc", lambda: calls.append(1) or True)
    assert alignn_ase.cli.main(["info"]) == 0
    assert calls == [1]


def test_hermite_table_matches_its_function_in_value_and_derivative(monkeypatch):
    """A table built in float64 reproduces a Gaussian-basis embedding and its derivative between the knots (the
    cubic Hermite error) and is flat beyond its end; a coarse grid is refined, and a table that cannot be made
    accurate within the size limit is not built."""
    torch.manual_seed(3)
    embedding = torch.nn.Sequential(layers.RBFExpansion(0.0, 5.0, 40), layers.MLPLayer(40, 16)).double().eval()
    table = tabulate.hermite_table(embedding, 0.0, 7.0, 0.01 / np.sqrt(embedding[0].gamma), torch.float64)
    x = torch.rand(500, dtype=torch.float64) * 7.0
    y, dy = torch.func.jvp(embedding, (x,), (torch.ones_like(x),))
    yt, dyt = torch.func.jvp(table, (x,), (torch.ones_like(x),))
    assert (yt - y).abs().max() < 1e-8 * y.abs().max()  # measured 4e-9
    assert (dyt - dy).abs().max() < tabulate.MAX_RELATIVE_ERROR * dy.abs().max()
    beyond = torch.tensor([7.5, 9.0, 30.0], dtype=torch.float64, requires_grad=True)
    out = table(beyond)
    torch.testing.assert_close(out, embedding(beyond.detach()), rtol=0, atol=1e-12)  # the embedding is flat there
    assert torch.autograd.grad(out.sum(), beyond)[0].abs().max() == 0
    coarse = tabulate.hermite_table(embedding, 0.0, 7.0, 0.5, torch.float64)  # refined until accurate
    assert coarse.intervals >= 8 * 14 and coarse.intervals % 14 == 0
    monkeypatch.setattr(tabulate, "MAX_TABLE_BYTES", 4 * 16 * 8 * 14 * 4)  # room for two refinements, not enough
    assert tabulate.hermite_table(embedding, 0.0, 7.0, 0.5, torch.float64) is None  # the MLP is kept


@pytest.mark.parametrize("name", ["smooth", "pure_2_2_64_cgcnn", "atomwise_radius"])
def test_float32_embedding_tables_agree_with_the_mlps_to_float32_rounding(name):
    """The float32 calculator's tables (atom, bond and angle embeddings) against the exact MLPs in float64: within
    a few times the error of float32 MLPs themselves; for potentials and a classic (BatchNorm) property model."""
    model = smooth_model(seed=4) if name == "smooth" else load_model(UPSTREAM / name)
    prop = {"prop": UPSTREAM / "classic_4_4_256"}
    tabulated = ALIGNNCalculator(model, device="cpu", skin=0.0, properties=prop)
    for m in (tabulated.model, tabulated.property_models["prop"]):
        tables = m.embedding_tables
        assert tables is not None and tables.bonds is not None and tables.angles is not None
    plain = ALIGNNCalculator(model, device="cpu", skin=0.0, properties=prop)
    plain.model.embedding_tables = plain.property_models["prop"].embedding_tables = None
    exact = ALIGNNCalculator(model, device="cpu", dtype="float64", skin=0.0, properties=prop)
    assert exact.model.embedding_tables is None  # float64 evaluates the MLPs
    structures = [random_crystal("Si2O3Na", seed=6), bulk("Cu", cubic=True).repeat(2), _mixed_structures()[3]]
    for atoms in structures:
        atoms.rattle(0.05, seed=1)
        ref = _results(exact, atoms)
        errors = {}
        for label, calc in (("tables", tabulated), ("mlp", plain)):
            res = _results(calc, atoms)
            assert set(res) == set(ref) and "prop" in res
            errors[label] = {k: np.abs(res[k] - ref[k]).max() / max(np.abs(ref[k]).max(), 1e-3) for k in ref}
        for k, err in errors["tables"].items():
            assert err < 3 * errors["mlp"][k] + 2e-6, (atoms.get_chemical_formula(), k, errors)


def test_embedding_tables_leave_the_state_dict_alone(tmp_path):
    """Tables are inference state: the calculator's model saves as its MLP weights, a tabulated model passed to a
    float64 calculator evaluates the MLPs again, and a model in training mode is not tabulated."""
    model = smooth_model(seed=2)
    calc = ALIGNNCalculator(model, device="cpu", skin=0.0)
    assert calc.model.embedding_tables is not None
    assert calc.model.state_dict().keys() == model.state_dict().keys()
    alignn_ase.save_model(calc.model, tmp_path / "saved")
    again = load_model(tmp_path / "saved")
    assert again.embedding_tables is None
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
    assert ALIGNNCalculator(calc.model, device="cpu", dtype="float64").model.embedding_tables is None
    with pytest.raises(InvalidArgumentError, match="eval"):
        smooth_model().train().tabulate_embeddings()


def test_compiled_float32_calculator_with_tables_equals_eager_and_pickles():
    """Compiled float32 (tables inside the compiled program) against eager; a compiled calculator pickled or
    deep-copied (for multiprocessing) compiles again and gives the same numbers."""
    model = smooth_model(seed=7)
    eager = ALIGNNCalculator(model, device="cpu", skin=0.0)
    compiled = ALIGNNCalculator(model, device="cpu", skin=0.0, compile=True)
    atoms = random_crystal("Si2O3Na", seed=3)
    a, b = _results(compiled, atoms), _results(eager, atoms)
    assert compiled.compile_mode == "functional"
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5, err_msg=k)
    for again in (pickle.loads(pickle.dumps(compiled)), copy.deepcopy(compiled)):
        assert again.compile_mode == "functional" and again._derivatives is not compute.autograd_derivatives
        _assert_same(_results(again, atoms), a, tol=1e-6)
