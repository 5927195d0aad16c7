"""The training-mode stand-ins compute what Keras' layers compute, with the model's own variables."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.models import get_model_spec, list_models

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning")]


def _batch_norm_pair(shape, seed):
    import keras

    rng = np.random.default_rng(seed)
    layers = [keras.layers.BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)]
    inputs = keras.Input(shape[1:])
    for layer in layers:
        layer(inputs)
    weights = [rng.normal(1, 0.2, shape[-1]), rng.normal(0, 0.2, shape[-1])]
    weights += [rng.normal(0, 0.5, shape[-1]), rng.uniform(0.5, 2, shape[-1])]
    for layer in layers:
        layer.set_weights([w.astype(np.float32) for w in weights])
    return layers, rng.normal(3, 2, shape).astype(np.float32), rng.normal(0, 1, shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(32, 25, 20, 8), (16, 64)])
def test_fused_batch_norm_matches_keras_in_training(shape):
    import tensorflow as tf

    from microspeech.training.fast_layers import FusedBatchNorm

    (keras_layer, wrapped), x, upstream = _batch_norm_pair(shape, seed=len(shape))
    fused = FusedBatchNorm(wrapped)
    results = []
    for call, layer in ((lambda t: keras_layer(t, training=True), keras_layer), (fused.train_call, wrapped)):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = call(inputs)
            loss = tf.reduce_sum(outputs * upstream)
        grads = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
        moving = [layer.moving_mean.numpy(), layer.moving_variance.numpy()]
        results.append([outputs.numpy(), *(g.numpy() for g in grads), *moving])
    for ours, theirs in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-4 * np.abs(theirs).max())


def test_fused_batch_norm_outside_training_is_the_keras_layer():
    (keras_layer, wrapped), x, _ = _batch_norm_pair((8, 10, 4, 3), seed=5)
    from microspeech.training.fast_layers import FusedBatchNorm

    np.testing.assert_array_equal(FusedBatchNorm(wrapped)(x, training=False), keras_layer(x, training=False))


def test_dropout_keeps_its_share_scales_and_follows_the_layers_seed_state():
    import keras

    from microspeech.training.fast_layers import Uint16Dropout

    layer = keras.layers.Dropout(0.3, seed=11)
    layer.build((None, 50_000))
    stand_in = Uint16Dropout(layer)
    x = np.ones((4, 50_000), np.float32)
    start = layer.seed_generator.state.numpy().copy()
    first = stand_in.train_call(x).numpy()
    np.testing.assert_allclose(np.unique(first), [0.0, 1 / 0.7], rtol=1e-6)
    assert (first > 0).mean() == pytest.approx(0.7, abs=0.005)
    second = stand_in.train_call(x).numpy()
    assert not np.array_equal(first, second)  # the seed state moved on
    layer.seed_generator.state.assign(start)
    np.testing.assert_array_equal(stand_in.train_call(x).numpy(), first)  # and is all it depends on
    np.testing.assert_array_equal(stand_in(x, training=False), x)


def test_dropout_passes_the_gradient_of_the_kept_elements_only_scaled_as_the_outputs():
    import keras
    import tensorflow as tf

    from microspeech.training.fast_layers import Uint16Dropout

    layer = keras.layers.Dropout(0.5, seed=3)
    layer.build((None, 25, 20, 8))
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(0, 1, (32, 25, 20, 8)).astype(np.float32))
    upstream = rng.normal(0, 1, x.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = Uint16Dropout(layer).train_call(x)
        loss = tf.reduce_sum(outputs * upstream)
    gradient = tape.gradient(loss, x).numpy()
    kept = outputs.numpy() != 0
    assert kept.mean() == pytest.approx(0.5, abs=0.01)
    # exactly what selecting between the scaled input and zeros gives, forward and backward
    np.testing.assert_array_equal(outputs.numpy(), np.where(kept, x.numpy() * np.float32(2.0), 0.0))
    np.testing.assert_array_equal(gradient, np.where(kept, upstream * np.float32(2.0), 0.0))


@pytest.mark.parametrize("name", list_models())
def test_the_training_graph_trains_the_models_own_variables(name):
    import keras
    import tensorflow as tf

    from microspeech.training.fast_layers import FusedBatchNorm, Uint16Dropout, training_graph

    model = get_model_spec(name).build_model()
    graph = training_graph(model)
    kinds = {type(layer) for layer in graph.layers}
    has = {type(layer) for layer in model.layers}
    assert (FusedBatchNorm in kinds) == (keras.layers.BatchNormalization in has)
    assert (Uint16Dropout in kinds) == (keras.layers.Dropout in has)
    # No variable of its own, and a gradient for every one of the model's.
    assert {id(v) for v in graph.variables} <= {id(v) for v in model.variables}
    x = np.random.default_rng(0).integers(-128, 128, (3, *model.input_shape[1:])).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(graph(x, training=True) * np.arange(model.output_shape[-1]))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    np.testing.assert_array_equal(graph(x, training=False), model(x, training=False))
