"""Frontend fixtures: MLTK's compiled frontend (the oracle), real clips, generated edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microspeech.audio import fit_length, read_audio
from microspeech.testing.mltk_oracle import INSTALL_HINT, MltkFrontend, find_wrapper

N_REAL_CLIPS = 300
SAMPLES = 16000


@pytest.fixture(scope="session")
def oracle():
    """oracle(settings, clips, dtype) -> MLTK's features, one fresh-state clip at a time."""
    if find_wrapper() is None:
        pytest.skip(f"MLTK's compiled frontend is not installed ({INSTALL_HINT}; `make dev` does it)")
    cache: dict = {}

    def compute(settings, clips, dtype="uint16"):
        if settings not in cache:
            cache[settings] = MltkFrontend(settings)
        return cache[settings].compute(clips, dtype)

    return compute


@pytest.fixture(scope="session")
def real_clips(test_set_dir: Path) -> np.ndarray:
    """A few hundred real test-set clips from every folder, padded to one second: (N, 16000) int16."""
    files = sorted(test_set_dir.rglob("*.wav"))
    step = max(1, len(files) // N_REAL_CLIPS)
    chosen = files[::step][:N_REAL_CLIPS]
    return np.stack([fit_length(read_audio(path), SAMPLES) for path in chosen])


def _edge_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261124)
    t = np.arange(SAMPLES)
    tone = np.sin(2 * np.pi * 440 * t / SAMPLES) * 8000
    speech_like = (tone + rng.normal(0, 500, SAMPLES)).astype(np.int16)
    click = np.zeros(SAMPLES, dtype=np.int16)
    click[SAMPLES // 2] = 32767
    return {
        "zeros": np.zeros(SAMPLES, dtype=np.int16),
        "square_full_scale": np.where((t // 40) % 2 == 0, 32767, -32768).astype(np.int16),
        "alternating_full_scale": np.where(t % 2 == 0, 32767, -32768).astype(np.int16),
        "clipped_white_noise": np.clip(rng.normal(0, 30000, SAMPLES), -32768, 32767).astype(np.int16),
        "single_click": click,
        "dc_offset": (np.full(SAMPLES, 9000) + rng.normal(0, 200, SAMPLES)).astype(np.int16),
        "dc_negative_full_scale": np.full(SAMPLES, -32768, dtype=np.int16),
        "very_quiet_noise": rng.integers(-2, 3, SAMPLES).astype(np.int16),
        "half_second_zero_padded": fit_length(speech_like[: SAMPLES // 2], SAMPLES),
    }


EDGE_CASES = _edge_cases()


@pytest.fixture(scope="session")
def edge_cases() -> dict[str, np.ndarray]:
    return EDGE_CASES
