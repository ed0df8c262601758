"""``python -m alignn_ase.training config.yaml [--set KEY=VALUE ...]`` — the entry point for ``torchrun``.

Example: ``torchrun --nproc-per-node 2 -m alignn_ase.training config.yaml --set output_dir=runs/a``.
"""

import argparse
import logging

from ..allocator import tune_malloc
from .config import load_config
from .trainer import train

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m alignn_ase.training")
    parser.add_argument("config", help="training config file (.yaml, .yml or .json)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config entry (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    tune_malloc()  # this process is ours, as in the alignn-ase command
    train(load_config(args.config, args.overrides))
