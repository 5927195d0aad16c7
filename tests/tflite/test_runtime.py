"""TfliteRunner: LiteRT (no XNNPACK) and TFLM agree bit for bit; inputs are checked."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.models import list_models
from microspeech.tflite.runtime import BATCH, SILABS_TWO_LANES_FROM, TWO_LANES_FROM, TfliteRunner, arena_floor


def test_litert_equals_tflm_on_mltk_model(mltk_tflite_bytes, random_features):
    litert = TfliteRunner(mltk_tflite_bytes, "litert")
    tflm = TfliteRunner(mltk_tflite_bytes, "tflm")
    assert litert.input_details == tflm.input_details
    assert litert.input_details.shape == (1, 49, 40, 1)
    assert litert.input_details.dtype == np.int8
    assert (litert.input_details.scale, litert.input_details.zero_point) == (1.0, 0)
    assert litert.output_details.shape == (1, 4)
    expected = litert.predict(random_features)
    assert expected.shape == (32, 4) and expected.dtype == np.int8
    assert np.array_equal(tflm.predict(random_features), expected)
    # scores are a softmax: they sum to ~1 once dequantized, and differ between inputs
    probabilities = litert.output_details.dequantize(expected)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=0.02)
    assert len({tuple(row) for row in expected}) > 1
    assert np.array_equal(tflm.predict_one(random_features[5]), expected[5])
    # The streaming loop's unchecked path gives the same scores.
    sample = np.ascontiguousarray(random_features[5], np.int8)
    assert np.array_equal(litert.predict_ready(sample), expected[5])
    assert np.array_equal(tflm.predict_ready(sample), expected[5])


def test_input_checks(mltk_tflite_bytes, mltk_tflite_path):
    runner = TfliteRunner(mltk_tflite_path, "litert")
    with pytest.raises(ValueError, match="does not fit"):
        runner.predict_one(np.zeros((10, 10), np.int8))
    with pytest.raises(ValueError, match="quantize"):
        runner.predict_one(np.zeros((49, 40), np.float32))
    with pytest.raises(ValueError, match="range"):
        runner.predict_one(np.full((49, 40), 300, np.int16))
    # integer input in range is accepted and cast
    assert np.array_equal(
        runner.predict_one(np.ones((49, 40), np.int32)), runner.predict_one(np.ones((49, 40), np.int8))
    )
    with pytest.raises(ValueError, match="backend"):
        TfliteRunner(mltk_tflite_bytes, "tflite")  # type: ignore[arg-type]
    # Below the largest operator's live tensors TFLM's allocator killed the process (SIGSEGV):
    # refused by name; between that floor and what the model needs, TFLM's own error.
    for size in (1, 400, 0, -1):
        with pytest.raises(ValueError, match=f"arena_size={size}: below the"):
            TfliteRunner(mltk_tflite_bytes, "tflm", arena_size=size)
    with pytest.raises(TypeError, match="arena_size=2.5"):
        TfliteRunner(mltk_tflite_bytes, "tflm", arena_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="arena"):
        TfliteRunner(mltk_tflite_bytes, "tflm", arena_size=arena_floor(mltk_tflite_bytes))


def test_quantize_dequantize(mltk_tflite_bytes):
    output = TfliteRunner(mltk_tflite_bytes, "litert").output_details
    values = np.array([0.0, 0.5, 1.0, 2.0])
    q = output.quantize(values)
    assert q.tolist() == [-128, 0, 127, 127]
    assert np.allclose(output.dequantize(q)[:2], [0.0, 0.5])


def _one_by_one(runner: TfliteRunner, samples: np.ndarray) -> np.ndarray:
    return np.stack([runner.predict_one(sample) for sample in samples])


@pytest.mark.parametrize("name", list_models())
def test_batched_outputs_are_each_samples_own_for_every_registered_model(name):
    """LiteRT's batched invoke gives each sample its own output (stream scoring relies on it)."""
    import keras

    from microspeech.models import get_model_spec
    from microspeech.tflite.convert import convert_to_int8

    keras.utils.set_random_seed(3)
    model = get_model_spec(name).build_model()
    shape = model.input_shape[1:]
    rng = np.random.default_rng(7)
    representative = rng.integers(-128, 128, (16, *shape)).astype(np.float32)  # the int8 feature range
    runner = TfliteRunner(convert_to_int8(model, representative), "litert")
    samples = rng.integers(-128, 128, (2 * BATCH + 5, *shape), dtype=np.int8)
    assert np.array_equal(runner.predict(samples), _one_by_one(runner, samples))
    assert runner._batch_interpreter(BATCH) is not None
    # Enough samples for two threads, each with interpreters of its own: still each sample's own.
    many = rng.integers(-128, 128, (TWO_LANES_FROM + 3, *shape), dtype=np.int8)
    assert np.array_equal(runner.predict(many), _one_by_one(runner, many))
    assert runner._batch_interpreter(BATCH, lane=1) is not None


