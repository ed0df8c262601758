"""Label the distillation set with the teacher, chunk by chunk (resumable).

Each chunk of parents (see :mod:`catalogue`) is built (:mod:`builders`), relaxed and
expanded into derived frames (:mod:`sampling`), then written atomically to
``<out>/chunks/NNNN.extxyz`` with a summary ``NNNN.json`` (the "done" marker).
Finished chunks are skipped on restart; the plan is stored in ``<out>/plan.json``
and a restart with a different plan is refused. Several workers may share one
``--out`` (e.g. a second one with ``--reverse``): each claims a chunk
(``NNNN.claim`` holding its pid) before labelling it. Run :mod:`merge` at any time to
build train/test files from the chunks done so far.

Run in the side venv, in the background, on one core:

    cd /work/main && nohup nice -n 10 /work/upvenv/bin/python scripts/distill/generate.py \
        > /work/distill/generate.log 2>&1 &
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.io import read, write
from builders import build_parent, grow
from catalogue import TRAINING_PARTS, plan, plan_digest
from sampling import Settings, is_bulk, md, rattles, relax, strains, volume_scan
from teachers import Teacher, load_teacher
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
SCANNED_GROUPS = ("elemental", "binary", "ternary", "pyxtal")  # start from a guessed scale

log = logging.getLogger("generate")


def process_parent(spec: dict, teacher: Teacher, s: Settings) -> tuple[list[Atoms], dict]:
    """All labelled frames of one parent, and a summary (frame counts, rejects, seconds)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(spec["seed"])
    skipped: Counter = Counter()

    def relax_bulk(atoms: Atoms) -> Atoms:
        start, _ = volume_scan(atoms, teacher.calc, s, Counter())
        return relax(start, teacher.calc, s, Counter())[0]

    atoms = build_parent(spec, rng, relax_bulk)
    frames: list[Atoms] = []
    if spec["group"] in SCANNED_GROUPS:
        atoms, scan = volume_scan(atoms, teacher.calc, s, skipped)
        frames += scan
    relaxed, path = relax(atoms, teacher.calc, s, skipped)
    frames += path + [relaxed]
    bulk = is_bulk(relaxed)
    cell = grow(relaxed, s.supercell_min_atoms, s.supercell_min_height, s.supercell_max_atoms) if bulk else relaxed
    frames += rattles(cell, teacher.calc, rng, s, skipped)
    if bulk:
        frames += strains(cell, teacher.calc, rng, s, skipped)
    molecule = spec["group"] == "molecule"
    if rng.random() < (s.md_fraction_molecule if molecule else s.md_fraction):
        temperature = float(rng.choice(s.md_temperatures_molecule if molecule else s.md_temperatures))
        frames += md(cell, teacher.calc, rng, temperature, s, skipped)
    for f in frames:
        f.info.update(
            parent_id=spec["id"], group=spec["group"], prototype=spec["prototype"],
            parent_formula=relaxed.get_chemical_formula(), seed=spec["seed"],
            teacher=teacher.model, teacher_package=f"{teacher.name} {teacher.package_version}",
        )
    kinds = Counter(f.info["kind"] for f in frames)
    summary = {"id": spec["id"], "frames": len(frames), "kinds": dict(kinds), "skipped": dict(skipped),
               "atoms": int(sum(len(f) for f in frames)), "seconds": round(time.perf_counter() - t0, 2),
               "converged": bool(relaxed.info["converged"]), "relax_steps": relaxed.info["relax_steps"]}
    return frames, summary


def label_parents(specs: list[dict], teacher: Teacher, s: Settings, bar: tqdm) -> tuple[list[Atoms], list, list]:
    """Frames, per-parent summaries and failures (id, error, seconds) for ``specs``."""
    frames: list[Atoms] = []
    parents, failed = [], []
    for spec in specs:
        t0 = time.perf_counter()
        try:
            f, summary = process_parent(spec, teacher, s)
        except Exception as exc:  # one bad parent (pyxtal failure, relaxation blow-up) must not stop the run
            log.warning("parent %s failed: %s: %s", spec["id"], type(exc).__name__, exc)
            failed.append({"id": spec["id"], "error": f"{type(exc).__name__}: {exc}",
                           "seconds": round(time.perf_counter() - t0, 2)})
        else:
            frames += f
            parents.append(summary)
        bar.update(1)
        bar.set_postfix_str(spec["id"])
    return frames, parents, failed


