"""Benchmark alignn-ase against upstream ALIGNN (same weights), CHGNet and SevenNet in one run.

Usage (from the repository root)::

    /work/venv/bin/python benchmarks/run_benchmark.py --side-python /work/upvenv/bin/python

``--side-python`` is a virtualenv with ``torch``, upstream ``alignn``, ``chgnet``
and ``sevenn``; alignn-ase runs from the interpreter running this script.
Every program runs in its own process (``worker.py``), all kept alive and
driven in turn, so the numbers are measured side by side in one run; the
order of the programs rotates every round. Each process uses ``--threads``
threads (default 2) and the same allocator settings (``--allocator``).

Measured:

- E+F+S: one ``calculate(atoms, ["energy", "forces", "stress"])`` per call, at
  the structure's positions plus fresh 0.01 Å noise each call, after warm-up;
  the median over ``--rounds`` rounds of a few calls, each round's timed calls
  of a program preceded by one untimed call, and by 50 ms of them when its calls take < 0.2 s,
  on geometries of their own (the first calls after a switch between processes are slower by up to a few
  ms, most of a small cell's call; every program is treated alike). alignn-ase and upstream
  ALIGNN use the same weights: upstream's seeded random initialisation of the
  ALIGNN-FF 2/2/64 configuration, written by upstream's own code
  (``make_upstream_checkpoint.py``) and loaded into alignn-ase with
  ``load_model``; the energies of both are compared as a check.
- peak resident memory of one E+F+S evaluation (VmHWM, whole process);
- the share of graph building in alignn-ase's and upstream's evaluation;
- µs per atom-step against N for Si supercells up to 10,648 atoms;
- 64 structures of 8 atoms: alignn-ase ``predict`` (one batch) against
  one-by-one loops;
- velocity-Verlet MD with alignn-ase's default (smooth) potential, with and
  without the Verlet skin: step time and the share spent building graphs;
- the ASE getter path (``get_potential_energy``, ``get_forces``,
  ``get_stress``), where upstream's calculator, which bypasses ASE's cache,
  evaluates its model three times.

With ``--device cuda`` every program computes on the GPU and the memory table
holds peak GPU memory; with ``--side-python ''`` alignn-ase runs alone (a GPU
machine without the peers) on a same-weights ``--checkpoint`` written beforehand.

Writes ``results/benchmark.json`` (every sample) and ``results/benchmark.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write

HERE = Path(__file__).resolve().parent
SLOW_CALL_S, SLOW_SAMPLES = 3.0, 3
#: before each round's timed calls every program makes one untimed call, and programs whose calls are shorter
#: than SETTLE_BELOW_S make them for SETTLE_S seconds: the first calls after the driver switches processes are
#: slower (worker.py), by up to a few ms, most of a small cell's call.
SETTLE_BELOW_S, SETTLE_S = 0.2, 0.05


def settle_for(call_s: float) -> float:
    """Seconds of untimed calls before a round's timed ones, for a program whose calls take ``call_s`` seconds."""
    return SETTLE_S if call_s < SETTLE_BELOW_S else 0.0
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


# ---------------------------------------------------------------------------
# structures


@dataclass
class Structure:
    label: str
    atoms: Atoms
    main: bool  # in the main E+F+S table
    peers: bool  # CHGNet / SevenNet / fp64 run it


def _si(n: int) -> Atoms:
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat(n)


def structures(quick: bool, max_atoms: int = 10648) -> list[Structure]:
    out: list[Structure] = []
    si_main = (1, 2) if quick else (1, 2, 3, 4, 5)
    for n in si_main:
        out.append(Structure(f"Si diamond {8 * n**3}", _si(n), True, True))
    if not quick:
        out.append(Structure("Cu fcc 108", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3), True, True))
        out.append(Structure("Cu fcc 500", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(5), True, True))
    benzene = molecule("C6H6")
    benzene.center(vacuum=8.0)
    benzene.pbc = True  # a box wider than 2 cut-offs: no image within reach; both programs take the same input
    out.append(Structure("C6H6 molecule (in a 16 Å-vacuum box)", benzene, True, True))
    sto = Atoms(
        "SrTiO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.eye(3) * 3.905,
        pbc=True,
    ).repeat(2 if quick else 3)
    out.append(Structure(f"SrTiO3 perovskite {len(sto)}", sto, True, True))
    if not quick:
        for n in (7, 8, 10, 11, 14, 17, 20, 25, 30):
            if 8 * n**3 <= max_atoms:
                out.append(Structure(f"Si diamond {8 * n**3}", _si(n), False, False))
    for i, s in enumerate(out):
        s.atoms.rattle(0.03, seed=100 + i)
    return out


# ---------------------------------------------------------------------------
# worker processes


class WorkerError(RuntimeError):
    """A worker answered a command with an error (out of memory, say), or died."""


