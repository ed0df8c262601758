"""Energy, forces and stress of a model on a graph, by autograd.

Every model sees geometry only through the bond vectors
``r_e = x_dst - x_src + shift @ cell`` (Å), so one backward pass to
``g_e = dE/dr_e`` gives everything:

- forces ``F_i = -dE/dx_i = sum_{e: src=i} g_e - sum_{e: dst=i} g_e`` (eV/Å);
- stress ``(1/V) dE/d(strain)``: a symmetric strain ``eps`` maps every bond
  vector to ``r (1 + eps)``, so ``dE/d(eps) = sym(sum_e r_e (x) g_e)``, per
  structure, divided by the cell volume (eV/Å³, ASE sign: positive = tensile).

``create_graph=True`` keeps every output differentiable with respect to the
model's parameters, for training; at inference it stays False, so no
second-order graph is built and property models run without autograd.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal

import torch

from .errors import InvalidArgumentError, InvalidStructureError
from .graph import MIN_CELL_VOLUME, AtomGraph
from .nn.base import ALIGNNModel
from .nn.layers import Endpoints, edge_endpoints, scatter_sum

#: ``(model, graph, bonds, volume, forces, create_graph) -> outputs``: a potential's energy and the
#: derivatives asked for, from bond vectors ``bonds`` (E, 3) Å; ``volume`` (B,) Å³ when stress is asked.
Derivatives = Callable[..., dict[str, torch.Tensor]]


def evaluate(
    model: ALIGNNModel,
    graph: AtomGraph,
    forces: bool = True,
    stress: bool | Literal["where_defined"] = True,
    create_graph: bool = False,
    derivatives: Derivatives | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``graph``.

    Returns a dict with, for potentials, ``"energy"`` (B,) eV, ``"forces"``
    (N, 3) eV/Å if ``forces``, ``"stress"`` (B, 3, 3) eV/Å³ if ``stress``, and
    ``"energies"`` (N,) eV for models with site energies; for property models,
    ``"property"`` (B,) or (B, k). Raises
    :class:`~alignn_ase.errors.UnsupportedElementError` for elements the model
    lacks and :class:`~alignn_ase.errors.InvalidStructureError` when stress is
    asked of a structure without a 3D cell; with ``stress="where_defined"``
    such structures get a NaN stress instead (a batch of crystals and
    molecules, as in training). ``derivatives`` computes a
    potential's outputs from the bond vectors: :func:`autograd_derivatives`
    (the default) or, compiled, :func:`functional_derivatives`. Works under
    ``torch.no_grad`` and ``torch.inference_mode`` too (forces need autograd:
    it is switched back on inside), on graphs built there too; the model's
    weights must not be inference tensors (load the model outside inference
    mode, as :class:`~alignn_ase.calculator.ALIGNNCalculator` does).
    """
    model.check_elements(graph.numbers)
    with torch.inference_mode(False):
        graph = _without_inference_tensors(graph)
        # bond vectors in the graph's dtype (float64 in the calculator: exact wherever the atoms sit), then the model's
        bonds = graph.bond_vectors().to(model.float_dtype)
        if not model.is_potential or not (forces or stress):
            with torch.set_grad_enabled(create_graph):
                return dict(model(graph, bonds))

        volume = flat = None
        if stress:
            volume = graph.volume()
            flat = volume < MIN_CELL_VOLUME
            if not bool(flat.any()):
                flat = None
            elif stress != "where_defined":
                raise InvalidStructureError("stress needs a 3D cell, but the structure's cell volume is 0")
            else:  # any finite stand-in volume: those structures' stress is replaced below
                volume = torch.where(flat, torch.ones_like(volume), volume)
        out = (derivatives or autograd_derivatives)(model, graph, bonds, volume, forces, create_graph)
        if stress and model.stress_scale != 1.0:
            out["stress"] = out["stress"] * model.stress_scale
        if flat is not None:
            # where, not a product: no NaN reaches the gradient of the other structures' stress
            out["stress"] = torch.where(flat.view(-1, 1, 1), torch.full_like(out["stress"], torch.nan), out["stress"])
    if not create_graph:
        out = {k: v.detach() for k, v in out.items()}
    return out


