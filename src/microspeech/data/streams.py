"""Streams: keywords hidden in long noisy audio at known times, and scoring detections against them.

A stream is built deterministically from a seed: clips (half of them keywords, half other
words) placed at known times with random gaps over a bed of background noise, each clip
scaled to a chosen signal-to-noise ratio (active-speech RMS over noise RMS; "clean" streams
have no noise at all). Detections (anything with `.time_ms` and `.label`) are matched to the
clip they fall in: the right keyword within [clip start, clip end + tolerance] is a hit
(repeats are counted apart), anything else is a false accept.

Evaluation scores test streams with it; training builds validation streams with it, to pick
checkpoints and detection parameters on audio the device would hear.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.audio import SAMPLE_RATE, active_rms
from microspeech.data.clips import MIN_NOISE_SAMPLES
from microspeech.labels import UNKNOWN
from microspeech.progress import progress_bar

DEFAULT_DATASET = "speech_commands_test_set_v0.02"  # the official test set, as clip evaluation
CLEAN = math.inf  # the SNR of a stream without noise
BACKGROUND = "(background)"  # a false accept between words


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


class UnusableNoiseError(ValueError):
    """Every background-noise recording is digital silence or a scrap under 0.25 s."""


def _noise_bed(sources: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of unit-RMS noise: random excerpts of the sources, crossfaded."""
    normalized = []
    for source in sources:
        source = np.asarray(source, dtype=np.float64)
        rms = np.sqrt(np.mean(source**2)) if len(source) else 0.0
        if rms >= 1.0 and len(source) >= MIN_NOISE_SAMPLES:  # skip digital silence and scraps
            normalized.append(source / rms)
    if not normalized:
        raise UnusableNoiseError("the background-noise recordings are all silent or shorter than 0.25 s")
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
    if not 0 <= keyword_fraction <= 1:
        raise ValueError(f"keyword_fraction={keyword_fraction} must be in [0, 1]")
    if keyword_fraction > 0 and not keyword_clips:
        raise ValueError("no keyword clips to place in the stream")
    if keyword_fraction < 1 and not other_clips:
        if keyword_fraction == 0:
            raise ValueError("no other words to place in a stream without keywords")
        keyword_fraction = 1.0
    snrs = [float(v) for v in np.atleast_1d(np.asarray(snr_db, dtype=np.float64))]
    if any(math.isnan(v) for v in snrs):
        raise ValueError(f"snr_db={snrs}: an SNR must be a number of dB (or inf for a clean stream)")
    clean = all(math.isinf(v) and v > 0 for v in snrs)
    if not clean and any(math.isinf(v) for v in snrs):
        raise ValueError(f"snr_db={snrs}: a clean stream (inf) cannot mix with noisy SNRs; build it apart")
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
    noise_rms = 0.0 if clean else speech_level / 10 ** (max(snrs) / 20)

    # Scaled, rounded and clipped in place: a 20-minute segment is 150 MB of float64 per copy.
    mix = np.zeros(length) if clean else _noise_bed(noise, length, rng)
    mix *= noise_rms
    events = []
    for (start, is_keyword, index, snr), (audio, level) in zip(placements, clips, strict=True):
        word, source, _ = (keyword_clips if is_keyword else other_clips)[index]
        target = speech_level if clean else noise_rms * 10 ** (snr / 20)
        gain = target / level if level > 0 else 0.0
        mix[start : start + len(audio)] += audio.astype(np.float64) * gain
        label = word if is_keyword else UNKNOWN
        events.append(StreamEvent(start, len(audio), word, label, is_keyword, snr, source))
    np.rint(mix, out=mix)
    clipped = int(np.count_nonzero((mix > 32767) | (mix < -32768)))
    np.clip(mix, -32768, 32767, out=mix)
    audio = mix.astype(np.int16)
    return KeywordStream(audio, events, float(noise_rms), clipped)


def concatenate_streams(streams: Sequence[KeywordStream]) -> KeywordStream:
    """One stream of several played one after the other (events moved to their new times)."""
    if not streams:
        raise ValueError("no streams to concatenate")
    events, offset = [], 0
    for stream in streams:
        events += [dataclasses.replace(event, start=event.start + offset) for event in stream.events]
        offset += len(stream.audio)
    return KeywordStream(
        np.concatenate([stream.audio for stream in streams]),
        events,
        float(max(stream.noise_rms for stream in streams)),
        int(sum(stream.clipped_samples for stream in streams)),
    )


def snr_to_json(snr_db: float) -> float | str:
    """An SNR for a JSON report: a clean stream's inf as "inf" (JSON has no infinity)."""
    return "inf" if snr_db == math.inf else snr_db


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
    false_accepts_by_word: dict[str, int]  # the word playing at each ("(background)": none), most first

    @property
    def counts(self) -> DetectionCounts:
        """The totals alone; their rates and summary are defined there once."""
        return DetectionCounts(self.hits, self.false_accepts, self.repeats, self.keywords, self.hours)

    @property
    def miss_rate(self) -> float:
        return self.counts.miss_rate

    @property
    def fa_per_hour(self) -> float:
        return self.counts.fa_per_hour

    def summary(self) -> DetectionSummary:
        return self.counts.summary()