@dataclass
class Worker:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def launch(self) -> None:
        """Start the process; :meth:`wait_ready` reads its first line (workers load in parallel)."""
        with self.log_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=self.env
            )

    def wait_ready(self) -> None:
        ready = self.receive()
        if not ready.get("ready"):
            raise WorkerError(f"worker {self.name} did not start: {ready}")

    def _died(self) -> WorkerError:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        tail = " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])
        return WorkerError(f"worker {self.name} died (exit code {code}): {tail}")

    def receive(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise self._died()
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.name}: {answer['error']}")
        return answer

    def send(self, **msg) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: the process is gone
            raise self._died() from None

    def ask(self, **msg) -> dict:
        self.send(**msg)
        return self.receive()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def start_workers(workers: dict[str, Worker], unavailable: dict[str, str]) -> None:
    """Start every worker at once; drop (into ``unavailable``, with the reason) those that fail to start."""
    for w in workers.values():
        w.launch()
    for name, w in list(workers.items()):
        try:
            w.wait_ready()
        except WorkerError as exc:
            drop(workers, name, unavailable, exc)


def drop(workers: dict[str, Worker], name: str, unavailable: dict[str, str], exc: WorkerError) -> None:
    """Stop worker ``name`` and leave it out of the run, with the reason in ``unavailable``."""
    unavailable[name] = str(exc)
    log(f"{name} unavailable: {exc}")
    try:
        workers.pop(name).stop()
    except (OSError, subprocess.TimeoutExpired):
        pass


def med(xs) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------
# measurements


