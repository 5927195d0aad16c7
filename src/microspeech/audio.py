"""Reading and converting audio: the one place that turns files and arrays into 16 kHz mono int16."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from microspeech.checks import exact_value, is_whole_number
from microspeech.files import atomic_output

SAMPLE_RATE = 16000
# Plausible audio headers: a rate outside this range is a corrupt or hostile header (a file claiming
# 1 Hz would be resampled 16000x), and nothing longer than an hour is read into memory.
MIN_FILE_RATE = 1000
MAX_FILE_RATE = 768_000
MAX_CHANNELS = 64
MAX_AUDIO_SECONDS = 3600.0
MAX_DECODED_SAMPLES = int(MAX_AUDIO_SECONDS) * 48_000 * 2  # all channels' samples decoded at once


class AudioError(ValueError):
    """Audio that cannot be turned into 16 kHz mono int16; the message names the source."""


def to_int16(samples: np.ndarray, *, source: str = "array") -> np.ndarray:
    """Convert samples to int16 without silent garbage.

    int16 passes through; int32 keeps its top 16 bits (as a 32-bit PCM file would);
    floats are taken as full scale +-1.0 and rounded, saturating at the int16 range.
    NaN/inf, empty input and other dtypes are errors naming `source`.
    """
    samples = np.asarray(samples)
    if samples.size == 0:
        raise AudioError(f"{source}: no audio samples (empty input)")
    if samples.dtype.byteorder == ">" and samples.dtype.kind in "if":  # big-endian data: same values
        samples = samples.astype(samples.dtype.newbyteorder("="))
    if samples.dtype == np.int16:
        return samples
    if samples.dtype == np.int32:
        return (samples >> 16).astype(np.int16)
    if np.issubdtype(samples.dtype, np.floating):
        if not np.all(np.isfinite(samples)):
            raise AudioError(f"{source}: audio contains NaN or infinite values")
        scaled = np.rint(samples.astype(np.float64) * 32768.0)
        return np.clip(scaled, -32768, 32767).astype(np.int16)
    raise AudioError(
        f"{source}: unsupported sample type {samples.dtype}; expected int16, int32 or float audio"
    )


# More channels than frames, and more than any recording device has: the array is transposed.
MAX_CHANNELS = 64


def to_mono(samples: np.ndarray, *, source: str = "array") -> np.ndarray:
    """Downmix (frames, channels) to one channel by averaging the channels."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        frames, channels = samples.shape
        if channels > max(frames, MAX_CHANNELS):  # (2, 16000) became 2 samples of 16,000 channels' mean
            raise AudioError(
                f"{source}: shape {samples.shape} looks like (channels, frames) audio; expected "
                "(frames, channels): pass samples.T"
            )
        if samples.dtype == np.int16:
            return np.rint(samples.astype(np.float64).mean(axis=1)).astype(np.int16)
        return samples.mean(axis=1)
    raise AudioError(
        f"{source}: expected 1-D mono or 2-D (frames, channels) audio, got shape {samples.shape}"
    )


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality resampling (soxr); int16 in gives int16 out."""
    if from_rate == to_rate:
        return samples
    if from_rate <= 0:
        raise AudioError(f"invalid sample rate {from_rate} Hz")
    if samples.dtype == np.int16:
        floats = soxr.resample(samples.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
        return to_int16(floats)
    return soxr.resample(samples, from_rate, to_rate, quality="HQ")


def check_file_readable(path: Path) -> None:
    """AudioError naming `path` when it is missing, a folder or not readable (before any decoder runs)."""
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied (the file is not readable)")


def check_audio_header(
    source: str, file_rate: int, channels: int, frames: int, sample_rate: int = SAMPLE_RATE
) -> None:
    """Refuse implausible headers before any allocation: rate, channel count and resampled length."""
    if not MIN_FILE_RATE <= file_rate <= MAX_FILE_RATE:
        raise AudioError(
            f"{source}: implausible sample rate {file_rate} Hz in the header "
            f"(accepted: {MIN_FILE_RATE} to {MAX_FILE_RATE} Hz)"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{source}: implausible channel count {channels} (accepted: 1 to {MAX_CHANNELS})")
    seconds = frames / file_rate
    if seconds > MAX_AUDIO_SECONDS:
        raise AudioError(
            f"{source}: {seconds:.0f} s of audio; at most {MAX_AUDIO_SECONDS:.0f} s is read at once"
        )
    # Decoding holds every channel's samples as float64 for all but 16-bit PCM: an hour of 48 kHz
    # stereo peaks near 4.4 GB; an hour at 192 kHz (the old bound of mono at the highest rate) took 17.
    if frames * channels > MAX_DECODED_SAMPLES:
        raise AudioError(
            f"{source}: {seconds:.0f} s of {channels} channel(s) at {file_rate} Hz is {frames * channels:,} "
            f"samples; at most {MAX_DECODED_SAMPLES:,} (an hour of 48 kHz stereo) are decoded at once: "
            "split the file, or give it fewer channels or a lower rate"
        )
    if frames * sample_rate / file_rate > MAX_AUDIO_SECONDS * sample_rate:
        raise AudioError(f"{source}: too long once resampled to {sample_rate} Hz")


def format_conversions(
    file_rate: int, channels: int, subtype: str, sample_rate: int = SAMPLE_RATE
) -> list[str]:
    """What `read_audio` changes in a file of this format, in words; empty for mono 16-bit PCM at
    `sample_rate`, which it reads exactly."""
    notes = []
    if file_rate != sample_rate:
        notes.append(f"resampled from {file_rate} Hz")
    if channels > 1:
        notes.append(f"downmixed from {channels} channels")
    if subtype != "PCM_16":
        notes.append(f"converted from {subtype} samples")
    return notes


_BYTES_PER_SAMPLE = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _wav_declared_frames(path: Path, channels: int, subtype: str) -> int | None:
    """Frames the RIFF `data` chunk header declares (libsndfile silently shortens truncated files)."""
    width = _BYTES_PER_SAMPLE.get(subtype)
    if width is None:
        return None
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF":
            return None
        while chunk := handle.read(8):
            if len(chunk) < 8:
                return None
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                # 0 and 0xFFFFFFFF mean "unknown length" (streamed writers): not a truncation.
                return None if size in (0, 0xFFFFFFFF) else size // (width * channels)
            handle.seek(size + (size & 1), 1)
    return None


def repaired_wav_bytes(data: bytes) -> bytes | None:
    """A WAV whose `data` chunk declares 0 bytes though samples follow (a recorder stopped before it
    wrote the header's sizes), with the sizes filled in from the bytes' length, which libsndfile
    then reads; None for any other bytes."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        if data[at : at + 4] == b"data":
            present = len(data) - at - 8
            if size != 0 or present <= 0:
                return None
            header = bytearray(data[: at + 8])  # the samples are not copied twice
            header[at + 4 : at + 8] = min(present, 0xFFFFFFFE).to_bytes(4, "little")
            header[4:8] = min(len(data) - 8, 0xFFFFFFFF).to_bytes(4, "little")
            return bytes(header) + data[at + 8 :]
        at += 8 + size + (size & 1)
    return None


def repaired_wav(path: Path, info: Any, streamed: bytes | None = None) -> bytes | None:
    """When `info` (sf.info) reads a WAV of no frames: the bytes of `path` (or of `streamed`, what
    a pipe gave) repaired by `repaired_wav_bytes`, else None; files past MAX_STREAM_BYTES are not
    repaired. Decoding and dataset indexing both read such a file to its end."""
    if info.format != "WAV" or info.frames > 0:
        return None
    if streamed is not None:
        return repaired_wav_bytes(streamed)
    if path.stat().st_size > MAX_STREAM_BYTES:
        return None
    return repaired_wav_bytes(path.read_bytes())


def unfinished_note(frames: int) -> str:
    return f"unfinished header (data size 0): {frames} samples read to the file's end"


MAX_STREAM_BYTES = 2**30  # read at once from a pipe, or to repair a WAV (an hour of 16 kHz int16: 115 MB)


def _read_stream(path: Path) -> bytes:
    """All of a pipe's or device's bytes, refused past MAX_STREAM_BYTES."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_STREAM_BYTES + 1)
    except OSError as error:
        raise AudioError(f"{path}: cannot be read ({error.strerror or error})") from error
    if len(data) > MAX_STREAM_BYTES:
        raise AudioError(f"{path}: more than {MAX_STREAM_BYTES:,} bytes from a pipe; give a file")
    return data


def truncated_wav_frames(path: Path, info: Any) -> int | None:
    """The frames a WAV header declares when the file holds fewer (a cut-off copy or download),
    else None: libsndfile reads such a file silently shortened. `info`: what `sf.info` returned."""
    if info.format != "WAV":
        return None
    declared = _wav_declared_frames(path, info.channels, info.subtype)
    return declared if declared is not None and declared > info.frames else None


def truncation_note(frames: int, declared_frames: int) -> str:
    return f"truncated: {frames} of {declared_frames} samples present, read as is"


@dataclass(frozen=True)
class DecodedAudio:
    """A file read as mono int16, with what reading changed (`format_conversions`; empty: exact)."""

    samples: np.ndarray
    conversions: tuple[str, ...]


def soundfile_reason(error: Exception) -> str:
    """libsndfile's reason alone: its message quotes the path as given, and a path given as bytes
    (how soundfile takes any name) read "Error opening b'clip.wav': ..."."""
    return str(getattr(error, "error_string", "") or error)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any audio file soundfile understands as mono int16 at `sample_rate`.

    16-bit PCM is read exactly; other encodings (8/24/32-bit, float) are converted,
    stereo is downmixed and other rates are resampled. Errors name the file.
    """
    return decode_audio(path, sample_rate).samples


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> DecodedAudio:
    """`read_audio`, also saying what it changed, so a user can be told (one read of the file)."""
    if not str(path).strip():  # Path("") is the current folder, "is a folder" the wrong complaint
        raise AudioError("an empty path: give an audio file")
    path = Path(path)
    # The rate asked for, checked as a file's is (None or "16000" blamed the file; 1e9 allocated 2 GB).
    if not is_whole_number(sample_rate):
        raise ValueError(f"sample_rate={sample_rate!r}: expected an int number of Hz")
    if not MIN_FILE_RATE <= sample_rate <= MAX_FILE_RATE:
        raise ValueError(f"sample_rate={sample_rate}: expected {MIN_FILE_RATE} to {MAX_FILE_RATE} Hz")
    check_file_readable(path)
    # The path as bytes: soundfile encodes a str strictly, and a name that is not UTF-8 (its
    # undecodable bytes held as surrogates) failed with "surrogates not allowed", unnamed.
    source: bytes | io.BytesIO = os.fsencode(path)
    streamed = None if path.is_file() else _read_stream(path)  # a pipe (<(...), /dev/stdin) is
    if streamed is not None:  # read once: libsndfile opens a file twice
        source = io.BytesIO(streamed)
    finished = []  # the note for an unfinished header read to the end
    try:
        info = sf.info(source)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        repaired = repaired_wav(path, info, streamed)  # recorders left unfinished, to files and pipes
        if repaired is not None:
            source = io.BytesIO(repaired)
            info = sf.info(source)
            finished = [unfinished_note(info.frames)]
            source.seek(0)
        check_audio_header(str(path), info.samplerate, info.channels, info.frames, sample_rate)
        dtype = "int16" if info.subtype == "PCM_16" else "float64"
        samples, file_rate = sf.read(source, dtype=dtype, always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not a readable audio file ({soundfile_reason(error)})") from error
    except OSError as error:
        raise AudioError(f"{path}: cannot be read ({error.strerror or error})") from error
    if samples.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    samples = to_mono(samples, source=str(path))
    conversions = format_conversions(info.samplerate, info.channels, info.subtype, sample_rate)
    if samples.dtype.kind == "f" and samples.size and np.abs(samples).max() > 1.0:
        # A float file may go past full scale. Counted before resampling, whose overshoot near full
        # scale is the conversion's, not the file's (a file peaking at 0.9 was said to clip).
        over = int(np.count_nonzero(np.abs(samples) > 1.0))
        conversions = [*conversions, f"{over} sample(s) beyond full scale clipped"]
    samples = resample(samples, file_rate, sample_rate)
    declared = None if finished or streamed is not None else truncated_wav_frames(path, info)
    if declared is not None:
        conversions = [*conversions, truncation_note(info.frames, declared)]
    return DecodedAudio(to_int16(samples, source=str(path)), tuple([*conversions, *finished]))


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or truncate to exactly `length` samples."""
    if not is_whole_number(length) or length < 0:
        raise ValueError(f"length={length!r}: expected a number of samples, 0 or more")
    samples = np.asarray(samples)
    if samples.shape[-1] >= length:
        return samples[..., :length].copy()  # a view let a write to the result change the caller's
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, length - samples.shape[-1])]
    return np.pad(samples, pad)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM atomically: a crash never leaves a truncated file under `path`."""
    try:  # 16000.0 is a rate (compute_features takes it); 16000.5 is not
        rate = exact_value(sample_rate, int)
    except (TypeError, ValueError, OverflowError):
        rate = 0
    if not 0 < rate <= 2**31 - 1:
        raise AudioError(f"{path}: sample_rate={sample_rate!r}: expected a whole number of Hz")
    samples = to_int16(samples, source=str(path))
    sample_rate = int(rate)
    with atomic_output(path) as partial:
        sf.write(os.fsencode(partial), samples, sample_rate, subtype="PCM_16", format="WAV")


# 10 ms frames within ACTIVE_DB of the loudest one count as speech (for SNRs).
SPEECH_FRAME = SAMPLE_RATE // 100
ACTIVE_DB = 30.0


def active_rms(audio: np.ndarray) -> float:
    """RMS over the 10 ms frames within ACTIVE_DB of the loudest one (the spoken part)."""
    samples = np.asarray(audio, dtype=np.float64)
    usable = len(samples) // SPEECH_FRAME * SPEECH_FRAME
    if usable == 0:
        return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
    energy = np.mean(samples[:usable].reshape(-1, SPEECH_FRAME) ** 2, axis=1)
    loudest = energy.max()
    if loudest <= 0:
        return 0.0
    return float(np.sqrt(energy[energy >= loudest * 10 ** (-ACTIVE_DB / 10)].mean()))


def loudest_window(samples: np.ndarray, length: int) -> np.ndarray:
    """The `length`-sample window with the most energy (where the word is in an over-long clip)."""
    if samples.shape[0] <= length:
        return samples
    energy = np.concatenate([[0], np.cumsum(samples.astype(np.int64) ** 2)])
    window_energy = energy[length:] - energy[:-length]
    start = int(np.argmax(window_energy))
    return samples[start : start + length]
