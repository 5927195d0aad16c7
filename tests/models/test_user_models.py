"""Spec files the user owns: the search path, loading by path, duplicate and broken files,
keyword variants, and the new-model template."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from microspeech.labels import SILENCE, UNKNOWN
from microspeech.models import (
    ModelFileError,
    ModelResolutionError,
    get_model_spec,
    list_models,
    resolve_model,
    resolve_model_spec,
    with_keywords,
)
from microspeech.models.registry import model_source
from microspeech.models.template import render_spec_file, write_spec_file


def spec_file(folder: Path, name: str, *, classes: tuple[str, ...] = ("on", "off"), body: str = "") -> Path:
    """A spec file registering `name`: the seed's architecture and recipe on `classes`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(
        "import dataclasses\n"
        "from microspeech.models import get_model_spec, register_model\n"
        f"{body}"
        f"@register_model({name!r})\n"
        f"def {name}():\n"
        f"    seed = get_model_spec('tflite_micro_speech')\n"
        f"    return dataclasses.replace(seed, name={name!r}, classes=[*{list(classes)!r}, '_unknown_'])\n"
    )
    return path


def test_spec_files_on_the_search_path_register_by_name(model_registry, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    from_env = [spec_file(first, "alpha_model"), spec_file(second, "beta_model")]
    from_cwd = spec_file(Path("models"), "gamma_model", classes=("up",))
    monkeypatch.setenv("MICROSPEECH_MODEL_PATH", os.pathsep.join([str(first), str(second)]))
    assert {"alpha_model", "beta_model", "gamma_model", "tflite_micro_speech"} <= set(list_models())
    assert get_model_spec("gamma_model").classes == ["up", UNKNOWN]
    assert model_source("alpha_model") == str(from_env[0].resolve())
    assert model_source("gamma_model") == str(from_cwd.resolve())
    dry = get_model_spec("beta_model-test")
    assert dry.name == "beta_model-test" and dry.train.epochs == 3


def test_a_spec_file_by_path_needs_no_search_path(model_registry, tmp_path):
    path = spec_file(tmp_path / "elsewhere", "delta_model")
    assert resolve_model_spec(str(path)).name == "delta_model"
    assert resolve_model_spec(str(path), dry_run=True).name == "delta_model-test"
    assert "delta_model" in list_models()


def test_a_missing_search_path_entry_is_named(model_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSPEECH_MODEL_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ModelFileError, match="MICROSPEECH_MODEL_PATH.*nowhere"):
        list_models()


def test_two_files_with_one_name_are_an_error_naming_both(model_registry, tmp_path, monkeypatch):
    first = spec_file(tmp_path / "a", "same_name")
    second = spec_file(tmp_path / "b", "same_name")
    monkeypatch.setenv("MICROSPEECH_MODEL_PATH", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert "same_name" in list_models()  # the first file's; the name is ambiguous when asked for
    with pytest.raises(ModelFileError) as caught:
        get_model_spec("same_name")
    message = str(caught.value)
    assert (
        "registered twice" in message and str(first.resolve()) in message and str(second.resolve()) in message
    )
    assert get_model_spec("tflite_micro_speech").name == "tflite_micro_speech"


def test_a_broken_file_on_the_search_path_hides_only_itself(model_registry, tmp_path):
    good = spec_file(Path("models"), "zeta_model")
    broken = Path("models") / "eta_model.py"
    broken.write_text("from microspeech.models import register_model\n\ndef oops(:\n")
    # Models in other files, packaged or the user's, still resolve.
    assert get_model_spec("tflite_micro_speech").name == "tflite_micro_speech"
    assert model_source("zeta_model") == str(good.resolve())
    assert set(model_registry.broken_spec_files()) == {broken.resolve()}
    # Asked for by its file's name, or a name found nowhere: the file's own error.
    with pytest.raises(ModelFileError, match=rf"{broken.resolve()}, line 3: .*SyntaxError"):
        get_model_spec("eta_model")
    with pytest.raises(ModelFileError, match=rf"unknown model 'theta_model'.*{broken.resolve()}, line 3"):
        get_model_spec("theta_model")
    # A trained model of another name still resolves from its manifest (it failed from the folder
    # holding the broken file, and worked from any other).
    import dataclasses

    from microspeech.models import ModelArtifacts

    recorded = dataclasses.replace(get_model_spec("tflite_micro_speech"), name="theta_model").to_dict()
    artifacts = ModelArtifacts(tmp_path / "trained", "theta_model")
    artifacts.directory.mkdir()
    artifacts.write_manifest({"name": "theta_model", "spec": recorded})
    assert artifacts.spec.name == "theta_model" and artifacts.spec.classes == recorded["classes"]
    broken.unlink()
    assert model_registry.broken_spec_files() == {}
    with pytest.raises(KeyError, match="unknown model 'theta_model'"):
        get_model_spec("theta_model")


def test_a_copy_of_a_packaged_spec_under_its_old_name_is_a_duplicate(model_registry, tmp_path):
    path = spec_file(tmp_path, "tflite_micro_speech")
    with pytest.raises(ModelFileError, match=r"registered twice: in .*tflite_micro_speech\.py and in"):
        resolve_model_spec(str(path))


def test_a_file_that_raises_names_the_file_and_line(model_registry, tmp_path):
    path = spec_file(tmp_path, "broken_model", body="x = 1\nraise RuntimeError('no microphone')\n")
    with pytest.raises(ModelFileError) as caught:
        resolve_model_spec(str(path))
    assert f"{path.resolve()}, line 4" in str(caught.value) and "RuntimeError: no microphone" in str(
        caught.value
    )
    syntax = tmp_path / "syntax_model.py"
    syntax.write_text("from microspeech.models import register_model\n\ndef oops(:\n")
    with pytest.raises(ModelFileError, match=rf"{syntax.resolve()}, line 3: .*SyntaxError"):
        resolve_model_spec(str(syntax))


def test_a_failed_file_leaves_no_model_behind(model_registry, tmp_path):
    path = tmp_path / "half.py"
    path.write_text(spec_file(tmp_path / "x", "half_model").read_text() + "raise ValueError('late')\n")
    with pytest.raises(ModelFileError, match="line 7"):
        resolve_model_spec(str(path))
    assert "half_model" not in list_models()


def test_a_file_that_registers_nothing_is_named(model_registry, tmp_path):
    path = tmp_path / "empty_model.py"
    path.write_text("NAME = 'nothing here'\n")
    with pytest.raises(ModelFileError, match=rf"{path.resolve()}: registers no model.*@register_model"):
        resolve_model_spec(str(path))
    with pytest.raises(ModelFileError, match="no such model spec file"):
        resolve_model_spec(str(tmp_path / "absent.py"))


def test_a_spec_function_that_raises_names_its_file_and_line(model_registry, tmp_path):
    path = tmp_path / "bad_factory.py"
    path.write_text(
        "from microspeech.models import register_model\n\n"
        "@register_model('bad_factory')\n"
        "def bad_factory():\n"
        "    return 1 / 0\n"
    )
    with pytest.raises(
        ModelFileError, match=rf"{path.resolve()}, line 5: .*'bad_factory'.*ZeroDivisionError"
    ):
        resolve_model_spec(str(path))


def test_a_spec_file_resolves_to_its_trained_folder(model_registry, tmp_path):
    path = spec_file(tmp_path, "epsilon_model")
    with pytest.raises(ModelResolutionError, match=r"'epsilon_model' .* not trained yet.*microspeech train"):
        resolve_model(str(path))


def test_a_spec_file_is_not_taken_for_another_files_model_of_its_name(model_registry, tmp_path):
    # Two projects' models/kws.py share models_dir()/kws: the up/down model was used for the
    # on/off file without a word.
    import json

    from microspeech.paths import models_dir

    ours = spec_file(tmp_path / "ours", "kappa_model", classes=("on", "off"))
    trained = models_dir() / "kappa_model"
    trained.mkdir(parents=True)
    theirs = {**json.loads(json.dumps(resolve_model_spec(str(ours)).to_dict(), default=str))}
    theirs["classes"] = ["up", "down", "_unknown_"]
    (trained / "manifest.json").write_text(json.dumps({"name": "kappa_model", "spec": theirs}))
    (trained / "kappa_model.tflite").write_bytes(b"")
    said = r"holds model 'kappa_model' trained from another spec than .*up', 'down'.*'on', 'off'"
    with pytest.raises(ModelResolutionError, match=said):
        resolve_model(str(ours))


def test_a_spec_file_whose_function_fails_now_still_names_its_trained_model(model_registry, tmp_path):
    # The comparison with the trained model's spec raised ModelFileError: a traceback in evaluate
    # and view, where a trained model with a manifest was usable before.
    import json

    from microspeech.paths import models_dir

    seed = get_model_spec("tflite_micro_speech")
    recorded = {**json.loads(json.dumps(seed.to_dict(), default=str)), "name": "lambda_model"}
    trained = models_dir() / "lambda_model"
    trained.mkdir(parents=True)
    (trained / "manifest.json").write_text(json.dumps({"name": "lambda_model", "spec": recorded}))
    (trained / "lambda_model.tflite").write_bytes(b"")
    broken = tmp_path / "broken" / "lambda_model.py"
    broken.parent.mkdir()
    broken.write_text(
        "from microspeech.models import register_model\n\n"
        "@register_model('lambda_model')\n"
        "def lambda_model():\n"
        "    return 1 / 0\n"
    )
    with pytest.raises(ModelResolutionError) as refused:
        resolve_model(str(broken))
    assert "lambda_model.tflite" in str(refused.value)  # the empty file, named: resolution got that far


def test_keywords_swap_the_words_and_keep_unknown_and_silence():
    seed = get_model_spec("tflite_micro_speech")
    spec = with_keywords(seed, ["on", " off"])
    assert spec.name == "tflite_micro_speech-on-off"
    assert spec.classes == ["on", "off", UNKNOWN, SILENCE]
    assert spec.parameters()["classes"] == spec.classes and spec.build is seed.build
    assert (
        resolve_model_spec("tflite_micro_speech-test", keywords=["on"]).name == "tflite_micro_speech-on-test"
    )
    for bad in (["on", "on"], [UNKNOWN], ["two words"], []):
        with pytest.raises(ValueError, match="keywords"):
            with_keywords(seed, bad)


@pytest.mark.parametrize("source", list_models())
def test_the_template_writes_the_recipe_out_as_a_spec_file(model_registry, source):
    spec = with_keywords(get_model_spec(source), ["on", "off"])
    path = write_spec_file(spec, "my_copy", Path("models") / "my_copy.py", source=source)
    text = path.read_text()
    assert "def build(spec: ModelSpec)" in text and "main_for(my_copy)" in text
    assert "# Clip counts relative to the mean keyword count" in text  # the settings' own comments
    written = get_model_spec("my_copy")  # ./models is on the search path
    assert model_source("my_copy") == str(path.resolve())
    expected = {**spec.to_dict(), "name": "my_copy", "description": written.description}
    assert written.to_dict() == expected
    assert written.build_model().count_params() == spec.build_model().count_params()
    with pytest.raises(FileExistsError, match="exists already"):
        write_spec_file(spec, "other", path, source=source)
    with pytest.raises(ValueError, match="model name 'my-copy'"):
        render_spec_file(spec, "my-copy", source=source)


def test_the_template_refuses_keywords_as_names_and_builders_it_cannot_copy(model_registry, tmp_path):
    spec = get_model_spec("tflite_micro_speech")
    with pytest.raises(ValueError, match="model name 'class'"):
        render_spec_file(spec, "class", source="tflite_micro_speech")
    path = tmp_path / "helper_model.py"
    path.write_text(
        "import dataclasses\n"
        "from microspeech.models import get_model_spec, register_model\n\n"
        "def layers(spec):\n"
        "    return get_model_spec('tflite_micro_speech').build(spec)\n\n"
        "def build(spec):\n"
        "    return layers(spec)\n\n"
        "@register_model('helper_model')\n"
        "def helper_model():\n"
        "    seed = get_model_spec('tflite_micro_speech')\n"
        "    return dataclasses.replace(seed, name='helper_model', build=build)\n"
    )
    # Named by its file: the module of a loaded spec file has an internal name.
    said = rf"{path.name}, line 7: build\(\) uses layers from its file.*copy that"
    with pytest.raises(ValueError, match=said):
        render_spec_file(resolve_model_spec(str(path)), "copied", source=str(path))


@pytest.mark.parametrize(
    "name, message",
    [
        ("len", "uses the name 'len'"),  # a builtin the builder calls
        ("build", "uses the name 'build'"),
        ("ModelSpec", "uses the name 'ModelSpec'"),  # an import of the file
        ("class", "'class' is a Python keyword"),
        ("c" * 101, "101 characters; at most 100"),  # NAME-test/NAME-test.keras: too long a file name
    ],
)
def test_new_model_refuses_a_name_its_file_cannot_use(model_registry, tmp_path, name, message):
    # `new-model len` wrote a file whose dry run failed: "len() takes 0 positional arguments".
    from typer.testing import CliRunner

    from microspeech.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["new-model", name, "--output", str(out / "spec.py")])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not out.exists()
    assert render_spec_file(get_model_spec("tflite_micro_speech"), "my_len", source="x")  # a free name works


def test_new_model_refuses_empty_keywords_a_dry_run_source_and_names_a_blocked_output(
    model_registry, tmp_path
):
    from typer.testing import CliRunner

    from microspeech.cli import app

    runner = CliRunner()

    def said(*args: str) -> str:
        result = runner.invoke(app, ["new-model", *args])
        assert result.exit_code == 2, result.output
        return " ".join(result.output.split())

    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    # "" was taken as no --keywords at all (the yes/no spec, silently).
    assert "keywords ''" in said("kw1", "--keywords", "", "--output", str(tmp_path / "a.py"))
    # The dry run's 3 epochs and 12 clips a class would have become the new model's recipe.
    assert "dry run's recipe; start from tflite_micro_speech" in said(
        "kw2", "--from", "tflite_micro_speech-test", "--output", str(tmp_path / "b.py")
    )
    (tmp_path / "afile").write_text("x")
    assert "--output" in said("kw3", "--output", str(tmp_path / "afile" / "c.py")) and "in the way" in said(
        "kw3", "--output", str(tmp_path / "afile" / "c.py")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_new_model_refuses_an_output_without_py(model_registry, tmp_path):
    # `new-model x -o noext` wrote the spec and suggested `train noext --test`, which looked for a
    # registered model named noext.
    from typer.testing import CliRunner

    from microspeech.cli import app

    result = CliRunner().invoke(app, ["new-model", "other5", "--output", str(tmp_path / "noext")])
    assert result.exit_code == 2 and "ends in .py" in " ".join(result.output.split())
    assert not (tmp_path / "noext").exists()


def test_a_spec_file_names_where_it_was_written(model_registry, tmp_path):
    # It said `python models/NAME.py` wherever -o put it; a quote in the path broke its docstring.
    import ast

    from typer.testing import CliRunner

    from microspeech.cli import app

    folder = tmp_path / "my specs"
    runs = {"plain": folder / "plain.py", "quoted": folder / 'a"b.py'}
    for name, path in runs.items():
        result = CliRunner().invoke(app, ["new-model", name, "--output", str(path)])
        assert result.exit_code == 0, result.output
        text = path.read_text()
        ast.parse(text)
    plain = runs["plain"].read_text()
    assert f"python '{folder}/plain.py' --test" in plain and "python models/" not in plain
    assert "python THIS_FILE.py --test" in runs["quoted"].read_text()
    printed = "".join(result.output.split())  # a long path may be folded anywhere
    assert "microspeechtrain" + shlex.quote(str(runs["quoted"])).replace(" ", "") in printed


def test_build_model_checks_what_build_returned():
    import dataclasses

    import keras

    seed = get_model_spec("tflite_micro_speech")

    def narrow(spec):  # one channel short of the frontend's 40
        features = keras.Input(shape=(49, 39))
        return keras.Model(features, keras.layers.Dense(4)(keras.layers.Flatten()(features)))

    with pytest.raises(ValueError, match=r"input is \(None, 49, 39\); the frontend gives \(None, 49, 40\)"):
        dataclasses.replace(seed, build=narrow).build_model()

    def raises(spec):
        return keras.layers.Conv2d(8)

    with pytest.raises(ValueError, match=r"test_user_models.py, line \d+: build\(\) of model .* Attribute"):
        dataclasses.replace(seed, build=raises).build_model()

    def logits(spec):  # trained to a loss of 0 while learning nothing
        features = keras.Input(shape=(49, 40))
        return keras.Model(features, keras.layers.Dense(4, name="scores")(keras.layers.Flatten()(features)))

    with pytest.raises(ValueError, match=r"last layer \(scores\) ends in linear, not a softmax"):
        dataclasses.replace(seed, build=logits).build_model()

    def tensorflow_softmax_then_flatten(spec):  # softmax_v2, and a Flatten after it: still a softmax
        import tensorflow as tf

        features = keras.Input(shape=(49, 40))
        scores = keras.layers.Dense(4, activation=tf.nn.softmax)(keras.layers.Flatten()(features))
        return keras.Model(features, keras.layers.Flatten()(scores))

    assert dataclasses.replace(seed, build=tensorflow_softmax_then_flatten).build_model() is not None

    def nested_head(spec):
        features = keras.Input(shape=(49, 40))
        head = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(4, activation="softmax")])
        return keras.Model(features, head(keras.layers.Flatten()(features)))

    assert dataclasses.replace(seed, build=nested_head).build_model() is not None

    def softmax_layer(spec):
        features = keras.Input(shape=(49, 40))
        scores = keras.layers.Dense(4)(keras.layers.Flatten()(features))
        return keras.Model(features, keras.layers.Softmax()(scores))

    assert dataclasses.replace(seed, build=softmax_layer).build_model() is not None


