"""Labelled spectrogram images of frontend features (matplotlib, headless, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from microspeech.files import atomic_output  # noqa: E402
from microspeech.frontend.settings import FrontendSettings  # noqa: E402

MAX_WAVEFORM_POINTS = 8000  # past this many samples the waveform is drawn as its envelope


def plot_features(
    features: np.ndarray,
    path: str | Path,
    settings: FrontendSettings | None = None,
    *,
    title: str | None = None,
    audio: np.ndarray | None = None,
) -> Path:
    """Write a PNG of (n_frames, n_channels) features: time in seconds across, mel channel up.

    With `audio` (int16 at settings.sample_rate_hz) the waveform is drawn above, on the same
    time axis. The file appears only once complete.
    """
    settings = settings or FrontendSettings()
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"expected (n_frames, n_channels) features, got shape {features.shape}")
    path = Path(path)
    step_s = settings.window_step / settings.sample_rate_hz
    window_s = settings.window_size / settings.sample_rate_hz
    # Frame f covers [f * step, f * step + window); draw each frame over its hop.
    extent = (0.0, features.shape[0] * step_s + (window_s - step_s), -0.5, features.shape[1] - 0.5)
    rows = 2 if audio is not None else 1
    figure, axes = plt.subplots(
        rows, 1, figsize=(8, 2.2 + 2.2 * rows), sharex=True, squeeze=False, height_ratios=[1, 2][-rows:]
    )
    if audio is not None:
        wave_axes = axes[0, 0]
        audio = np.asarray(audio)
        if len(audio) <= MAX_WAVEFORM_POINTS:
            times = np.arange(len(audio)) / settings.sample_rate_hz
            wave_axes.plot(times, audio / 32768.0, linewidth=0.5, color="tab:blue")
        else:
            # An hour drawn sample by sample took 4 GB: the envelope (each bucket's min and max)
            # is what 880 pixels can show anyway.
            starts = np.linspace(0, len(audio), MAX_WAVEFORM_POINTS // 2, endpoint=False).astype(np.int64)
            lows, highs = np.minimum.reduceat(audio, starts), np.maximum.reduceat(audio, starts)
            times = starts / settings.sample_rate_hz
            wave_axes.fill_between(times, lows / 32768.0, highs / 32768.0, linewidth=0.5, color="tab:blue")
        wave_axes.set_ylabel("amplitude")
        wave_axes.set_ylim(-1.0, 1.0)
    image_axes = axes[-1, 0]
    limits = (-128, 127) if features.dtype == np.int8 else (None, None)
    image = image_axes.imshow(
        features.T, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=limits[0], vmax=limits[1]
    )
    image_axes.set_xlabel("time (s)")
    image_axes.set_ylabel(
        f"mel channel ({settings.filterbank_lower_band_limit:g}-{settings.filterbank_upper_band_limit:g} Hz)"
    )
    figure.colorbar(image, ax=axes[:, 0].tolist(), label=f"feature value ({features.dtype})", pad=0.02)
    figure.suptitle(
        title
        or f"{features.shape[0]} frames x {features.shape[1]} channels "
        f"({settings.window_size_ms}/{settings.window_step_ms} ms windows)"
    )
    try:
        with atomic_output(path) as partial:
            figure.savefig(partial, format="png", dpi=110)
    finally:
        plt.close(figure)
    return path
