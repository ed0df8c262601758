"""Formation energies two ways, on structures held out from both models: the shipped property model against the default
potential's own energy with the label's elemental references.

The label is the property model's (``potentials/formation-energy-distill-v6/MODEL_CARD.md``): (E − Σ_el n_el μ_el) / N
in eV/atom, E the teacher's energy of a bulk structure, μ_el from ``data/elemental_references.json``. The
structures are the relaxed 3D-periodic bulk frames of the committed held-out set (``data/test.extxyz``): parents the
potential never trained on, which the property model's data (frames of its training parents) does not hold either.
Each model predicts once:

- the property model: its ``formation_energy_peratom``;
- the potential: (E_potential − Σ_el n_el μ_el) / N with the same μ (the teacher's; the potential is a distillation
  of the teacher's energies, so no references of its own are fitted).

    /work/venv/bin/python scripts/distill/formation_from_potential.py

With ``--all-frames`` every bulk frame of those parents counts (rattled, strained, MD, volume scans, relaxation
paths; the label is the same difference of teacher energies at that geometry): how each model's prediction follows
the geometry.

Writes ``results/formation_energy_from_potential.md`` and ``.json`` (every structure's label and both predictions).
Needs only the committed files and the shipped models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read
from scipy.stats import spearmanr

from alignn_ase import ALIGNNCalculator
from make_formation_energy import BULK

HERE = Path(__file__).resolve().parent
TARGET = "formation_energy_peratom"


def within_parent_mae(error: np.ndarray, parents: list[str]) -> float:
    """MAE of the changes along each parent's frames: the errors (prediction - label, eV/atom) less their parent's
    mean error, so how a prediction follows the geometry, whatever its offset."""
    _, index = np.unique(parents, return_inverse=True)
    mean_error = np.bincount(index, error) / np.bincount(index)
    return float(np.abs(error - mean_error[index]).mean())


def _stats(pred: np.ndarray, label: np.ndarray, parents: list[str]) -> dict[str, float]:
    """MAE, median and largest absolute error, Spearman; with several frames per parent also
    :func:`within_parent_mae`."""
    err = np.abs(pred - label)
    out = {"mae": float(err.mean()), "median_ae": float(np.median(err)), "max_ae": float(err.max()),
           "spearman": float(spearmanr(label, pred).statistic)}
    if len(set(parents)) < len(parents):
        out["within_parent_mae"] = within_parent_mae(pred - label, parents)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--test", type=Path, default=HERE / "data" / "test.extxyz")
    p.add_argument("--references", type=Path, default=HERE / "data" / "elemental_references.json")
    p.add_argument("--potential", default="default")
    p.add_argument("--property", default=TARGET, help="the property model (shipped name or folder)")
    p.add_argument("--all-frames", action="store_true",
                   help="every bulk frame (rattled, strained, MD, scans, relaxation paths) instead of the relaxed "
                        "structures alone: how each model's prediction follows the geometry")
    p.add_argument("--out", type=Path, default=HERE / "results" / "formation_energy_from_potential")
    args = p.parse_args()

    mu = json.loads(args.references.read_text())["mu"]
    frames = [a for a in read(args.test, ":") if (args.all_frames or a.info.get("kind") == "relaxed")
              and a.pbc.all() and a.info.get("group") in BULK and set(a.get_chemical_symbols()) <= set(mu)]
    calc = ALIGNNCalculator(args.potential, properties={TARGET: args.property}, dtype="float64")
    results = calc.predict(frames, batch_size=8, progress=False)
    rows = []
    for atoms, res in zip(frames, results):
        reference = sum(mu[s] for s in atoms.get_chemical_symbols())
        n = len(atoms)
        rows.append({"parent_id": atoms.info["parent_id"], "kind": atoms.info.get("kind"),
                     "formula": atoms.get_chemical_formula(), "n_atoms": n,
                     "label": (atoms.get_potential_energy() - reference) / n,
                     "potential": (float(res["energy"]) - reference) / n, "property_model": float(res[TARGET])})
    label = np.array([r["label"] for r in rows])
    parents = [r["parent_id"] for r in rows]
    summary = {
        "structures": len(rows),
        "mad_of_labels": float(np.mean(np.abs(label - label.mean()))),
        "potential": _stats(np.array([r["potential"] for r in rows]), label, parents),
        "property_model": _stats(np.array([r["property_model"] for r in rows]), label, parents),
        "models": {"potential": args.potential, "property_model": args.property},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "structures": rows}, indent=1) + "\n")
    lines = [
        f"Formation energy per atom (eV/atom) of the {len(rows)} "
        f"{'bulk frames' if args.all_frames else 'relaxed bulk structures'} of the held-out parents "
        f"(MAD of the labels {summary['mad_of_labels']:.3f}); "
        f"`scripts/distill/formation_from_potential.py{' --all-frames' if args.all_frames else ''}`.",
        "",
        "| model | MAE | median AE | max AE | Spearman | MAE of the changes within a parent |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, name in (("potential", f"potential `{args.potential}`: (E − Σ n μ) / N"),
                      ("property_model", f"property model `{args.property}`")):
        s = summary[key]
        within = f"{s['within_parent_mae']:.3f}" if "within_parent_mae" in s else "–"
        lines.append(f"| {name} | {s['mae']:.3f} | {s['median_ae']:.3f} | {s['max_ae']:.3f} | {s['spearman']:.2f} "
                     f"| {within} |")
    lines += ["", "| parent | frame | label | potential | property model |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['parent_id']} | {r['kind']} | {r['label']:.3f} | {r['potential']:.3f} "
              f"| {r['property_model']:.3f} |"
              for r in sorted(rows, key=lambda r: r["label"])]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:6]))


if __name__ == "__main__":
    main()