def test_batched_outputs_on_other_graphs(mltk_tflite_bytes, tiny_tflite_bytes, input_reshape_tflite_bytes):
    rng = np.random.default_rng(8)
    for tflite_bytes in (mltk_tflite_bytes, tiny_tflite_bytes, input_reshape_tflite_bytes):
        runner = TfliteRunner(tflite_bytes, "litert")
        samples = rng.integers(-128, 128, (BATCH + 1, *runner.input_details.shape[1:]), dtype=np.int8)
        assert np.array_equal(runner.predict(samples), _one_by_one(runner, samples))
        flat = samples.reshape(len(samples), -1)  # the same samples, flattened
        assert np.array_equal(runner.predict(flat), _one_by_one(runner, samples))
        assert np.array_equal(runner.predict(samples[:1]), _one_by_one(runner, samples[:1]))


@pytest.mark.parametrize("backend", ["litert", "tflm", "silabs-tflm"])
def test_a_flat_input_takes_frames_by_channels_on_every_runtime(flat_input_tflite_bytes, backend):
    # TF micro_speech's 1x1960: (49, 40) features were refused ("does not fit (1, 1960)") and the
    # TFLM runtimes raised a traceback; they are the same values, flattened frame after frame.
    runner = TfliteRunner(flat_input_tflite_bytes, backend)
    features = np.random.default_rng(4).integers(-128, 128, (5, 49, 40), dtype=np.int8)
    flat = features.reshape(5, 1960)
    assert np.array_equal(runner.predict_one(features[0]), runner.predict_one(flat[0]))
    assert np.array_equal(runner.predict(features), runner.predict(flat))
    with pytest.raises(ValueError, match="does not fit"):
        runner.predict_one(np.zeros((49, 41), np.int8))


def test_a_transposed_sample_is_refused_not_scored(mltk_tflite_bytes):
    # Only the size was checked: (40, 49) features ran and returned scores of scrambled input.
    runner = TfliteRunner(mltk_tflite_bytes)
    features = np.zeros((49, 40), np.int8)
    assert runner.predict_one(features).shape == runner.predict_one(features[None, :, :, None]).shape
    with pytest.raises(ValueError, match=r"input of shape \(40, 49\) does not fit"):
        runner.predict_one(features.T)
    with pytest.raises(ValueError, match=r"input of shape \(40, 49\) does not fit"):
        runner.predict(np.zeros((3, 40, 49), np.int8))
    with pytest.raises(ValueError, match="predict takes a batch"):
        runner.predict(features)  # said "input of shape (40,) does not fit"


def test_silicon_labs_batches_split_between_two_processes_are_each_samples_own(mltk_tflite_bytes):
    runner = TfliteRunner(mltk_tflite_bytes, "silabs-tflm")
    rng = np.random.default_rng(9)
    samples = rng.integers(-128, 128, (TWO_LANES_FROM + 3, 49, 40, 1), dtype=np.int8)
    short = samples[: SILABS_TWO_LANES_FROM - 1]
    assert np.array_equal(runner.predict(short), _one_by_one(runner, short))
    assert runner._silabs_second is None  # a short batch stays in one process
    short = samples[: SILABS_TWO_LANES_FROM + 1]  # as the firmware checks after resets send
    assert np.array_equal(runner.predict(short), _one_by_one(runner, short))
    assert runner._silabs_second is not None  # the second half went to a second process
    assert np.array_equal(runner.predict(samples), _one_by_one(runner, samples))


def test_an_interrupted_silicon_labs_batch_leaves_no_stale_reply_for_the_next(mltk_tflite_bytes):
    # Ctrl-C after the first child answered left the second child's reply unread: the next long
    # batch's second half got the interrupted batch's outputs, silently.
    runner = TfliteRunner(mltk_tflite_bytes, "silabs-tflm")
    rng = np.random.default_rng(4)
    first, second = (rng.integers(-128, 128, (TWO_LANES_FROM, 49, 40, 1), dtype=np.int8) for _ in range(2))
    expected = runner.predict(second)
    collect = runner._silabs.collect

    def interrupted():
        collect()
        raise KeyboardInterrupt

    runner._silabs.collect = interrupted  # a keypress cannot be made here
    with pytest.raises(KeyboardInterrupt):
        runner.predict(first)
    assert np.array_equal(runner.predict(second), expected)
