"""Turning JSON config dicts into typed dataclasses, with errors that name the field."""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _check_value(name: str, value: Any, annotation: Any, where: str) -> Any:
    origin = get_origin(annotation)
    if origin is Literal:
        if value not in get_args(annotation):
            raise CheckpointError(f"{where}: field {name!r} must be one of {get_args(annotation)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(name, value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise CheckpointError(f"{where}: field {name!r} must be a list, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise CheckpointError(f"{where}: field {name!r} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise CheckpointError(f"{where}: field {name!r} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(f"{where}: field {name!r} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise CheckpointError(f"{where}: field {name!r} must be a string, got {value!r}")
        return value
    return value


def parse_config(cls: type[T], data: Any, where: str, ignore: tuple[str, ...] = ()) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are logged and ignored.

    Raises :class:`CheckpointError` naming the field for a wrong type or value.
    """
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known - set(ignore))
    if unknown:
        logger.warning("%s: ignoring unknown config fields %s", where, unknown)
    kwargs = {k: _check_value(k, v, hints[k], where) for k, v in data.items() if k in known}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
