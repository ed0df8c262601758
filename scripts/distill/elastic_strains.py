"""Label small anisotropic strains of every relaxed training parent (the "elastic" part; resumable).

The catalogue's strain frames (:func:`sampling.strains`) scale all three axes alike on top of
random shears and add a 0.02 Å rattle, so the deviatoric normal response of a crystal (C11 - C12
in a cubic one) and the stress near equilibrium are sampled thinly: the distilled v5 potential put
Si's C11 at 73 GPa against its teacher's 154 (``benchmarks/results/validation_*``). This part
adds, for every 3D-periodic relaxed parent of the training split (``<out>/relaxed.extxyz`` written
by :mod:`merge`; held-out parents and teacher holes are not in it), ``--frames`` cells strained by
a random symmetric strain tensor: each normal component uniform in ±``--normal``, each shear
component uniform in ±``--shear``, ions at their scaled positions (not relaxed, so the teacher's
forces carry the internal-strain response), on the same supercell :mod:`generate` rattles
(``builders.grow``). Frames get ``info["kind"] = "elastic"``, ``param`` = the largest absolute
strain component, and the parent's provenance keys.

Output: ``<out>/elastic/NNNN.extxyz`` per chunk of ``--chunk`` parents (atomic writes; finished chunks
are skipped on restart; two workers split the chunks with ``--worker 0/2`` and ``--worker 1/2``),
merged with ``--merge`` into ``<out>/elastic.extxyz``. Run in the side venv:

    cd /work/main && for w in 0 1; do nohup nice -n 10 /work/upvenv/bin/python scripts/distill/elastic_strains.py \
        --worker $w/2 > /work/distill/elastic_$w.log 2>&1 & done; wait
    /work/upvenv/bin/python scripts/distill/elastic_strains.py --merge
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.io import read, write
from builders import grow
from sampling import Settings, is_bulk, label
from teachers import load_teacher

log = logging.getLogger("elastic_strains")

PROVENANCE = ("parent_id", "group", "prototype", "parent_formula", "seed", "teacher", "teacher_package")
SEED_OFFSET = 7_000_003  # the part's random stream per parent: its catalogue seed plus this


def strained_frames(relaxed: Atoms, calc, rng: np.random.Generator, n: int, normal: float, shear: float,
                    s: Settings, skipped: Counter) -> list[Atoms]:
    """``n`` teacher-labelled copies of ``relaxed``'s supercell under random small strains (fractions)."""
    cell = grow(relaxed, s.supercell_min_atoms, s.supercell_min_height, s.supercell_max_atoms)
    out = []
    for _ in range(n):
        off = np.triu(rng.uniform(-shear, shear, (3, 3)), 1)
        strain = np.diag(rng.uniform(-normal, normal, 3)) + off + off.T
        a = cell.copy()
        a.set_cell(cell.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        largest = float(np.abs(strain).max())
        note = f"strain tensor, normal <= {normal}, shear <= {shear}, ions scaled, no rattle"
        frame = label(a, calc, "elastic", largest, note, skipped)
        if frame is not None:
            frame.info.update({k: relaxed.info[k] for k in PROVENANCE if k in relaxed.info})
            frame.info["strain"] = " ".join(f"{v:.6f}" for v in strain.reshape(-1))
            out.append(frame)
    return out


def parents(relaxed_file: Path, held_out: list[str]) -> list[Atoms]:
    """The relaxed 3D-periodic parents of the training split, or else the ``held_out`` parents named, in file order."""
    relaxed = [a for a in read(relaxed_file, index=":", format="extxyz") if is_bulk(a)]
    if not held_out:
        return [a for a in relaxed if a.info.get("split") == "train"]
    chosen = [a for a in relaxed if a.info.get("split") == "test" and a.info["parent_id"] in held_out]
    missing = set(held_out) - {a.info["parent_id"] for a in chosen}
    if missing:
        raise SystemExit(f"not held-out bulk parents of {relaxed_file}: {sorted(missing)}")
    return chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/work/distill"), help="chunks go to <out>/elastic/")
    p.add_argument("--teacher", default="sevenn")
    p.add_argument("--frames", type=int, default=3, help="strained frames per parent")
    p.add_argument("--normal", type=float, default=0.02, help="largest normal strain component (fraction)")
    p.add_argument("--shear", type=float, default=0.02, help="largest shear strain component (fraction)")
    p.add_argument("--chunk", type=int, default=100, help="parents per chunk file")
    p.add_argument("--worker", default="0/1", help="i/n: this worker takes chunks i, i+n, ...")
    p.add_argument("--merge", action="store_true", help="join the finished chunks into <out>/elastic.extxyz")
    p.add_argument("--relaxed", type=Path, default=Path("/work/distill/relaxed.extxyz"), help="written by merge.py")
    p.add_argument("--held-out", nargs="+", default=[], metavar="PARENT_ID",
                   help="strain these held-out parents instead of the training split (their test frames then no "
                        "longer measure unseen structures); give them their own --out")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chunk_dir = args.out / "elastic"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    todo = parents(args.relaxed, args.held_out)
    n_chunks = -(-len(todo) // args.chunk)
    if args.merge:
        files = [chunk_dir / f"{c:04d}.extxyz" for c in range(n_chunks)]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise SystemExit(f"{len(missing)} of {n_chunks} chunks are not finished: {missing[:5]}")
        frames = [f for path in files for f in read(path, index=":", format="extxyz")]
        tmp = args.out / "elastic.extxyz.tmp"
        write(tmp, frames, format="extxyz")
        tmp.replace(args.out / "elastic.extxyz")
        log.info("%d frames of %d parents -> %s", len(frames), len(todo), args.out / "elastic.extxyz")
        return
    torch.set_num_threads(1)
    teacher = load_teacher(args.teacher)
    worker, workers = (int(v) for v in args.worker.split("/"))
    s = Settings()
    for c in range(worker, n_chunks, workers):
        path = chunk_dir / f"{c:04d}.extxyz"
        if path.exists():
            continue
        t0, skipped, frames = time.perf_counter(), Counter(), []
        for relaxed in todo[c * args.chunk:(c + 1) * args.chunk]:
            rng = np.random.default_rng(int(relaxed.info["seed"]) + SEED_OFFSET)
            frames += strained_frames(relaxed, teacher.calc, rng, args.frames, args.normal, args.shear, s, skipped)
        tmp = path.with_suffix(".extxyz.tmp")
        write(tmp, frames, format="extxyz")
        tmp.replace(path)
        log.info("chunk %d/%d: %d frames in %.0f s; rejected %s", c + 1, n_chunks, len(frames),
                 time.perf_counter() - t0, dict(skipped))


if __name__ == "__main__":
    main()
