"""Package exports resolved on first use, so importing a package loads none of its heavy modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_dir(namespace: Mapping[str, Any], lazy_names: Iterable[str]) -> Callable[[], list[str]]:
    """A module-level `__dir__`: the names defined so far and the lazy ones, which `dir()` and tab
    completion would otherwise not show until first used."""

    def __dir__() -> list[str]:
        return sorted({*namespace, *lazy_names})

    return __dir__


def lazy_exports(package: str, submodule_of: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: each name in `submodule_of` comes from that
    submodule when first asked for; any other name is an AttributeError as usual."""

    def __getattr__(name: str) -> Any:
        if name in submodule_of:
            return getattr(importlib.import_module(f"{package}.{submodule_of[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
