"""alignn-ase: ALIGNN models as ASE calculators, without DGL.

Public API::

    from alignn_ase import ALIGNNCalculator, load_model
    atoms.calc = ALIGNNCalculator()            # shipped default potential
    atoms.calc = ALIGNNCalculator("path/to/upstream_checkpoint.zip")
"""

from .calculator import ALIGNNCalculator
from .compute import evaluate
from .errors import (
    AlignnAseError,
    CheckpointError,
    InvalidArgumentError,
    InvalidStructureError,
    UnknownModelError,
    UnsupportedElementError,
)
from .graph import AtomGraph, GraphSettings, batch_graphs, build_graph
from .io import available_models, load_model, save_model

__version__ = "0.1.0"

__all__ = [
    "ALIGNNCalculator",
    "AlignnAseError",
    "AtomGraph",
    "CheckpointError",
    "GraphSettings",
    "InvalidArgumentError",
    "InvalidStructureError",
    "UnknownModelError",
    "UnsupportedElementError",
    "available_models",
    "batch_graphs",
    "build_graph",
    "evaluate",
    "load_model",
    "save_model",
]
