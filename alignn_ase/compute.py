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
    # bond vectors in the graph's dtype (float64 in the calculator: exact wherever the atoms sit), then the model's
    bonds = graph.bond_vectors().to(model.float_dtype)
    if not model.is_potential or not (forces or stress):
        with torch.set_grad_enabled(create_graph):
            return dict(model(graph, bonds))

    if stress:
        volume = graph.volume()
        if bool((volume < 1e-8).any()):
            raise InvalidStructureError("stress needs a 3D cell, but the structure's cell volume is 0")
    with torch.enable_grad():
        r = bonds.detach().requires_grad_(True)
        out = dict(model(graph, r))
        total = out["energy"]
        if "gradient_only_energy" in out:
            total = total + out.pop("gradient_only_energy")
        (g,) = torch.autograd.grad(total.sum(), [r], create_graph=create_graph, allow_unused=True)
    if g is None:  # no bonds, or a model that ignores them
        g = torch.zeros_like(r)

    if forces:
        out["forces"] = g.new_zeros(graph.positions.shape).index_add_(0, graph.src, g).index_add_(0, graph.dst, -g)
    if stress:
        outer = (r.detach().unsqueeze(2) * g.unsqueeze(1)).reshape(-1, 9)
        virial = torch.zeros(graph.num_graphs, 9, dtype=g.dtype, device=g.device).index_add_(0, graph.edge_graph, outer)
        virial = virial.view(-1, 3, 3)
        out["stress"] = 0.5 * (virial + virial.transpose(1, 2)) / volume.view(-1, 1, 1)
    if not create_graph:
        out = {k: v.detach() for k, v in out.items()}
    return out
