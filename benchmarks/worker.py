"""One timing process of the benchmark: holds one calculator and answers commands.

Started by ``run_benchmark.py`` with the interpreter of the program's virtualenv
(alignn-ase: the project venv; upstream ALIGNN, CHGNet, SevenNet: the side venv)
and driven through JSON lines on stdin/stdout, so that every program stays
loaded while the driver interleaves them. Imports only what its program needs.

Commands (one JSON object per line; the answer is one JSON line):

- ``time``: ``calls`` E+F+S evaluations of structure ``index``, each at the stored
  positions plus fresh N(0, 0.01 Å) noise, one ``calc.calculate(atoms,
  ["energy", "forces", "stress"])`` per call; wall and CPU seconds per call.
  ``time`` and ``getters`` first make untimed calls (at least one; with ``settle_s``, for that many seconds) on
  geometries drawn apart from the timed ones;
  with ``settle``, ``loop`` and ``predict`` first do one untimed evaluation.
  The driver switches between processes, and the first calls after a switch
  are slower (threads to wake, the previous process's threads still spinning,
  cold caches): measured 5-7 ms against ~3 ms for an 8-atom call, most of a
  small cell's call.
- ``getters``: the same through ``get_potential_energy``, ``get_forces`` and
  ``get_stress`` (what ASE's optimisers and MD pay).
- ``memory``: peak resident memory (MB) of one evaluation (VmHWM reset first); with
  ``--device cuda``, the peak GPU memory torch allocated in it instead.
- ``breakdown``: seconds in graph building and in the model, separately.
- ``floor`` (alignn-ase only): what no implementation of this model's arithmetic avoids, measured on
  ``calls`` jittered geometries of structure ``index``: graph-building seconds, and seconds for the call's
  matrix products alone (every ``mm``/``addmm``/``bmm`` of one E+F+S evaluation, recorded with a
  ``TorchDispatchMode`` and replayed back to back on fresh tensors of the same shapes and strides); also
  their FLOPs, and the number of other operators and the bytes they write.
- ``loop`` / ``predict``: the 64 small structures one by one / batched.
- ``md``: velocity-Verlet steps; step time and time spent building graphs.
- ``capacity``: one E+F+S evaluation of a rattled Si diamond cell repeated ``n`` times
  along each cubic axis (8 n³ atoms), built here rather than read from the structures
  file: seconds, peak memory (as ``memory``) and the atom count; how large a cell fits.
- ``trim``: return freed memory to the OS (so idle workers hold little).

A command that raises (out of memory, say) answers ``{"error": ...}`` and leaves the
worker running, so that the driver can record the failure and go on.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import time
import traceback

import numpy as np
import torch
from ase.calculators.calculator import all_changes
from ase.io import read

JITTER = 0.01  # Å
PROPS = ["energy", "forces", "stress"]


def peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def trim() -> None:
    """Return freed host memory to the OS and, on a GPU, the allocator's cached blocks to the driver, so that an
    idle worker holds little of either (the capacity series measures what one program can use)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def small_structures(n: int = 64):
    """``n`` rattled 8-atom Si cells (the batched-evaluation case), identical in every venv."""
    from ase.build import bulk

    out = []
    for k in range(n):
        a = bulk("Si", "diamond", a=5.43, cubic=True)
        a.rattle(0.05, seed=k)
        out.append(a)
    return out


