"""Loading and saving models: upstream ALIGNN checkpoints and alignn-ase's own format.

Accepted inputs (folder or zip, files possibly inside one sub-folder):

- upstream ALIGNN / ALIGNN-FF: ``config.json`` (graph settings at the top
  level, architecture under ``"model"``) + ``best_model.pt`` (a raw
  state_dict) or ``checkpoint_*.pt`` (a dict with the state_dict under
  ``"model"``);
- alignn-ase: ``config.json`` with ``"format": "alignn-ase"`` +
  ``model.safetensors`` + ``MODEL_CARD.md``; the shipped potentials in
  ``potentials/`` use it.

Weights are read with ``torch.load(weights_only=True)`` or safetensors; no
arbitrary object is ever unpickled.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from .download import fetch_upstream, upstream_card, upstream_name
from .errors import AlignnAseError, CheckpointError, InvalidArgumentError, UnknownModelError
from .graph import GraphSettings
from .nn.base import ALIGNNModel
from .nn.config import parse_config
from .nn.smooth import SmoothALIGNN, SmoothConfig
from .nn.upstream import ALIGNN, ALIGNNAtomwise, ALIGNNAtomwiseConfig, ALIGNNConfig, atomwise_defaults

logger = logging.getLogger(__name__)

#: the floating-point types a model computes in
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"`` / ``"float64"`` (or the torch dtype) as a torch dtype; anything else raises
    :class:`~alignn_ase.errors.InvalidArgumentError`."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise InvalidArgumentError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'")

FORMAT = "alignn-ase"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Where upstream-style training checkpoints keep the state_dict (or it is the whole file).
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")
CARD_FILE = "MODEL_CARD.md"
UPSTREAM_STRATEGIES = ("k-nearest", "radius_graph", "pure_torch")
ATOM_FEATURE_WIDTH = {"cgcnn": 92, "atomic_number": 1}
#: upstream's LAMMPS lookup buffer, empty unless exported; not part of the model.
UPSTREAM_IGNORED_KEYS = ("_species_table",)


@dataclass
class _Files:
    """A checkpoint's files, read into memory."""

    source: str
    config: bytes
    weights_name: str
    weights: bytes
    card: str | None


def potentials_dir() -> Path:
    """The folder of shipped potentials (installed as package data)."""
    return Path(str(resources.files("alignn_ase.potentials")))


def available_models() -> list[str]:
    """The shipped names :func:`load_model` accepts: ``"default"``, shipped models, property names (besides paths and
    upstream ALIGNN's published models, :func:`~alignn_ase.download.upstream_models`)."""
    from .potentials import PROPERTY_MODELS

    root = potentials_dir()
    names = sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())
    return ["default"] + names + sorted(PROPERTY_MODELS)


def _weights_rank(name: str) -> tuple[int, int] | None:
    base = PurePosixPath(name).name
    if base == WEIGHTS_FILE:
        return (3, 0)
    if base == "best_model.pt":
        return (2, 0)
    m = re.fullmatch(r"checkpoint_(\d+)\.pt", base)
    if m:
        return (1, int(m.group(1)))
    return None


def _pick(names: list[str], source: str) -> tuple[str, str, str | None]:
    """Choose config, weights and card among member names: the checkpoint at the top level, else the one
    in a sub-folder (upstream's zips hold one folder); several sub-folders with a config are ambiguous."""
    configs = sorted(n for n in names if PurePosixPath(n).name == CONFIG_FILE and n.count("/") <= 1)
    if not configs:
        raise CheckpointError(f"{source}: no {CONFIG_FILE} found (at the top level or in a sub-folder)")
    if CONFIG_FILE not in configs and len(configs) > 1:
        folders = [str(PurePosixPath(n).parent) for n in configs]
        raise CheckpointError(
            f"{source}: holds {len(folders)} models ({', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''}); "
            + ("extract it and give the path of one of its folders" if source.endswith(".zip")
               else "give the path of one of them")
        )
    configs = [CONFIG_FILE] if CONFIG_FILE in configs else configs
    folder = str(PurePosixPath(configs[0]).parent)
    here = [n for n in names if str(PurePosixPath(n).parent) == folder]
    ranked = [(r, n) for n in here if (r := _weights_rank(n)) is not None]
    if not ranked:
        raise CheckpointError(
            f"{source}: no weights next to {configs[0]} (expected {WEIGHTS_FILE}, best_model.pt or checkpoint_<n>.pt)"
        )
    weights = max(ranked)[1]
    card = next((n for n in here if PurePosixPath(n).name == CARD_FILE), None)
    return configs[0], weights, card


def _read_files(path: Path) -> _Files:
    source = str(path)
    try:
        if path.is_dir():
            top = list(path.iterdir())  # the top level and one sub-folder level (see _pick)
            files = [p for p in top if p.is_file()] + [q for p in top if p.is_dir() for q in p.iterdir() if q.is_file()]
            cfg, weights, card = _pick([p.relative_to(path).as_posix() for p in files], source)
            return _Files(
                source, (path / cfg).read_bytes(), weights, (path / weights).read_bytes(),
                (path / card).read_bytes().decode(errors="replace") if card else None,
            )
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            cfg, weights, card = _pick(names, source)
            text = zf.read(card).decode(errors="replace") if card else None
            return _Files(source, zf.read(cfg), weights, zf.read(weights), text)
    except zipfile.BadZipFile:
        raise CheckpointError(f"{source}: not a folder and not a readable zip file") from None
    except (OSError, RuntimeError, NotImplementedError, zlib.error) as exc:  # permissions, encrypted, compression
        raise CheckpointError(f"{source}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None


def _read_state_dict(files: _Files) -> dict[str, torch.Tensor]:
    where = f"{files.source}: {files.weights_name}"
    if files.weights_name.endswith(".safetensors"):
        try:
            return load_safetensors(files.weights)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{where} is not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(io.BytesIO(files.weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or objects that weights_only refuses
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()
        detail = (lines[0] if lines else type(exc).__name__)[:300]  # an empty file: EOFError without a message
        raise CheckpointError(
            f"{where} cannot be read safely as PyTorch weights: it is corrupt or holds objects other than tensors "
            "(e.g. an optimiser or scheduler saved beside the weights), and alignn-ase unpickles tensors only. "
            "If you trust the file, keep just the weights: "
            "torch.save(torch.load(f, weights_only=False)['model'], 'best_model.pt'). "
            f"({detail})"
        ) from None
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        found = f"; its top-level keys: {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else ""
        raise CheckpointError(
            f"{where} holds no state_dict (a mapping of names to tensors, alone or under {list(STATE_DICT_KEYS)})"
            + found
        )
    if obj and all(k.startswith("module.") for k in obj):  # saved from a DataParallel / DDP wrapper
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _neighbor_cap(strategy: str, value: Any, where: str) -> Any:
    """Upstream's ``max_neighbors`` (``Optional[int]``) as :class:`GraphSettings` takes it: a whole number, or
    None for ``pure_torch`` without a cap (upstream caps only when it is > 0); ``radius_graph`` does not use it."""
    if isinstance(value, float) and not value.is_integer():
        raise CheckpointError(f"{where}: max_neighbors must be a whole number, got {value}")
    if strategy == "pure_torch" and (value is None or (isinstance(value, (int, float)) and value <= 0)):
        return None
    if strategy == "radius_graph" and value is None:
        return GraphSettings.max_neighbors
    return value


def _graph_settings_upstream(cfg: dict[str, Any], where: str) -> GraphSettings:
    try:
        strategy = cfg["neighbor_strategy"]
        cutoff = cfg["cutoff"]
        max_neighbors = _neighbor_cap(strategy, cfg["max_neighbors"], where)
        use_canonize = cfg.get("use_canonize", True)
    except KeyError as exc:
        raise CheckpointError(f"{where}: missing graph field {exc.args[0]!r}") from None
    if strategy not in UPSTREAM_STRATEGIES:
        raise CheckpointError(
            f"{where}: neighbor_strategy {strategy!r} is not supported (supported: {UPSTREAM_STRATEGIES})"
        )
    if isinstance(use_canonize, str) or use_canonize not in (True, False):  # bool("false") is True
        raise CheckpointError(f"{where}: use_canonize must be true or false, got {use_canonize!r}")
    three_body = cfg.get("three_body_cutoff") if strategy == "pure_torch" else None
    try:
        return GraphSettings(
            strategy=strategy,
            cutoff=float(cutoff),
            max_neighbors=None if max_neighbors is None else int(max_neighbors),
            use_canonize=bool(use_canonize),
            three_body_cutoff=None if three_body is None else float(three_body),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: bad graph settings: {exc}") from None


def build_model(config: dict[str, Any], where: str = "config", strict: bool = False) -> ALIGNNModel:
    """Build an untrained model from a config dict (upstream's or alignn-ase's layout).

    Unknown model fields are logged and ignored (checkpoints written by other versions), or with ``strict``
    (a hand-written training config) raise :class:`~alignn_ase.errors.CheckpointError`, as does a value the
    model cannot be built with (a negative width, a zero cut-off, an unknown element).
    """
    try:
        return _build(config, where, strict)
    except CheckpointError:
        raise
    except (AlignnAseError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: no model can be built from it: {exc}") from None


def _build(config: dict[str, Any], where: str, strict: bool) -> ALIGNNModel:
    """:func:`build_model` without the conversion of construction errors."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: expected a JSON object")
    if config.get("format") == FORMAT:
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(f"{where}: format_version {version!r} not supported (expected {FORMAT_VERSION})")
        arch = config.get("architecture")
        if arch == "alignn_ase_smooth":
            # strict whatever the caller asked: a field this version does not know comes from a newer alignn-ase and
            # may change the model (e.g. triplet_lengthscale), so it is refused rather than ignored
            return SmoothALIGNN(parse_config(SmoothConfig, config.get("model"), where, strict=True))
        if arch in ("alignn", "alignn_atomwise", "alignn_atomwise_pure"):
            upstream = dict(config.get("graph") or {}, model=config.get("model"), target=config.get("property_name"))
            return _build_upstream(upstream, where, strict)
        raise CheckpointError(f"{where}: unknown architecture {arch!r}")
    return _build_upstream(config, where, strict)


def _build_upstream(config: dict[str, Any], where: str, strict: bool = False) -> ALIGNNModel:
    model_cfg = config.get("model")
    if not isinstance(model_cfg, dict) or "name" not in model_cfg:
        raise CheckpointError(f"{where}: no \"model\" object with a \"name\" (is this an ALIGNN config.json?)")
    name = model_cfg["name"]
    atom_features = config.get("atom_features", "cgcnn")
    if not isinstance(atom_features, str) or atom_features not in ATOM_FEATURE_WIDTH:
        raise CheckpointError(
            f"{where}: atom_features {atom_features!r} not supported (supported: {tuple(ATOM_FEATURE_WIDTH)})"
        )
    settings = _graph_settings_upstream(config, where)
    target = config.get("target")
    where_model = f"{where}: model"
    try:
        if name == "alignn":
            mcfg = parse_config(ALIGNNConfig, model_cfg, where_model, strict=strict)
            model: ALIGNNModel = ALIGNN(mcfg, settings, atom_features, target)
        elif name in ("alignn_atomwise", "alignn_atomwise_pure"):
            mcfg = parse_config(ALIGNNAtomwiseConfig, {**atomwise_defaults(name), **model_cfg}, where_model, strict=strict)
            model = ALIGNNAtomwise(mcfg, settings, atom_features, target)
        else:
            raise CheckpointError(
                f"{where}: model name {name!r} not supported (supported: alignn, alignn_atomwise, alignn_atomwise_pure)"
            )
    except CheckpointError as exc:  # the architectures name their config, not the file
        raise CheckpointError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    width = ATOM_FEATURE_WIDTH[atom_features]
    if mcfg.atom_input_features != width:
        raise CheckpointError(
            f"{where}: atom_features {atom_features!r} gives {width} inputs per atom but the model expects "
            f"atom_input_features={mcfg.atom_input_features}"
        )
    return model


def _load_weights(model: ALIGNNModel, state: dict[str, torch.Tensor], where: str) -> None:
    state = {k: v for k, v in state.items() if k not in UPSTREAM_IGNORED_KEYS}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    odd = [  # a tensor torch.load(weights_only=True) accepts but a model cannot use as weights
        f"{k}: {'sparse' if state[k].layout != torch.strided else 'meta' if state[k].is_meta else state[k].dtype}"
        for k in expected
        if k in state and (state[k].layout != torch.strided or state[k].is_meta
                           or state[k].is_floating_point() != expected[k].is_floating_point())
    ]
    if odd:
        raise CheckpointError(f"{where}: {len(odd)} weight tensor(s) of the wrong kind, e.g. {odd[:3]}")
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:3]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:2]}")
        raise CheckpointError(f"{where}: the weights do not match the config: " + "; ".join(parts))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{where}: non-finite values in weights {bad[:3]}")
    model.load_state_dict(state, strict=True)


def _resolve(path_or_name: str | Path) -> Path:
    """A shipped model's folder for its name (before a path of the same name: ``./default`` for that),
    else the path, else the cached zip of an upstream model of that name (downloaded if missing, see
    :mod:`alignn_ase.download`)."""
    from .potentials import DEFAULT, PROPERTY_MODELS

    name = str(path_or_name)
    if not name.strip():  # Path("") is the current folder
        raise UnknownModelError(f"empty model name; available: {', '.join(available_models())}, or a path")
    path = Path(path_or_name).expanduser()
    if isinstance(path_or_name, str) and name in available_models():
        shipped = potentials_dir() / (DEFAULT if name == "default" else PROPERTY_MODELS.get(name, name))
        if path.exists():
            logger.warning("%r names a shipped model and a path here; loading the shipped one (./%s for the path)",
                           name, name)
        return shipped
    if path.exists():
        return path
    if isinstance(path_or_name, str) and upstream_name(name) is not None:
        return fetch_upstream(name)
    raise UnknownModelError(
        f"unknown model {str(path_or_name)!r}: not an existing path, not a shipped model "
        f"({', '.join(available_models())}) and not one of upstream ALIGNN's published models (upstream_models())"
    )


def load_model(path_or_name: str | Path = "default", dtype: str | torch.dtype = torch.float32) -> ALIGNNModel:
    """Load a model by shipped name (``"default"``, see :func:`available_models`), path, or the name of one of
    upstream ALIGNN's published models (:func:`~alignn_ase.download.upstream_models`; downloaded on first use and
    cached; ``"upstream:<name>"`` where a shipped model has the same name).

    The path is a folder or zip in upstream ALIGNN's layout or alignn-ase's
    (see module docstring). The model comes back on the CPU in ``dtype``
    (``"float32"``/``"float64"`` or the torch dtype; the stored weights are converted once, so float64
    weights stay exact in float64), in eval mode, with ``model.card`` set to its model card text (or None). Raises
    :class:`~alignn_ase.errors.CheckpointError` (or its subclass
    :class:`~alignn_ase.errors.UnknownModelError`) for anything unloadable.
    """
    dtype = resolve_dtype(dtype)
    path = _resolve(path_or_name)
    files = _read_files(path)
    try:
        config = json.loads(files.config)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{files.source}: {CONFIG_FILE} is not valid JSON ({exc})") from None
    model = build_model(config, f"{files.source}: {CONFIG_FILE}").to(dtype)
    _load_weights(model, _read_state_dict(files), f"{files.source}: {files.weights_name}")
    model.card = files.card if files.card is not None else upstream_card(path)
    model.source = files.source
    logger.info("loaded %s model from %s", type(model).__name__, files.source)
    return model.eval()


def save_model(model: ALIGNNModel, folder: str | Path, card: str | None = None) -> Path:
    """Write ``model`` in alignn-ase's format: config.json, model.safetensors, and MODEL_CARD.md when ``card`` is
    given; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, SmoothALIGNN):
        config: dict[str, Any] = {"architecture": "alignn_ase_smooth"}
    else:
        s = model.graph_settings
        config = {
            "architecture": model.config.name,
            "graph": {
                "neighbor_strategy": s.strategy,
                "cutoff": s.cutoff,
                "max_neighbors": s.max_neighbors,
                "use_canonize": s.use_canonize,
                "three_body_cutoff": s.three_body_cutoff,
                "atom_features": model.atom_features,
            },
            "property_name": model.property_name,
        }
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config, "model": model.config_dict()}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    if card is not None:
        (folder / CARD_FILE).write_text(card)
    return folder
