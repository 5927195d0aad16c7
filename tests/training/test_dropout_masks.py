"""The numba dropout masks are TensorFlow's stateless Philox masks, element for element."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.training.dropout_masks import UNIFORM_LEVELS, dropout_factors, keep_threshold


def _tensorflow_factors(seed: tuple[int, int], count: int, rate: float) -> np.ndarray:
    """The mask as TensorFlow's ops draw it: uint32 Philox words, split into 16-bit levels."""
    import tensorflow as tf

    words = tf.random.stateless_uniform(
        [(count + 1) // 2], tf.constant(seed, tf.int64), minval=None, maxval=None, dtype=tf.uint32
    )
    levels = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:count]
    return (tf.cast(levels >= round(rate * UNIFORM_LEVELS), tf.float32) * (1.0 / (1.0 - rate))).numpy()


SEEDS = [(0, 0), (1337, 5), (2**40 + 3, 2**33 + 7), (-5, 3), (7, 2**32 - 1), (-1, -1)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("count", [1, 7, 8, 9, 1001, 32 * 4000])
def test_the_factors_are_tensorflows_for_every_seed_and_length(seed, count):
    for rate in (0.5, 0.1, 0.25, 0.9):
        expected = _tensorflow_factors(seed, count, rate)
        keep = np.float32(1 / (1 - rate))
        factors = dropout_factors(np.array(seed, np.int64), count, keep_threshold(rate), keep)
        assert factors.dtype == np.float32
        np.testing.assert_array_equal(factors, expected)


def test_the_share_kept_follows_the_rate():
    factors = dropout_factors(np.array([3, 4], np.int64), 200_000, keep_threshold(0.3), np.float32(1 / 0.7))
    assert (factors > 0).mean() == pytest.approx(0.7, abs=0.005)
    assert set(np.unique(factors)) == {np.float32(0.0), np.float32(1 / 0.7)}
