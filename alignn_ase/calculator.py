"""ASE calculator for ALIGNN models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .compute import evaluate
from .errors import CheckpointError, InvalidArgumentError
from .graph import build_graph
from .io import load_model
from .nn.base import ALIGNNModel

DTYPES = {"float32": torch.float32, "float64": torch.float64}
ModelSpec = str | Path | ALIGNNModel


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA when available, else CPU; anything else must be a valid, available device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"unknown device {device!r}; use None, 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"unsupported device {device!r}; use None, 'cpu' or 'cuda'")
    return dev


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype in DTYPES:
        return DTYPES[dtype]
    raise InvalidArgumentError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'")


def _as_model(spec: ModelSpec) -> ALIGNNModel:
    return spec if isinstance(spec, ALIGNNModel) else load_model(spec)


class ALIGNNCalculator(Calculator):
    """ASE calculator for an ALIGNN potential, with optional property models.

    Args:
        model: ``"default"`` (the shipped default potential), the name of a
            shipped potential, a path to a checkpoint folder or zip (upstream
            ALIGNN or alignn-ase format), or a loaded model.
        device: ``None`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` or ``"float64"``.
        properties: property models to evaluate at every geometry, as a list
            of names/paths/models (result key: the model's target name) or a
            mapping ``{result_key: name/path/model}``.

    Results (``calc.results``): ``energy`` and ``free_energy`` (eV), ``forces``
    (eV/Å), ``stress`` (eV/Å³, Voigt order xx yy zz yz xz xy, ASE sign:
    positive = tensile), ``energies`` (eV per atom, models with site energies
    only), plus one entry per property model in its target's units. All are
    computed together in one model evaluation per geometry; ASE's cache
    (``Calculator.calculate`` / ``check_state``) serves repeated requests.
    """

    def __init__(
        self,
        model: ModelSpec = "default",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype = "float32",
        properties: Sequence[ModelSpec] | Mapping[str, ModelSpec] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.model = _as_model(model).to(device=self.device, dtype=self.dtype).eval()
        if not self.model.is_potential:
            raise CheckpointError(
                f"{self.model.source or 'this model'} is a property model ({self.model.property_name!r}); "
                "pass it as properties=[...] next to a potential"
            )
        self.property_models: dict[str, ALIGNNModel] = {}
        items = properties.items() if isinstance(properties, Mapping) else [(None, p) for p in properties or []]
        for key, spec in items:
            m = _as_model(spec).to(device=self.device, dtype=self.dtype).eval()
            if m.is_potential:
                raise InvalidArgumentError(f"{spec!r} is a potential, not a property model")
            name = key or m.property_name
            if name in self.property_models or name in ("energy", "free_energy", "forces", "stress", "energies"):
                raise InvalidArgumentError(f"property name {name!r} is used twice; pass a mapping to rename")
            self.property_models[name] = m
        self.implemented_properties = ["energy", "free_energy", "forces", "stress"]
        if self.model.has_site_energies:
            self.implemented_properties.append("energies")
        self.implemented_properties += list(self.property_models)
        self.n_model_evaluations = 0

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] | None = None,
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Evaluate every implemented property at ``atoms``' geometry (see class docstring for units)."""
        properties = list(properties or ["energy"])
        unknown = [p for p in properties if p not in self.implemented_properties]
        if unknown:
            raise PropertyNotImplementedError(
                f"unknown propert{'ies' if len(unknown) > 1 else 'y'} {unknown}; this calculator implements "
                f"{self.implemented_properties}"
            )
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = bool(atoms.cell.volume > 1e-8)
        if "stress" in properties and not want_stress:
            raise PropertyNotImplementedError("stress needs a 3D cell; this structure's cell volume is 0")

        graph = build_graph(atoms, self.model.graph_settings, self.dtype, self.device, self.model.min_distance)
        out = evaluate(self.model, graph, forces=True, stress=want_stress)
        self.n_model_evaluations += 1
        energy = float(out["energy"][0])
        results: dict[str, Any] = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].cpu().numpy().astype(np.float64),
        }
        if want_stress:
            results["stress"] = full_3x3_to_voigt_6_stress(out["stress"][0].cpu().numpy().astype(np.float64))
        if "energies" in out:
            results["energies"] = out["energies"].cpu().numpy().astype(np.float64)
        for name, m in self.property_models.items():
            g = build_graph(atoms, m.graph_settings, self.dtype, self.device, m.min_distance)
            value = evaluate(m, g, forces=False, stress=False)["property"][0].cpu().numpy().astype(np.float64)
            results[name] = float(value) if value.ndim == 0 else value
        self.results = results
