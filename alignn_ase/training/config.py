"""The training config: one validated YAML or JSON file, errors that name the field.

Example (YAML)::

    output_dir: runs/formation_energy
    task: {kind: regression, target: formation_energy_peratom, loss: l1}
    data: {path: dft_3d.json, format: jarvis_json}
    model: {architecture: alignn, params: {alignn_layers: 4, gcn_layers: 4}}
    optim: {epochs: 300, batch_size: 64, lr: 0.001}
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from ..errors import ConfigError
from ..nn.config import parse_config

Architecture = Literal["alignn_ase_smooth", "alignn", "alignn_atomwise", "alignn_atomwise_pure"]
DataFormat = Literal["auto", "jarvis_json", "id_prop", "extxyz", "ase_db"]


@dataclass
class TaskConfig:
    """What is learned.

    Attributes:
        kind: ``regression`` (one scalar per structure), ``classification``
            (class index per structure) or ``forcefield`` (energy, forces,
            stress).
        target: the property key (regression / classification).
        loss: ``mse``, ``l1`` or ``huber`` (regression and each force-field term).
        huber_delta: Huber loss threshold, in the units of each term.
        num_classes: classes of a classification task.
        threshold: turn a numeric property into two classes: 1 if value > threshold.
        energy_weight: weight of the energy-per-atom term (eV/atom).
        force_weight: weight of the force term (eV/Å).
        stress_weight: weight of the stress term (GPa).
    """

    kind: Literal["regression", "classification", "forcefield"] = "regression"
    target: str | None = None
    loss: Literal["mse", "l1", "huber"] = "mse"
    huber_delta: float = 0.01
    num_classes: int = 2
    threshold: float | None = None
    energy_weight: float = 1.0
    force_weight: float = 10.0
    stress_weight: float = 0.1


@dataclass
class DataConfig:
    """Where structures and labels come from and how they are split.

    Attributes:
        path: a JARVIS-style JSON file, an ``id_prop.csv`` folder, an extxyz
            file or an ASE database.
        format: reader; ``auto`` guesses from the path.
        id_key: record id field of JARVIS JSON / ASE db key-value pairs.
        skip_invalid: skip (and count) bad records instead of raising.
        split_ratios: train/val/test fractions (used unless ``split_counts``
            or ``split_file``).
        split_counts: train/val/test numbers of structures.
        split_file: a JSON file ``{"train": [ids], "val": [ids], "test": [ids]}``.
        group_key: split by the structure's ``info[group_key]`` (e.g. the parent
            structure or MD trajectory of each frame): whole groups go to one part,
            so near-duplicate frames do not sit on both sides of a split; groups are
            dealt to test, then validation, until each holds at least its share of
            ``split_ratios``, so large groups overshoot it.
        energy_key: the force-field energy label, an ASE property: ``energy`` (default) or ``free_energy``.
            For a smeared-metal DFT calculation (e.g. VASP with ISMEAR > 0) ASE's ``energy`` is the
            sigma -> 0 extrapolation, while the forces and stress are derivatives of ``free_energy``: train on
            ``free_energy`` for labels that are consistent with each other.
        cache_dir: where built graphs are cached (default ``<output_dir>/graph_cache``).
        in_memory: keep built graphs in RAM; ``false`` streams them from the
            cache for datasets larger than memory.
    """

    path: str = ""
    format: DataFormat = "auto"
    id_key: str = "jid"
    skip_invalid: bool = False
    split_ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_counts: list[int] | None = None
    split_file: str | None = None
    group_key: str | None = None
    energy_key: Literal["energy", "free_energy"] = "energy"
    cache_dir: str | None = None
    in_memory: bool = True


#: upstream's graph settings (its TrainingConfig's defaults), for the fields ``model.graph`` does not give
DEFAULT_GRAPH = {"neighbor_strategy": "k-nearest", "cutoff": 8.0, "max_neighbors": 12}


@dataclass
class ModelConfig:
    """The network.

    Attributes:
        architecture: ``alignn_ase_smooth`` (our force field), ``alignn``
            (the paper's property model) or upstream's force-field models.
        params: hyperparameters of the architecture's own config
            (:class:`~alignn_ase.nn.smooth.SmoothConfig`,
            :class:`~alignn_ase.nn.upstream.ALIGNNConfig`, ...).
        graph: graph settings of upstream architectures (``neighbor_strategy``,
            ``cutoff``, ``max_neighbors``, ``use_canonize``, ``atom_features``,
            and ``three_body_cutoff`` for ``pure_torch``); fields not given take upstream's defaults
            (:data:`DEFAULT_GRAPH`), and ``atom_features`` the set whose width is
            ``params.atom_input_features``.
        init_from: fine-tune from this checkpoint (name or path, ours or
            upstream's); ``architecture`` and ``graph`` are then ignored, and
            ``params`` may only repeat the loaded model's values or switch on
            parts that start at zero output (``angle_energy: true`` of an
            ``alignn_ase_smooth`` model).
        freeze: modules or parameters to keep fixed, as leading parts of parameter names (e.g.
            ``atom_embedding``, ``alignn_layers.0``; whole dotted parts: ``alignn_layers.1`` is not layer 10).
    """

    architecture: Architecture = "alignn_ase_smooth"
    params: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_GRAPH))
    init_from: str | None = None
    freeze: list[str] = field(default_factory=list)


@dataclass
class OptimConfig:
    """Optimiser and schedule (ALIGNN's defaults: AdamW, OneCycle).

    Attributes:
        epochs: passes over the training set.
        batch_size: structures per step (per process under torchrun).
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        scheduler: ``onecycle``, ``cosine`` or ``none``.
        grad_clip: max gradient norm (``null`` disables clipping).
        ema_decay: exponential moving average of weights (``null`` disables);
            the averaged weights are validated and saved.
        patience: stop after this many epochs without a better validation loss.
        max_minutes: wall-clock budget of one invocation, in minutes (``null``: none). After each epoch the
            run pauses, resumably, if one more epoch as long as the longest so far would end past the budget;
            running the same config again continues where it paused, as a run that was never interrupted
            would (the schedule spans all ``epochs``). At least one epoch runs per invocation. For machines
            lent for a fixed time.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    scheduler: Literal["onecycle", "cosine", "none"] = "onecycle"
    grad_clip: float | None = 10.0
    ema_decay: float | None = None
    patience: int | None = None
    max_minutes: float | None = None


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        output_dir: checkpoints, metrics, plots and predictions go here.
        seed: seeds the split, initial weights and batch order.
        device: ``cpu``, ``cuda`` or ``null`` (CUDA if available).
        dtype: ``float32`` or ``float64``.
        resume: continue from ``output_dir``'s last checkpoint if there is one.
        card: model-card text written beside the saved models.
    """

    output_dir: str = "alignn_ase_run"
    seed: int = 0
    device: str | None = None
    dtype: Literal["float32", "float64"] = "float32"
    resume: bool = True
    card: str | None = None
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        t, d, o = self.task, self.data, self.optim
        if not d.path:
            raise ConfigError("config: field 'data.path' is required")
        if t.kind != "forcefield" and not t.target:
            raise ConfigError(f"config: field 'task.target' is required for a {t.kind} task")
        if t.kind == "forcefield" and self.model.architecture == "alignn":
            raise ConfigError("config: field 'model.architecture' 'alignn' is a property model; use a force field")
        if t.kind != "forcefield" and self.model.architecture == "alignn_ase_smooth" and not self.model.init_from:
            raise ConfigError(
                "config: field 'model.architecture' 'alignn_ase_smooth' is a force field; use 'alignn' for properties"
            )
        if t.kind == "classification" and t.num_classes < 2:
            raise ConfigError(f"config: field 'task.num_classes' must be >= 2, got {t.num_classes}")
        if t.kind == "classification" and t.num_classes > 2 and self.model.architecture != "alignn":
            raise ConfigError(
                f"config: field 'task.num_classes' {t.num_classes} needs model.architecture 'alignn'; "
                f"{self.model.architecture!r} (upstream's atomwise model) classifies into two classes only"
            )
        if len(d.split_ratios) != 3 or any(r < 0 for r in d.split_ratios) or not 0.99 < sum(d.split_ratios) < 1.01:
            raise ConfigError(f"config: field 'data.split_ratios' must be 3 fractions summing to 1, got {d.split_ratios}")
        if d.group_key is not None and d.split_counts is not None:
            raise ConfigError("config: data.split_counts cannot be met with data.group_key (whole groups go to one "
                              "part); give data.split_ratios")
        if d.split_counts is not None and (len(d.split_counts) != 3 or any(c < 0 for c in d.split_counts)):
            raise ConfigError(f"config: field 'data.split_counts' must be 3 non-negative counts, got {d.split_counts}")
        for name in ("epochs", "batch_size"):
            if getattr(o, name) < 1:
                raise ConfigError(f"config: field 'optim.{name}' must be >= 1, got {getattr(o, name)}")
        if not o.lr > 0:
            raise ConfigError(f"config: field 'optim.lr' must be positive, got {o.lr}")
        if o.ema_decay is not None and not 0 < o.ema_decay < 1:
            raise ConfigError(f"config: field 'optim.ema_decay' must lie in (0, 1), got {o.ema_decay}")
        if o.grad_clip is not None and not o.grad_clip > 0:  # a negative norm would flip the gradient
            raise ConfigError(f"config: field 'optim.grad_clip' must be positive or null, got {o.grad_clip}")
        if not 0 <= o.weight_decay < math.inf:
            raise ConfigError(f"config: field 'optim.weight_decay' must be a finite number >= 0, got {o.weight_decay}")
        if o.max_minutes is not None and not 0 < o.max_minutes < math.inf:
            raise ConfigError(f"config: field 'optim.max_minutes' must be a positive number or null, got {o.max_minutes}")
        if o.patience is not None and o.patience < 1:
            raise ConfigError(f"config: field 'optim.patience' must be >= 1 or null, got {o.patience}")
        for name in ("energy_weight", "force_weight", "stress_weight"):
            if not 0 <= getattr(t, name) < math.inf:
                raise ConfigError(f"config: field 'task.{name}' must be a finite number >= 0 (0 leaves the term out), "
                                  f"got {getattr(t, name)}")
        if t.kind == "forcefield" and (t.target is not None or t.threshold is not None):
            raise ConfigError("config: fields 'task.target' and 'task.threshold' belong to regression and "
                              "classification tasks; a forcefield task trains on energies, forces and stresses")
        if t.kind == "regression" and t.threshold is not None or t.kind != "classification" and t.num_classes != 2:
            raise ConfigError(f"config: fields 'task.threshold' and 'task.num_classes' belong to classification tasks, "
                              f"and this one is a {t.kind} task; set task.kind: classification to classify")
        if t.kind == "forcefield" and t.energy_weight == t.force_weight == t.stress_weight == 0:
            raise ConfigError("config: fields 'task.energy_weight', 'task.force_weight' and 'task.stress_weight' are "
                              "all 0: the loss would be 0 and nothing would train")
        if t.kind == "classification" and t.threshold is not None and t.num_classes != 2:
            raise ConfigError(f"config: field 'task.threshold' makes two classes (at or below / above it), but "
                              f"'task.num_classes' is {t.num_classes}")
        if not 0 < t.huber_delta < math.inf:
            raise ConfigError(f"config: field 'task.huber_delta' must be a finite positive number, got {t.huber_delta}")
        if self.seed < 0:
            raise ConfigError(f"config: field 'seed' must be >= 0, got {self.seed}")

    @property
    def cache_dir(self) -> Path:
        return Path(self.data.cache_dir) if self.data.cache_dir else Path(self.output_dir) / "graph_cache"


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Validate a config mapping; raises :class:`~alignn_ase.errors.ConfigError` naming the bad field."""
    config = parse_config(TrainConfig, data, where, error=ConfigError, strict=True)
    model = data.get("model") or {}
    if "graph" in model and config.model.architecture == "alignn_ase_smooth" and not config.model.init_from:
        raise ConfigError(f"{where}: field 'model.graph' applies to upstream architectures; the "
                          "alignn_ase_smooth graph is set by model.params (cutoff, three_body_cutoff)")
    return config


class _Loader(yaml.SafeLoader):
    """YAML with 1e-3 and 1.0e3 read as numbers (YAML 1.2, JSON); PyYAML's YAML 1.1 rules make them strings.
    A key given twice in one mapping is an error (PyYAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        repeated = _repeated([self.construct_object(key, deep=deep) for key, _ in node.value])
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"key(s) {repeated} given twice", node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _repeated(keys: Sequence[Any]) -> list[str]:
    """The keys that occur more than once, as sorted strings."""
    return sorted({str(k) for k in keys if keys.count(k) > 1})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice is an error (json would keep the last)."""
    repeated = _repeated([k for k, _ in pairs])
    if repeated:
        raise json.JSONDecodeError(f"key(s) {repeated} given twice", "", 0)
    return dict(pairs)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], where: str = "config") -> dict[str, Any]:
    """``data`` with ``KEY=VALUE`` overrides applied: dotted keys (``data.path``, ``optim.lr``) into nested
    sections, values parsed as JSON where they are JSON (``1e-3`` a number, ``null`` None, ``[1, 2]`` a list),
    else as YAML (``train.extxyz`` a string)."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: override {item!r} is not KEY=VALUE (e.g. data.path=train.extxyz)")
        try:
            value = json.loads(text)  # YAML 1.1 would read 1e-3 as a string
        except json.JSONDecodeError:
            try:
                value = yaml.load(text, Loader=_Loader)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{where}: override {item!r}: value is not valid YAML ({exc})") from None
        *parents, leaf = key.strip().split(".")
        section = data
        for name in parents:
            section = section.setdefault(name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{where}: override {item!r}: {name!r} is not a section")
        section[leaf] = value
    return data


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read and validate a YAML (``.yaml``/``.yml``) or JSON training config, with ``KEY=VALUE``
    ``overrides`` (see :func:`apply_overrides`) applied before validation."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror}") from None
    try:
        data = (yaml.load(text, Loader=_Loader) if path.suffix in (".yaml", ".yml")
                else json.loads(text, object_pairs_hook=_unique_keys))
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {exc}") from None
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = apply_overrides(data, overrides, str(path))
    return config_from_dict(data, str(path))