def write_chunk(index: int, frames: list[Atoms], parents: list, failed: list, chunk_dir: Path) -> dict:
    """Write ``NNNN.extxyz`` then its summary ``NNNN.json`` (the done marker), each atomically."""
    xyz, meta = chunk_dir / f"{index:04d}.extxyz", chunk_dir / f"{index:04d}.json"
    tmp = xyz.with_suffix(".extxyz.tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(xyz)
    chunk = {"chunk": index, "parents": parents, "failed": failed, "frames": len(frames),
             "seconds": round(sum(p["seconds"] for p in parents + failed), 1)}
    tmp = meta.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(chunk, indent=1) + "\n")
    tmp.replace(meta)
    return chunk


def run_chunk(index: int, specs: list[dict], teacher: Teacher, s: Settings, chunk_dir: Path, bar: tqdm) -> dict:
    """Label one chunk of parents and write it; returns the chunk summary."""
    return write_chunk(index, *label_parents(specs, teacher, s, bar), chunk_dir)


def retry_chunk(index: int, by_id: dict[str, dict], teacher: Teacher, s: Settings, chunk_dir: Path,
                bar: tqdm) -> dict:
    """Label the failed parents of a finished chunk again and rewrite the chunk with what now succeeds."""
    old = json.loads((chunk_dir / f"{index:04d}.json").read_text())
    frames = read(chunk_dir / f"{index:04d}.extxyz", index=":", format="extxyz") if old["parents"] else []
    new_frames, parents, failed = label_parents([by_id[f["id"]] for f in old["failed"]], teacher, s, bar)
    return write_chunk(index, frames + new_frames, old["parents"] + parents, failed, chunk_dir)


def claim(chunk_dir: Path, index: int, finished_ok: bool = False) -> bool:
    """Atomically claim chunk ``index`` for this process.

    False when the chunk is finished (unless ``finished_ok``) or claimed by another live
    process (several workers may share one output folder); a claim left by a dead
    process is taken over.
    """
    if not finished_ok and (chunk_dir / f"{index:04d}.json").exists():
        return False
    lock = chunk_dir / f"{index:04d}.claim"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        owner = lock.read_text().strip()
        if owner == str(os.getpid()) and index not in _CLAIMED:
            stale = True  # left by an earlier process that had our pid (e.g. before a restart)
        elif not owner.isdigit():
            log.info("chunk %04d: claim %s holds no process id (being written, or left by a crash); skipped; "
                     "delete it if no other worker runs", index, lock)
            return False
        else:
            try:
                os.kill(int(owner), 0)
                stale = False
            except ProcessLookupError:
                stale = True
            except PermissionError:  # a live process of another user
                stale = False
        if not stale:
            log.info("chunk %04d: claimed by live process %s; skipped", index, owner)
            return False
        log.warning("chunk %04d: taking over the stale claim of process %s", index, owner)
        lock.unlink(missing_ok=True)
        return claim(chunk_dir, index, finished_ok)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    _CLAIMED.add(index)
    return True


#: Chunks this process claimed (a claim file with our pid but not in here is stale).
_CLAIMED: set[int] = set()


def retry(chunk_dir: Path, by_id: dict[str, dict], teacher: Teacher, s: Settings) -> None:
    """Run :func:`retry_chunk` on every finished chunk that has failed parents."""
    metas = sorted(chunk_dir.glob("[0-9][0-9][0-9][0-9].json"))
    failed = {int(m.stem): len(json.loads(m.read_text())["failed"]) for m in metas}
    failed = {k: n for k, n in failed.items() if n}
    log.info("retrying %d failed parents in %d chunks", sum(failed.values()), len(failed))
    with tqdm(total=sum(failed.values()), desc="retry", mininterval=30) as bar:
        for k in failed:
            if claim(chunk_dir, k, finished_ok=True):
                chunk = retry_chunk(k, by_id, teacher, s, chunk_dir, bar)
                (chunk_dir / f"{k:04d}.claim").unlink(missing_ok=True)
                log.info("chunk %04d: %d frames, %d still failed", k, chunk["frames"], len(chunk["failed"]))


