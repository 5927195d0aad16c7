"""Pick detection parameters for a false-accept budget and store them in the .tflite.

The firmware loop runs once over a streaming-evaluation stream (without detection resets,
so the scores do not depend on the parameters); the detector is then replayed for every
(average_window_duration_ms, minimum_count, detection_threshold) on the grid. The setting
with the fewest misses whose false accepts per hour stay within the budget wins (ties: fewer
false accepts, then the higher threshold, then the shorter window). The pick is then checked
with an exact firmware pass (resets included) and both results are reported.

With `per_class`, each keyword gets a threshold of its own (MLTK's `detection_threshold_list`,
which the firmware uses instead of `detection_threshold`): per (window, count, suppression) each
keyword's thresholds are replayed with the others silenced, and the combinations that find the
most keywords for each total of false accepts (a knapsack over the classes) are replayed
together; those rows then compete like the global ones.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microspeech.data.streams import DetectionSummary, snr_to_json
from microspeech.detection.detector import detection_steps, smooth_scores
from microspeech.detection.params import PARAM_RANGES, THRESHOLD_LIST, DetectionParams, results_in_window
from microspeech.files import write_bytes_atomic

TUNED_KEYS = ("detection_threshold", "average_window_duration_ms", "minimum_count", "suppression_ms")
PARAM_KEYS = (*TUNED_KEYS, THRESHOLD_LIST)
# Above any 0-255 average: a class with this threshold never fires.
NEVER = 256
DEFAULT_THRESHOLDS = tuple(range(100, 256, 5))
DEFAULT_WINDOWS = (500, 750, 1000, 1250, 1500)
DEFAULT_MINIMUM_COUNTS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class DetectionSetting:
    """The parameters `tune` chooses among (PARAM_KEYS).

    Every setting also says which per-class threshold list it runs with: None is the global
    threshold alone (a list stored in the model is then removed on --write, or the device would
    keep using it instead of `detection_threshold`).
    """

    detection_threshold: int
    average_window_duration_ms: int
    minimum_count: int
    suppression_ms: int
    detection_threshold_list: tuple[int, ...] | None = None

    @classmethod
    def of(cls, params: DetectionParams, class_thresholds: Sequence[int] | None = None) -> DetectionSetting:
        """A model's parameters (`class_thresholds`: its stored list, if any)."""
        listed = None if class_thresholds is None else tuple(int(value) for value in class_thresholds)
        return cls(*(int(getattr(params, key)) for key in TUNED_KEYS), listed)

    @property
    def threshold_height(self) -> int:
        """The threshold that breaks ties (higher is safer): the list's sum when there is one."""
        listed = self.detection_threshold_list
        return sum(listed) if listed else self.detection_threshold

    def to_dict(self) -> dict[str, Any]:
        """The PARAM_KEYS, as the JSON and `write_detection_params` take them."""
        listed = self.detection_threshold_list
        return {
            **{key: getattr(self, key) for key in TUNED_KEYS},
            THRESHOLD_LIST: None if listed is None else list(listed),
        }


@dataclass(frozen=True)
class ReplayedSetting:
    """A point of the grid: the setting and what replaying the recorded scores with it found."""

    setting: DetectionSetting
    score: DetectionSummary

    def to_dict(self) -> dict[str, Any]:
        return {**self.setting.to_dict(), **self.score.to_dict()}


@dataclass(frozen=True)
class CheckedSetting:
    """A setting run with the firmware loop (a detection resets the frontend): the exact score.

    `replayed`: its score in the sweep's replay, None for the model's own parameters (which need
    not lie on the grid).
    """

    setting: DetectionSetting
    firmware: DetectionSummary
    replayed: DetectionSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        values = self.setting.to_dict()
        if self.replayed is not None:
            values["replayed"] = ReplayedSetting(self.setting, self.replayed).to_dict()
        values["firmware"] = self.firmware.to_dict()
        return values


