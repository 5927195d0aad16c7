"""Epoch-end rules and the fast loop's loss, against Keras' own definitions."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.models import TrainSettings, get_model_spec, list_models
from microspeech.training.callbacks import (
    EarlyStopping,
    ReduceLROnPlateau,
    balanced_class_weights,
    scale_class_weights,
)


def test_reduce_lr_after_patience_epochs_without_improvement():
    rule = ReduceLROnPlateau("val_accuracy", factor=0.25, patience=2, min_lr=1e-4)
    rates, lr = [], 1e-3
    for accuracy in [0.5, 0.6, 0.6, 0.6, 0.59, 0.58, 0.7, 0.7, 0.7]:
        lr = rule.on_epoch_end({"val_accuracy": accuracy}, lr)
        rates.append(lr)
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3, 2.5e-4, 2.5e-4, 1e-4, 1e-4, 1e-4, 1e-4])


def test_early_stopping_remembers_the_best_epoch_and_survives_a_round_trip():
    rule = EarlyStopping("val_accuracy", patience=3)
    outcomes = []
    for epoch, accuracy in enumerate([0.5, 0.7, 0.65, 0.7, 0.69]):
        outcomes.append(rule.on_epoch_end(epoch, {"val_accuracy": accuracy}))
        rule = EarlyStopping.from_dict(rule.to_dict())  # as a resumed run would
    assert outcomes == [(True, False), (True, False), (False, False), (False, False), (False, True)]
    assert rule.best_epoch == 1 and rule.best == 0.7
    loss_rule = EarlyStopping("val_loss", patience=1)
    assert loss_rule.on_epoch_end(0, {"val_loss": 1.0}) == (True, False)
    assert loss_rule.on_epoch_end(1, {"val_loss": 1.5}) == (False, True)


def test_balanced_class_weights_match_total_over_classes_times_count():
    labels = np.array([0] * 10 + [1] * 30 + [3] * 20)
    weights = balanced_class_weights(labels, 4)
    assert weights == pytest.approx([60 / 40, 60 / 120, 0.0, 60 / 80])


def test_class_weight_scale_multiplies_only_the_named_classes():
    import dataclasses

    from microspeech.models import TrainSettings, get_model_spec
    from microspeech.training.trainer import loss_class_weights

    classes = ["yes", "no", "_unknown_", "_silence_"]
    assert scale_class_weights([1.5, 0.5, 2.0, 0.75], classes, {"no": 1.6}) == pytest.approx(
        [1.5, 0.8, 2.0, 0.75]
    )
    with pytest.raises(ValueError, match="'maybe'"):
        scale_class_weights([1.0] * 4, classes, {"maybe": 2.0})
    # Through the spec, as the trainer computes them: balanced first, then scaled.
    registered = get_model_spec("tflite_micro_speech")
    spec = dataclasses.replace(registered, train=dataclasses.replace(registered.train, class_weight_scale={}))
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60 + [3] * 20)
    plain = loss_class_weights(spec, labels)
    assert plain == pytest.approx(balanced_class_weights(labels, 4))
    # The registered seed recipe weighs `_unknown_` twice on top of the balanced weights.
    doubled = [plain[0], plain[1], plain[2] * 2, plain[3]]
    assert loss_class_weights(registered, labels) == pytest.approx(doubled)
    scaled = dataclasses.replace(spec, train=TrainSettings(class_weight_scale={"no": 1.3, "_silence_": 0.5}))
    assert loss_class_weights(scaled, labels) == pytest.approx(
        [plain[0], plain[1] * 1.3, plain[2], plain[3] * 0.5]
    )
    unweighted = dataclasses.replace(
        spec, train=TrainSettings(balanced_class_weights=False, class_weight_scale={"yes": 2.0})
    )
    assert loss_class_weights(unweighted, labels) == pytest.approx([2.0, 1.0, 1.0, 1.0])


def test_fast_loop_loss_is_keras_weighted_categorical_crossentropy():
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training.loop import FastTrainer

    keras.utils.set_random_seed(0)
    model = get_model_spec("tflite_micro_speech").build_model()
    weights = [1.5, 0.5, 2.0, 1.0]
    trainer = FastTrainer(model, 0.0, weights)  # learning rate 0: the loss is of the initial weights
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (64, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 64)
    model.layers[5].rate = 0.0  # no dropout, so Keras sees the same forward pass
    result = trainer.train_epoch(features, labels, 64, np.random.default_rng(1))
    scores = model(features.astype(np.float32), training=True)
    loss = keras.losses.CategoricalCrossentropy()(
        keras.utils.to_categorical(labels, 4), scores, sample_weight=np.asarray(weights)[labels]
    )
    assert result.loss == pytest.approx(float(loss), rel=1e-4)
    assert result.samples == 64
    with pytest.raises(TypeError, match="int8 features.*float32"):
        trainer.train_epoch(features.astype(np.float32), labels, 64, np.random.default_rng(1))


def _regularized_model(**regularizers):
    import keras

    features = keras.Input((49, 40))
    x = keras.layers.Reshape((49, 40, 1))(features)
    x = keras.layers.Conv2D(8, (10, 8), strides=2, padding="same", **regularizers)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    scores = keras.layers.Dense(4, activation="softmax", kernel_regularizer=keras.regularizers.L2(0.01))(x)
    return keras.Model(features, scores)


def test_weight_regularizers_join_the_loss_as_in_keras_fit():
    import keras

    from microspeech.training.loop import FastTrainer

    keras.utils.set_random_seed(0)
    model = _regularized_model(kernel_regularizer=keras.regularizers.L2(0.01))
    weights = [1.5, 0.5, 2.0, 1.0]
    trainer = FastTrainer(model, 0.0, weights)
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (64, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 64)
    result = trainer.train_epoch(features, labels, 64, np.random.default_rng(1))
    scores = model(features.astype(np.float32), training=True)
    cross_entropy = keras.losses.CategoricalCrossentropy()(
        keras.utils.to_categorical(labels, 4), scores, sample_weight=np.asarray(weights)[labels]
    )
    penalty = sum(float(loss) for loss in model.losses)
    assert len(model.losses) == 2 and penalty > 1e-3
    assert result.loss == pytest.approx(float(cross_entropy) + penalty, rel=1e-4)

    # With a learning rate, a strong penalty shrinks the kernels it names.
    def kernel_norm(strength: float) -> float:
        keras.utils.set_random_seed(0)
        model = _regularized_model(kernel_regularizer=keras.regularizers.L2(strength))
        trainer = FastTrainer(model, 1e-2, [1.0] * 4)
        for epoch in range(3):
            trainer.train_epoch(features, labels, 16, np.random.default_rng(epoch))
        return float(np.sum(np.square(model.layers[2].kernel.numpy())))

    assert kernel_norm(1.0) < 0.5 * kernel_norm(1e-9)


def test_activity_regularizers_are_refused_by_name():
    import keras

    from microspeech.training.loop import FastTrainer

    model = _regularized_model(activity_regularizer=keras.regularizers.L2(0.01), name="loud_conv")
    with pytest.raises(ValueError, match="'loud_conv'.*activity_regularizer"):
        FastTrainer(model, 1e-3, [1.0] * 4)


def test_label_smoothing_matches_keras_and_balanced_accuracy_is_mean_recall():
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training.loop import FastTrainer

    keras.utils.set_random_seed(0)
    model = get_model_spec("tflite_micro_speech").build_model()
    weights = [1.5, 0.5, 2.0, 1.0]
    trainer = FastTrainer(model, 0.0, weights, label_smoothing=0.1)
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (64, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 64)
    model.layers[5].rate = 0.0
    result = trainer.train_epoch(features, labels, 64, np.random.default_rng(1))
    scores = model(features.astype(np.float32), training=True)
    targets = keras.utils.to_categorical(labels, 4)
    sample_weight = np.asarray(weights)[labels]
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        targets, scores, sample_weight=sample_weight
    )
    plain = keras.losses.CategoricalCrossentropy()(targets, scores, sample_weight=sample_weight)
    assert result.loss == pytest.approx(float(smoothed), rel=1e-4)
    assert abs(float(smoothed) - float(plain)) > 1e-3  # the option really changes the loss

    predicted = trainer.predict(features).argmax(-1)
    loss, accuracy, balanced = trainer.evaluate_balanced(features, labels)
    recalls = [(predicted[labels == c] == c).mean() for c in range(4)]
    assert accuracy == pytest.approx((predicted == labels).mean())
    assert balanced == pytest.approx(np.mean(recalls))
    assert trainer.evaluate(features, labels) == pytest.approx((loss, accuracy))


def test_focal_gamma_matches_keras_focal_loss_and_zero_is_plain_cross_entropy():
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training.loop import FastTrainer

    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (64, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 64)
    weights = [1.5, 0.5, 2.0, 1.0]
    losses = {}
    for gamma in (0.0, 2.0):
        keras.utils.set_random_seed(0)
        model = get_model_spec("tflite_micro_speech").build_model()
        model.layers[5].rate = 0.0
        trainer = FastTrainer(model, 0.0, weights, label_smoothing=0.1, focal_gamma=gamma)
        losses[gamma] = trainer.train_epoch(features, labels, 64, np.random.default_rng(1)).loss
    scores = model(features.astype(np.float32), training=True)
    targets = keras.utils.to_categorical(labels, 4)
    sample_weight = np.asarray(weights)[labels]
    focal = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0, label_smoothing=0.1)(
        targets, scores, sample_weight=sample_weight
    )
    plain = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        targets, scores, sample_weight=sample_weight
    )
    assert losses[2.0] == pytest.approx(float(focal), rel=1e-4)
    assert losses[0.0] == pytest.approx(float(plain), rel=1e-4)
    assert losses[2.0] < 0.8 * losses[0.0]  # the well-classified share of the loss is gone


def test_weight_averaging_swaps_in_the_moving_average_and_gives_the_trained_weights_back():
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training.loop import FastTrainer

    keras.utils.set_random_seed(0)
    model = get_model_spec("tflite_micro_speech").build_model()
    momentum = 0.9
    trainer = FastTrainer(model, 1e-2, [1.0, 1.0, 1.0, 1.0], weight_averaging=momentum)
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (96, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 96)
    model.layers[5].rate = 0.0
    kernel = model.trainable_variables[0]
    seen = [kernel.numpy()]  # the average starts at the first step's result (Keras: momentum 0 then)
    for start in range(0, 96, 32):  # one step per call, to follow the average by hand
        trainer.train_epoch(
            features[start : start + 32], labels[start : start + 32], 32, np.random.default_rng(1)
        )
        seen.append(kernel.numpy())
    expected = seen[1]
    for value in seen[2:]:
        expected = momentum * expected + (1 - momentum) * value
    trained = kernel.numpy()
    with trainer.averaged_weights():
        assert np.allclose(kernel.numpy(), expected, atol=1e-6)
        assert not np.allclose(kernel.numpy(), trained)
        averaged_scores = trainer.predict(features)
    assert np.array_equal(kernel.numpy(), trained)  # the trained weights are back
    assert not np.allclose(averaged_scores, trainer.predict(features))

    plain = FastTrainer(get_model_spec("tflite_micro_speech").build_model(), 1e-2, [1.0] * 4)
    before = [v.numpy() for v in plain.model.trainable_variables]
    with plain.averaged_weights():  # no averaging: nothing swapped
        assert all(
            np.array_equal(a, v.numpy()) for a, v in zip(before, plain.model.trainable_variables, strict=True)
        )


@pytest.mark.parametrize("name", list_models())
def test_averaged_weights_come_with_batch_norm_statistics_recomputed_for_them(name):
    import keras

    from microspeech.training.loop import FastTrainer

    keras.utils.set_random_seed(0)
    spec = get_model_spec(name)
    model = spec.build_model()
    trainer = FastTrainer(model, 1e-2, [1.0] * 4, weight_averaging=0.9, norm_windows=40)
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (96, *spec.input_shape)).astype(np.int8)
    trainer.train_epoch(features, rng.integers(0, 4, 96), 16, np.random.default_rng(1))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    trained = [v.numpy() for v in model.weights]
    rows = np.linspace(0, 95, 40).astype(int)  # evenly spaced over the epoch's windows
    with trainer.averaged_weights():
        # The averaged model run layer by layer (every registered model is a chain) over those
        # windows: each BatchNorm layer holds its own input's statistics.
        x = features[rows].astype(np.float32)
        for layer in model.layers[1:]:
            if layer in norms:
                flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
                assert np.allclose(layer.moving_mean.numpy(), flat.mean(0), rtol=1e-4, atol=1e-3)
                assert np.allclose(layer.moving_variance.numpy(), flat.var(0), rtol=1e-3, atol=1e-6)
            x = layer(x, training=False)
        now = [v.numpy() for v in model.weights]
        assert any(not np.allclose(a, b, rtol=1e-2) for a, b in zip(now, trained, strict=True))
    back = [v.numpy() for v in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(trained, back, strict=True))  # all trained values back

    with pytest.raises(ValueError, match="norm_windows"):
        TrainSettings(norm_windows=100)  # nothing averaged: nothing to recompute for
    with pytest.raises(ValueError, match="norm_windows"):
        TrainSettings(weight_averaging=0.99, norm_windows=-1)


def test_predict_on_two_threads_gives_the_scores_of_one_batch_at_a_time(monkeypatch):
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training import loop

    keras.utils.set_random_seed(0)
    trainer = loop.FastTrainer(get_model_spec("tflite_micro_speech").build_model(), 1e-2, [1.0] * 4)
    monkeypatch.setattr(loop, "EVAL_BATCH", 100)  # several batches, the last one shorter
    features = np.random.default_rng(0).integers(-128, 128, (1050, 49, 40)).astype(np.int8)
    threaded = trainer.predict(features)
    batches = [features[start : start + 100].astype(np.float32) for start in range(0, 1050, 100)]
    alone = np.concatenate([trainer.model(batch, training=False).numpy() for batch in batches])
    assert threaded.shape == (1050, 4)
    assert np.array_equal(threaded, alone)


@pytest.mark.parametrize("averaging", [0.0, 0.99])
def test_a_warm_up_step_leaves_training_as_it_was(averaging):
    """`warm_up` runs a step and puts every variable back: the same epochs follow, to the bit."""
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training.loop import FastTrainer

    rng = np.random.default_rng(4)
    features = rng.integers(-128, 128, (200, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 200)
    runs = []
    for warm in (False, True):
        keras.utils.set_random_seed(0)
        model = get_model_spec("tflite_micro_speech").build_model()
        trainer = FastTrainer(model, 1e-2, [1.0, 2.0, 1.0, 1.0], weight_averaging=averaging)
        before = trainer.state()
        if warm:
            trainer.warm_up(32)
            after = trainer.state()
            assert before.keys() == after.keys()
            assert all(np.array_equal(before[key], after[key]) for key in before)
        results = [trainer.train_epoch(features, labels, 32, np.random.default_rng(e)) for e in range(2)]
        runs.append((results, trainer.state()))
    (plain, plain_state), (warmed, warmed_state) = runs
    assert plain == warmed
    assert all(np.array_equal(plain_state[key], warmed_state[key]) for key in plain_state)


def test_cosine_learning_rate_holds_then_falls_to_the_minimum():
    from microspeech.training.callbacks import cosine_learning_rate

    rates = [cosine_learning_rate(epoch, 1e-3, 1e-5, 30, 50) for epoch in range(55)]
    assert rates[:31] == [1e-3] * 31
    assert rates[49] == pytest.approx(1e-5) and rates[54] == pytest.approx(1e-5)
    assert rates[39] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * 9 / 19)))
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert cosine_learning_rate(3, 1e-3, 1e-5, 0, 1) == 1e-3  # one epoch: nothing to decay over


def test_time_smoothing_adds_the_dense_kernels_step_differences_to_the_loss():
    import keras

    from microspeech.models import get_model_spec
    from microspeech.training.loop import FastTrainer

    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (64, 49, 40)).astype(np.int8)
    labels = rng.integers(0, 4, 64)
    losses, kernels = {}, {}
    for strength in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        model = get_model_spec("tflite_micro_speech").build_model()
        model.layers[5].rate = 0.0
        trainer = FastTrainer(model, 0.0, [1.0] * 4, time_smoothing=strength)
        losses[strength] = trainer.train_epoch(features, labels, 64, np.random.default_rng(1)).loss
        kernels[strength] = model.get_layer("scores").kernel.numpy()
    # Flatten runs (time 25, columns 20, filters 8): the kernel's rows are time-major.
    steps = kernels[0.0].reshape(25, -1)
    penalty = float(np.sum(np.square(steps[1:] - steps[:-1])))
    assert penalty > 0
    assert losses[0.5] == pytest.approx(losses[0.0] + 0.5 * penalty, rel=1e-4)

    # With a learning rate, the penalty pulls neighbouring steps together.
    def step_differences(strength: float) -> float:
        keras.utils.set_random_seed(0)
        model = get_model_spec("tflite_micro_speech").build_model()
        trainer = FastTrainer(model, 1e-2, [1.0] * 4, time_smoothing=strength)
        for epoch in range(3):
            trainer.train_epoch(features, labels, 16, np.random.default_rng(epoch))
        rows = model.get_layer("scores").kernel.numpy().reshape(25, -1)
        return float(np.sum(np.square(rows[1:] - rows[:-1])))

    assert step_differences(1.0) < 0.5 * step_differences(0.0)


def test_time_smoothing_needs_flatten_then_dense_over_time_steps():
    from microspeech.models import ModelSpec, TrainSettings, get_model_spec
    from microspeech.training.loop import FastTrainer

    with pytest.raises(ValueError, match="time_smoothing"):
        TrainSettings(time_smoothing=-1.0)
    ds_cnn = get_model_spec("ds_cnn")
    assert isinstance(ds_cnn, ModelSpec)
    with pytest.raises(ValueError, match="time_smoothing needs"):  # pooled to one step, then Dense
        FastTrainer(ds_cnn.build_model(), 1e-3, [1.0] * 4, time_smoothing=0.1)


def _without_dropout(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


@pytest.mark.parametrize("name", list_models())
def test_word_head_adds_its_cross_entropy_on_the_final_layers_input(name):
    import keras
    import tensorflow as tf

    from microspeech.training.loop import FastTrainer

    spec = get_model_spec(name)
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (48, *spec.input_shape)).astype(np.int8)
    labels, words = rng.integers(0, 4, 48), rng.integers(0, 9, 48)
    results = {}
    for strength in (0.0, 0.7):
        keras.utils.set_random_seed(0)
        model = _without_dropout(spec.build_model())
        trainer = FastTrainer(model, 0.0, [1.0] * 4, word_classes=9, word_head=strength)
        names = [v.path for v in model.variables]
        results[strength] = trainer.train_epoch(
            features, labels, 48, np.random.default_rng(1), words=words
        ).loss
    # The head is the trainer's, not the model's: what is saved and converted is unchanged.
    assert [v.path for v in model.variables] == names and "word_head/0" in trainer.state()
    kernel, bias = trainer.state()["word_head/0"], trainer.state()["word_head/1"]
    hidden = keras.Model(model.inputs[0], model.layers[-1].input)(features.astype(np.float32), training=True)
    logits = np.asarray(hidden).reshape(48, -1) @ kernel + bias
    word_loss = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(words, logits)))
    assert word_loss > 1.0
    assert results[0.7] == pytest.approx(results[0.0] + 0.7 * word_loss, rel=1e-4)


def test_word_head_trains_and_resumes_from_its_checkpointed_state():
    import keras

    from microspeech.training.loop import FastTrainer

    spec = get_model_spec("tflite_micro_speech")
    rng = np.random.default_rng(2)
    features = rng.integers(-128, 128, (96, *spec.input_shape)).astype(np.int8)
    labels = rng.integers(0, 4, 96)
    words = labels * 3 + rng.integers(0, 3, 96)  # finer labels inside each class

    def trainer() -> FastTrainer:
        keras.utils.set_random_seed(0)
        return FastTrainer(
            spec.build_model(), 3e-3, [1.0] * 4, word_classes=12, word_head=1.0, weight_averaging=0.9
        )

    straight = trainer()
    losses = [
        straight.train_epoch(features, labels, 16, np.random.default_rng(e), words=words).loss
        for e in range(4)
    ]
    assert losses[-1] < losses[0]
    first = trainer()
    for epoch in range(2):
        first.train_epoch(features, labels, 16, np.random.default_rng(epoch), words=words)
    resumed = trainer()
    resumed.load_state(first.state())
    for epoch in (2, 3):
        resumed.train_epoch(features, labels, 16, np.random.default_rng(epoch), words=words)
    for key, value in straight.state().items():
        np.testing.assert_array_equal(resumed.state()[key], value, err_msg=key)
    with straight.averaged_weights():  # the model's averages only, in the model's order
        averaged = straight.model_weights()
    assert len(averaged) == len(straight.model_weights())
    with pytest.raises(ValueError, match="one word label per sample"):
        straight.train_epoch(features, labels, 16, np.random.default_rng(0))
    with pytest.raises(ValueError, match="word_head"):
        TrainSettings(word_head=-0.5)


def test_word_head_names_itself_for_a_model_without_a_graph():
    import keras

    from microspeech.training.loop import FastTrainer

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten = keras.layers.Flatten()
            self.scores = keras.layers.Dense(4, activation="softmax")

        def call(self, inputs):
            return self.scores(self.flatten(inputs))

    model = Subclassed()
    model(np.zeros((1, 49, 40), np.float32))
    with pytest.raises(ValueError, match="word_head needs a model built as a graph of layers"):
        FastTrainer(model, 1e-3, [1.0] * 4, word_classes=5, word_head=0.3)
