"""Atom input features: the 92-d CGCNN table and the atomic number.

Upstream ALIGNN builds node inputs with ``jarvis.core.specie.get_node_attributes``;
the CGCNN table is shipped here as package data (``data/cgcnn_features.json``,
written by ``scripts/make_cgcnn_table.py``), so jarvis-tools is not needed at run
time. Unlike upstream, an element outside the table raises instead of being
silently mapped to another element.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import torch
from ase.data import atomic_numbers, chemical_symbols

from .errors import InvalidArgumentError, UnsupportedElementError

ATOM_FEATURES = ("cgcnn", "atomic_number")


@lru_cache(maxsize=None)
def _cgcnn_table() -> dict[str, list[float]]:
    text = resources.files("alignn_ase").joinpath("data/cgcnn_features.json").read_text()
    return json.loads(text)


def feature_table(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(table, known)`` indexed by atomic number.

    ``table`` has shape (119, F) in float64 and ``known`` (119,) is a bool mask
    of the elements the table covers. ``kind`` is ``"cgcnn"`` (F = 92, Z = 1..100)
    or ``"atomic_number"`` (F = 1, the value Z itself, Z = 1..118).
    """
    n = len(chemical_symbols)
    if kind == "cgcnn":
        data = _cgcnn_table()
        table = torch.zeros(n, 92, dtype=torch.float64)
        known = torch.zeros(n, dtype=torch.bool)
        for symbol, row in data.items():
            z = atomic_numbers[symbol]
            table[z] = torch.tensor(row, dtype=torch.float64)
            known[z] = True
        return table, known
    if kind == "atomic_number":
        table = torch.arange(n, dtype=torch.float64).unsqueeze(1)
        known = torch.ones(n, dtype=torch.bool)
        known[0] = False
        return table, known
    raise InvalidArgumentError(f"unknown atom_features {kind!r}; expected one of {ATOM_FEATURES}")


def check_elements(numbers: torch.Tensor, known: torch.Tensor) -> None:
    """Raise :class:`UnsupportedElementError` naming every element not in ``known``."""
    z = numbers.detach().cpu()
    bad = (z < 0) | (z >= known.shape[0])
    bad |= ~known.to(z.device)[z.clamp(0, known.shape[0] - 1)]
    if bool(bad.any()):
        unknown = sorted({int(v) for v in z[bad]})
        names = [chemical_symbols[v] if 0 <= v < len(chemical_symbols) else f"Z={v}" for v in unknown]
        allowed = [chemical_symbols[int(i)] for i in torch.nonzero(known).flatten()]
        raise UnsupportedElementError(
            f"element(s) {', '.join(names)} not covered by this model "
            f"(it knows {len(allowed)} elements: {allowed[0]}..{allowed[-1]})"
            if allowed
            else f"element(s) {', '.join(names)} not covered by this model"
        )


def element_mask(symbols: list[str] | None, known: torch.Tensor) -> torch.Tensor:
    """Restrict ``known`` to ``symbols`` (a model's trained elements); None keeps it."""
    if symbols is None:
        return known
    mask = torch.zeros_like(known)
    for s in symbols:
        if s not in atomic_numbers:
            raise InvalidArgumentError(f"unknown element symbol {s!r} in the model's element list")
        mask[atomic_numbers[s]] = True
    return mask & known
