"""Bond graph and line graph of a structure, as torch tensors.

Data flow: ``ase.Atoms`` -> :func:`build_graph` (validation, neighbour list,
line graph) -> :class:`AtomGraph` -> model. Geometry stays differentiable:
bond vectors are computed in torch from positions and cell
(:meth:`AtomGraph.bond_vectors`), so autograd reaches both.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from .errors import InvalidArgumentError, InvalidStructureError
from .neighbors import (
    SELF_TOLERANCE,
    Edges,
    all_pairs,
    knearest_edges,
    line_graph,
    nearest_per_source,
    upstream_radius_edges,
    within_cutoff,
)

Strategy = Literal["radius", "pure_torch", "radius_graph", "k-nearest"]
STRATEGIES: tuple[str, ...] = ("radius", "pure_torch", "radius_graph", "k-nearest")


@dataclass(frozen=True)
class GraphSettings:
    """How a model wants its graphs built.

    Attributes:
        strategy: neighbour strategy (see :mod:`alignn_ase.neighbors`).
        cutoff: bond cutoff radius (Å).
        max_neighbors: neighbour count for ``k-nearest`` / ``pure_torch``; for ``pure_torch``
            None means no cap (upstream: ``max_neighbors`` null or <= 0).
        use_canonize: deduplicate ``k-nearest`` pairs as undirected edges.
        three_body_cutoff: only bonds with length <= this (Å) form line-graph
            pairs; ``None`` lets every bond take part.
        cutoff_extra: radius increment (Å) of upstream's ``radius_graph``.
    """

    strategy: Strategy = "radius"
    cutoff: float = 5.0
    max_neighbors: int | None = 12
    use_canonize: bool = True
    three_body_cutoff: float | None = None
    cutoff_extra: float = 3.5

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidArgumentError(f"unknown neighbor strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if not (np.isfinite(self.cutoff) and self.cutoff > 0):
            raise InvalidArgumentError(f"cutoff must be a positive number of Å, got {self.cutoff!r}")
        if self.max_neighbors is None and self.strategy == "k-nearest":
            raise InvalidArgumentError("the k-nearest strategy needs max_neighbors")
        if self.max_neighbors is not None and self.max_neighbors < 1:
            raise InvalidArgumentError(f"max_neighbors must be >= 1 (or None), got {self.max_neighbors!r}")
        if self.three_body_cutoff is not None and not (0 < self.three_body_cutoff <= self.cutoff):
            raise InvalidArgumentError(
                f"three_body_cutoff must lie in (0, cutoff={self.cutoff}] Å, got {self.three_body_cutoff!r}"
            )


#: Cells with a smaller volume (Å³) count as no cell: a stress is defined only at or above it.
MIN_CELL_VOLUME = 1e-8
#: Structures denser than this (atoms/Å³, around an atom within the cut-off) are refused: no solid comes near
#: (diamond 0.18, and ~0.3 at 1 TPa), and the line graph of such a structure (its triplets grow as the square
#: of the neighbours) would exhaust the memory.
MAX_NUMBER_DENSITY = 0.5
#: the radius (Å) within which an atom's neighbours are counted against it (diamond at half its volume has
#: ~100 there, the limit is 134)
DENSITY_PROBE_RADIUS = 4.0


def has_3d_cell(atoms: Atoms) -> bool:
    """Whether ``atoms`` has a cell of non-zero volume (>= :data:`MIN_CELL_VOLUME`), so that a stress is defined."""
    return bool(atoms.cell.volume >= MIN_CELL_VOLUME)


def is_3d_periodic(atoms: Atoms) -> bool:
    """Whether ``atoms`` is periodic along all three cell vectors and its cell has a non-zero volume:
    what cell relaxation, NPT dynamics, phonons and equations of state need."""
    return bool(atoms.pbc.all()) and has_3d_cell(atoms)


def validate_atoms(atoms: Atoms) -> None:
    """Raise :class:`InvalidStructureError` for input no model can take.

    Rejects: not an ``ase.Atoms``; no atoms; NaN or infinite positions or
    cell; a periodic direction whose cell vector is zero, or periodic cell
    vectors that are linearly dependent.
    """
    if not isinstance(atoms, Atoms):
        raise InvalidStructureError(f"expected an ase.Atoms object, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise InvalidStructureError("the structure has no atoms")
    pos = atoms.positions
    if not np.isfinite(pos).all():
        i = int(np.flatnonzero(~np.isfinite(pos).all(axis=1))[0])
        raise InvalidStructureError(f"atom {i} ({atoms[i].symbol}) has a non-finite position {pos[i].tolist()}")
    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise InvalidStructureError(f"the cell has non-finite entries: {cell.tolist()}")
    pbc = atoms.pbc
    periodic = cell[pbc]
    if len(periodic) == 0:
        return
    sv = np.linalg.svd(periodic, compute_uv=False)
    if sv.min() >= 1e-6 * max(sv.max(), 1.0):
        return
    lengths = np.linalg.norm(cell, axis=1)
    for axis in np.flatnonzero(pbc):
        if lengths[axis] < 1e-6:
            raise InvalidStructureError(
                f"direction {axis} is periodic but cell vector {axis} is {cell[axis].tolist()} (zero length); "
                "give the structure a cell or set pbc=False along it"
            )
    raise InvalidStructureError(
        f"the periodic cell vectors {periodic.tolist()} are linearly dependent, or their lengths differ by more "
        "than a factor of 1e6 (degenerate cell)"
    )


@dataclass
class AtomGraph:
    """One structure, or a batch of structures as a disjoint union.

    Shapes: N atoms, E directed bonds, T line-graph pairs, B structures.
    Integer tensors are int64; ``shift`` has the positions' dtype.

    Attributes:
        positions: (N, 3) Cartesian positions, Å.
        cell: (B, 3, 3) cell vectors as rows, Å (zero for a molecule).
        pbc: (B, 3) periodic directions.
        numbers: (N,) atomic numbers.
        src, dst: (E,) bond end points; bond vector pos[dst] - pos[src] + shift @ cell.
        shift: (E, 3) integer cell shifts.
        triplet_e1, triplet_e2: (T,) bonds u->v and v->w of each line-graph pair.
        atom_graph: (N,) structure index of each atom.
        edge_graph: (E,) structure index of each bond.
        n_atoms: (B,) atoms per structure.
    """

    positions: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    numbers: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    shift: torch.Tensor
    triplet_e1: torch.Tensor
    triplet_e2: torch.Tensor
    atom_graph: torch.Tensor
    edge_graph: torch.Tensor
    n_atoms: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.src.shape[0])

    def volume(self) -> torch.Tensor:
        """(B,) cell volumes, Å³ (0 for a structure without a 3D cell)."""
        return torch.linalg.det(self.cell).abs()

    def bond_vectors(self, positions: torch.Tensor | None = None, cell: torch.Tensor | None = None) -> torch.Tensor:
        """(E, 3) bond vectors pos[dst] - pos[src] + shift @ cell, Å, differentiable in both."""
        pos = self.positions if positions is None else positions
        c = self.cell if cell is None else cell
        offsets = torch.bmm(self.shift.unsqueeze(1), c.index_select(0, self.edge_graph)).squeeze(1)
        return pos.index_select(0, self.dst) - pos.index_select(0, self.src) + offsets


def _grown_edges(atoms: Atoms, settings: GraphSettings, pairs: Edges) -> Edges:
    """Bonds of one structure for the strategies whose radius grows per structure (``k-nearest``,
    ``radius_graph``); ``pairs``: every pair within the cut-off."""
    pos, cell, pbc, cutoff = atoms.positions, atoms.cell.array, atoms.pbc, settings.cutoff
    if settings.strategy == "k-nearest":
        return knearest_edges(pos, cell, pbc, cutoff, settings.max_neighbors, settings.use_canonize, pairs)
    return upstream_radius_edges(pos, cell, pbc, cutoff, settings.cutoff_extra, pairs)


def _join(edge_lists: Sequence[Edges], offsets: np.ndarray) -> Edges:
    """Edges of several structures as one list, atom indices shifted by each structure's ``offsets``."""
    return Edges(
        np.concatenate([e.src + o for e, o in zip(edge_lists, offsets)]),
        np.concatenate([e.dst + o for e, o in zip(edge_lists, offsets)]),
        np.concatenate([e.shift for e in edge_lists]),
        np.concatenate([e.distance for e in edge_lists]),
    )


