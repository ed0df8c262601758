"""The training loop: AdamW, OneCycle/cosine, clipping, EMA, early stopping, resumable checkpoints, torchrun.

Files written to ``output_dir``:

- ``split.json`` — the train/val/test ids;
- ``best_model/`` and ``last_model/`` — loadable checkpoints in alignn-ase's
  format (``load_model(path)``, ``ALIGNNCalculator(model=path)``);
- ``train_state.pt`` — optimiser, scheduler, EMA and loop state for resuming;
- ``metrics.csv`` / ``metrics.json`` — one row per epoch;
- ``test_metrics.json``, ``predictions_test.csv`` and parity plots (PNG).

Under ``torchrun`` every process trains on its slice of each global batch
and DistributedDataParallel averages gradients (gloo on CPU, NCCL on GPU);
rank 0 writes the files.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ase.data import chemical_symbols
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..calculator import resolve_device
from ..compute import evaluate
from ..errors import CheckpointError, ConfigError, DatasetError, InvalidArgumentError, UnsupportedElementError
from ..io import ATOM_FEATURE_WIDTH, FORMAT, FORMAT_VERSION, build_model, load_model, resolve_dtype, save_model
from ..nn.base import ALIGNNModel
from ..nn.smooth import SmoothALIGNN
from ..nn.upstream import ALIGNNAtomwiseConfig, ALIGNNConfig
from ..nn.config import parse_config
from .config import DEFAULT_GRAPH, TaskConfig, TrainConfig, config_from_dict, load_config
from .data import Record, read_dataset
from .graphs import GraphDataset, collate, epoch_batches, to_device
from .splits import load_split, make_split, save_split
from .tasks import Task, make_task

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"


@dataclass
class TrainResult:
    """What a run produced: the best checkpoint, test metrics (units in the metric names) and per-epoch history."""

    output_dir: Path
    best_model: Path
    test_metrics: dict[str, float]
    history: list[dict[str, float]]
    paused: bool = False  #: stopped by ``optim.max_minutes`` before the last epoch: run the same config again


class _Objective(nn.Module):
    """Model + task as one module, so DistributedDataParallel wraps the whole prediction (forces included)."""

    def __init__(self, model: ALIGNNModel, task: Task):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, graph: Any) -> dict[str, torch.Tensor]:
        return self.task.predict(self.model, graph, training=True)


@dataclass
class _Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "_Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        # NCCL reduces CUDA tensors only (the device set in train()); gloo, CPU ones
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()


def _check_kind(model: ALIGNNModel, kind: str, what: str) -> None:
    """Raise :class:`ConfigError` unless ``model`` is a force field exactly when ``kind`` is ``"forcefield"``."""
    if kind == "forcefield" and not model.is_potential:
        raise ConfigError(f"config: {what} is a property model (no energy gradient), not a force field")
    if kind != "forcefield" and model.is_potential:
        raise ConfigError(f"config: {what} is a force field, not a property model for task.kind {kind!r}")


def _make_model(cfg: TrainConfig, data_elements: list[str]) -> ALIGNNModel:
    """Build (or load, for fine-tuning) the model; a fresh smooth force field supports the data's elements
    unless ``params.elements`` says otherwise, so it rejects elements it never saw."""
    m, t = cfg.model, cfg.task
    if m.init_from:
        try:
            model = load_model(m.init_from, resolve_dtype(cfg.dtype))
        except CheckpointError as exc:  # UnknownModelError included
            raise ConfigError(f"config: field 'model.init_from': {exc}") from None
        logger.info("fine-tuning from %s", model.source)
        if m.params:
            model = _with_added_parts(model, m.params, m.init_from)
        _check_kind(model, t.kind, f"model.init_from {m.init_from!r}")
        if t.kind != "forcefield":
            classifier = model.num_classes is not None
            if classifier != (t.kind == "classification"):
                raise ConfigError(
                    f"config: model.init_from {m.init_from!r} is a {'classification' if classifier else 'regression'} "
                    f"model; task.kind is {t.kind!r}"
                )
            if classifier:
                if model.num_classes != t.num_classes:
                    raise ConfigError(
                        f"config: model.init_from {m.init_from!r} has {model.num_classes} classes; "
                        f"task.num_classes is {t.num_classes}"
                    )
            model.property_name = t.target
    else:
        params = dict(m.params)
        if m.architecture == "alignn_ase_smooth":
            params.setdefault("elements", data_elements)
            config: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                                      "architecture": m.architecture, "model": params}
        else:
            if t.kind == "classification":
                params["classification"] = True
                if m.architecture == "alignn":  # the atomwise models are binary (validated in TrainConfig)
                    params["num_classes"] = t.num_classes
            if t.kind != "forcefield" and m.architecture != "alignn":
                params.setdefault("calculate_gradient", False)
            config = {**_upstream_graph(m.graph, m.architecture, params), "model": {"name": m.architecture, **params},
                      "target": t.target}
        try:
            model = build_model(config, "config: model", strict=True)
        except CheckpointError as exc:  # here the config is the user's, not a checkpoint's
            raise ConfigError(str(exc)) from None
        _check_kind(model, t.kind, f"model {m.architecture!r} with params {m.params}")
    def matches(name: str, entry: str) -> bool:  # whole dotted parts: "alignn_layers.1" is not layer 10
        return name == entry or name.startswith(entry.rstrip(".") + ".")

    names = [name for name, _ in model.named_parameters()]
    unmatched = [f for f in m.freeze if not any(matches(name, f) for name in names)]
    if unmatched:
        raise ConfigError(f"config: model.freeze entries {unmatched} match no module or parameter name (e.g. "
                          f"{', '.join(sorted({n.split('.')[0] for n in names})[:6])})")
    frozen = [name for name in names if any(matches(name, f) for f in m.freeze)]
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    if frozen:
        logger.info("froze %d parameter tensors", len(frozen))
    return model


#: smooth-model switches a fine-tune may turn on (``model.params`` beside ``model.init_from``): each adds a part whose
#: output starts at zero, so the fine-tune starts from the loaded model's energies
ADDABLE_PARTS = ("angle_energy",)


def _with_added_parts(model: ALIGNNModel, params: dict[str, Any], source: str) -> ALIGNNModel:
    """``model`` (loaded from ``source``) with the parts that a fine-tune's ``params`` switch on, its weights copied;
    ``params`` may also repeat the loaded model's own hyperparameters (``elements`` in any order)."""
    where = f"config: model.params with model.init_from {source!r}"
    unknown = sorted(k for k in params if not hasattr(model.config, k))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} for a {type(model).__name__} model")

    def same(key: str, value: Any) -> bool:
        ours = getattr(model.config, key)
        if key == "elements" and isinstance(value, list | tuple) and isinstance(ours, list | tuple):
            return sorted(map(str, value)) == sorted(ours)
        return ours == value

    changed = {k: v for k, v in params.items() if not same(k, v)}
    # (an upstream model has no ADDABLE_PARTS field, so asking for one was refused above as unknown)
    wrong = sorted(k for k, v in changed.items() if k not in ADDABLE_PARTS or v is not True)
    if wrong:
        raise ConfigError(
            f"{where}: {({k: changed[k] for k in wrong})} differ from the loaded model's; a fine-tune keeps "
            f"its hyperparameters and can only switch on {list(ADDABLE_PARTS)} (true) of an alignn_ase_smooth model"
        )
    if not changed:
        return model
    grown = SmoothALIGNN(dataclasses.replace(model.config, **changed)).to(next(model.parameters()).dtype)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(k.startswith("angle_readout.") for k in missing):
        raise CheckpointError(f"{source}: its weights do not fit the grown model (missing {missing}, unexpected "
                              f"{unexpected})")
    grown.card, grown.source = model.card, model.source
    logger.info("added %s to the loaded model (their output starts at zero)", sorted(changed))
    return grown.eval()


