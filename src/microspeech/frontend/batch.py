"""compute_features: a batch of fixed-length clips -> features, each clip from fresh state, all cores."""

from __future__ import annotations

import warnings

import numpy as np

from microspeech.audio import AudioError, to_int16
from microspeech.checks import is_whole_number
from microspeech.frontend import kernels
from microspeech.frontend.quantize import uint16_to_int8
from microspeech.frontend.settings import FrontendSettings
from microspeech.frontend.tables import LOG_LUT, FrontendTables, build_tables

DTYPES = {"int8": np.int8, "uint16": np.uint16}


def kernel_tables(tables: FrontendTables) -> tuple[np.ndarray, ...]:
    """The table arguments every kernel takes, in order."""
    return (
        tables.window,
        tables.fft_source,
        tables.fft_stages,
        tables.twiddles,
        tables.super_twiddles,
        tables.bin_channel,
        tables.bin_weight,
        tables.bin_unweight,
        tables.gain_lut,
        LOG_LUT,
        tables.params,
    )


def as_samples(audio: object, *, source: str = "audio") -> np.ndarray:
    """int16 as is; int32 and float (full scale +-1.0) converted by microspeech.audio.to_int16.

    NaN/inf, empty input and any other dtype are errors (AudioError) naming `source`.
    """
    array = np.asarray(audio)
    if array.dtype == np.int16:
        if array.size == 0:
            raise AudioError(f"{source}: no audio samples (empty input)")
        return array
    if array.dtype.kind not in "iuf":
        raise AudioError(f"{source}: expected int16 audio samples, got an array of {array.dtype}")
    return to_int16(array, source=source)


def check_rate(sample_rate: int | None, settings: FrontendSettings, source: str) -> None:
    if isinstance(sample_rate, str | bytes | bool):
        # "16000" != 16000 read "audio at 16000 Hz but the frontend expects 16000 Hz"
        raise AudioError(f"{source}: sample_rate={sample_rate!r}: expected a number of Hz")
    if sample_rate is not None and sample_rate != settings.sample_rate_hz:
        raise AudioError(
            f"{source}: audio at {sample_rate} Hz but the frontend expects {settings.sample_rate_hz} Hz; "
            "resample it first (microspeech.audio.resample or read_audio)"
        )


def _warn_if_int16_in_int32(audio: object, source: str) -> None:
    """int32 is read as 32-bit PCM (its top 16 bits), so 16-bit values held in an int32 array
    (np.array(values, dtype=np.int32)) become near-silence: at most +-1 after the shift."""
    array = np.asarray(audio)
    if array.dtype != np.int32 or not array.size:
        return
    peak = int(np.abs(array.astype(np.int64)).max())
    if 0 < peak < 2**15:
        warnings.warn(
            f"{source}: int32 samples whose largest magnitude is {peak}, within the int16 range: "
            "int32 is read as 32-bit PCM, so these are below -90 dBFS. If they are 16-bit samples, "
            "pass audio.astype(np.int16)",
            stacklevel=4,  # the caller of compute_features
        )


def _as_clips(audio: object, settings: FrontendSettings, source: str, warm_up: int = 0) -> np.ndarray:
    _warn_if_int16_in_int32(audio, source)
    samples = as_samples(audio, source=source)
    expected = settings.n_samples + warm_up
    if samples.ndim == 1:
        samples = samples[np.newaxis]
    elif samples.ndim != 2:
        raise AudioError(
            f"{source}: expected (n_samples,) or (n_clips, n_samples) audio, got shape {samples.shape}"
        )
    length = samples.shape[1]
    if length == expected:
        return np.ascontiguousarray(samples)
    if samples.shape[0] == expected and length in (1, 2):
        raise AudioError(
            f"{source}: shape {samples.shape} looks like (frames, channels) audio; "
            "downmix it to mono first (microspeech.audio.to_mono)"
        )
    if length < settings.window_size:
        raise AudioError(
            f"{source}: {length} samples is shorter than one {settings.window_size_ms} ms window "
            f"({settings.window_size} samples)"
        )
    warm_up_ms = warm_up * 1000 // settings.sample_rate_hz
    raise AudioError(
        f"{source}: clips must hold exactly {expected} samples ({settings.sample_length_ms} ms"
        + (f" after {warm_up_ms} ms of warm-up" if warm_up else "")
        + f" at {settings.sample_rate_hz} Hz), got {length}; pad or trim with microspeech.audio.fit_length"
    )


def compute_features(
    audio: np.ndarray,
    settings: FrontendSettings | None = None,
    dtype: str = "int8",
    *,
    sample_rate: int | None = None,
    warm_up_ms: int = 0,
) -> np.ndarray:
    """Micro-frontend features, bit-exact with MLTK's AudioFeatureGenerator (and TFLM firmware).

    audio: (n_samples,) or (N, n_samples) int16 at settings.sample_rate_hz (int32 and float
    arrays are converted with microspeech.audio.to_int16; pass `sample_rate` to have a wrong
    rate reported). Returns (n_frames, n_channels) or (N, n_frames, n_channels) of `dtype`
    ("int8" or "uint16"). Every clip starts from a fresh frontend state, as in training;
    clips are spread over all cores.

    `warm_up_ms` (a whole number of window steps): each clip is preceded by that much audio,
    which the frontend runs over first (its noise estimate settles as on a stream); only the
    clip's frames are returned, and the warm-up's are not finished (no PCAN, no log scale).
    """
    settings = settings or FrontendSettings()
    if not isinstance(settings, FrontendSettings):  # a dict failed on a missing attribute
        raise TypeError(
            f"settings: expected FrontendSettings (FrontendSettings.from_dict(d) makes one), got "
            f"{type(settings).__name__}"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    check_rate(sample_rate, settings, "audio")
    if not is_whole_number(warm_up_ms):  # 20.0 reached numba's typing error, None divmod's
        raise ValueError(f"warm_up_ms={warm_up_ms!r}: expected a whole number of milliseconds")
    warm_up_frames, remainder = divmod(warm_up_ms, settings.window_step_ms)
    if warm_up_ms < 0 or remainder:
        raise ValueError(
            f"warm_up_ms={warm_up_ms}: must be a whole, non-negative number of window steps "
            f"({settings.window_step_ms} ms)"
        )
    warm_up = warm_up_frames * settings.window_step
    raw = np.asarray(audio)
    if raw.ndim == 2 and raw.shape == (0, settings.n_samples + warm_up):  # an empty batch is not an error
        return np.zeros((0, settings.n_frames, settings.n_channels), dtype=DTYPES[dtype])
    single = raw.ndim == 1
    clips = _as_clips(audio, settings, "audio", warm_up)
    features = np.empty((clips.shape[0], settings.n_frames, settings.n_channels), dtype=np.uint16)
    activity = np.zeros(clips.shape[0], dtype=np.int64)
    kernels.process_clips(
        clips, *kernel_tables(build_tables(settings)), features, activity, warm_up_frames
    )
    if dtype == "int8":
        features = uint16_to_int8(features, settings)
    return features[0] if single else features
