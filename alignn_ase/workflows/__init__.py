"""Workflows on any ASE calculator (default: ``ALIGNNCalculator()``), built on ASE's and
phonopy's own machinery: relaxation, molecular dynamics, phonons, equation of state, elastic constants,
quasi-harmonic thermodynamics, nudged elastic bands, lattice thermal conductivity (phono3py).

Each takes an ``ase.Atoms`` (not modified), uses the calculator passed in, else the one
attached to the atoms, else ``ALIGNNCalculator()``, and returns a result dataclass
(:mod:`alignn_ase.workflows.results`) with units in its field docs.
"""

from .calc import calculate_many, get_calculator
from .conductivity import thermal_conductivity
from .elastic import elastic
from .eos import eos
from .md import ENSEMBLES, run_md
from .neb import neb
from .phonons import phonons, supercell_matrix
from .qha import qha
from .relax import OPTIMIZERS, relax
from .results import (
    ConductivityResult, ElasticResult, EOSResult, MDResult, NEBResult, PhononResult, QHAResult, RelaxResult,
)
from .watchdog import Watchdog

__all__ = [
    "ConductivityResult",
    "ENSEMBLES",
    "EOSResult",
    "ElasticResult",
    "MDResult",
    "NEBResult",
    "OPTIMIZERS",
    "PhononResult",
    "QHAResult",
    "RelaxResult",
    "Watchdog",
    "calculate_many",
    "elastic",
    "eos",
    "get_calculator",
    "neb",
    "phonons",
    "qha",
    "relax",
    "run_md",
    "supercell_matrix",
    "thermal_conductivity",
]
