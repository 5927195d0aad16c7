"""What the validation benchmarks share: the validation clips as training sees them, and the best
miss rate within false-accept budgets on a recorded stream run (threshold, window and count swept)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The sweep every validation benchmark reports: thresholds from 60 in steps of 4, the windows and
# minimum counts the calibration chooses among.
SWEEP_THRESHOLDS = range(60, 256, 4)
SWEEP_WINDOWS = (300, 500, 750, 1000)
SWEEP_MINIMUM_COUNTS = (1, 2, 3)


def validation_clips(dataset: Any, spec: Any, seed: int) -> Any:
    """`TrainingPipeline.validation()` of `spec` and `seed`: fresh frontend, unknown balanced."""
    from microspeech.data.pipeline import TrainingPipeline

    pipeline = TrainingPipeline.__new__(TrainingPipeline)  # validation() needs only these
    pipeline.dataset, pipeline.target, pipeline.seed = dataset, spec.training_target(), seed
    pipeline.classes, pipeline.frontend = list(spec.classes), spec.frontend
    return pipeline.validation()


def best_misses(stream: Any, run: Any, keyword_model: Any, budgets: Iterable[float]) -> dict[float, float]:
    """Per budget (false accepts per hour), the lowest miss rate of the sweep within it (1.0: none)."""
    from microspeech.evaluation.streaming import best_within_budget
    from microspeech.evaluation.tuning import sweep

    rows = sweep(
        stream, run.scores, run.times_ms, keyword_model.classes, keyword_model.detection,
        thresholds=SWEEP_THRESHOLDS, windows=SWEEP_WINDOWS, minimum_counts=SWEEP_MINIMUM_COUNTS,
    )  # fmt: skip
    points = {budget: best_within_budget(rows, budget) for budget in budgets}
    return {budget: point["miss_rate"] if point else 1.0 for budget, point in points.items()}
