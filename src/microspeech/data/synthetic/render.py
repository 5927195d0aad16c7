"""Turn a synthesizer's word into a Speech-Commands-like clip, and make background noise.

A clip is: the word trimmed of the engine's silences, a timbre warp (resampling as if
the vocal tract were longer or shorter), sometimes a band-limited or reverberant
channel, placed at a random position in exactly one second, at a random level with a
faint noise floor (so nothing is digital silence), never clipping.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from microspeech.audio import SAMPLE_RATE, resample, to_int16

CLIP_SAMPLES = SAMPLE_RATE
MIN_SPEECH_SAMPLES = SAMPLE_RATE // 10  # shorter than 0.1 s: the engine dropped the word
MAX_SPEECH_SAMPLES = int(0.92 * SAMPLE_RATE)  # leave room to move the word around


class SynthesisError(RuntimeError):
    """Synthetic generation that cannot proceed; the message names the word, voice or setting."""


def stable_seed(*parts: object) -> int:
    """A seed that depends only on `parts` (not on Python's salted hash or on process order)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class Speaker:
    """A synthetic talker: engine voice (the split unit) x accent x rate x pitch x timbre warp."""

    engine: str
    variant: str
    accent: str
    rate_wpm: int
    pitch: int
    pitch_range: int
    warp: float

    @property
    def voice(self) -> str:
        """What the split keeps on one side: the same timbre in another accent is the same voice."""
        return f"{self.engine}:{self.variant}"

    @property
    def speaker_id(self) -> str:
        variant = self.variant.replace(" ", "-")
        return (
            f"{self.engine}.{self.accent}.{variant}.r{self.rate_wpm}.p{self.pitch}"
            f".g{self.pitch_range}.w{round(self.warp * 100)}"
        )


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip, identically in any process."""

    relative_path: str
    word: str
    speaker: Speaker
    seed: int


def trim_silence(samples: np.ndarray, threshold_db: float = -40.0, margin: int = 220) -> np.ndarray:
    """Cut leading/trailing samples quieter than `threshold_db` below the peak (margin in samples)."""
    magnitude = np.abs(samples.astype(np.float32))
    peak = magnitude.max(initial=0.0)
    if peak == 0:
        return samples[:0]
    loud = np.flatnonzero(magnitude >= peak * 10 ** (threshold_db / 20))
    start = max(0, loud[0] - margin)
    stop = min(samples.shape[0], loud[-1] + margin + 1)
    return samples[start:stop]


def _band_limit(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap microphone/phone channel: high-pass 60-250 Hz, low-pass 3-7 kHz."""
    low = rng.uniform(60.0, 250.0)
    high = rng.uniform(3000.0, 7000.0)
    from scipy import signal  # here, not at the top: importing scipy.signal costs every CLI command 0.7 s

    sos = signal.butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, audio)


def _reverberate(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small room: exponentially decaying noise as impulse response (RT60 0.1-0.4 s), mixed in."""
    rt60 = rng.uniform(0.1, 0.4)
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    response = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    response[0] = 0.0
    from scipy import signal  # here, not at the top: as in _band_limit

    wet = signal.fftconvolve(audio, response)[: audio.shape[0] + length // 2]
    dry = np.pad(audio, (0, wet.shape[0] - audio.shape[0]))
    wet *= np.sqrt(np.sum(dry**2) / max(np.sum(wet**2), 1e-12))
    return dry + rng.uniform(0.1, 0.4) * wet


def colored_noise(kind: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2) noise, float, RMS 1."""
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind not in exponents:
        raise ValueError(f"unknown noise color {kind!r}; expected one of {', '.join(exponents)}")
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.fft.rfftfreq(n_samples, 1 / SAMPLE_RATE)
    frequencies[0] = frequencies[1]  # no infinite DC gain
    spectrum *= frequencies ** (-exponents[kind] / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n_samples)
    return noise / np.sqrt(np.mean(noise**2))


def noise_recording(kind: str, seconds: float, seed: int) -> np.ndarray:
    """A background-noise file: colored noise at -20 dBFS RMS, peaks kept below full scale."""
    noise = colored_noise(kind, int(seconds * SAMPLE_RATE), np.random.default_rng(seed)) * 0.1
    return to_int16(np.clip(noise, -0.99, 0.99))


def finish_clip(speech: np.ndarray, rate: int, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """Engine output (int16 at `rate` Hz) -> exactly one second of 16 kHz int16 (see module doc)."""
    words = trim_silence(speech)
    # Resampling from rate*warp to 16 kHz shifts pitch and formants together, like a longer or
    # shorter vocal tract, without touching the engine's own rate setting.
    audio = resample(words.astype(np.float32) / 32768.0, round(rate * speaker.warp), SAMPLE_RATE)
    if rng.random() < 0.5:
        audio = _band_limit(audio, rng)
    if rng.random() < 0.3:
        audio = trim_silence(_reverberate(audio, rng), threshold_db=-50.0)
    if audio.shape[0] > MAX_SPEECH_SAMPLES:
        fade = np.linspace(1.0, 0.0, 800)
        audio = audio[:MAX_SPEECH_SAMPLES].copy()
        audio[-800:] *= fade
    clip = np.zeros(CLIP_SAMPLES)
    offset = int(rng.integers(0, CLIP_SAMPLES - audio.shape[0] + 1))
    clip[offset : offset + audio.shape[0]] = audio
    peak_dbfs = rng.uniform(-24.0, -3.0)
    clip *= 10 ** (peak_dbfs / 20) / max(np.abs(clip).max(), 1e-9)
    floor_dbfs = rng.uniform(-78.0, -60.0)
    clip += colored_noise("pink", CLIP_SAMPLES, rng) * 10 ** (floor_dbfs / 20)
    return to_int16(np.clip(clip, -0.99, 0.99))