#: ``model.graph`` fields of upstream architectures (see :class:`~alignn_ase.training.config.ModelConfig`)
GRAPH_FIELDS = ("neighbor_strategy", "cutoff", "max_neighbors", "use_canonize", "atom_features", "three_body_cutoff")


def _upstream_graph(graph: dict[str, Any], architecture: str, params: dict[str, Any]) -> dict[str, Any]:
    """``model.graph`` checked, with ``atom_features`` chosen to fit ``params`` when it is not given (cgcnn for 92
    input features, the atomwise models' default of 1 gives atomic_number)."""
    unknown = sorted(set(graph) - set(GRAPH_FIELDS))
    if unknown:
        raise ConfigError(f"config: model.graph: unknown field(s) {unknown}; known fields: {list(GRAPH_FIELDS)}")
    graph = {**DEFAULT_GRAPH, **graph}
    if "three_body_cutoff" in graph and graph["neighbor_strategy"] != "pure_torch":
        raise ConfigError("config: model.graph.three_body_cutoff applies to the pure_torch neighbor_strategy only")
    if "atom_features" in graph:
        return graph
    default = ALIGNNConfig if architecture == "alignn" else ALIGNNAtomwiseConfig
    width = params.get("atom_input_features", default.atom_input_features)
    by_width = {w: name for name, w in ATOM_FEATURE_WIDTH.items()}
    return {**graph, "atom_features": by_width.get(width, "cgcnn")}


