"""Dataset readers: JARVIS JSON, upstream id_prop.csv folders, extxyz, ASE databases.

Every reader yields :class:`Record` objects: an id, an ``ase.Atoms`` and its
labels. Force-field labels are ``energy`` (eV), ``forces`` (N, 3, eV/Å) and
``stress`` (Voigt 6, eV/Å³, ASE sign; absent for structures without a 3D
cell); property labels are the named target's value in its own units.

A record that cannot be used (unreadable structure, missing or non-numeric
target) raises :class:`~alignn_ase.errors.DatasetError` naming its id, or with
``skip_invalid`` is skipped and counted in the log.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, get_args

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import read as ase_read
from ase.io.formats import UnknownFileTypeError
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import DatasetError
from .config import DataFormat
from ..graph import has_3d_cell

logger = logging.getLogger(__name__)


@dataclass
class Record:
    """One labelled structure: ``id``, ``atoms`` and ``labels`` (units in the module docstring)."""

    id: str
    atoms: Atoms
    labels: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, what: str, rid: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"record {rid}: {what} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"record {rid}: {what} is {x} (not finite)")
    return x


def _property(source: dict[str, Any], target: str, rid: str) -> float:
    if target not in source:
        raise DatasetError(f"record {rid}: no value for target {target!r}")
    return _number(source[target], f"target {target!r}", rid)


def jarvis_atoms(d: dict[str, Any], rid: str) -> Atoms:
    """An ``ase.Atoms`` from a JARVIS ``atoms`` dict (lattice_mat, coords, elements, cartesian)."""
    try:
        lattice = np.asarray(d["lattice_mat"], dtype=float).reshape(3, 3)
        coords = np.asarray(d["coords"], dtype=float).reshape(-1, 3)
        elements = list(d["elements"])
        if d.get("cartesian", False):
            return Atoms(elements, positions=coords, cell=lattice, pbc=True)
        return Atoms(elements, scaled_positions=coords, cell=lattice, pbc=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"record {rid}: unreadable JARVIS atoms dict ({type(exc).__name__}: {exc})") from None


def read_jarvis_json(path: Path, target: str, id_key: str = "jid") -> Iterator[Record | DatasetError]:
    """Records of a JSON list of dicts with an ``atoms`` entry, as ``jarvis.db.figshare.data`` returns."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected a JSON list of records, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        rid = str(entry.get(id_key, f"#{i}")) if isinstance(entry, dict) else f"#{i}"
        if not isinstance(entry, dict) or "atoms" not in entry:
            yield DatasetError(f"record {rid}: no 'atoms' entry")
            continue
        yield _guard(rid, lambda: Record(rid, jarvis_atoms(entry["atoms"], rid), {target: _property(entry, target, rid)}))


def read_id_prop(folder: Path, target: str) -> Iterator[Record | DatasetError]:
    """Records of upstream's layout: ``id_prop.csv`` rows ``file,value`` beside the structure files."""
    table = folder / "id_prop.csv"
    if not table.is_file():
        raise DatasetError(f"{folder}: no id_prop.csv")
    with table.open(newline="", encoding="utf-8-sig") as fh:  # Excel writes a BOM
        for row in csv.reader(fh):
            if not row or not row[0].strip():
                continue
            rid = row[0].strip()

            def make(rid: str = rid, row: list[str] = row) -> Record:
                if len(row) < 2:
                    raise DatasetError(f"record {rid}: no value in id_prop.csv")
                value = _number(row[1], f"target {target!r}", rid)
                return Record(rid, _read_structure(folder / rid, rid), {target: value})

            yield _guard(rid, make)


