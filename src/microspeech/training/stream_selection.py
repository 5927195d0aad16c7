"""Training aimed at the stream: a validation stream, the checkpoint it picks, and calibrated detection.

The validation stream is built from the dataset's *validation* split only (keywords and other
words over the background-noise recordings, one segment per condition: clean and each SNR of
`TrainSettings.stream_snr_db`). Its model inputs are computed once, as the firmware computes
them (`detection.windows.stream_inputs`). Each epoch the float model scores every inference;
the metric is the share of keywords found at the best detection threshold whose false accepts
stay within `max_fa_per_hour` (window, minimum count and suppression as in the spec; the
trainer adds validation accuracy to it for `val_stream_plus_accuracy`). At the end, the int8
.tflite runs on a calibration stream (`TrainSettings.calibration_minutes` of the validation
split, other placements and noise; else the same stream) and (threshold, window, minimum count,
suppression) are chosen for the budget with the firmware loop, as `microspeech tune` does.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from microspeech.data.pipeline import DatasetError
from microspeech.data.streams import (
    EventIndex,
    KeywordStream,
    NoKeywordError,
    rate_interval,
    stream_from_dataset,
)
from microspeech.detection.detector import detection_steps, scores_to_uint8, smooth_scores
from microspeech.detection.params import DetectionParams
from microspeech.detection.windows import StreamInputs, stream_inputs

if TYPE_CHECKING:
    from microspeech.data.clips import AudioDataset
    from microspeech.evaluation.tuning import CheckedSetting
    from microspeech.models.spec import ModelSpec

__all__ = [
    "Calibration",
    "StreamOperatingPoint",
    "ValidationStream",
    "calibrate_detection",
    "calibration_stream",
    "check_stream_data",
]

# Thresholds scanned for the checkpoint metric, from the top: false accepts grow as it falls.
_THRESHOLDS = tuple(range(255, -1, -5))


@dataclass(frozen=True)
class StreamOperatingPoint:
    """Detection parameters and what they do on the validation stream."""

    detection_threshold: int
    average_window_duration_ms: int
    minimum_count: int
    suppression_ms: int
    hits: int
    keywords: int
    false_accepts: int
    fa_per_hour: float

    @property
    def miss_rate(self) -> float:
        return 1.0 - self.hits / self.keywords if self.keywords else 0.0

    @property
    def hit_rate(self) -> float:
        return 1.0 - self.miss_rate

    def params(self) -> dict[str, int]:
        return {
            "detection_threshold": self.detection_threshold,
            "average_window_duration_ms": self.average_window_duration_ms,
            "minimum_count": self.minimum_count,
            "suppression_ms": self.suppression_ms,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.params(),
            "hits": self.hits,
            "keywords": self.keywords,
            "miss_rate": round(self.miss_rate, 5),
            "false_accepts": self.false_accepts,
            "fa_per_hour": round(self.fa_per_hour, 3),
        }


def check_stream_data(dataset: AudioDataset, spec: ModelSpec) -> None:
    """Clear errors before training when the validation split cannot make a stream."""

    where = f"dataset {dataset.name!r} ({dataset.root})"
    validation = dataset.split("validation")
    found = {word: sum(1 for c in validation if c.word == word) for word in spec.keywords}
    others = [c for c in validation if c.word not in spec.keywords and not c.word.startswith("_")]
    missing = [word for word, count in found.items() if count == 0]
    if missing:
        raise DatasetError(
            f"{where}: the validation stream (TrainSettings.stream_validation_minutes) needs validation "
            f"clips of every keyword; none of {', '.join(missing)} (found {found}). Add recordings, or "
            "set stream_validation_minutes to 0 to choose checkpoints by clip accuracy instead"
        )
    if not others:
        raise DatasetError(
            f"{where}: the validation stream needs validation clips of words other than the keywords "
            "(false accepts are measured on them), found none"
        )
    if not dataset.noise_paths:
        raise DatasetError(f"{where}: the validation stream needs background-noise recordings, found none")


# The calibration stream's seed offset: neither the checkpoint stream's (0) nor the one
# `benchmarks/validation_diagnosis.py --stream-offset 1000` reports on.
CALIBRATION_SEED_OFFSET = 500
# Added to a run's seed for its validation streams: not the test benchmark's seeds.
VALIDATION_STREAM_SEED_OFFSET = 7919


def calibration_stream_seed(seed: int, spec: ModelSpec) -> int:
    """The `tune --seed` that draws the very stream `train --seed SEED` calibrated on (its own
    stream, or the checkpoint stream when the spec has no calibration_minutes)."""
    offset = CALIBRATION_SEED_OFFSET if spec.train.calibration_minutes > 0 else 0
    return seed + offset + VALIDATION_STREAM_SEED_OFFSET


def _validation_split_stream(
    dataset: AudioDataset,
    spec: ModelSpec,
    minutes: float,
    seed: int,
    show_progress: bool = False,
    *,
    setting: str = "stream_validation_minutes",
) -> KeywordStream:
    try:
        stream, _, _ = stream_from_dataset(
            dataset,
            spec.classes,
            minutes=minutes,
            snr_db=spec.train.stream_conditions,
            seed=seed + VALIDATION_STREAM_SEED_OFFSET,
            split="validation",
            show_progress=show_progress,
            noise_option=None,  # train has no option for other noise
            segmented=True,
        )
    except NoKeywordError:
        # The stream's length is the spec's setting here, not an option of train (it has no --minutes).
        raise DatasetError(
            f"{dataset.name}: the {minutes:g}-minute validation stream (the spec's train.{setting}) "
            "drew no keyword clip with this seed; lengthen it in the spec, or train with another --seed"
        ) from None
    return stream


def calibration_stream(
    dataset: AudioDataset, spec: ModelSpec, *, seed: int, show_progress: bool = False
) -> KeywordStream | None:
    """`spec.train.calibration_minutes` of the validation split as a stream (None when 0), with
    other placements and noise than the checkpoint stream of the same seed."""
    minutes = spec.train.calibration_minutes
    if not minutes > 0:
        return None
    return _validation_split_stream(
        dataset, spec, minutes, seed + CALIBRATION_SEED_OFFSET, show_progress, setting="calibration_minutes"
    )


def keyword_count(stream: KeywordStream) -> int:
    return sum(1 for event in stream.events if event.is_keyword)


def other_word_counts(stream: KeywordStream) -> dict[str, int]:
    """Clips per non-keyword word in `stream`, by word."""
    counts = Counter(event.word for event in stream.events if not event.is_keyword)
    return dict(sorted(counts.items()))


class ValidationStream:
    """The validation split as a stream, with the firmware's model input at every inference."""

    def __init__(self, stream: KeywordStream, spec: ModelSpec) -> None:
        self.spec = spec
        self.classes = list(spec.classes)
        self.max_fa_per_hour = spec.train.max_fa_per_hour
        self.stream = stream
        self.inputs: StreamInputs = stream_inputs(stream.audio, spec.frontend, spec.detection)
        self.events = EventIndex(stream.events, self.classes, stream.seconds)

    @classmethod
    def build(cls, dataset: AudioDataset, spec: ModelSpec, *, seed: int) -> ValidationStream:
        """The stream of `spec.train`'s settings from `dataset`'s validation split."""
        return cls(_validation_split_stream(dataset, spec, spec.train.stream_validation_minutes, seed), spec)

    @property
    def keywords(self) -> int:
        return keyword_count(self.stream)

    @property
    def other_words(self) -> dict[str, int]:
        """Clips per non-keyword word: the only words its false accepts per hour are measured on."""
        return other_word_counts(self.stream)

    def operating_points(
        self,
        scores: np.ndarray,
        params: DetectionParams | None = None,
        *,
        max_fa_per_hour: float | None = None,
    ) -> list[StreamOperatingPoint]:
        """The detector at every threshold from the top down, until false accepts pass `max_fa_per_hour`.

        Window, minimum count and suppression are `params`' (default: the spec's).
        """
        params = params or self.spec.detection
        limit = self.max_fa_per_hour if max_fa_per_hour is None else max_fa_per_hour
        scores_u8 = scores_to_uint8(np.asarray(scores).reshape(len(self.inputs.times_ms), len(self.classes)))
        smoothed = smooth_scores(
            scores_u8, self.inputs.times_ms, params.average_window_duration_ms, params.minimum_count
        )
        points = []
        for threshold in _THRESHOLDS:
            steps = detection_steps(smoothed, self.classes, threshold, params.suppression_ms)
            score = self.events.counts(smoothed.times_ms[steps], smoothed.top_index[steps])
            points.append(
                StreamOperatingPoint(
                    threshold,
                    params.average_window_duration_ms,
                    params.minimum_count,
                    params.suppression_ms,
                    score.hits,
                    score.keywords,
                    score.false_accepts,
                    score.fa_per_hour,
                )
            )
            if score.fa_per_hour > limit:
                # Lower thresholds mostly add false accepts; with suppression a lower one can move
                # a detection and lose one (a constructed stream shows it, the validation streams
                # measured did not), so the sweep ends here: an epoch metric, not tune's exact search.
                break
        return points

    def best_at_budget(
        self, scores: np.ndarray, params: DetectionParams | None = None
    ) -> StreamOperatingPoint:
        """The most keywords found by any threshold within the budget (window, count, suppression fixed)."""
        return _best_within(self.operating_points(scores, params), self.max_fa_per_hour, until_over=True)

    def checkpoint_score(self, scores: np.ndarray) -> float:
        """Mean share of keywords found within 1, 2, 4 and 8 times the budget: one false accept more
        or less moves it a little, not from best to worst (the budget alone is a step function)."""
        return self.epoch_metrics(scores)[0]

    def epoch_metrics(self, scores: np.ndarray) -> tuple[float, StreamOperatingPoint]:
        """(`checkpoint_score`, `best_at_budget`) from one sweep of the thresholds."""
        budgets = [self.max_fa_per_hour * factor for factor in (1, 2, 4, 8)]
        points = self.operating_points(scores, max_fa_per_hour=budgets[-1])
        score = float(np.mean([_best_within(points, budget).hit_rate for budget in budgets]))
        return score, _best_within(points, self.max_fa_per_hour, until_over=True)