@dataclass(frozen=True)
class DetectionCounts:
    """How many keywords a set of detections finds, and its false accepts: `StreamScore`'s totals."""

    hits: int
    false_accepts: int
    repeats: int
    keywords: int
    hours: float

    @property
    def misses(self) -> int:
        return self.keywords - self.hits

    @property
    def miss_rate(self) -> float:
        return self.misses / self.keywords if self.keywords else 0.0

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / self.hours if self.hours else 0.0

    @property
    def fa_per_hour_interval(self) -> tuple[float, float]:
        """The 95% interval of the false-accept rate that this many false accepts in this many
        hours are consistent with (`rate_interval`)."""
        return rate_interval(self.false_accepts, self.hours)

    def summary(self) -> DetectionSummary:
        return DetectionSummary(
            hits=self.hits,
            misses=self.misses,
            miss_rate=round(self.miss_rate, 5),
            false_accepts=self.false_accepts,
            fa_per_hour=round(self.fa_per_hour, 3),
            repeats=self.repeats,
        )


@dataclass(frozen=True)
class DetectionSummary:
    """A set of detections scored on a stream, rounded as the reports and their JSON give it."""

    hits: int
    misses: int
    miss_rate: float
    false_accepts: int
    fa_per_hour: float
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectionSummary:
        """From a report's JSON (other keys of the same object ignored)."""
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)})


def _poisson_cdf(count: int, mean: float) -> float:
    """P(X <= count) for X ~ Poisson(mean)."""
    if mean <= 0.0:
        return 1.0
    log_mean = math.log(mean)
    return min(1.0, math.fsum(math.exp(i * log_mean - mean - math.lgamma(i + 1)) for i in range(count + 1)))


