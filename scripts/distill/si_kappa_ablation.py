"""Ablation (session 22, not shipped): can v5's architecture learn diamond Si's phonon-phonon scattering when the
loss asks for it?

The default potential's Si conducts heat 11 times worse than its teacher's, because its phonons scatter ~13 times as
fast (``results/kappa_teacher_vs_default_fc2_4.md``): its third-order force constants are wrong. The catalogue's Si
frames are 8-16-atom cells rattled by 0.01-0.15 Å, MD frames and strains. This ablation adds 120 rattled 64-atom
cells (the 2x2x2 conventional supercell, Gaussian displacements of 0.02-0.06 Å, fresh seeds: not phono3py's
displacement pattern) labelled by the teacher, fine-tunes v5 on Si alone (``ablation_si_kappa.yaml``) and measures
Si's conductivity as ``kappa_teacher.py --phonon-supercell 4`` does (its ``diamond_conductivity``)::

    /work/qhavenv/bin/python scripts/distill/si_kappa_ablation.py label     # teacher venv: -> /work/ablation_kappa/
    OMP_NUM_THREADS=2 /work/venv/bin/alignn-ase train scripts/distill/ablation_si_kappa.yaml
    # the control: the same fine-tune on the catalogue's Si frames alone
    /work/venv/bin/python -c "from ase.io import read, write; write('/work/ablation_kappa/si_catalogue.extxyz', \
        [a for a in read('/work/ablation_kappa/si.extxyz', ':') if a.info.get('kind') != 'rattle64'])"
    OMP_NUM_THREADS=2 /work/venv/bin/alignn-ase train scripts/distill/ablation_si_kappa.yaml \
        --set data.path=/work/ablation_kappa/si_catalogue.extxyz --set output_dir=/work/ablation_kappa/run_control
    /work/venv/bin/python scripts/distill/si_kappa_ablation.py measure      # project venv (phono3py)
    # session 23: the 120 cells in a universal mix (ablation_si_kappa_mixed.yaml; results/stage7_phonon/README.md)
    /work/venv/bin/python scripts/distill/si_kappa_ablation.py mixed
    OMP_NUM_THREADS=2 /work/venv/bin/alignn-ase train scripts/distill/ablation_si_kappa_mixed.yaml
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

OUT = Path("/work/ablation_kappa")
HERE = Path(__file__).resolve().parent


def label() -> None:
    from alignn_ase import relax
    from teachers import load_teacher

    teacher = load_teacher("sevenn")
    frames = [a for path in sorted(glob.glob("/work/distill*/chunks/*.extxyz")) for a in read(path, ":")
              if set(a.get_chemical_symbols()) == {"Si"} and not a.info["parent_id"].startswith("elemental:diamond:Si")]
    cell = relax(bulk("Si", "diamond", a=5.46, cubic=True), fmax=1e-4, calculator=teacher.calc, fix_symmetry=True,
                 progress=False).atoms.repeat(2)
    rng = np.random.default_rng(2222)
    for k in range(120):
        a = cell.copy()
        a.positions += rng.normal(0.0, (0.02, 0.04, 0.06)[k % 3], a.positions.shape)
        a.calc = teacher.calc
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
        a.info.update(kind="rattle64", parent_id=f"ablation:si64:{k}", teacher=teacher.label)
        frames.append(a)
    OUT.mkdir(exist_ok=True)
    write(OUT / "si.extxyz", frames)
    print(f"{len(frames)} Si frames ({len(frames) - 120} from the catalogue, held-out diamond Si left out) -> "
          f"{OUT / 'si.extxyz'}")


def mixed() -> None:
    """The universal mix of ``ablation_si_kappa_mixed.yaml``: the phonon part, the 120 rattled diamond Si cells three
    times (copies share a parent id, so the by-parent split keeps them on one side) and a seeded quarter of the
    catalogue's training frames."""
    cells = [a for a in read(OUT / "si.extxyz", ":") if a.info.get("kind") == "rattle64"]
    catalogue = read("/work/distill/train_all.extxyz", ":")
    keep = np.random.default_rng(23).permutation(len(catalogue))[: len(catalogue) // 4]
    frames = [catalogue[k] for k in sorted(keep)] + read("/work/distill/phonon.extxyz", ":") + cells * 3
    write(OUT / "mixed.extxyz", frames)
    print(f"{len(frames)} frames -> {OUT / 'mixed.extxyz'}")


def measure() -> None:
    from alignn_ase import ALIGNNCalculator, elastic
    from kappa_teacher import diamond_conductivity

    rows = {}
    runs = [("v5", "alignn-ase-distill-v5")]
    for run, what in (("run", "with the 64-atom cells"), ("run_control", "catalogue frames only")):
        runs += [(f"v5 fine-tuned on Si, {what}, {m}", str(OUT / run / m)) for m in ("best_model", "last_model")]
    for name, model in runs:
        calc = ALIGNNCalculator(model, dtype="float64")
        cell, r = diamond_conductivity(calc, "Si", 5.43, 4, [300.0])
        c = elastic(cell, calculator=calc, output_dir=None, progress=False).c
        rows[name] = {"a_A": float(cell.cell[0, 0]), "kappa_300K_W_per_mK": float(r.kappa_mean[0]),
                      "imaginary_modes": r.imaginary_modes, "C11_C12_C44_GPa": [c[0, 0], c[0, 1], c[3, 3]]}
        print(name, rows[name], flush=True)
    (HERE / "results" / "si_kappa_ablation.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    {"label": label, "mixed": mixed, "measure": measure}[sys.argv[1]]()
