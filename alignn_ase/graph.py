"""Bond graph and line graph of a structure, as torch tensors.

Data flow: ``ase.Atoms`` -> :func:`build_graph` (validation, neighbour list,
line graph) -> :class:`AtomGraph` -> model. Geometry stays differentiable:
bond vectors are computed in torch from positions and cell
(:meth:`AtomGraph.bond_vectors`), so autograd reaches both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from ase import Atoms
from vesin import NeighborList

from .errors import InvalidArgumentError, InvalidStructureError
from .neighbors import Edges, knearest_edges, line_graph, nearest_per_source, radius_edges, upstream_radius_edges

Strategy = Literal["radius", "pure_torch", "radius_graph", "k-nearest"]
STRATEGIES: tuple[str, ...] = ("radius", "pure_torch", "radius_graph", "k-nearest")


@dataclass(frozen=True)
class GraphSettings:
    """How a model wants its graphs built.

    Attributes:
        strategy: neighbour strategy (see :mod:`alignn_ase.neighbors`).
        cutoff: bond cutoff radius (Å).
        max_neighbors: neighbour count for ``k-nearest`` / ``pure_torch``.
        use_canonize: deduplicate ``k-nearest`` pairs as undirected edges.
        three_body_cutoff: only bonds with length <= this (Å) form line-graph
            pairs; ``None`` lets every bond take part.
        cutoff_extra: radius increment (Å) of upstream's ``radius_graph``.
    """

    strategy: Strategy = "radius"
    cutoff: float = 5.0
    max_neighbors: int = 12
    use_canonize: bool = True
    three_body_cutoff: float | None = None
    cutoff_extra: float = 3.5

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidArgumentError(f"unknown neighbor strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if not (np.isfinite(self.cutoff) and self.cutoff > 0):
            raise InvalidArgumentError(f"cutoff must be a positive number of Å, got {self.cutoff!r}")
        if self.max_neighbors < 1:
            raise InvalidArgumentError(f"max_neighbors must be >= 1, got {self.max_neighbors!r}")
        if self.three_body_cutoff is not None and not (0 < self.three_body_cutoff <= self.cutoff):
            raise InvalidArgumentError(
                f"three_body_cutoff must lie in (0, cutoff={self.cutoff}] Å, got {self.three_body_cutoff!r}"
            )


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
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidStructureError(f"atom {i} ({atoms[i].symbol}) has a non-finite position {pos[i].tolist()}")
    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise InvalidStructureError(f"the cell has non-finite entries: {cell.tolist()}")
    pbc = atoms.pbc
    lengths = np.linalg.norm(cell, axis=1)
    for axis in np.flatnonzero(pbc):
        if lengths[axis] < 1e-6:
            raise InvalidStructureError(
                f"direction {axis} is periodic but cell vector {axis} is {cell[axis].tolist()} (zero length); "
                "give the structure a cell or set pbc=False along it"
            )
    periodic = cell[pbc]
    if len(periodic) > 0:
        sv = np.linalg.svd(periodic, compute_uv=False)
        if sv.min() < 1e-6 * max(sv.max(), 1.0):
            raise InvalidStructureError(
                f"the periodic cell vectors {periodic.tolist()} are linearly dependent (degenerate cell)"
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
        offsets = torch.bmm(self.shift.unsqueeze(1), c[self.edge_graph]).squeeze(1)
        return pos[self.dst] - pos[self.src] + offsets


def _edges(atoms: Atoms, settings: GraphSettings) -> Edges:
    pos, cell, pbc = atoms.positions, atoms.cell.array, atoms.pbc
    if settings.strategy == "k-nearest":
        return knearest_edges(pos, cell, pbc, settings.cutoff, settings.max_neighbors, settings.use_canonize)
    if settings.strategy == "radius_graph":
        return upstream_radius_edges(pos, cell, pbc, settings.cutoff, settings.cutoff_extra)
    edges = radius_edges(pos, cell, pbc, settings.cutoff)
    if settings.strategy == "pure_torch":
        edges = nearest_per_source(edges, len(atoms), settings.max_neighbors)
    return edges


def check_min_distance(atoms: Atoms, min_distance: float) -> None:
    """Raise :class:`InvalidStructureError` naming the closest pair if two atoms
    (or an atom and its own periodic image) are closer than ``min_distance`` (Å)."""
    if min_distance <= 0:
        return
    nl = NeighborList(cutoff=float(min_distance), full_list=False)
    box = atoms.cell.array if atoms.pbc.any() else np.zeros((3, 3))
    i, j, s, d = nl.compute(atoms.positions, box, [bool(p) for p in atoms.pbc], "ijSd")
    close = d < min_distance
    if close.any():
        k = int(np.argmin(np.where(close, d, np.inf)))
        a, b = int(i[k]), int(j[k])
        what = f"atom {a} ({atoms[a].symbol}) and its periodic image {s[k].tolist()}" if a == b else (
            f"atoms {a} ({atoms[a].symbol}) and {b} ({atoms[b].symbol})"
        )
        raise InvalidStructureError(
            f"{what} are {d[k]:.4f} Å apart, closer than this model's minimum distance {min_distance} Å "
            f"({int(close.sum())} such pair(s))"
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
    :func:`check_min_distance` with ``min_distance`` in Å).
    """
    validate_atoms(atoms)
    check_min_distance(atoms, min_distance)
    edges = _edges(atoms, settings)
    n = len(atoms)
    allowed = None
    if settings.three_body_cutoff is not None and settings.three_body_cutoff < settings.cutoff:
        allowed = edges.distance <= settings.three_body_cutoff
    e1, e2 = line_graph(edges.src, edges.dst, n, allowed, pair_edge_with_itself=settings.strategy == "pure_torch")

    def long(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=device)

    return AtomGraph(
        positions=torch.as_tensor(atoms.positions, dtype=dtype, device=device),
        cell=torch.as_tensor(atoms.cell.array, dtype=dtype, device=device).unsqueeze(0),
        pbc=torch.as_tensor(atoms.pbc, dtype=torch.bool, device=device).unsqueeze(0),
        numbers=long(atoms.numbers),
        src=long(edges.src),
        dst=long(edges.dst),
        shift=torch.as_tensor(edges.shift, dtype=dtype, device=device),
        triplet_e1=long(e1),
        triplet_e2=long(e2),
        atom_graph=torch.zeros(n, dtype=torch.long, device=device),
        edge_graph=torch.zeros(len(edges.src), dtype=torch.long, device=device),
        n_atoms=torch.tensor([n], dtype=torch.long, device=device),
    )


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
