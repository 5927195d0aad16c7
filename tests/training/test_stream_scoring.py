"""Scores with the convolution shared between a stream's inputs equal Keras' input by input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from microspeech.data import load_dataset
from microspeech.detection.detector import scores_to_uint8
from microspeech.detection.windows import StreamInputs
from microspeech.models import get_model_spec, list_models
from microspeech.training.loop import FastTrainer
from microspeech.training.stream_scoring import SharedConvScorer
from microspeech.training.stream_selection import ValidationStream

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning")]


def _keras_scores(model, features: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            model(features[s : s + 512].astype(np.float32), training=False).numpy()
            for s in range(0, len(features), 512)
        ]
    )


def _randomize_statistics(model, seed: int) -> None:
    """Batch-norm statistics and a dense scale that make folding and softmax matter."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.normal(1, 0.3, size).astype(np.float32))
            layer.beta.assign(rng.normal(0, 2, size).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 20, size).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(100, 3000, size).astype(np.float32))
        elif isinstance(layer, keras.layers.Dense):
            layer.kernel.assign(layer.kernel.numpy() * 0.3)


def _inputs(frames: np.ndarray, starts: np.ndarray, length: int) -> StreamInputs:
    features = np.stack([frames[s : s + length] for s in starts]) if len(starts) else np.zeros((0, length, 1))
    return StreamInputs(features, np.arange(len(starts), dtype=np.int64) * 100, frames, starts)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_scores_the_real_stream_as_keras_does(name, subset_dir):
    """The seed family takes the shared path, other models Keras' own; both give Keras' scores
    on two minutes of the real validation stream (the firmware's inputs, 1,200 of them)."""
    import keras

    spec = get_model_spec(name)
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, stream_validation_minutes=2.0))
    inputs = ValidationStream.build(load_dataset(str(subset_dir)), spec, seed=3).inputs
    keras.utils.set_random_seed(7)
    model = spec.build_model()
    _randomize_statistics(model, seed=1)
    trainer = FastTrainer(model, 1e-3, [1.0] * len(spec.classes))
    expected = _keras_scores(model, inputs.features)
    ours = trainer.predict_stream(inputs)
    scorer = SharedConvScorer.for_model(model)
    assert (scorer is not None) == (name == "tflite_micro_speech")
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-5)
    differing = scores_to_uint8(ours) != scores_to_uint8(expected)
    assert differing.sum() <= 3  # one step, where a score sits on a rounding boundary


def _conv_model(
    frames, channels, *, kernel, strides, padding, filters, batch_norm, bias, dropout, relu_layer
):
    import keras

    x_in = keras.Input(shape=(frames, channels))
    x = keras.layers.Reshape((frames, channels, 1))(x_in)
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=bias)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x) if relu_layer else keras.layers.Activation("relu")(x)
    if dropout:
        x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Flatten()(x)
    scores = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(x_in, scores)


@pytest.mark.parametrize(
    "kernel, strides, padding, filters, hop, count, batch_norm, bias, dropout, relu_layer",
    [
        ((10, 8), (2, 2), "same", 8, 5, 300, True, True, True, True),  # the seed's shape, two blocks
        ((10, 8), (2, 2), "same", 8, 4, 40, True, True, True, True),  # even hop: rows of one phase
        ((3, 3), (1, 1), "valid", 5, 1, 70, False, True, False, False),
        ((5, 7), (3, 2), "same", 12, 3, 260, True, False, True, True),
        ((4, 6), (2, 3), "valid", 3, 7, 9, True, True, False, True),
        ((17, 4), (2, 2), "same", 8, 2, 1, False, False, False, True),  # one input, no interior row
        ((10, 8), (2, 2), "same", 8, 5, 0, True, True, True, True),  # no input
    ],
)
def test_geometries_match_keras(
    kernel, strides, padding, filters, hop, count, batch_norm, bias, dropout, relu_layer
):
    import keras

    frames, channels = 21, 13
    keras.utils.set_random_seed(3)
    model = _conv_model(
        frames,
        channels,
        kernel=kernel,
        strides=strides,
        padding=padding,
        filters=filters,
        batch_norm=batch_norm,
        bias=bias,
        dropout=dropout,
        relu_layer=relu_layer,
    )
    _randomize_statistics(model, seed=2)
    rng = np.random.default_rng(count)
    first = 6
    sequence = rng.integers(-128, 128, (first + hop * max(count - 1, 0) + frames + 4, channels)).astype(
        np.int8
    )
    inputs = _inputs(sequence, first + hop * np.arange(count, dtype=np.int64), frames)
    scorer = SharedConvScorer.for_model(model)
    assert scorer is not None
    ours = scorer.scores(inputs)
    assert ours.shape == (count, 3) and ours.dtype == np.float32
    if count:
        np.testing.assert_allclose(ours, _keras_scores(model, inputs.features), rtol=0, atol=2e-5)


def test_uneven_inputs_and_other_shapes_are_left_to_keras():
    import keras

    shape = dict(kernel=(3, 3), strides=(2, 2), padding="same", filters=4)
    model = _conv_model(21, 13, **shape, batch_norm=True, bias=True, dropout=False, relu_layer=True)
    sequence = np.zeros((80, 13), np.int8)
    scorer = SharedConvScorer.for_model(model)
    assert scorer.scores(_inputs(sequence, np.array([0, 5, 11]), 21)) is None  # hops 5 then 6
    past_the_end = StreamInputs(np.zeros((3, 21, 13), np.int8), np.arange(3), sequence, np.array([0, 40, 80]))
    assert scorer.scores(past_the_end) is None

    x_in = keras.Input(shape=(21, 13))
    x = keras.layers.Reshape((21, 13, 1))(x_in)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.ReLU(max_value=6.0)(x)  # a capped ReLU is not the family's
    x = keras.layers.Flatten()(x)
    capped = keras.Model(x_in, keras.layers.Dense(3, activation="softmax")(x))
    assert SharedConvScorer.for_model(capped) is None
