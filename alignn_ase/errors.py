"""Exception types raised by alignn-ase's own code.

Everything alignn-ase rejects on purpose raises a subclass of
:class:`AlignnAseError`, so callers can catch the package's errors without
catching unrelated bugs. Errors about bad values also subclass ``ValueError``.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ase import Atoms


class AlignnAseError(Exception):
    """Base class of every exception alignn-ase raises on purpose."""


class InvalidStructureError(AlignnAseError, ValueError):
    """An ``ase.Atoms`` object the graph builder or a model cannot accept."""


class UnsupportedElementError(InvalidStructureError):
    """A structure holds an element outside the model's element table."""


class CheckpointError(AlignnAseError, ValueError):
    """A model file or folder that cannot be loaded: corrupt, malformed, or mismatched."""


class UnknownModelError(CheckpointError, LookupError):
    """A model name that is neither a shipped potential nor an existing path."""


class InvalidArgumentError(AlignnAseError, ValueError):
    """An unknown property, device, dtype or option value."""


class ConfigError(AlignnAseError, ValueError):
    """A training config with a missing, unknown or ill-typed field."""


class DatasetError(AlignnAseError, ValueError):
    """A dataset file or record that cannot be used: unreadable structure, missing or non-numeric target."""


class SimulationError(AlignnAseError, RuntimeError):
    """A simulation stopped by a safety check: NaN energies or forces, atoms too close, runaway temperature.

    ``atoms`` is the last frame that passed every check (None if the first did
    not); ``path`` is the file it was written to (None when nothing was written).
    """

    def __init__(self, message: str, atoms: Atoms | None = None, path: Path | None = None):
        super().__init__(message)
        self.atoms = atoms
        self.path = path


class ConvergenceWarning(UserWarning):
    """An optimisation that stopped at its step limit before reaching its force criterion."""


def is_whole(value: object, minimum: int) -> bool:
    """Whether ``value`` is an integer (Python's or numpy's, not a bool) >= ``minimum``: a count, for the
    argument checks that raise :class:`InvalidArgumentError`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum
