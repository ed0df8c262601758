"""Upstream ALIGNN's published models by name: download once, then load from a local cache.

Upstream ALIGNN publishes its trained models (property models such as
``jv_formation_energy_peratom_alignn``, force fields such as ``mps`` or ``matpes_r2scan``) as Figshare
zips of ``config.json`` + ``best_model.pt``. :func:`upstream_models` lists them (names and addresses from
upstream's own registries, ``alignn_ase/data/upstream_models.json``, written by
``scripts/make_upstream_registry.py``). :func:`~alignn_ase.io.load_model` and
:class:`~alignn_ase.ALIGNNCalculator` take such a name (or ``"upstream:<name>"``) and load the zip from the cache,
downloading it first if it is not there.

The cache is ``$ALIGNN_ASE_CACHE`` if set, else ``$XDG_CACHE_HOME/alignn_ase`` (``~/.cache/alignn_ase``); a
zip lies at ``<cache>/upstream/<name>.zip``. Without network, download the zip elsewhere and put it there, or pass
its path instead of the name. A download is written to a temporary file and moved into the cache only once it
is a complete zip archive; the weights are then read like any checkpoint's (tensors only, never other pickled
objects).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .errors import CheckpointError

logger = logging.getLogger(__name__)

#: the prefix that picks an upstream model when a shipped one has the same name
PREFIX = "upstream:"

#: seconds without data before a download gives up
TIMEOUT_S = 60.0

_REGISTRY = Path(__file__).parent / "data" / "upstream_models.json"


@lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    return json.loads(_REGISTRY.read_text())


def upstream_models() -> dict[str, dict[str, Any]]:
    """Upstream ALIGNN's published models: name -> ``url`` and, where upstream records them, ``description``,
    ``target``, ``unit`` and ``test_mae`` (in ``unit``), and the upstream ``registry`` file that lists it."""
    return {name: dict(meta) for name, meta in _registry()["models"].items()}


def upstream_name(name: str) -> str | None:
    """The upstream model ``name`` refers to (``"mps"`` or ``"upstream:mps"``), or None."""
    bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return bare if bare in _registry()["models"] else None


def cache_dir() -> Path:
    """The folder that downloaded models are kept in (see the module docstring)."""
    if os.environ.get("ALIGNN_ASE_CACHE"):
        return Path(os.environ["ALIGNN_ASE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "alignn_ase"


def upstream_dir() -> Path:
    """The folder that upstream models' zips are kept in."""
    return cache_dir() / "upstream"


def cached_path(name: str) -> Path:
    """Where the zip of upstream model ``name`` (a bare name) is kept."""
    return upstream_dir() / f"{name}.zip"


def upstream_card(path: Path) -> str | None:
    """A short model card for the cached zip of an upstream model (what upstream's registry says of it), or None
    if ``path`` is not one."""
    meta = _registry()["models"].get(path.stem)
    if meta is None or path.resolve() != cached_path(path.stem).resolve():
        return None
    lines = [f"# {path.stem} (upstream ALIGNN)", "", f"Published by upstream ALIGNN, downloaded from {meta['url']} "
             f"(listed in {_registry()['source']}'s {meta['registry']})."]
    if "description" in meta:
        lines += ["", meta["description"]]
    if "target" in meta:
        unit = f" {meta['unit']}" if meta.get("unit") else ""
        mae = f"; upstream's test MAE {meta['test_mae']}{unit}" if "test_mae" in meta else ""
        lines += ["", f"Target: {meta['target']}{mae}."]
    return "\n".join(lines) + "\n"


def _check_zip(file: Path, source: str) -> None:
    """Raise :class:`~alignn_ase.errors.CheckpointError` unless ``file`` is a zip archive whose every member
    decompresses to its recorded checksum."""
    try:
        if not zipfile.is_zipfile(file):
            raise CheckpointError(f"{source} did not give a zip archive")
        with zipfile.ZipFile(file) as zf:
            broken = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        # a damaged deflate stream, a truncated member, an encrypted or unsupported one
        raise CheckpointError(f"{source}: a corrupt download ({type(exc).__name__}: {exc})") from None
    if broken is not None:
        raise CheckpointError(f"{source}: a corrupt download ({broken} fails its checksum)")


def fetch_upstream(name: str, progress: bool = True) -> Path:
    """The cached zip of upstream model ``name`` (see :func:`upstream_name`), downloaded first if missing.

    Raises :class:`~alignn_ase.errors.CheckpointError` when the download fails or is not a zip archive.
    """
    bare = upstream_name(name)
    if bare is None:
        raise CheckpointError(f"{name!r} is not a published upstream ALIGNN model (see upstream_models())")
    path = cached_path(bare)
    if path.is_file():
        return path
    url = _registry()["models"][bare]["url"]
    logger.info("downloading upstream ALIGNN model %r from %s to %s", bare, url, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{bare}.", suffix=".part", delete=False)
    except OSError as exc:
        raise CheckpointError(f"cannot write to the model cache {path.parent} ({exc}); set ALIGNN_ASE_CACHE to a "
                              "writable folder") from None
    try:
        with tmp:
            request = urllib.request.Request(url, headers={"User-Agent": "alignn-ase (model download)"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                size = response.headers.get("Content-Length", "")
                with tqdm(total=int(size) if size.isdigit() else None, unit="B", unit_scale=True, desc=bare,
                          disable=not progress) as bar:
                    while chunk := response.read(1 << 20):
                        tmp.write(chunk)
                        bar.update(len(chunk))
        _check_zip(Path(tmp.name), f"{url} (upstream model {bare!r})")
        shutil.move(tmp.name, path)
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise CheckpointError(
            f"cannot download upstream model {bare!r} from {url} ({type(exc).__name__}: {exc}); without network, "
            f"fetch the zip elsewhere and put it at {path}, or pass the zip's path instead of the name"
        ) from None
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    return path
