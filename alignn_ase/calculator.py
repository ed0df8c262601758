"""ASE calculator for ALIGNN models."""

from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, Parameters, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from tqdm import tqdm

from .compute import autograd_derivatives, evaluate, functional_derivatives
from .errors import (AlignnAseError, CheckpointError, InvalidArgumentError, InvalidStructureError,
                     UnsupportedElementError, is_whole)
from .graph import MIN_CELL_VOLUME, AtomGraph, GraphCache, build_graphs, check_skin, has_3d_cell
from .io import load_model, resolve_dtype
from .neighbors import SELF_TOLERANCE
from .nn.base import ALIGNNModel

logger = logging.getLogger(__name__)

ModelSpec = str | Path | ALIGNNModel
#: Graphs keep positions and cell in float64 whatever the model's dtype: bond vectors are differences of
#: absolute coordinates, which float32 would round by ~1e-6 of their size (measured: force errors of 1e-4 eV/Å
#: for a molecule 100 Å from the origin, 2.5e-2 at 10^4 Å); the model takes them in its own dtype.
GRAPH_DTYPE = torch.float64
#: Keyword arguments passed on to ASE's ``Calculator``.
_ASE_ARGUMENTS = frozenset({"label", "atoms", "directory"})
#: How ``compile=True`` runs the potential, fastest first; where compiling fails, the calculator moves down the
#: list: its forward and backward as one compiled program (torch.func.grad), its forward compiled with autograd
#: for the backward (a torch whose compiler cannot trace the first, as 2.11 could not before NOTES item 23),
#: eagerly.
COMPILE_MODES = ("functional", "forward", "eager")
_COMPILE_OPTIONS = {"size_asserts": False}


def _provenance(model: ALIGNNModel) -> str:
    return str(model.source) if model.source else type(model).__name__


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


def _as_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> ALIGNNModel:
    """The calculator's own copy of a model: on ``device`` in ``dtype``, eval mode, parameters frozen.

    A model passed as an object is copied, so the caller's model is left as it
    was (dtype, device, trainable parameters).
    """
    if not isinstance(spec, (str, Path, ALIGNNModel)):
        raise InvalidArgumentError(
            f"a model is a shipped name, a path, an upstream model name or a loaded model, not {spec!r} (the default "
            "potential: 'default')"
        )
    with torch.inference_mode(False):  # weights made in inference mode could not take part in the force backward
        model = copy.deepcopy(spec) if isinstance(spec, ALIGNNModel) else load_model(spec, dtype)
        model.embedding_tables = None  # a calculator's model passed on: its tables were made for its dtype
        model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        if dtype == torch.float32:  # tables exact to float32 rounding; float64 keeps the exact MLPs
            model.tabulate_embeddings()
        return model