def _groups(records: list[Record], key: str | None) -> list[str] | None:
    """Each record's ``atoms.info[key]`` (as a string), for a split by group; None without a key."""
    if key is None:
        return None
    missing = [r.id for r in records if key not in r.atoms.info]
    if missing:
        raise DatasetError(
            f"data.group_key {key!r}: record {missing[0]} has no info[{key!r}] ({len(missing)} of {len(records)} lack it)"
        )
    return [str(r.atoms.info[key]) for r in records]


def _check_elements(model: ALIGNNModel, records: list[Record]) -> None:
    """Raise :class:`DatasetError` naming the first record with an element ``model`` does not cover
    (before any graph is built, rather than when its batch comes up)."""
    for r in records:
        try:
            model.check_elements(torch.as_tensor(r.atoms.numbers))
        except UnsupportedElementError as exc:
            raise DatasetError(f"record {r.id}: {exc}") from None


def _warn_about_labels(task: TaskConfig, records: list[Record]) -> None:
    """Warn when a force-field loss term has a weight but no training record has its label (the term is then
    always zero: forces or stresses were not read, e.g. saved under another name)."""
    if task.kind != "forcefield":
        return
    for name, weight, key in (("force_weight", task.force_weight, "forces"),
                              ("stress_weight", task.stress_weight, "stress")):
        if weight > 0 and not any(key in r.labels for r in records):
            warnings.warn(
                f"task.{name} is {weight} but none of the {len(records)} training structures has a {key} label, so "
                f"that term is zero; labels are read from the structures' calculator results, arrays['forces'] and "
                f"info['stress'] (or info['virial'])",
                stacklevel=3,
            )


def _warn_about_split(sets: dict[str, GraphDataset]) -> None:
    """Log what a split silently costs: no validation (the best model is picked on the training loss),
    no test, or elements that no training structure holds (their reference energies and embeddings stay
    untrained)."""
    if not len(sets["val"]):
        logger.warning("no validation structures: the best model is chosen on the training loss")
    if not len(sets["test"]):
        logger.warning("no test structures: no test metrics")
    seen = {int(z) for n in sets["train"].numbers for z in n}
    elsewhere = {int(z) for part in ("val", "test") for n in sets[part].numbers for z in n} - seen
    if elsewhere:
        logger.warning(
            "element(s) %s occur only in validation/test structures: the model learns nothing about them",
            ", ".join(chemical_symbols[z] for z in sorted(elsewhere)),
        )


#: Config entries that may change between a run and its resumption: where things are and when an invocation pauses,
#: not what is computed.
_RESUMABLE_CHANGES = {
    "output_dir", "device", "resume", "card", "data.cache_dir", "data.in_memory", "optim.max_minutes",
}