def _best_within(
    points: list[StreamOperatingPoint], budget: float, *, until_over: bool = False
) -> StreamOperatingPoint:
    """The point finding the most keywords within `budget`; `until_over` looks only at the
    thresholds above the first one that passes the budget (as the sweep that stops there)."""
    if until_over:
        over = next((i for i, point in enumerate(points) if point.fa_per_hour > budget), len(points))
        points = points[:over]
    within = [point for point in points if point.fa_per_hour <= budget]
    return max(within, key=lambda point: point.hits)  # threshold 255 never fires, so never empty


def count_words(clips_per_word: dict[str, int]) -> str:
    """'N clips of K other words', as the log and the calibration line say it."""
    return f"{sum(clips_per_word.values())} clips of {len(clips_per_word)} other words"


# The calibration grid: finer and lower than `tune`'s default (label smoothing lowers scores).
CALIBRATION_THRESHOLDS = tuple(range(60, 256, 4))
CALIBRATION_WINDOWS = (300, 500, 750, 1000)
CALIBRATION_MINIMUM_COUNTS = (1, 2, 3, 4)
CALIBRATION_SUPPRESSIONS = (500, 750, 1000, 1500)


def calibration_tune_options(spec: ModelSpec, stream_seed: int | None = None) -> list[str]:
    """`microspeech tune` options for the budget, kind of stream (validation clips, the spec's
    conditions, the calibration's length) and grid `train` calibrates with; with `stream_seed`
    (calibration_stream_seed), its very stream too (on the same dataset)."""

    def listed(values: tuple[int, ...]) -> str:
        steps = {b - a for a, b in zip(values, values[1:], strict=False)}
        if len(values) > 2 and len(steps) == 1:
            step = steps.pop()
            return f"{values[0]}-{values[-1]}" + (f"/{step}" if step != 1 else "")
        return ",".join(map(str, values))

    settings = spec.train
    minutes = settings.calibration_minutes or settings.stream_validation_minutes
    conditions = ",".join("inf" if math.isinf(snr) else f"{snr:g}" for snr in settings.stream_conditions)
    return [
        "--max-fa-per-hour", f"{settings.max_fa_per_hour:g}", "--split", "validation",
        "--minutes", f"{minutes:g}", "--snr-db", conditions, "--segmented",
        "--thresholds", listed(CALIBRATION_THRESHOLDS), "--windows", listed(CALIBRATION_WINDOWS),
        "--counts", listed(CALIBRATION_MINIMUM_COUNTS), "--suppressions", listed(CALIBRATION_SUPPRESSIONS),
        *([] if stream_seed is None else ["--seed", str(stream_seed)]),
    ]  # fmt: skip


