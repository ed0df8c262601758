"""Measure the effect of each optimisation in isolation (see NOTES.md).

Usage (from the repository root, project venv)::

    /work/venv/bin/python benchmarks/ablation.py [--baseline-commit 4a75351] [--threads 1]

Each item times the old and the new way of doing one thing, alternating A and
B, and reports medians of CPU time (``time.process_time``; with one thread it
is robust to other jobs on a shared machine). Inputs are the same-weights
model of the main benchmark (upstream ALIGNN-FF 2/2/64 configuration, random
weights, built here with alignn-ase's own loader from a config; speed does not
depend on the weights) on Si diamond and Cu fcc supercells. The last item runs
the whole E+F+S call of ``--baseline-commit`` (exported with ``git archive``)
against the working tree, in alternating subprocesses.

Writes ``results/ablation_<threads>thread.json`` and ``.md``. With more than one
thread, set ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine (see NOTES.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from ase.build import bulk
from torch.nn import functional as F
from vesin import NeighborList

from alignn_ase import build_graph, evaluate
from alignn_ase.graph import AtomGraph
from alignn_ase.io import build_model
from alignn_ase.nn.layers import EdgeGatedGraphConv, bond_cosines, edge_endpoints

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAME_WEIGHTS_CONFIG = {
    "neighbor_strategy": "pure_torch",
    "cutoff": 5.0,
    "max_neighbors": 12,
    "use_canonize": True,
    "atom_features": "cgcnn",
    "three_body_cutoff": 3.5,
    "model": {"name": "alignn_atomwise_pure", "alignn_layers": 2, "gcn_layers": 2, "hidden_features": 64,
              "embedding_features": 64, "atom_input_features": 92, "stresswise_weight": 0.1},
}


def si(n: int):
    a = bulk("Si", "diamond", a=5.43, cubic=True).repeat(n)
    a.rattle(0.02, seed=n)
    return a


def cu(n: int):
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(n)
    a.rattle(0.02, seed=n)
    return a


def ab(old: Callable[[], object], new: Callable[[], object], reps: int) -> dict:
    """Alternate old/new ``reps`` times after a warm-up; median CPU ms of each and the ratio."""
    old(), new()
    t_old, t_new = [], []
    for _ in range(reps):
        for f, ts in ((old, t_old), (new, t_new)):
            t = time.process_time()
            f()
            ts.append(time.process_time() - t)
    o, n = 1e3 * statistics.median(t_old), 1e3 * statistics.median(t_new)
    return {"old_ms": o, "new_ms": n, "speedup": o / n}


def fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    def run():
        xi = x.detach().requires_grad_(True)
        torch.autograd.grad(fn(xi).sum(), [xi])

    return run


# ---------------------------------------------------------------------------
# the old ways (alignn-ase's own code before the speed work)


def old_min_distance_list(atoms, min_distance=0.1):
    """Before: a second vesin call with cutoff = min_distance (cell lists with tiny bins are slow)."""
    nl = NeighborList(cutoff=min_distance, full_list=False)
    nl.compute(atoms.positions, atoms.cell.array, True, "ijSd")


def old_conv(conv: EdgeGatedGraphConv, x, y, src, dst, w=None):
    """Before: five separate linears and advanced-index gathers (backward: index_put with accumulate)."""
    n = x.shape[0]
    m = conv.src_gate(x)[src] + conv.dst_gate(x)[dst] + conv.edge_gate(y)
    sigma = torch.sigmoid(m)
    message = conv.dst_update(x)[src] * sigma
    if w is None:
        h = x.new_zeros(n, m.shape[1]).index_add_(0, dst, message) / (
            x.new_zeros(n, m.shape[1]).index_add_(0, dst, sigma) + 1e-6
        )
    else:
        h = x.new_zeros(n, m.shape[1]).index_add_(0, dst, message * w.unsqueeze(1))
    x_new = F.silu(conv.bn_nodes(conv.src_update(x) + h))
    y_new = F.silu(conv.bn_edges(m))
    return x + x_new, y + y_new


def old_bond_cosines(r, e1, e2):
    r1, r2 = r[e1], r[e2]
    num = -(r1 * r2).sum(dim=-1)
    den = r1.norm(dim=-1).clamp_min(1e-12) * r2.norm(dim=-1).clamp_min(1e-12)
    return (num / den).clamp(-1.0, 1.0)


def old_evaluate(model, graph: AtomGraph):
    """Before: forces and stress as derivatives w.r.t. positions and a strain applied to positions and cell."""
    positions = graph.positions.detach().requires_grad_(True)
    cell = graph.cell.detach()
    volume = graph.volume()
    displacement = torch.zeros_like(cell).requires_grad_(True)
    strain = 0.5 * (displacement + displacement.transpose(1, 2))
    positions_s = positions + torch.bmm(positions.unsqueeze(1), strain[graph.atom_graph]).squeeze(1)
    cell_s = cell + torch.bmm(cell, strain)
    with torch.enable_grad():
        offsets = torch.bmm(graph.shift.unsqueeze(1), cell_s[graph.edge_graph]).squeeze(1)
        r = positions_s[graph.dst] - positions_s[graph.src] + offsets
        out = model(graph, r)
        total = out["energy"] + out.get("gradient_only_energy", 0.0)
        g_pos, g_disp = torch.autograd.grad(total.sum(), [positions, displacement])
    return -g_pos, g_disp / volume.view(-1, 1, 1)


# ---------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-commit", default="4a75351")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(SAME_WEIGHTS_CONFIG).eval()
    frozen = build_model(SAME_WEIGHTS_CONFIG).eval().requires_grad_(False)
    frozen.load_state_dict(model.state_dict())
    settings = model.graph_settings
    results: dict[str, dict] = {}

    def record(name: str, res: dict) -> None:
        results[name] = res
        print(f"{name}: old {res['old_ms']:.2f} ms, new {res['new_ms']:.2f} ms, x{res['speedup']:.2f}", flush=True)

    # 1. minimum-distance check from the bond list's own neighbour-list call
    for n in (1, 2, 5):
        atoms = si(n)
        record(f"graph build with the 0.1 Å minimum-distance check: own neighbour list vs shared, Si {len(atoms)}",
               ab(lambda: (old_min_distance_list(atoms), build_graph(atoms, settings, torch.float32)),
                  lambda: build_graph(atoms, settings, torch.float32, min_distance=0.1), args.reps))

    # 2.-4. one edge-gated convolution, forward + backward to its inputs, line graph of Si 1000 / Cu 500
    for atoms, label in ((si(5), "Si 1000"), (cu(5), "Cu 500")):
        g = build_graph(atoms, settings, torch.float32)
        conv = EdgeGatedGraphConv(64, 64).requires_grad_(False)
        bonds = torch.randn(g.num_edges, 64)
        angles = torch.randn(g.triplet_e1.shape[0], 64)
        e1, e2 = g.triplet_e1, g.triplet_e2
        ends = edge_endpoints(e1, e2, g.num_edges)

        def run(fn):
            def go():
                b, a = bonds.clone().requires_grad_(True), angles.clone().requires_grad_(True)
                out = fn(b, a)
                torch.autograd.grad(out[0].sum() + out[1].sum(), [b, a])

            return go

        record(f"line-graph conv fwd+bwd, old (5 linears, x[idx] gathers) vs fused + index_select, {label}",
               ab(run(lambda b, a: old_conv(conv, b, a, e1, e2)), run(lambda b, a: conv(b, a, e1, e2)), args.reps))
        frac = ends.nodes.shape[0] / g.num_edges
        record(f"line-graph conv fwd+bwd, gates on all bonds vs on the {100 * frac:.0f} % in a triplet, {label}",
               ab(run(lambda b, a: conv(b, a, e1, e2)), run(lambda b, a: conv(b, a, e1, e2, None, ends)), args.reps))

    # gathers alone
    x = torch.randn(1000, 64)
    idx = torch.randint(0, 1000, (12000,))
    record("gather 12000 rows of 64, fwd+bwd: x[idx] vs x.index_select(0, idx)",
           ab(fwd_bwd(lambda t: t[idx], x), fwd_bwd(lambda t: t.index_select(0, idx), x), args.reps))

    # 5. bond cosines
    g = build_graph(si(5), settings, torch.float32)
    r = g.bond_vectors()
    record("bond cosines fwd+bwd, Si 1000",
           ab(fwd_bwd(lambda t: old_bond_cosines(t, g.triplet_e1, g.triplet_e2), r),
              fwd_bwd(lambda t: bond_cosines(t, g.triplet_e1, g.triplet_e2), r),
              args.reps))

    # 6. forces and stress from the bond-vector gradient, frozen parameters
    for atoms, label in ((si(1), "Si 8"), (si(5), "Si 1000")):
        g = build_graph(atoms, settings, torch.float32)
        record(f"E+F+S model part: strain derivative vs bond-vector virial, {label}",
               ab(lambda: old_evaluate(frozen, g), lambda: evaluate(frozen, g), args.reps))
        record(f"E+F+S model part: trainable vs frozen parameters, {label}",
               ab(lambda: evaluate(model, g), lambda: evaluate(frozen, g), args.reps))

    # 7. whole calculator call: baseline commit vs working tree, alternating subprocesses
    results["whole call"] = whole_call(args)

    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"ablation_{args.threads}thread"
    (args.out / f"{tag}.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# Ablation: old vs new, one change at a time", "",
             f"CPU time medians of {args.reps} alternating repetitions, {args.threads} thread(s), float32. "
             f"Command: `{sys.executable} benchmarks/ablation.py {' '.join(sys.argv[1:])}`.", "",
             "| change | old | new | speed-up |", "|---|---:|---:|---:|"]
    for name, res in results.items():
        if name == "whole call":
            continue
        lines.append(f"| {name} | {res['old_ms']:.2f} ms | {res['new_ms']:.2f} ms | {res['speedup']:.2f}× |")
    lines += ["", f"## Whole E+F+S calculator call: commit {args.baseline_commit} vs working tree", "",
              "| structure | before | after | speed-up |", "|---|---:|---:|---:|"]
    for label, res in results["whole call"].items():
        lines.append(f"| {label} | {res['old_ms']:.1f} ms | {res['new_ms']:.1f} ms | {res['speedup']:.2f}× |")
    (args.out / f"{tag}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / (tag + '.md')}")
    return 0


WHOLE_CALL = r"""
import json, sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from ase.build import bulk
from ase.calculators.calculator import all_changes
import alignn_ase
from alignn_ase import ALIGNNCalculator
from alignn_ase.io import build_model
print(alignn_ase.__file__)
model = build_model(json.loads(sys.argv[2])).eval()
calc = ALIGNNCalculator(model, device="cpu", dtype="float32")
out = {}
for name, n in (("Si 8", 1), ("Si 64", 2), ("Si 1000", 5), ("Cu 500", -5)):
    a = (bulk("Si", "diamond", a=5.43, cubic=True) if n > 0 else bulk("Cu", "fcc", a=3.61, cubic=True)).repeat(abs(n))
    rng = np.random.default_rng(0)
    ts = []
    for k in range(7):
        a.positions += rng.normal(0, 0.01, a.positions.shape)
        t = time.process_time()
        calc.calculate(a, ["energy", "forces", "stress"], all_changes)
        ts.append(time.process_time() - t)
    out[name] = float(np.median(ts[2:]) * 1e3)