def _flatten(value: dict[str, Any]) -> dict[str, Any]:
    """Nested config entries as ``{"optim.lr": json, ...}``, leaving out those a resumed run may change."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif prefix not in _RESUMABLE_CHANGES:
            flat[prefix] = json.dumps(value, sort_keys=True)

    walk("", value)
    return flat


def _run_identity(cfg: TrainConfig) -> dict[str, Any]:
    """The config entries that define a run, flattened (``optim.lr``, ...); a resumed run must match them."""
    return _flatten(asdict(cfg))


def _default_identity() -> dict[str, Any]:
    """:func:`_run_identity` of the defaults: the value of an entry that a run made before it existed had."""
    defaults = {}
    for f in fields(TrainConfig):
        value = f.default if f.default is not MISSING else f.default_factory()
        defaults[f.name] = asdict(value) if is_dataclass(value) else value
    return _flatten(defaults)


def _check_same_run(cfg: TrainConfig, saved: dict[str, Any] | None, out: Path) -> None:
    """Raise :class:`ConfigError` when the run in ``out`` was made with another config (``saved``: its
    :func:`_run_identity`; None for a state written before it was recorded)."""
    if saved is None:
        return
    now, defaults = _run_identity(cfg), _default_identity()
    # an entry the saved run lacks (added to the config since) had its default value then
    changed = sorted(k for k in set(now) | set(saved) if now.get(k) != saved.get(k, defaults.get(k)))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k, '-')} -> {now.get(k, '-')}" for k in changed[:5])
        raise ConfigError(
            f"{out} holds a run with another config ({detail}); resuming continues the same run only. "
            "Use a new output_dir (to fine-tune it: model.init_from pointing at its best_model), or resume: false "
            "to start over"
        )


def _init_output(model: ALIGNNModel, dataset: GraphDataset, task: str) -> None:
    """Start a fresh model's output at the training data's scale.

    Smooth force fields get per-element reference energies from a
    least-squares fit of energy to composition (eV/atom), less the untrained
    readout's own mean site energy of each element (a random network adds an
    offset of up to ~1 eV/atom, which training would otherwise spend its first
    epochs removing); property regressors get the training mean as output bias.
    """
    if task == "forcefield" and isinstance(model, SmoothALIGNN):
        numbers = sorted({int(z) for n in dataset.numbers for z in n})
        counts = np.array([[np.count_nonzero(n == z) for z in numbers] for n in dataset.numbers], dtype=float)
        energy = np.array([float(dataset[i][1]["energy"][0]) for i in range(len(dataset))])
        ref, *_ = np.linalg.lstsq(counts, energy, rcond=None)
        ref -= _mean_site_energies(model, dataset, numbers)
        with torch.no_grad():
            model.reference_energies[numbers] = torch.as_tensor(ref, dtype=model.reference_energies.dtype)
        logger.info("reference energies fitted for %d elements", len(numbers))
    elif task == "regression" and hasattr(model, "fc") and model.config.link == "identity":
        mean = float(np.mean([float(dataset[i][1]["target"][0]) for i in range(len(dataset))]))
        with torch.no_grad():
            model.fc.bias.fill_(mean)


#: training structures whose untrained site energies set the offsets :func:`_init_output` takes out
INIT_SAMPLE = 256


def _mean_site_energies(model: SmoothALIGNN, dataset: GraphDataset, numbers: list[int]) -> np.ndarray:
    """The untrained ``model``'s mean site energy (eV, without its reference energies) of each element of
    ``numbers`` over up to :data:`INIT_SAMPLE` training structures (a fixed pick); their overall mean for an
    element none of them holds."""
    picks = np.random.default_rng(0).permutation(len(dataset))[:INIT_SAMPLE]
    z_parts, e_parts = [], []
    with torch.no_grad():
        for i in picks:
            graph = dataset[int(i)][0]
            site = evaluate(model, graph, forces=False, stress=False)["energies"]
            site = site - model.reference_energies.index_select(0, graph.numbers)
            z_parts.append(graph.numbers.numpy())
            e_parts.append(site.double().numpy())
    z, e = np.concatenate(z_parts), np.concatenate(e_parts)
    return np.array([e[z == k].mean() if np.any(z == k) else e.mean() for k in numbers])


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int) -> Any:
    o = cfg.optim
    if o.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=max(total_steps, 1))
    if o.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return None


def _card(cfg: TrainConfig, model: ALIGNNModel, sizes: dict[str, int], metrics: dict[str, Any]) -> str:
    if cfg.card:
        return cfg.card
    kind = "force field" if cfg.task.kind == "forcefield" else f"{cfg.task.kind} model for {cfg.task.target!r}"
    lines = [
        f"# {type(model).__name__} {kind}",
        "",
        f"Trained by `alignn-ase train` on `{cfg.data.path}`: "
        f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test structures (split in split.json).",
        "",
        "Metrics (units in the names):",
        "",
        "```json",
        _json(metrics),
        "```",
        "",
        "Training config:",
        "",
        "```json",
        json.dumps(asdict(cfg), indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def _eval_batches(n: int, batch_size: int, d: _Dist) -> list[list[int]]:
    mine = list(range(d.rank, n, d.world_size))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def _run_eval(
    model: ALIGNNModel, task: Task, dataset: GraphDataset, batches: list[list[int]], device: torch.device,
    dtype: torch.dtype, d: _Dist, rows: list[dict[str, Any]] | None = None,
) -> tuple[float, dict[str, float]]:
    """Mean loss and metrics over ``dataset`` (summed across processes). Every process reduces the same list
    (the task's metrics in a fixed order, zeros for those its share of the data lacks, e.g. stress, or when it
    has no batch at all); a metric that no process measured is left out."""
    model.eval()
    loss_sum, count, sums = 0.0, 0, {}
    for idx in batches:
        batch = to_device(collate([dataset[i] for i in idx]), device, dtype)
        pred = task.predict(model, batch[0], training=False)
        loss_sum += float(task.loss(pred, batch)) * len(idx)
        count += len(idx)
        for k, (s, c) in task.errors(pred, batch).items():
            acc = sums.setdefault(k, [0.0, 0.0])
            acc[0] += s
            acc[1] += c
        if rows is not None:
            rows.extend(task.rows([dataset.ids[i] for i in idx], pred, batch))
    keys = task.metrics
    totals = d.all_sum([loss_sum, float(count)] + [x for k in keys for x in sums.get(k, (0.0, 0.0))])
    metrics = {k: totals[2 + 2 * j] / totals[3 + 2 * j] for j, k in enumerate(keys) if totals[3 + 2 * j] > 0}
    return totals[0] / max(totals[1], 1.0), metrics


def _json(value: Any) -> str:
    """``value`` as indented JSON, a NaN or infinity (a metric with nothing to measure, e.g. the ROC AUC of a
    test set of one class) written as null: JSON has no NaN, and strict readers (jq, JavaScript) refuse it."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=1, allow_nan=False)