class Program:
    """A calculator plus how to time its graph building and its model separately."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.calc = self._make()

    def _make(self):
        a = self.args
        if a.program == "alignn_ase":
            from alignn_ase import ALIGNNCalculator

            return ALIGNNCalculator(a.model, device=a.device, dtype=a.dtype, compile=a.compile, skin=a.skin)
        if a.program == "upstream":
            torch.set_default_dtype(torch.float64 if a.dtype == "float64" else torch.float32)
            from alignn.ff.calculators import AlignnAtomwiseCalculator

            return AlignnAtomwiseCalculator(path=a.model, device=a.device)
        if a.program == "chgnet":
            from chgnet.model.dynamics import CHGNetCalculator

            return CHGNetCalculator(use_device=a.device)
        if a.program == "sevenn":
            from sevenn.calculator import SevenNetCalculator

            return SevenNetCalculator("7net-0", device=a.device)
        raise SystemExit(f"unknown program {a.program}")

    def breakdown(self, atoms) -> tuple[float, float]:
        """(graph seconds, model seconds) of one E+F+S evaluation."""
        a = self.args
        if a.program == "alignn_ase":
            from alignn_ase.compute import evaluate

            calc = self.calc
            t0 = time.perf_counter()
            graph = calc._graphs(atoms)
            t1 = time.perf_counter()
            with calc._compile_settings():
                out = evaluate(calc.model, graph, forces=True, stress=True)
            float(out["energy"][0])
            return t1 - t0, time.perf_counter() - t1
        if a.program == "upstream":
            from alignn.ff.calculators import ase_to_atoms
            from alignn.graphs import Graph

            calc = self.calc
            cfg = calc.config
            t0 = time.perf_counter()
            g, lg = Graph.atom_dgl_multigraph(
                ase_to_atoms(atoms),
                neighbor_strategy=cfg["neighbor_strategy"],
                cutoff=cfg["cutoff"],
                max_neighbors=cfg["max_neighbors"],
                atom_features=cfg["atom_features"],
                use_canonize=cfg["use_canonize"],
                three_body_cutoff=cfg.get("three_body_cutoff", None),
            )
            t1 = time.perf_counter()
            lattice = torch.tensor(np.array(atoms.cell)).type(torch.get_default_dtype())
            result = calc.model((g.to(calc.device), lg.to(calc.device), lattice.to(calc.device)))
            float(result["out"].sum())
            return t1 - t0, time.perf_counter() - t1
        raise SystemExit(f"no breakdown for {a.program}")


def jittered(base, rng):
    atoms = base.copy()
    atoms.positions = base.positions + rng.normal(0.0, JITTER, base.positions.shape)
    return atoms


def cmd_time(prog, structures, msg, getters=False):
    base = structures[msg["index"]]
    rng = np.random.default_rng(msg.get("seed", 0))
    wall, cpu, energy = [], [], []
    # untimed calls after another program ran (see module docstring), at least one, on geometries of their own: a
    # faster program makes more of them, and they must not shift the timed calls' geometries, whose energies the
    # driver compares across programs
    settle_rng = np.random.default_rng([msg.get("seed", 0), 1])
    settle_until = time.perf_counter() + msg.get("settle_s", 0.0)
    while True:
        prog.calc.calculate(jittered(base, settle_rng), PROPS, all_changes)
        if time.perf_counter() >= settle_until:
            break
    for _ in range(msg["calls"]):
        atoms = jittered(base, rng)
        w0, c0 = time.perf_counter(), time.process_time()
        if getters:
            atoms.calc = prog.calc
            atoms.get_potential_energy()
            atoms.get_forces()
            atoms.get_stress()
        else:
            prog.calc.calculate(atoms, PROPS, all_changes)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        energy.append(float(prog.calc.results["energy"]))
    return {"wall": wall, "cpu": cpu, "energy": energy, "compile_mode": getattr(prog.calc, "compile_mode", None)}


def cmd_memory(prog, structures, msg):
    atoms = jittered(structures[msg["index"]], np.random.default_rng(1))
    trim()
    if prog.args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
        prog.calc.calculate(atoms, PROPS, all_changes)
        return {"peak_mb": torch.cuda.max_memory_allocated() / 2**20, "before_mb": before}
    reset_peak_rss()
    before = peak_rss_mb()
    prog.calc.calculate(atoms, PROPS, all_changes)
    return {"peak_mb": peak_rss_mb(), "before_mb": before}


def cmd_capacity(prog, msg):
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(msg["n"])
    atoms.rattle(0.03, seed=7)
    t0 = time.perf_counter()
    out = cmd_memory(prog, [atoms], {"index": 0})
    return {**out, "wall": time.perf_counter() - t0, "n_atoms": len(atoms)}


def cmd_breakdown(prog, structures, msg):
    rng = np.random.default_rng(2)
    graph, model = [], []
    prog.breakdown(jittered(structures[msg["index"]], rng))  # untimed: the first call after a process switch
    for _ in range(msg["calls"]):
        g, m = prog.breakdown(jittered(structures[msg["index"]], rng))
        graph.append(g)
        model.append(m)
    return {"graph": graph, "model": model}


GEMMS = ("mm", "addmm", "bmm", "baddbmm")


def cmd_floor(prog, structures, msg):
    from torch.utils._python_dispatch import TorchDispatchMode

    from alignn_ase.compute import evaluate

    if prog.args.program != "alignn_ase":
        raise SystemExit("floor: alignn_ase only")
    calc = prog.calc
    rng = np.random.default_rng(4)
    base = structures[msg["index"]]
    recorded, other = [], {"ops": 0, "bytes": 0}

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ in GEMMS:
                recorded.append((func, [(a.shape, a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a
                                        for a in args], kwargs or {}))
            else:
                other["ops"] += 1
                outs = out if isinstance(out, (tuple, list)) else [out]
                other["bytes"] += sum(t.numel() * t.element_size() for t in outs if isinstance(t, torch.Tensor))
            return out

    graph = calc._graphs(jittered(base, rng))
    with calc._compile_settings(), Record():
        evaluate(calc.model, graph, forces=True, stress=True)
    flops, replay = 0, []
    for func, args, kwargs in recorded:
        made = [torch.empty_strided(a[0], a[1], dtype=a[2]).uniform_(-1, 1) if isinstance(a, tuple) else a
                for a in args]
        replay.append((func, made, kwargs))
        flops += 2 * made[-2].numel() * made[-1].shape[-1]  # (..., m, k) @ (..., k, n): 2 m k n per batch
    gemm, graph_s = [], []
    for _ in range(msg["calls"]):
        t = time.perf_counter()
        calc._graphs(jittered(base, rng))
        graph_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for func, made, kwargs in replay:
            func(*made, **kwargs)
        gemm.append(time.perf_counter() - t)
    return {"graph": graph_s, "gemm": gemm, "gemm_flops": flops, "gemm_calls": len(recorded),
            "other_ops": other["ops"], "other_bytes": other["bytes"]}


def cmd_loop(prog, msg):
    structs = small_structures(msg["n"])
    if msg.get("settle"):
        prog.calc.calculate(structs[-1].copy(), PROPS, all_changes)
    t0 = time.perf_counter()
    for atoms in structs:
        prog.calc.calculate(atoms, PROPS, all_changes)
    return {"wall": time.perf_counter() - t0}


def cmd_predict(prog, msg):
    structs = small_structures(msg["n"])
    if msg.get("settle"):
        prog.calc.predict(structs, batch_size=msg["n"], progress=False)
    t0 = time.perf_counter()
    prog.calc.predict(structs, batch_size=msg["n"], progress=False)
    return {"wall": time.perf_counter() - t0}


def cmd_md(prog, structures, msg):
    """Velocity-Verlet MD (1 fs, 300 K start); for alignn-ase, graph time from the calculator's graph cache."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = structures[msg["index"]].copy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(3))
    calc = prog.calc
    cache = getattr(calc, "_graphs", None)  # alignn-ase only
    spent = [0.0]

    class Timed:
        def __call__(self, a):
            t = time.perf_counter()
            try:
                return cache(a)
            finally:
                spent[0] += time.perf_counter() - t

    atoms.calc = calc
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    dyn.run(2)  # warm-up
    if cache is not None:
        calc._graphs = Timed()
    try:
        builds0 = cache.n_builds if cache is not None else 0
        steps, times = msg["steps"], []
        for _ in range(steps):
            t = time.perf_counter()
            dyn.run(1)
            times.append(time.perf_counter() - t)
    finally:
        if cache is not None:
            calc._graphs = cache
    timed = cache is not None
    return {"step": times, "graph_total": spent[0] if timed else None,
            "builds": cache.n_builds - builds0 if timed else None, "steps": steps}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--program", required=True, choices=["alignn_ase", "upstream", "chgnet", "sevenn"])
    p.add_argument("--model", default=None)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--skin", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--structures", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    proto, sys.stdout = sys.stdout, sys.stderr  # programs that print must not corrupt the protocol
    structures = read(args.structures, ":")
    prog = Program(args)
    print(json.dumps({"ready": True}), file=proto, flush=True)
    commands = {
        "time": lambda msg: cmd_time(prog, structures, msg),
        "getters": lambda msg: cmd_time(prog, structures, msg, getters=True),
        "memory": lambda msg: cmd_memory(prog, structures, msg),
        "capacity": lambda msg: cmd_capacity(prog, msg),
        "breakdown": lambda msg: cmd_breakdown(prog, structures, msg),
        "floor": lambda msg: cmd_floor(prog, structures, msg),
        "loop": lambda msg: cmd_loop(prog, msg),
        "predict": lambda msg: cmd_predict(prog, msg),
        "md": lambda msg: cmd_md(prog, structures, msg),
        "trim": lambda msg: trim() or {},
    }
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        if msg["cmd"] not in commands:
            out = {"error": f"unknown command {msg['cmd']}"}
        else:
            try:
                out = commands[msg["cmd"]](msg)
            except Exception as exc:  # e.g. out of memory: answer, and stay up for the next command
                traceback.print_exc()
                out = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
            if "error" in out:  # outside the except block, whose traceback holds the failed call's tensors
                trim()
        print(json.dumps(out), file=proto, flush=True)


if __name__ == "__main__":
    main()
