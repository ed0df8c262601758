"""Elemental reference energies and formation energies from the teacher's relaxed structures.

Shared by ``merge.py`` (its teacher-hole check) and ``make_formation_energy.py`` (the labels).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ase import Atoms


def elemental_references(relaxed: Iterable[Atoms]) -> tuple[dict[str, float], dict[str, str]]:
    """The lowest teacher energy per atom (eV/atom) of each element among relaxed single-element
    structures, and the parent id it comes from.

    Bulk structures (``info["group"]`` elemental or pyxtal: simple lattices, dcdft structures
    including the molecular crystals, random cells) come first; a molecule in a box is the
    reference only of an element with no bulk structure.
    """
    frames = list(relaxed)
    mu: dict[str, float] = {}
    source: dict[str, str] = {}
    for groups in (("elemental", "pyxtal"), ("molecule",)):
        for atoms in frames:
            symbols = set(atoms.get_chemical_symbols())
            if len(symbols) != 1 or atoms.info.get("group") not in groups:
                continue
            (el,) = symbols
            epa = atoms.get_potential_energy() / len(atoms)
            if (el not in mu or source[el].split(":")[0] in groups) and epa < mu.get(el, float("inf")):
                mu[el], source[el] = epa, str(atoms.info.get("parent_id"))
    return mu, source


def formation_energy(atoms: Atoms, mu: dict[str, float]) -> float:
    """(E - sum_el n_el mu_el) / N in eV/atom, E the teacher energy of ``atoms`` (every element must be in ``mu``)."""
    counts = Counter(atoms.get_chemical_symbols())
    return (atoms.get_potential_energy() - sum(n * mu[el] for el, n in counts.items())) / len(atoms)