@dataclass(frozen=True)
class Calibration:
    """The detection parameters written into the .tflite, and how they did on the validation stream."""

    max_fa_per_hour: float
    minutes: float
    keywords: int
    other_words: dict[str, int]  # clips per word the false accepts were measured on
    chosen: CheckedSetting | None  # the four parameters and their firmware score; None: nothing fits
    spec_params: CheckedSetting  # the spec's parameters with their firmware score, for comparison
    runtime: str = "litert"  # the interpreter of every score (silabs-tflm: the part's kernels)
    # `tune --seed` for this very stream (calibration_stream_seed), with its conditions: the
    # recorded figures can be checked with calibration_tune_options on the same dataset.
    stream_seed: int | None = None
    snr_db: tuple[float, ...] = ()

    @property
    def detects_nothing(self) -> bool:
        """The pick finds no keyword on the stream: within the budget, but no use on a part."""
        return self.chosen is not None and self.chosen.firmware.miss_rate >= 1.0

    @property
    def fa_per_hour_interval(self) -> tuple[float, float] | None:
        """95% interval of the chosen parameters' false-accept rate: the few false accepts a
        validation stream holds leave it wide, and audio of other words can fall anywhere in it."""
        if self.chosen is None:
            return None
        return rate_interval(self.chosen.firmware.false_accepts, self.minutes / 60)

    def describe(self) -> str:
        # Words the stream lacks can fire more on other audio: say how broad the evidence is.
        budget = (
            f"<= {self.max_fa_per_hour:g} FA/h on {self.minutes:g} min of validation stream, "
            f"{count_words(self.other_words)}, scored with {self.runtime}"
        )
        if self.chosen is None:
            kept = self.spec_params.firmware
            return (
                f"kept the spec's, which miss {100 * kept.miss_rate:.1f}% at {kept.fa_per_hour:.1f} FA/h: "
                f"nothing reached {budget}. The model is not ready for a stream at this budget: train it "
                "longer or on more data, or choose parameters with `microspeech tune`"
            )
        score = self.chosen.firmware
        params = ", ".join(
            f"{key} {value}" for key, value in self.chosen.setting.to_dict().items() if value is not None
        )
        low, high = self.fa_per_hour_interval or (0.0, 0.0)
        spec_score = self.spec_params.firmware
        described = (
            f"{params}: {100 * score.miss_rate:.1f}% missed, {score.fa_per_hour:.1f} FA/h "
            f"({score.false_accepts} false accepts: 95% interval {low:.1f}-{high:.1f} FA/h; {budget}); "
            f"the spec's: {100 * spec_score.miss_rate:.1f}% missed, {spec_score.fa_per_hour:.1f} FA/h"
        )
        if self.detects_nothing:  # printed in green as a calibration like any other
            described += (
                ". These detect no keyword of the stream: the model is not ready for a stream at this "
                "budget: train it longer or on more data, or choose parameters with `microspeech tune`"
            )
        return described

    def to_dict(self) -> dict[str, Any]:
        interval = self.fa_per_hour_interval
        return {
            "max_fa_per_hour": self.max_fa_per_hour,
            "runtime": self.runtime,
            "minutes": round(self.minutes, 3),
            "keywords": self.keywords,
            "other_words": self.other_words,
            "stream_seed": self.stream_seed,
            "stream_snr_db": ["inf" if math.isinf(snr) else snr for snr in self.snr_db],
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "chosen_fa_per_hour_interval": None if interval is None else [round(v, 3) for v in interval],
            "spec_params": self.spec_params.to_dict(),
        }