def _write_history(out: Path, history: list[dict[str, float]]) -> None:
    """metrics.json and metrics.csv, each replaced atomically: whoever reads them while training
    runs (a progress monitor, a plot) never sees a half-written file."""
    text = _json(history) + "\n"
    _write_atomically(out / "metrics.json", lambda tmp: tmp.write_text(text))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for row in history for k in row)))
    writer.writeheader()
    writer.writerows(history)
    _write_atomically(out / "metrics.csv", lambda tmp: tmp.write_text(table.getvalue(), newline=""))


def _sidecar(path: Path, kind: str) -> Path:
    """``<path>.<kind>``: where a file or folder is written (``tmp``) or set aside (``old``) before a rename."""
    return path.with_name(f"{path.name}.{kind}")


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """``write`` a temporary sibling of ``path``, then rename it over ``path``."""
    tmp = _sidecar(path, "tmp")
    write(tmp)
    os.replace(tmp, path)


def _restore_checkpoint(folder: Path) -> None:
    """Undo what a kill inside :func:`_save_checkpoint` left: a ``.old`` copy beside a complete
    ``folder`` is stale (removed); a ``.old`` copy without ``folder`` (killed between the two
    renames) is the previous checkpoint (put back); a ``.tmp`` folder is a partial write (removed)."""
    old, tmp = _sidecar(folder, "old"), _sidecar(folder, "tmp")
    if old.exists():
        if folder.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, folder)
    if tmp.exists():
        shutil.rmtree(tmp)


#: what a run writes into its output_dir besides split.json (rewritten) and the graph cache (kept: it is keyed by
#: graph settings), removed when a run starts over there, each with the sidecars its atomic writes leave (.tmp, .old)
RUN_OUTPUTS = ("metrics.json", "metrics.csv", "test_metrics.json", "predictions_test.csv", "parity.png",
               "parity_energy_per_atom.png", "parity_forces.png", "parity_stress_GPa.png", "class_probabilities.png",
               STATE_FILE, "best_model", "last_model")


