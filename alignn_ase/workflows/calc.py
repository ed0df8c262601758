"""Which calculator a workflow uses, and evaluating many structures with it."""

from __future__ import annotations

import csv
import logging
import os
import numbers
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm import tqdm

from ..errors import InvalidArgumentError
from ..graph import has_3d_cell, validate_atoms

logger = logging.getLogger(__name__)


def check_numbers(**values: object) -> None:
    """Raise :class:`~alignn_ase.errors.InvalidArgumentError` naming each of ``values`` that is not a
    real number (a string, bool, None or array), before range checks compare them with numbers."""
    bad = [f"{name}={value!r:.40}" for name, value in values.items()
           if isinstance(value, bool) or not isinstance(value, numbers.Real)]
    if bad:
        raise InvalidArgumentError(f"expected numbers, got {', '.join(bad)}")


def check_positive(**values: object) -> None:
    """:func:`check_numbers`, then :class:`~alignn_ase.errors.InvalidArgumentError` naming the first of ``values``
    that is not a finite number > 0."""
    check_numbers(**values)
    for name, value in values.items():
        if not 0 < value < np.inf:
            raise InvalidArgumentError(f"{name} must be a finite number > 0, got {value!r}")


def new_file(path: str | Path) -> Path:
    """``path`` as a ``Path``, with its missing parent folders made (before a run, not at its first write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def output_folder(output_dir: str | os.PathLike | None) -> Path | None:
    """``output_dir`` as a folder made now, before a run, so that a bad one fails at once (None: no files)."""
    if output_dir is None:
        return None
    if not isinstance(output_dir, (str, os.PathLike)):
        raise InvalidArgumentError(f"output_dir must be a folder path or None, got {output_dir!r:.60}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"output_dir {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_csv(path: Path, header: Sequence[str], columns: Sequence[Sequence[float]]) -> None:
    """A CSV file at ``path``: the ``header`` row, then one row per entry of the equally long ``columns``."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*columns))


def as_floats(name: str, values: object) -> np.ndarray:
    """``values`` as a float array; :class:`~alignn_ase.errors.InvalidArgumentError` naming ``name`` if it holds
    anything but numbers."""
    try:
        # numpy would read "3" as 3.0, and drop an imaginary part with a warning
        if any(isinstance(v, (str, bytes, complex, np.complexfloating))
               for v in np.ravel(np.asarray(values, dtype=object))):
            raise ValueError(values)
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"{name} must hold numbers, got {values!r:.60}") from err


def check_structure(atoms: object) -> None:
    """Raise :class:`~alignn_ase.errors.InvalidArgumentError` unless ``atoms`` is an ``ase.Atoms`` (the
    workflows take structures, not file names), and :class:`~alignn_ase.errors.InvalidStructureError` for one no
    calculator can take (:func:`~alignn_ase.graph.validate_atoms`: no atoms, non-finite positions or cell, a
    degenerate periodic cell), before spglib or phonopy see it."""
    if not isinstance(atoms, Atoms):
        raise InvalidArgumentError(
            f"expected an ase.Atoms, got {type(atoms).__name__} {atoms!r:.60}; read a file with ase.io.read first"
        )
    validate_atoms(atoms)


def get_calculator(atoms: Atoms, calculator: BaseCalculator | None = None) -> BaseCalculator:
    """``calculator`` if given, else the one attached to ``atoms``, else ``ALIGNNCalculator()``.

    Stored results (a ``SinglePointCalculator``, e.g. energies read from a file) cannot
    evaluate new geometries and count as no calculator.
    """
    if calculator is not None:
        if not isinstance(calculator, BaseCalculator):
            raise InvalidArgumentError(
                f"calculator must be an ASE calculator, got {calculator!r:.60}; a model name or path goes to "
                "ALIGNNCalculator(...)"
            )
        return calculator
    if atoms.calc is not None and not isinstance(atoms.calc, SinglePointCalculator):
        return atoms.calc
    from ..calculator import ALIGNNCalculator

    logger.info("no calculator given or attached: using ALIGNNCalculator() (the shipped default potential)")
    return ALIGNNCalculator()


def calculate_many(
    structures: Sequence[Atoms], calculator: BaseCalculator, progress: bool = True
) -> list[dict[str, Any]]:
    """Energy (eV), forces (eV/Å), stress (eV/Å³, ASE Voigt order and sign; 3D cells only) and
    every other result of ``calculator`` for each structure, as one dict per structure.

    Calculators with a batched ``predict(structures, progress=...)`` method (an
    :class:`~alignn_ase.ALIGNNCalculator`) get the whole list in one call;
    any other ASE calculator is run structure by structure. The structures
    are not modified. ``progress`` shows a tqdm bar.
    """
    predict = getattr(calculator, "predict", None)
    if callable(predict):
        return list(predict(list(structures), progress=progress))
    out = []
    for atoms in tqdm(structures, desc="structures", unit="structure", disable=not progress, leave=False):
        atoms = atoms.copy()
        atoms.calc = calculator
        atoms.get_potential_energy()
        atoms.get_forces()
        if has_3d_cell(atoms) and "stress" in calculator.implemented_properties:  # as ALIGNNCalculator.predict
            atoms.get_stress()
        out.append({k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in calculator.results.items()})
    return out