@dataclass
class StreamTuning:
    """A grid sweep on one stream and its firmware check.

    `current`: the model's own parameters with their firmware score; `chosen`: the pick within
    the budget (None when nothing fits), `verified`: every firmware-checked candidate, `rows`:
    every replayed grid point; `runtime`: the interpreter that computed every score (litert,
    tflm, or silabs-tflm: Silicon Labs' kernels, whose rounding the part has).
    """

    runtime: str
    grid_points: int
    current: CheckedSetting
    chosen: CheckedSetting | None
    verified: list[CheckedSetting]
    timing_s: dict[str, float]
    rows: list[ReplayedSetting]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "grid_points": self.grid_points,
            "current": self.current.to_dict(),
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "verified": [entry.to_dict() for entry in self.verified],
            "timing_s": self.timing_s,
            "rows": [row.to_dict() for row in self.rows],
        }


@dataclass
class TuningReport:
    """What `tune_detection` did: the stream it built and the sweep on it; `to_dict()` is the JSON."""

    model: str
    model_source: str
    classes: list[str]
    dataset: str
    noise_dataset: str | None
    minutes: float
    snr_db: list[float]
    segmented: bool  # each SNR a segment of its own, else drawn word by word
    seed: int
    max_fa_per_hour: float
    tuning: StreamTuning
    # Why a stored detection_threshold_list was set aside (the firmware loop cannot use it), else None.
    ignored_threshold_list: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stream's description, then the sweep's fields at the same level."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["snr_db"] = [snr_to_json(snr) for snr in self.snr_db]
        tuning = values.pop("tuning")
        return {**values, **tuning.to_dict()}


def sweep(
    stream: Any,
    scores_u8: Any,
    times_ms: Any,
    classes: Sequence[str],
    base: DetectionParams,
    *,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    minimum_counts: Sequence[int] = DEFAULT_MINIMUM_COUNTS,
    suppressions: Sequence[int] | None = None,
    tolerance_ms: int = 1500,
    per_class: bool = False,
    max_false_accepts: int = 50,
) -> list[ReplayedSetting]:
    """One row per grid point: the parameters and the stream score of replaying them.

    A count above what a window holds at the base latency (`results_in_window`) is left out.
    `suppressions` defaults to the base parameters' suppression_ms alone. With `per_class`, the
    rows of each (window, count, suppression) are the best per-class threshold lists for every
    total of false accepts up to `max_false_accepts` (`_per_class_rows`).
    """
    from microspeech.data.streams import EventIndex

    events = EventIndex(stream.events, classes, stream.seconds, tolerance_ms=tolerance_ms)
    rows = []
    for window in windows:
        for count in minimum_counts:
            if count > results_in_window(int(window), base.latency_ms):  # never detects: never picked
                continue
            smoothed = smooth_scores(scores_u8, times_ms, int(window), int(count))
            for suppression in suppressions or (base.suppression_ms,):
                setting = DetectionSetting(
                    base.detection_threshold, int(window), int(count), int(suppression)
                )
                if per_class:
                    rows += _per_class_rows(events, smoothed, classes, thresholds, setting, max_false_accepts)
                    continue
                for threshold in thresholds:
                    steps = detection_steps(smoothed, classes, int(threshold), int(suppression))
                    score = events.counts(smoothed.times_ms[steps], smoothed.top_index[steps])
                    at_threshold = dataclasses.replace(setting, detection_threshold=int(threshold))
                    rows.append(ReplayedSetting(at_threshold, score.summary()))
    return rows


def silenced_keywords(classes: Sequence[str], class_thresholds: Sequence[int] | None) -> list[str]:
    """The keywords a per-class list switches off: a 0-255 score is never above 255."""
    pairs = zip(classes, class_thresholds or (), strict=False)
    return [name for name, threshold in pairs if not name.startswith("_") and threshold >= NEVER - 1]


