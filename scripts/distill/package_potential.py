"""Test a trained force field on the committed held-out set and install it into potentials/<name>/.

Writes ``potentials/<name>/`` (config.json, model.safetensors, MODEL_CARD.md) and
``scripts/distill/results/<name>_heldout/`` (metrics JSON, predictions CSV, parity plots).
The card is the file given by ``--card`` with ``{name}`` replaced by ``--name``,
``{heldout}`` by the measured held-out metrics tables (overall, per structure group, worst parents),
``{elements}`` by the model's element list, and ``{speed}`` / ``{validation}`` by the markdown files given
(a summary, benchmark outputs), so every number in it comes from a committed command.

    /work/venv/bin/python scripts/distill/package_potential.py --run /work/distill/run_default_v5 \
        --checkpoint best_model --name alignn-ase-distill-v5 --card scripts/distill/card_default.md
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase.io import read, write

from alignn_ase import load_model, save_model
from alignn_ase.training import evaluate_dataset

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def group_table(frames: list, predictions: Path) -> str:
    """Markdown table of energy (meV/atom) and force (eV/Å) MAE per structure group (``info['group']``)."""
    rows = list(csv.DictReader(predictions.open()))
    per_group: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for atoms, row in zip(frames, rows, strict=True):
        e_err = abs(float(row["energy_per_atom_pred"]) - float(row["energy_per_atom"]))
        f_err = np.abs(np.array(json.loads(row["forces_pred"])) - np.array(json.loads(row["forces"]))).mean()
        per_group[atoms.info.get("group", "?")].append((e_err, f_err))
    lines = ["| group | frames | energy MAE (meV/atom) | force MAE, mean of per-frame MAEs (eV/Å) |", "|---|---:|---:|---:|"]
    for group, errs in sorted(per_group.items(), key=lambda kv: -len(kv[1])):
        e, f = np.mean(errs, axis=0)
        lines.append(f"| {group} | {len(errs)} | {1000 * e:.1f} | {f:.3f} |")
    return "\n".join(lines)


def parent_table(frames: list, predictions: Path, worst: int = 10) -> str:
    """Markdown table of the ``worst`` held-out parents by summed absolute energy error.

    Per parent (``info['parent_id']``): frames, mean signed energy error and its spread over the
    parent's frames (meV/atom), and the parent's share of the overall energy MAE. A mean far from
    zero with a small spread is an offset of the whole structure, not noise along its path.
    """
    rows = list(csv.DictReader(predictions.open()))
    per_parent: dict[tuple[str, str], list[float]] = defaultdict(list)
    for atoms, row in zip(frames, rows, strict=True):
        error = float(row["energy_per_atom_pred"]) - float(row["energy_per_atom"])
        per_parent[(atoms.info.get("parent_id", "?"), atoms.info.get("group", "?"))].append(error)
    total = sum(abs(e) for errors in per_parent.values() for e in errors)
    ranked = sorted(per_parent.items(), key=lambda kv: -sum(abs(e) for e in kv[1]))[:worst]
    lines = [
        "| parent | group | frames | mean error (meV/atom) | spread (meV/atom) | share of energy MAE |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (parent, group), errors in ranked:
        e = 1000 * np.array(errors)
        share = np.abs(e).sum() / (1000 * total)
        lines.append(f"| {parent} | {group} | {len(e)} | {e.mean():+.0f} | {e.std():.0f} | {100 * share:.1f} % |")
    shown = sum(np.abs(errors).sum() for _, errors in ranked) / total
    lines.append(f"\nThese {len(ranked)} of {len(per_parent)} held-out parents make {100 * shown:.0f} % of the energy MAE.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="training output_dir (holds best_model/)")
    p.add_argument("--checkpoint", default="best_model", choices=["best_model", "last_model"],
                   help="which checkpoint of the run (choose by validation metrics, never by the test set)")
    p.add_argument("--name", required=True, help="potential name (folder under potentials/)")
    p.add_argument("--card", type=Path, required=True, help="model-card template with a {heldout} placeholder")
    p.add_argument("--test", type=Path, default=HERE / "data" / "test.extxyz", help="held-out labelled set")
    p.add_argument("--speed", type=Path, help="markdown with the speed measurement")
    p.add_argument("--validation", type=Path, help="markdown with the validation results")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    # float64: exact for float32 and float64 checkpoints alike (a float32 one is written at twice its size)
    model = load_model(args.run / args.checkpoint, "float64")
    out = HERE / "results" / f"{args.name}_heldout"
    out.mkdir(parents=True, exist_ok=True)
    known = set(model.config.elements or [])
    frames = read(args.test, index=":")
    covered = [a for a in frames if not known or set(a.get_chemical_symbols()) <= known]
    test_file = out / "test_covered.extxyz"
    write(test_file, covered)
    metrics = evaluate_dataset(model, test_file, {"kind": "forcefield"}, out, dtype="float64")
    table = "\n".join(
        [
            "| quantity | MAE vs teacher | target |",
            "|---|---:|---:|",
            f"| energy (meV/atom) | {1000 * metrics['energy_mae_eV_per_atom']:.1f} | 10 |",
            f"| force component (eV/Å) | {metrics['force_mae_eV_per_A']:.3f} | 0.05 |",
            f"| stress component (GPa) | {metrics.get('stress_mae_GPa', float('nan')):.2f} | 0.3 |",
            f"| structures | {metrics['n']} of {len(frames)} (the rest hold elements absent from training) | |",
        ]
    )
    table += "\n\n" + group_table(covered, out / "predictions_test.csv")
    table += "\n\nWorst held-out parents (energy error = model - teacher):\n\n" + parent_table(
        covered, out / "predictions_test.csv"
    )
    fills = {
        "{name}": args.name,
        "{heldout}": table,
        "{elements}": ", ".join(model.config.elements or ["(all in the feature table)"]),
        "{speed}": args.speed.read_text().strip() if args.speed else "Not measured yet.",
        "{validation}": args.validation.read_text().strip() if args.validation else "Not measured yet.",
    }
    card = args.card.read_text()
    for key, value in fills.items():
        card = card.replace(key, value)
    folder = save_model(model, ROOT / "potentials" / args.name, card)
    logging.info("installed %s; held-out metrics %s", folder, metrics)


if __name__ == "__main__":
    main()