def check_min_distance(numbers: np.ndarray, pairs: Edges, min_distance: float) -> None:
    """Raise :class:`InvalidStructureError` naming the closest pair if two atoms
    (or an atom and its own periodic image) are closer than ``min_distance`` (Å).

    ``pairs`` must hold every directed pair closer than ``min_distance``
    (e.g. :func:`~alignn_ase.neighbors.all_pairs` at a cutoff >= it).
    """
    if min_distance <= 0:
        return
    close = np.flatnonzero((pairs.distance < min_distance) & (pairs.src <= pairs.dst))
    if len(close) == 0:
        return
    k = int(close[np.argmin(pairs.distance[close])])
    a, b = int(pairs.src[k]), int(pairs.dst[k])
    sa, sb = chemical_symbols[int(numbers[a])], chemical_symbols[int(numbers[b])]
    what = f"atom {a} ({sa}) and its periodic image {pairs.shift[k].tolist()}" if a == b else (
        f"atoms {a} ({sa}) and {b} ({sb})"
    )
    src, dst = pairs.src[close], pairs.dst[close]
    n_pairs = int(np.sum(src < dst)) + int(np.sum(src == dst)) // 2  # a self-image pair comes as +S and -S
    raise InvalidStructureError(
        f"{what} are {pairs.distance[k]:.4f} Å apart, closer than this model's minimum distance {min_distance} Å "
        f"({n_pairs} such pair(s))"
    )