def _per_class_rows(
    events: Any,
    smoothed: Any,
    classes: Sequence[str],
    thresholds: Sequence[int],
    setting: DetectionSetting,
    max_false_accepts: int,
) -> list[ReplayedSetting]:
    """Per-class threshold lists for one (window, count, suppression) of `setting`: the Pareto
    front of hits against false accepts, each list replayed with every class at once.

    A keyword's hits and false accepts come from replaying it alone (the others never fire);
    summed over the keywords they give the combination's score up to the rare interplay of
    suppression between labels, so each chosen list is replayed whole for its row's score.
    """

    def score(class_thresholds: list[int]) -> Any:
        steps = detection_steps(smoothed, classes, class_thresholds, setting.suppression_ms)
        return events.counts(smoothed.times_ms[steps], smoothed.top_index[steps])

    keywords = [index for index, name in enumerate(classes) if not name.startswith("_")]
    # best[total false accepts] = (hits, sum of thresholds, thresholds so far): more hits first,
    # then the higher thresholds (the safer list when the hits tie).
    best: dict[int, tuple[int, int, tuple[int, ...]]] = {0: (0, 0, ())}
    for keyword in keywords:
        curve = []
        for threshold in thresholds:
            alone = [NEVER] * len(classes)
            alone[keyword] = int(threshold)
            counts = score(alone)  # only this keyword detects: every hit is its own
            curve.append((int(threshold), counts.hits, counts.false_accepts))
        grown: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        for total, (hits, threshold_sum, chosen) in best.items():
            for threshold, class_hits, false_accepts in curve:
                new_total = total + false_accepts
                if new_total > max_false_accepts:
                    continue
                candidate = (hits + class_hits, threshold_sum + threshold, (*chosen, threshold))
                if new_total not in grown or candidate[:2] > grown[new_total][:2]:
                    grown[new_total] = candidate
        best = grown
    rows, most_hits = [], -1
    for total in sorted(best):
        hits, _, chosen = best[total]
        if hits <= most_hits:
            continue  # more false accepts for no more keywords
        most_hits = hits
        class_thresholds = [NEVER - 1] * len(classes)  # 255 for the `_` classes, which never detect
        for keyword, threshold in zip(keywords, chosen, strict=True):
            class_thresholds[keyword] = threshold
        result = score(class_thresholds)
        listed = dataclasses.replace(setting, detection_threshold_list=tuple(class_thresholds))
        rows.append(ReplayedSetting(listed, result.summary()))
    return rows


def _preference(setting: DetectionSetting, score: DetectionSummary) -> tuple:
    # Among settings that replay alike, the longest suppression: after a detection the firmware
    # resets the frontend, and a short suppression lets the same word fire again.
    return (
        score.misses,
        score.false_accepts,
        -setting.threshold_height,
        setting.average_window_duration_ms,
        -setting.suppression_ms,
    )


def _row_preference(row: ReplayedSetting) -> tuple:
    return _preference(row.setting, row.score)


def pick(rows: Sequence[ReplayedSetting], max_fa_per_hour: float) -> ReplayedSetting | None:
    """The row with the fewest misses within the false-accept budget (None when none fits)."""
    within = [row for row in rows if row.score.fa_per_hour <= max_fa_per_hour]
    return min(within, key=_row_preference) if within else None


def _shortlist(rows: Sequence[ReplayedSetting], max_fa_per_hour: float, count: int) -> list[ReplayedSetting]:
    """The `count` preferred rows within the budget, one per distinct outcome (settings that
    differ only in minimum_count often detect exactly alike)."""
    chosen: list[ReplayedSetting] = []
    outcomes = set()
    for row in sorted((r for r in rows if r.score.fa_per_hour <= max_fa_per_hour), key=_row_preference):
        listed = row.setting.detection_threshold_list
        outcome = (
            listed if listed else row.setting.detection_threshold,
            row.setting.average_window_duration_ms,
            row.score.hits,
            row.score.false_accepts,
        )
        if outcome not in outcomes:
            outcomes.add(outcome)
            chosen.append(row)
        if len(chosen) == count:
            break
    return chosen


def _slack(max_fa_per_hour: float, stream_hours: float) -> float:
    """How far over the budget replayed rows still earn a firmware check: twice the budget, or
    one false accept more on this stream, whichever is more."""
    return max(2 * max_fa_per_hour, max_fa_per_hour + 1 / stream_hours)


