"""Settings dataclasses from dicts (JSON, the .tflite parameters), strictly: typos must not pass silently."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

__all__ = ["from_known_keys"]


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
