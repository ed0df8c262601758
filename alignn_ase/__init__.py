"""alignn-ase: ALIGNN models as ASE calculators, without DGL.

Public API::

    from alignn_ase import ALIGNNCalculator, load_model, predict
    atoms.calc = ALIGNNCalculator()            # shipped default potential
    atoms.calc = ALIGNNCalculator("path/to/upstream_checkpoint.zip")
    atoms.calc = ALIGNNCalculator("mps")       # upstream ALIGNN's published models by name (downloaded once)
    results = predict(list_of_atoms, batch_size=32)  # many structures per forward/backward pass

    from alignn_ase import relax, run_md, phonons, eos, elastic, qha, neb   # workflows on any ASE calculator
    from alignn_ase import thermal_conductivity   # with phono3py (pip install phono3py)

    from alignn_ase import tune_malloc
    tune_malloc()  # once, first thing in a training or MD script: freed buffers are kept (faster steps)
"""

from .allocator import tune_malloc
from .batch import predict
from .calculator import ALIGNNCalculator
from .compute import evaluate
from .download import upstream_models
from .errors import (
    AlignnAseError,
    CheckpointError,
    ConvergenceWarning,
    InvalidArgumentError,
    InvalidStructureError,
    SimulationError,
    UnknownModelError,
    UnsupportedElementError,
)
from .graph import AtomGraph, GraphCache, GraphSettings, batch_graphs, build_graph, build_graphs
from .io import available_models, load_model, save_model

__version__ = "0.1.0"

#: workflows, imported on first use (they pull in phonopy, matplotlib and ASE's MD and I/O modules).
_WORKFLOWS = ("elastic", "eos", "neb", "phonons", "qha", "relax", "run_md", "thermal_conductivity")


def __getattr__(name: str):
    if name in _WORKFLOWS:
        from . import workflows

        return getattr(workflows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALIGNNCalculator",
    "AlignnAseError",
    "AtomGraph",
    "CheckpointError",
    "ConvergenceWarning",
    "GraphCache",
    "GraphSettings",
    "InvalidArgumentError",
    "InvalidStructureError",
    "SimulationError",
    "UnknownModelError",
    "UnsupportedElementError",
    "available_models",
    "batch_graphs",
    "build_graph",
    "build_graphs",
    "eos",
    "elastic",
    "evaluate",
    "load_model",
    "neb",
    "phonons",
    "predict",
    "qha",
    "relax",
    "run_md",
    "save_model",
    "thermal_conductivity",
    "tune_malloc",
    "upstream_models",
]
