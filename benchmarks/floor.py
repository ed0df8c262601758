"""How close the same-weights target can get on this machine: the work no implementation avoids, against 1/5 of
upstream ALIGNN's call, measured in one run.

Usage (from the repository root)::

    /work/venv/bin/python benchmarks/floor.py --side-python /work/upvenv/bin/python

Issue 5 asks for alignn-ase's E+F+S call at <= 1/5 of upstream's calculator time with identical configuration
and weights. Identical weights fix the matrix products a call must do (forward and the gradient with respect to
the inputs; no weight gradients), and every call must build its graph. This script times, for Si diamond cells
of 8 to 1000 atoms and the benchmark's same-weights model (upstream ALIGNN-FF 2/2/64, written by upstream's own
code), programs interleaved round by round as in ``run_benchmark.py``:

- upstream ALIGNN's and alignn-ase's whole calls (eager and compiled);
- alignn-ase's graph building alone;
- the call's matrix products alone: every ``mm``/``addmm``/``bmm`` of one evaluation, recorded and replayed
  back to back on fresh tensors of the same shapes and strides (``worker.py``, command ``floor``; MKL, the
  same threads).

The floor is graph building plus matrix products: a call at that time would spend nothing on the other
operators (gathers, scatters, gates, norms, activations, forward and backward; the table gives their count
and the bytes they write unfused). Where the floor alone exceeds 1/5 of upstream's time, the target cannot
be met on this CPU without changing the arithmetic that identical weights fix. Writes ``floor.json`` and
``floor.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ase.io import write

from run_benchmark import HERE, TUNED_MALLOC, Worker, _si, log, med, settle_for

SIZES = (1, 2, 3, 4, 5)  # Si diamond conventional cell repeated n times: 8 n^3 atoms


def report(results: dict) -> str:
    meta = results["meta"]
    lines = [
        "# The same-weights target against what no implementation avoids",
        "",
        f"Run {meta['date']}, {meta['threads']} threads per process, load average {meta['load_start']} at start, "
        f"{meta['load_end']} at end. Command: `{meta['command']}`.",
        "",
        "Medians. Budget = 1/5 of upstream's E+F+S call (the issue's target). Floor = graph building + the call's "
        "matrix products alone (replayed on MKL with the same threads). Other operators: everything else one "
        "eager E+F+S evaluation dispatches, and the bytes their outputs take unfused.",
        "",
        "| N | upstream | budget (1/5) | alignn-ase | compiled | graph | matrix products (GFLOP) | floor "
        "| floor / budget | left for the other operators | other operators (MB written) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rec in results["sizes"]:
        budget = rec["upstream_ms"] / 5
        floor = rec["graph_ms"] + rec["gemm_ms"]
        compiled = f"{rec['compiled_ms']:.2f} ms" if rec.get("compiled_ms") is not None else "–"
        lines.append(
            f"| {rec['n_atoms']} | {rec['upstream_ms']:.2f} ms | {budget:.2f} ms | {rec['ours_ms']:.2f} ms | {compiled} "
            f"| {rec['graph_ms']:.2f} ms | {rec['gemm_ms']:.2f} ms ({rec['gemm_flops'] / 1e9:.3f}) | {floor:.2f} ms "
            f"| {floor / budget:.2f} | {budget - floor:.2f} ms | {rec['other_ops']} ({rec['other_bytes'] / 1e6:.0f}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side-python", default="/work/upvenv/bin/python",
                   help="interpreter of the virtualenv with upstream alignn")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="the same-weights checkpoint (default: written now by make_upstream_checkpoint.py)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5, help="timed calls per program per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip alignn-ase's compiled calls")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), **TUNED_MALLOC)
    tmp = Path(tempfile.mkdtemp(prefix="alignn_ase_floor_"))
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = tmp / "upstream_alignn_ff_2_2_64"
        subprocess.run([args.side_python, str(HERE / "make_upstream_checkpoint.py"), str(ckpt)], check=True, env=env)
    xyz = tmp / "structures.extxyz"
    write(xyz, [_si(n) for n in SIZES])

    def worker(name: str, python: str, *extra: str) -> Worker:
        cmd = [python, str(HERE / "worker.py"), "--structures", str(xyz), "--threads", str(args.threads),
               "--model", str(ckpt), *extra]
        return Worker(name, cmd, env, tmp / f"{name}.log")

    workers = {"ours": worker("ours", sys.executable, "--program", "alignn_ase", "--skin", "0"),
               "upstream": worker("upstream", args.side_python, "--program", "upstream")}
    if not args.no_compile:
        workers["compiled"] = worker("compiled", sys.executable, "--program", "alignn_ase", "--skin", "0",
                                     "--compile")
    results = {"meta": {"date": datetime.datetime.now().isoformat(timespec="minutes"), "threads": args.threads,
                        "load_start": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
                        "command": " ".join([Path(sys.executable).as_posix(), "benchmarks/floor.py", *sys.argv[1:]])},
               "sizes": []}
    try:
        for w in workers.values():
            w.launch()
        for w in workers.values():
            w.wait_ready()
        for idx, n in enumerate(SIZES):
            samples: dict[str, list[float]] = {name: [] for name in workers}
            floor: dict[str, list] = {"graph": [], "gemm": []}
            for name, w in workers.items():  # warm-up (the compiled worker compiles here)
                w.ask(cmd="time", index=idx, calls=2, seed=999)
            for r in range(args.rounds):
                names = list(workers)
                for name in names[r % len(names):] + names[: r % len(names)]:
                    est = med(samples[name]) if samples[name] else 0.0
                    out = workers[name].ask(cmd="time", index=idx, calls=args.calls, seed=r, settle_s=settle_for(est))
                    samples[name].extend(out["wall"])
                got = workers["ours"].ask(cmd="floor", index=idx, calls=args.calls)
                floor["graph"].extend(got["graph"])
                floor["gemm"].extend(got["gemm"])
            rec = {"n_atoms": 8 * n**3, "samples": samples, "floor_samples": floor,
                   **{k: got[k] for k in ("gemm_flops", "gemm_calls", "other_ops", "other_bytes")},
                   "upstream_ms": 1e3 * med(samples["upstream"]), "ours_ms": 1e3 * med(samples["ours"]),
                   "compiled_ms": 1e3 * med(samples["compiled"]) if "compiled" in samples else None,
                   "graph_ms": 1e3 * med(floor["graph"]), "gemm_ms": 1e3 * med(floor["gemm"])}
            results["sizes"].append(rec)
            log(f"Si {rec['n_atoms']}: upstream {rec['upstream_ms']:.2f} ms, ours {rec['ours_ms']:.2f} ms, "
                f"graph {rec['graph_ms']:.2f} ms, matrix products {rec['gemm_ms']:.2f} ms")
        results["meta"]["load_end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    finally:
        for w in workers.values():
            w.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "floor.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "floor.md").write_text(report(results))
    log(f"wrote {args.out / 'floor.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
