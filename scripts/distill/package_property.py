"""Install the trained formation-energy model into potentials/ with its card and measured test metrics.

    /work/venv/bin/python scripts/distill/package_property.py --run /work/distill/run_formation_energy_v6
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alignn_ase import load_model, save_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=Path("/work/distill/run_formation_energy_v6"))
    p.add_argument("--name", default="formation-energy-distill-v6")
    p.add_argument("--card", type=Path, default=HERE / "card_formation_energy.md")
    args = p.parse_args()
    metrics = json.loads((args.run / "test_metrics.json").read_text())
    card = args.card.read_text().replace("{metrics}", json.dumps(metrics, indent=1))
    save_model(load_model(args.run / "best_model"), HERE.parents[1] / "potentials" / args.name, card)


if __name__ == "__main__":
    main()