def candidates(
    rows: Sequence[ReplayedSetting],
    max_fa_per_hour: float,
    stream_hours: float,
    *,
    verify: int = 4,
    check_over_budget: bool = True,
) -> list[ReplayedSetting]:
    """The replayed rows worth checking with the firmware loop, preferred first.

    Replay skips the firmware's reset after each detection, which can add or remove false
    accepts (a reset frontend meets the noise afresh), so besides the `verify` best rows
    within the budget come those with one and two false accepts to spare, and (the slack rule)
    the best rows up to one false accept, or twice the budget, over it.
    """
    one_fa = 1 / stream_hours
    slack = _slack(max_fa_per_hour, stream_hours)
    shortlist: list[ReplayedSetting] = []
    for budget in (max_fa_per_hour, max_fa_per_hour - one_fa, max_fa_per_hour - 2 * one_fa):
        if budget >= 0:
            shortlist += [row for row in _shortlist(rows, budget, verify) if row not in shortlist]
    if check_over_budget:
        over = [row for row in rows if row.score.fa_per_hour > max_fa_per_hour]
        shortlist += [row for row in _shortlist(over, slack, verify) if row not in shortlist]
    return shortlist


# Firmware checks allowed per tuning (each replays the whole stream: about 1-2 s per 30 minutes).
MAX_FIRMWARE_CHECKS = 24
# How many hits replay may understate the firmware result by (resets can find a word again).
REPLAY_HIT_MARGIN = 2


def verify_candidates(
    rows: Sequence[ReplayedSetting],
    max_fa_per_hour: float,
    stream_hours: float,
    firmware_score: Callable[[DetectionSetting], DetectionSummary],
    *,
    verify: int = 4,
    check_over_budget: bool = True,
    max_checks: int = MAX_FIRMWARE_CHECKS,
) -> list[CheckedSetting]:
    """Firmware-check the `candidates`, then walk down the replayed rows while one could still win.

    On a short stream a single false accept is the whole budget, so the few best rows can all
    overshoot on the firmware loop while the next fitting row lies far below them; the check
    then went to a row of a handful of hits (a real case: 13 of 166 keywords instead of 73).
    So after the shortlist, the distinct outcomes within the budget (and its slack, with
    `check_over_budget`) are checked best first, as long as their replayed hits could still beat
    the best fitting firmware result, up to `max_checks` checks in all.
    """
    verified: list[CheckedSetting] = []

    def check(row: ReplayedSetting) -> None:
        verified.append(CheckedSetting(row.setting, firmware_score(row.setting), replayed=row.score))

    for row in candidates(
        rows, max_fa_per_hour, stream_hours, verify=verify, check_over_budget=check_over_budget
    ):
        check(row)
    reach = _slack(max_fa_per_hour, stream_hours) if check_over_budget else max_fa_per_hour
    checked = {entry.setting for entry in verified}
    for row in _shortlist(rows, reach, len(rows)):
        if len(verified) >= max_checks:
            break
        fitting = [e.firmware.hits for e in verified if e.firmware.fa_per_hour <= max_fa_per_hour]
        if fitting and row.score.hits + REPLAY_HIT_MARGIN <= max(fitting):
            break  # rows are in order of replayed hits: none further down can win
        if row.setting not in checked:
            checked.add(row.setting)
            check(row)
    return verified


def choose(
    verified: Sequence[CheckedSetting], current: CheckedSetting | None, max_fa_per_hour: float
) -> CheckedSetting | None:
    """The firmware-checked entry with the fewest misses within the budget (`_preference`
    breaks ties), the model's own parameters (`current`, unless None) competing; None when none fits."""
    # The model's own parameters compete too: when every candidate overshoots on the firmware
    # loop, keeping them may still be the best choice within the budget.
    entries = [*verified, current] if current is not None else list(verified)
    fitting = [entry for entry in entries if entry.firmware.fa_per_hour <= max_fa_per_hour]
    return min(fitting, key=lambda entry: _preference(entry.setting, entry.firmware)) if fitting else None


# The most replays of the stream one sweep takes, one per grid point (the defaults hold 800,
# train's calibration 3,136); 256 x 1000 x 51 held 13 million and grew past 1.7 GB.
MAX_GRID_POINTS = 100_000


