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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.files import write_bytes_atomic, write_text_atomic

STREAM_JSON = "streaming.json"
STREAM_PLOT = "streaming_miss_vs_fa.png"
DEFAULT_DATASET = "speech_commands_test_set_v0.02"  # the official test set, as clip evaluation
FRAME = SAMPLE_RATE // 100  # 10 ms frames for the active-speech level
ACTIVE_DB = 30.0  # frames within this many dB of a clip's loudest frame count as speech


@dataclass(frozen=True)
class StreamEvent:
    """One clip placed in the stream."""

    start: int  # sample index
    length: int  # samples
    word: str
    label: str  # the model class it should trigger (`_unknown_` for other words)
    is_keyword: bool
    snr_db: float
    source: str

    @property
    def start_ms(self) -> int:
        return self.start * 1000 // SAMPLE_RATE

    @property
    def end_ms(self) -> int:
        return (self.start + self.length) * 1000 // SAMPLE_RATE


@dataclass(frozen=True)
class KeywordStream:
    audio: np.ndarray  # int16
    events: list[StreamEvent]
    noise_rms: float  # int16 units
    clipped_samples: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def active_rms(audio: np.ndarray) -> float:
    """RMS over the 10 ms frames within ACTIVE_DB of the loudest one (the spoken part)."""
    samples = np.asarray(audio, dtype=np.float64)
    usable = len(samples) // FRAME * FRAME
    if usable == 0:
        return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
    energy = np.mean(samples[:usable].reshape(-1, FRAME) ** 2, axis=1)
    loudest = energy.max()
    if loudest <= 0:
        return 0.0
    return float(np.sqrt(energy[energy >= loudest * 10 ** (-ACTIVE_DB / 10)].mean()))


