"""Features of an audio file, and saving them: what `microspeech features` does, as functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microspeech.audio import AudioError, decode_audio, fit_length, loudest_window
from microspeech.files import atomic_output
from microspeech.frontend.batch import compute_features
from microspeech.frontend.quantize import uint16_to_int8
from microspeech.frontend.settings import FrontendSettings
from microspeech.frontend.streaming import StreamingFrontend


@dataclass(frozen=True)
class FileFeatures:
    """Features of one file plus what was done to the audio to get them."""

    features: np.ndarray
    audio: np.ndarray  # the int16 samples the frontend saw (after padding/trimming)
    source_samples: int  # length of the file's audio at settings.sample_rate_hz
    adjusted: str  # "", "padded" or "loudest" (cut to its loudest window)
    # What reading changed: rate, channels, sample format (audio.format_conversions).
    conversions: tuple[str, ...] = ()


def features_from_file(
    path: str | Path,
    settings: FrontendSettings | None = None,
    dtype: str = "int8",
    *,
    whole: bool = False,
) -> FileFeatures:
    """Read `path` (any rate/channels/encoding, converted to mono int16) and compute its features.

    By default the audio is zero-padded, or cut to its loudest settings.sample_length_ms, as
    training reads a clip, giving (n_frames, n_channels). With `whole=True` every complete window of the
    recording is used (the streaming frontend, as firmware runs it); a recording shorter
    than one window is then an error.
    """
    settings = settings or FrontendSettings()
    decoded = decode_audio(path, settings.sample_rate_hz)
    samples, conversions = decoded.samples, decoded.conversions
    if whole:
        if len(samples) < settings.window_size:
            raise AudioError(
                f"{path}: {len(samples)} samples is shorter than one {settings.window_size_ms} ms window"
            )
        features = StreamingFrontend(settings).process(samples)
        if dtype == "int8":
            features = uint16_to_int8(features, settings)
        return FileFeatures(features, samples, len(samples), "", conversions)
    # An over-long clip is cut to its loudest window, as training and evaluate read it (its first
    # second was shown: often silence before the word the model trains on).
    fitted = fit_length(loudest_window(samples, settings.n_samples), settings.n_samples)
    adjusted = "padded" if len(samples) < settings.n_samples else ""
    adjusted = "loudest" if len(samples) > settings.n_samples else adjusted
    features = compute_features(fitted, settings, dtype)
    return FileFeatures(features, fitted, len(samples), adjusted, conversions)


def save_features(features: np.ndarray, path: str | Path) -> Path:
    """np.save, atomically (no half-written .npy is ever left under `path`)."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"{path}: features are saved as .npy; use a .npy file name")
    with atomic_output(path) as partial, open(partial, "wb") as handle:
        np.save(handle, features)
    return path