def _checked_grid(
    thresholds: Sequence[int],
    windows: Sequence[int],
    minimum_counts: Sequence[int],
    suppressions: Sequence[int] | None = None,
) -> tuple[list[int], list[int], list[int], list[int] | None]:
    """The grid's values as whole numbers within the parameters' ranges (150.5 was truncated and
    a minimum count of 100 accepted); no suppressions: the model's own. Errors name the option;
    `_check_grid_size` bounds the sweep once the keywords are known."""
    from microspeech.checks import OptionError, whole_within

    checked = []
    for option, key, values in (
        ("--thresholds", "detection_threshold", thresholds),
        ("--windows", "average_window_duration_ms", windows),
        ("--counts", "minimum_count", minimum_counts),
        ("--suppressions", "suppression_ms", suppressions),
    ):
        if values is None and key == "suppression_ms":  # the model's own suppression
            checked.append(None)
            continue
        low, high = PARAM_RANGES[key]
        if isinstance(values, str) or values is None or not len(values):
            raise OptionError(f"{option} {values!r}: expected a list of whole numbers from {low} to {high}")
        whole = [whole_within(value, low, high) for value in values]
        if None in whole:
            value = values[whole.index(None)]
            raise OptionError(f"{option} {value!r}: expected whole numbers from {low} to {high}")
        # Each value once (200,200,200 replayed three identical points and counted them to the cap).
        checked.append(list(dict.fromkeys(int(number) for number in whole if number is not None)))
    return checked[0], checked[1], checked[2], checked[3]


def _check_grid_size(grid: list[Sequence[int] | None], per_class_keywords: int = 0) -> None:
    """At most MAX_GRID_POINTS replays of the stream: one per grid point, or with --per-class one
    per threshold and keyword at each window, count and suppression."""
    from microspeech.checks import OptionError

    points = math.prod(len(values) for values in grid if values is not None)
    replays = points * per_class_keywords if per_class_keywords else points
    if replays > MAX_GRID_POINTS:
        per_class = f" x {per_class_keywords} keywords (--per-class)" if per_class_keywords else ""
        raise OptionError(
            f"--thresholds x --windows x --counts x --suppressions{per_class}: {replays:,} replays of the "
            f"stream; at most {MAX_GRID_POINTS:,}: take coarser steps"
        )


