"""Where one calculator call spends its time: torch.profiler over repeated E+F+S calls.

Usage (from the repository root)::

    python benchmarks/profile_call.py --device cuda --out OUT [--model default] [--repeat 1] [--compile]

For each cell (Si diamond of 8 and 1000 atoms unless ``--repeat`` says otherwise) it times
``calculate(atoms, ["energy", "forces", "stress"])`` after warm-up, then profiles ``--calls``
calls and reports, per call: wall time, torch operators dispatched, CUDA kernels launched,
host-device copies and synchronisations, and the operators that take the most host (CPU)
time. On a GPU a small cell's call is bound by the host issuing work, so these counts, not
the kernels' own time, say what to cut. Writes ``profile_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from torch.profiler import ProfilerActivity, profile

from alignn_ase import ALIGNNCalculator

PROPS = ["energy", "forces", "stress"]
RUNTIME_CALLS = {
    "kernel launches": ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx"),
    "copies": ("cudaMemcpyAsync", "cudaMemcpy"),
    "synchronisations": ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"),
}


def profile_cell(calc: ALIGNNCalculator, n_repeat: int, calls: int, device: str) -> dict:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(n_repeat)
    rng = np.random.default_rng(0)

    def jittered():
        a = atoms.copy()
        a.positions += rng.normal(0, 0.01, a.positions.shape)
        return a

    for _ in range(5):
        calc.calculate(jittered(), PROPS)
    wall = []
    for _ in range(20):
        a = jittered()
        t0 = time.perf_counter()
        calc.calculate(a, PROPS)
        wall.append(time.perf_counter() - t0)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(calls):
            calc.calculate(jittered(), PROPS)
    events = prof.events()
    names = Counter(e.name for e in events)
    aten = sum(c for n, c in names.items() if n.startswith("aten::"))
    runtime = {label: sum(names[n] for n in calls_) / calls for label, calls_ in RUNTIME_CALLS.items()}
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return {
        "n_atoms": len(atoms),
        "call_ms_median": 1e3 * float(np.median(wall)),
        "aten_ops_per_call": aten / calls,
        **{f"{k}_per_call": v for k, v in runtime.items()},
        "top_host_time": [
            {"name": e.key, "calls_per_call": e.count / calls, "self_cpu_us_per_call": e.self_cpu_time_total / calls}
            for e in top
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--repeat", type=int, nargs="+", default=[1, 5], help="Si cells of 8 n^3 atoms")
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    calc = ALIGNNCalculator(args.model, device=args.device, dtype=args.dtype, skin=0.0, compile=args.compile)
    cells = [profile_cell(calc, n, args.calls, args.device) for n in args.repeat]
    result = {"model": args.model, "device": args.device, "dtype": args.dtype, "compile_mode": calc.compile_mode,
              "torch": torch.__version__, "cells": cells}
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"profile_{args.device}{'_compiled' if args.compile else ''}"
    (args.out / f"{tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# One E+F+S call, profiled: {args.model}, {args.device}, {args.dtype}, compile mode "
             f"{calc.compile_mode}, torch {torch.__version__}", ""]
    for c in cells:
        lines += [f"## Si diamond {c['n_atoms']}: {c['call_ms_median']:.2f} ms per call (median of 20)", "",
                  f"Per call: {c['aten_ops_per_call']:.0f} torch operators, "
                  + ", ".join(f"{c[k + '_per_call']:.0f} {k}" for k in RUNTIME_CALLS) + ".", "",
                  "| operator | calls per call | host time per call (µs, self) |", "|---|---:|---:|"]
        lines += [f"| {t['name']} | {t['calls_per_call']:.1f} | {t['self_cpu_us_per_call']:.0f} |"
                  for t in c["top_host_time"]]
        lines.append("")
    (args.out / f"{tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