def _train_mode(model: nn.Module) -> None:
    """``model.train()``, except that batch normalisations whose weights are frozen (``model.freeze``) stay in
    eval mode: their running statistics are part of what was frozen."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine and not any(
                p.requires_grad for p in module.parameters(recurse=False)):
            module.eval()


def _clear_previous_run(out: Path) -> None:
    """Remove an earlier run's outputs from ``out``, so that none of them (its test metrics, say, where the new run
    has no test set) passes for the new run's."""
    paths = [out / name for name in RUN_OUTPUTS]
    old = [p for path in paths for p in (path, _sidecar(path, "tmp"), _sidecar(path, "old")) if p.exists()]
    if old:
        logger.warning("%s: starting a new run there; removing the previous run's %s", out,
                       ", ".join(p.name for p in old))
    for p in old:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def _save_checkpoint(model: ALIGNNModel, folder: Path, card: str) -> None:
    """Write a model folder so that a kill at any point leaves a complete checkpoint, the new one
    or the previous one (:func:`_restore_checkpoint` tidies up after a kill)."""
    _restore_checkpoint(folder)
    tmp, old = _sidecar(folder, "tmp"), _sidecar(folder, "old")
    save_model(model, tmp, card)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def train(config: TrainConfig | dict[str, Any] | str | Path, progress: bool = True) -> TrainResult:
    """Train a property model or force field as ``config`` says (see :mod:`alignn_ase.training.config`).

    ``config`` is a :class:`TrainConfig`, a mapping, or a YAML/JSON file.
    With ``resume`` (default) a run whose ``output_dir`` holds a
    ``train_state.pt`` continues after its last finished epoch with the same
    weights, optimiser, scheduler and EMA state; batch order depends only on
    (seed, epoch), so a resumed run repeats the uninterrupted one.
    """
    started = time.perf_counter()
    cfg = config if isinstance(config, TrainConfig) else (
        config_from_dict(config) if isinstance(config, dict) else load_config(config)
    )
    d = _Dist.from_env()
    try:
        device = resolve_device(cfg.device)
    except InvalidArgumentError as exc:
        raise ConfigError(f"config: field 'device': {exc}") from None
    if d.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and d.world_size > 1:
        # one GPU per process; modulo: a scheduler may show each process only its own GPU
        device = torch.device("cuda", d.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dtype = resolve_dtype(cfg.dtype)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    show = progress and d.main
    task = make_task(cfg.task)
    torch.manual_seed(cfg.seed)

    records = read_dataset(
        cfg.data.path, None if cfg.task.kind == "forcefield" else cfg.task.target, cfg.data.format,
        cfg.data.id_key, cfg.data.skip_invalid, cfg.data.energy_key,
    )
    ids = [r.id for r in records]
    state_path = out / STATE_FILE
    resuming = cfg.resume and state_path.exists()
    # on the CPU: load_state_dict moves each entry to its parameter's device (AdamW's step counts must stay on the
    # CPU, or every step syncs the GPU per parameter tensor)
    st = torch.load(state_path, map_location="cpu", weights_only=True) if resuming else None
    if st is not None:  # before any graph is built
        _check_same_run(cfg, st.get("config"), out)
    if cfg.data.split_file:
        split = load_split(cfg.data.split_file, ids)
    elif resuming and (out / "split.json").exists():
        split = load_split(out / "split.json", ids)
        unsplit = len(ids) - sum(len(part) for part in split.values())
        if unsplit:
            warnings.warn(f"{out}: {unsplit} of the {len(ids)} records are in none of the resumed run's splits (added to "
                          "the data since it started?) and are not used; to train on them, start a new run (resume: "
                          "false, or another output_dir)", stacklevel=2)
    else:
        split = make_split(ids, cfg.seed, cfg.data.split_ratios, cfg.data.split_counts,
                           _groups(records, cfg.data.group_key))
    if d.main:
        save_split(split, out / "split.json")
    by_id = {r.id: r for r in records}

    model = _make_model(cfg, sorted({s for r in records for s in r.atoms.get_chemical_symbols()}))
    if not resuming:  # after _make_model: model.init_from may be the earlier run's best_model
        if d.world_size > 1:
            dist.barrier()  # every process has loaded it
        if d.main:
            _clear_previous_run(out)
    _check_elements(model, records)
    _warn_about_labels(cfg.task, [by_id[i] for i in split["train"]])
    lone = cfg.optim.batch_size < 2 or len(split["train"]) < 2  # some batch will hold a single structure
    if (lone and any(len(by_id[i].atoms) == 1 for i in split["train"])
            and any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in model.modules())):
        raise ConfigError(f"config: optim.batch_size {cfg.optim.batch_size} with {len(split['train'])} training "
                          "structure(s), some of them 1-atom cells, puts a lone 1-atom cell in a batch, which batch "
                          "normalisation cannot normalise; use a batch size of at least 2")
    classes = cfg.task.num_classes if cfg.task.kind == "classification" else None
    sets = {
        part: GraphDataset(
            [by_id[i] for i in split[part]], model.graph_settings, cfg.cache_dir, cfg.task.kind, cfg.task.target,
            cfg.task.threshold, model.min_distance, cfg.data.in_memory, show, classes,
        )
        for part in ("train", "val", "test")
    }
    del records, by_id
    sizes = {k: len(v) for k, v in sets.items()}
    logger.info("split: %s", sizes)
    if d.main:
        _warn_about_split(sets)
    if not cfg.model.init_from and st is None:  # a resumed run restores its weights below
        _init_output(model, sets["train"], cfg.task.kind)
    model.to(device=device, dtype=dtype)

    objective: nn.Module = _Objective(model, task)
    if d.world_size > 1:
        # find_unused_parameters: e.g. the last layer's bond update never reaches a node-pooled output.
        objective = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True
        )
    params = [p for p in model.parameters() if p.requires_grad]
    o = cfg.optim
    opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    n_train = len(sets["train"])
    steps_per_epoch = len(epoch_batches(n_train, o.batch_size, cfg.seed, 0, True, d.world_size, d.rank))
    sched = _scheduler(cfg, opt, o.epochs * steps_per_epoch)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(o.ema_decay)) if o.ema_decay else None

    start, best, stale, history = 0, math.inf, 0, []
    stopped = paused = False
    longest = 0.0  # seconds of this invocation's longest epoch
    if st is not None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None:
            sched.load_state_dict(st["scheduler"])
        if ema is not None:
            ema.load_state_dict(st["ema"])
        start, best, stale, history = st["epoch"], st["best"], st["stale"], st["history"]
        stopped = bool(st.get("stopped", False))
        st = None  # restored: no second copy of the weights and optimiser state for the rest of the run
        logger.info("%s %s after epoch %d", "finishing (stopped early)" if stopped else "resuming", out, start)

    eval_model = ema.module if ema is not None else model
    val_set = sets["val"] if sizes["val"] else sets["train"]
    val_batches = _eval_batches(len(val_set), o.batch_size, d)
    for epoch in range(start, start if stopped else o.epochs):
        t0 = time.perf_counter()
        _train_mode(model)
        loss_sum, count = 0.0, 0
        batches = epoch_batches(n_train, o.batch_size, cfg.seed, epoch, True, d.world_size, d.rank)
        for idx in tqdm(batches, desc=f"epoch {epoch + 1}/{o.epochs}", disable=not show, leave=False):
            batch = to_device(collate([sets["train"][i] for i in idx]), device, dtype)
            pred = objective(batch[0])
            loss = task.loss(pred, batch)
            finite = bool(torch.isfinite(loss))
            if d.world_size > 1:  # every process stops together (the others would wait in DDP's all-reduce)
                finite = d.all_sum([float(not finite)])[0] == 0
            if not finite:
                raise FloatingPointError(
                    f"training loss became non-finite ({float(loss)} on this process) at epoch {epoch + 1}; "
                    "lower optim.lr?"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if o.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += float(loss.detach()) * len(idx)
            count += len(idx)
        train_loss_sum, train_count = d.all_sum([loss_sum, float(count)])
        val_loss, val_metrics = _run_eval(eval_model, task, val_set, val_batches, device, dtype, d)
        if not math.isfinite(val_loss):  # no best model could be chosen, and a resumed run would stay stuck
            raise FloatingPointError(
                f"validation loss became non-finite ({val_loss}) after epoch {epoch + 1}; lower optim.lr?"
            )
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": train_loss_sum / max(train_count, 1.0),
               "val_loss": val_loss, **{f"val_{k}": v for k, v in val_metrics.items()},
               "seconds": time.perf_counter() - t0}
        history.append(row)
        improved = val_loss < best
        best, stale = (val_loss, 0) if improved else (best, stale + 1)
        stopped = o.patience is not None and stale >= o.patience
        logger.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if d.main:
            _write_history(out, history)
            card = _card(cfg, eval_model, sizes, {"epoch": epoch + 1, **row})
            if improved:
                _save_checkpoint(eval_model, out / "best_model", card)
            _save_checkpoint(eval_model, out / "last_model", card)
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict() if sched is not None else {},
                     "ema": ema.state_dict() if ema is not None else {},
                     "epoch": epoch + 1, "best": best, "stale": stale, "history": history, "stopped": stopped,
                     "config": _run_identity(cfg)}
            _write_atomically(state_path, lambda tmp: torch.save(state, tmp))
        if stopped:
            logger.info("early stopping: no better validation loss in %d epochs", o.patience)
            break
        longest = max(longest, time.perf_counter() - t0)
        if o.max_minutes is not None and epoch + 1 < o.epochs:
            # one decision for every process (their clocks differ a little)
            late = time.perf_counter() - started + longest > 60.0 * o.max_minutes
            if d.all_sum([float(late)])[0] > 0:
                paused = True
                logger.info("paused after epoch %d of %d: another epoch (up to %.0f s) would pass optim.max_minutes "
                            "(%g); run the same config again to continue", epoch + 1, o.epochs, longest, o.max_minutes)
                break

    if paused:
        if d.world_size > 1:
            dist.barrier()
        return TrainResult(out, out / "best_model", {}, history, paused=True)
    test_metrics: dict[str, float] = {}
    if d.world_size > 1:
        dist.barrier()
    if d.main:
        _restore_checkpoint(out / "best_model")
        best_model = load_model(out / "best_model", dtype).to(device=device)
        if sizes["test"]:
            test_metrics = _test(best_model, task, sets["test"], o.batch_size, device, dtype, out)
        card = _card(cfg, best_model, sizes, {"best_val_loss": best, "test": test_metrics})
        (out / "best_model" / "MODEL_CARD.md").write_text(card)
    if d.world_size > 1:
        dist.barrier()
    return TrainResult(out, out / "best_model", test_metrics, history)