def check_skin(skin: float, settings: GraphSettings | None = None) -> float:
    """``skin`` (Å) as a float; raise :class:`InvalidArgumentError` unless it is finite and >= 0,
    and (given ``settings``) unless a non-zero skin comes with the ``"radius"`` strategy and is at most the
    cut-off (a larger one only multiplies the pairs gathered; 0.5-2 Å is typical)."""
    if isinstance(skin, bool) or not isinstance(skin, numbers.Real) or not np.isfinite(skin) or skin < 0:
        raise InvalidArgumentError(f"skin must be a finite number >= 0 Å, got {skin!r}")
    if skin > 0 and settings is not None and settings.strategy != "radius":
        raise InvalidArgumentError(f"a skin needs the 'radius' neighbor strategy, not {settings.strategy!r}")
    if settings is not None and skin > settings.cutoff:
        raise InvalidArgumentError(
            f"skin {skin:g} Å exceeds the cut-off ({settings.cutoff:g} Å): it would only multiply the pairs "
            "gathered; 0.5-2 Å is typical"
        )
    return float(skin)


def _pairs_checked(atoms: Atoms, cutoff: float, min_distance: float) -> Edges:
    """Validate ``atoms`` and return every pair within ``cutoff`` (Å) after the minimum-distance and density
    checks (:func:`check_cell_density`, :func:`check_neighbour_density`)."""
    validate_atoms(atoms)
    radius = max(cutoff, min_distance)
    check_cell_density(atoms, radius)
    pairs = all_pairs(atoms.positions, atoms.cell.array, atoms.pbc, radius)
    check_min_distance(atoms.numbers, pairs, min_distance)
    check_neighbour_density(atoms, pairs, radius)
    return pairs


def _neighbour_limit(radius: float) -> float:
    """Neighbours within ``radius`` (Å) at :data:`MAX_NUMBER_DENSITY`."""
    return MAX_NUMBER_DENSITY * 4.0 / 3.0 * np.pi * radius**3


def check_cell_density(atoms: Atoms, cutoff: float) -> None:
    """Raise :class:`InvalidStructureError` if the cell alone puts more atoms within ``cutoff`` (Å) of each atom
    than :data:`MAX_NUMBER_DENSITY` allows (atoms per volume of a 3D cell; images of one atom along a 1D or 2D
    lattice): a cell far too small, whose neighbour list would exhaust the memory. Needs no neighbour list."""
    periodic = atoms.cell.array[atoms.pbc]
    if len(periodic) == 3:
        volume = abs(np.linalg.det(periodic))
        count = len(atoms) / volume * 4.0 / 3.0 * np.pi * cutoff**3
        what = f"the cell holds {len(atoms)} atoms in {volume:.3g} Å³, ~{count:.0f} within {cutoff:g} Å of each"
    elif len(periodic) in (1, 2):
        measure = np.linalg.norm(np.cross(*periodic)) if len(periodic) == 2 else np.linalg.norm(periodic[0])
        count = (np.pi * cutoff**2 if len(periodic) == 2 else 2.0 * cutoff) / measure
        what = f"the cell's {len(periodic)}D lattice puts ~{count:.0f} periodic images of each atom within {cutoff:g} Å"
    else:
        return
    limit = _neighbour_limit(cutoff)
    if count > limit:
        raise InvalidStructureError(
            f"{what}, more than {limit:.0f} (a number density of {MAX_NUMBER_DENSITY} atoms/Å³; diamond has "
            "0.18): the cell is far too small; check its units (Å) and lengths"
        )


