"""Build the initial (unrelaxed) structure of a parent spec from :mod:`catalogue`.

Bulk prototypes start from a guessed scale: elemental solids from the WIEN2k
volume per atom in ``ase.collections.dcdft`` (whatever structure that was for),
compounds scaled so that the closest contact equals the sum of covalent radii. The
teacher relaxation fixes the rest. Surfaces and vacancies are cut from a bulk cell
that the caller relaxes first (``relax_bulk``), so their lattice matches the teacher.
Lengths in Å.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import (
    bcc100,
    bcc110,
    bulk,
    diamond100,
    diamond111,
    fcc100,
    fcc111,
    hcp0001,
    make_supercell,
    molecule,
    surface,
)
from ase.collections import dcdft
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal

MOLECULE_BOX = 12.0  # Å, cubic cell around a molecule (non-periodic)
SLAB_VACUUM = 7.0  # Å of vacuum on each side of a slab
SLAB_SIZE = (2, 2, 4)
VACANCY_MIN_ATOMS = 16
VACANCY_MIN_HEIGHT = 5.0  # Å
VACANCY_MAX_ATOMS = 32
PYXTAL_ATTEMPTS = 30
PYXTAL_DRAWS = 400
PYXTAL_MIN_CONTACT = 0.75  # reject pyxtal cells with a pair closer than this x covalent contact

# Internal coordinates of the non-trivial prototypes (typical values; relaxed later).
RUTILE_U = 0.305
SPINEL_X = 0.2625  # origin choice 2
CORUNDUM_Z, CORUNDUM_X = 0.352, 0.306
MX2_2H_Z, MX2_1T_Z = 0.621, 0.25


def _atomic_volume(symbol: str) -> float:
    """WIEN2k equilibrium volume per atom (Å³) of the element's dcdft solid."""
    return float(dcdft.data[symbol]["wien2k_volume"])


def elemental(symbol: str, prototype: str, cubic: bool = False) -> Atoms:
    """fcc, bcc, hcp (ideal c/a), diamond or sc cell of ``symbol`` at its dcdft volume per atom."""
    v = _atomic_volume(symbol)
    if prototype == "hcp":
        a = (4.0 * v / (np.sqrt(3.0) * np.sqrt(8.0 / 3.0))) ** (1 / 3)
        return bulk(symbol, "hcp", a=a, c=a * np.sqrt(8.0 / 3.0))
    per_cube = {"fcc": 4, "bcc": 2, "diamond": 8, "sc": 1}[prototype]
    return bulk(symbol, prototype, a=(per_cube * v) ** (1 / 3), cubic=cubic)


def contact_ratio(atoms: Atoms) -> float:
    """Smallest pair distance divided by the sum of the pair's covalent radii."""
    i, j, d = neighbor_list("ijd", atoms, 6.0)
    if len(d) == 0:
        raise ValueError(f"{atoms.get_chemical_formula()}: no pair within 6 Å")
    z = atoms.numbers
    return float((d / (covalent_radii[z[i]] + covalent_radii[z[j]])).min())


def scale_to_contacts(atoms: Atoms) -> Atoms:
    """Scale the cell so that the closest pair sits at the sum of its covalent radii."""
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell / contact_ratio(atoms), scale_atoms=True)
    return atoms


