"""Turning JSON/YAML config dicts into typed dataclasses, with errors that name the field."""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _check_value(name: str, value: Any, annotation: Any, where: str, error: type[Exception], strict: bool) -> Any:
    def fail(expected: str) -> Exception:
        return error(f"{where}: field {name!r} must be {expected}, got {value!r}")

    origin = get_origin(annotation)
    if origin is Literal:
        if value not in get_args(annotation):
            raise fail(f"one of {get_args(annotation)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for candidate in inner:
            try:
                return _check_value(name, value, candidate, where, error, strict)
            except error as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        if not isinstance(value, list):
            raise fail("a list")
        (item,) = get_args(annotation) or (Any,)
        return [_check_value(f"{name}[{i}]", v, item, where, error, strict) for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise fail("a mapping")
        return value
    if dataclasses.is_dataclass(annotation):
        return parse_config(annotation, value, f"{where}: {name}", error=error, strict=strict)
    if annotation is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise fail("an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    return value


def parse_config(
    cls: type[T],
    data: Any,
    where: str,
    ignore: tuple[str, ...] = (),
    error: type[Exception] = CheckpointError,
    strict: bool = False,
) -> T:
    """Build dataclass ``cls`` (nested dataclasses included) from ``data``.

    Unknown keys are logged and ignored, or with ``strict`` raise ``error``
    (a typo in a hand-written training config should not pass silently).
    Raises ``error`` naming the field for a wrong type or value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known - set(ignore))
    if unknown and strict:
        raise error(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    if unknown:
        logger.warning("%s: ignoring unknown config fields %s", where, unknown)
    kwargs = {k: _check_value(k, v, hints[k], where, error, strict) for k, v in data.items() if k in known}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise error(f"{where}: {exc}") from None
