"""The model registry: `@register_model("name")` on a function that returns a ModelSpec.

Every module in `microspeech.models` is imported on first lookup, so a new model is a new
file. Appending `-test` to a registered name gives its dry run: the same code path with a
few clips per class, 3 epochs and batch 3.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable

from microspeech.models.spec import ModelSpec

DRY_RUN_SUFFIX = "-test"
DRY_RUN_CLIPS_PER_CLASS = 12

_FACTORIES: dict[str, Callable[[], ModelSpec]] = {}
_INFRASTRUCTURE = {"artifacts", "registry", "spec"}


def register_model(name: str) -> Callable[[Callable[[], ModelSpec]], Callable[[], ModelSpec]]:
    """Decorator registering a spec factory under `name` (which must not end in -test)."""
    if name.endswith(DRY_RUN_SUFFIX):
        raise ValueError(f"model name {name!r} must not end in {DRY_RUN_SUFFIX!r} (reserved for dry runs)")

    def decorator(factory: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"model {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorator


def _discover() -> None:
    import microspeech.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{package.__name__}.{module.name}")


def list_models() -> list[str]:
    """Registered model names (without the -test dry-run variants)."""
    _discover()
    return sorted(_FACTORIES)


def dry_run_spec(spec: ModelSpec) -> ModelSpec:
    """The dry-run variant of a spec: same model and code path, tiny data, 3 epochs, batch 3,
    at most a minute of validation stream and one mining round of half a minute."""
    train = dataclasses.replace(
        spec.train,
        epochs=3,
        batch_size=3,
        max_clips_per_class=DRY_RUN_CLIPS_PER_CLASS,
        stream_validation_minutes=min(spec.train.stream_validation_minutes, 1.0),
        mining_rounds=min(spec.train.mining_rounds, 1),
        mining_every=1,
        mining_minutes=min(spec.train.mining_minutes, 0.5),
    )
    return dataclasses.replace(spec, name=spec.name + DRY_RUN_SUFFIX, train=train)


def get_model_spec(name: str) -> ModelSpec:
    """A fresh spec for a registered name (or NAME-test); unknown names list the known ones."""
    _discover()
    base = name.removesuffix(DRY_RUN_SUFFIX)
    if base not in _FACTORIES:
        known = ", ".join(list_models()) or "none"
        raise KeyError(f"unknown model {name!r}; registered models: {known} (add -test for a dry run)")
    spec = _FACTORIES[base]()
    if spec.name != base:
        raise ValueError(f"model factory registered as {base!r} returned a spec named {spec.name!r}")
    return dry_run_spec(spec) if name.endswith(DRY_RUN_SUFFIX) else spec