print(json.dumps(out))
"""


def whole_call(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="alignn_ase_baseline_"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_commit, "alignn_ase", "potentials"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    (tmp / "potentials").rename(tmp / "alignn_ase" / "potentials")
    neutral = Path(tempfile.mkdtemp(prefix="alignn_ase_cwd_"))  # `python -c` puts the cwd first on sys.path
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(3):
        for tag, path in (("old", str(tmp)), ("new", str(ROOT))):
            env = {**os.environ, "PYTHONPATH": path}
            o = subprocess.run([sys.executable, "-c", WHOLE_CALL, str(args.threads), json.dumps(SAME_WEIGHTS_CONFIG)],
                               capture_output=True, text=True, env=env, check=True, cwd=neutral)
            assert o.stdout.splitlines()[0] == str(Path(path) / "alignn_ase" / "__init__.py"), o.stdout
            for k, v in json.loads(o.stdout.strip().splitlines()[-1]).items():
                samples.setdefault(k, {"old": [], "new": []})[tag].append(v)
    out = {}
    for k, v in samples.items():
        o, n = statistics.median(v["old"]), statistics.median(v["new"])
        out[k] = {"old_ms": o, "new_ms": n, "speedup": o / n}
        print(f"whole call {k}: old {o:.1f} ms, new {n:.1f} ms, x{o / n:.2f}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