def calibrate_detection(
    tflite_path: Any,
    stream: KeywordStream,
    max_fa_per_hour: float,
    *,
    backend: str = "litert",
    show_progress: bool = True,
) -> Calibration:
    """Choose detection parameters for the budget on `stream` with the int8 model's firmware loop
    in `backend` (silabs-tflm: the part's kernels); write them in.

    Nothing within the budget keeps the spec's parameters (reported, not an error).
    """
    from microspeech.detection.keyword_model import load_keyword_model
    from microspeech.evaluation.tuning import TUNED_KEYS, tune_on_stream, write_detection_params

    keyword_model = load_keyword_model(tflite_path)
    tuned = tune_on_stream(
        keyword_model,
        stream,
        max_fa_per_hour=max_fa_per_hour,
        thresholds=CALIBRATION_THRESHOLDS,
        windows=CALIBRATION_WINDOWS,
        minimum_counts=CALIBRATION_MINIMUM_COUNTS,
        suppressions=CALIBRATION_SUPPRESSIONS,
        verify=2,  # two per margin first; then `verify_candidates` walks down while a row can win
        check_over_budget=False,
        backend=backend,
        show_progress=show_progress,
    )
    chosen = tuned.chosen
    if chosen is not None:
        write_detection_params(tflite_path, {key: getattr(chosen.setting, key) for key in TUNED_KEYS})
    return Calibration(
        max_fa_per_hour=max_fa_per_hour,
        minutes=stream.seconds / 60,
        keywords=keyword_count(stream),
        other_words=other_word_counts(stream),
        chosen=None if chosen is None else dataclasses.replace(chosen, replayed=None),
        spec_params=tuned.current,
        runtime=tuned.runtime,
    )
