"""Streaming evaluation: keywords hidden in long noisy audio, found (or not) by the detector.

A stream is built deterministically from a seed: test-split clips (half of them the model's
keywords, half other words) placed at known times with random gaps over a bed of background
noise, each clip scaled to a chosen signal-to-noise ratio (active-speech RMS over noise RMS).
The firmware loop (`KeywordSpotter`) runs over it and each detection is matched to the clip
it falls in: the right keyword within [clip start, clip end + tolerance] is a hit (repeats
are counted apart), anything else is a false accept. Reported: hits, misses, miss rate,
false accepts per hour of audio, and the miss-rate-vs-false-accepts curve over every
detection threshold, which wake-word users compare models by.

The operating point is measured exactly as firmware behaves (a detection resets the
frontend). The curve replays the detector over scores recorded once without those resets,
since a reset's effect depends on the threshold; the JSON gives both at the operating point.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.data.streams import (
    DetectionSummary,
    EventIndex,
    KeywordStream,
    StreamEvent,
    StreamScore,
    build_stream,
    score_detections,
    snr_to_json,
    stream_from_dataset,
)
from microspeech.detection.classify import wrapped_samples
from microspeech.detection.keyword_model import KeywordModel
from microspeech.detection.params import THRESHOLD_LIST, DetectionParams
from microspeech.detection.stream_run import run_spotter
from microspeech.evaluation.report import checked_results_dir, manifest_dataset, manifest_label
from microspeech.files import write_files_atomic

__all__ = [
    "STREAM_JSON",
    "STREAM_PLOT",
    "OperatingPoint",
    "SnrScore",
    "StreamingReport",
    "ThresholdPoint",
    "KeywordStream",
    "StreamEvent",
    "StreamScore",
    "build_stream",
    "evaluate_streaming",
    "plot_curve",
    "plot_curves",
    "resolve_keyword_model",
    "run_spotter",
    "score_detections",
    "stream_from_dataset",
    "threshold_curve",
]

STREAM_JSON = "streaming.json"


@dataclass(frozen=True)
class ThresholdPoint:
    """The detector at one threshold (window, count and suppression fixed): a point of the
    miss-rate-vs-false-accepts curve."""

    detection_threshold: int
    score: DetectionSummary
    # The per-class thresholds that decided instead of detection_threshold (a stored list).
    class_thresholds: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        listed = {} if self.class_thresholds is None else {THRESHOLD_LIST: list(self.class_thresholds)}
        return {"detection_threshold": self.detection_threshold, **listed, **self.score.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ThresholdPoint:
        """From a curve point of `streaming.json`."""
        listed = values.get(THRESHOLD_LIST)
        thresholds = None if listed is None else tuple(int(value) for value in listed)
        return cls(int(values["detection_threshold"]), DetectionSummary.from_dict(values), thresholds)

    @property
    def decided_by(self) -> str:
        """The threshold(s) that decided, in words: "threshold 185" or "per-class thresholds [..]"."""
        if self.class_thresholds is None:
            return f"threshold {self.detection_threshold}"
        return f"per-class thresholds {list(self.class_thresholds)}"


@dataclass(frozen=True)
class OperatingPoint:
    """The model's own parameters on the stream: run as firmware runs (a detection resets the
    frontend), and replayed without the resets as the curve is."""

    firmware: ThresholdPoint
    replayed_without_resets: ThresholdPoint

    def to_dict(self) -> dict[str, Any]:
        return {
            "firmware": self.firmware.to_dict(),
            "replayed_without_resets": self.replayed_without_resets.to_dict(),
        }


@dataclass(frozen=True)
class SnrScore:
    """The keywords played at one signal-to-noise ratio, and how many the firmware loop found."""

    keywords: int
    hits: int
    miss_rate: float


@dataclass
class StreamingReport:
    """What `evaluate_streaming` measured; `to_dict()` is what `streaming.json` holds.

    The headline (hits ... fa_per_hour, at the firmware loop's operating point) comes first, then
    the parameters, the per-class and per-SNR scores, the operating point and the threshold curve
    (one point per threshold 0-255); the record of the run stays plain JSON-ready values: every
    stream event and every detection.
    """

    model: str
    model_source: str
    dataset: str
    split: str
    noise_dataset: str | None
    seed: int
    minutes: float
    snr_db: list[float]
    keywords: int
    other_words: int
    hits: int
    misses: int
    miss_rate: float
    false_accepts: int
    fa_per_hour: float
    fa_per_hour_interval: list[float]  # 95%, from the count of false accepts (data.streams.rate_interval)
    repeats: int
    mean_latency_ms: float | None
    x_realtime: float | None  # stream seconds per second of both passes
    backend: str
    tolerance_ms: int
    clipped_samples: int
    # Stream samples the volume gain pushes past the int16 limits: they wrap around, as on the part.
    wrapped_samples: int
    classes: list[str]
    params: DetectionParams
    # MLTK's per-class thresholds when the model stores them: the detector uses these, not
    # params.detection_threshold (the curve still sweeps one threshold for all).
    detection_threshold_list: list[int] | None
    per_class: dict[str, dict[str, int]]  # class -> its counts (data.streams.StreamScore)
    per_snr: dict[str, SnrScore]  # keyed by the SNR as written ("10", "inf" for clean)
    false_accept_contexts: dict[str, int]
    false_accepts_by_word: dict[str, int]  # the word playing at each one, most first
    operating_point: OperatingPoint
    curve: list[ThresholdPoint]
    timing_s: dict[str, float]
    events: list[dict[str, Any]]
    detections: list[dict[str, Any]]
    output_dir: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """streaming.json: every field but where it was written."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "output_dir"}
        values["params"] = self.params.to_dict()
        values["per_snr"] = {snr: asdict(score) for snr, score in self.per_snr.items()}
        values["operating_point"] = self.operating_point.to_dict()
        values["curve"] = [point.to_dict() for point in self.curve]
        values["snr_db"] = [snr_to_json(snr) for snr in self.snr_db]
        return values

    def headline(self) -> list[tuple[str, Any]]:
        """The scalar fields, in order, for a table."""
        values = [(key, value) for key, value in self.to_dict().items()]
        return [(key, value) for key, value in values if isinstance(value, bool | int | float | str)]


def resolve_keyword_model(
    model: str | Path | KeywordModel, overrides: dict[str, Any] | None = None
) -> KeywordModel:
    """The firmware loop's model for a MODEL argument (name, folder, .tflite, .mltk.zip);
    `overrides` replace its embedded detection parameters before they are checked."""
    from microspeech.detection.keyword_model import ModelLoadError, load_keyword_model
    from microspeech.models import ModelResolutionError, resolve_model

    if isinstance(model, KeywordModel):
        return model
    try:
        resolved = resolve_model(model)
        tflite = resolved.require_tflite()
    except ModelResolutionError as error:
        raise ModelLoadError(str(error)) from error
    return load_keyword_model(
        tflite.tflite_bytes, name=resolved.name, source=str(tflite.path), overrides=overrides
    )


def model_stream(
    keyword_model: KeywordModel, dataset: str | None, *, recorded_by: str | None = None, **options: Any
) -> tuple[KeywordStream, str, str]:
    """`stream_from_dataset` for a model's classes; `recorded_by`: the model whose manifest named
    `dataset`, which an error then says (e.g. a subset without a test split), with the way out."""
    try:
        return stream_from_dataset(dataset, keyword_model.classes, **options)
    except ValueError as error:
        if recorded_by is None or dataset is None:
            raise
        raise ValueError(f"{manifest_label(dataset, recorded_by)}: {error}") from None


STREAM_PLOT = "streaming_miss_vs_fa.png"


def threshold_curve(
    stream: KeywordStream,
    scores_u8: np.ndarray,
    times_ms: np.ndarray,
    classes: Sequence[str],
    params: Any,
    *,
    thresholds: Sequence[int] = range(256),
    class_thresholds: Sequence[int] | None = None,
    tolerance_ms: int = 1500,
) -> list[ThresholdPoint]:
    """Miss rate and false accepts per hour at every threshold, replaying the detector on `scores_u8`;
    with `class_thresholds` (a per-class list), that list's one point, labelled by `thresholds[0]`."""
    from microspeech.detection.detector import detection_steps, smooth_scores

    smoothed = smooth_scores(scores_u8, times_ms, params.average_window_duration_ms, params.minimum_count)
    events = EventIndex(stream.events, classes, stream.seconds, tolerance_ms=tolerance_ms)
    points = []
    for threshold in thresholds:
        rule = int(threshold) if class_thresholds is None else [int(v) for v in class_thresholds]
        steps = detection_steps(smoothed, classes, rule, params.suppression_ms)
        score = events.counts(smoothed.times_ms[steps], smoothed.top_index[steps])
        points.append(ThresholdPoint(int(threshold), score.summary()))
    return points


def best_within_budget(curve: Sequence[ThresholdPoint], max_fa_per_hour: float) -> ThresholdPoint | None:
    """The point of a threshold curve missing the fewest keywords within the false-accept budget,
    the higher threshold on ties; None when no point fits."""
    within = [point for point in curve if point.score.fa_per_hour <= max_fa_per_hour]
    if not within:
        return None
    return min(within, key=lambda point: (point.score.miss_rate, -point.detection_threshold))


def plot_curve(curve: Sequence[ThresholdPoint], operating: ThresholdPoint, title: str) -> bytes:
    """PNG of miss rate against false accepts per hour, the operating point marked."""
    return plot_curves({"detection_threshold sweep": curve}, title, operating=operating)


def plot_curves(
    curves: dict[str, Sequence[ThresholdPoint]],
    title: str,
    *,
    operating: ThresholdPoint | None = None,
    max_fa_per_hour: float | None = None,
) -> bytes:
    """PNG of miss rate against false accepts per hour, one line per labelled curve (several
    models on one stream), with `operating` (a firmware run's point) marked when given."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5))
    axes = figure.subplots()
    for label, curve in curves.items():
        fa = np.array([point.score.fa_per_hour for point in curve])
        miss = np.array([100 * point.score.miss_rate for point in curve])
        style = {"marker": ".", "markersize": 3} if operating is not None else {}
        axes.plot(fa, miss, label=label, **style)
    if operating is not None:
        axes.plot(
            [operating.score.fa_per_hour],
            [100 * operating.score.miss_rate],
            "o",
            color="red",
            label=f"operating point ({operating.decided_by}, firmware run)",
        )
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_xlim(left=0, right=max_fa_per_hour)
    axes.set_ylim(0, 100)
    axes.set_xlabel("False accepts per hour")
    axes.set_ylabel("Miss rate (%)")
    axes.grid(True, which="both", alpha=0.4)
    axes.legend(loc="lower left" if operating is not None else "upper right")
    axes.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _per_snr(events: Sequence[StreamEvent], found_ms: Sequence[int | None]) -> dict[str, SnrScore]:
    keywords: dict[str, int] = {}
    hits: dict[str, int] = {}
    for event, found in zip(events, found_ms, strict=True):
        if event.is_keyword:
            snr = f"{event.snr_db:g}"
            keywords[snr] = keywords.get(snr, 0) + 1
            hits[snr] = hits.get(snr, 0) + (found is not None)
    return {
        snr: SnrScore(keywords[snr], hits[snr], round(1 - hits[snr] / keywords[snr], 5))
        for snr in sorted(keywords, key=float)
    }


def evaluate_streaming(
    model: str | Path,
    *,
    dataset: str | None = None,
    minutes: float = 10.0,
    snr_db: float | Sequence[float] = 10.0,
    seed: int = 0,
    output_dir: Path | None = None,
    params_override: dict | None = None,
    noise_dataset: str | None = None,
    split: str = "test",
    backend: str = "litert",
    tolerance_ms: int = 1500,
    show_progress: bool = True,
    segmented: bool = False,
    plot: bool = True,
) -> StreamingReport:
    """Build a stream, run the detector over it and write `streaming.json` + the curve PNG.

    `params_override` replaces detection parameters embedded in the model (a detection_threshold
    there replaces a stored detection_threshold_list too). With `segmented`,
    each SNR of `snr_db` (inf: clean) is a segment of its own (`stream_from_dataset`). Returns the report
    (the headline numbers at its top level). `dataset` by default: the training dataset the model's
    manifest records (as the clip evaluation), else the official test set. Output goes to
    `output_dir`, by default `report.default_results_dir`'s; `plot=False` leaves out the PNG.
    """
    from microspeech.checks import OptionError, check_named, check_stream_request
    from microspeech.detection.classify import MODEL_THRESHOLDS, KeywordSpotter, detection_params_with

    minutes, snr_db, seed, tolerance_ms = check_stream_request(
        minutes, snr_db, seed, tolerance_ms, segmented=segmented
    )
    check_named(dataset, "--dataset")
    if isinstance(output_dir, str) and not output_dir.strip():  # Path("") is the current folder
        raise OptionError("--output '': an empty folder name; name a folder (or leave it out)")
    keyword_model = resolve_keyword_model(model, params_override)
    recorded = None
    if dataset is None and not isinstance(model, KeywordModel):
        from microspeech.models import resolve_model

        dataset = recorded = manifest_dataset(resolve_model(model))
    out = checked_results_dir(Path(keyword_model.source), output_dir)
    params = detection_params_with(keyword_model.detection, params_override)
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
    # The pass without resets (the curve's scores) goes first: the firmware pass then computes
    # only what its resets change (`run_stream(reference=...)`), with the same result.
    # A threshold asked for is meant to apply: the device would use a stored list instead (as
    # classify_audio --threshold, which says so).
    threshold_given = (params_override or {}).get("detection_threshold") is not None
    spotter = KeywordSpotter(
        keyword_model,
        params,
        backend=backend,
        reset_after_detection=False,
        class_thresholds=None if threshold_given else MODEL_THRESHOLDS,
    )
    replay_run, replay_seconds = run_spotter(
        spotter, stream, "Detector (for the curve)", show_progress, record=True
    )
    spotter.reset_after_detection = True
    firmware_run, firmware_seconds = run_spotter(
        spotter, stream, "Detector (firmware)", show_progress, reference=replay_run
    )

    operating = score_detections(
        stream.events, firmware_run.detections, stream.seconds, tolerance_ms=tolerance_ms
    )
    curve = threshold_curve(
        stream,
        replay_run.scores,
        replay_run.times_ms,
        keyword_model.classes,
        params,
        tolerance_ms=tolerance_ms,
    )
    class_thresholds = spotter.recognizer.class_thresholds
    if class_thresholds is None:
        curve_at_operating = next(p for p in curve if p.detection_threshold == params.detection_threshold)
    else:  # the stored list replayed, as the firmware pass ran it
        curve_at_operating = threshold_curve(
            stream,
            replay_run.scores,
            replay_run.times_ms,
            keyword_model.classes,
            params,
            thresholds=[params.detection_threshold],
            class_thresholds=class_thresholds,
            tolerance_ms=tolerance_ms,
        )[0]
    # A stored list decided, not the threshold: both points say so (JSON, the plot's legend).
    listed = None if class_thresholds is None else tuple(int(value) for value in class_thresholds)
    curve_at_operating = replace(curve_at_operating, class_thresholds=listed)
    firmware_point = ThresholdPoint(params.detection_threshold, operating.summary(), listed)
    summary = firmware_point.score
    report = StreamingReport(
        model=keyword_model.name,
        model_source=keyword_model.source,
        dataset=data_name,
        split=split,
        noise_dataset=noise_name,
        seed=seed,
        minutes=round(stream.seconds / 60, 3),
        snr_db=[float(v) for v in np.atleast_1d(snr_db)],
        keywords=operating.keywords,
        other_words=len(stream.events) - operating.keywords,
        hits=summary.hits,
        misses=summary.misses,
        miss_rate=summary.miss_rate,
        false_accepts=summary.false_accepts,
        fa_per_hour=summary.fa_per_hour,
        fa_per_hour_interval=[round(value, 3) for value in operating.counts.fa_per_hour_interval],
        repeats=summary.repeats,
        mean_latency_ms=None if operating.mean_latency_ms is None else round(operating.mean_latency_ms, 1),
        x_realtime=(
            round(stream.seconds / (firmware_seconds + replay_seconds), 1)
            if firmware_seconds + replay_seconds > 0
            else None
        ),
        backend=backend,
        tolerance_ms=tolerance_ms,
        clipped_samples=stream.clipped_samples,
        wrapped_samples=wrapped_samples(stream.audio, params.volume_gain),
        classes=list(keyword_model.classes),
        params=params,
        detection_threshold_list=None if listed is None else list(listed),
        per_class=operating.per_class,
        per_snr=_per_snr(stream.events, operating.found_ms),
        false_accept_contexts=operating.false_accept_contexts,
        false_accepts_by_word=operating.false_accepts_by_word,
        operating_point=OperatingPoint(firmware_point, curve_at_operating),
        curve=curve,
        timing_s={"firmware_pass": round(firmware_seconds, 3), "curve_pass": round(replay_seconds, 3)},
        events=[
            {
                **asdict(event),
                "snr_db": snr_to_json(event.snr_db),
                "start_ms": event.start_ms,
                "end_ms": event.end_ms,
                "detected_ms": found,
            }
            for event, found in zip(stream.events, operating.found_ms, strict=True)
        ],
        detections=[
            {"time_ms": d.time_ms, "label": d.label, "score": d.score, "outcome": outcome}
            for d, outcome in zip(firmware_run.detections, operating.outcomes, strict=True)
        ],
    )
    title = f"{keyword_model.name} on {data_name}: {report.minutes:g} min, SNR {report.snr_db} dB"
    # One set, as the clip evaluation's: an earlier model's plot never stays beside this JSON.
    contents = {out / STREAM_JSON: (json.dumps(report.to_dict(), indent=2) + "\n").encode()}
    if plot:
        contents[out / STREAM_PLOT] = plot_curve(curve, firmware_point, title)
    write_files_atomic(contents)
    if not plot:
        (out / STREAM_PLOT).unlink(missing_ok=True)
    report.output_dir = out
    return report