def tune_detection(
    model: str | Path,
    *,
    max_fa_per_hour: float,
    dataset: str | None = None,
    minutes: float = 10.0,
    snr_db: float | Sequence[float] = 10.0,
    seed: int = 0,
    noise_dataset: str | None = None,
    split: str = "test",
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    minimum_counts: Sequence[int] = DEFAULT_MINIMUM_COUNTS,
    suppressions: Sequence[int] | None = None,
    backend: str = "litert",
    tolerance_ms: int = 1500,
    verify: int = 4,
    per_class: bool = False,
    segmented: bool = False,
    show_progress: bool = True,
) -> TuningReport:
    """Sweep the grid on a stream; a `TuningReport` whose `tuning` holds `chosen` (None if nothing fits).

    The `verify` best replayed settings within the budget, and as many just over it, are rerun
    with the firmware loop; the pick is made on those exact results. With `segmented`, each SNR
    of `snr_db` (inf: clean) is a segment of its own (`stream_from_dataset`). `backend`: the
    interpreter of every score (litert, tflm, or silabs-tflm: Silicon Labs' kernels, so that the
    pick holds on the part to the rounding; `microspeech.tflite.runtime`).
    """
    from microspeech.checks import (
        MAX_FA_PER_HOUR,
        OptionError,
        check_int,
        check_named,
        check_number,
        check_stream_request,
    )
    from microspeech.detection.keyword_model import ThresholdListError
    from microspeech.evaluation.report import manifest_dataset
    from microspeech.evaluation.streaming import model_stream, resolve_keyword_model

    # As the CLI checks its options: inf overflowed, "2" failed inside a comparison.
    max_fa_per_hour = check_number(max_fa_per_hour, "--max-fa-per-hour", above=0.0, high=MAX_FA_PER_HOUR)
    minutes, snr_db, seed, tolerance_ms = check_stream_request(
        minutes, snr_db, seed, tolerance_ms, segmented=segmented
    )
    check_named(dataset, "--dataset")  # "" fell back to the official test set
    thresholds, windows, minimum_counts, suppressions = _checked_grid(
        thresholds, windows, minimum_counts, suppressions
    )
    check_int(verify, "verify", low=1, high=MAX_FIRMWARE_CHECKS)
    ignored_threshold_list = None
    try:
        keyword_model = resolve_keyword_model(model)
    except ThresholdListError as error:
        # Tuning is how such a model is mended: run its single threshold; writing replaces the list.
        keyword_model = resolve_keyword_model(model, {"detection_threshold": error.detection_threshold})
        ignored_threshold_list = (
            f"{error.problem}; set aside: the current row uses its detection_threshold "
            f"{error.detection_threshold}"
        )
    keywords = sum(not name.startswith("_") for name in keyword_model.classes)
    _check_grid_size([thresholds, windows, minimum_counts, suppressions], keywords if per_class else 0)
    base = keyword_model.detection
    longest = results_in_window(max(windows), base.latency_ms)  # the longest window holds the most
    if min(minimum_counts) > longest:
        raise OptionError(
            f"--counts {','.join(map(str, minimum_counts))}: no window of --windows holds that many results "
            f"at one inference every {base.latency_ms} ms (a {max(windows)} ms window holds {longest}), "
            "so nothing could be detected"
        )
    recorded = None
    if dataset is None and split != "test":
        # The official test set has only test clips: another split is the training dataset's.
        from microspeech.models import resolve_model

        dataset = recorded = manifest_dataset(resolve_model(model))
        if dataset is None:
            raise OptionError(
                f"--split {split}: {model} records no training dataset (no manifest beside it), and the "
                "official test set has only test clips; pass --dataset"
            )
    stream, data_name, noise_name = model_stream(
        keyword_model,
        dataset,
        recorded_by=None if recorded is None else str(model),
        minutes=minutes,
        snr_db=snr_db,
        seed=seed,
        split=split,
        noise_dataset=noise_dataset,
        show_progress=show_progress,
        segmented=segmented,
    )
    tuned = tune_on_stream(
        keyword_model,
        stream,
        max_fa_per_hour=max_fa_per_hour,
        thresholds=thresholds,
        windows=windows,
        minimum_counts=minimum_counts,
        suppressions=suppressions,
        backend=backend,
        tolerance_ms=tolerance_ms,
        verify=verify,
        per_class=per_class,
        show_progress=show_progress,
    )
    return TuningReport(
        model=keyword_model.name,
        model_source=keyword_model.source,
        classes=list(keyword_model.classes),
        dataset=data_name,
        noise_dataset=noise_name,
        minutes=round(stream.seconds / 60, 3),
        snr_db=[float(v) for v in (snr_db if isinstance(snr_db, Sequence) else [snr_db])],
        segmented=segmented,
        seed=seed,
        max_fa_per_hour=max_fa_per_hour,
        tuning=tuned,
        ignored_threshold_list=ignored_threshold_list,
    )