def compound(prototype: str, species: list[str], cubic: bool = False) -> Atoms:
    """Binary or ternary prototype cell (species in the site order of :mod:`catalogue`), scaled to contacts."""
    a, b = species[0], species[1]
    if prototype in ("rocksalt", "zincblende", "cesiumchloride", "fluorite"):
        formula = f"{a}{b}2" if prototype == "fluorite" else f"{a}{b}"
        atoms = bulk(formula, prototype, a=5.0, cubic=cubic)
    elif prototype == "wurtzite":
        atoms = bulk(f"{a}{b}", "wurtzite", a=3.0, c=3.0 * np.sqrt(8.0 / 3.0))
    elif prototype == "rutile":
        atoms = crystal([a, b], [(0, 0, 0), (RUTILE_U, RUTILE_U, 0)], spacegroup=136,
                        cellpar=[4.6, 4.6, 3.0, 90, 90, 90])
    elif prototype == "L12":
        atoms = crystal([b, a], [(0, 0, 0), (0, 0.5, 0.5)], spacegroup=221, cellpar=[4.0, 4.0, 4.0, 90, 90, 90])
    elif prototype == "corundum":
        atoms = crystal([a, b], [(0, 0, CORUNDUM_Z), (CORUNDUM_X, 0, 0.25)], spacegroup=167,
                        cellpar=[4.8, 4.8, 13.0, 90, 90, 120], primitive_cell=True)
    elif prototype == "perovskite":
        atoms = crystal([a, b, species[2]], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221,
                        cellpar=[4.0, 4.0, 4.0, 90, 90, 90])
    elif prototype == "spinel":
        atoms = crystal([a, b, species[2]], [(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (SPINEL_X,) * 3],
                        spacegroup=227, setting=2, cellpar=[8.1, 8.1, 8.1, 90, 90, 90], primitive_cell=not cubic)
    elif prototype == "2H-MX2":  # P6_3/mmc, M at 2c, X at 4f
        atoms = crystal([a, b], [(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, MX2_2H_Z)], spacegroup=194,
                        cellpar=[3.2, 3.2, 12.3, 90, 90, 120])
    elif prototype == "1T-MX2":  # P-3m1, M at 1a, X at 2d
        atoms = crystal([a, b], [(0, 0, 0), (1 / 3, 2 / 3, MX2_1T_Z)], spacegroup=164,
                        cellpar=[3.4, 3.4, 5.8, 90, 90, 120])
    elif prototype == "hBN":  # P6_3/mmc, AA' stacking
        atoms = crystal([a, b], [(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, 0.75)], spacegroup=194,
                        cellpar=[2.5, 2.5, 6.66, 90, 90, 120])
    elif prototype == "heusler":
        atoms = crystal([a, b, species[2]], [(0.25, 0.25, 0.25), (0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225,
                        cellpar=[5.8, 5.8, 5.8, 90, 90, 90], primitive_cell=not cubic)
    else:
        raise ValueError(f"unknown compound prototype {prototype!r}")
    return scale_to_contacts(atoms)


def bulk_cell(prototype: str, species: list[str], cubic: bool = False) -> Atoms:
    """Elemental or compound bulk cell (conventional cubic cell when ``cubic`` and the lattice is cubic)."""
    if len(species) == 1 and prototype in ("fcc", "bcc", "hcp", "diamond", "sc"):
        return elemental(species[0], prototype, cubic=cubic and prototype != "hcp")
    if prototype == "dcdft":  # the element's structure in ase.collections.dcdft, at WIEN2k's volume
        return dcdft[species[0]].copy()
    return compound(prototype, species, cubic=cubic)


def random_crystal(species: list[str], counts: list[int], rng: np.random.Generator) -> Atoms:
    """Random symmetric crystal from pyxtal.

    Space groups are drawn from ``rng`` (up to ``PYXTAL_DRAWS``); each one compatible
    with ``counts`` gets a pyxtal attempt (up to ``PYXTAL_ATTEMPTS``), and a cell with a
    pair closer than ``PYXTAL_MIN_CONTACT`` x the covalent contact is rejected.
    """
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    last: Exception | None = None
    attempts = 0
    for _ in range(PYXTAL_DRAWS):
        group = int(rng.integers(2, 231))
        state = int(rng.integers(0, 2**31 - 1))
        if not Group(group).check_compatible(counts)[0]:
            continue
        attempts += 1
        if attempts > PYXTAL_ATTEMPTS:
            break
        xtal = pyxtal()
        try:
            xtal.from_random(3, group, species, counts, random_state=state)
        except Exception as exc:  # pyxtal raises many types when it cannot place the atoms
            last = exc
            continue
        if not xtal.valid:
            continue
        atoms = xtal.to_ase()
        if contact_ratio(atoms) < PYXTAL_MIN_CONTACT:
            last = ValueError(f"space group {group}: atoms closer than {PYXTAL_MIN_CONTACT} x covalent contact")
            continue
        atoms.info["spacegroup"] = group
        return atoms
    raise RuntimeError(f"pyxtal found no structure for {species} x {counts}: {last}")


def slab(facet: str, relaxed: Atoms, species: list[str]) -> Atoms:
    """Slab (``SLAB_SIZE``, ``SLAB_VACUUM`` Å each side, pbc in-plane only) cut from a relaxed bulk cell."""
    if facet == "rocksalt100":
        a = relaxed.get_volume() ** (1 / 3)  # relaxed conventional cubic cell
        atoms = surface(bulk(f"{species[0]}{species[1]}", "rocksalt", a=a, cubic=True), (1, 0, 0), 2,
                        vacuum=SLAB_VACUUM)
        atoms.pbc = (True, True, False)
        return atoms
    el = species[0]
    if facet == "hcp0001":
        a, c = relaxed.cell.lengths()[0], relaxed.cell.lengths()[2]
        return hcp0001(el, SLAB_SIZE, a=a, c=c, vacuum=SLAB_VACUUM)
    a = relaxed.get_volume() ** (1 / 3)  # relaxed conventional cubic cell
    build = {"fcc111": fcc111, "fcc100": fcc100, "bcc110": bcc110, "bcc100": bcc100,
             "diamond100": diamond100, "diamond111": diamond111}[facet]
    return build(el, SLAB_SIZE, a=a, vacuum=SLAB_VACUUM)


def heights(cell: np.ndarray) -> np.ndarray:
    """Perpendicular heights (Å) of a cell between opposite faces."""
    v = abs(np.linalg.det(cell))
    return v / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def grow(atoms: Atoms, min_atoms: int, min_height: float, max_atoms: int = 64) -> Atoms:
    """Diagonal supercell repeated along the thinnest direction until ``min_atoms`` and ``min_height`` (Å) hold."""
    reps = np.ones(3, dtype=int)
    while True:
        h = heights(atoms.cell.array * reps[:, None])
        n = len(atoms) * reps.prod()
        if n >= min_atoms and h.min() >= min_height:
            break
        axis = int(np.argmin(h))
        if n * (reps[axis] + 1) // reps[axis] > max_atoms:
            break
        reps[axis] += 1
    return make_supercell(atoms, np.diag(reps)) if reps.prod() > 1 else atoms.copy()


def vacancy(relaxed: Atoms, remove_symbol: str) -> Atoms:
    """Supercell of a relaxed bulk cell with the first ``remove_symbol`` atom deleted."""
    cell = grow(relaxed, VACANCY_MIN_ATOMS, VACANCY_MIN_HEIGHT, VACANCY_MAX_ATOMS)
    del cell[[a.index for a in cell if a.symbol == remove_symbol][0]]
    return cell


def small_molecule(name: str) -> Atoms:
    """G2 molecule centred in a ``MOLECULE_BOX`` Å cube, non-periodic."""
    atoms = molecule(name)
    atoms.cell = [MOLECULE_BOX] * 3
    atoms.center()
    atoms.pbc = False
    return atoms


def build_parent(spec: dict, rng: np.random.Generator, relax_bulk: Callable[[Atoms], Atoms]) -> Atoms:
    """Initial structure of ``spec``; ``relax_bulk`` relaxes the bulk that surfaces/vacancies are cut from."""
    group, proto, species = spec["group"], spec["prototype"], spec["species"]
    if group in ("elemental", "binary", "ternary"):
        return bulk_cell(proto, species)
    if group == "pyxtal":
        return random_crystal(species, spec["counts"], rng)
    if group == "surface":
        return slab(proto, relax_bulk(bulk_cell(spec["bulk"], species, cubic=True)), species)
    if group == "vacancy":
        return vacancy(relax_bulk(bulk_cell(spec["bulk"], species, cubic=True)), species[spec["remove"]])
    if group == "molecule":
        return small_molecule(proto)
    raise ValueError(f"unknown parent group {group!r}")
