"""Settings dataclasses from dicts (JSON, the .tflite parameters), strictly: typos must not pass silently."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from microspeech.checks import exact_value

__all__ = ["check_field_types", "from_known_keys"]

_SCALARS = {"int": int, "float": float, "bool": bool}


def from_known_keys(cls: type, values: dict[str, Any]) -> Any:
    """Build a dataclass from a dict, rejecting keys it does not know (typos must not pass silently)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(known)}")
    converted = {}
    for f in fields(cls):
        if f.name in values:
            value = values[f.name]
            converted[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**converted)


def check_field_types(settings: Any, owner: str) -> None:
    """Convert each field of the dataclass `settings` to its annotated type when that loses
    nothing (1000.0 for an int, "no" for a flag), else a ValueError naming `owner` and the field:
    a spec file is Python the user edits, and 1.5 epochs, a NaN rate or "10" for a tuple of SNRs
    must stop before training, not deep inside it. Numbers are finite, except in a tuple of any
    length (stream SNRs: inf is a clean segment)."""
    for field in fields(settings):
        annotation = str(field.type).replace(" ", "")
        value = getattr(settings, field.name)
        optional = annotation.endswith("|None")
        kind = annotation.removesuffix("|None")
        if optional and value is None:
            continue
        try:
            converted = _converted(kind, value)
        except (TypeError, ValueError, OverflowError):
            expected = {
                "int": "an int",
                "float": "a finite number",
                "bool": "True or False",
                "str": "a string",
                "tuple[float,float]": "a (low, high) pair of finite numbers",
                "tuple[float,...]": "a tuple of numbers",
                "dict[str,float]": "a dict of names to numbers",
            }.get(kind, kind)
            raise ValueError(
                f"{owner} {field.name}={value!r}: expected {expected}" + (" or None" if optional else "")
            ) from None
        object.__setattr__(settings, field.name, converted)


def _converted(kind: str, value: Any) -> Any:
    if kind in _SCALARS:
        return exact_value(value, _SCALARS[kind])
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if kind.startswith("tuple["):
        if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
            raise TypeError(value)
        items = list(value)
        if kind == "tuple[float,float]":
            if len(items) != 2:
                raise ValueError(value)
            return tuple(exact_value(item, float) for item in items)
        return tuple(_number_or_inf(item) for item in items)
    if kind == "dict[str,float]":
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise TypeError(value)
        return {key: exact_value(item, float) for key, item in value.items()}
    return value  # a type this check does not know: left to the settings' own checks


def _number_or_inf(value: Any) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float) and math.isinf(value):
        return float(value)
    return exact_value(value, float)
