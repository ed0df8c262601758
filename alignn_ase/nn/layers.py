"""Layers shared by every ALIGNN architecture.

Module and parameter names follow upstream ALIGNN so that upstream
state_dicts load key for key.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError


def scatter_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of ``values`` into ``size`` buckets given by ``index``.

    Eager: ``scatter_add_`` with a broadcast index (on CPU it runs the
    ``index_add_`` kernel). Under ``torch.compile``: the opaque operator
    ``alignn_ase::scatter_sum`` (``index_add_``, with a gather as its
    backward), so that inductor neither generates its own atomic-add loop nor
    falls back to ``scatter_reduce_`` (measured 3x slower per call than
    ``index_add_`` on two CPU threads).
    """
    if torch.compiler.is_compiling():
        return _ScatterSum.apply(values, index, size)
    out = values.new_zeros((size,) + tuple(values.shape[1:]))
    return out.scatter_add_(0, index.view((-1,) + (1,) * (values.dim() - 1)).expand_as(values), values)


# The operator is defined with the low-level library API, its autograd by :class:`_ScatterSum`: a
# ``torch.library.custom_op`` would put Python autograd and dispatch layers around every call of the
# compiled code (measured ~7 us per call, against ~1.6 us here; 26 calls per small-cell evaluation).
_LIBRARY = torch.library.Library("alignn_ase", "DEF")
_LIBRARY.define("scatter_sum(Tensor values, Tensor index, SymInt size) -> Tensor")


