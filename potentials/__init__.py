"""Potentials shipped with alignn-ase, one folder each (config.json, model.safetensors, MODEL_CARD.md).

Installed as the package data ``alignn_ase.potentials``. ``DEFAULT`` names the
folder that ``load_model("default")`` and ``ALIGNNCalculator()`` load.
"""

DEFAULT = "smooth-untrained-v0"
