"""Energy, forces and stress of a model on a graph, by autograd.

Forces are -dE/d(positions) and stress is (1/V) dE/d(strain), the derivative
with respect to a symmetric strain applied to positions and cell together
(ASE sign: positive = tensile). ``create_graph=True`` keeps every output
differentiable with respect to the model's parameters, for training; at
inference it stays False, so no second-order graph is built and property
models run without autograd.
"""

from __future__ import annotations

import torch

from .errors import InvalidStructureError
from .graph import AtomGraph
from .nn.base import ALIGNNModel


def evaluate(
    model: ALIGNNModel,
    graph: AtomGraph,
    forces: bool = True,
    stress: bool = True,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``graph``.

    Returns a dict with, for potentials, ``"energy"`` (B,) eV, ``"forces"``
    (N, 3) eV/Å if ``forces``, ``"stress"`` (B, 3, 3) eV/Å³ if ``stress``, and
    ``"energies"`` (N,) eV for models with site energies; for property models,
    ``"property"`` (B,) or (B, k). Raises
    :class:`~alignn_ase.errors.UnsupportedElementError` for elements the model
    lacks and :class:`~alignn_ase.errors.InvalidStructureError` when stress is
    asked of a structure without a 3D cell.
    """
    model.check_elements(graph.numbers)
    if not model.is_potential or not (forces or stress):
        with torch.set_grad_enabled(create_graph):
            return dict(model(graph, graph.bond_vectors()))

    positions = graph.positions.detach().requires_grad_(forces)
    cell = graph.cell.detach()
    inputs = [positions] if forces else []
    if stress:
        volume = graph.volume()
        if bool((volume < 1e-8).any()):
            raise InvalidStructureError("stress needs a 3D cell, but the structure's cell volume is 0")
        displacement = torch.zeros_like(cell).requires_grad_(True)
        strain = 0.5 * (displacement + displacement.transpose(1, 2))
        positions_s = positions + torch.bmm(positions.unsqueeze(1), strain[graph.atom_graph]).squeeze(1)
        cell_s = cell + torch.bmm(cell, strain)
        inputs.append(displacement)
    else:
        positions_s, cell_s = positions, cell

    with torch.enable_grad():
        out = dict(model(graph, graph.bond_vectors(positions_s, cell_s)))
        total = out["energy"]
        if "gradient_only_energy" in out:
            total = total + out.pop("gradient_only_energy")
        grads = torch.autograd.grad(total.sum(), inputs, create_graph=create_graph, allow_unused=True)

    def grad_or_zero(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(like) if g is None else g

    if forces:
        out["forces"] = -grad_or_zero(grads[0], positions)
    if stress:
        out["stress"] = grad_or_zero(grads[-1], cell) / volume.view(-1, 1, 1)
    if not create_graph:
        out = {k: v.detach() for k, v in out.items()}
    return out