def _noise_bed(sources: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of unit-RMS noise: random excerpts of the sources, crossfaded."""
    normalized = []
    for source in sources:
        source = np.asarray(source, dtype=np.float64)
        rms = np.sqrt(np.mean(source**2)) if len(source) else 0.0
        if rms >= 1.0 and len(source) >= SAMPLE_RATE // 4:  # skip digital silence and scraps
            normalized.append(source / rms)
    if not normalized:
        raise ValueError("the background-noise recordings are all silent or shorter than 0.25 s")
    fade = SAMPLE_RATE // 50  # 20 ms crossfade hides the joins
    ramp = np.linspace(0.0, 1.0, fade)
    bed = np.zeros(length + fade)
    position = 0
    while position < length:
        source = normalized[int(rng.integers(len(normalized)))]
        excerpt_len = min(len(source), int(rng.uniform(5, 20) * SAMPLE_RATE))
        offset = int(rng.integers(0, len(source) - excerpt_len + 1))
        excerpt = source[offset : offset + excerpt_len].copy()
        excerpt[:fade] *= ramp[: len(excerpt[:fade])]
        excerpt[-fade:] *= ramp[::-1][-len(excerpt[-fade:]) :]
        end = min(position + len(excerpt), len(bed))
        bed[position:end] += excerpt[: end - position]
        position += max(len(excerpt) - fade, 1)
    return bed[:length]


def build_stream(
    keyword_clips: Sequence[tuple[str, str, Callable[[], np.ndarray]]],
    other_clips: Sequence[tuple[str, str, Callable[[], np.ndarray]]],
    noise: Sequence[np.ndarray],
    *,
    minutes: float,
    snr_db: float | Sequence[float],
    seed: int = 0,
    keyword_fraction: float = 0.5,
    gap_s: tuple[float, float] = (2.5, 6.0),
    tail_ms: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> KeywordStream:
    """Place clips at known times over a noise bed; the same arguments give the same samples.

    Clips are (word, source name, reader) triples; keyword clips' word is the label they
    should trigger. Each event's SNR is drawn from `snr_db`. Gaps are drawn from `gap_s`
    seconds, and no clip starts within `tail_ms` of the end, so detections have time to come.
    """
    if minutes <= 0:
        raise ValueError(f"minutes={minutes}: the stream must be longer than zero")
    if not keyword_clips:
        raise ValueError("no keyword clips to place in the stream")
    if not 0 < keyword_fraction <= 1:
        raise ValueError(f"keyword_fraction={keyword_fraction} must be in (0, 1]")
    if keyword_fraction < 1 and not other_clips:
        keyword_fraction = 1.0
    snrs = [float(v) for v in np.atleast_1d(np.asarray(snr_db, dtype=np.float64))]
    length = int(round(minutes * 60 * SAMPLE_RATE))
    rng = np.random.default_rng(seed)
    keyword_order = rng.permutation(len(keyword_clips))
    other_order = rng.permutation(len(other_clips)) if other_clips else np.zeros(0, int)
    counters = {True: 0, False: 0}

    placements: list[tuple[int, bool, int, float]] = []  # (start, is_keyword, clip index, snr)
    cursor = int(rng.uniform(*gap_s) * SAMPLE_RATE)
    while cursor + SAMPLE_RATE + tail_ms * SAMPLE_RATE // 1000 <= length:
        is_keyword = bool(rng.random() < keyword_fraction)
        order = keyword_order if is_keyword else other_order
        index = int(order[counters[is_keyword] % len(order)])
        counters[is_keyword] += 1
        placements.append((cursor, is_keyword, index, snrs[int(rng.integers(len(snrs)))]))
        cursor += SAMPLE_RATE + int(rng.uniform(*gap_s) * SAMPLE_RATE)

    clips: list[tuple[np.ndarray, float]] = []
    for done, (_, is_keyword, index, _) in enumerate(placements):
        audio = (keyword_clips if is_keyword else other_clips)[index][2]()
        clips.append((audio, active_rms(audio)))
        if progress is not None:
            progress(done + 1, len(placements))
    levels = [level for _, level in clips if level > 0]
    # At the highest SNR speech keeps its typical recorded level; lower SNRs make it quieter,
    # never louder, so mixing seldom saturates.
    speech_level = float(np.median(levels)) if levels else 1000.0
    noise_rms = speech_level / 10 ** (max(snrs) / 20)

    mix = _noise_bed(noise, length, rng) * noise_rms
    events = []
    for (start, is_keyword, index, snr), (audio, level) in zip(placements, clips, strict=True):
        word, source, _ = (keyword_clips if is_keyword else other_clips)[index]
        gain = noise_rms * 10 ** (snr / 20) / level if level > 0 else 0.0
        mix[start : start + len(audio)] += audio.astype(np.float64) * gain
        label = word if is_keyword else "_unknown_"
        events.append(StreamEvent(start, len(audio), word, label, is_keyword, snr, source))
    rounded = np.rint(mix)
    clipped = int(np.count_nonzero((rounded > 32767) | (rounded < -32768)))
    audio = np.clip(rounded, -32768, 32767).astype(np.int16)
    return KeywordStream(audio, events, float(noise_rms), clipped)


@dataclass(frozen=True)
class StreamScore:
    hits: int
    misses: int
    false_accepts: int
    repeats: int  # extra detections of an already-found keyword within its window
    keywords: int
    hours: float
    per_class: dict[str, dict[str, int]]
    mean_latency_ms: float | None  # detection time after the clip's end, over hits
    outcomes: list[str | None]  # per detection: "hit", "repeat" or "false_accept"
    found_ms: list[int | None]  # per event: the hit's detection time
    false_accept_contexts: dict[str, int]  # during another word, another keyword, or background only

    @property
    def miss_rate(self) -> float:
        return self.misses / self.keywords if self.keywords else 0.0

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / self.hours if self.hours else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "miss_rate": round(self.miss_rate, 5),
            "false_accepts": self.false_accepts,
            "fa_per_hour": round(self.fa_per_hour, 3),
            "repeats": self.repeats,
        }


def score_detections(
    events: Sequence[StreamEvent],
    detections: Sequence[Any],
    seconds: float,
    *,
    tolerance_ms: int = 1500,
) -> StreamScore:
    """Match detections (anything with `.time_ms` and `.label`) to events; see the module docstring."""
    starts = np.array([event.start_ms for event in events], dtype=np.int64)
    ends = np.array([event.end_ms + tolerance_ms for event in events], dtype=np.int64)
    found_ms: list[int | None] = [None] * len(events)
    outcomes: list[str | None] = []
    false_accepts = repeats = 0
    contexts = {"other_word": 0, "other_keyword": 0, "background": 0}
    for detection in detections:
        slot = int(np.searchsorted(starts, detection.time_ms, side="right")) - 1
        inside = slot >= 0 and detection.time_ms <= ends[slot]
        if inside and events[slot].is_keyword and events[slot].label == detection.label:
            if found_ms[slot] is None:
                found_ms[slot] = int(detection.time_ms)
                outcomes.append("hit")
            else:
                repeats += 1
                outcomes.append("repeat")
        else:
            false_accepts += 1
            outcomes.append("false_accept")
            context = (
                "background" if not inside else "other_keyword" if events[slot].is_keyword else "other_word"
            )
            contexts[context] += 1
    per_class: dict[str, dict[str, int]] = {}
    latencies = []
    for event, found in zip(events, found_ms, strict=True):
        if not event.is_keyword:
            continue
        entry = per_class.setdefault(event.label, {"keywords": 0, "hits": 0, "misses": 0})
        entry["keywords"] += 1
        entry["hits" if found is not None else "misses"] += 1
        if found is not None:
            latencies.append(found - event.end_ms)
    keywords = sum(1 for event in events if event.is_keyword)
    hits = sum(
        1 for event, found in zip(events, found_ms, strict=True) if event.is_keyword and found is not None
    )
    return StreamScore(
        hits=hits,
        misses=keywords - hits,
        false_accepts=false_accepts,
        repeats=repeats,
        keywords=keywords,
        hours=seconds / 3600,
        per_class=per_class,
        mean_latency_ms=float(np.mean(latencies)) if latencies else None,
        outcomes=outcomes,
        found_ms=found_ms,
        false_accept_contexts=contexts,
    )


def threshold_curve(
    stream: KeywordStream,
    scores_u8: np.ndarray,
    times_ms: np.ndarray,
    classes: Sequence[str],
    params: Any,
    *,
    thresholds: Sequence[int] = range(256),
    tolerance_ms: int = 1500,
) -> list[dict[str, Any]]:
    """Miss rate and false accepts per hour at every threshold, replaying the detector on `scores_u8`."""
    from microspeech.detection.detector import detect, smooth_scores

    smoothed = smooth_scores(scores_u8, times_ms, params.average_window_duration_ms, params.minimum_count)
    points = []
    for threshold in thresholds:
        detections = detect(smoothed, classes, int(threshold), params.suppression_ms)
        score = score_detections(stream.events, detections, stream.seconds, tolerance_ms=tolerance_ms)
        points.append({"detection_threshold": int(threshold), **score.summary()})
    return points


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no bar residue in logs and pipes
    )


def stream_from_dataset(
    dataset: str | Path | None,
    classes: Sequence[str],
    *,
    minutes: float,
    snr_db: float | Sequence[float],
    seed: int,
    split: str = "test",
    noise_dataset: str | Path | None = None,
    show_progress: bool = True,
) -> tuple[KeywordStream, str, str]:
    """A stream from a dataset's `split` clips and its (or `noise_dataset`'s) background noise.

    Noise comes from the noise recordings (`_background_noise_`), else from the dataset's
    `_silence_` clips; no dataset means the official test set. Returns the stream and the names
    of the clip and noise datasets.
    """
    from microspeech.data import load_dataset

    data = load_dataset(str(dataset or DEFAULT_DATASET))
    clips = sorted(data.split(split), key=lambda clip: str(clip.path))  # independent of the loader's order
    keyword_classes = {name for name in classes if not name.startswith("_")}
    keyword_clips = [c for c in clips if c.word in keyword_classes]
    other_clips = [c for c in clips if c.word not in keyword_classes and not c.word.startswith("_silence")]
    if not keyword_clips:
        raise ValueError(
            f"dataset {data.name!r} has no {split}-split clips of the keywords {sorted(keyword_classes)}"
        )
    noise_source = load_dataset(str(noise_dataset)) if noise_dataset is not None else data
    if noise_source.noise_paths:
        noise = [noise_source.read_noise(path) for path in sorted(noise_source.noise_paths)]
    else:
        silence = sorted(
            (c for c in noise_source.clips if c.word.startswith("_silence")), key=lambda c: str(c.path)
        )
        if not silence:
            raise ValueError(
                f"dataset {noise_source.name!r} has neither background-noise recordings nor _silence_ "
                "clips; give a noise dataset"
            )
        noise = [noise_source.read(clip) for clip in silence]

    def entry(clip: Any) -> tuple[str, str, Callable[[], np.ndarray]]:
        path = Path(clip.path)
        name = str(path.relative_to(data.root)) if path.is_relative_to(data.root) else str(path)
        return clip.word, name, lambda: data.read(clip)

    with _progress() if show_progress else _NullProgress() as progress:
        task = progress.add_task("Building the stream", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        stream = build_stream(
            [entry(c) for c in keyword_clips],
            [entry(c) for c in other_clips],
            noise,
            minutes=minutes,
            snr_db=snr_db,
            seed=seed,
            progress=advance,
        )
    return stream, data.name, noise_source.name


class _NullProgress:
    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def run_spotter(spotter: Any, stream: KeywordStream, description: str, show_progress: bool = True) -> Any:
    """One pass of the firmware loop over the stream, with a progress bar; returns (StreamRun, seconds)."""
    from microspeech.detection.classify import run_stream

    with _progress() if show_progress else _NullProgress() as progress:
        task = progress.add_task(description, total=len(stream.audio))
        spotter.process(np.zeros(spotter.hop_samples, np.int16))  # compile and allocate before timing
        started = time.perf_counter()
        run = run_stream(spotter, stream.audio, progress=lambda done: progress.update(task, completed=done))
        return run, time.perf_counter() - started


def plot_curve(curve: Sequence[dict[str, Any]], operating: dict[str, Any], title: str) -> bytes:
    """PNG of miss rate against false accepts per hour, the operating point marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5))
    axes = figure.subplots()
    fa = np.array([p["fa_per_hour"] for p in curve])
    miss = np.array([100 * p["miss_rate"] for p in curve])
    axes.plot(fa, miss, marker=".", markersize=3, label="detection_threshold sweep")
    axes.plot(
        [operating["fa_per_hour"]],
        [100 * operating["miss_rate"]],
        "o",
        color="red",
        label=f"operating point (threshold {operating['detection_threshold']}, firmware run)",
    )
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_xlim(left=0)
    axes.set_ylim(0, 100)
    axes.set_xlabel("False accepts per hour")
    axes.set_ylabel("Miss rate (%)")
    axes.grid(True, which="both", alpha=0.4)
    axes.legend(loc="lower left")
    axes.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _per_snr(events: Sequence[StreamEvent], found_ms: Sequence[int | None]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for event, found in zip(events, found_ms, strict=True):
        if event.is_keyword:
            entry = table.setdefault(f"{event.snr_db:g}", {"keywords": 0, "hits": 0})
            entry["keywords"] += 1
            entry["hits"] += found is not None
    for entry in table.values():
        entry["miss_rate"] = round(1 - entry["hits"] / entry["keywords"], 5)
    return dict(sorted(table.items(), key=lambda item: float(item[0])))


def _default_output_dir(source: Path, model: str | Path) -> Path:
    if source.suffix == ".tflite":
        return source.parent / "eval"
    return Path.cwd() / f"{Path(str(model)).name.split('.')[0]}-eval"


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
) -> dict:
    """Build a stream, run the detector over it and write `streaming.json` + the curve PNG.

    `params_override` replaces detection parameters embedded in the model. Returns the report
    (the headline numbers at its top level). Output goes to `output_dir`, by default an
    `eval/` folder next to the .tflite.
    """
    from microspeech.detection.classify import KeywordSpotter, detection_params_with, load_keyword_model

    keyword_model = load_keyword_model(model)
    params = detection_params_with(keyword_model.detection, params_override)
    stream, data_name, noise_name = stream_from_dataset(
        dataset,
        keyword_model.classes,
        minutes=minutes,
        snr_db=snr_db,
        seed=seed,
        split=split,
        noise_dataset=noise_dataset,
        show_progress=show_progress,
    )
    spotter = KeywordSpotter(keyword_model, params, backend=backend, reset_after_detection=True)
    firmware_run, firmware_seconds = run_spotter(spotter, stream, "Detector (firmware)", show_progress)
    spotter.reset_after_detection = False
    replay_run, replay_seconds = run_spotter(spotter, stream, "Detector (for the curve)", show_progress)

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
    curve_at_operating = next(p for p in curve if p["detection_threshold"] == params.detection_threshold)
    operating_summary = {"detection_threshold": params.detection_threshold, **operating.summary()}
    report: dict[str, Any] = {
        "model": keyword_model.name,
        "model_source": keyword_model.source,
        "dataset": data_name,
        "split": split,
        "noise_dataset": noise_name,
        "seed": seed,
        "minutes": round(stream.seconds / 60, 3),
        "snr_db": [float(v) for v in np.atleast_1d(snr_db)],
        "keywords": operating.keywords,
        "other_words": len(stream.events) - operating.keywords,
        **operating.summary(),
        "mean_latency_ms": None if operating.mean_latency_ms is None else round(operating.mean_latency_ms, 1),
        "x_realtime": round(stream.seconds / firmware_seconds, 1) if firmware_seconds > 0 else None,
        "backend": backend,
        "tolerance_ms": tolerance_ms,
        "clipped_samples": stream.clipped_samples,
        "params": params.to_dict(),
        "per_class": operating.per_class,
        "per_snr": _per_snr(stream.events, operating.found_ms),
        "false_accept_contexts": operating.false_accept_contexts,
        "operating_point": {"firmware": operating_summary, "replayed_without_resets": curve_at_operating},
        "curve": curve,
        "timing_s": {"firmware_pass": round(firmware_seconds, 3), "curve_pass": round(replay_seconds, 3)},
        "events": [
            {**asdict(event), "start_ms": event.start_ms, "end_ms": event.end_ms, "detected_ms": found}
            for event, found in zip(stream.events, operating.found_ms, strict=True)
        ],
        "detections": [
            {"time_ms": d.time_ms, "label": d.label, "score": d.score, "outcome": outcome}
            for d, outcome in zip(firmware_run.detections, operating.outcomes, strict=True)
        ],
    }
    out = (
        Path(output_dir) if output_dir is not None else _default_output_dir(Path(keyword_model.source), model)
    )
    title = f"{keyword_model.name} on {data_name}: {report['minutes']:g} min, SNR {report['snr_db']} dB"
    write_bytes_atomic(out / STREAM_PLOT, plot_curve(curve, operating_summary, title))
    write_text_atomic(out / STREAM_JSON, json.dumps(report, indent=2) + "\n")
    report["output_dir"] = str(out)
    return report