def check_neighbour_density(atoms: Atoms, pairs: Edges, cutoff: float) -> None:
    """Raise :class:`InvalidStructureError` if an atom has more neighbours within :data:`DENSITY_PROBE_RADIUS`
    (or ``cutoff`` if shorter; ``pairs``: every pair within ``cutoff``, Å) than :data:`MAX_NUMBER_DENSITY`
    allows: a local density that a cluster smaller than the cut-off does not dilute."""
    probe = min(cutoff, DENSITY_PROBE_RADIUS)
    limit = _neighbour_limit(probe)
    counts = np.bincount(pairs.src[pairs.distance <= probe], minlength=len(atoms))
    i = int(np.argmax(counts))
    if counts[i] > limit:
        raise InvalidStructureError(
            f"atom {i} ({atoms[i].symbol}) has {counts[i]} neighbours within {probe:g} Å, more than {limit:.0f} (a "
            f"number density of {MAX_NUMBER_DENSITY} atoms/Å³; diamond has 0.18): far denser than any material; "
            "check the units of the positions (Å) and the cell"
        )


def build_graphs(
    structures: Sequence[Atoms],
    settings: GraphSettings,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    min_distance: float = 0.0,
) -> AtomGraph:
    """The bond graphs and line graphs of several structures as one disjoint graph.

    The same graph as ``batch_graphs([build_graph(a, ...) for a in structures])``,
    with the line graph and the tensors made once for all structures. Each
    structure is validated first (:func:`validate_atoms`, and
    :func:`check_min_distance` with ``min_distance`` in Å); one neighbour-list
    call per structure serves both the distance check and the bonds.
    """
    if len(structures) == 0:
        raise InvalidArgumentError("cannot build a graph of an empty list of structures")
    pair_lists = [_pairs_checked(atoms, settings.cutoff, min_distance) for atoms in structures]
    return _graph_from_pairs(structures, pair_lists, settings, dtype, device)