def _without_inference_tensors(graph: AtomGraph) -> AtomGraph:
    """``graph``, with copies of the tensors it was built with under ``torch.inference_mode`` (autograd cannot
    save those for the backward pass)."""
    made = {f.name: getattr(graph, f.name) for f in dataclasses.fields(graph)}
    inference = {name: t.clone() for name, t in made.items() if t.is_inference()}
    return dataclasses.replace(graph, **inference) if inference else graph


def _energy(
    model: ALIGNNModel, graph: AtomGraph, r: torch.Tensor, bond_endpoints: Endpoints | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's outputs at bond vectors ``r``, and the scalar whose gradient gives forces and stress: the
    energies summed over structures, plus any energy term that acts on gradients only (upstream's penalty)."""
    out = dict(model(graph, r) if bond_endpoints is None else model(graph, r, bond_endpoints))
    total = out["energy"]
    if "gradient_only_energy" in out:
        total = total + out.pop("gradient_only_energy")
    return total.sum(), out


def autograd_derivatives(
    model: ALIGNNModel,
    graph: AtomGraph,
    bonds: torch.Tensor,
    volume: torch.Tensor | None,
    forces: bool,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """Energy, forces and stress by ``torch.autograd.grad`` (``create_graph`` for training on them)."""
    with torch.enable_grad():
        r = bonds.detach().requires_grad_(True)
        total, out = _energy(model, graph, r)
        (g,) = torch.autograd.grad(total, [r], create_graph=create_graph, allow_unused=True)
    if g is None:  # no bonds, or a model that ignores them
        g = torch.zeros_like(r)
    return _with_derivatives(out, graph, r.detach(), g, volume, forces)


def functional_derivatives(
    model: ALIGNNModel,
    graph: AtomGraph,
    bonds: torch.Tensor,
    volume: torch.Tensor | None,
    forces: bool,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """:func:`autograd_derivatives` by ``torch.func.grad``, for inference under ``torch.compile``.

    Compiled, forward and backward become one program, without the autograd
    engine and the wrappers between two compiled halves: for an 8-atom cell
    the evaluation is ~1.5x and the whole calculator call ~1.2x faster than
    compiling the forward alone (benchmarks/NOTES.md item 22). Eagerly it is
    ~2x slower than :func:`autograd_derivatives`; it does not keep the graph
    for training.
    """
    if create_graph:
        raise InvalidArgumentError("functional_derivatives is for inference; train with autograd_derivatives")
    # The line graph's endpoints depend on the topology alone: computed outside the gradient transform, whose
    # data-dependent sizes (torch.nonzero) torch 2.11's compiler cannot trace inside it.
    ends = edge_endpoints(graph.triplet_e1, graph.triplet_e2, graph.src.shape[0])
    g, out = torch.func.grad(lambda r: _energy(model, graph, r, ends), has_aux=True)(bonds)
    return _with_derivatives(out, graph, bonds, g, volume, forces)


def _with_derivatives(
    out: dict[str, torch.Tensor],
    graph: AtomGraph,
    r: torch.Tensor,
    g: torch.Tensor,
    volume: torch.Tensor | None,
    forces: bool,
) -> dict[str, torch.Tensor]:
    """``out`` with forces (eV/Å) and, given the volumes, stress (eV/Å³) from ``g`` = dE/dr of the bond vectors r.

    The sums run through :func:`~alignn_ase.nn.layers.scatter_sum`: compiled, inductor's own scatter is an
    atomic-add loop, which on two threads made the 64-atom call ~20 % slower (all bonds add into 9 numbers).
    """
    if forces:
        n = graph.num_atoms
        out["forces"] = scatter_sum(g, graph.src, n) - scatter_sum(g, graph.dst, n)
    if volume is not None:
        outer = (r.unsqueeze(2) * g.unsqueeze(1)).reshape(-1, 9)
        virial = scatter_sum(outer, graph.edge_graph, graph.num_graphs).view(-1, 3, 3)
        out["stress"] = 0.5 * (virial + virial.transpose(1, 2)) / volume.view(-1, 1, 1)
    return out
