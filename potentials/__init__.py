"""Potentials shipped with alignn-ase, one folder each (config.json, model.safetensors, MODEL_CARD.md).

Installed as the package data ``alignn_ase.potentials``. ``DEFAULT`` names the
folder that ``load_model("default")`` and ``ALIGNNCalculator()`` load;
``PROPERTY_MODELS`` maps a property name to the shipped property model that
predicts it, so ``ALIGNNCalculator(properties=["formation_energy_peratom"])`` works.
"""

DEFAULT = "alignn-ase-distill-v5"
PROPERTY_MODELS = {"formation_energy_peratom": "formation-energy-distill-v6"}
