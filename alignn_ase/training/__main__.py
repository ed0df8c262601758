"""``python -m alignn_ase.training config.yaml`` — the entry point for ``torchrun``.

Example: ``torchrun --nproc-per-node 2 -m alignn_ase.training config.yaml``.
"""

import logging
import sys

from .trainer import train

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m alignn_ase.training CONFIG.yaml")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    train(sys.argv[1])
