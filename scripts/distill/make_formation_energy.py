"""Formation-energy labels from the teacher's relaxed structures (for the shipped property model).

Label: ``formation_energy_peratom`` (eV/atom) = (E - sum_el n_el mu_el) / N, where
E is the teacher's energy of the relaxed structure and mu_el is the lowest teacher
energy per atom among the relaxed single-element bulk structures of the set (elemental
and random single-element crystals, including the molecular crystals of H, N, O, F, Cl,
Br, I; molecules in boxes only for an element with no bulk structure;
:func:`references.elemental_references`). Only bulk structures are labelled (surfaces
and molecules are not); labels above MAX_LABEL eV/atom (teacher artefacts on odd random
structures) or below merge.HOLE_FORMATION (below any real compound: a teacher hole) are
dropped (counted in the log). Up to v4 every label beyond -3 eV/atom was dropped too,
which left out the most stable oxides and fluorides (CaF2, ZrO2, Al2O3, SrTiO3, ...). It is a property of the
teacher's potential-energy surface, not DFT: the teacher's own elemental
references, no MP2020 anion corrections, no experiment.

    /work/venv/bin/python scripts/distill/make_formation_energy.py \
        --relaxed /work/distill/relaxed.extxyz --out /work/distill/formation_energy.extxyz
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from ase import Atoms
from ase.io import read, write
from merge import HOLE_FORMATION
from references import elemental_references, formation_energy

log = logging.getLogger("formation_energy")

BULK = ("elemental", "pyxtal", "binary", "ternary", "vacancy")
MAX_LABEL = 3.0  # eV/atom


def labelled_structure(atoms: Atoms, mu: dict[str, float], record_id: str) -> tuple[Atoms | None, str | None]:
    """``atoms`` (a teacher-labelled frame) as a record ``record_id`` with its ``formation_energy_peratom`` (eV/atom),
    or ``(None, reason)`` for a bulk structure that gets no label (an element without a reference, a label outside
    [HOLE_FORMATION, MAX_LABEL]); ``(None, None)`` for a structure that is not bulk (surfaces, molecules)."""
    if atoms.info.get("group") not in BULK:
        return None, None
    missing = sorted({el for el in atoms.get_chemical_symbols() if el not in mu})
    if missing:
        return None, ",".join(missing)
    e_form = formation_energy(atoms, mu)
    if not HOLE_FORMATION <= e_form <= MAX_LABEL:
        return None, f"E_f outside [{HOLE_FORMATION}, {MAX_LABEL}] eV/atom"
    labelled = atoms.copy()
    labelled.calc = None
    labelled.info = {
        "id": record_id,
        "formation_energy_peratom": e_form,
        "group": atoms.info.get("group"),
        "teacher": atoms.info.get("teacher"),
        "teacher_package": atoms.info.get("teacher_package"),
        "seed": atoms.info.get("seed"),
    }
    return labelled, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--relaxed", type=Path, default=Path("/work/distill/relaxed.extxyz"))
    p.add_argument("--out", type=Path, default=Path("/work/distill/formation_energy.extxyz"))
    p.add_argument("--references", type=Path, default=Path(__file__).parent / "data" / "elemental_references.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    frames = read(args.relaxed, index=":")
    mu, source = elemental_references(frames)
    out, skipped = [], Counter()
    for atoms in frames:
        labelled, reason = labelled_structure(atoms, mu, str(atoms.info.get("parent_id")))
        if reason:
            skipped[reason] += 1
        elif labelled is not None:
            out.append(labelled)
    if skipped:
        log.warning("skipped bulk structures (reason or elements lacking a reference: count): %s", dict(skipped))
    write(args.out, out)
    args.references.parent.mkdir(parents=True, exist_ok=True)
    args.references.write_text(json.dumps(
        {"unit": "eV/atom", "definition": "lowest teacher energy per atom among relaxed single-element structures",
         "mu": mu, "from_parent": source}, indent=1, sort_keys=True) + "\n")
    log.info("%d labelled structures -> %s; %d elemental references -> %s", len(out), args.out, len(mu),
             args.references)


if __name__ == "__main__":
    main()