def test_a_folder_of_several_models_without_a_manifest_is_ambiguous(tmp_path):
    # The first .tflite by name was taken, silently: evaluate scored a.tflite of a folder of two.
    from microspeech.models import ModelResolutionError, resolve_model

    for name in ("b.tflite", "a.tflite"):
        (tmp_path / name).write_bytes(b"not read")
    with pytest.raises(ModelResolutionError, match=r"holds 2 models \(a.tflite, b.tflite\) and no manifest"):
        resolve_model(tmp_path)


def test_an_empty_argument_or_a_fifo_is_no_model(tmp_path):
    # "" was the current folder ("./: no manifest.json ..."); a FIFO was "no such model file".
    from microspeech.models import ModelResolutionError, resolve_model

    with pytest.raises(ModelResolutionError, match="an empty MODEL argument"):
        resolve_model(" ")
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    with pytest.raises(ModelResolutionError, match="model.tflite: not a regular file or folder"):
        resolve_model(fifo)


@pytest.mark.parametrize(
    "settings, message",
    [
        # Each trained (or crashed late) before: a dry run overrode some, the rest reached Keras.
        ({"batch_size": 1.5}, "train batch_size=1.5: expected an int"),
        ({"epochs": 2.5}, "train epochs=2.5: expected an int"),
        ({"learning_rate": float("nan")}, "train learning_rate=nan: expected a finite number"),
        ({"learning_rate": -0.001}, "train learning_rate=-0.001: must be above 0"),
        ({"weight_averaging": 1.0}, r"train weight_averaging=1.0: must be in \[0, 1\)"),
        ({"max_fa_per_hour": float("inf")}, "train max_fa_per_hour=inf: expected a finite number"),
        ({"stream_validation_minutes": 1e9}, "train stream_validation_minutes=1000000000.0: must be"),
        ({"stream_snr_db": "10"}, "train stream_snr_db='10': expected a tuple of numbers"),
        ({"stream_snr_db": (float("nan"),)}, "train stream_snr_db=.*expected a tuple of numbers"),
        ({"unknown_ratio": -1.0}, "train unknown_ratio=-1.0: must be 0.0 to 1000.0"),
        ({"max_clips_per_class": -1}, "train max_clips_per_class=-1: must be >= 1 or None"),
        ({"balanced_class_weights": "maybe"}, "train balanced_class_weights='maybe': expected True or False"),
    ],
)
def test_train_settings_are_checked_when_the_spec_is_written(settings, message):
    from microspeech.models import TrainSettings

    with pytest.raises(ValueError, match=message):
        TrainSettings(**settings)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"trim_threshold_db": -20.0}, "augmentation trim_threshold_db=-20.0: must be above 0"),  # IndexError
        (
            {"snr_db_range": (float("nan"), 30.0)},
            "augmentation snr_db_range=.*finite numbers",
        ),  # skipped noise
        ({"silence_gain_range": (0.0, 1.0)}, "silence_gain_range=.*must be above 0"),  # log(0): NaN gains
        ({"noise_factor_range": (-1.0, 0.3)}, "noise_factor_range=.*must be >= 0"),
        ({"loudness_range": (0.5, float("inf"))}, "loudness_range=.*finite numbers"),
    ],
)
def test_augmentation_settings_are_checked_when_the_spec_is_written(settings, message):
    from microspeech.data.settings import AugmentationSettings

    with pytest.raises(ValueError, match=message):
        AugmentationSettings(**settings)


