"""What every alignn-ase model shares: graph settings, atom inputs, element table."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..features import check_elements, element_mask, feature_table
from ..graph import AtomGraph, GraphSettings
from .layers import Endpoints
from .tabulate import EmbeddingTables, embedding_tables


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
        num_classes: the number of classes of a classifier (None for regression models and potentials).
        card: the model card text, when loaded from a file that has one.
        source: the path it was loaded from.
    """

    is_potential: bool = True
    has_site_energies: bool = False
    #: factor on the reported stress: 1 (the strain derivative of the energy) but for upstream checkpoints
    #: trained with ``stress_multiplier``, whose stress upstream reports multiplied by it
    stress_scale: float = 1.0
    num_classes: int | None = None
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
        #: inference-time tables of the embeddings (:meth:`tabulate_embeddings`); None: the MLPs are evaluated
        self.embedding_tables: EmbeddingTables | None = None

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

    def embed_atoms(self, numbers: torch.Tensor) -> torch.Tensor:
        """(N, H) embedded features of atoms with atomic numbers ``numbers``."""
        if self.embedding_tables is not None:
            return self.embedding_tables.atoms.index_select(0, numbers)
        return self.atom_embedding(self.atom_inputs(numbers))

    def embed_bonds(self, x: torch.Tensor) -> torch.Tensor:
        """(E, H) embedded features of bonds from (E,) bond lengths (Å) or envelope values."""
        tables = self.embedding_tables
        return self.edge_embedding(x) if tables is None or tables.bonds is None else tables.bonds(x)

    def embed_angles(self, cosines: torch.Tensor) -> torch.Tensor:
        """(T, H) embedded features of triplets from their (T,) bond-angle cosines."""
        tables = self.embedding_tables
        return self.angle_embedding(cosines) if tables is None or tables.angles is None else tables.angles(cosines)

    def tabulate_embeddings(self) -> None:
        """Evaluate the embeddings from tables from now on (:mod:`~alignn_ase.nn.tabulate`), in the model's
        current dtype and on its device: for inference with frozen weights only (the tables do not follow
        later changes of the weights, nor carry their gradients). The state_dict is unchanged."""
        if self.training:
            raise InvalidArgumentError("tabulate_embeddings() is for inference: call model.eval() first")
        with torch.no_grad():
            self.embedding_tables = embedding_tables(
                self.atom_embedding, self._feature_table, self.edge_embedding, self.angle_embedding
            )

    def config_dict(self) -> dict[str, Any]:
        """The JSON-serialisable config that rebuilds this architecture (see :mod:`alignn_ase.io`)."""
        raise NotImplementedError

    def forward(
        self, graph: AtomGraph, r: torch.Tensor, bond_endpoints: Endpoints | None = None
    ) -> dict[str, torch.Tensor]:
        """Outputs at bond vectors ``r`` (E, 3) Å; ``bond_endpoints`` of the line graph (see
        :func:`~alignn_ase.nn.layers.run_layers`) may be given precomputed."""
        raise NotImplementedError