def _read_structure(path: Path, rid: str) -> Atoms:
    try:
        return ase_read(path)
    except UnknownFileTypeError:  # upstream's folders name POSCARs by id, without a suffix (JVASP-1)
        try:
            return ase_read(path, format="vasp")
        except Exception as exc:  # ASE raises many types for unreadable files
            raise DatasetError(f"record {rid}: cannot read structure {path} as a POSCAR, the format of a file "
                               f"whose name gives none ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # ASE raises many types for unreadable files
        raise DatasetError(f"record {rid}: cannot read structure {path} ({type(exc).__name__}: {exc})") from None


def _forcefield_labels(atoms: Atoms, rid: str, energy_key: str = "energy") -> dict[str, Any]:
    """energy/forces/stress from an attached calculator, else from ``info`` / ``arrays``; the energy label is
    the ``energy_key`` property (``energy`` or ``free_energy``)."""
    labels: dict[str, Any] = {}
    calc = atoms.calc
    for key in (energy_key, "forces", "stress"):
        value = None
        if calc is not None:
            try:
                value = calc.get_property(key, atoms, allow_calculation=False)
            except (PropertyNotImplementedError, KeyError):
                value = None
        if value is None:
            value = atoms.arrays.get(key) if key == "forces" else atoms.info.get(key)
        if value is not None:
            labels["energy" if key == energy_key else key] = value
    if "energy" not in labels:
        raise DatasetError(
            f"record {rid}: no {energy_key} label (read from the structure's calculator results, "
            f"info['{energy_key}'], arrays['forces'] and info['stress'] or info['virial'])"
        )
    labels["energy"] = _number(labels["energy"], "energy", rid)
    n = len(atoms)
    if "forces" in labels:
        f = np.asarray(labels["forces"], dtype=float)
        if f.shape != (n, 3):
            raise DatasetError(f"record {rid}: forces must be a ({n}, 3) array, got shape {f.shape}")
        if not np.isfinite(f).all():
            raise DatasetError(f"record {rid}: forces hold non-finite values (atoms {_bad_rows(f)})")
        if np.abs(f).max(initial=0.0) > MAX_PLAUSIBLE_FORCE:
            warnings.warn(
                f"record {rid}: a force component of {np.abs(f).max():.3g} eV/Å; forces are read in eV/Å (ASE's "
                "unit): values in kcal/mol/Å or kJ/mol/Å would be 23x or 96x too large",
                stacklevel=2,
            )
        labels["forces"] = f
    if "stress" not in labels and "virial" in atoms.info:
        labels["stress"] = _stress_from_virial(atoms, atoms.info["virial"], rid)
    if "stress" in labels:
        s = np.asarray(labels["stress"], dtype=float)
        if s.shape == (3, 3):
            s = full_3x3_to_voigt_6_stress(s)
        if s.shape != (6,) or not np.isfinite(s).all():
            raise DatasetError(f"record {rid}: stress must be a finite Voigt 6-vector or 3x3, got shape {s.shape}")
        if np.abs(s).max() > MAX_PLAUSIBLE_STRESS:
            largest = float(np.abs(s).max())
            warnings.warn(
                f"record {rid}: a stress component of {largest:.3g} eV/Å³ ({largest / units.GPa:.0f} GPa); stresses "
                "are read in eV/Å³ (ASE's unit): values in GPa or kbar would be 160x or 1600x too large",
                stacklevel=2,
            )
        labels["stress"] = s
    return labels


#: the force-field energy labels one may train on (ASE property names)
ENERGY_KEYS = ("energy", "free_energy")

#: Stresses above this (eV/Å³; 160 GPa) are more likely a unit mistake than a label.
MAX_PLAUSIBLE_STRESS = 1.0

#: Force components above this (eV/Å) are more likely a unit mistake than a label.
MAX_PLAUSIBLE_FORCE = 100.0


def _bad_rows(values: np.ndarray) -> list[int]:
    return np.flatnonzero(~np.isfinite(values).all(axis=1))[:5].tolist()


def _stress_from_virial(atoms: Atoms, virial: Any, rid: str) -> np.ndarray:
    """Stress (eV/Å³, 3x3, ASE sign) from a virial W (eV, extxyz convention): sigma = -W / V."""
    w = np.asarray(virial, dtype=float)
    if w.shape == (9,):
        w = w.reshape(3, 3)
    if w.shape != (3, 3):
        raise DatasetError(f"record {rid}: virial must be a 3x3 matrix (eV), got shape {w.shape}")
    if not has_3d_cell(atoms):
        raise DatasetError(f"record {rid}: a virial needs a 3D cell to become a stress")
    return -w / atoms.cell.volume


def read_extxyz(path: Path, target: str | None, energy_key: str = "energy") -> Iterator[Record | DatasetError]:
    """Records of an (ext)xyz file; ids from ``info['id']`` else the frame index."""
    try:
        frames = ase_read(path, index=":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise DatasetError(f"{path}: not a readable extxyz file ({type(exc).__name__}: {exc})") from None
    for i, atoms in enumerate(frames):
        rid = str(atoms.info.get("id", i))
        if target is None:
            yield _guard(rid, lambda: Record(rid, atoms, _forcefield_labels(atoms, rid, energy_key)))
        else:
            # ASE moves some keys (energy, free_energy, magmom, ...) from the comment line to a calculator
            source = {**(atoms.calc.results if atoms.calc is not None else {}), **atoms.info}
            yield _guard(rid, lambda: Record(rid, atoms, {target: _property(source, target, rid)}))


def read_ase_db(
    path: Path, target: str | None, id_key: str = "jid", energy_key: str = "energy"
) -> Iterator[Record | DatasetError]:
    """Records of an ASE database; targets from key-value pairs or ``data``, else the stored calculator."""
    from ase.db import connect

    try:
        db = connect(str(path))
        rows = list(db.select())
    except Exception as exc:  # ase.db raises many types for bad files
        raise DatasetError(f"{path}: not a readable ASE database ({type(exc).__name__}: {exc})") from None
    for row in rows:
        rid = str(row.get(id_key, row.id))

        def make(row: Any = row, rid: str = rid) -> Record:
            atoms = row.toatoms(add_additional_information=False)
            atoms.info.update(row.key_value_pairs)  # e.g. a group label for data.group_key
            if target is None:
                return Record(rid, atoms, _forcefield_labels(atoms, rid, energy_key))
            source = {**(row.get("data") or {}), **row.key_value_pairs}
            if target not in source and row.get(target) is not None:  # a column: energy, magmom, charge, ...
                source[target] = row.get(target)
            return Record(rid, atoms, {target: _property(source, target, rid)})

        yield _guard(rid, make)


def _guard(rid: str, make: Callable[[], Record]) -> Record | DatasetError:
    """Build a record, or return the :class:`DatasetError` so the caller can skip or raise it."""
    try:
        return make()
    except DatasetError as exc:
        return exc


def guess_format(path: Path) -> str:
    if path.is_dir():
        return "id_prop"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "jarvis_json"
    if suffix in (".xyz", ".extxyz"):
        return "extxyz"
    if suffix in (".db", ".sqlite"):
        return "ase_db"
    raise DatasetError(f"{path}: cannot tell the dataset format from the name; set data.format (or format= of evaluate_dataset)")


def read_dataset(
    path: str | Path,
    target: str | None = None,
    fmt: str = "auto",
    id_key: str = "jid",
    skip_invalid: bool = False,
    energy_key: str = "energy",
) -> list[Record]:
    """Read every record of a dataset.

    ``target=None`` reads force-field labels (energy, forces, stress; extxyz
    and ASE databases only; the energy label is the ``energy_key`` property,
    ``energy`` or ``free_energy``); otherwise the named property. Bad records raise
    :class:`~alignn_ase.errors.DatasetError` naming the id, or with
    ``skip_invalid`` are skipped and counted in the log. Ids must be unique.
    """
    path = Path(path)
    if energy_key not in ENERGY_KEYS:
        raise DatasetError(f"energy_key must be one of {ENERGY_KEYS}, got {energy_key!r}")
    if not path.exists():
        raise DatasetError(f"dataset {path} does not exist")
    fmt = guess_format(path) if fmt == "auto" else fmt
    if target is None and fmt in ("jarvis_json", "id_prop"):
        raise DatasetError(
            f"{path}: a force field trains on energy/forces/stress labels, which this reader takes from extxyz "
            f"files and ASE databases only; {fmt} datasets hold property targets (set task.target)"
        )
    if fmt == "jarvis_json":
        items = read_jarvis_json(path, target, id_key)
    elif fmt == "id_prop":
        items = read_id_prop(path, target)
    elif fmt == "extxyz":
        items = read_extxyz(path, target, energy_key)
    elif fmt == "ase_db":
        items = read_ase_db(path, target, id_key, energy_key)
    else:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {get_args(DataFormat)}")
    records, skipped = [], 0
    for item in items:
        if isinstance(item, DatasetError):
            if not skip_invalid:
                raise item
            skipped += 1
            logger.warning("skipping invalid record: %s", item)
            continue
        records.append(item)
    if skipped:
        logger.warning("%s: skipped %d invalid record(s), kept %d", path, skipped, len(records))
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DatasetError(f"{path}: record id {dup!r} appears more than once; ids must be unique")
    if not records:
        raise DatasetError(f"{path}: no usable records")
    logger.info("read %d records from %s (%s)", len(records), path, fmt)
    return records

