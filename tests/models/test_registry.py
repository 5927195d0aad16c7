"""Model registry and spec (de)serialization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from microspeech.data.settings import AugmentationSettings
from microspeech.frontend import FrontendSettings
from microspeech.models import (
    ModelSpec,
    TrainSettings,
    get_model_spec,
    list_models,
    register_model,
)
from microspeech.models.registry import DRY_RUN_CLIPS_PER_CLASS, dry_run_spec, with_keywords


def test_tflite_micro_speech_is_registered_with_the_reference_recipe():
    assert "tflite_micro_speech" in list_models()
    spec = get_model_spec("tflite_micro_speech")
    assert spec.classes == ["yes", "no", "_unknown_", "_silence_"]
    assert spec.keywords == ["yes", "no"]
    assert spec.input_shape == (49, 40)
    # MLTK's learning rate; batches of 16, not MLTK's 32 (chosen on the validation stream).
    assert (spec.train.batch_size, spec.train.learning_rate) == (16, 1e-3)
    # MLTK's factor; more patience than MLTK's 7 / 20 epochs (chosen on the validation stream).
    assert (spec.train.reduce_lr_factor, spec.train.reduce_lr_patience) == (0.25, 12)
    # Stream-first: the checkpoint is chosen on a validation stream (with the clips breaking its
    # near-ties), parameters calibrated on another.
    assert (spec.train.monitor, spec.train.early_stopping_patience) == ("val_stream_plus_accuracy", 30)
    assert spec.train.stopping_monitor == "val_accuracy"
    assert spec.train.stream_validation_minutes > 0 and spec.train.max_fa_per_hour == 2.0
    assert spec.train.reduce_lr_monitor == "accuracy"  # as MLTK's recipe
    assert spec.augmentation.trim_threshold_db == 20.0
    # Stream-first windows on top of MLTK's recipe (BENCHMARKS.md): noise at an SNR, a warm
    # frontend, keywords across the window's edges; the settings' defaults stay MLTK's.
    assert spec.augmentation.snr_db_range is not None and spec.augmentation.warm_up_ms == 1000
    assert spec.augmentation.noise_onset_probability == 1.0
    assert AugmentationSettings().noise_factor_range == (0.0, 0.3)
    assert AugmentationSettings().warm_up_ms == 0 and AugmentationSettings().keyword_visible_min == 1.0
    assert spec.train.label_smoothing == 0.1
    # MLTK's frontend but a noise estimate four times as fast (chosen on the validation stream);
    # the frontend settings' defaults stay MLTK's.
    frontend = spec.frontend
    assert (frontend.noise_reduction_even_smoothing, frontend.noise_reduction_odd_smoothing) == (0.1, 0.24)
    as_mltk = {"noise_reduction_even_smoothing": 0.025, "noise_reduction_odd_smoothing": 0.06}
    assert dataclasses.replace(frontend, **as_mltk) == FrontendSettings()
    detection = spec.detection.to_dict()
    # MLTK's, except the volume gain: 2 wraps loud samples on the part (chosen on validation).
    assert detection == {
        "average_window_duration_ms": 1000,
        "detection_threshold": 185,
        "suppression_ms": 750,
        "minimum_count": 3,
        "volume_gain": 1.0,
        "latency_ms": 100,
        "verbose_model_output_logs": False,
    }


def test_larger_models_keep_the_training_schedules_measured_for_them():
    # Each schedule was chosen on the validation stream for that model (BENCHMARKS.md): both with
    # the seed's patience and batches of 16, the DS-CNN without weight averaging, two_conv with it.
    def schedule(name: str) -> tuple[float, int, int, int]:
        train = get_model_spec(name).train
        patience = (train.reduce_lr_patience, train.early_stopping_patience)
        return (train.weight_averaging, *patience, train.batch_size)

    assert schedule("ds_cnn") == (0.0, 12, 30, 16)
    assert schedule("two_conv") == (0.998, 12, 30, 16)


def test_unknown_class_weight_follows_what_was_measured_for_each_model():
    # `_unknown_` x2 on the balanced weights: taken for the seed and the DS-CNN on the validation
    # stream, within the spread for two_conv, which keeps balanced weights (BENCHMARKS.md).
    def scales(name: str) -> tuple[bool, dict[str, float]]:
        train = get_model_spec(name).train
        return train.balanced_class_weights, train.class_weight_scale

    assert scales("tflite_micro_speech") == (True, {"_unknown_": 2.0})
    assert scales("ds_cnn") == (True, {"_unknown_": 2.0})
    assert scales("two_conv") == (True, {})


def test_larger_models_take_only_the_seeds_windows_measured_for_them():
    # They inherit the seed's augmentation; a setting the seed took is off for them until it is
    # measured for them on the validation stream (BENCHMARKS.md): the warm-up helped both, the
    # noise onset two_conv only (the DS-CNN lost clips with it), loud silence the DS-CNN only.
    # Their warm-up stays two seconds: the seed's one second follows its faster noise estimate,
    # which they do not have.
    two_conv, ds_cnn = get_model_spec("two_conv").augmentation, get_model_spec("ds_cnn").augmentation
    seed = get_model_spec("tflite_micro_speech").augmentation
    assert two_conv == dataclasses.replace(seed, warm_up_ms=2000) and seed.warm_up_ms == 1000
    assert two_conv.warm_up_ms == 2000 and two_conv.noise_onset_probability == 1.0
    assert ds_cnn.warm_up_ms == 2000 and ds_cnn.noise_onset_probability == 0.0
    # Loud silence: measured for the seed (not taken: fewer keywords) and the DS-CNN (taken).
    assert seed.silence_gain_range == two_conv.silence_gain_range == (0.01, 1.0)
    assert ds_cnn.silence_gain_range == (0.01, 64.0)
    its_own = {"warm_up_ms", "noise_onset_probability", "silence_gain_range"}  # each measured for it
    inherited = [f.name for f in dataclasses.fields(seed) if f.name not in its_own]
    assert all(getattr(ds_cnn, name) == getattr(seed, name) for name in inherited)


def test_larger_models_keep_mltks_frontend():
    # The seed's faster noise estimate was chosen on the validation stream for the seed; two_conv
    # lost clips with it and the DS-CNN missed more keywords (BENCHMARKS.md). The DS-CNN reads
    # MLTK's 40 channels and maps them to 10 itself (its projection layer).
    assert get_model_spec("two_conv").frontend == FrontendSettings()
    assert get_model_spec("ds_cnn").frontend == FrontendSettings()


def test_ds_cnn_starts_from_the_dct_of_each_frame():
    # MLPerf's MFCC step as the DS-CNN's first layer: each frame's 40 channels map to 10
    # coefficients, and before training that map is the DCT-II, so a frame shaped as the k-th
    # cosine lands in coefficient k alone (a flat frame, a loudness change, in coefficient 0).
    import keras

    spec = get_model_spec("ds_cnn")
    model = spec.build_model()
    projection = model.get_layer("projection")
    frames, channels = spec.input_shape
    assert (channels, projection.filters, projection.kernel_size) == (40, 10, (1, 40))
    coefficients = keras.Model(model.inputs, projection.output)
    n = np.arange(channels)
    for k in (0, 3, 9):
        frame = np.cos(np.pi * k * (n + 0.5) / channels).astype(np.float32)
        out = np.asarray(coefficients(np.tile(frame, (1, frames, 1)))).reshape(frames, 10)
        others = np.delete(out, k, axis=1)
        assert np.all(np.abs(out[:, k]) > 1.0) and np.all(np.abs(others) < 1e-4)
    # What the blocks see is MLPerf's 49x10 map.
    assert model.get_layer(index=3).output.shape[1:] == (frames, 10, 1)


def test_dry_run_variant_is_the_same_model_with_tiny_settings():
    spec = get_model_spec("tflite_micro_speech-test")
    full = get_model_spec("tflite_micro_speech")
    assert spec.name == "tflite_micro_speech-test"
    assert (spec.train.epochs, spec.train.batch_size) == (3, 3)
    assert spec.train.max_clips_per_class == DRY_RUN_CLIPS_PER_CLASS
    assert spec.build is full.build and spec.classes == full.classes


def test_unknown_model_name_lists_the_registered_ones():
    with pytest.raises(KeyError, match="tflite_micro_speech"):
        get_model_spec("no_such_model")


def test_register_rejects_reserved_suffix_and_duplicates():
    with pytest.raises(ValueError, match="-test"):
        register_model("thing-test")
    factory = get_model_spec  # any callable distinct from the registered factory
    with pytest.raises(ValueError, match="registered twice"):
        register_model("tflite_micro_speech")(factory)


def test_spec_round_trips_through_its_dict():
    spec = get_model_spec("tflite_micro_speech")
    spec = dataclasses.replace(spec, augmentation=AugmentationSettings(speed_range=(0.9, 1.1)))
    again = ModelSpec.from_dict(spec.to_dict(), build=spec.build)
    assert again.to_dict() == spec.to_dict()
    assert again.augmentation.speed_range == (0.9, 1.1)


def test_settings_reject_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="batchsize"):
        TrainSettings.from_dict({"batchsize": 16})
    with pytest.raises(ValueError, match="monitor must be one of"):
        TrainSettings(monitor="accuracy_val")
    for stream_metric in ("val_stream_score", "val_stream_plus_accuracy"):
        with pytest.raises(ValueError, match=f"monitor {stream_metric} needs stream_validation_minutes"):
            TrainSettings(monitor=stream_metric)
        with pytest.raises(ValueError, match=f"monitor {stream_metric} needs stream_validation_minutes"):
            TrainSettings(stopping_monitor=stream_metric)
    with pytest.raises(ValueError, match="noise_factor_range"):
        AugmentationSettings(noise_factor_range=(0.5, 0.1))
    assert TrainSettings.from_dict(TrainSettings(epochs=7).to_dict()).epochs == 7
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainSettings(label_smoothing=1.0)
    with pytest.raises(ValueError, match="focal_gamma"):
        TrainSettings(focal_gamma=-1.0)
    with pytest.raises(ValueError, match="calibration_minutes"):
        TrainSettings(stream_validation_minutes=30.0, calibration_minutes=-1.0)
    # A spec with its validation stream switched off keeps its (then unused) calibration length.
    assert TrainSettings(calibration_minutes=120.0).stream_validation_minutes == 0.0
    with pytest.raises(ValueError, match="time_mask_count"):
        AugmentationSettings(time_mask_count=-1)
    with pytest.raises(ValueError, match="neighbour_probability"):
        AugmentationSettings(neighbour_probability=1.5)
    with pytest.raises(ValueError, match="neighbour_gap_ms_range"):
        AugmentationSettings(neighbour_gap_ms_range=(-10.0, 100.0))
    assert TrainSettings(monitor="val_balanced_accuracy").monitor == "val_balanced_accuracy"
    settings = AugmentationSettings(time_mask_count=2, freq_mask_max_channels=4)
    assert AugmentationSettings.from_dict(settings.to_dict()) == settings
    train = TrainSettings(label_smoothing=0.1)
    assert TrainSettings.from_dict(train.to_dict()) == train
    train = TrainSettings(class_weight_scale={"no": 1.3})
    assert TrainSettings.from_dict(train.to_dict()) == train
    with pytest.raises(ValueError, match=r"class_weight_scale\['no'\]"):
        TrainSettings(class_weight_scale={"no": 0.0})
    spec = get_model_spec("tflite_micro_speech")
    with pytest.raises(ValueError, match="unknown class 'nope'"):
        dataclasses.replace(spec, train=TrainSettings(class_weight_scale={"nope": 1.3}))
    train = TrainSettings(unknown_word_weights={"go": 2.0})
    assert TrainSettings.from_dict(train.to_dict()) == train
    with pytest.raises(ValueError, match=r"unknown_word_weights\['go'\]"):
        TrainSettings(unknown_word_weights={"go": -1.0})
    with pytest.raises(ValueError, match="unknown_word_weights names 'yes', a class"):
        dataclasses.replace(spec, train=TrainSettings(unknown_word_weights={"yes": 2.0}))


def test_built_model_matches_the_reference_architecture():
    model = get_model_spec("tflite_micro_speech").build_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer",
        "Reshape",
        "Conv2D",
        "BatchNormalization",
        "ReLU",
        "Dropout",
        "Flatten",
        "Dense",
    ]
    conv = model.layers[2]
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding) == (8, (10, 8), (2, 2), "same")
    assert model.layers[5].rate == 0.5
    assert model.output_shape == (None, 4)
    # 10*8*8 + 8 conv, 4*8 batch norm, 25*20*8*4 + 4 dense
    assert model.count_params() == 648 + 32 + 16004


def test_keywords_given_as_one_string_and_a_spec_path_given_by_mistake():
    from pathlib import Path

    from microspeech.models.registry import with_keywords

    spec = get_model_spec("tflite_micro_speech")
    # "on,off" was read as the words o, n, ",", o, f, f.
    assert with_keywords(spec, "on,off").classes == ["on", "off", "_unknown_", "_silence_"]
    with pytest.raises(TypeError, match="resolve_model_spec"):
        get_model_spec(Path("my_model.py"))  # type: ignore[arg-type]


def test_a_spec_is_refused_when_built_for_what_failed_only_after_training():
    # Each of these was accepted, then failed in training or at its very end: "" trained into the
    # models folder itself, "../x" outside it; version "v2" after every epoch (1.5 became 1);
    # classes "yes,up" became letters; no _unknown_ crashed at the first mining round.
    spec = get_model_spec("tflite_micro_speech")
    unweighted = dataclasses.replace(spec.train, class_weight_scale={})
    for change, message in (
        ({"name": ""}, "model name '': letters, digits, _ and -"),
        ({"name": "../escape"}, "model name '../escape'"),
        ({"name": "a" * 201}, "at most 200 characters"),
        ({"classes": "yes,up"}, "classes is a list of names, got 'yes,up'"),
        ({"classes": ["yes", "yes", "_unknown_"]}, "classes 'yes' given twice"),
        ({"version": "v2"}, "version is a whole number >= 0, got 'v2'"),
        ({"version": 1.5}, "version is a whole number >= 0, got 1.5"),
        (
            {"classes": ["yes", "up", "_silence_"], "train": unweighted},
            "mines as _unknown_, which classes lack",
        ),
    ):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(spec, **change)


def test_keywords_name_the_model_as_keras_takes_it_and_come_as_an_ordered_list():
    # "don't" trained up to the first epoch, then Keras refused the scope name; a set's order (the
    # classes', the name's) followed PYTHONHASHSEED.
    spec = get_model_spec("tflite_micro_speech")
    named = with_keywords(spec, ["don't", "up"])
    assert named.name == "tflite_micro_speech-dont-up" and named.classes[:2] == ["don't", "up"]
    refused = (({"a", "b"}, "a list of words"), (None, "a list of words"), ([1, 2], "each word"))
    for keywords, message in refused:
        with pytest.raises(TypeError, match=message):
            with_keywords(spec, keywords)
    # "letters" read as any letter: é is one, and was refused without a word of why.
    with pytest.raises(ValueError, match=r"ASCII letters a-z"):
        with_keywords(spec, ["héllo"])


def test_a_cosine_schedule_still_has_a_dry_run():
    spec = get_model_spec("tflite_micro_speech")
    cosine = dataclasses.replace(
        spec, train=dataclasses.replace(spec.train, learning_rate_schedule="cosine", cosine_hold_epochs=20)
    )
    assert dry_run_spec(cosine).train.cosine_hold_epochs == 2
