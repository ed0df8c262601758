"""Merge the finished chunks into train / test / relaxed files (runnable at any time).

Reads ``<out>/plan.json`` and every finished chunk (``<out>/chunks/NNNN.json`` +
``NNNN.extxyz``), and those of each ``--extra-out`` folder (a labelling run of a
training-only part, ``catalogue.TRAINING_PARTS``), and writes, each atomically:

- ``--train-file`` (default ``<out>/train.extxyz``): all frames of parents not held out
  (base and the training-only parts), except parents that fall into a teacher hole
  (:func:`teacher_holes`, listed in the log and ``summary.json``);
- ``scripts/distill/data/test.extxyz`` (committed): frames of held-out parents (the
  plan holds out ~8 % of parents per group), capped at ``--max-test-frames`` by a
  seeded draw; the rest of the held-out frames are dropped, never trained on;
- ``<out>/relaxed.extxyz``: every relaxed parent (teacher holes left out) with its teacher energy (eV) and
  ``info["split"]`` (train/test), for formation-energy labels;
- ``scripts/distill/data/elements.json``: covered elements with parent/frame counts;
- ``<out>/summary.json``: counts per group and kind, rejected frames, failed parents,
  labelling time.

    /work/upvenv/bin/python scripts/distill/merge.py --extra-out /work/distill_extra \
        --extra-out /work/distill_layered --extra-out /work/distill_broad \
        --extra-out /work/distill_molecules --train-file /work/distill/train_all_broad.extxyz
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from catalogue import TRAINING_PARTS
from references import elemental_references, formation_energy

HERE = Path(__file__).resolve().parent

log = logging.getLogger("merge")


def write_atomic(path: Path, frames: list[Atoms]) -> None:
    """Write extxyz to a temporary name and rename, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)


def load_chunks(out: Path) -> tuple[list[Atoms], list[dict]]:
    """Frames and summaries of every finished chunk (a chunk is finished when its .json exists)."""
    frames: list[Atoms] = []
    summaries: list[dict] = []
    for meta in sorted((out / "chunks").glob("[0-9][0-9][0-9][0-9].json")):
        summaries.append(json.loads(meta.read_text()))
        frames += read(meta.with_suffix(".extxyz"), index=":", format="extxyz")
    return frames, summaries


# Teacher holes: universal potentials have unphysical deep minima (e.g. a random Sn cell that the
# teacher relaxes to -21 eV/atom, a collapsed Be cell with atoms 1.45 Å apart at -5.1 eV/atom vs
# -3.7 for hcp Be). Parents that reach one are left out of training, with every frame.
HOLE_BELOW_LATTICE = 0.5  # eV/atom below the element's best relaxed elemental solid
HOLE_FORMATION = -4.5  # eV/atom: below any real compound (CaF2 is about -4.2)
HOLE_BELOW_RELAXED = 2.0  # eV/atom below its own relaxed frame (MD out of sc C into sp2/sp3 C drops ~1)
HOLE_FORMATION_METALLIC = -2.0  # eV/atom, for compounds of metals alone (the most stable intermetallics: about -1)
#: elements that make a compound ionic or covalent (anions and metalloids): with none of them it is metals alone
NONMETALS = frozenset("H B C N O F Si P S Cl Ge As Se Br Sb Te I".split())


def teacher_holes(frames: list[Atoms]) -> dict[str, str]:
    """Parent ids whose frames reach an unphysical deep minimum of the teacher, with the reason.

    A single-element bulk parent relaxed more than ``HOLE_BELOW_LATTICE`` below the element's best
    relaxed elemental solid (fcc/bcc/hcp/diamond/sc/dcdft); a compound whose formation energy per
    atom, against the elemental references of the other parents (:func:`references.elemental_references`),
    is below ``HOLE_FORMATION``, or below ``HOLE_FORMATION_METALLIC`` for metals alone (a random CrSn3 cell at
    -4.35 eV/atom, found in session 15 once the formation-energy labels reached below -3 eV/atom); a parent
    with a frame more than ``HOLE_BELOW_RELAXED`` below its own relaxed energy per atom.
    """
    def epa(f: Atoms) -> float:
        return f.get_potential_energy() / len(f)

    relaxed = {f.info["parent_id"]: f for f in frames if f.info["kind"] == "relaxed"}
    single = {pid: f.get_chemical_symbols()[0] for pid, f in relaxed.items()
              if len(set(f.get_chemical_symbols())) == 1}
    lattice: dict[str, float] = {}
    for pid, el in single.items():
        if relaxed[pid].info["group"] == "elemental":
            lattice[el] = min(lattice.get(el, np.inf), epa(relaxed[pid]))
    holes: dict[str, str] = {}
    for pid, el in single.items():
        f = relaxed[pid]
        if f.pbc.all() and el in lattice and epa(f) < lattice[el] - HOLE_BELOW_LATTICE:
            holes[pid] = f"relaxed to {epa(f):.2f} eV/atom, {lattice[el] - epa(f):.2f} below the best {el} solid"
    mu, _ = elemental_references(f for pid, f in relaxed.items() if pid not in holes)
    for pid, f in relaxed.items():
        elements = set(f.get_chemical_symbols())
        if len(elements) > 1 and f.pbc.all() and elements <= mu.keys():
            e_form = formation_energy(f, mu)
            metallic = not elements & NONMETALS
            if e_form < (HOLE_FORMATION_METALLIC if metallic else HOLE_FORMATION):
                holes[pid] = f"formation energy {e_form:.2f} eV/atom" + (" (metals alone)" if metallic else "")
    for f in frames:
        pid = f.info["parent_id"]
        if pid in relaxed and pid not in holes and epa(f) < epa(relaxed[pid]) - HOLE_BELOW_RELAXED:
            holes[pid] = f"a {f.info['kind']} frame {epa(relaxed[pid]) - epa(f):.2f} eV/atom below the relaxed one"
    return holes