def tune_on_stream(
    keyword_model: Any,
    stream: Any,
    *,
    max_fa_per_hour: float,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    minimum_counts: Sequence[int] = DEFAULT_MINIMUM_COUNTS,
    suppressions: Sequence[int] | None = None,
    backend: str = "litert",
    tolerance_ms: int = 1500,
    verify: int = 4,
    check_over_budget: bool = True,
    max_checks: int = MAX_FIRMWARE_CHECKS,
    per_class: bool = False,
    show_progress: bool = True,
) -> StreamTuning:
    """The grid sweep and firmware check of `tune_detection` on a stream already built.

    `check_over_budget=False` skips the firmware check of settings that replay over the
    budget (the firmware's resets mostly add false accepts, seldom remove them). The firmware
    checks follow `verify_candidates` (at most `max_checks`).

    A `StreamTuning`: `grid_points`, `current` (the model's own parameters, firmware-scored), `chosen`
    (None when nothing fits), `verified`, `timing_s` and `rows`.
    """
    from microspeech.data.streams import score_detections
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.detection.stream_run import run_spotter

    if per_class:
        present = {event.label for event in stream.events if event.is_keyword}
        missing = [name for name in keyword_model.classes if not name.startswith("_") and name not in present]
        if missing:
            # Its threshold would be chosen on no clip at all: 255, the keyword switched off.
            raise ValueError(
                f"--per-class: the tuning stream holds no clip of {', '.join(map(repr, missing))}, so no "
                "threshold can be chosen for it; use a dataset (or --split) with clips of every keyword, "
                "or tune one threshold for all without --per-class"
            )
    base = keyword_model.detection
    spotter = KeywordSpotter(keyword_model, base, backend=backend, reset_after_detection=False)
    # Recorded, so that each firmware check computes only where its resets make it differ.
    scores_run, scores_seconds = run_spotter(
        spotter, stream, "Scoring the stream", show_progress, record=True
    )
    hours = stream.seconds / 3600
    started = time.perf_counter()
    rows = sweep(
        stream,
        scores_run.scores,
        scores_run.times_ms,
        keyword_model.classes,
        base,
        thresholds=thresholds,
        windows=windows,
        minimum_counts=minimum_counts,
        suppressions=suppressions,
        tolerance_ms=tolerance_ms,
        per_class=per_class,
        # Lists beyond the slack `candidates` may check are never picked.
        max_false_accepts=int(_slack(max_fa_per_hour, hours) * hours) + 1,
    )
    sweep_seconds = time.perf_counter() - started

    def firmware_score(setting: DetectionSetting) -> DetectionSummary:
        listed = setting.detection_threshold_list
        spotter.set_params(
            DetectionParams.from_dict({**base.to_dict(), **setting.to_dict()}),
            class_thresholds=None if listed is None else list(listed),
        )
        spotter.reset_after_detection = True
        run, _ = run_spotter(
            spotter, stream, "Checking with the firmware loop", show_progress, reference=scores_run
        )
        score = score_detections(stream.events, run.detections, stream.seconds, tolerance_ms=tolerance_ms)
        return score.summary()

    verified = verify_candidates(
        rows,
        max_fa_per_hour,
        hours,
        firmware_score,
        verify=verify,
        check_over_budget=check_over_budget,
        max_checks=max_checks,
    )
    current = DetectionSetting.of(base, keyword_model.class_thresholds)
    current_entry = CheckedSetting(current, firmware_score(current))
    # Tuned for one threshold, a stored per-class list is not a candidate: what is chosen (and
    # `--write` stores) is one threshold for all, as the option promises.
    competing = current_entry if per_class or current.detection_threshold_list is None else None
    chosen = choose(verified, competing, max_fa_per_hour)
    return StreamTuning(
        runtime=spotter.runner.backend,
        grid_points=len(rows),
        current=current_entry,
        chosen=chosen,
        verified=verified,
        timing_s={"scoring_pass": round(scores_seconds, 3), "sweep": round(sweep_seconds, 3)},
        rows=rows,
    )


def write_detection_params(model_path: str | Path, values: dict[str, Any]) -> None:
    """Store detection parameters in a .tflite's SL_PARAMSv1 block, atomically, keeping the other entries.

    `detection_threshold_list`: a list of one 0-255 threshold per class is stored as MLTK's
    int32 list; None removes a stored list (the firmware would use it instead of the threshold).
    """
    from microspeech.detection.params import checked_threshold_list
    from microspeech.tflite.metadata import classes_from_parameters, read_parameters, write_parameters

    path = Path(model_path)
    if path.suffix != ".tflite" or not path.is_file():
        raise ValueError(f"{path}: --write needs the model's .tflite file (not an archive or a name)")
    # Detection parameters only: an fe.* value written here left a model no command could read.
    others = sorted(set(values) - set(DetectionParams().to_dict()) - {THRESHOLD_LIST})
    if others:
        raise ValueError(f"{', '.join(others)}: not detection parameters ({', '.join(PARAM_KEYS)}, ...)")
    data = path.read_bytes()
    params, dtypes = read_parameters(data, with_dtypes=True)
    values = dict(values)
    if THRESHOLD_LIST in values:
        listed = values.pop(THRESHOLD_LIST)
        params = {key: value for key, value in params.items() if key != THRESHOLD_LIST}
        if listed is not None:
            classes = classes_from_parameters(params)
            # 200.7 was cut to 200; its errors name the number of classes.
            values[THRESHOLD_LIST] = checked_threshold_list(listed, len(classes))
    DetectionParams.from_dict({**params, **values})  # refuse out-of-range values before writing
    updated = {**params, **values}
    # Keep each stored entry's type where the new value fits it; new keys get MLTK's choice.
    keep = {
        key: dtype
        for key, dtype in dtypes.items()
        if key in updated and (key not in values or _fits(dtype, values[key]))
    }
    write_bytes_atomic(path, write_parameters(data, updated, keep))


