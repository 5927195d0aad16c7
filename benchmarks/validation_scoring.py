"""What the validation benchmarks share: the validation clips as training sees them, the best
miss rate within false-accept budgets on a recorded stream run (threshold, window and count swept),
and each word's peak score on that run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    from microspeech.evaluation.tuning import pick, sweep

    rows = sweep(
        stream, run.scores, run.times_ms, keyword_model.classes, keyword_model.detection,
        thresholds=SWEEP_THRESHOLDS, windows=SWEEP_WINDOWS, minimum_counts=SWEEP_MINIMUM_COUNTS,
    )  # fmt: skip
    points = {budget: pick(rows, budget) for budget in budgets}  # the fewest misses within it
    return {budget: point.score.miss_rate if point else 1.0 for budget, point in points.items()}


@dataclass(frozen=True)
class EventPeak:
    """The highest window average a word of the stream reached while it played, or up to a second after."""

    word: str
    is_keyword: bool
    snr_db: float
    peak: int  # 0-255: of its own class for a keyword, of the best keyword class for another word
    peak_class: str


def event_peaks(stream: Any, run: Any, classes: list[str], window_ms: int) -> list[EventPeak]:
    """Every word's peak window average (`detection.detector.window_averages` at `window_ms`)."""
    from microspeech.detection.detector import window_averages
    from microspeech.labels import is_word_class

    averages = window_averages(run.scores, run.times_ms, window_ms)
    keywords = [i for i, name in enumerate(classes) if is_word_class(name)]
    bounds = [(event.start_ms, event.end_ms + 1000) for event in stream.events]
    firsts = np.searchsorted(run.times_ms, [b[0] for b in bounds], side="left")
    lasts = np.searchsorted(run.times_ms, [b[1] for b in bounds], side="right")
    peaks = []
    for event, first, last in zip(stream.events, firsts, lasts, strict=True):
        columns = [classes.index(event.label)] if event.is_keyword else keywords
        during = averages[first:last][:, columns]
        best = during.max(axis=0) if len(during) else np.zeros(len(columns), np.int64)
        top = int(best.argmax())
        peak_class = classes[columns[top]]
        peaks.append(EventPeak(event.word, event.is_keyword, event.snr_db, int(best[top]), peak_class))
    return peaks


# Noise from quiet to loud: slices scaled to an RMS drawn log-uniformly within these bands (int16
# units; the subset's recordings are at 71-192 as recorded; 10,000 is about -10 dBFS), saturating.
SILENCE_LEVEL_BANDS = ((10.0, 100.0), (100.0, 1000.0), (1000.0, 10000.0))


@dataclass(frozen=True)
class SilenceLevelResult:
    """Per level band (`SILENCE_LEVEL_BANDS`), the share of one-second noise slices a model calls
    `_silence_`, and the share it calls a keyword (what could fire on a stream)."""

    silence: tuple[float, ...]
    keyword: tuple[float, ...]


def silence_levels(
    dataset: Any, keyword_model: Any, *, per_band: int = 200, seed: int = 0
) -> SilenceLevelResult:
    """One-second slices of the dataset's background-noise recordings (the recordings validation's
    own silence slices come from), each scaled to an RMS in its band, through a fresh frontend and
    the model's int8 .tflite, as clip evaluation runs them (no volume gain). Recordings are read
    as training's noise bank reads them (one shorter than a slice repeats); an all-zero stretch,
    which no gain makes louder, is drawn again."""
    from microspeech.data.augmentation import NoiseBank
    from microspeech.evaluation.evaluate import score_tflite
    from microspeech.frontend.batch import compute_features
    from microspeech.labels import SILENCE, is_word_class

    settings = keyword_model.frontend_settings
    n = settings.n_samples
    bank = NoiseBank.read(dataset.read_noise, sorted(dataset.noise_paths), n)  # short ones repeated
    spans = zip(bank.starts, bank.lengths, strict=True)
    pieces = [bank.audio[start : start + length] for start, length in spans]
    recordings = [r.astype(np.float64) for r in pieces if np.any(r)]  # int16 values: exact
    if not recordings:
        raise ValueError(f"{dataset.root}: no background-noise recording with sound in it")
    rng = np.random.default_rng([seed, 0x51E])
    silence, keyword = [], []
    keywords = [i for i, name in enumerate(keyword_model.classes) if is_word_class(name)]
    for low, high in SILENCE_LEVEL_BANDS:
        audio = np.empty((per_band, n), np.int16)
        for row in range(per_band):
            recording = recordings[row % len(recordings)]
            piece = np.zeros(0)
            while not np.any(piece):  # a recording with sound has a stretch with sound
                start = int(rng.integers(0, len(recording) - n + 1))
                piece = recording[start : start + n]
            level = np.exp(rng.uniform(np.log(low), np.log(high)))
            scaled = piece * (level / float(np.sqrt(np.mean(piece**2))))
            audio[row] = np.clip(np.round(scaled), -32768, 32767).astype(np.int16)
        scores = score_tflite(keyword_model.tflite_bytes, compute_features(audio, settings))
        predicted = scores.argmax(-1)
        silence.append(float(np.mean(predicted == keyword_model.classes.index(SILENCE))))
        keyword.append(float(np.mean(np.isin(predicted, keywords))))
    return SilenceLevelResult(tuple(silence), tuple(keyword))
