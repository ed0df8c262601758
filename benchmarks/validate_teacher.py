"""Teacher side of the potential validation: the distillation teacher (CHGNet 0.3.0 or
SevenNet-0) measured with the same protocol as our model (``validation_protocol.py``).

Runs in the side venv /work/upvenv (``chgnet`` and ``sevenn`` installed there; neither is a
dependency of alignn_ase). One thread, niced; measured on the shared 2-core machine: CHGNet 22 min
wall (13 min CPU), SevenNet-0 59 min wall (its calls cost ~2.7x CHGNet's):

    nice -n 10 /work/upvenv/bin/python benchmarks/validate_teacher.py --teacher sevenn
    nice -n 10 /work/upvenv/bin/python benchmarks/validate_teacher.py --teacher chgnet

Measures, for every element the teacher was trained on (MPtrj's 89 elements):
dcdft V0/B0/B′ vs WIEN2k, the lattice constants of the fcc/bcc/diamond/hcp reference
states, the cubic elastic constants of ``validation_protocol.ELASTIC_CRYSTALS``, and the Si Γ optical / X TA
phonon frequencies (ASE's finite-difference
``ase.phonons.Phonons`` on the 2-atom primitive cell x (4, 4, 4), 128 atoms; phonopy is not in
/work/upvenv). Writes benchmarks/results/validation_teacher_<teacher>.json after every
element, so a running job can be inspected; ``validate_potential.py`` merges it into its
tables. ``--quick``: three elements (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.calculators.calculator import BaseCalculator
from ase.data import chemical_symbols
from ase.phonons import Phonons

import validation_protocol as vp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "distill"))
from teachers import TEACHERS, Teacher, load_teacher  # noqa: E402

# MPtrj (the training set of both teachers) has no Po, At, Rn, Fr, Ra (Z 84-88); SevenNet-0's type map
# lists exactly its 89 elements, CHGNet's embedding accepts Z <= 94 but was not trained on 84-88.
UNTRAINED_Z = range(84, 89)
EV_PER_THZ = units._hplanck / units._e * 1e12

log = logging.getLogger("validate_teacher")


def supported_elements(teacher: Teacher) -> list[str]:
    """Symbols of the elements the teacher was trained on."""
    type_map = getattr(teacher.calc, "type_map", None)
    numbers = type_map.keys() if type_map else range(1, 95)
    return [chemical_symbols[z] for z in sorted(numbers) if z not in UNTRAINED_Z]


def si_phonons(calc: BaseCalculator) -> dict:
    """Relaxed Si, then Γ and X frequencies (THz) from ``ase.phonons.Phonons`` on the primitive cell x (4, 4, 4)."""
    atoms = vp.si_primitive()
    relaxation = vp.relax(atoms, calc)
    atoms.set_constraint()
    a = float(np.cbrt(4.0 * atoms.get_volume()))
    with tempfile.TemporaryDirectory() as tmp:
        ph = Phonons(atoms, calc, supercell=vp.SI_PHONON_SUPERCELL, delta=vp.SI_PHONON_DISPLACEMENT, name=f"{tmp}/ph")
        ph.run()
        ph.read(acoustic=True)
        energies = ph.band_structure([np.zeros(3), vp.fcc_x_point(atoms)], verbose=False)
    out = vp.si_phonon_summary(energies[0] / EV_PER_THZ, energies[1] / EV_PER_THZ, a)
    out["method"] = (
        f"ase.phonons.Phonons, primitive cell x {vp.SI_PHONON_SUPERCELL}, delta {vp.SI_PHONON_DISPLACEMENT} Å"
    )
    out["relax"] = relaxation
    return out


#: The measured parts, in the order they run.
PARTS = ("dcdft", "lattice", "si_phonons", "elastic")


def main() -> None:
    """Run the parts for one teacher and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", choices=TEACHERS, default="chgnet")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(vp.QUICK_ELEMENTS)} (smoke test)")
    parser.add_argument(
        "--out", type=Path, help="output JSON (default benchmarks/results/validation_teacher_<teacher>.json)"
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="parts to (re)measure; the others are kept from an existing output file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    teacher = load_teacher(args.teacher)
    elements = supported_elements(teacher)
    if args.quick:
        elements = [e for e in elements if e in vp.QUICK_ELEMENTS]
    suffix = "_quick" if args.quick else ""
    out = args.out or vp.RESULTS / f"validation_teacher_{args.teacher}{suffix}.json"
    earlier = json.loads(out.read_text()) if out.is_file() and set(args.parts) != set(PARTS) else {}
    payload: dict = {
        "teacher": args.teacher,
        "label": teacher.label,
        "command": vp.command_line(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": {"fmax_eV_per_A": vp.FMAX, "cell_steps": vp.CELL_STEPS, "volume_range": vp.VOLUME_RANGE,
                     "points": vp.POINTS, "eos": "birchmurnaghan", "dcdft": "Delta protocol: uniform scaling"},
        "dcdft": {} if "dcdft" in args.parts else earlier.get("dcdft", {}),
        "lattice": {} if "lattice" in args.parts else earlier.get("lattice", {}),
        "si_phonons": None if "si_phonons" in args.parts else earlier.get("si_phonons"),
        "elastic": {} if "elastic" in args.parts else earlier.get("elastic", {}),
        "wall_s": {k: v for k, v in earlier.get("wall_s", {}).items() if k not in args.parts},
        "cpu_s": {k: v for k, v in earlier.get("cpu_s", {}).items() if k not in args.parts},
    }

    def save() -> None:
        vp.write_json(out, payload)

    phonons: dict = {}
    parts = {
        "dcdft": lambda: vp.survey(vp.dcdft_elements(elements), lambda s: vp.dcdft_eos(s, teacher.calc),
                                   "dcdft EOS", payload["dcdft"], save),
        "lattice": lambda: vp.survey(vp.lattice_elements(elements), lambda s: vp.lattice_constant(s, teacher.calc),
                                     "lattice", payload["lattice"], save),
        "si_phonons": lambda: vp.survey(["Si"], lambda _: si_phonons(teacher.calc), "Si phonons", phonons, save),
        "elastic": lambda: vp.survey(vp.elastic_crystals(elements), lambda s: vp.elastic_constants(s, teacher.calc),
                                     "elastic", payload["elastic"], save),
    }
    for key in args.parts:
        t0, cpu0 = time.perf_counter(), time.process_time()
        parts[key]()
        payload["wall_s"][key] = time.perf_counter() - t0
        payload["cpu_s"][key] = time.process_time() - cpu0
    if "si_phonons" in args.parts:
        payload["si_phonons"] = phonons["Si"]
    payload["mae"] = {
        "dcdft_V0_pct": vp.mae([e for e in payload["dcdft"].values() if vp.eos_usable(e)], "V0_err_pct"),
        "dcdft_B0_pct": vp.mae([e for e in payload["dcdft"].values() if vp.eos_usable(e)], "B0_err_pct"),
        "lattice_a_and_c_pct": vp.lattice_mae(e for e in payload["lattice"].values() if vp.lattice_usable(e)),
    }
    payload["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save()
    log.info("%s: MAE %s; Si phonons %s; wrote %s", teacher.label, payload["mae"],
             {k: payload["si_phonons"].get(k) for k in ("gamma_optical", "x_ta", "error")}, out)


if __name__ == "__main__":
    main()
