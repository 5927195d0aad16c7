"""Live microphone input for the keyword spotter (sounddevice, an optional dependency)."""

from __future__ import annotations

import queue
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.detection.classify import whole_volume_gain, wrapped_samples
from microspeech.detection.detector import Decision


class MicrophoneError(RuntimeError):
    """No usable microphone: the package is missing, no input device exists, or it cannot open."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as error:
        raise MicrophoneError(
            "--mic needs the sounddevice package: pip install 'microspeech[mic]' "
            "(and the PortAudio library, e.g. apt-get install libportaudio2)"
        ) from error
    except OSError as error:  # sounddevice is installed but PortAudio is not
        raise MicrophoneError(f"--mic: the PortAudio library cannot be loaded ({error})") from error
    return sounddevice


def input_device(device: str | int | None = None) -> dict[str, Any]:
    """The input device to record from (the default one when `device` is None)."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as error:
        name = "the default input device" if device is None else f"input device {device!r}"
        raise MicrophoneError(f"no microphone: {name} is not available ({error})") from error
    if not info or int(info.get("max_input_channels", 0)) < 1:
        raise MicrophoneError("no microphone: this machine has no audio input device")
    return dict(info)


def listen(
    spotter: Any,
    on_decisions: Callable[[list[Decision]], None],
    *,
    device: str | int | None = None,
    seconds: float | None = None,
) -> None:
    """Stream the microphone into `spotter` until Ctrl+C or `seconds` of audio.

    Devices that cannot record at 16 kHz are recorded at their own rate and resampled. The
    first samples that the spotter's volume gain wraps past the int16 limits (as the part does)
    are warned about once, as `classify_audio --wav` notes them for a file.
    """
    import soxr

    sd = _sounddevice()
    info = input_device(device)
    chunks: queue.Queue[np.ndarray] = queue.Queue()
    overflows: list[int | None] = []  # PortAudio's input overflows: audio dropped before we read it

    def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            overflows.append(frames)
        chunks.put(indata[:, 0].copy())

    rate = SAMPLE_RATE
    try:
        sd.check_input_settings(device=device, samplerate=SAMPLE_RATE, channels=1, dtype="int16")
    except (ValueError, sd.PortAudioError):
        rate = int(info["default_samplerate"])
    resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16") if rate != SAMPLE_RATE else None
    blocksize = max(1, spotter.hop_samples * rate // SAMPLE_RATE)
    total = None if seconds is None else int(seconds * SAMPLE_RATE)
    fed = 0
    wrap_said = False
    try:
        stream = sd.InputStream(
            samplerate=rate, channels=1, dtype="int16", blocksize=blocksize, device=device, callback=callback
        )
    except (ValueError, sd.PortAudioError) as error:
        raise MicrophoneError(f"cannot open the microphone {info.get('name', device)!r}: {error}") from error
    with stream:
        while total is None or fed < total:
            try:  # a block is one hop: up to 10 s at --latency 10000, so wait past that
                chunk = chunks.get(timeout=2.0 + 2 * blocksize / rate)
            except queue.Empty as error:
                raise MicrophoneError("the microphone stopped delivering audio") from error
            if overflows and overflows[0] is not None:
                overflows[0] = None  # said once
                warnings.warn(
                    "the microphone's input overflowed: audio was dropped before the detector read it "
                    "(a busy machine, or a --latency too short for it)",
                    stacklevel=2,
                )
            if resampler is not None:
                chunk = resampler.resample_chunk(chunk)
            if total is not None:
                chunk = chunk[: total - fed]
            fed += len(chunk)
            wrapped = wrapped_samples(chunk, spotter.params.volume_gain) if not wrap_said else 0
            if wrapped:
                wrap_said = True
                gain = whole_volume_gain(spotter.params.volume_gain)
                warnings.warn(
                    f"the microphone's input is loud enough to wrap: {wrapped} samples of the "
                    f"{len(chunk)} up to {fed / SAMPLE_RATE:.1f} s passed the int16 limits at volume_gain "
                    f"{gain} and wrapped around, as on the part; lower the input level, or --volume 1",
                    stacklevel=2,
                )
            if len(chunk):
                on_decisions(spotter.process(np.ascontiguousarray(chunk, dtype=np.int16)))