def time_structures(workers: dict[str, Worker], items, rounds: int, budget: float, data: dict,
                    give_up_s: float) -> None:
    """Interleaved E+F+S timing: for each structure (an entry of ``data`` each), rounds x programs (order rotating).

    A program that fails on a structure (its error is recorded under ``error``), or whose calls took longer
    than ``give_up_s`` seconds, is not run on the larger cells of the scaling series (``main`` False) that follow.
    """
    retired: dict[str, str] = {}

    def failed(rec: dict, name: str, label: str, exc: WorkerError) -> None:
        rec.setdefault(name, {})["error"] = str(exc)
        retired[name] = f"failed on {label}"
        log(f"   {exc}")

    for idx, s, names in items:
        rec = data[s.label]
        if not s.main:
            for name in [n for n in names if n in retired]:
                rec.setdefault(name, {})["skipped"] = retired[name]
            names = [n for n in names if n not in retired]
        log(f"E+F+S  {s.label}: {', '.join(names)}")
        est = {}
        for name in names:
            t0 = time.perf_counter()
            try:
                w = workers[name].ask(cmd="time", index=idx, calls=2, seed=999)
            except WorkerError as exc:
                failed(rec, name, s.label, exc)
                continue
            rec.setdefault(name, {})["warmup_s"] = w["wall"]
            est[name] = w["wall"][-1]
            log(f"   warm-up {name}: {w['wall'][0]:.3f} s, {w['wall'][1]:.4f} s ({time.perf_counter() - t0:.1f} s)")
        names = [n for n in names if n in est]
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)] if names else []
            for name in order:
                if "error" in rec[name]:
                    continue
                if est[name] > SLOW_CALL_S and len(rec[name].get("wall", [])) >= SLOW_SAMPLES:
                    continue  # slow programs: a few samples are enough
                calls = int(max(1, min(3, budget // max(est[name], 1e-6))))
                try:
                    out = workers[name].ask(cmd="time", index=idx, calls=calls, seed=r,
                                            settle_s=settle_for(est[name]))
                except WorkerError as exc:
                    failed(rec, name, s.label, exc)
                    continue
                entry = rec[name]
                entry["compile_mode"] = out["compile_mode"]
                entry.setdefault("wall", []).extend(out["wall"])
                entry.setdefault("cpu", []).extend(out["cpu"])
                entry.setdefault("energy_by_round", []).append(out["energy"][0])
                est[name] = med(entry["wall"])
        for name in names:
            if not rec[name].get("wall"):
                continue
            rec[name]["median_ms"] = 1e3 * med(rec[name]["wall"])
            rec[name]["median_cpu_ms"] = 1e3 * med(rec[name]["cpu"])
            if rec[name]["median_ms"] > 1e3 * give_up_s:
                retired.setdefault(name, f"slower than {give_up_s:g} s per call on {s.label}")
            attempt(workers[name], "trim")
        log("   " + "  ".join(f"{n}={rec[n]['median_ms']:.1f} ms" for n in names if "median_ms" in rec[n]))


def attempt(worker: Worker, cmd: str, **msg) -> dict | None:
    """``worker.ask(cmd=cmd, **msg)``, or None (logged) if it fails."""
    try:
        return worker.ask(cmd=cmd, **msg)
    except WorkerError as exc:
        log(f"   {exc}")
        return None


def timed_names(data: dict, label: str, names) -> list[str]:
    """The programs of ``names`` with an E+F+S median for structure ``label``."""
    return [n for n in names if "median_ms" in data[label].get(n, {})]


def measure_memory(workers, items, data) -> None:
    for idx, s, names in items:
        names = timed_names(data, s.label, names)
        for name in names:
            out = attempt(workers[name], "memory", index=idx)
            data[s.label][name]["peak_mb"] = None if out is None else out["peak_mb"]
            attempt(workers[name], "trim")
        log(f"memory {s.label}: " + "  ".join(f"{n}={fmt_mb(data[s.label][n]['peak_mb'])}" for n in names))


def fmt_mb(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f} MB"


def measure_breakdown(workers, items, data, calls: int) -> None:
    for idx, s, names in items:
        names = timed_names(data, s.label, names)
        for name in names:
            out = attempt(workers[name], "breakdown", index=idx, calls=calls)
            if out is not None:
                data[s.label][name]["graph_ms"] = 1e3 * med(out["graph"])
                data[s.label][name]["model_ms"] = 1e3 * med(out["model"])
        log(f"breakdown {s.label}: " + "  ".join(
            f"{n} graph {data[s.label][n]['graph_ms']:.1f} / model {data[s.label][n]['model_ms']:.1f} ms"
            for n in names if "graph_ms" in data[s.label][n]
        ))


def measure_getters(workers, items, data, rounds: int) -> None:
    for idx, s, names in items:
        names = timed_names(data, s.label, names)
        for r in range(rounds):
            for name in names:
                settle = settle_for(1e-3 * data[s.label][name]["median_ms"])
                out = attempt(workers[name], "getters", index=idx, calls=2, seed=50 + r, settle_s=settle)
                if out is not None:
                    data[s.label][name].setdefault("getters_wall", []).extend(out["wall"])
        for name in names:
            if data[s.label][name].get("getters_wall"):
                data[s.label][name]["getters_ms"] = 1e3 * med(data[s.label][name]["getters_wall"])


def measure_batch(workers, specs, rounds: int, n: int) -> dict:
    """specs: list of (label, worker name, command); a spec whose warm-up fails is left out."""
    specs = [spec for spec in specs if attempt(workers[spec[1]], spec[2], n=n) is not None]  # warm-up
    res = {label: [] for label, _, _ in specs}
    for _round in range(rounds):
        for label, name, cmd in specs:
            out = attempt(workers[name], cmd, n=n, settle=True)
            if out is not None:
                res[label].append(out["wall"])
    out = {label: {"wall": v, "median_ms": 1e3 * med(v)} for label, v in res.items() if v}
    log("batch: " + "  ".join(f"{k}={v['median_ms']:.1f} ms" for k, v in out.items()))
    return out


def measure_capacity(workers, names, repeats, budget_s: float, out: dict, save) -> None:
    """For each worker of ``names``: one E+F+S call on Si diamond cells of 8 n³ atoms for n in ``repeats``
    (growing), until a call fails (out of memory, say) or the worker's calls have taken ``budget_s`` seconds.
    Rows go into ``out[name]``, and ``save()`` runs after each."""
    for name in names:
        rows, spent = out.setdefault(name, []), 0.0
        for n in repeats:
            t0 = time.perf_counter()
            try:
                r = workers[name].ask(cmd="capacity", n=n)
            except WorkerError as exc:
                rows.append({"n_atoms": 8 * n**3, "error": str(exc)})
                save()
                log(f"capacity {name}: {8 * n**3} atoms failed: {exc}")
                break
            spent += time.perf_counter() - t0
            rows.append({"n_atoms": r["n_atoms"], "wall_s": r["wall"], "peak_mb": r["peak_mb"]})
            save()
            log(f"capacity {name}: {r['n_atoms']} atoms in {r['wall']:.1f} s, peak {r['peak_mb']:.0f} MiB")
            if spent > budget_s:
                break


def describe_default() -> str:
    """Name and shape of the shipped default potential, e.g. ``alignn-ase-distill-v5: smooth ALIGNN 2/1/48, ...``."""
    from alignn_ase import load_model
    from alignn_ase.potentials import DEFAULT

    c = load_model("default").config
    return (f"{DEFAULT}: smooth ALIGNN {c.alignn_layers}/{c.gcn_layers}/{c.hidden_features}, radius {c.cutoff:g} Å, "
            f"three-body {c.three_body_cutoff:g} Å")


def measure_md(workers, specs, idx: int, steps: int) -> dict:
    """MD steps of ``idx`` with each (label, worker, skin) of ``specs``; graph time where the worker has it."""
    out = {}
    for label, name, skin in specs:
        r = attempt(workers[name], "md", index=idx, steps=steps)
        if r is None:
            continue
        step = med(r["step"])
        g = r["graph_total"]
        out[label] = {
            "step_ms": 1e3 * step,
            "graph_share": None if g is None else g / sum(r["step"]),
            "graph_ms_per_step": None if g is None else 1e3 * g / r["steps"],
            "builds": r["builds"],
            "steps": r["steps"],
            "skin": skin,
            "steps_wall": r["step"],
        }
        attempt(workers[name], "trim")
        log(f"md {label}: {out[label]['step_ms']:.1f} ms/step, {r['builds']} builds in {r['steps']} steps")
    return out


# ---------------------------------------------------------------------------
# report


def fmt_ms(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def ratio(a, b) -> str:
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return "–"
    return f"{a / b:.2f}"


def get(rec: dict, name: str, key: str):
    return rec.get(name, {}).get(key)


WORKER_LABELS = {
    "ours": "alignn-ase fp32 (same weights)", "ours64": "alignn-ase fp64 (same weights)",
    "ours_compiled": "alignn-ase fp32 compiled (same weights)", "upstream": "upstream fp32",
    "upstream64": "upstream fp64", "smooth": "default potential (skin 1 Å)",
    "smooth_noskin": "default potential", "smooth_compiled": "default potential compiled",
    "smooth_compiled_skin": "default potential compiled (skin 1 Å)",
    "chgnet": "CHGNet", "sevenn": "SevenNet",
}


def report(results: dict) -> str:
    meta, data = results["meta"], results["ehs"]
    lines = [
        "# alignn-ase benchmark",
        "",
        f"Run {meta['date']} on {meta['machine']}; {meta['threads']} thread(s) per process, "
        f"OMP_WAIT_POLICY {meta['omp_wait_policy']}; allocator: {meta['allocator']}. Load average (1, 5, 15 min) "
        f"at start {', '.join(f'{x:.1f}' for x in meta['load_average_start'])}, at end "
        f"{', '.join(f'{x:.1f}' for x in meta.get('load_average_end', (float('nan'),) * 3))}. "
        f"Total {meta.get('total_s', float('nan')) / 60:.0f} min. Command: `{meta['command']}`. "
        f"Versions: {meta['versions']}.",
        "",
        "Medians of one `calculate(atoms, [\"energy\", \"forces\", \"stress\"])` each, after warm-up, positions "
        "jittered (0.01 Å) every call, programs interleaved round by round (each round's timed calls preceded by "
        "one untimed call, 50 ms of them for calls under 0.2 s, for every program). alignn-ase and upstream ALIGNN share "
        "weights (upstream's random initialisation of ALIGNN-FF 2/2/64, pure_torch graph: cutoff 5 Å, 12 neighbours, "
        "three-body cutoff 3.5 Å, CGCNN features); ratio = alignn-ase time / upstream time (target ≤ 0.20). "
        "CHGNet (its default 0.3.0 weights) and SevenNet-0 run their shipped weights in float32.",
        "",
        "## E+F+S per call",
        "",
        "| structure | N | alignn-ase fp32 | alignn-ase fp32 compiled | upstream fp32 | ratio | ratio compiled "
        "| alignn-ase fp64 | upstream fp64 | ratio fp64 | CHGNet | SevenNet |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rec in data.items():
        if not rec.get("main"):
            continue
        a, c, u = (get(rec, k, "median_ms") for k in ("ours", "ours_compiled", "upstream"))
        a64, u64 = get(rec, "ours64", "median_ms"), get(rec, "upstream64", "median_ms")
        lines.append(
            f"| {label} | {rec['n_atoms']} | {fmt_ms(a)} | {fmt_ms(c)} | {fmt_ms(u)} | {ratio(a, u)} | {ratio(c, u)} "
            f"| {fmt_ms(a64)} | {fmt_ms(u64)} | {ratio(a64, u64)} | {fmt_ms(get(rec, 'chgnet', 'median_ms'))} "
            f"| {fmt_ms(get(rec, 'sevenn', 'median_ms'))} |"
        )
    lines += [
        "",
        "CPU time per call (process CPU seconds, all threads; less sensitive than wall time to other jobs on a "
        "shared machine):",
        "",
        "| structure | N | alignn-ase fp32 | alignn-ase fp32 compiled | upstream fp32 | ratio | ratio compiled "
        "| alignn-ase fp64 | upstream fp64 | ratio fp64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rec in data.items():
        if not rec.get("main"):
            continue
        a, c = get(rec, "ours", "median_cpu_ms"), get(rec, "ours_compiled", "median_cpu_ms")
        u, a64, u64 = (get(rec, k, "median_cpu_ms") for k in ("upstream", "ours64", "upstream64"))
        lines.append(
            f"| {label} | {rec['n_atoms']} | {fmt_ms(a)} | {fmt_ms(c)} | {fmt_ms(u)} | {ratio(a, u)} | {ratio(c, u)} "
            f"| {fmt_ms(a64)} | {fmt_ms(u64)} | {ratio(a64, u64)} |"
        )
    diffs = results.get("energy_check", {})
    if diffs:
        lines += ["", "Same-weights check: largest |E_alignn-ase − E_upstream| / |E| over all structures and rounds: "
                      f"fp32 {diffs.get('fp32', float('nan')):.1e}, fp64 {diffs.get('fp64', float('nan')):.1e}."]
    if "compile_s_by_worker" in meta:
        took = meta["compile_s_by_worker"]
        modes = {n: e["compile_mode"] for rec in data.values() for n, e in rec.items()
                 if isinstance(e, dict) and e.get("compile_mode")}
        ready = ", ".join(f"{t:.0f} s ({WORKER_LABELS.get(n, n)})" for n, t in took.items())
        final = ", ".join(f"{WORKER_LABELS.get(n, n)} {m}" for n, m in modes.items()) or "not recorded"
        lines += ["", "Compiled variants (`ALIGNNCalculator(..., compile=True)`, compiling at the same time in their "
                  f"own processes): ready after {ready}; compile mode at the end (`calc.compile_mode`): {final}."]

    lines += ["", "## The shipped default potential vs CHGNet and SevenNet (E+F+S per call, fp32, no skin)", "",
              f"Default potential: {meta['default_potential']}, its own trained weights "
              "(issue target: ≥ 10× faster per atom-step than CHGNet).", "",
              "| structure | N | default potential | µs / atom | default compiled | CHGNet | SevenNet | CHGNet / default "
              "| CHGNet / default compiled | SevenNet / default |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, rec in data.items():
        d = get(rec, "smooth_noskin", "median_ms")
        if d is None:
            continue
        dc = get(rec, "smooth_compiled", "median_ms")
        ch, sv = get(rec, "chgnet", "median_ms"), get(rec, "sevenn", "median_ms")
        lines.append(f"| {label} | {rec['n_atoms']} | {fmt_ms(d)} | {1e3 * d / rec['n_atoms']:.0f} | {fmt_ms(dc)} "
                     f"| {fmt_ms(ch)} | {fmt_ms(sv)} | {ratio(ch, d)} | {ratio(ch, dc)} | {ratio(sv, d)} |")

    what = "peak GPU memory allocated by torch" if meta.get("device") == "cuda" else "resident set of the whole process"
    lines += ["", f"## Peak memory of one E+F+S evaluation ({what}, MiB)", "",
              "| structure | N | alignn-ase fp32 | alignn-ase compiled | upstream fp32 | default potential | CHGNet "
              "| SevenNet |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, rec in data.items():
        cells = [get(rec, n, "peak_mb")
                 for n in ("ours", "ours_compiled", "upstream", "smooth_noskin", "chgnet", "sevenn")]
        shown = " | ".join("–" if v is None else f"{v:.0f}" for v in cells)
        lines.append(f"| {label} | {rec['n_atoms']} | {shown} |")

    lines += ["", "## Graph building vs model (one E+F+S evaluation, medians)", "",
              "| structure | N | alignn-ase graph | alignn-ase model | graph share | upstream graph | upstream model "
              "| graph share |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, rec in data.items():
        g, m = get(rec, "ours", "graph_ms"), get(rec, "ours", "model_ms")
        ug, um = get(rec, "upstream", "graph_ms"), get(rec, "upstream", "model_ms")
        if g is None:
            continue
        lines.append(
            f"| {label} | {rec['n_atoms']} | {fmt_ms(g)} | {fmt_ms(m)} | {100 * g / (g + m):.0f} % | {fmt_ms(ug)} "
            f"| {fmt_ms(um)} | {'–' if ug is None else f'{100 * ug / (ug + um):.0f} %'} |"
        )

    lines += ["", "## Scaling: µs per atom-step (E+F+S), Si diamond supercells", "",
              "| N | alignn-ase fp32 | alignn-ase compiled | upstream fp32 | ratio | ratio compiled | ratio (CPU time) "
              "| CHGNet | SevenNet |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    si = sorted((rec for label, rec in data.items() if label.startswith("Si diamond")), key=lambda r: r["n_atoms"])
    for rec in si:
        n = rec["n_atoms"]
        us = {k: (None if get(rec, k, "median_ms") is None else 1e3 * get(rec, k, "median_ms") / n)
              for k in ("ours", "ours_compiled", "upstream", "chgnet", "sevenn")}
        lines.append(
            f"| {n} | " + " | ".join(
                "–" if us[k] is None else f"{us[k]:.0f}" for k in ("ours", "ours_compiled", "upstream")
            ) + f" | {ratio(us['ours'], us['upstream'])} | {ratio(us['ours_compiled'], us['upstream'])} "
            f"| {ratio(get(rec, 'ours', 'median_cpu_ms'), get(rec, 'upstream', 'median_cpu_ms'))} | "
            + " | ".join("–" if us[k] is None else f"{us[k]:.0f}" for k in ("chgnet", "sevenn")) + " |"
        )

    if results.get("batch"):
        b = results["batch"]
        up = b.get("upstream one by one", {}).get("median_ms")
        lines += ["", f"## {results['meta']['batch_n']} structures of 8 atoms (E+F+S each)", "",
                  "| how | time | upstream loop / this |", "|---|---:|---:|"]
        for label, v in b.items():
            lines.append(f"| {label} | {fmt_ms(v['median_ms'])} | {ratio(up, v['median_ms'])} |")

    if results.get("md"):
        lines += ["", f"## MD: velocity Verlet, {results['meta']['md_steps']} steps of 1 fs from 300 K "
                      "(ASE's MD asks for forces; alignn-ase's and CHGNet's calculators compute the stress in the same "
                      "evaluation); one block of steps per program, not interleaved; "
                      f"default potential: {meta['default_potential']}", "",
                  "| structure | N | potential | skin | ms / step | µs / atom-step | graph building per step "
                  "| share of the step | graph builds | CHGNet / this |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for structure, runs in results["md"].items():
            n = runs["n_atoms"]
            ch = runs.get("CHGNet", {}).get("step_ms")
            for label, v in runs.items():
                if label == "n_atoms":
                    continue
                graph = "–" if v["graph_ms_per_step"] is None else f"{v['graph_ms_per_step']:.2f} ms"
                share = "–" if v["graph_share"] is None else f"{100 * v['graph_share']:.1f} %"
                builds = "–" if v["builds"] is None else f"{v['builds']} / {v['steps']}"
                skin = "–" if v["skin"] is None else f"{v['skin']} Å"
                lines.append(
                    f"| {structure} | {n} | {label} | {skin} | {v['step_ms']:.1f} ms | {1e3 * v['step_ms'] / n:.0f} "
                    f"| {graph} | {share} | {builds} | {ratio(ch, v['step_ms'])} |"
                )

    getter_rows = [(label, rec) for label, rec in data.items() if get(rec, "ours", "getters_ms") is not None]
    if getter_rows:
        lines += ["", "## Through ASE's getters (energy, then forces, then stress)", "",
                  "| structure | N | alignn-ase fp32 | upstream fp32 | ratio |", "|---|---:|---:|---:|---:|"]
        for label, rec in getter_rows:
            a, u = get(rec, "ours", "getters_ms"), get(rec, "upstream", "getters_ms")
            lines.append(f"| {label} | {rec['n_atoms']} | {fmt_ms(a)} | {fmt_ms(u)} | {ratio(a, u)} |")

    if results.get("capacity"):
        lines += ["", "## Largest cell: one E+F+S call on Si diamond supercells, growing until one fails", "",
                  f"| program | N | time | peak memory ({what}) |", "|---|---:|---:|---:|"]
        for name, rows in results["capacity"].items():
            for row in rows:
                if "error" in row:
                    lines.append(f"| {WORKER_LABELS.get(name, name)} | {row['n_atoms']} | failed: {row['error'][:120]} "
                                 "| – |")
                else:
                    lines.append(f"| {WORKER_LABELS.get(name, name)} | {row['n_atoms']} "
                                 f"| {fmt_ms(1e3 * row['wall_s'])} | {row['peak_mb'] / 1024:.1f} GiB |")

    problems = [f"- {WORKER_LABELS.get(n, n)} could not start: {why[:300]}"
                for n, why in meta.get("unavailable", {}).items()]
    for label, rec in data.items():
        for name, entry in rec.items():
            if isinstance(entry, dict) and ("error" in entry or "skipped" in entry):
                what_happened = (f"failed: {entry['error'][:200]}" if "error" in entry
                                 else f"not run ({entry['skipped']})")
                problems.append(f"- {label}, {WORKER_LABELS.get(name, name)}: {what_happened}")
    if problems:
        lines += ["", "## Not measured", "", *problems]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side-python", default="/work/upvenv/bin/python",
                   help="interpreter of the virtualenv with upstream alignn, chgnet and sevenn; '' runs alignn-ase "
                        "alone (e.g. on a GPU machine without the peers; then --checkpoint is needed)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="the same-weights checkpoint, written earlier by make_upstream_checkpoint.py (default: "
                        "written now with the side venv)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=1.0, help="seconds of calls per program per round (1-3 calls)")
    p.add_argument("--allocator", choices=["tuned", "stock"], default="tuned",
                   help="tuned: MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised for every program (see NOTES.md)")
    p.add_argument("--omp-wait-policy", choices=["passive", "default"], default="default",
                   help="passive: OMP_WAIT_POLICY=PASSIVE for every program; on a busy shared machine a spinning "
                        "OpenMP thread that loses its core stalls every parallel region, on a quiet one passive "
                        "waiting slows small calls instead (see NOTES.md)")
    p.add_argument("--no-peers", action="store_true", help="skip CHGNet and SevenNet")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--quick", action="store_true", help="small structures, one round: a smoke test of the script")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where every program computes; cuda adds larger Si cells (up to --max-atoms) and reports "
                        "peak GPU memory instead of resident memory")
    p.add_argument("--max-atoms", type=int, default=10648, help="largest Si cell of the scaling table")
    p.add_argument("--give-up-s", type=float, default=30.0,
                   help="a program slower than this per call (s) is not run on the larger cells of the scaling table")
    p.add_argument("--capacity", type=int, nargs="*", default=None, metavar="N",
                   help="after the rest, one E+F+S call of alignn-ase (same weights and default potential) on Si "
                        "cells of 8 N^3 atoms for each N, growing, until one fails: the largest cell that fits "
                        "(default with --device cuda: 20 25 30 35 40 45 50 55 60; without: none)")
    p.add_argument("--capacity-budget-s", type=float, default=120.0,
                   help="stop the capacity series of a program once its calls have taken this long (s)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a time limit's SIGTERM still saves the results
    if args.quick:
        args.rounds = 1
    if args.capacity is None:
        args.capacity = [20, 25, 30, 35, 40, 45, 50, 55, 60] if args.device == "cuda" and not args.quick else []

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.omp_wait_policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if args.allocator == "tuned":
        env.update(TUNED_MALLOC)
    else:
        for k in TUNED_MALLOC:
            env.pop(k, None)

    tmp = Path(tempfile.mkdtemp(prefix="alignn_ase_bench_"))
    side = args.side_python or None
    if args.checkpoint is not None:
        ckpt = args.checkpoint
    elif side is not None:
        ckpt = tmp / "upstream_alignn_ff_2_2_64"
        subprocess.run([side, str(HERE / "make_upstream_checkpoint.py"), str(ckpt)], check=True, env=env)
    else:
        p.error("without a side venv (--side-python ''), give the same-weights model with --checkpoint")
    structs = structures(args.quick, args.max_atoms)
    xyz = tmp / "structures.extxyz"
    write(xyz, [s.atoms for s in structs])
    batch_n = 64

    def worker(name: str, python: str, *extra: str) -> Worker:
        cmd = [python, str(HERE / "worker.py"), "--structures", str(xyz), "--threads", str(args.threads),
               "--device", args.device, *extra]
        return Worker(name, cmd, env, tmp / f"{name}.log")

    ours = sys.executable
    workers = {
        "ours": worker("ours", ours, "--program", "alignn_ase", "--model", str(ckpt)),
        "ours64": worker("ours64", ours, "--program", "alignn_ase", "--model", str(ckpt), "--dtype", "float64"),
        "smooth": worker("smooth", ours, "--program", "alignn_ase", "--model", "default", "--skin", "1.0"),
        "smooth_noskin": worker("smooth_noskin", ours, "--program", "alignn_ase", "--model", "default", "--skin", "0"),
    }
    if side is not None:
        workers["upstream"] = worker("upstream", side, "--program", "upstream", "--model", str(ckpt))
        workers["upstream64"] = worker("upstream64", side, "--program", "upstream", "--model", str(ckpt),
                                       "--dtype", "float64")
    if not args.no_compile:
        workers["ours_compiled"] = worker("ours_compiled", ours, "--program", "alignn_ase", "--model", str(ckpt),
                                          "--compile")
        workers["smooth_compiled"] = worker("smooth_compiled", ours, "--program", "alignn_ase", "--model", "default",
                                            "--skin", "0", "--compile")
        workers["smooth_compiled_skin"] = worker("smooth_compiled_skin", ours, "--program", "alignn_ase", "--model",
                                                 "default", "--skin", "1.0", "--compile")  # MD only
    if not args.no_peers and side is not None:
        workers["chgnet"] = worker("chgnet", side, "--program", "chgnet")
        workers["sevenn"] = worker("sevenn", side, "--program", "sevenn")

    unavailable: dict[str, str] = {}
    start_workers(workers, unavailable)
    versions = "none (alignn-ase alone)" if side is None else subprocess.run(
        [side, "-c", "import importlib.metadata as m;"
         "print(', '.join(f'{p} {m.version(p)}' for p in ('alignn', 'chgnet', 'sevenn', 'torch')))"],
        capture_output=True, text=True, env=env,
    ).stdout.strip()
    import torch

    default = describe_default()
    results: dict = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="minutes"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
                       "(shared with other jobs while measured)"
                       + (f", GPU {torch.cuda.get_device_name(0)} (every program computes on it)"
                          if args.device == "cuda" else ""),
            "device": args.device,
            "threads": args.threads,
            "omp_wait_policy": env.get("OMP_WAIT_POLICY", "default"),
            "load_average_start": os.getloadavg(),
            "allocator": "tuned (" + ", ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items()) + ")"
            if args.allocator == "tuned" else "stock glibc malloc",
            "command": " ".join([Path(sys.executable).as_posix(), "benchmarks/run_benchmark.py", *sys.argv[1:]]),
            "versions": f"alignn-ase venv torch {torch.__version__}; side venv: {versions}",
            "batch_n": batch_n,
            "default_potential": default,
            "unavailable": unavailable,
        },
        "ehs": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_tag = "quick" if args.quick else "benchmark_cuda" if args.device == "cuda" else (
        "benchmark" if args.threads == 2 else f"benchmark_{args.threads}thread")

    def save() -> None:
        """Write the results so far (a run cut short still leaves what it measured)."""
        (args.out / f"{out_tag}.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / f"{out_tag}.md").write_text(report(results))
    data = results["ehs"]
    same = [n for n in ("ours", "ours_compiled", "upstream") if n in workers]
    both = [n for n in ("ours", "upstream") if n in workers]
    peers = [n for n in ("ours64", "upstream64", "smooth_noskin", "smooth_compiled", "chgnet", "sevenn")
             if n in workers]
    items = [(i, s, same + (peers if s.peers else [])) for i, s in enumerate(structs)]
    try:
        t_start = time.perf_counter()
        compiled = [name for name in ("ours_compiled", "smooth_compiled", "smooth_compiled_skin") if name in workers]
        t0 = time.perf_counter()
        sent = []
        for name in compiled:  # the compiled workers compile at the same time, each in its own process
            try:
                workers[name].send(cmd="time", index=0, calls=1, seed=998)
                sent.append(name)
            except WorkerError as exc:
                drop(workers, name, unavailable, exc)
        for name in sent:
            try:
                workers[name].receive()
            except WorkerError as exc:
                drop(workers, name, unavailable, exc)
                continue
            results["meta"].setdefault("compile_s_by_worker", {})[name] = time.perf_counter() - t0
            log(f"{name} ready after {results['meta']['compile_s_by_worker'][name]:.0f} s")
        items = [(i, s, [n for n in names if n in workers]) for i, s, names in items]
        for i, s in enumerate(structs):
            data[s.label] = {"n_atoms": len(s.atoms), "index": i, "main": s.main}
        time_structures(workers, items, args.rounds, args.budget, data, args.give_up_s)
        save()
        checks = {}
        for tag, a, b in (("fp32", "ours", "upstream"), ("fp64", "ours64", "upstream64")):
            rel = [abs(x - y) / abs(y) for rec in data.values() if a in rec and b in rec
                   for x, y in zip(rec[a].get("energy_by_round", []), rec[b].get("energy_by_round", []))]
            if rel:
                checks[tag] = max(rel)
        results["energy_check"] = checks
        measure_memory(workers, items, data)
        save()
        measure_breakdown(workers, [(i, s, both) for i, s in enumerate(structs) if s.main], data, 3)
        measure_getters(workers, [(i, s, both) for i, s in enumerate(structs) if s.main and len(s.atoms) <= 1000],
                        data, 2)
        batch_specs = [("alignn-ase predict (one batch)", "ours", "predict"),
                       ("alignn-ase one by one", "ours", "loop"),
                       ("upstream one by one", "upstream", "loop")]
        if "ours_compiled" in workers:
            batch_specs.insert(1, ("alignn-ase compiled predict (one batch)", "ours_compiled", "predict"))
        batch_specs = [spec for spec in batch_specs if spec[1] in workers]
        results["batch"] = measure_batch(workers, batch_specs, max(3, args.rounds), batch_n)
        save()
        si = sorted((i for i, s in enumerate(structs) if s.main and s.label.startswith("Si")),
                    key=lambda i: len(structs[i].atoms))
        results["meta"]["md_steps"] = steps = 5 if args.quick else 20
        results["md"] = {}
        for idx in dict.fromkeys([si[0], si[min(1, len(si) - 1)], si[-1]]):  # Si 8, 64 and the largest
            md_specs = [("default potential", "smooth", 1.0), ("default potential, no skin", "smooth_noskin", 0.0)]
            if "smooth_compiled" in workers:
                md_specs.append(("default potential, compiled, no skin", "smooth_compiled", 0.0))
            if "smooth_compiled_skin" in workers:
                md_specs.append(("default potential, compiled", "smooth_compiled_skin", 1.0))
            if "chgnet" in workers:
                md_specs.append(("CHGNet", "chgnet", None))
            if idx == si[-1]:
                md_specs.append(("upstream weights in alignn-ase (pure_torch graph)", "ours", 0.0))
            md_specs = [spec for spec in md_specs if spec[1] in workers]
            results["md"][structs[idx].label] = {"n_atoms": len(structs[idx].atoms),
                                                 **measure_md(workers, md_specs, idx, steps)}
            save()
        if args.capacity:
            results["capacity"] = {}
            measure_capacity(workers, [n for n in ("ours", "smooth_noskin") if n in workers], args.capacity,
                             args.capacity_budget_s, results["capacity"], save)
        results["meta"]["total_s"] = time.perf_counter() - t_start
        results["meta"]["load_average_end"] = os.getloadavg()
    finally:
        save()  # also when the run is cut short (an exception, or SIGTERM from a time limit)
        for w in workers.values():
            try:
                w.stop()
            except Exception:  # a dead worker must not hide the results
                pass
    log(f"wrote {args.out / (out_tag + '.json')} and {args.out / (out_tag + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
