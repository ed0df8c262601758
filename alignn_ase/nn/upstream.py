"""Upstream ALIGNN architectures with upstream-compatible state_dict keys.

- :class:`ALIGNN` — the paper's property model (``name: "alignn"``): BatchNorm,
  mean pooling, linear head with ``link`` identity/log/logit, or classification.
- :class:`ALIGNNAtomwise` — the force-field models ``"alignn_atomwise"`` and
  ``"alignn_atomwise_pure"``: LayerNorm, E = N * fc(mean h), plus upstream's
  ZBL repulsion (pure only) and short-bond penalty (forces only).

They keep upstream's gated normalised mean (see
:class:`~alignn_ase.nn.layers.EdgeGatedGraphConv`), so they reproduce upstream
numbers, including its weakness for structures whose atoms are all alike.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError
from ..graph import AtomGraph, GraphSettings
from .base import ALIGNNModel
from .layers import (
    Endpoints,
    add_trunk,
    bond_cosines,
    polynomial_envelope,
    run_layers,
    scatter_mean,
    scatter_sum,
    zbl_needed,
    zbl_repulsion,
)

logger = logging.getLogger(__name__)

Link = Literal["identity", "log", "logit"]


@dataclass
class ALIGNNConfig:
    """Upstream ``ALIGNNConfig`` (classic property model); same fields and defaults."""

    name: Literal["alignn"] = "alignn"
    alignn_layers: int = 4
    gcn_layers: int = 4
    atom_input_features: int = 92
    edge_input_features: int = 80
    triplet_input_features: int = 40
    embedding_features: int = 64
    hidden_features: int = 256
    output_features: int = 1
    link: Link = "identity"
    zero_inflated: bool = False
    classification: bool = False
    num_classes: int = 2
    extra_features: int = 0


@dataclass
class ALIGNNAtomwiseConfig:
    """Upstream ``ALIGNNAtomWiseConfig`` / ``ALIGNNAtomWisePureConfig``; same fields.

    Field defaults are ``alignn_atomwise``'s (the ``name`` default aside);
    :func:`atomwise_defaults` gives the pure model's different ones
    (penalty_factor 0.5).
    """

    name: Literal["alignn_atomwise", "alignn_atomwise_pure"] = "alignn_atomwise_pure"
    alignn_layers: int = 2
    gcn_layers: int = 2
    atom_input_features: int = 1
    edge_input_features: int = 80
    triplet_input_features: int = 40
    embedding_features: int = 64
    hidden_features: int = 64
    output_features: int = 1
    grad_multiplier: int = -1
    calculate_gradient: bool = True
    atomwise_output_features: int = 0
    graphwise_weight: float = 1.0
    gradwise_weight: float = 1.0
    stresswise_weight: float = 0.0
    atomwise_weight: float = 0.0
    link: Link = "identity"
    zero_inflated: bool = False
    classification: bool = False
    force_mult_natoms: bool = False
    energy_mult_natoms: bool = True
    include_pos_deriv: bool = False
    use_cutoff_function: bool = False
    inner_cutoff: float = 3.0
    three_body_cutoff: float = 3.5
    stress_multiplier: float = 1.0
    add_reverse_forces: bool = True
    lg_on_fly: bool = True
    batch_stress: bool = True
    multiply_cutoff: bool = False
    use_penalty: bool = True
    extra_features: int = 0
    exponent: int = 5
    penalty_factor: float = 0.1
    penalty_threshold: float = 1.0
    use_zbl: bool | None = None
    zbl_cutoff: float = 0.9
    additional_output_features: int = 0
    additional_output_weight: float = 0.0
    conv_type: Literal["alignn", "n_alignn", "t_alignn"] = "alignn"
    num_heads: int = 1


def atomwise_defaults(name: str) -> dict[str, Any]:
    """Defaults in which ``alignn_atomwise_pure`` differs from ``alignn_atomwise``."""
    return {"penalty_factor": 0.5} if name == "alignn_atomwise_pure" else {}


def _reject(where: str, cond: bool, message: str) -> None:
    if cond:
        raise CheckpointError(f"{where}: {message} is not supported by alignn-ase")


class ALIGNN(ALIGNNModel):
    """The classic ALIGNN property model (upstream ``alignn.models.alignn.ALIGNN``)."""

    is_potential = False

    def __init__(self, config: ALIGNNConfig, graph_settings: GraphSettings, atom_features: str, property_name: str | None):
        where = "alignn model config"
        _reject(where, config.extra_features != 0, "extra_features != 0 (lattice-feature head)")
        super().__init__(graph_settings, atom_features, property_name=property_name or "property")
        self.config = config
        add_trunk(
            self,
            config.atom_input_features,
            config.edge_input_features,
            config.triplet_input_features,
            config.embedding_features,
            config.hidden_features,
            config.alignn_layers,
            config.gcn_layers,
            norm="batch",
        )
        self.num_classes = config.num_classes if config.classification else None
        out = self.num_classes or config.output_features
        self.fc = _head(config.hidden_features, out, config.link)

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def forward(
        self, graph: AtomGraph, r: torch.Tensor, bond_endpoints: Endpoints | None = None
    ) -> dict[str, torch.Tensor]:
        x = self.embed_atoms(graph.numbers)
        y = self.embed_bonds(r.norm(dim=1))
        z = self.embed_angles(bond_cosines(r, graph.triplet_e1, graph.triplet_e2))
        e1, e2 = graph.triplet_e1, graph.triplet_e2
        x, _ = run_layers(self, x, y, z, graph.src, graph.dst, e1, e2, bond_endpoints=bond_endpoints)
        out = self.fc(scatter_mean(x, graph.atom_graph, graph.num_graphs))
        return {"property": _link_and_classify(out, self.config.link, self.config.classification)}


def _head(hidden: int, out: int, link: str) -> nn.Linear:
    """Final linear layer; upstream replaces the bias of ``link="log"`` heads by a 0-d log(0.7)."""
    fc = nn.Linear(hidden, out)
    if link == "log":
        fc.bias = nn.Parameter(torch.tensor(math.log(0.7)))
    return fc


def _link_and_classify(out: torch.Tensor, link: str, classification: bool) -> torch.Tensor:
    if link == "log":
        out = torch.exp(out)
    elif link == "logit":
        out = torch.sigmoid(out)
    if classification:
        return torch.log_softmax(out, dim=1)
    return out.squeeze(1) if out.shape[1] == 1 else out


class ALIGNNAtomwise(ALIGNNModel):
    """Upstream's force-field model (``alignn_atomwise`` / ``alignn_atomwise_pure``).

    Energy as upstream's calculator reports it (``intensive=True``):
    ``E = N * fc(mean_i h_i) + E_ZBL`` (eV), ZBL for ``alignn_atomwise_pure``
    with a ``pure_torch`` graph only, as upstream. The bond penalty
    ``sum_bonds penalty_factor * (penalty_threshold - d)`` for d below the
    threshold enters forces and stress but not the reported energy, exactly as
    upstream does; it is returned as ``"gradient_only_energy"``. (In the DGL
    ``alignn_atomwise`` with ``use_cutoff_function`` and not ``multiply_cutoff``
    upstream applies the penalty to the envelope values instead of the bond
    lengths; reproduced as well.)

    With ``calculate_gradient=False`` the model is a property model:
    ``link(fc(mean h))`` or class log-probabilities.
    """

    def __init__(
        self,
        config: ALIGNNAtomwiseConfig,
        graph_settings: GraphSettings,
        atom_features: str,
        property_name: str | None = None,
    ):
        where = f"{config.name} model config"
        _reject(where, config.conv_type != "alignn", f"conv_type={config.conv_type!r}")
        _reject(where, config.extra_features != 0, "extra_features != 0 (lattice-feature head)")
        _reject(where, config.grad_multiplier != -1, f"grad_multiplier={config.grad_multiplier} (forces != -dE/dx)")
        _reject(where, config.force_mult_natoms, "force_mult_natoms=true")
        _reject(where, not config.add_reverse_forces, "add_reverse_forces=false (non-conservative forces)")
        _reject(where, not config.lg_on_fly, "lg_on_fly=false (forces without the angle terms)")
        _reject(where, config.include_pos_deriv, "include_pos_deriv=true")
        _reject(where, not config.energy_mult_natoms, "energy_mult_natoms=false")
        if config.use_cutoff_function and not (config.inner_cutoff > 0 and config.exponent >= 1):
            # the envelope divides by inner_cutoff; a non-positive exponent is no envelope
            raise CheckpointError(f"{where}: use_cutoff_function needs inner_cutoff > 0 Å and exponent >= 1 "
                                  f"(got {config.inner_cutoff}, {config.exponent})")
        potential = config.calculate_gradient and config.gradwise_weight != 0
        # upstream differentiates the un-linked sum of every output but reports the linked first one: no energy
        # whose derivatives its forces are
        _reject(where, potential and config.link != "identity", f"a force field with link={config.link!r}")
        _reject(where, potential and (config.classification or config.output_features != 1),
                "a force field with more than one output (classification or output_features != 1)")
        super().__init__(
            graph_settings, atom_features, property_name=None if potential else (property_name or "property")
        )
        self.is_potential = potential
        self.config = config
        self.stress_scale = float(config.stress_multiplier)
        if potential and self.stress_scale != 1.0:
            logger.warning(
                "%s: stress_multiplier=%g: the stress is reported multiplied by it, as upstream does, and is then "
                "not the strain derivative of the energy (cell relaxations and NPT runs will not be consistent)",
                where, self.stress_scale,
            )
        add_trunk(
            self,
            config.atom_input_features,
            config.edge_input_features,
            config.triplet_input_features,
            config.embedding_features,
            config.hidden_features,
            config.alignn_layers,
            config.gcn_layers,
            norm="layer",
        )
        if config.atomwise_output_features > 0:
            self.fc_atomwise = nn.Linear(config.hidden_features, config.atomwise_output_features)
        if config.additional_output_features > 0:
            self.fc_additional_output = nn.Linear(config.hidden_features, config.additional_output_features)
        self.num_classes = 2 if config.classification else None  # upstream's atomwise classifiers are binary
        out = self.num_classes or config.output_features
        self.fc = _head(config.hidden_features, out, config.link)
        zbl = config.use_zbl if config.use_zbl is not None else config.calculate_gradient
        self.use_zbl = bool(zbl) and potential and config.name == "alignn_atomwise_pure" and graph_settings.strategy == "pure_torch"

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def forward(
        self, graph: AtomGraph, r: torch.Tensor, bond_endpoints: Endpoints | None = None
    ) -> dict[str, torch.Tensor]:
        c = self.config
        d = r.norm(dim=1)
        x = self.embed_atoms(graph.numbers)
        z = self.embed_angles(bond_cosines(r, graph.triplet_e1, graph.triplet_e2))
        if c.use_cutoff_function:
            envelope = polynomial_envelope(d / c.inner_cutoff, c.exponent)
            if c.multiply_cutoff:
                y = self.embed_bonds(d) * envelope.unsqueeze(1)
            else:
                y = self.embed_bonds(envelope)  # upstream feeds the envelope value to the RBF
        else:
            y = self.embed_bonds(d)
        e1, e2 = graph.triplet_e1, graph.triplet_e2
        x, _ = run_layers(self, x, y, z, graph.src, graph.dst, e1, e2, bond_endpoints=bond_endpoints)
        out = self.fc(scatter_mean(x, graph.atom_graph, graph.num_graphs))
        if not self.is_potential:
            return {"property": _link_and_classify(out, c.link, c.classification)}
        energy = out[:, 0] * graph.n_atoms.to(out.dtype)
        if self.use_zbl and zbl_needed(d, c.zbl_cutoff):
            energy = energy + zbl_repulsion(
                graph.numbers, graph.src, graph.dst, d, c.zbl_cutoff, graph.edge_graph, graph.num_graphs
            )
        result = {"energy": energy}
        if c.use_penalty:
            # Upstream's DGL model overwrites the bond lengths with the envelope values when
            # use_cutoff_function is on without multiply_cutoff, and its penalty then acts on
            # those values (every bond in [0, 1]); reproduced so its forces are matched.
            p = envelope if (c.name == "alignn_atomwise" and c.use_cutoff_function and not c.multiply_cutoff) else d
            penalty = torch.where(
                p < c.penalty_threshold, c.penalty_factor * (c.penalty_threshold - p), torch.zeros_like(p)
            )
            result["gradient_only_energy"] = scatter_sum(penalty, graph.edge_graph, graph.num_graphs)
        return result
