"""Teacher universal potentials (CHGNet 0.3.0, SevenNet-0) as ASE calculators.

Runs only in the side venv ``/work/upvenv`` (``pip install torch==2.13.0 chgnet
sevenn pyxtal``); neither package is a dependency of alignn_ase. Both load their
shipped weights offline. Units of the returned calculators are ASE's: energy eV,
forces eV/Å, stress eV/Å³ (Voigt 6-vector, positive = tensile); the sign was
checked against a central finite difference of the energy under strain.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from importlib.metadata import version

from ase.calculators.calculator import Calculator

TEACHERS = ("chgnet", "sevenn")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher: its ASE calculator and provenance strings."""

    name: str
    model: str
    package_version: str
    calc: Calculator

    @property
    def label(self) -> str:
        """Provenance label, e.g. ``"chgnet-0.3.0 (chgnet 0.4.2)"``."""
        return f"{self.model} ({self.name} {self.package_version})"


def load_teacher(name: str) -> Teacher:
    """Load teacher ``name`` ("chgnet" or "sevenn") on CPU with its shipped weights."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if name == "chgnet":
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        model = CHGNet.load(verbose=False)
        calc = CHGNetCalculator(model=model, use_device="cpu")
        return Teacher("chgnet", f"CHGNet-{model.version}", version("chgnet"), calc)
    if name == "sevenn":
        from sevenn.calculator import SevenNetCalculator

        calc = SevenNetCalculator("7net-0", device="cpu")
        return Teacher("sevenn", "SevenNet-0 (7net-0)", version("sevenn"), calc)
    raise ValueError(f"unknown teacher {name!r}; expected one of {TEACHERS}")
