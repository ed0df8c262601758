"""Batched prediction: many structures per forward/backward pass.

``predict(structures)`` is the one-call entry point; it builds an
:class:`~alignn_ase.calculator.ALIGNNCalculator` and uses its
:meth:`~alignn_ase.calculator.ALIGNNCalculator.predict`, which joins the
structures' graphs into one disjoint graph (:func:`~alignn_ase.graph.batch_graphs`),
evaluates it once and splits the results again.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from ase import Atoms

from .calculator import ALIGNNCalculator, ModelSpec


def predict(
    structures: Sequence[Atoms],
    model: ModelSpec = "default",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    properties: Sequence[ModelSpec] | Mapping[str, ModelSpec] | None = None,
    progress: bool = True,
    compile: bool = False,
) -> list[dict[str, Any]]:
    """Energy, forces, stress, site energies and properties of many structures.

    Returns one dict per structure with the keys and units of
    :class:`~alignn_ase.calculator.ALIGNNCalculator` results: ``energy`` and
    ``free_energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å³, ASE Voigt
    order and sign; structures with a 3D cell only), ``energies`` (eV per atom;
    models with site energies) and one entry per property model. Arguments
    as for the calculator; ``batch_size`` structures share one evaluation;
    ``compile`` as for the calculator (worth its 5-35 s of compilation only for many batches).
    """
    calc = ALIGNNCalculator(model, device=device, dtype=dtype, properties=properties, skin=0.0, compile=compile)
    return calc.predict(structures, batch_size=batch_size, progress=progress)
