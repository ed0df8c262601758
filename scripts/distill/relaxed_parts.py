"""Label parts made from the relaxed training parents, not from the catalogue (resumable).

Both parts take every 3D-periodic relaxed parent of the training split (``<out>/relaxed.extxyz`` written by
:mod:`merge`; held-out parents and teacher holes are not in it) and write ``--frames`` teacher-labelled cells of it:

- ``--part elastic`` (session 16): the catalogue's strain frames (:func:`sampling.strains`) scale all three axes alike
  on top of random shears and add a 0.02 Å rattle, so the deviatoric normal response of a crystal (C11 - C12 in a
  cubic one) and the stress near equilibrium are sampled thinly: the distilled v5 potential put Si's C11 at 73 GPa
  against its teacher's 154 (``benchmarks/results/validation_*``). Each frame is strained by a random symmetric
  strain tensor (each normal component uniform in ±``--normal``, each shear component in ±``--shear``), ions at
  their scaled positions (not relaxed, so the teacher's forces carry the internal-strain response), on the supercell
  :mod:`generate` rattles (``builders.grow``, 8-16 atoms). ``info["kind"] = "elastic"``, ``param`` = the largest
  absolute strain component, ``info["strain"]`` the tensor.
- ``--part phonon`` (session 23): the catalogue's rattles are 8-16-atom cells, so the forces of the small displacements
  that fix phonons and their scattering are sampled in cells shorter than the model's reach, and v5's diamond Si
  conducts heat 11 times worse than its teacher's (``results/kappa_teacher_vs_default_fc2_4.md``); 120 such cells
  of Si alone took a Si-only fine-tune to the teacher's conductivity (``si_kappa_ablation.py``). Each frame is the
  parent's phonon-size supercell (``builders.grow`` to at least ``PHONON_MIN_ATOMS`` atoms and ``PHONON_MIN_HEIGHT``
  Å between faces, at most ``PHONON_MAX_ATOMS``) with Gaussian displacements, std cycling through ``PHONON_STDS``
  Å. ``info["kind"] = "phonon"``, ``param`` = the std.

Frames carry the parent's provenance keys. Output: ``<out>/<part>/NNNN.extxyz`` per chunk of ``--chunk`` parents
(atomic writes; finished chunks are skipped on restart; two workers split the chunks with ``--worker 0/2`` and
``--worker 1/2``), merged with ``--merge`` into ``<out>/<part>.extxyz``. ``<out>/<part>/plan.json`` records the
parent count, ``--chunk`` and ``--frames`` of the first run; a restart or merge that differs is refused. Run in the side venv:

    cd /work/main && for w in 0 1; do nohup nice -n 10 /work/upvenv/bin/python scripts/distill/relaxed_parts.py \
        --part phonon --worker $w/2 > /work/distill/phonon_$w.log 2>&1 & done; wait
    /work/upvenv/bin/python scripts/distill/relaxed_parts.py --part phonon --merge
"""

from __future__ import annotations

import argparse
import json
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

log = logging.getLogger("relaxed_parts")

PROVENANCE = ("parent_id", "group", "prototype", "parent_formula", "seed", "teacher", "teacher_package")
SEED_OFFSETS = {"elastic": 7_000_003, "phonon": 9_000_011}  # a part's random stream per parent: its seed plus this
DEFAULT_FRAMES = {"elastic": 3, "phonon": 2}
PHONON_MIN_ATOMS, PHONON_MIN_HEIGHT, PHONON_MAX_ATOMS = 48, 8.0, 96  # Å for the height
PHONON_STDS = (0.02, 0.05)  # Å per Cartesian component


def with_provenance(frame: Atoms | None, relaxed: Atoms, out: list[Atoms], **info: str) -> None:
    """Append a labelled ``frame`` (None when the teacher's label was rejected) with ``relaxed``'s provenance keys
    and ``info``."""
    if frame is not None:
        frame.info.update({k: relaxed.info[k] for k in PROVENANCE if k in relaxed.info}, **info)
        out.append(frame)


