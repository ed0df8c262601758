"""Quasi-harmonic thermal expansion of Cu, Al and Si: the teacher (SevenNet-0) beside the default potential.

Says whether the default potential's quasi-harmonic failures (its model card, Known limits) are the teacher's or its
own. Needs a venv with both ``sevenn`` and ``alignn_ase`` (the teacher only as an ASE calculator, as everywhere in
this pipeline)::

    python -m venv /work/qhavenv
    /work/qhavenv/bin/pip install torch==2.13.0 && /work/qhavenv/bin/pip install sevenn==0.13.0 -e .
    /work/qhavenv/bin/python scripts/distill/qha_teacher.py

Each crystal is relaxed by each model (1e-4 eV/Å, symmetry kept), then :func:`alignn_ase.qha` (4x4x4 supercell
of the primitive cell, 20x20x20 mesh, seven volumes within ±5 %, 0-800 K). Writes
``results/qha_teacher_vs_default.md`` and ``.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from ase.build import bulk

from alignn_ase import ALIGNNCalculator, ConvergenceWarning, qha, relax
from teachers import load_teacher

HERE = Path(__file__).resolve().parent
CRYSTALS = {"Cu": ("fcc", 3.6), "Al": ("fcc", 4.05), "Si": ("diamond", 5.43)}
#: room-temperature linear expansion (1/K), experiment (CRC Handbook)
EXPERIMENT = {"Cu": 16.5e-6, "Al": 23.1e-6, "Si": 2.6e-6}


def measure(calc) -> dict[str, dict]:
    rows = {}
    for name, (structure, a) in CRYSTALS.items():
        cell = relax(bulk(name, structure, a=a), fmax=1e-4, calculator=calc, fix_symmetry=True, progress=False).atoms
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            r = qha(cell, supercell=(4, 4, 4), mesh=(20, 20, 20), temperatures=np.arange(0.0, 801.0, 10.0),
                    calculator=calc, output_dir=None, progress=False)
        at = np.flatnonzero(r.temperatures == 300.0)
        row = {"t_max_K": float(r.temperatures[-1]), "zero_point_expansion": float(r.volume[0] / r.volumes[len(r.volumes) // 2] - 1),
               "warnings": [str(w.message) for w in caught]}
        if len(at):
            i = int(at[0])
            row.update(linear_expansion_per_K=float(r.thermal_expansion[i] / 3), bulk_modulus_GPa=float(r.bulk_modulus[i]))
        rows[name] = row
    return rows


def main() -> None:
    results = {"teacher (SevenNet-0)": measure(load_teacher("sevenn").calc),
               "default potential": measure(ALIGNNCalculator(dtype="float64"))}
    out = HERE / "results" / "qha_teacher_vs_default"
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["Quasi-harmonic linear thermal expansion at 300 K (1e-6/K) and bulk modulus at 300 K (GPa); "
             "`scripts/distill/qha_teacher.py`.", "",
             "| crystal | experiment | " + " | ".join(f"{m} α / B / T_max" for m in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    for name in CRYSTALS:
        cells = []
        for rows in results.values():
            row = rows[name]
            cells.append(f"{row['linear_expansion_per_K'] * 1e6:.1f} / {row['bulk_modulus_GPa']:.0f} / "
                         f"{row['t_max_K']:g} K" if "linear_expansion_per_K" in row else
                         f"volume out of range above {row['t_max_K']:g} K")
        lines.append(f"| {name} | {EXPERIMENT[name] * 1e6:.1f} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
