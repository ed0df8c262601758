"""Write the placeholder default potential ``potentials/smooth-untrained-v0``.

A randomly initialised (seed 0) smooth ALIGNN with the default
:class:`alignn_ase.nn.smooth.SmoothConfig`. It exists so that
``ALIGNNCalculator()`` works before a trained potential ships; it is NOT a
trained potential and its numbers mean nothing physically.

    python scripts/make_untrained_default.py
"""

from pathlib import Path

import torch

from alignn_ase import save_model
from alignn_ase.nn.smooth import SmoothALIGNN, SmoothConfig

CARD = """# smooth-untrained-v0 — UNTRAINED placeholder

**This is not a trained potential.** Its weights are random (PyTorch default
initialisation, `torch.manual_seed(0)`); energies, forces and stresses it gives
have no physical meaning. It exists so that `ALIGNNCalculator()` and the
workflows run end to end until a trained default potential ships.

- Architecture: alignn-ase smooth ALIGNN (`alignn_ase.nn.smooth.SmoothALIGNN`),
  2 ALIGNN + 2 GCN layers, width 64, radius graph 5.0 Å, three-body cutoff 3.5 Å,
  polynomial envelope (p = 5), site energies + per-element references (all 0), ZBL below 1.0 Å.
- Elements: Z = 1..100 (the 92-d CGCNN feature table).
- Training data: none.
- Accuracy: none. Do not use for science.
- Made by: `python scripts/make_untrained_default.py`.
"""

if __name__ == "__main__":
    torch.manual_seed(0)
    model = SmoothALIGNN(SmoothConfig())
    out = Path(__file__).resolve().parents[1] / "potentials" / "smooth-untrained-v0"
    save_model(model, out, CARD)
    print(f"wrote {out}")
