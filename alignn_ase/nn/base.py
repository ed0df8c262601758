"""What every alignn-ase model shares: graph settings, atom inputs, element table."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..features import check_elements, element_mask, feature_table
from ..graph import AtomGraph, GraphSettings
from .layers import Endpoints


class ALIGNNModel(nn.Module):
    """Base class of every architecture.

    A model maps an :class:`~alignn_ase.graph.AtomGraph` and its bond vectors
    ``r`` (E, 3, Å) to a dict of per-structure outputs:

    - potentials (``is_potential``): ``"energy"`` (B,) in eV; optionally
      ``"energies"`` (N,) per-atom energies in eV that sum to it, and
      ``"gradient_only_energy"`` (B,) in eV, a term that enters forces and
      stress but not the reported energy (upstream's bond penalty);
    - property models: ``"property"`` (B,) or (B, k) in the units of the
      target they were trained on.

    Attributes:
        graph_settings: how this model's graphs are built.
        min_distance: atoms closer than this (Å) are rejected as overlapping.
        property_name: the target of a property model (None for potentials).
        card: the model card text, when loaded from a file that has one.
        source: the path it was loaded from.
    """

    is_potential: bool = True
    has_site_energies: bool = False
    #: factor on the reported stress: 1 (the strain derivative of the energy) but for upstream checkpoints
    #: trained with ``stress_multiplier``, whose stress upstream reports multiplied by it
    stress_scale: float = 1.0
    card: str | None = None
    source: str | None = None

    def __init__(
        self,
        graph_settings: GraphSettings,
        atom_features: str,
        elements: list[str] | None = None,
        min_distance: float = 0.1,
        property_name: str | None = None,
    ):
        super().__init__()
        self.graph_settings = graph_settings
        self.atom_features = atom_features
        self.min_distance = float(min_distance)
        self.property_name = property_name
        table, known = feature_table(atom_features)
        self.register_buffer("_feature_table", table.float(), persistent=False)
        self.register_buffer("_known_elements", element_mask(elements, known), persistent=False)

    @property
    def float_dtype(self) -> torch.dtype:
        """The dtype of the model's weights, in which it takes its bond vectors."""
        return self._feature_table.dtype

    def check_elements(self, numbers: torch.Tensor) -> None:
        """Raise :class:`~alignn_ase.errors.UnsupportedElementError` for elements the model lacks."""
        check_elements(numbers, self._known_elements)

    def atom_inputs(self, numbers: torch.Tensor) -> torch.Tensor:
        """(N, F) input features of atoms with atomic numbers ``numbers``."""
        return self._feature_table[numbers]

    def config_dict(self) -> dict[str, Any]:
        """The JSON-serialisable config that rebuilds this architecture (see :mod:`alignn_ase.io`)."""
        raise NotImplementedError

    def forward(
        self, graph: AtomGraph, r: torch.Tensor, bond_endpoints: Endpoints | None = None
    ) -> dict[str, torch.Tensor]:
        """Outputs at bond vectors ``r`` (E, 3) Å; ``bond_endpoints`` of the line graph (see
        :func:`~alignn_ase.nn.layers.run_layers`) may be given precomputed."""
        raise NotImplementedError
