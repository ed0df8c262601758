"""Exception types raised by alignn-ase's own code.

Everything alignn-ase rejects on purpose raises a subclass of
:class:`AlignnAseError`, so callers can catch the package's errors without
catching unrelated bugs. Errors about bad values also subclass ``ValueError``.
"""

from __future__ import annotations


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
