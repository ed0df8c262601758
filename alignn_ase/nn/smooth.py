"""alignn-ase's smooth ALIGNN force field (used for every potential we train).

Differences from upstream's force-field model, each for a physical reason:

- Radius graph without a neighbour-count cap, and a polynomial envelope
  u(d / r_c) that multiplies every bond message and, for triplets, the product
  of both bonds' envelopes u(d / r_3b): the energy and its first two
  derivatives are continuous when atoms cross either cutoff.
- Envelope-weighted *sums* replace upstream's gated normalised mean, so bond
  geometry reaches atoms even when all atoms are alike (elemental solids).
- Energy is a sum of per-atom energies plus per-element reference energies,
  hence extensive: E(2x2x2 supercell) = 8 E.
- Optional ZBL repulsion that is part of both the reported and the
  differentiated energy.
- Optional explicit three-body energy (``angle_energy``): each bond pair
  (u->v, v->w) within the three-body cutoff adds w_uv w_vw g(z_uvw) to the
  energy of its central atom v, with g an MLP of the last ALIGNN layer's angle
  features. Without it an angle reaches the energy through the gates of the
  bond messages. (Added to v5 in a fine-tune, it did not give v5 the bond-bending
  stiffness it lacks: ``scripts/distill/README.md``, "Elastic part".)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..graph import AtomGraph, GraphSettings
from .base import ALIGNNModel
from .layers import (
    Endpoints,
    add_trunk,
    bond_cosines,
    gather_rows,
    polynomial_envelope,
    run_layers,
    scatter_sum,
    zbl_needed,
    zbl_repulsion,
)


@dataclass
class SmoothConfig:
    """Hyperparameters of :class:`SmoothALIGNN` (lengths in Å)."""

    name: Literal["alignn_ase_smooth"] = "alignn_ase_smooth"
    alignn_layers: int = 2
    gcn_layers: int = 2
    hidden_features: int = 64
    embedding_features: int = 64
    edge_input_features: int = 40
    triplet_input_features: int = 20
    #: width of the bond-angle cosine's Gaussians: None is upstream's convention (gamma = 1 / centre spacing,
    #: wide: sigma ~ 0.23 in cos for 20 bins), a number l gives gamma = 1 / l^2 (as the bond lengths' basis has)
    triplet_lengthscale: float | None = None
    #: add the explicit three-body energy (see the module docstring); its output layer starts at zero, so a model
    #: fine-tuned from one without it starts from the same energies
    angle_energy: bool = False
    cutoff: float = 5.0
    three_body_cutoff: float = 3.5
    envelope_exponent: int = 5
    atom_features: Literal["cgcnn", "atomic_number"] = "cgcnn"
    elements: list[str] | None = None
    use_zbl: bool = True
    zbl_cutoff: float = 1.0
    min_distance: float = 0.3


def _energy_head(width: int) -> nn.Sequential:
    """Linear -> SiLU -> Linear to one number (eV) per row of features."""
    return nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))


class SmoothALIGNN(ALIGNNModel):
    """Smooth, extensive ALIGNN potential; energy in eV, per-atom energies in eV."""

    has_site_energies = True

    def __init__(self, config: SmoothConfig):
        if config.triplet_lengthscale is not None and not config.triplet_lengthscale > 0:
            raise InvalidArgumentError(f"triplet_lengthscale must be positive or null, got {config.triplet_lengthscale!r}")
        settings = GraphSettings("radius", config.cutoff, three_body_cutoff=config.three_body_cutoff)
        super().__init__(settings, config.atom_features, config.elements, config.min_distance)
        self.config = config
        add_trunk(
            self,
            92 if config.atom_features == "cgcnn" else 1,
            config.edge_input_features,
            config.triplet_input_features,
            config.embedding_features,
            config.hidden_features,
            config.alignn_layers,
            config.gcn_layers,
            norm="layer",
            edge_vmax=config.cutoff,
            edge_lengthscale=config.cutoff / config.edge_input_features,
            triplet_lengthscale=config.triplet_lengthscale,
        )
        self.readout = _energy_head(config.hidden_features)
        if config.angle_energy:
            self.angle_readout = _energy_head(config.hidden_features)
            nn.init.zeros_(self.angle_readout[2].weight)
            nn.init.zeros_(self.angle_readout[2].bias)
        self.reference_energies = nn.Parameter(torch.zeros(self._feature_table.shape[0]))

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def forward(
        self, graph: AtomGraph, r: torch.Tensor, bond_endpoints: Endpoints | None = None
    ) -> dict[str, torch.Tensor]:
        c = self.config
        d = r.norm(dim=1)
        edge_weight = polynomial_envelope(d / c.cutoff, c.envelope_exponent)
        three_body = polynomial_envelope(d / c.three_body_cutoff, c.envelope_exponent)
        e1, e2 = graph.triplet_e1, graph.triplet_e2
        x = self.embed_atoms(graph.numbers)
        y = self.embed_bonds(d)
        z = self.embed_angles(bond_cosines(r, e1, e2))
        triplet_weight = gather_rows(three_body, e1) * gather_rows(three_body, e2)
        x, z = run_layers(
            self, x, y, z, graph.src, graph.dst, e1, e2, edge_weight, triplet_weight, bond_endpoints, c.angle_energy
        )
        energies = self.readout(x)[:, 0] + self.reference_energies.index_select(0, graph.numbers)
        if c.angle_energy:  # each triplet's energy goes to its central atom, the source of its second bond
            angle = self.angle_readout(z)[:, 0] * triplet_weight
            energies = energies + scatter_sum(angle, graph.src.index_select(0, e2), graph.num_atoms)
        if c.use_zbl and zbl_needed(d, c.zbl_cutoff):
            zbl = zbl_repulsion(graph.numbers, graph.src, graph.dst, d, c.zbl_cutoff, graph.src, graph.num_atoms)
            energies = energies + zbl
        return {"energy": scatter_sum(energies, graph.atom_graph, graph.num_graphs), "energies": energies}
