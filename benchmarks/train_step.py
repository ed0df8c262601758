"""Force-field training step time with glibc's default allocator and with :func:`alignn_ase.tune_malloc`.

Usage (from the repository root, project venv)::

    /work/venv/bin/python benchmarks/train_step.py [--rounds 5] [--steps 16] [--threads 1]

Each round runs two fresh worker processes, one per allocator setting, in
alternating order, with every ``MALLOC_*``/``GLIBC_TUNABLES`` variable removed
from their environment. A worker trains the default potential's architecture
(smooth, 2 ALIGNN + 1 GCN layers, width 48, initialised from ``--seed``) on the
committed held-out set ``scripts/distill/data/test.extxyz`` (300 frames) in
batches of 16 (energy, forces and stress in the loss, as in
``scripts/distill/train_default.yaml``), and reports the wall and CPU time of
each step after ``--warmup`` steps, and its peak resident memory. Writes
``results/train_step_<threads>thread.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "scripts" / "distill" / "data" / "test.extxyz"
SETTINGS = ("stock", "tuned")
BATCH = 16


def worker(setting: str, steps: int, warmup: int, seed: int, cache: Path) -> dict:
    from alignn_ase import tune_malloc

    if setting == "tuned" and not tune_malloc():
        raise SystemExit("tune_malloc() did nothing here (not glibc?)")
    import torch

    from alignn_ase.training.config import config_from_dict
    from alignn_ase.training.data import read_extxyz
    from alignn_ase.training.graphs import GraphDataset, collate, epoch_batches, to_device
    from alignn_ase.training.tasks import make_task
    from alignn_ase.training.trainer import _init_output, _make_model

    torch.manual_seed(seed)
    cfg = config_from_dict({
        "output_dir": str(cache / "unused"),
        "task": {"kind": "forcefield", "loss": "l1", "energy_weight": 20.0, "force_weight": 1.0,
                 "stress_weight": 0.5},
        "data": {"path": str(DATA)},
        "model": {"architecture": "alignn_ase_smooth",
                  "params": {"alignn_layers": 2, "gcn_layers": 1, "hidden_features": 48, "embedding_features": 48}},
    })
    records = list(read_extxyz(DATA, None))
    model = _make_model(cfg, sorted({s for r in records for s in r.atoms.get_chemical_symbols()}))
    data = GraphDataset(records, model.graph_settings, cache / "graphs", "forcefield", None, None,
                        model.min_distance, True, False)
    _init_output(model, data, "forcefield")
    task = make_task(cfg.task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [b for epoch in range(100) for b in epoch_batches(len(data), BATCH, seed, epoch, True)]
    wall, cpu = [], []
    for i, idx in enumerate(batches[: warmup + steps]):
        t, c = time.perf_counter(), time.process_time()
        batch = to_device(collate([data[j] for j in idx]), torch.device("cpu"), torch.float32)
        loss = task.loss(task.predict(model, batch[0], training=True), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=16, help="timed steps per worker")
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.seed, args.cache)))
        return 0

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env["OMP_NUM_THREADS"] = str(args.threads)
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for setting in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
                cmd = [sys.executable, __file__, "--worker", setting, "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--threads", str(args.threads), "--seed", str(args.seed),
                       "--cache", tmp]
                out = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
                runs[setting].append(json.loads(out.strip().splitlines()[-1]))
                print(f"round {r + 1} {setting}: median step {statistics.median(runs[setting][-1]['wall_s']) * 1e3:.0f} ms",
                      file=sys.stderr)

    summary = {
        s: {"median_wall_ms": 1e3 * statistics.median(x for run in runs[s] for x in run["wall_s"]),
            "median_cpu_ms": 1e3 * statistics.median(x for run in runs[s] for x in run["cpu_s"]),
            "peak_rss_MiB": max(run["peak_rss_MiB"] for run in runs[s])}
        for s in SETTINGS
    }
    load = os.getloadavg()[0]
    result = {"date": time.strftime("%Y-%m-%dT%H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_1min_at_end": load, "threads": args.threads, "rounds": args.rounds,
              "steps_per_worker": args.steps, "batch_size": BATCH, "data": str(DATA.relative_to(ROOT)),
              "summary": summary, "runs": runs}
    stem = HERE / "results" / f"train_step_{args.threads}thread"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    st, tu = summary["stock"], summary["tuned"]
    table = "\n".join([
        f"# Training step, default architecture, batch {BATCH} (`benchmarks/train_step.py --threads {args.threads}`)",
        "",
        f"Run {result['date']} on {result['machine']}, {args.threads} thread(s), {args.rounds} rounds x "
        f"{args.steps} steps per setting, load average {load:.1f} at the end.",
        "",
        "| allocator | median step (wall) | median step (CPU) | peak RSS |",
        "|---|---:|---:|---:|",
        *(f"| {s} | {v['median_wall_ms']:.0f} ms | {v['median_cpu_ms']:.0f} ms | {v['peak_rss_MiB']:.0f} MiB |"
          for s, v in summary.items()),
        "",
        f"tuned / stock: wall {tu['median_wall_ms'] / st['median_wall_ms']:.2f}, "
        f"CPU {tu['median_cpu_ms'] / st['median_cpu_ms']:.2f}, peak RSS {tu['peak_rss_MiB'] / st['peak_rss_MiB']:.2f}",
        "",
    ])
    stem.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