def _scatter_sum_impl(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return values.new_zeros((size,) + tuple(values.shape[1:])).index_add_(0, index, values)


def _scatter_sum_fake(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return values.new_empty((size,) + tuple(values.shape[1:]))


_LIBRARY.impl("scatter_sum", _scatter_sum_impl, "CompositeExplicitAutograd")
torch.library.register_fake("alignn_ase::scatter_sum", _scatter_sum_fake, lib=_LIBRARY)
_scatter_sum_op = torch.ops.alignn_ase.scatter_sum.default


class _ScatterSum(torch.autograd.Function):
    """:func:`scatter_sum` as the operator ``alignn_ase::scatter_sum``, whose backward is a gather."""

    @staticmethod
    def forward(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        return _scatter_sum_op(values, index, size)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None, None


class _GatherRows(torch.autograd.Function):
    """``x.index_select(0, index)`` whose backward is :func:`scatter_sum`."""

    @staticmethod
    def forward(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, index)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, index = inputs
        ctx.save_for_backward(index)
        ctx.size = x.shape[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        return scatter_sum(grad, index, ctx.size), None


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``x[index]``.

    Eager: ``index_select`` (its backward runs ``index_add_``). Under
    ``torch.compile``: the same gather, which inductor fuses into the kernels
    that use it, with :func:`scatter_sum` as its backward; inductor's own
    backward of ``index_select`` is an atomic-add loop, measured 3-5x slower
    than ``index_add_`` on two CPU threads.
    """
    if torch.compiler.is_compiling():
        return _GatherRows.apply(x, index)
    return x.index_select(0, index)


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of ``values`` per bucket (empty buckets give 0).

    The row count rides along as an extra column of one scatter (no
    data-dependent ``bincount`` size, which ``torch.compile`` cannot trace).
    """
    flat = values.reshape(values.shape[0], -1)
    total = scatter_sum(torch.cat([flat, torch.ones_like(flat[:, :1])], dim=1), index, size)
    mean = total[:, :-1] / total[:, -1:].clamp_min(1)
    return mean.reshape((size,) + tuple(values.shape[1:]))


def polynomial_envelope(x: torch.Tensor, exponent: int = 5) -> torch.Tensor:
    """Smooth cutoff envelope of ``x = r / r_cut`` (DimeNet, Klicpera et al. 2020).

    1 at x = 0, and value, first and second derivative vanish at x = 1; 0 beyond.
    ``x`` is clamped to 1 first: the integer coefficients sum to exactly -1, so
    the polynomial and its gradient are exactly 0 there and beyond (no mask needed).
    """
    p = exponent
    c1 = -(p + 1) * (p + 2) / 2
    c2 = p * (p + 2)
    c3 = -p * (p + 1) / 2
    x = x.clamp(max=1.0)
    return 1 + x.pow(p) * (c1 + x * (c2 + c3 * x))


def zbl_pair_energy(z_i: torch.Tensor, z_j: torch.Tensor, r: torch.Tensor, r_cut: float) -> torch.Tensor:
    """ZBL universal screened-Coulomb repulsion of each pair, eV (Ziegler, Biersack, Littmark 1985).

    Switched off smoothly at ``r_cut`` (Å) by the degree-4 polynomial envelope,
    as upstream ALIGNN does; zero at and beyond ``r_cut``.
    """
    a = 0.46850 / (z_i.pow(0.23) + z_j.pow(0.23))
    x = r / a
    phi = (
        0.18175 * torch.exp(-3.19980 * x)
        + 0.50986 * torch.exp(-0.94229 * x)
        + 0.28022 * torch.exp(-0.40290 * x)
        + 0.02817 * torch.exp(-0.20162 * x)
    )
    e = 14.399645 * z_i * z_j / r.clamp_min(1e-6) * phi
    return e * polynomial_envelope(r / r_cut, exponent=4)


def zbl_needed(d: torch.Tensor, r_cut: float) -> bool:
    """Whether ZBL must be evaluated on bonds of lengths ``d`` (Å).

    On the CPU, eagerly, only if some bond is shorter than ``r_cut``: beyond it the pair energy and its gradient
    are exactly zero, so skipping them changes no bit of the results, and in the usual case (no atoms that close)
    it saves ~70 small operators per call, 4-7 % of an 8-atom cell's CPU time (benchmarks/NOTES.md item 26).
    Compiled or on a GPU always: the check would be a graph break or a host synchronisation.
    """
    return torch.compiler.is_compiling() or d.device.type != "cpu" or bool((d < r_cut).any())


def zbl_repulsion(
    numbers: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    d: torch.Tensor,
    r_cut: float,
    index: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Half the ZBL energy (eV) of each bond ``src -> dst`` of length ``d`` (Å), summed into ``size``
    buckets by ``index`` (one per bond: per atom or per structure).

    Every bond is evaluated, without picking out the short ones: the pair
    energy and its gradient are exactly zero beyond ``r_cut``, and a pick
    (``torch.nonzero``) would cost a device synchronisation on a GPU and a
    data-dependent size that torch 2.11 cannot compile inside ``torch.func.grad``.
    """
    z = numbers.index_select(0, torch.cat([src, dst])).to(d.dtype)
    z_i, z_j = z.view(2, -1)
    return 0.5 * scatter_sum(zbl_pair_energy(z_i, z_j, d, r_cut), index, size)


class RBFExpansion(nn.Module):
    """Gaussian radial basis ``exp(-gamma (d - mu_k)^2)`` on ``bins`` centres in [vmin, vmax].

    With ``lengthscale=None`` gamma is 1 / (centre spacing), upstream's
    convention (not squared); with a lengthscale l, gamma = 1 / l^2.
    """

    def __init__(self, vmin: float = 0.0, vmax: float = 8.0, bins: int = 40, lengthscale: float | None = None):
        super().__init__()
        centers = torch.linspace(vmin, vmax, bins, dtype=torch.float32, device="cpu")  # moved by .to(device)
        self.register_buffer("centers", centers)
        if lengthscale is None:
            self.gamma = 1.0 / float(np.diff(centers.numpy()).mean())
        else:
            self.gamma = 1.0 / float(lengthscale) ** 2

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (distance.unsqueeze(1) - self.centers) ** 2)


def make_norm(kind: str, features: int) -> nn.Module:
    """``"layer"`` -> LayerNorm (force-field models), ``"batch"`` -> BatchNorm1d (classic ALIGNN)."""
    return nn.LayerNorm(features) if kind == "layer" else nn.BatchNorm1d(features)


class MLPLayer(nn.Module):
    """Linear -> norm -> SiLU."""

    def __init__(self, in_features: int, out_features: int, norm: str = "layer"):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(in_features, out_features), make_norm(norm, out_features), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class Endpoints(NamedTuple):
    """The nodes some edge touches (sorted ids) and each edge's src and dst as positions in that list."""

    nodes: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor


def edge_endpoints(src: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> Endpoints:
    """:class:`Endpoints` of the edges ``src -> dst`` among ``num_nodes`` nodes."""
    used = torch.zeros(num_nodes, dtype=torch.bool, device=src.device)
    used.index_fill_(0, src, True).index_fill_(0, dst, True)
    position = torch.cumsum(used, 0) - 1
    return Endpoints(torch.nonzero(used).squeeze(1), position.index_select(0, src), position.index_select(0, dst))


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution (Dwivedi et al. 2020), as in ALIGNN.

    Gate ``m_ij = A h_i + B h_j + C e_ij``, ``sigma = sigmoid(m)``; node update
    ``h_i + SiLU(Norm(U h_i + agg_j))``, edge update ``e_ij + SiLU(Norm(m_ij))``.

    Aggregation over the edges j -> i arriving at i:

    - ``edge_weight=None`` (upstream): the gated normalised mean
      ``sum_j sigma_ij V h_j / (sum_j sigma_ij + 1e-6)``. When all h_j are equal
      the gates cancel, so in an elemental solid geometry barely reaches atoms.
    - ``edge_weight=w`` (alignn-ase smooth models): the envelope-weighted sum
      ``sum_j w_ij sigma_ij V h_j``. Geometry reaches atoms through w and sigma,
      and an edge entering or leaving the cutoff (w -> 0) changes nothing abruptly.
    """

    def __init__(self, in_features: int, out_features: int, norm: str = "layer", residual: bool = True):
        super().__init__()
        self.residual = residual
        self.src_gate = nn.Linear(in_features, out_features)
        self.dst_gate = nn.Linear(in_features, out_features)
        self.edge_gate = nn.Linear(in_features, out_features)
        self.bn_edges = make_norm(norm, out_features)
        self.src_update = nn.Linear(in_features, out_features)
        self.dst_update = nn.Linear(in_features, out_features)
        self.bn_nodes = make_norm(norm, out_features)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        endpoints: Endpoints | None = None,
        update_edges: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Updated node and edge features.

        ``endpoints`` (see :func:`edge_endpoints`) lists the nodes that some edge
        touches; the gate and message linears then run on those nodes only
        (in a line graph, bonds longer than the three-body cut-off touch no
        triplet). The result is the same. ``update_edges=False`` (a last layer,
        whose edge output nothing reads) skips the edge update and returns ``y``
        as given.
        """
        n, hidden = x.shape[0], self.src_gate.out_features
        # The four linears on node features as one GEMM (src gate, message, dst gate, self update);
        # the edge gate's bias rides on the dst gate's.
        weight = torch.cat([self.src_gate.weight, self.dst_update.weight, self.dst_gate.weight, self.src_update.weight])
        bias = torch.cat(
            [self.src_gate.bias, self.dst_update.bias, self.dst_gate.bias + self.edge_gate.bias, self.src_update.bias]
        )
        if endpoints is None:
            gates, update = F.linear(x, weight, bias).split([3 * hidden, hidden], dim=1)
            at_src, at_dst = src, dst
        else:
            update = F.linear(x, weight[3 * hidden :], bias[3 * hidden :])
            gates = F.linear(gather_rows(x, endpoints.nodes), weight[: 3 * hidden], bias[: 3 * hidden])
            at_src, at_dst = endpoints.src, endpoints.dst
        gate_src, msg, gate_dst = gates.split(hidden, dim=1)
        gate_sum = gather_rows(gate_src, at_src) + gather_rows(gate_dst, at_dst)
        m = torch.addmm(gate_sum, y, self.edge_gate.weight.t())
        sigma = torch.sigmoid(m)
        message = gather_rows(msg, at_src) * sigma
        if edge_weight is None:
            h = scatter_sum(message, dst, n) / (scatter_sum(sigma, dst, n) + 1e-6)
        else:
            h = scatter_sum(message * edge_weight.unsqueeze(1), dst, n)
        x_new = F.silu(self.bn_nodes(update + h))
        if not update_edges:
            return (x + x_new if self.residual else x_new), y
        y_new = F.silu(self.bn_edges(m))
        if self.residual:
            return x + x_new, y + y_new
        return x_new, y_new


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: edge-gated conv on the bond graph, then on the line graph.

    Bond-graph conv updates atoms (x) and bonds (y -> m); line-graph conv
    treats bonds as nodes (m) and angles as edges (z).
    """

    def __init__(self, in_features: int, out_features: int, norm: str = "layer"):
        super().__init__()
        self.node_update = EdgeGatedGraphConv(in_features, out_features, norm)
        self.edge_update = EdgeGatedGraphConv(out_features, out_features, norm)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        z: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        e1: torch.Tensor,
        e2: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        triplet_weight: torch.Tensor | None = None,
        bond_endpoints: Endpoints | None = None,
        update_angles: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``bond_endpoints``: :func:`edge_endpoints` of the line graph (e1, e2), computed once per graph;
        ``update_angles=False`` (the last ALIGNN layer) returns ``z`` as given."""
        x, m = self.node_update(x, y, src, dst, edge_weight)
        y, z = self.edge_update(m, z, e1, e2, triplet_weight, bond_endpoints, update_angles)
        return x, y, z


def bond_cosines(r: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """Cosine of the angle at v for each pair (u->v, v->w): (-r_uv) . r_vw / (|r_uv| |r_vw|).

    Bond directions are normalised once per bond, then paired per triplet.
    """
    unit = r / r.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return -(gather_rows(unit, e1) * gather_rows(unit, e2)).sum(dim=-1).clamp(-1.0, 1.0)


def add_trunk(
    module: nn.Module,
    atom_input_features: int,
    edge_input_features: int,
    triplet_input_features: int,
    embedding_features: int,
    hidden_features: int,
    alignn_layers: int,
    gcn_layers: int,
    norm: str,
    edge_vmax: float = 8.0,
    edge_lengthscale: float | None = None,
    triplet_lengthscale: float | None = None,
) -> None:
    """Add embeddings, ALIGNN layers and GCN layers to ``module``.

    The attributes keep upstream's names (``atom_embedding``, ``edge_embedding``,
    ``angle_embedding``, ``alignn_layers``, ``gcn_layers``) at the top level, so
    state_dicts match upstream key for key.
    """
    sizes = {"atom_input_features": atom_input_features, "edge_input_features": edge_input_features,
             "triplet_input_features": triplet_input_features, "embedding_features": embedding_features,
             "hidden_features": hidden_features}
    bad = [f"{k} = {v} (needs >= 1)" for k, v in sizes.items() if v < 1]
    bad += [f"{k} = {v} (needs >= 0)" for k, v in (("alignn_layers", alignn_layers), ("gcn_layers", gcn_layers))
            if v < 0]
    if bad:
        raise InvalidArgumentError(f"bad model sizes: {', '.join(bad)}")
    module.atom_embedding = MLPLayer(atom_input_features, hidden_features, norm)
    module.edge_embedding = nn.Sequential(
        RBFExpansion(0.0, edge_vmax, edge_input_features, edge_lengthscale),
        MLPLayer(edge_input_features, embedding_features, norm),
        MLPLayer(embedding_features, hidden_features, norm),
    )
    module.angle_embedding = nn.Sequential(
        RBFExpansion(-1.0, 1.0, triplet_input_features, triplet_lengthscale),
        MLPLayer(triplet_input_features, embedding_features, norm),
        MLPLayer(embedding_features, hidden_features, norm),
    )
    module.alignn_layers = nn.ModuleList(
        [ALIGNNConv(hidden_features, hidden_features, norm) for _ in range(alignn_layers)]
    )
    module.gcn_layers = nn.ModuleList(
        [EdgeGatedGraphConv(hidden_features, hidden_features, norm) for _ in range(gcn_layers)]
    )


def run_layers(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    e1: torch.Tensor,
    e2: torch.Tensor,
    edge_weight: torch.Tensor | None = None,
    triplet_weight: torch.Tensor | None = None,
    bond_endpoints: Endpoints | None = None,
    read_angles: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``module``'s ALIGNN then GCN layers; return the final atom and angle features.

    Edge and angle features that no later layer reads (the last GCN layer's
    bond update; the last ALIGNN layer's angle update, unless ``read_angles``
    says the caller reads them) are not computed.
    ``bond_endpoints``: :func:`edge_endpoints` of the line graph ``(e1, e2)``
    over the bonds, computed here unless given (it depends on the topology
    alone; :func:`~alignn_ase.compute.functional_derivatives` computes it
    outside the gradient transform).
    """
    if bond_endpoints is None:
        bond_endpoints = edge_endpoints(e1, e2, y.shape[0])
    n_alignn, n_gcn = len(module.alignn_layers), len(module.gcn_layers)
    for k, layer in enumerate(module.alignn_layers):
        update_angles = read_angles or k < n_alignn - 1
        x, y, z = layer(x, y, z, src, dst, e1, e2, edge_weight, triplet_weight, bond_endpoints, update_angles)
    for k, layer in enumerate(module.gcn_layers):
        x, y = layer(x, y, src, dst, edge_weight, update_edges=k < n_gcn - 1)
    return x, z