def _graph_from_pairs(
    structures: Sequence[Atoms],
    pair_lists: Sequence[Edges],
    settings: GraphSettings,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> AtomGraph:
    """The graph of ``structures`` from, for each, every pair within ``settings.cutoff`` or further (with its
    distance at the structure's geometry): bonds per the strategy, then the line graph."""
    n_atoms = np.array([len(a) for a in structures])
    offsets = np.cumsum(n_atoms) - n_atoms
    n_total = int(n_atoms.sum())
    if settings.strategy in ("radius", "pure_torch"):
        # selections within each source atom's bonds: made once on all structures' pairs together
        edges = within_cutoff(_join(pair_lists, offsets), settings.cutoff)
        if settings.strategy == "pure_torch" and settings.max_neighbors is not None:
            edges = nearest_per_source(edges, n_total, settings.max_neighbors)
    else:
        edges = _join([_grown_edges(a, settings, p) for a, p in zip(structures, pair_lists)], offsets)
    allowed = None
    if settings.three_body_cutoff is not None and settings.three_body_cutoff < settings.cutoff:
        allowed = edges.distance <= settings.three_body_cutoff
    e1, e2 = line_graph(edges.src, edges.dst, n_total, allowed, pair_edge_with_itself=pairs_bond_with_itself(settings))
    return _as_graph(structures, edges, e1, e2, dtype, device)


def _as_graph(
    structures: Sequence[Atoms],
    edges: Edges,
    e1: np.ndarray,
    e2: np.ndarray,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> AtomGraph:
    """Tensors of structures joined with their (already offset) bonds and line graph; a bond belongs to
    the structure of its source atom."""

    def long(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=device)

    def real(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    n_atoms = np.array([len(a) for a in structures])
    atom_graph = np.repeat(np.arange(len(structures)), n_atoms)
    return AtomGraph(
        positions=real(np.concatenate([a.positions for a in structures])),
        cell=real(np.stack([a.cell.array for a in structures])),
        pbc=torch.as_tensor(np.stack([a.pbc for a in structures]), dtype=torch.bool, device=device),
        numbers=long(np.concatenate([a.numbers for a in structures])),
        src=long(edges.src),
        dst=long(edges.dst),
        shift=real(edges.shift),
        triplet_e1=long(e1),
        triplet_e2=long(e2),
        atom_graph=long(atom_graph),
        edge_graph=long(atom_graph[edges.src]),
        n_atoms=long(n_atoms),
    )


def build_graph(
    atoms: Atoms,
    settings: GraphSettings,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    min_distance: float = 0.0,
) -> AtomGraph:
    """Build the bond graph and line graph of ``atoms`` as tensors.

    The structure is validated first (:func:`validate_atoms`, and
    :func:`check_min_distance` with ``min_distance`` in Å). One neighbour-list
    call serves both the distance check and the bonds.
    """
    return build_graphs([atoms], settings, dtype, device, min_distance)


def pairs_bond_with_itself(settings: GraphSettings) -> bool:
    """Whether the line graph pairs a bond from an atom to its own periodic image (u -> u + S) with itself.

    That pair is the straight angle at u + S between u -> u + S and u + S -> u + 2S, which a supercell holds
    as a pair of two different bonds: without it a cell with a lattice vector shorter than the three-body
    cut-off (primitive fcc or bcc metals) sees fewer angles per atom than its supercell, and a model's energy
    is not extensive. alignn-ase's ``radius`` graphs and upstream's pure-torch builder pair it; upstream's
    DGL graphs (``k-nearest``, ``radius_graph``) do not, and their checkpoints keep that convention.
    """
    return settings.strategy in ("radius", "pure_torch")


def _pairs_at(pairs: Edges, shift: np.ndarray, atoms: Atoms) -> Edges:
    """``pairs`` (atom indices and cell shifts; ``shift``: the shifts as floats) with their distances (Å) at
    ``atoms``' positions and cell."""
    vectors = atoms.positions[pairs.dst] - atoms.positions[pairs.src] + shift @ atoms.cell.array
    return pairs._replace(distance=np.sqrt(np.einsum("ij,ij->i", vectors, vectors)))


@dataclass
class _Reference:
    """The geometry a skin bond list was built at."""

    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    numbers: np.ndarray


class GraphCache:
    """A model's graph across calls, with neighbour-list reuse (Verlet skin).

    With ``skin`` = 0 every call builds the graph from scratch
    (:func:`build_graph`). With ``skin`` > 0 (Å; ``"radius"`` strategy only,
    i.e. models whose graph is every bond within the cut-off) the bond list is
    gathered out to ``cutoff + skin`` and rebuilt only when a bond that was
    outside ``cutoff + skin`` at the last build could have come within
    ``cutoff``. Each call recomputes the pairs' lengths from the new positions
    and cell with the stored cell shifts, checks the minimum distance, and
    builds the graph from them with the code of a fresh build (bonds within
    the cut-off, their line graph; numpy on the host, one copy to the device):
    the graph a fresh build gives, so results agree to float rounding.

    Rebuild test: write the new cell as ``cell_new = cell_old @ A``; with
    ``delta`` the largest distance of an atom from its old position mapped by
    ``A`` and ``sigma`` the smallest singular value of ``A``, no outside bond
    can come within the cut-off ``c`` while ``sigma (c + skin) - 2 delta >= c``
    (for a fixed cell: every atom moved less than skin / 2). A change of atom
    count, species or periodicity, or of a cell that is not invertible,
    always rebuilds.

    Attributes:
        n_builds: neighbour lists built from scratch so far.
    """

    def __init__(
        self,
        settings: GraphSettings,
        dtype: torch.dtype,
        device: torch.device | str | None,
        min_distance: float,
        skin: float = 0.0,
    ):
        self.skin = check_skin(skin, settings)
        if self.skin > 0 and not min_distance > SELF_TOLERANCE:
            # a pair that (nearly) overlaps at a build is left out of the bond list, and would stay out when the
            # atoms move apart; a minimum distance above the self tolerance rejects such structures instead
            raise InvalidArgumentError(
                f"a skin needs min_distance > {SELF_TOLERANCE} Å (got {min_distance}); use skin=0 without one"
            )
        self.settings = settings
        self.dtype = dtype
        self.device = device
        self.min_distance = float(min_distance)
        self.n_builds = 0
        self._pairs: Edges | None = None  # every pair within cutoff + skin at the last build
        self._shift = np.zeros((0, 3))
        self._reference: _Reference | None = None

    def __call__(self, atoms: Atoms) -> AtomGraph:
        """The graph of ``atoms`` (validated; see :func:`build_graph`)."""
        if self.skin == 0:
            self.n_builds += 1
            return build_graph(atoms, self.settings, self.dtype, self.device, self.min_distance)
        # Reuse needs the skin test passed, which implies input the last build validated: the same atoms and
        # periodicity, finite positions, and a cell equal to that build's or a finite, non-singular deformation
        # of it. Anything else rebuilds, which validates.
        if self._pairs is None or not isinstance(atoms, Atoms) or not self._within_skin(atoms):
            self._pairs = _pairs_checked(atoms, self.settings.cutoff + self.skin, self.min_distance)
            self._shift = self._pairs.shift.astype(np.float64)  # a float matrix product at every reuse
            self._reference = _Reference(
                atoms.positions.copy(), atoms.cell.array.copy(), atoms.pbc.copy(), atoms.numbers.copy()
            )
            self.n_builds += 1
            pairs = self._pairs
        else:
            pairs = _pairs_at(self._pairs, self._shift, atoms)
            check_min_distance(atoms.numbers, pairs, self.min_distance)
        return _graph_from_pairs([atoms], [pairs], self.settings, self.dtype, self.device)

    def _within_skin(self, atoms: Atoms) -> bool:
        ref = self._reference
        assert ref is not None
        if (
            len(atoms) != len(ref.numbers)
            or not np.array_equal(atoms.numbers, ref.numbers)
            or not np.array_equal(atoms.pbc, ref.pbc)
        ):
            return False
        cell = atoms.cell.array
        if np.array_equal(cell, ref.cell):
            moved, sigma = atoms.positions - ref.positions, 1.0
        elif not np.isfinite(cell).all():
            return False
        elif abs(np.linalg.det(ref.cell)) > 1e-9:
            deformation = np.linalg.solve(ref.cell, cell)
            moved = atoms.positions - ref.positions @ deformation
            sigma = float(np.linalg.svd(deformation, compute_uv=False).min())
        else:
            return False
        delta = float(np.sqrt(np.max(np.einsum("ij,ij->i", moved, moved))))
        c = self.settings.cutoff
        return sigma * (c + self.skin) - 2 * delta >= c


def batch_graphs(graphs: Sequence[AtomGraph]) -> AtomGraph:
    """Join graphs into one disjoint graph, offsetting atom, bond and structure indices."""
    if len(graphs) == 0:
        raise InvalidArgumentError("cannot batch an empty list of graphs")
    if len(graphs) == 1:
        return graphs[0]
    atom_offsets = np.cumsum([0] + [g.num_atoms for g in graphs[:-1]])
    edge_offsets = np.cumsum([0] + [g.num_edges for g in graphs[:-1]])
    graph_offsets = np.cumsum([0] + [g.num_graphs for g in graphs[:-1]])
    cat = torch.cat
    return AtomGraph(
        positions=cat([g.positions for g in graphs]),
        cell=cat([g.cell for g in graphs]),
        pbc=cat([g.pbc for g in graphs]),
        numbers=cat([g.numbers for g in graphs]),
        src=cat([g.src + int(o) for g, o in zip(graphs, atom_offsets)]),
        dst=cat([g.dst + int(o) for g, o in zip(graphs, atom_offsets)]),
        shift=cat([g.shift for g in graphs]),
        triplet_e1=cat([g.triplet_e1 + int(o) for g, o in zip(graphs, edge_offsets)]),
        triplet_e2=cat([g.triplet_e2 + int(o) for g, o in zip(graphs, edge_offsets)]),
        atom_graph=cat([g.atom_graph + int(o) for g, o in zip(graphs, graph_offsets)]),
        edge_graph=cat([g.edge_graph + int(o) for g, o in zip(graphs, graph_offsets)]),
        n_atoms=cat([g.n_atoms for g in graphs]),
    )
