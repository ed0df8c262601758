"""Seeded train/validation/test splits, saved as id lists so a run can be reproduced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, DatasetError

SPLITS = ("train", "val", "test")


def make_split(
    ids: Sequence[str],
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    counts: Sequence[int] | None = None,
    groups: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Shuffle ``ids`` with ``seed`` and cut them by ``counts`` or else ``ratios`` (train, val, test).

    With ``groups`` (one label per id: the parent structure, the MD trajectory, ...) whole groups are shuffled
    and dealt to test, then validation, until each holds at least its share of records, the rest to training:
    frames of one group never sit on both sides of a split.
    """
    if groups is not None:
        if counts is not None:
            raise ConfigError("data.split_counts cannot be met with data.group_key (whole groups go to one part)")
        return _split_groups(ids, groups, seed, ratios)
    n = len(ids)
    if counts is not None:
        n_train, n_val, n_test = (int(c) for c in counts)
        if n_train + n_val + n_test > n:
            raise ConfigError(f"data.split_counts {list(counts)} ask for more than the {n} records available")
    else:
        n_val = int(round(ratios[1] * n))
        n_test = int(round(ratios[2] * n))
        n_train = n - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"the split leaves no training records ({n} records in all)")
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    return {
        "train": shuffled[:n_train],
        "val": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val : n_train + n_val + n_test],
    }


def _split_groups(ids: Sequence[str], groups: Sequence[str], seed: int, ratios: Sequence[float]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for i, g in zip(ids, groups):
        members.setdefault(g, []).append(i)
    n = len(ids)
    want = {"val": int(round(ratios[1] * n)), "test": int(round(ratios[2] * n))}
    names = list(members)
    order = np.random.default_rng(seed).permutation(len(names))
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for k in order:
        part = next((p for p in ("test", "val") if len(split[p]) < want[p]), "train")
        split[part].extend(members[names[k]])
    if not split["train"]:
        raise ConfigError(f"the split leaves no training records ({n} records in {len(names)} groups)")
    return split


def save_split(split: dict[str, list[str]], path: Path) -> None:
    path.write_text(json.dumps(split, indent=1) + "\n")


def load_split(path: str | Path, ids: Sequence[str]) -> dict[str, list[str]]:
    """Read a split file and check that every id in it exists and none is in two parts."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read split file {path}: {exc}") from None
    if not isinstance(split, dict) or not set(split) <= set(SPLITS) or "train" not in split:
        raise ConfigError(f"{path}: a split file is a JSON object with lists 'train', 'val', 'test'")
    known = set(ids)
    seen: set[str] = set()
    for part in SPLITS:
        members = [str(i) for i in split.get(part, [])]
        missing = [i for i in members if i not in known]
        if missing:
            raise DatasetError(f"{path}: {part} id {missing[0]!r} is not in the dataset ({len(missing)} missing)")
        if len(set(members)) != len(members):
            repeated = sorted({i for i in members if members.count(i) > 1})
            raise DatasetError(f"{path}: {part} lists id {repeated[0]!r} more than once")
        twice = seen.intersection(members)
        if twice:
            raise DatasetError(f"{path}: id {sorted(twice)[0]!r} is in more than one part of the split")
        seen.update(members)
        split[part] = members
    if not split["train"]:
        raise ConfigError(f"{path}: the split file lists no training records")
    return {part: split.get(part, []) for part in SPLITS}
