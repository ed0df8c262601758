"""Graphs of a dataset, built once and cached on disk; batches for training.

Each record's bond graph and line graph are built with the model's graph
settings and saved as one tensor file named by a hash of the settings, the
structure and its labels, so later epochs and later runs reuse them. With
``in_memory=False`` the dataset keeps only the file names and streams graphs
from the cache, so datasets larger than RAM train.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DatasetError, InvalidStructureError
from ..graph import AtomGraph, GraphSettings, batch_graphs, build_graph
from .data import Record

logger = logging.getLogger(__name__)

GRAPH_FIELDS = tuple(f.name for f in dataclasses.fields(AtomGraph))

Sample = tuple[AtomGraph, dict[str, torch.Tensor]]


def label_tensors(
    record: Record, task: str, target: str | None, threshold: float | None, num_classes: int | None = None
) -> dict[str, torch.Tensor]:
    """Tensors of a record's labels for ``task``: force-field energy (eV), forces (eV/Å), stress (eV/Å³); or the
    target (a class index in ``0 .. num_classes - 1`` for classification)."""
    lab = record.labels
    if task == "forcefield":
        out = {"energy": torch.tensor([lab["energy"]], dtype=torch.float64)}
        n = len(record.atoms)
        forces = lab.get("forces")
        out["forces"] = torch.as_tensor(forces if forces is not None else np.zeros((n, 3)), dtype=torch.float64)
        out["has_forces"] = torch.tensor([forces is not None])
        stress = lab.get("stress")
        out["stress"] = torch.as_tensor(stress if stress is not None else np.zeros(6), dtype=torch.float64)[None]
        out["has_stress"] = torch.tensor([stress is not None])
        return out
    value = lab[target]
    if task == "classification":
        cls = int(value > threshold) if threshold is not None else int(value)
        if threshold is None and cls != value:
            raise DatasetError(f"record {record.id}: class label {value!r} is not an integer (set task.threshold?)")
        if num_classes is not None and not 0 <= cls < num_classes:
            raise DatasetError(
                f"record {record.id}: class {cls} is outside 0..{num_classes - 1} (task.num_classes = {num_classes})"
            )
        return {"target": torch.tensor([cls], dtype=torch.long)}
    return {"target": torch.tensor([value], dtype=torch.float64)}


#: changes when what a cached graph holds, or how it is built, changes: older cache files are then not reused
CACHE_VERSION = 3


def _key(record: Record, settings: GraphSettings, labels: dict[str, torch.Tensor], min_distance: float) -> str:
    """The cache file name of a record's graph: a hash of everything the graph and its labels depend on,
    the minimum distance it was checked against included."""
    h = hashlib.sha1(f"{CACHE_VERSION} {settings!r} {float(min_distance)!r}".encode())
    a = record.atoms
    for arr in (a.numbers, a.positions, a.cell.array, a.pbc):
        h.update(np.ascontiguousarray(arr).tobytes())
    for name in sorted(labels):
        h.update(name.encode())
        h.update(labels[name].numpy().tobytes())
    return h.hexdigest()


def _save(sample: Sample, path: Path) -> None:
    graph, labels = sample
    flat = {f"graph.{k}": getattr(graph, k) for k in GRAPH_FIELDS}
    flat.update({f"label.{k}": v for k, v in labels.items()})
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(flat, tmp)
    os.replace(tmp, path)


def _load(path: Path) -> Sample:
    flat = torch.load(path, map_location="cpu", weights_only=True)
    graph = AtomGraph(**{k: flat[f"graph.{k}"] for k in GRAPH_FIELDS})
    labels = {k[6:]: v for k, v in flat.items() if k.startswith("label.")}
    return graph, labels


class GraphDataset(torch.utils.data.Dataset):
    """Records turned into (graph, labels) samples, cached in ``cache_dir``.

    Graphs are stored in float64 (exact positions) and cast to the training
    dtype per batch. A structure the model cannot take (e.g. atoms closer than
    its minimum distance) raises :class:`~alignn_ase.errors.DatasetError`
    naming the record.
    """

    def __init__(
        self,
        records: Sequence[Record],
        settings: GraphSettings,
        cache_dir: Path,
        task: str,
        target: str | None = None,
        threshold: float | None = None,
        min_distance: float = 0.0,
        in_memory: bool = True,
        progress: bool = True,
        num_classes: int | None = None,
    ):
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.ids = [r.id for r in records]
        self.n_atoms = [len(r.atoms) for r in records]
        self.numbers = [r.atoms.numbers.copy() for r in records]
        self.paths: list[Path] = []
        self.samples: list[Sample] | None = [] if in_memory else None
        built = 0
        for record in tqdm(records, desc="graphs", disable=not progress, leave=False):
            labels = label_tensors(record, task, target, threshold, num_classes)
            path = cache_dir / f"{_key(record, settings, labels, min_distance)}.pt"
            sample = None
            if not path.exists():
                try:
                    graph = build_graph(record.atoms, settings, torch.float64, "cpu", min_distance)
                except InvalidStructureError as exc:
                    raise DatasetError(f"record {record.id}: {exc}") from None
                sample = (graph, labels)
                _save(sample, path)
                built += 1
            self.paths.append(path)
            if self.samples is not None:
                self.samples.append(sample or _load(path))
        logger.info("%d graphs: %d built, %d from cache %s", len(self.paths), built, len(self.paths) - built, cache_dir)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i] if self.samples is not None else _load(self.paths[i])


def collate(samples: Sequence[Sample]) -> Sample:
    """Join samples into one batched graph and concatenated labels."""
    graph = batch_graphs([s[0] for s in samples])
    labels = {k: torch.cat([s[1][k] for s in samples]) for k in samples[0][1]}
    return graph, labels


def to_device(sample: Sample, device: torch.device, dtype: torch.dtype) -> Sample:
    """Move a batch to ``device``, casting its float labels to ``dtype``; positions, cell and shifts stay
    float64, as in the calculator: bond vectors are formed exactly, then cast to the model's dtype."""
    graph, labels = sample
    moved = {k: getattr(graph, k).to(device=device) for k in GRAPH_FIELDS}
    return AtomGraph(**moved), {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else None) for k, v in labels.items()
    }


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, shuffle: bool, world_size: int = 1, rank: int = 0
) -> list[list[int]]:
    """This process's batches of one epoch.

    The order depends only on (seed, epoch), so a resumed run sees the same
    batches. Under torchrun each global batch of ``batch_size * world_size``
    indices is cut into one contiguous slice per rank. A final global batch
    too small to give every rank two structures joins the one before it (a
    batch of a single 1-atom cell would stop batch normalisation); with no
    batch before it, it is used as it is if every rank gets a structure.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    step = batch_size * world_size
    chunks = [order[start : start + step] for start in range(0, n, step)]
    if len(chunks) > 1 and len(chunks[-1]) < 2 * world_size:
        chunks[-2:] = [np.concatenate(chunks[-2:])]
    return [np.array_split(c, world_size)[rank].tolist() for c in chunks if len(c) >= world_size]