def _test(
    model: ALIGNNModel, task: Task, dataset: GraphDataset, batch_size: int, device: torch.device,
    dtype: torch.dtype, out: Path,
) -> dict[str, float]:
    """Metrics of ``model`` on ``dataset``; writes test_metrics.json, predictions_test.csv and parity plots."""
    rows: list[dict[str, Any]] = []
    one = _Dist()
    _run_eval(model, task, dataset, _eval_batches(len(dataset), batch_size, one), device, dtype, one, rows)
    metrics = task.summary(rows)
    out.mkdir(parents=True, exist_ok=True)
    _write_predictions(out / "predictions_test.csv", rows)
    task.plot(rows, out)
    (out / "test_metrics.json").write_text(_json(metrics) + "\n")
    logger.info("test: %s", metrics)
    return metrics


def evaluate_dataset(
    model: ALIGNNModel | str | Path,
    data_path: str | Path,
    task: TaskConfig | dict[str, Any],
    output_dir: str | Path,
    batch_size: int = 16,
    device: str | None = "cpu",
    dtype: str = "float64",
    energy_key: str = "energy",
    format: str = "auto",
    id_key: str = "jid",
    skip_invalid: bool = False,
) -> dict[str, float]:
    """Test a trained model on every record of a dataset file (e.g. a held-out set).

    A force field is tested against the ``energy_key`` label (``energy`` or ``free_energy``, as in training).
    ``format``, ``id_key`` and ``skip_invalid`` read the file as the training config's ``data`` fields of those
    names do.

    Writes ``test_metrics.json``, ``predictions_test.csv`` and parity plots to
    ``output_dir``; returns the metrics (a force field's with units in their names, a property model's MAE and MAD
    in its target's units).
    """
    task_cfg = task if isinstance(task, TaskConfig) else parse_config(TaskConfig, task, "task", error=ConfigError,
                                                                        strict=True)
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    m = model if isinstance(model, ALIGNNModel) else load_model(model, dt)
    records = read_dataset(data_path, None if task_cfg.kind == "forcefield" else task_cfg.target, format, id_key,
                           skip_invalid, energy_key)
    _check_elements(m, records)
    out = Path(output_dir)
    classes = task_cfg.num_classes if task_cfg.kind == "classification" else None
    with tempfile.TemporaryDirectory() as cache:
        dataset = GraphDataset(records, m.graph_settings, Path(cache), task_cfg.kind, task_cfg.target,
                               task_cfg.threshold, m.min_distance, num_classes=classes)
        model_copy = copy.deepcopy(m).to(device=dev, dtype=dt)  # the caller's model stays where and as it was
        return _test(model_copy, make_task(task_cfg), dataset, batch_size, dev, dt, out)


def _write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
