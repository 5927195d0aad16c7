"""compute_features(warm_up_ms=...): the frontend runs over audio before each clip, returns its frames."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.audio import AudioError
from microspeech.frontend import FrontendSettings, compute_features

DEFAULT = FrontendSettings()


@pytest.fixture(scope="module")
def rows(real_clips: np.ndarray) -> np.ndarray:
    """Real clips, each after five seconds of five others (noise, speech and silence as recorded)."""
    clips = real_clips[:60]
    before = [np.concatenate([clips[(i + k) % len(clips)] for k in range(1, 6)]) for i in range(len(clips))]
    return np.stack([np.concatenate([b, c]) for b, c in zip(before, clips, strict=True)])


@pytest.mark.parametrize("warm_up_ms", [20, 1000, 2000, 5000])
@pytest.mark.parametrize("dtype", ["uint16", "int8"])
def test_clip_frames_equal_the_tail_of_one_run_over_everything(rows, warm_up_ms, dtype):
    # 5000 ms: 299 frames a row, more than a block of lanes, so rows go one at a time.
    audio = np.ascontiguousarray(rows[:, rows.shape[1] - 16000 - warm_up_ms * 16 :])
    longer = DEFAULT.replace(sample_length_ms=1000 + warm_up_ms)
    expected = compute_features(audio, longer, dtype)[:, -DEFAULT.n_frames :]
    got = compute_features(audio, DEFAULT, dtype, warm_up_ms=warm_up_ms)
    assert got.shape == (len(audio), 49, 40)
    np.testing.assert_array_equal(got, expected)
    # The warm-up matters: the same clips from a fresh state give other features.
    assert not np.array_equal(got, compute_features(np.ascontiguousarray(audio[:, -16000:]), DEFAULT, dtype))
    np.testing.assert_array_equal(
        compute_features(audio[3], DEFAULT, dtype, warm_up_ms=warm_up_ms), expected[3]
    )


@pytest.mark.parametrize("warm_up_ms", [-20, 10, 1001])
def test_warm_up_must_be_whole_window_steps(warm_up_ms):
    with pytest.raises(ValueError, match=f"warm_up_ms={warm_up_ms}.*20 ms"):
        compute_features(np.zeros(32000, np.int16), warm_up_ms=warm_up_ms)


def test_length_must_include_the_warm_up():
    with pytest.raises(AudioError, match="exactly 32000 samples.*after 1000 ms of warm-up"):
        compute_features(np.zeros(16000, np.int16), warm_up_ms=1000)
    empty = compute_features(np.zeros((0, 32000), np.int16), warm_up_ms=1000)
    assert empty.shape == (0, 49, 40)