# What a TuningReport says of its stream (the rest of `to_dict()` is the sweep).
STREAM_KEYS = ("dataset", "noise_dataset", "minutes", "snr_db", "segmented", "seed")


def record_tuning(report: TuningReport) -> Path | None:
    """After `write_detection_params` into a trained model's .tflite: its manifest's
    "detection_tuning" says what was written, on which stream and with what result, beside train's
    "detection_calibration" (which the .tflite no longer holds). The manifest's path, or None when
    the .tflite has no manifest beside it."""
    from datetime import UTC, datetime

    own = _own_manifest(Path(report.model_source))
    if own is None:
        return None
    artifacts, manifest = own
    chosen = report.tuning.chosen
    if chosen is None:
        raise ValueError("record_tuning: nothing was chosen, so nothing was written")
    described = report.to_dict()  # the stream's description and every replayed row: built once
    manifest["detection_tuning"] = {
        "parameters": chosen.setting.to_dict(),
        "firmware": chosen.firmware.to_dict(),
        "max_fa_per_hour": report.max_fa_per_hour,
        "runtime": report.tuning.runtime,
        "stream": {key: described[key] for key in STREAM_KEYS},
        "grid_points": report.tuning.grid_points,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    artifacts.write_manifest(manifest)
    return artifacts.manifest_path


def record_parameters_set(model_path: str | Path, values: dict[str, Any]) -> Path | None:
    """After `write_detection_params` by hand (`params --set`): the trained run's manifest lists
    the values under "detection_parameters_set", newest last, since its detection_calibration (and
    any detection_tuning) no longer describe the .tflite. The manifest's path, or None when the
    .tflite has no manifest of its own beside it."""
    from datetime import UTC, datetime

    own = _own_manifest(Path(model_path))
    if own is None:
        return None
    artifacts, manifest = own
    edits = manifest.get("detection_parameters_set")
    manifest["detection_parameters_set"] = [
        *(edits if isinstance(edits, list) else []),
        {"parameters": dict(values), "date": datetime.now(UTC).isoformat(timespec="seconds")},
    ]
    artifacts.write_manifest(manifest)
    return artifacts.manifest_path


def _own_manifest(source: Path) -> tuple[Any, dict[str, Any]] | None:
    """The trained run's artifacts and manifest of NAME.tflite (None when it has none, or the
    manifest beside it describes another model: a copy), with the .tflite's size as it is now
    (rewriting the parameters block changed it). A damaged manifest is none: the .tflite given as
    a file was read without it (`resolve_model` says so), and failing here would leave the .tflite
    rewritten and the command reporting an error."""
    from microspeech.models import ModelArtifacts, ModelResolutionError

    name = source.name.removesuffix(".tflite")
    artifacts = ModelArtifacts(source.parent, name)
    if not artifacts.manifest_path.is_file():
        return None
    try:
        manifest = artifacts.manifest
    except ModelResolutionError:
        return None
    if manifest.get("name") != name:  # it describes NAME.tflite only, not a copy beside it
        return None
    files = manifest.get("files")
    if isinstance(files, dict) and "tflite_bytes" in files:
        files["tflite_bytes"] = source.stat().st_size
    return artifacts, manifest


def _fits(dtype: str, value: Any) -> bool:
    if dtype in ("float", "double"):  # volume_gain 3 turned MLTK's float into a uint8
        return isinstance(value, int | float) and not isinstance(value, bool)
    bounds = {
        "uint8": (0, 255),
        "uint16": (0, 65535),
        "uint32": (0, 2**32 - 1),
        "int32": (-(2**31), 2**31 - 1),
    }
    if dtype not in bounds or not isinstance(value, int):
        return False
    low, high = bounds[dtype]
    return low <= value <= high