class ALIGNNCalculator(Calculator):
    """ASE calculator for an ALIGNN potential, with optional property models.

    Args:
        model: ``"default"`` (the shipped default potential), the name of a
            shipped potential, a path to a checkpoint folder or zip (upstream
            ALIGNN or alignn-ase format), the name of one of upstream ALIGNN's
            published models (downloaded once, see :mod:`alignn_ase.download`;
            ``"upstream:<name>"`` where a shipped model has that name), or a
            loaded model (the calculator works on its own copy).
        device: ``None`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
            On a GPU a call's cost is mostly the host issuing work until
            several hundred atoms (measured on an H200, eager: ~15 ms at 8
            atoms, ~26 ms at 1000, against 3 and 57 ms on two CPU threads;
            ``benchmarks/results/benchmark_cuda.md``), so single small cells
            run faster with ``device="cpu"``, while batches (:meth:`predict`,
            used by the phonon and EOS workflows) and large cells gain.
        dtype: ``"float32"`` or ``"float64"``: the models' weights and arithmetic (default: a
            loaded model's own dtype, float32 for a name or path). Positions, cell
            and bond vectors are formed in float64 either way, and site energies summed in float64.
            In float32 the atom, bond and angle embeddings come from tables built once from the
            exact MLPs (:mod:`~alignn_ase.nn.tabulate`; agreeing to float32 rounding); float64
            evaluates the MLPs.
        properties: property models to evaluate at every geometry, as a list
            of names/paths/models (result key: the model's target name) or a
            mapping ``{result_key: name/path/model}``.
        skin: Verlet skin (Å) for neighbour-list reuse between calls (0
            disables). It applies to potentials whose graph is every bond
            within a cut-off (alignn-ase's smooth models): the bond list is
            gathered out to cutoff + ``skin`` and rebuilt only when atoms (or
            the cell) have moved enough that a bond from outside could have come
            within the cut-off; each call keeps the bonds within the cut-off and
            builds their line graph, so results equal a full rebuild to float
            rounding (:class:`~alignn_ase.graph.GraphCache`). Upstream
            checkpoints (``k-nearest`` or neighbour-capped graphs, discontinuous
            in the positions) rebuild at every call.
        compile: run the models through ``torch.compile`` (dynamic shapes; the
            potential's forward and backward as one program, see
            :func:`~alignn_ase.compute.functional_derivatives`; where that fails
            to compile, its forward alone, then eager, each step with a logged
            warning: ``compile_mode`` says which, see :data:`COMPILE_MODES`; a property model whose
            compilation fails runs eagerly). The first call pays the
            compilation (measured here for the default potential: 31 s with an empty
            compiler cache, 3-6 s once the cache on disk holds it), and the first :meth:`predict` batch
            after single calls compiles once more. Measured on two CPU threads:
            1.2-1.8x faster per call from 8 to 1,000 atoms
            (``benchmarks/results/benchmark.md``, ``benchmarks/NOTES.md``).

    Results (``calc.results``): ``energy`` and ``free_energy`` (eV), ``forces``
    (eV/Å), ``stress`` (eV/Å³, Voigt order xx yy zz yz xz xy, ASE sign:
    positive = tensile; structures with a 3D cell), ``energies`` (eV per atom,
    models with site energies only), plus one entry per property model in its
    target's units. All are computed together in one model evaluation per
    geometry; ASE's cache (``Calculator.calculate`` / ``check_state``) serves
    repeated requests. :meth:`predict` evaluates many structures in batches.

    Counters: ``n_model_evaluations`` (potential evaluations, one per
    geometry or batch) and ``n_graph_builds`` (graphs of the potential built
    from scratch; with a skin, fewer than geometries).

    A structure in which some atom has no neighbour within the potential's
    cut-off (e.g. bcc Cs under 5 Å) is evaluated, with a logged warning (once
    per calculator): the model sees such atoms as isolated.
    """

    def __init__(
        self,
        model: ModelSpec = "default",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        properties: Sequence[ModelSpec] | Mapping[str, ModelSpec] | None = None,
        skin: float = 1.0,
        compile: bool = False,
        **kwargs: Any,
    ):
        unknown = sorted(set(kwargs) - _ASE_ARGUMENTS)
        if unknown:
            hint = (
                " (upstream ALIGNN's calculator takes the checkpoint as path=/model_filename=; here it is model=)"
                if {"path", "model_filename", "model_path"} & set(unknown) else ""
            )
            raise InvalidArgumentError(
                f"unknown argument(s) {unknown}{hint}; ALIGNNCalculator takes model, device, dtype, properties, "
                f"skin, compile and ASE's {sorted(_ASE_ARGUMENTS)}"
            )
        if not isinstance(compile, bool):
            raise InvalidArgumentError(f"compile must be True or False, got {compile!r}")
        super().__init__(**kwargs)
        self.device = resolve_device(device)
        if dtype is None:  # a loaded model keeps its own dtype; a name or path loads in float32
            dtype = model.float_dtype if isinstance(model, ALIGNNModel) else torch.float32
        self.dtype = resolve_dtype(dtype)
        skin = check_skin(skin)
        self.model = _as_model(model, self.device, self.dtype)
        if not self.model.is_potential:
            raise CheckpointError(
                f"{self.model.source or 'this model'} is a property model ({self.model.property_name!r}); "
                "pass it as properties=[...] next to a potential (command line: --property, with predict)"
            )
        self.property_models: dict[str, ALIGNNModel] = {}
        if isinstance(properties, (str, Path, ALIGNNModel)):  # one property model, not its name's letters
            properties = [properties]
        if properties is not None and not isinstance(properties, (Mapping, Sequence)):
            raise InvalidArgumentError(f"properties must be a list of models or a mapping name -> model, not {properties!r}")
        items = properties.items() if isinstance(properties, Mapping) else [(None, p) for p in properties or []]
        for key, spec in items:
            if key is not None and not (isinstance(key, str) and key):
                raise InvalidArgumentError(f"a property's result name must be a non-empty string, got {key!r}")
            m = _as_model(spec, self.device, self.dtype)
            if m.is_potential:
                raise InvalidArgumentError(f"{spec!r} is a potential, not a property model")
            name = key or m.property_name
            if name in ("energy", "free_energy", "forces", "stress", "energies"):
                raise InvalidArgumentError(
                    f"property name {name!r} is a result of the potential; pass a mapping with another name"
                )
            if name in self.property_models:
                raise InvalidArgumentError(f"property name {name!r} is used twice; pass a mapping to rename")
            self.property_models[name] = m
        self.compiled = bool(compile)
        #: with ``compile``: how the models run now, one of COMPILE_MODES (it moves down the list when compiling
        #: fails); None without ``compile``
        self.compile_mode: str | None = None
        self._eager_properties: set[str] = set()  # property models whose compiled forward failed
        self._derivatives = autograd_derivatives
        if self.compiled:
            self.compile_mode = "functional"
            self._compile()
        self.implemented_properties = ["energy", "free_energy", "forces", "stress"]
        if self.model.has_site_energies:
            self.implemented_properties.append("energies")
        self.implemented_properties += list(self.property_models)
        # Reuse needs a radius graph, and a minimum distance that rejects atoms closer than the
        # bond list's self tolerance (such a pair is left out of a build but would be a bond later).
        reusable = self.model.graph_settings.strategy == "radius" and self.model.min_distance > SELF_TOLERANCE
        self.skin = skin if reusable else 0.0
        # what made the results, for ASE's records (todict(), ase.db's calculator_parameters); fixed, see set()
        self.parameters = Parameters(
            model=_provenance(self.model), device=str(self.device), dtype=str(self.dtype).removeprefix("torch."),
            skin=self.skin, compile=self.compiled,
            properties={name: _provenance(m) for name, m in self.property_models.items()},
        )
        self._graphs = self._cache(self.model, self.skin)
        self._property_graphs = {name: self._cache(m, 0.0) for name, m in self.property_models.items()}
        self.n_model_evaluations = 0
        self._warned_isolated = False

    def _compile(self) -> None:
        """Wrap the models in ``torch.compile`` as ``compile_mode`` says. The potential: forward and backward
        compiled together as one program (torch.func.grad), or its forward alone; property models (but those
        that failed to compile): their forward. Module guards stay: compiled code is cached per code object, so
        without them a second model of the same class (e.g. another width) would run the first one's compiled
        graph (NOTES.md item 15)."""
        if self.compile_mode == "functional":
            self._derivatives = torch.compile(functional_derivatives, dynamic=True, options=_COMPILE_OPTIONS)
        elif self.compile_mode == "forward":
            self.model.compile(dynamic=True, options=_COMPILE_OPTIONS)
        for name, m in self.property_models.items():
            if name not in self._eager_properties:
                m.compile(dynamic=True, options=_COMPILE_OPTIONS)

    def __getstate__(self) -> dict[str, Any]:
        """For pickle and deepcopy: ``torch.compile``'s wrappers do not pickle, so a compiled calculator
        travels without them (modules drop theirs themselves) and compiles again, in the mode it had
        reached, when unpickled."""
        state = self.__dict__.copy()
        state["_derivatives"] = autograd_derivatives
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.compiled:
            self._compile()

    def set(self, **kwargs: Any) -> dict[str, Any]:
        """Refuse to change settings: the model, dtype and graphs are fixed when the calculator is made."""
        if kwargs:
            raise InvalidArgumentError(
                f"cannot set {sorted(kwargs)} on an ALIGNNCalculator; make a new one with the settings you want"
            )
        return {}

    def _cache(self, model: ALIGNNModel, skin: float) -> GraphCache:
        return GraphCache(model.graph_settings, GRAPH_DTYPE, self.device, model.min_distance, skin)

    @property
    def n_graph_builds(self) -> int:
        """Graphs of the potential built from scratch so far (the rest reused the skin graph)."""
        return self._graphs.n_builds

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
        with_stress = has_3d_cell(atoms if atoms is not None else self.atoms)
        # refused before ASE takes the new geometry, so that the results of these atoms (energy, forces) stay
        if "stress" in properties and not with_stress:
            raise PropertyNotImplementedError("stress needs a 3D cell; this structure's cell volume is 0")
        super().calculate(atoms, properties, system_changes)
        # ASE now takes self.atoms as the geometry of self.results: drop the last geometry's results, so that an
        # error below does not leave them to be served for these atoms
        self.results = {}
        atoms = self.atoms
        with torch.inference_mode(False):  # forces need autograd, also when the caller is in inference mode
            graph = self._graphs(atoms)
            self._warn_isolated(graph, bool(atoms.pbc.any()))
            props = {name: cache(atoms) for name, cache in self._property_graphs.items()}
            (self.results,) = self._evaluate(graph, props, [with_stress])

    def _warn_isolated(self, graph: AtomGraph, periodic: bool) -> None:
        """Log a warning (once per calculator) when an atom of a periodic structure, or of a molecule with more
        than one atom, has no neighbour (periodic images included) within the potential's cut-off: the model
        then sees it as an isolated atom."""
        if self._warned_isolated or (graph.num_atoms < 2 and not periodic):
            return
        isolated = int((torch.bincount(graph.src, minlength=graph.num_atoms) == 0).sum())
        if isolated:
            self._warned_isolated = True
            logger.warning(
                "%d of %d atoms have no neighbour within this potential's %.2f Å cut-off: the model treats them "
                "as isolated atoms (no force on them, no geometry in their energy); e.g. bcc Cs, whose nearest "
                "neighbours are 5.2 Å apart, under a 5 Å cut-off. Shown once per calculator.",
                isolated, graph.num_atoms, self.model.graph_settings.cutoff,
            )

    def predict(
        self, structures: Sequence[Atoms], batch_size: int = 32, progress: bool = True
    ) -> list[dict[str, Any]]:
        """Evaluate many structures, ``batch_size`` at a time in one forward/backward pass each.

        Returns one dict per structure with the keys and units of
        ``calc.results`` (``stress`` only for structures with a 3D cell), equal
        to evaluating them one by one up to float rounding. The structures are
        not modified and the calculator's state (``calc.results``, the skin
        graph) is left alone. ``progress`` shows a tqdm bar when there is more
        than one batch.
        """
        if not is_whole(batch_size, 1):
            raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(structures, Atoms):
            raise InvalidArgumentError("predict takes a list of structures; for one ase.Atoms, pass [atoms]")
        if not isinstance(structures, Iterable):
            raise InvalidArgumentError(f"predict takes a list of ase.Atoms, not {type(structures).__name__}")
        structures = list(structures)
        for i, atoms in enumerate(structures):
            if not isinstance(atoms, Atoms):
                raise InvalidArgumentError(f"structure {i} is a {type(atoms).__name__}, not an ase.Atoms")
        results: list[dict[str, Any]] = [{} for _ in structures]
        starts = range(0, len(structures), batch_size)
        bar = tqdm(starts, desc="predict", unit="batch", disable=not progress or len(starts) < 2, leave=False)
        with torch.inference_mode(False):
            self._predict_batches(structures, bar, batch_size, results)
        return results

    def _predict_batches(
        self, structures: list[Atoms], starts: Iterable[int], batch_size: int, results: list[dict[str, Any]]
    ) -> None:
        """Fill ``results`` (one dict per structure) batch by batch; see :meth:`predict`."""
        for start in starts:
            group = list(range(start, min(start + batch_size, len(structures))))
            atoms = [structures[i] for i in group]
            try:
                graph = self._build(self.model, atoms)
                props = {name: self._build(m, atoms) for name, m in self.property_models.items()}
                # which structures get a stress: decided as evaluate() decides where it is defined
                defined = (graph.volume() >= MIN_CELL_VOLUME).tolist()
                for i, res in zip(group, self._evaluate(graph, props, defined)):
                    results[i] = res
            except InvalidStructureError as exc:
                if len(structures) == 1:
                    raise
                raise self._naming_structure(exc, structures, group) from None

    def _naming_structure(
        self, exc: InvalidStructureError, structures: list[Atoms], group: list[int]
    ) -> InvalidStructureError:
        """``exc``, raised for a batch of ``structures[group]``, re-made with the index of the first structure
        that raises on its own (also as the attribute ``structure_index``): a batch's message otherwise
        cannot say which structure it means."""
        models = [self.model, *self.property_models.values()]
        for i in group:
            try:
                for m in models:
                    self._build(m, [structures[i]])
                numbers = torch.as_tensor(structures[i].numbers)
                self.model.check_elements(numbers)
                self._check_property_elements(numbers)
            except InvalidStructureError as own:
                named = type(own)(f"structure {i} (of {len(structures)}): {own}")
                named.structure_index = i
                return named
        return exc

    def _compile_settings(self) -> contextlib.AbstractContextManager:
        """With ``compile``: let the compiler trace the data-dependent sizes of
        :func:`~alignn_ase.nn.layers.edge_endpoints` instead of splitting the graph there."""
        if not self.compiled:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        # specialize_float: the models' float hyperparameters (cut-offs, RBF widths, norm eps) are constants; as
        # symbols they made dynamo restart its analysis once, ~4 s of the first call. The compiled artifacts,
        # autograd.Functions included (gather_rows, scatter_sum), are cached on disk between processes.
        # Options an older torch lacks are left out (they change speed, not results).
        for config, options in (
            (torch._dynamo.config,
             {"capture_dynamic_output_shape_ops": True, "specialize_float": True}),
            (torch._functorch.config, {"autograd_cache_allow_custom_autograd_functions": True}),
        ):
            stack.enter_context(config.patch({k: v for k, v in options.items() if hasattr(config, k)}))
        return stack

    def _run(
        self,
        model: ALIGNNModel,
        graph: AtomGraph,
        forces: bool,
        stress: bool | Literal["where_defined"],
        prop: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """:func:`~alignn_ase.compute.evaluate` of the potential (or of the property model ``prop``) under
        :meth:`_compile_settings`.

        If a compiled evaluation fails, it is repeated eagerly: if that fails too, the error is about the input or
        the model and is raised as it is; if it succeeds, compiling was the problem (no working C++ compiler, a
        torch whose compiler cannot trace the program, ...): a warning is logged and the potential moves to the
        next of :data:`COMPILE_MODES` (a property model runs eagerly from then on). Errors of alignn-ase's own
        checks, and running out of memory, are raised at once.
        """
        # each model by its own record: a potential that fell back to eager leaves compiled property models alone
        eager = prop in self._eager_properties if prop is not None else self.compile_mode == "eager"
        settings = torch.compiler.set_stance("force_eager") if eager else self._compile_settings()
        try:
            with settings:
                return evaluate(model, graph, forces=forces, stress=stress, derivatives=self._derivatives)
        except (AlignnAseError, torch.OutOfMemoryError):
            raise
        except Exception as exc:
            if not self.compiled or eager:
                raise
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        with torch.compiler.set_stance("force_eager"):
            out = evaluate(model, graph, forces=forces, stress=stress, derivatives=autograd_derivatives)
        if prop is not None:
            self._eager_properties.add(prop)
            logger.warning("torch.compile of the property model %r failed (%s); it runs eagerly from now on",
                           prop, reason)
            return out
        self.compile_mode = COMPILE_MODES[COMPILE_MODES.index(self.compile_mode) + 1]
        self._derivatives = autograd_derivatives
        if self.compile_mode == "forward":
            self._compile()
            logger.warning("torch.compile of the potential's forward and backward together failed (%s); "
                           "compiling its forward alone, with autograd for the backward", reason)
        else:
            logger.warning("torch.compile of the potential failed (%s); it runs eagerly from now on", reason)
        return out

    def _build(self, model: ALIGNNModel, structures: list[Atoms]) -> AtomGraph:
        return build_graphs(structures, model.graph_settings, GRAPH_DTYPE, self.device, model.min_distance)

    def _check_property_elements(self, numbers: torch.Tensor) -> None:
        """Raise :class:`UnsupportedElementError`, naming the model, if a property model lacks an element: called
        before the potential runs (which :func:`~alignn_ase.compute.evaluate` checks itself before it runs)."""
        for name, m in self.property_models.items():
            try:
                m.check_elements(numbers)
            except UnsupportedElementError as exc:
                raise UnsupportedElementError(f"property model {name!r}: {exc}") from None

    def _evaluate(
        self, graph: AtomGraph, property_graphs: dict[str, AtomGraph], with_stress: list[bool]
    ) -> list[dict[str, Any]]:
        """Results of the structures of a (batched) graph, one evaluation per model, with a stress for the
        structures flagged in ``with_stress`` (those with a 3D cell); ``property_graphs`` are the same
        structures' graphs for each property model."""
        self._check_property_elements(graph.numbers)
        stress = all(with_stress) or ("where_defined" if any(with_stress) else False)
        out = self._run(self.model, graph, forces=True, stress=stress)
        self.n_model_evaluations += 1
        n_atoms = graph.n_atoms.tolist()
        starts = np.cumsum(n_atoms)[:-1]
        energy = out["energy"].cpu().numpy().astype(np.float64)
        if "energies" in out:
            # the site energies summed in float64: a float32 sum over many atoms loses ~1e-3 eV at 1000 atoms
            energies = np.split(out["energies"].cpu().numpy().astype(np.float64), starts)
            energy = np.array([e.sum() for e in energies])
        forces = np.split(out["forces"].cpu().numpy().astype(np.float64), starts)
        results: list[dict[str, Any]] = [
            {"energy": float(e), "free_energy": float(e), "forces": f} for e, f in zip(energy, forces)
        ]
        if stress:
            voigt = full_3x3_to_voigt_6_stress(out["stress"].cpu().numpy().astype(np.float64))
            for res, s, defined in zip(results, voigt, with_stress):
                if defined:
                    res["stress"] = s
        if "energies" in out:
            for res, e in zip(results, energies):
                res["energies"] = e
        for name, m in self.property_models.items():
            values = self._run(m, property_graphs[name], forces=False, stress=False, prop=name)["property"]
            values = values.cpu().numpy().astype(np.float64)
            for res, v in zip(results, values):
                res[name] = float(v) if v.ndim == 0 else v
        return results

