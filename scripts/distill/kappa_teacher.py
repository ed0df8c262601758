"""Lattice thermal conductivity of diamond-structure Si, Ge and C: the teacher (SevenNet-0) beside the default
potential, beside experiment.

Measures how well the default potential's third-order force constants (phonon-phonon scattering) follow the
teacher's. Needs a venv with ``sevenn``, ``phono3py`` and ``alignn_ase`` (the teacher only as an ASE calculator, as
everywhere in this pipeline)::

    python -m venv /work/qhavenv
    /work/qhavenv/bin/pip install torch==2.13.0 && /work/qhavenv/bin/pip install sevenn==0.13.0 phono3py -e .
    /work/qhavenv/bin/python scripts/distill/kappa_teacher.py [--phonon-supercell 4]
    # a candidate potential against the teacher rows of an earlier run (no teacher needed; the project venv will do)
    python scripts/distill/kappa_teacher.py --phonon-supercell 4 --model RUN/last_model \
        --teacher-json scripts/distill/results/kappa_teacher_vs_default_fc2_4.json --out /tmp/kappa_candidate

Each crystal is relaxed by each model (1e-4 eV/Å, cell included, symmetry kept), then
:func:`alignn_ase.thermal_conductivity` as phono3py's silicon example does it: the 8-atom conventional cell in a
2x2x2 supercell (64 atoms, fc3 and by default fc2; ``--phonon-supercell 4``: fc2 in a 4x4x4 one, 512 atoms, beyond
the models' reach through their layers), 0.03 Å displacements, a 19x19x19 mesh, the relaxation-time approximation,
with natural isotope scattering (as in the measured natural crystals). Writes
``results/kappa_teacher_vs_default_fc2_<n>.md`` and ``.json`` (or ``--out`` with those suffixes).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from alignn_ase import ALIGNNCalculator, relax, thermal_conductivity
from alignn_ase.workflows import ConductivityResult

HERE = Path(__file__).resolve().parent
CRYSTALS = {"Si": 5.43, "Ge": 5.66, "C": 3.57}
TEMPERATURES = [300.0, 600.0, 900.0]
#: W/(m K) at 300 K, natural isotopes: Si and Ge, Glassbrenner & Slack, Phys. Rev. 134, A1058 (1964); C, type IIa
#: diamond, Wei et al., Phys. Rev. Lett. 70, 3764 (1993)
EXPERIMENT = {"Si": 150.0, "Ge": 60.0, "C": 2200.0}


def diamond_conductivity(calc, element: str, a: float, phonon_supercell: int,
                         temperatures: list[float]) -> tuple[Atoms, ConductivityResult]:
    """The protocol of this script (the module docstring) for one diamond-structure crystal: the relaxed cubic cell
    and its conductivity. ``phonon_supercell`` 2: fc2 from the fc3 supercells."""
    cell = relax(bulk(element, "diamond", a=a, cubic=True), fmax=1e-4, calculator=calc, fix_symmetry=True,
                 progress=False).atoms
    fc2_cell = None if phonon_supercell == 2 else (phonon_supercell,) * 3
    return cell, thermal_conductivity(cell, supercell=(2, 2, 2), phonon_supercell=fc2_cell, mesh=(19, 19, 19),
                                      temperatures=temperatures, isotope=True, calculator=calc, output_dir=None,
                                      progress=False)


def measure(calc, phonon_supercell: int) -> dict[str, dict]:
    rows = {}
    for name, a in CRYSTALS.items():
        start = time.perf_counter()
        cell, r = diamond_conductivity(calc, name, a, phonon_supercell, TEMPERATURES)
        # κ = Σ C v² τ / V over the modes: its harmonic factor Σ C v² / V (mesh-weighted) and κ over it, an
        # effective lifetime, at 300 K, in one set of arbitrary units (only ratios between models mean anything)
        tc = r.phono3py.thermal_conductivity
        w, c, v = tc.grid_weights, tc.mode_heat_capacities[0], tc.group_velocities
        harmonic = float((w[:, None] * c * (v**2).sum(axis=-1)).sum() / (3 * w.sum() * r.phono3py.primitive.volume))
        rows[name] = {"a_A": float(cell.cell[0, 0]), "kappa_W_per_mK": r.kappa_mean.tolist(),
                      "imaginary_modes": r.imaginary_modes, "lowest_frequency_THz": r.lowest_frequency,
                      "harmonic_factor_300K": harmonic, "effective_lifetime_300K": r.kappa_mean[0] / harmonic,
                      "seconds": time.perf_counter() - start}
        print(name, rows[name], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phonon-supercell", type=int, default=2, help="fc2 supercell of the conventional cell")
    parser.add_argument("--model", default="default", help="the potential set beside the teacher: a shipped name "
                                                             "or a checkpoint path (default: the shipped default)")
    parser.add_argument("--teacher-json", type=Path, help="take the teacher's rows from this earlier result file "
                                                          "(same --phonon-supercell) instead of running the teacher")
    parser.add_argument("--out", type=Path, help="result stem (default: results/kappa_teacher_vs_default_fc2_<n>)")
    args = parser.parse_args()
    n = args.phonon_supercell
    if args.teacher_json is None:
        from teachers import load_teacher  # the teacher's venv only

        teacher = measure(load_teacher("sevenn").calc, n)
    else:
        teacher = json.loads(args.teacher_json.read_text())["teacher (SevenNet-0)"]
    model = "default potential" if args.model == "default" else args.model
    results = {"teacher (SevenNet-0)": teacher, model: measure(ALIGNNCalculator(args.model, dtype="float64"), n)}
    out = args.out or HERE / "results" / f"kappa_teacher_vs_default_fc2_{n}"
    out.with_suffix(".json").write_text(json.dumps({"temperatures_K": TEMPERATURES, **results}, indent=1) + "\n")
    lines = ["Lattice thermal conductivity, W/(m K), at " + ", ".join(f"{t:g}" for t in TEMPERATURES) + " K (RTA, "
             f"19x19x19 mesh, fc3 in the 2x2x2 and fc2 in the {n}x{n}x{n} conventional supercell, isotope scattering); "
             f"experiment at 300 K; `{shlex.join(['scripts/distill/kappa_teacher.py', *sys.argv[1:]])}`.", "",
             "| crystal | experiment (300 K) | " + " | ".join(f"{m}: a (Å), κ" for m in results) + " |",
             "|---|---:|" + "---|" * len(results)]
    for name in CRYSTALS:
        cells = []
        for rows in results.values():
            row = rows[name]
            kappa = " / ".join(f"{k:.3g}" for k in row["kappa_W_per_mK"])
            extra = f" ({row['imaginary_modes']} imaginary modes)" if row["imaginary_modes"] else ""
            cells.append(f"{row['a_A']:.3f}, {kappa}{extra}")
        lines.append(f"| {name} | {EXPERIMENT[name]:g} | " + " | ".join(cells) + " |")
    teacher, student = results.values()
    lines += ["", "At 300 K, κ = Σ C v² τ / V split into its harmonic factor Σ C v² / V (heat capacities, group "
              f"velocities) and κ over it (an effective lifetime τ), the {model}'s over the teacher's:", "",
              "| crystal | κ | harmonic factor | effective lifetime |", "|---|---:|---:|---:|"]
    for name in CRYSTALS:
        t, s = teacher[name], student[name]
        lines.append(f"| {name} | {s['kappa_W_per_mK'][0] / t['kappa_W_per_mK'][0]:.3f} | "
                     f"{s['harmonic_factor_300K'] / t['harmonic_factor_300K']:.2f} | "
                     f"{s['effective_lifetime_300K'] / t['effective_lifetime_300K']:.3f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
