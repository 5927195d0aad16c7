"""Bad input to the batch API: a clear error or a documented conversion, never silent garbage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from microspeech.audio import AudioError, to_int16
from microspeech.frontend import FrontendSettings, compute_features, uint16_to_int8


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.normal(0, 3000, 16000)).astype(np.int16)


def test_float_and_int32_are_converted_as_documented(clip):
    as_float = clip.astype(np.float32) / 32768.0
    assert np.array_equal(compute_features(as_float), compute_features(to_int16(as_float)))
    assert np.array_equal(compute_features(as_float), compute_features(clip))
    as_int32 = clip.astype(np.int32) << 16
    assert np.array_equal(compute_features(as_int32), compute_features(clip))


def test_16_bit_values_in_an_int32_array_are_warned_about(clip):
    # Read as 32-bit PCM they are near-silence: the features of +-1 samples, without a word.
    said = r"largest magnitude is \d+, within the int16 range.*astype\(np.int16\)"
    with pytest.warns(UserWarning, match=said):
        compute_features(clip.astype(np.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_features(np.zeros(16000, np.int32))  # digital silence is silence in any format


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.array([], dtype=np.int16), "empty"),
        (np.array([0.0, np.nan] * 8000), "NaN"),
        (np.array([0.0, np.inf] * 8000), "NaN or infinite"),
        (np.zeros(100, dtype=np.int16), "shorter than one 30 ms window"),
        (np.zeros(12000, dtype=np.int16), "exactly 16000 samples.*fit_length"),
        (np.zeros((16000, 2), dtype=np.int16), "downmix"),
        (np.zeros((2, 3, 16000), dtype=np.int16), "shape"),
        (np.zeros(16000, dtype=np.int64), "int64"),
        (np.array(["a"] * 16000), "expected int16"),
    ],
)
def test_bad_input_is_a_clear_error(audio, message):
    with pytest.raises(AudioError, match=message):
        compute_features(audio)


def test_wrong_sample_rate_and_dtype_are_errors(clip):
    with pytest.raises(AudioError, match="44100 Hz.*16000 Hz"):
        compute_features(clip, sample_rate=44100)
    with pytest.raises(ValueError, match="dtype='float32'"):
        compute_features(clip, dtype="float32")
    assert compute_features(clip, sample_rate=16000).shape == (49, 40)


def test_empty_batch_gives_no_features():
    assert compute_features(np.zeros((0, 16000), dtype=np.int16), dtype="uint16").shape == (0, 49, 40)


def test_batch_equals_one_clip_at_a_time(clip):
    batch = np.stack([clip, clip[::-1], np.zeros_like(clip)])
    together = compute_features(batch, dtype="uint16")
    assert together.shape == (3, 49, 40)
    for row, single in zip(together, batch, strict=True):
        assert np.array_equal(row, compute_features(single, dtype="uint16"))


def test_int8_conversion_over_every_uint16_value():
    values = np.arange(65536, dtype=np.uint16)
    expected = np.clip(np.floor(values.astype(np.float64) * 256 / 666 + 0.5) - 128, -128, 127)
    assert np.array_equal(uint16_to_int8(values), expected.astype(np.int8))
    with pytest.raises(TypeError, match="uint16"):
        uint16_to_int8(values.astype(np.int32))


def test_dynamic_quantization_maps_each_spectrogram_max_to_127():
    settings = FrontendSettings(quantize_dynamic_scale_enable=True)
    features = np.array([[[100, 400], [700, 10]], [[5, 6], [7, 8]]], dtype=np.uint16)
    quantized = uint16_to_int8(features, settings)
    assert quantized[0].max() == 127 and quantized[1].max() == 127
    assert quantized[0].min() == -128  # 294 (40 dB) below the max and lower


def test_odd_arguments_get_a_message_that_names_them():
    from microspeech.frontend import compute_features

    audio = (np.random.default_rng(0).normal(size=16000) * 3000).astype(np.int16)
    # Big-endian samples hold the same values: the same features (refused as ">i2" before).
    np.testing.assert_array_equal(compute_features(audio.astype(">i2")), compute_features(audio))
    with pytest.raises(AudioError, match=r"sample_rate='16000': expected a number of Hz"):
        compute_features(audio, sample_rate="16000")
    for warm_up in (20.0, None):  # numba's TypingError, divmod's TypeError
        with pytest.raises(ValueError, match=f"warm_up_ms={warm_up!r}: expected a whole number"):
            compute_features(audio, warm_up_ms=warm_up)
    with pytest.raises(TypeError, match=r"FrontendSettings.from_dict\(d\) makes one"):
        compute_features(audio, {"window_size_ms": 30})