def test_a_spec_is_checked_as_a_whole():
    import dataclasses

    from microspeech.data.settings import AugmentationSettings
    from microspeech.detection.params import DetectionParams

    seed = get_model_spec("tflite_micro_speech")
    for changes, message in (
        ({"classes": [UNKNOWN, SILENCE]}, "name no keyword to spot"),
        ({"augmentation": AugmentationSettings(time_mask_max_frames=1000)}, "the features have 49 frames"),
        # Said by the data pipeline after every clip was decoded, before.
        (
            {"augmentation": AugmentationSettings(warm_up_ms=2010)},
            r"warm_up_ms=2010 must be a multiple of the frontend step \(20 ms\)",
        ),
        (
            {
                "frontend": dataclasses.replace(
                    seed.frontend, sample_rate_hz=8000, filterbank_upper_band_limit=3800.0
                )
            },
            "fe.sample_rate_hz=8000; only 16000 Hz",
        ),
    ):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(seed, **changes)
    # Written into the .tflite when the calibration keeps the spec's, it detected nothing: refused
    # for training, while a trained model's stored spec with it stays readable.
    few = dataclasses.replace(seed, detection=DetectionParams(minimum_count=50))
    with pytest.raises(ValueError, match=r"minimum_count=50, but a 1000 ms window holds at most 11 results"):
        few.check_trainable()
    assert type(few).from_dict(few.to_dict(), build=seed.build).detection.minimum_count == 50
    # A gain the part cannot apply (it multiplies by an int: 1.5 acts as 1) is refused for training.
    halfway = dataclasses.replace(seed, detection=DetectionParams(volume_gain=1.5))
    with pytest.raises(ValueError, match=r"volume_gain=1.5; the firmware multiplies the samples by a whole"):
        halfway.check_trainable()
    # Detection parameters are refused where they are made, with the ranges classify_audio's options take.
    for changes, message in (
        ({"minimum_count": 100}, r"minimum_count=100 is out of range \(expected 0 to 50\)"),
        ({"latency_ms": 1_000_000}, r"latency_ms=1000000 is out of range \(expected 1 to 10000\)"),
    ):
        with pytest.raises(ValueError, match=message):
            DetectionParams(**changes)
    # What converts without loss is taken: a flag as a word, an int written as a float.
    from microspeech.models import TrainSettings

    settings = TrainSettings(batch_size=16.0, stream_clean_segment="no", learning_rate="0.001")
    assert (settings.batch_size, settings.stream_clean_segment, settings.learning_rate) == (16, False, 0.001)


def test_a_keras_file_of_your_own_is_read_whatever_lies_beside_it(tmp_path):
    # summarize plain.keras failed on a broken plain.tflite beside it that it never needs, and
    # without a .tflite the advice was `microspeech train plain`, a name nobody registered.
    import keras
    from typer.testing import CliRunner

    from microspeech.cli import app

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "plain.keras")
    (tmp_path / "plain.tflite").write_text("junk")
    result = CliRunner().invoke(app, ["summarize", str(tmp_path / "plain.keras")])
    assert result.exit_code == 0 and "Total MACs" in result.output, result.output
    result = CliRunner().invoke(app, ["params", str(tmp_path / "plain.keras")])
    assert result.exit_code == 2 and "plain.tflite: not a .tflite flatbuffer" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "plain.keras")])  # its classes were there
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "its .tflite could not be read" in said, said
    (tmp_path / "plain.tflite").unlink()
    result = CliRunner().invoke(app, ["params", str(tmp_path / "plain.keras")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "writes one beside the .keras" in said and "train plain" not in said