def strained_frames(relaxed: Atoms, calc, rng: np.random.Generator, n: int, normal: float, shear: float,
                    s: Settings, skipped: Counter) -> list[Atoms]:
    """``n`` teacher-labelled copies of ``relaxed``'s supercell under random small strains (fractions)."""
    cell = grow(relaxed, s.supercell_min_atoms, s.supercell_min_height, s.supercell_max_atoms)
    out: list[Atoms] = []
    for _ in range(n):
        off = np.triu(rng.uniform(-shear, shear, (3, 3)), 1)
        strain = np.diag(rng.uniform(-normal, normal, 3)) + off + off.T
        a = cell.copy()
        a.set_cell(cell.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        note = f"strain tensor, normal <= {normal}, shear <= {shear}, ions scaled, no rattle"
        with_provenance(label(a, calc, "elastic", float(np.abs(strain).max()), note, skipped), relaxed, out,
                        strain=" ".join(f"{v:.6f}" for v in strain.reshape(-1)))
    return out


def phonon_frames(relaxed: Atoms, calc, rng: np.random.Generator, n: int, skipped: Counter) -> list[Atoms]:
    """``n`` teacher-labelled copies of ``relaxed``'s phonon-size supercell with Gaussian displacements (Å)."""
    cell = grow(relaxed, PHONON_MIN_ATOMS, PHONON_MIN_HEIGHT, PHONON_MAX_ATOMS)
    out: list[Atoms] = []
    for k in range(n):
        std = PHONON_STDS[k % len(PHONON_STDS)]
        a = cell.copy()
        a.positions += rng.normal(0.0, std, a.positions.shape)
        note = f"gaussian rattle std {std} A of a {len(a)}-atom supercell"
        with_provenance(label(a, calc, "phonon", std, note, skipped), relaxed, out)
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


def check_plan(path: Path, plan: dict[str, int]) -> None:
    """Record how the chunks of a folder are cut on its first run; refuse a later run (or merge) that cuts them otherwise."""
    if not path.exists():
        path.write_text(json.dumps(plan) + "\n")
        return
    stored = json.loads(path.read_text())
    if stored != plan:
        raise SystemExit(f"{path.parent} was labelled with {stored}; this run asks for {plan}: give the same --chunk and "
                         "--frames (and the same relaxed file), or another --out")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=sorted(SEED_OFFSETS), required=True)
    p.add_argument("--out", type=Path, default=Path("/work/distill"), help="chunks go to <out>/<part>/")
    p.add_argument("--teacher", default="sevenn")
    p.add_argument("--frames", type=int, help="frames per parent (default: elastic 3, phonon 2)")
    p.add_argument("--normal", type=float, default=0.02, help="largest normal strain component (fraction)")
    p.add_argument("--shear", type=float, default=0.02, help="largest shear strain component (fraction)")
    p.add_argument("--chunk", type=int, default=100, help="parents per chunk file")
    p.add_argument("--worker", default="0/1", help="i/n: this worker takes chunks i, i+n, ...")
    p.add_argument("--merge", action="store_true", help="join the finished chunks into <out>/<part>.extxyz")
    p.add_argument("--relaxed", type=Path, default=Path("/work/distill/relaxed.extxyz"), help="written by merge.py")
    p.add_argument("--held-out", nargs="+", default=[], metavar="PARENT_ID",
                   help="label these held-out parents instead of the training split (their test frames then no "
                        "longer measure unseen structures); give them their own --out")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    frames_per_parent = args.frames or DEFAULT_FRAMES[args.part]
    chunk_dir = args.out / args.part
    chunk_dir.mkdir(parents=True, exist_ok=True)
    todo = parents(args.relaxed, args.held_out)
    check_plan(chunk_dir / "plan.json", {"parents": len(todo), "chunk": args.chunk, "frames": frames_per_parent})
    n_chunks = -(-len(todo) // args.chunk)
    if args.merge:
        files = [chunk_dir / f"{c:04d}.extxyz" for c in range(n_chunks)]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise SystemExit(f"{len(missing)} of {n_chunks} chunks are not finished: {missing[:5]}")
        frames = [f for path in files for f in read(path, index=":", format="extxyz")]
        merged = args.out / f"{args.part}.extxyz"
        tmp = merged.with_suffix(".extxyz.tmp")
        write(tmp, frames, format="extxyz")
        tmp.replace(merged)
        log.info("%d frames of %d parents -> %s", len(frames), len(todo), merged)
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
            rng = np.random.default_rng(int(relaxed.info["seed"]) + SEED_OFFSETS[args.part])
            if args.part == "elastic":
                frames += strained_frames(relaxed, teacher.calc, rng, frames_per_parent, args.normal, args.shear, s,
                                          skipped)
            else:
                frames += phonon_frames(relaxed, teacher.calc, rng, frames_per_parent, skipped)
        tmp = path.with_suffix(".extxyz.tmp")
        write(tmp, frames, format="extxyz")
        tmp.replace(path)
        log.info("chunk %d/%d: %d frames in %.0f s; rejected %s", c + 1, n_chunks, len(frames),
                 time.perf_counter() - t0, dict(skipped))


if __name__ == "__main__":
    main()
