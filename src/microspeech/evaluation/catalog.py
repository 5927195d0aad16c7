"""The registered models side by side: size, cost and measured accuracy, and a RAM/flash budget filter.

Architecture numbers (parameters, MACs, .tflite size, measured TFLM arena, Cortex-M33 estimate,
MVP cycles) come from the trained .tflite when `models_dir()/<name>/<name>.tflite` exists, else
from converting the untrained build (the same graph; only the weights and the embedded
parameters' values differ). They are cached per model under `cache_dir()/model_cards`, keyed
by the spec, the builder's source and the .tflite, so `microspeech list` converts a model once.

Accuracy and miss rate are not recomputed: they are read from `MEASURED_RESULTS`, a checked-in
table in which every row names the benchmark command and date that produced it.
"""

from __future__ import annotations

import contextlib
import decimal
import hashlib
import inspect
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from microspeech.paths import cache_dir, models_dir
from microspeech.version import __version__

__all__ = [
    "MEASURED_RESULTS",
    "MeasuredResult",
    "ModelCard",
    "fit_budget",
    "model_card",
    "model_cards",
    "parse_bytes",
]

CARD_FORMAT = 2
REPRESENTATIVE_SAMPLES = 32


@dataclass(frozen=True)
class MeasuredResult:
    """Measured quality of a registered model's recipe, with where the numbers come from."""

    clip_accuracy: float  # int8 .tflite on the dev test bundle's clips (fraction)
    miss_rate_at_5_fa_per_hour: float  # streaming: keywords missed at <= 5 false accepts/hour
    command: str
    date: str
    source: str


MEASURED_RESULTS: dict[str, MeasuredResult] = {
    "tflite_micro_speech": MeasuredResult(
        clip_accuracy=0.872,
        miss_rate_at_5_fa_per_hour=0.394,
        command=(
            "benchmarks/detection.py --speed-minutes 0 --model S0.tflite --model S1.tflite --model S2.tflite "
            "(SN: microspeech train tflite_micro_speech --dataset <subset> --seed N)"
        ),
        date="2026-12-08",
        source=(
            "BENCHMARKS.md, 'Streaming detection: the headline' (one second of warm-up): "
            "Intel Xeon (AVX-512), mean of 3 seeds"
        ),
    ),
    "two_conv": MeasuredResult(
        clip_accuracy=0.898,
        miss_rate_at_5_fa_per_hour=0.331,
        command=(
            "benchmarks/detection.py --speed-minutes 0 --model T0.tflite --model T1.tflite "
            "--model T2.tflite (TN: microspeech train two_conv --dataset <subset> --seed N)"
        ),
        date="2026-12-07",
        source="BENCHMARKS.md, 'Capacity on the same stream' (as the part runs them): Intel Xeon (AVX-512), "
        "mean of 3 seeds",
    ),
    "ds_cnn": MeasuredResult(
        clip_accuracy=0.934,
        miss_rate_at_5_fa_per_hour=0.212,
        command=(
            "benchmarks/detection.py --speed-minutes 0 --model D0.tflite --model D1.tflite "
            "--model D2.tflite (DN: microspeech train ds_cnn --dataset <subset> --seed N)"
        ),
        date="2026-12-08",
        source="BENCHMARKS.md, 'Silence from quiet to loud' (the DS-CNN with loud silence): Intel Xeon "
        "(AVX-512), mean of 3 seeds",
    ),
}


@dataclass
class ModelCard:
    """One registered model's row of `microspeech list`."""

    name: str
    source: str  # "trained" or "untrained build"
    parameters: int
    macs: int
    tflite_bytes: int
    arena_bytes: int  # smallest TFLM arena that works, measured on this 64-bit host
    arena_32bit_bytes: int  # the 32-bit estimate (microspeech.tflite.profile.estimate_arena_32bit)
    m33_ms: float  # Cortex-M33 @ 78 MHz, CMSIS-NN, estimate
    mvp_accelerator_cycles: int | None  # simulated; None when the simulator is not installed
    mvp_ms: float | None  # MVP total at 78 MHz (accelerator cycles + CPU estimate)
    mvp_fallbacks: list[str] | None
    clip_accuracy: float | None = None
    miss_rate_at_5_fa_per_hour: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