def main() -> None:
    """Merge and report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/work/distill"))
    p.add_argument("--train-file", type=Path, default=None, help="default: <out>/train.extxyz")
    p.add_argument("--test-file", type=Path, default=HERE / "data" / "test.extxyz")
    p.add_argument("--elements-file", type=Path, default=HERE / "data" / "elements.json")
    p.add_argument("--max-test-frames", type=int, default=300)
    p.add_argument("--extra-out", type=Path, action="append", default=[],
                   help="folder of a labelling run of a training-only part (--part "
                        f"{'/'.join(TRAINING_PARTS)}); its frames are all for training (repeatable)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    header = json.loads((args.out / "plan.json").read_text())
    test_ids = {s["id"] for s in header["parents"] if s["test"]}
    frames, summaries = load_chunks(args.out)
    if not frames:
        raise SystemExit(f"no finished chunks under {args.out / 'chunks'} yet")

    test_all = [f for f in frames if f.info["parent_id"] in test_ids]
    extra_headers: list[dict] = []
    for extra in args.extra_out:
        extra_headers.append(json.loads((extra / "plan.json").read_text()))
        part = extra_headers[-1].get("part")
        if part not in TRAINING_PARTS:
            raise SystemExit(f"{extra} holds a {part or 'base'!r} plan; --extra-out takes runs of the "
                             f"training-only parts ({', '.join(TRAINING_PARTS)})")
        more, more_summaries = load_chunks(extra)
        if leaked := {f.info["parent_id"] for f in more} & test_ids:
            raise SystemExit(f"{extra} labels held-out parents: {sorted(leaked)}")
        log.info("%s: %d chunks, %d frames (training only)", extra, len(more_summaries), len(more))
        frames += more
        summaries += more_summaries
    holes = teacher_holes(frames)
    for pid, why in sorted(holes.items()):
        log.warning("teacher hole, %s %s: %s", "held-out parent" if pid in test_ids else "left out:", pid, why)
    train = [f for f in frames if f.info["parent_id"] not in test_ids and f.info["parent_id"] not in holes]
    rng = np.random.default_rng(header["seed"])
    keep = np.arange(len(test_all))
    if len(test_all) > args.max_test_frames:
        keep = np.sort(rng.choice(len(test_all), size=args.max_test_frames, replace=False))
    test = [test_all[k] for k in keep]
    relaxed = [f for f in frames if f.info["kind"] == "relaxed" and f.info["parent_id"] not in holes]
    for f in relaxed:
        f.info["split"] = "test" if f.info["parent_id"] in test_ids else "train"

    write_atomic(args.train_file or args.out / "train.extxyz", train)
    write_atomic(args.test_file, test)
    write_atomic(args.out / "relaxed.extxyz", relaxed)

    parents_per_el: dict[str, set[str]] = defaultdict(set)
    frames_per_el: Counter = Counter()
    for f in frames:
        for el in set(f.get_chemical_symbols()):
            parents_per_el[el].add(f.info["parent_id"])
            frames_per_el[el] += 1
    elements = {
        "elements": sorted(parents_per_el),
        "count": len(parents_per_el),
        "per_element": {el: {"parents": len(parents_per_el[el]), "frames": frames_per_el[el]}
                        for el in sorted(parents_per_el)},
    }
    args.elements_file.parent.mkdir(parents=True, exist_ok=True)
    args.elements_file.write_text(json.dumps(elements, indent=1) + "\n")

    parents = [p for s in summaries for p in s["parents"]]
    skipped: Counter = Counter()
    for p_ in parents:
        skipped.update(p_["skipped"])
    summary = {
        "teacher": header["teacher"],
        "chunks_done": len(summaries),
        "chunks_total": sum(-(-len(h["parents"]) // h["chunk_size"]) for h in (header, *extra_headers)),
        "parents_planned": sum(len(h["parents"]) for h in (header, *extra_headers)),
        "extra_parts": [str(e) for e in args.extra_out],
        "parents_done": len(parents),
        "parents_failed": [f for s in summaries for f in s["failed"]],
        "parents_unconverged": sum(not p_["converged"] for p_ in parents),
        "teacher_holes": holes,
        "frames": len(frames),
        "frames_train": len(train),
        "frames_test_heldout": len(test_all),
        "frames_test_written": len(test),
        "atoms_total": int(sum(len(f) for f in frames)),
        "frames_per_group": dict(Counter(f.info["group"] for f in frames)),
        "parents_per_group": dict(Counter(f.info["group"] for f in relaxed)),
        "frames_per_kind": dict(Counter(f.info["kind"] for f in frames)),
        "frames_rejected": dict(skipped),
        "frames_rejected_total": sum(skipped.values()),
        "elements": len(parents_per_el),
        "labelling_seconds": round(sum(s["seconds"] for s in summaries), 1),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log.info(
        "%d/%d chunks, %d parents (%d failed), %d frames: train %d, test %d of %d held out; "
        "%d relaxed; %d elements; %d frames rejected; %.1f min labelling",
        summary["chunks_done"], summary["chunks_total"], len(parents), len(summary["parents_failed"]),
        len(frames), len(train), len(test), len(test_all), len(relaxed), len(parents_per_el),
        summary["frames_rejected_total"], summary["labelling_seconds"] / 60,
    )
    log.info("test file %s: %.2f MB", args.test_file, args.test_file.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