def main() -> None:
    """Parse arguments, store/check the plan, label every unfinished chunk."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/work/distill"), help="output folder (large data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part", choices=("base", *TRAINING_PARTS), default="base",
                   help="catalogue part: base (with the held-out parents), or a training-only part "
                        "(each in its own --out)")
    p.add_argument("--chunk-size", type=int, default=8, help="parents per chunk file")
    p.add_argument("--teacher", default=None,
                   help="chgnet or sevenn; default: 'chosen' in results/teacher_choice.json")
    p.add_argument("--max-chunks", type=int, default=None, help="stop after this many new chunks (trial runs)")
    p.add_argument("--retry-failed", action="store_true",
                   help="only label again the failed parents of finished chunks (after a code fix)")
    p.add_argument("--reverse", action="store_true",
                   help="walk the chunks from the last one (a second worker on the same --out)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)

    teacher_name = args.teacher or json.loads((HERE / "results" / "teacher_choice.json").read_text())["chosen"]
    s = Settings()
    specs = plan(args.seed, args.part)
    chunk_dir = args.out / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    header = {"digest": plan_digest(specs), "seed": args.seed, "part": args.part, "chunk_size": args.chunk_size,
              "teacher": teacher_name, "settings": dataclasses.asdict(s), "parents": specs}
    plan_file = args.out / "plan.json"
    if plan_file.exists():
        old = json.loads(plan_file.read_text())
        same = {k: old.get(k) for k in ("digest", "chunk_size", "teacher", "settings")}
        new = {k: json.loads(json.dumps(header[k])) for k in same}
        if same != new:
            raise SystemExit(f"{plan_file} was made with a different plan/teacher/settings; "
                             "use a new --out folder or delete the old one")
    else:
        plan_file.write_text(json.dumps(header, indent=1) + "\n")

    chunks = [specs[i : i + args.chunk_size] for i in range(0, len(specs), args.chunk_size)]
    teacher = load_teacher(teacher_name)
    if args.retry_failed:
        retry(chunk_dir, {spec["id"]: spec for spec in specs}, teacher, s)
        return
    todo = [k for k in range(len(chunks)) if not (chunk_dir / f"{k:04d}.json").exists()]
    log.info("%d parents in %d chunks; %d done, %d to do; teacher %s", len(specs), len(chunks),
             len(chunks) - len(todo), len(todo), teacher_name)
    if args.reverse:
        todo.reverse()
    t0 = time.perf_counter()
    frames = done = 0
    with tqdm(total=sum(len(chunks[k]) for k in todo), desc="parents", mininterval=30) as bar:
        for k in todo:
            if args.max_chunks is not None and done >= args.max_chunks:
                break
            if not claim(chunk_dir, k):
                bar.update(len(chunks[k]))
                continue
            chunk = run_chunk(k, chunks[k], teacher, s, chunk_dir, bar)
            (chunk_dir / f"{k:04d}.claim").unlink(missing_ok=True)
            done += 1
            frames += chunk["frames"]
            elapsed = time.perf_counter() - t0
            finished = sum(1 for _ in chunk_dir.glob("[0-9][0-9][0-9][0-9].json"))
            log.info("chunk %04d: %d frames, %d failed, %.0f s | this run: %d chunks, %d frames, %.1f min | "
                     "all workers: %d/%d chunks done", k, chunk["frames"], len(chunk["failed"]), chunk["seconds"],
                     done, frames, elapsed / 60, finished, len(chunks))
    log.info("done: %d chunks this run, %d frames", done, frames)
    left = [k for k in range(len(chunks)) if not (chunk_dir / f"{k:04d}.json").exists()]
    if left:
        log.warning("%d chunk(s) not finished (claimed by other workers, or --max-chunks): %s%s; run again once "
                    "other workers have ended", len(left), left[:10], " ..." if len(left) > 10 else "")


if __name__ == "__main__":
    main()