def parse_bytes(text: str) -> int:
    """'16k' -> 16384, '64KiB' -> 65536, '1m' -> 1048576, '9000' -> 9000 (k = 1024 bytes)."""
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a size; use bytes or a k/M suffix (k = 1024), e.g. 16k")
    # Exact decimal arithmetic: a float would print 10**24 back as 999,999,999,999,999,983,222,784.
    size = decimal.Decimal(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if size < 1:
        raise ValueError(f"{text!r} is less than one byte")
    if size != size.to_integral_value():  # 16384.5 bytes: not a size to round silently
        raise ValueError(f"{text!r} is {size} bytes; give a whole number of bytes (1.5k = 1536 is fine)")
    return int(size)


def _spec_key(spec) -> str:
    builder = inspect.getsource(inspect.getmodule(spec.build) or spec.build)
    payload = json.dumps(spec.to_dict(), sort_keys=True, default=str) + builder + __version__
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _untrained_tflite(spec, model) -> bytes:
    """The untrained build converted as `train` converts (random int8 features calibrate it).

    Weights that start at zero (biases) get small values first: the converter drops an all-zero
    bias tensor, so the untrained graph would lack a tensor every trained one has (a smaller
    .tflite and arena than training gives)."""
    from microspeech.tflite.convert import build_tflite

    rng = np.random.default_rng(0)
    for weight in model.weights:
        values = np.asarray(weight.numpy())
        if values.size and not values.any():
            weight.assign(rng.normal(0.0, 1e-3, values.shape).astype(values.dtype))
    features = np.random.default_rng(0).integers(-128, 128, (REPRESENTATIVE_SAMPLES, *spec.input_shape))
    return build_tflite(model, features.astype(np.float32), spec.parameters())


def _measure(name: str, source: str, tflite_bytes: bytes, parameters: int) -> ModelCard:
    from microspeech.tflite.mvp import MvpError, mvp_available, profile_mvp
    from microspeech.tflite.profile import DEFAULT_CLOCK_MHZ, arena_report, estimate_mcu_latency
    from microspeech.tflite.summary import summarize_tflite

    summary = summarize_tflite(tflite_bytes)
    arena = arena_report(tflite_bytes)
    mvp_cycles = mvp_ms = fallbacks = None
    if mvp_available():
        try:
            mvp = profile_mvp(tflite_bytes, clock_mhz=DEFAULT_CLOCK_MHZ)
        except MvpError as error:
            fallbacks = [f"simulator failed: {error}"]
        else:
            mvp_cycles, mvp_ms = mvp.accelerator_cycles, mvp.latency_ms
            fallbacks = [f"{layer.opcode}: {layer.fallback_reason}" for layer in mvp.fallbacks]
    return ModelCard(
        name=name,
        source=source,
        parameters=parameters,
        macs=summary.total_macs,
        tflite_bytes=len(tflite_bytes),
        arena_bytes=arena.min_arena_bytes,
        arena_32bit_bytes=arena.estimated_32bit_bytes,
        m33_ms=float(estimate_mcu_latency(summary, DEFAULT_CLOCK_MHZ).latency_ms),
        mvp_accelerator_cycles=mvp_cycles,
        mvp_ms=mvp_ms,
        mvp_fallbacks=fallbacks,
    )


def model_card(name: str, *, use_cache: bool = True) -> ModelCard:
    """The card of one registered model (computed once, then read from the cache)."""
    from microspeech.models import get_model_spec
    from microspeech.tflite.mvp import mvp_available

    spec = get_model_spec(name)
    trained = models_dir() / name / f"{name}.tflite"
    trained_bytes = trained.read_bytes() if trained.is_file() else None
    if trained_bytes is not None:
        from microspeech.tflite.flatbuffer import check_flatbuffer
        from microspeech.tflite.metadata import ParameterError, read_parameters

        check_flatbuffer(trained_bytes, where=str(trained))  # a cut copy is named, not "the given bytes"
        try:
            embedded_name = read_parameters(trained_bytes).get("name")
        except ParameterError:  # damaged parameters: not known to be this model
            embedded_name = None
        if embedded_name != name:
            # Not trained as this model (MLTK's model copied in as two_conv.tflite was listed as
            # two_conv's): the registered graph's figures come from its untrained build.
            trained_bytes = None
    key = _spec_key(spec)
    if trained_bytes is not None:
        key += "-" + hashlib.sha256(trained_bytes).hexdigest()[:16]
    cache = cache_dir() / "model_cards" / f"{name}-{key}-{int(mvp_available())}-v{CARD_FORMAT}.json"
    card = _cached_card(cache) if use_cache else None
    if card is None:
        from microspeech.files import write_text_atomic

        model = spec.build_model()
        source = "trained" if trained_bytes is not None else "untrained build"
        tflite_bytes = trained_bytes if trained_bytes is not None else _untrained_tflite(spec, model)
        trained_keras = trained.with_suffix(".keras")
        if trained_bytes is not None and trained_keras.is_file():
            # The trained model's own count: the spec file may have been edited since (16 filters
            # counted beside the 8-filter model's MACs, size and arena).
            from microspeech.tflite.summary import load_keras_file

            with contextlib.suppress(ValueError, OSError):  # a Lambda layer Keras will not load safely
                model = load_keras_file(trained_keras)
        card = _measure(name, source, tflite_bytes, int(model.count_params()))
        with contextlib.suppress(OSError):  # a read-only home: measured again next time
            write_text_atomic(cache, json.dumps(card.to_dict(), indent=2) + "\n")
    measured = MEASURED_RESULTS.get(name)
    if measured is not None:
        card.clip_accuracy = measured.clip_accuracy
        card.miss_rate_at_5_fa_per_hour = measured.miss_rate_at_5_fa_per_hour
    return card


def _cached_card(cache: Path) -> ModelCard | None:
    """The card stored in `cache`, None when there is none or it cannot be read back (cut off,
    edited, from another version): it is then measured again."""
    try:
        return ModelCard(**json.loads(cache.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def model_cards(names: list[str] | None = None, *, use_cache: bool = True) -> list[ModelCard]:
    """Cards of `names` (default: every registered model), in registry order."""
    from microspeech.models import list_models

    return [model_card(name, use_cache=use_cache) for name in (names if names is not None else list_models())]


def _excess(card: ModelCard, max_ram: int | None, max_flash: int | None) -> float:
    """How far over budget: the largest of arena / max_ram and .tflite / max_flash (<= 1 fits)."""
    ratios = [0.0]
    if max_ram is not None:
        ratios.append(card.arena_bytes / max_ram)
    if max_flash is not None:
        ratios.append(card.tflite_bytes / max_flash)
    return max(ratios)


def fit_budget(
    cards: list[ModelCard], *, max_ram: int | None = None, max_flash: int | None = None
) -> tuple[list[ModelCard], ModelCard | None]:
    """The cards whose measured arena fits `max_ram` and whose .tflite fits `max_flash` (bytes),
    and, when none does, the closest (smallest worst ratio to its budget); else None."""
    from microspeech.checks import check_int

    for label, value in (("max_ram", max_ram), ("max_flash", max_flash)):
        if value is not None:
            check_int(value, label, low=1)  # bytes: "16k" is for parse_bytes first
    fitting = [card for card in cards if _excess(card, max_ram, max_flash) <= 1.0]
    if fitting or not cards:
        return fitting, None
    return [], min(cards, key=lambda card: _excess(card, max_ram, max_flash))
