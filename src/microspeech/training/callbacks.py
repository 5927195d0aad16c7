"""Epoch-end rules of the reference recipe, with state that survives a checkpoint.

Same semantics as Keras' ReduceLROnPlateau and EarlyStopping(restore_best_weights=True),
but as plain objects the fast training loop calls, so their counters can be saved and a
resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


def _improved(current: float, best: float, mode: str, min_delta: float) -> bool:
    if mode == "max":
        return current > best + min_delta
    return current < best - min_delta


def mode_for(monitor: str) -> str:
    """Accuracy-like metrics are maximized, losses minimized."""
    return "min" if monitor.endswith("loss") else "max"


@dataclass
class ReduceLROnPlateau:
    """Multiply the learning rate by `factor` after `patience` epochs without improvement."""

    monitor: str = "val_accuracy"
    factor: float = 0.25
    patience: int = 7
    min_lr: float = 1e-6
    min_delta: float = 1e-4
    best: float = math.nan
    wait: int = 0

    def on_epoch_end(self, metrics: dict[str, float], learning_rate: float) -> float:
        """The learning rate for the next epoch."""
        current = metrics[self.monitor]
        mode = mode_for(self.monitor)
        if math.isnan(self.best) or _improved(current, self.best, mode, self.min_delta):
            self.best = current
            self.wait = 0
            return learning_rate
        self.wait += 1
        if self.wait >= self.patience and learning_rate > self.min_lr:
            self.wait = 0
            return max(learning_rate * self.factor, self.min_lr)
        return learning_rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReduceLROnPlateau:
        return cls(**values)


def cosine_learning_rate(epoch: int, base: float, minimum: float, hold_epochs: int, epochs: int) -> float:
    """The learning rate of epoch `epoch` (0-based): `base` for the first `hold_epochs`, then half
    a cosine down to `minimum` at the last of `epochs` (no state: a resumed run follows it too)."""
    if epoch < hold_epochs or epochs <= hold_epochs + 1:
        return base
    progress = min((epoch - hold_epochs) / (epochs - hold_epochs - 1), 1.0)
    return minimum + (base - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class EarlyStopping:
    """Stop after `patience` epochs without improvement; remember the best epoch."""

    monitor: str = "val_accuracy"
    patience: int = 20
    min_delta: float = 0.0
    best: float = math.nan
    best_epoch: int = -1
    wait: int = 0

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> tuple[bool, bool]:
        """(this epoch is the new best, training should stop)."""
        current = metrics[self.monitor]
        if math.isnan(self.best) or _improved(current, self.best, mode_for(self.monitor), self.min_delta):
            self.best = current
            self.best_epoch = epoch
            self.wait = 0
            return True, False
        self.wait += 1
        return False, self.wait >= self.patience

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EarlyStopping:
        return cls(**values)


def balanced_class_weights(labels: Any, n_classes: int) -> list[float]:
    """total / (classes x count) per class (sklearn's 'balanced'); absent classes get 0."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    total = counts.sum()
    return [float(total / (n_classes * count)) if count else 0.0 for count in counts]


def scale_class_weights(weights: list[float], classes: list[str], scale: dict[str, float]) -> list[float]:
    """Multiply the weight of each class named in `scale` by its factor; others unchanged."""
    unknown = sorted(set(scale) - set(classes))
    if unknown:
        raise ValueError(f"class_weight_scale names unknown class(es) {unknown}; classes: {classes}")
    return [float(weight * scale.get(name, 1.0)) for weight, name in zip(weights, classes, strict=True)]