def rate_interval(events: int, hours: float, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Garwood) two-sided interval of an event rate per hour, from `events` seen in `hours`.

    A false-accept rate measured on a stream is a count of a few rare events: 4 false accepts in
    2 hours ("2.0 FA/h") are consistent with 0.5-5.1 per hour, so a threshold calibrated to 2 FA/h
    may well make several per hour on other audio. Printed beside every calibrated rate.
    """
    if events < 0 or hours <= 0.0 or not 0.0 < confidence < 1.0:
        raise ValueError(
            "rate_interval needs events >= 0, hours > 0 and 0 < confidence < 1, "
            f"got {events}, {hours}, {confidence}"
        )
    tail = (1.0 - confidence) / 2

    def mean_where(count: int, probability: float) -> float:
        """The Poisson mean at which P(X <= count) falls to `probability` (it falls as the mean rises)."""
        low, high = 0.0, count + 20.0 + 10.0 * math.sqrt(count + 1)
        for _ in range(100):
            middle = (low + high) / 2
            low, high = (middle, high) if _poisson_cdf(count, middle) > probability else (low, middle)
        return (low + high) / 2

    # Upper: the mean that shows <= `events` with probability `tail`; lower: >= `events` with it.
    upper = mean_where(events, tail)
    lower = 0.0 if events == 0 else mean_where(events - 1, 1.0 - tail)
    return lower / hours, upper / hours


class EventIndex:
    """A stream's events as arrays, to count many detection sets (threshold sweeps) with the
    matching rule of `score_detections`, vectorized: detections are class indices into `classes`."""

    def __init__(
        self,
        events: Sequence[StreamEvent],
        classes: Sequence[str],
        seconds: float,
        *,
        tolerance_ms: int = 1500,
    ) -> None:
        self.starts = np.array([event.start_ms for event in events], dtype=np.int64)
        self.ends = np.array([event.end_ms + tolerance_ms for event in events], dtype=np.int64)
        # The class a detection must have to hit the event; -1: nothing hits it.
        index = {name: i for i, name in enumerate(classes)}
        self.hit_class = np.array(
            [index.get(event.label, -1) if event.is_keyword else -1 for event in events], dtype=np.int64
        )
        self.keywords = sum(1 for event in events if event.is_keyword)
        self.hours = seconds / 3600

    def counts(self, times_ms: np.ndarray, class_index: np.ndarray) -> DetectionCounts:
        """Hits, false accepts and repeats of detections at `times_ms` of classes `class_index`."""
        times_ms = np.asarray(times_ms, dtype=np.int64)
        slot = np.searchsorted(self.starts, times_ms, side="right") - 1
        inside = slot >= 0
        inside[inside] = times_ms[inside] <= self.ends[slot[inside]]
        matched = inside.copy()
        matched[inside] = self.hit_class[slot[inside]] == np.asarray(class_index)[inside]
        hits = len(np.unique(slot[matched]))
        return DetectionCounts(
            hits=hits,
            false_accepts=int(len(times_ms) - matched.sum()),
            repeats=int(matched.sum()) - hits,
            keywords=self.keywords,
            hours=self.hours,
        )


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
    by_word: Counter[str] = Counter()
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
            by_word[events[slot].word if inside else BACKGROUND] += 1
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
        false_accepts_by_word=dict(sorted(by_word.items(), key=lambda item: (-item[1], item[0]))),
    )



@contextlib.contextmanager
def _naming_noise(noise_source: Any, option: str | None) -> Iterator[None]:
    """An `UnusableNoiseError` with the dataset whose noise it is, and what gives other noise."""
    try:
        yield
    except UnusableNoiseError as error:
        raise UnusableNoiseError(
            f"dataset {noise_source.name!r} ({noise_source.root}): {error}; {_noise_remedy(option)}"
        ) from None


def _noise_remedy(option: str | None) -> str:
    if option:
        return f"give another ({option})"
    return "add background-noise recordings of 0.25 s or more to its _background_noise_ folder"


class NoKeywordError(ValueError):
    """A stream too short (or unlucky) to hold a keyword clip: scored, it would report 0% missed."""


def stream_from_dataset(
    dataset: Any,
    classes: Sequence[str],
    *,
    minutes: float,
    snr_db: float | Sequence[float],
    seed: int,
    split: str = "test",
    noise_dataset: Any = None,
    show_progress: bool = True,
    segmented: bool = False,
    keyword_fraction: float = 0.5,
    noise_option: str | None = "--noise-dataset",
) -> tuple[KeywordStream, str, str]:
    """A stream from a dataset's `split` clips and its (or `noise_dataset`'s) background noise.
    `noise_option`: the caller's option that names another noise dataset, for the errors (None:
    the caller has none, as in training: they ask for recordings in the dataset instead).

    `dataset` and `noise_dataset`: a name, a folder or a loaded `AudioDataset`. Noise comes
    from the noise recordings (`_background_noise_`), else from the dataset's `_silence_`
    clips; no dataset means the official test set. Each event's SNR is drawn from `snr_db`;
    with `segmented`, each SNR (inf: clean) gets its own segment of minutes / len(snr_db)
    instead, played one after the other (seed + segment number). `keyword_fraction` 0 gives a
    stream of other words only (hard-negative mining). Returns the stream and the names of the
    clip and noise datasets.
    """
    from microspeech.data import load_dataset
    from microspeech.data.clips import AudioDataset
    from microspeech.data.folder import spoken_word

    def loaded(value: Any) -> AudioDataset:
        return value if isinstance(value, AudioDataset) else load_dataset(str(value))

    data = loaded(dataset or DEFAULT_DATASET)
    clips = sorted(data.split(split), key=lambda clip: str(clip.path))  # independent of the loader's order
    keyword_classes = {name for name in classes if not name.startswith("_")}
    keyword_clips = [c for c in clips if c.word in keyword_classes]
    other_clips = [c for c in clips if c.word not in keyword_classes and not c.word.startswith("_silence")]
    if keyword_fraction > 0 and not keyword_clips:
        raise ValueError(
            f"dataset {data.name!r} has no {split}-split clips of the keywords {sorted(keyword_classes)}"
        )
    noise_source = loaded(noise_dataset) if noise_dataset is not None else data
    if noise_source.noise_paths:
        noise = [noise_source.read_noise(path) for path in sorted(noise_source.noise_paths)]
    else:
        silence = sorted(
            (c for c in noise_source.clips if c.word.startswith("_silence")), key=lambda c: str(c.path)
        )
        if not silence:
            raise ValueError(
                f"dataset {noise_source.name!r} has neither background-noise recordings nor _silence_ "
                f"clips; {_noise_remedy(noise_option)}"
            )
        noise = [noise_source.read(clip) for clip in silence]

    def entry(clip: Any) -> tuple[str, str, Callable[[], np.ndarray]]:
        path = Path(clip.path)
        name = str(path.relative_to(data.root)) if path.is_relative_to(data.root) else str(path)
        return spoken_word(clip), name, lambda: data.read(clip)  # "backward", not "_unknown_"

    with progress_bar(show_progress) as progress, _naming_noise(noise_source, noise_option):
        task = progress.add_task("Building the stream", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        keyword_entries = [entry(c) for c in keyword_clips]
        other_entries = [entry(c) for c in other_clips]
        if segmented:
            conditions = [float(v) for v in np.atleast_1d(snr_db)]
            stream = concatenate_streams(
                [
                    build_stream(
                        keyword_entries,
                        other_entries,
                        noise,
                        minutes=minutes / len(conditions),
                        snr_db=condition,
                        seed=seed + number,
                        keyword_fraction=keyword_fraction,
                        progress=advance,
                    )
                    for number, condition in enumerate(conditions)
                ]
            )
        else:
            stream = build_stream(
                keyword_entries,
                other_entries,
                noise,
                minutes=minutes,
                snr_db=snr_db,
                seed=seed,
                keyword_fraction=keyword_fraction,
                progress=advance,
            )
    # Scored without a keyword, a stream reports 0% missed: refuse it rather than print that.
    if keyword_fraction > 0 and not any(event.is_keyword for event in stream.events):
        raise NoKeywordError(
            f"a {minutes:g}-minute stream ({stream.seconds:.1f} s) holds no keyword clip to find; "
            "give it more minutes (--minutes)"
        )
    return stream, data.name, noise_source.name
