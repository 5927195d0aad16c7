"""`microspeech list` and its library: one card per registered model, and the budget filter.

Every registered model is converted from its untrained build once (a few seconds each) into a
module-private MICROSPEECH_HOME, so no trained model on this machine changes the numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.cli.app import console
from microspeech.evaluation.catalog import MEASURED_RESULTS, fit_budget, model_cards, parse_bytes
from microspeech.models import list_models
from microspeech.tflite.mvp import mvp_available

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tflite_models")]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MICROSPEECH_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def cards(home):
    return model_cards()


def test_parse_bytes():
    assert [parse_bytes(text) for text in ("16k", "64KiB", "1m", "9000", "2.5k")] == [
        16384,
        65536,
        1048576,
        9000,
        2560,
    ]
    with pytest.raises(ValueError, match="16k"):
        parse_bytes("lots")
    assert parse_bytes("9" * 24) == int("9" * 24)  # exact, not through a float
    with pytest.raises(ValueError, match="'0.5' is less than one byte"):  # was "positive, got 0"
        parse_bytes("0.5")
    with pytest.raises(ValueError, match="16384.5 bytes; give a whole number"):  # was 16384, silently
        parse_bytes("16384.5")


def test_fit_budget_takes_whole_bytes():
    from microspeech.checks import OptionError

    for value, message in (("16k", "max_ram '16k': expected an integer"), (0, "max_ram 0: out of range")):
        with pytest.raises(OptionError, match=message):  # "16k" was a TypeError from a comparison
            fit_budget([], max_ram=value)


def test_the_untrained_build_has_the_tensors_a_trained_model_has():
    """The converter drops an all-zero bias: list showed 7,416 B of arena for the seed model's
    untrained build against the 7,440 B of every trained one (no FULLY_CONNECTED bias tensor)."""
    from microspeech.evaluation.catalog import _untrained_tflite
    from microspeech.models import get_model_spec
    from microspeech.tflite.flatbuffer import builtin_op_names, read_model

    for name in list_models():
        spec = get_model_spec(name)
        model = read_model(_untrained_tflite(spec, spec.build_model()))
        graph, names = model.Subgraphs(0), builtin_op_names()
        for index in range(graph.OperatorsLength()):
            op = graph.Operators(index)
            code = model.OperatorCodes(op.OpcodeIndex())
            opcode = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            if opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                assert op.InputsLength() == 3 and op.Inputs(2) >= 0, (name, index, opcode)


def test_one_card_per_registered_model(cards, home):
    assert [card.name for card in cards] == list_models()
    for card in cards:
        assert card.source == "untrained build"
        assert card.parameters > 0 and card.macs > 0 and card.m33_ms > 0
        assert 0 < card.arena_32bit_bytes <= card.arena_bytes < card.tflite_bytes * 10
        if mvp_available():
            assert card.mvp_accelerator_cycles and card.mvp_ms and card.mvp_ms > 0
        measured = MEASURED_RESULTS.get(card.name)
        assert card.clip_accuracy == (measured.clip_accuracy if measured else None)
    # Cached: the second call reads the same numbers back.
    assert model_cards() == cards
    assert len(list((home / "cache" / "model_cards").glob("*.json"))) == len(cards)


def test_budget_filter(cards):
    largest_arena = max(card.arena_bytes for card in cards)
    largest_file = max(card.tflite_bytes for card in cards)
    fitting, closest = fit_budget(cards, max_ram=largest_arena, max_flash=largest_file)
    assert fitting == cards and closest is None
    for card in cards:
        fitting, _ = fit_budget(cards, max_ram=card.arena_bytes)
        assert card in fitting and all(other.arena_bytes <= card.arena_bytes for other in fitting)
        fitting, _ = fit_budget(cards, max_flash=card.tflite_bytes)
        assert card in fitting and all(other.tflite_bytes <= card.tflite_bytes for other in fitting)
    fitting, closest = fit_budget(cards, max_ram=1, max_flash=1)
    assert fitting == [] and closest is min(cards, key=lambda card: max(card.arena_bytes, card.tflite_bytes))
    with pytest.raises(ValueError, match="max_ram 0: out of range"):
        fit_budget(cards, max_ram=0)


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_cli_list(cards):
    result = _run("list")
    assert result.exit_code == 0, result.output
    for card in cards:
        assert card.name in result.output and f"{card.arena_bytes:,}" in result.output
        measured = MEASURED_RESULTS.get(card.name)
        if measured is not None:
            assert f"{measured.clip_accuracy * 100:.1f}%" in result.output
    largest = max(cards, key=lambda card: card.tflite_bytes)
    result = _run("list", "--max-ram", str(10**9), "--max-flash", f"{largest.tflite_bytes}")
    assert result.exit_code == 0 and all(card.name in result.output for card in cards), result.output
    result = _run("list", "--max-ram", "16", "--max-flash", "1k")
    assert result.exit_code == 0, result.output
    assert "No registered model fits arena <= 16 B, .tflite <= 1,024 B" in result.output
    assert "The closest" in result.output
    result = _run("list", "--max-ram", "lots")
    assert result.exit_code == 2 and "--max-ram" in result.output


@pytest.mark.parametrize("width", [80, 250])
def test_cli_list_shows_every_figure_whole_at_any_width(cards, monkeypatch, width):
    monkeypatch.setattr(console, "width", width)
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0 and "…" not in result.output, result.output
    for card in cards:
        figures = (card.name, f"{card.macs:,}", f"{card.arena_bytes:,} ({card.arena_32bit_bytes:,})")
        assert all(figure in result.output for figure in figures), result.output
    # A table when it fits, otherwise one block per model with each column's name.
    assert ("┃ model" in result.output) == (width == 250)
    assert ("  MACs: " in result.output) == (width == 80)


def test_cli_list_names_a_broken_spec_file_and_lists_the_rest(cards, home, model_registry, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("MICROSPEECH_HOME", str(home))  # the cached cards
    Path("models").mkdir()
    Path("models/half_written.py").write_text("from microspeech.models import register_model\n\ndef oops(:\n")
    result = _run("list")
    assert result.exit_code == 0, result.output
    assert all(card.name in result.output for card in cards)
    assert "Not listed, its spec file failed to load" in result.output
    assert "half_written.py, line 3" in result.output.replace("\n", "")


def test_cli_list_says_once_that_two_files_register_one_name(
    cards, home, model_registry, monkeypatch, tmp_path
):
    # The second file's error was printed twice, once as a spec that failed to load, once as one
    # that failed to convert.
    monkeypatch.setenv("MICROSPEECH_HOME", str(home))
    runner = CliRunner()
    assert runner.invoke(app, ["new-model", "twice"]).exit_code == 0
    extra = tmp_path / "extra"
    extra.mkdir()
    Path("models/twice.py").rename(extra / "twice.py")
    assert runner.invoke(app, ["new-model", "twice"]).exit_code == 0
    monkeypatch.setenv("MICROSPEECH_MODEL_PATH", str(extra))
    result = _run("list")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert said.count("model 'twice' is registered twice") == 1, said


def test_a_user_model_that_cannot_convert_hides_only_itself(cards, home, model_registry, monkeypatch):
    # `list` with an LSTM spec in ./models crashed the process (the converter's segfault); one
    # returning 3 scores for 4 classes, with GlobalAveragePooling2D (MEAN) or a typo in build() stopped
    # the table.
    monkeypatch.setenv("MICROSPEECH_HOME", str(home))  # the registered models' cards, cached above
    runner = CliRunner()
    edits = {
        "with_lstm": (
            "    x = keras.layers.Flatten()(x)\n",
            "    x = keras.layers.Reshape((25, 160))(x)\n    x = keras.layers.LSTM(8)(x)\n",
        ),
        "three_scores": ("keras.layers.Dense(len(spec.classes),", "keras.layers.Dense(3,"),
        "global_pool": ("keras.layers.Flatten()(x)", "keras.layers.GlobalAveragePooling2D()(x)"),
        "typo": ("keras.layers.Conv2D(8", "keras.layers.Conv2d(8"),  # an AttributeError in build()
    }
    for name, (old, new) in edits.items():
        assert runner.invoke(app, ["new-model", name, "--from", "tflite_micro_speech"]).exit_code == 0
        path = Path("models") / f"{name}.py"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
    result = _run("list")
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert [name for name in list_models() if name in listed] == [card.name for card in cards]
    text = " ".join(result.output.split())  # rich may wrap a long line anywhere
    said = "Not listed, its spec or trained .tflite does not load, build or convert for TFLM: "
    unlisted = text.split(said)[1:]
    assert len(unlisted) == 4, result.output
    assert any(re.match(r"with_lstm: layer 'lstm\w*' \(LSTM\): recurrent layers", line) for line in unlisted)
    assert any(
        line.startswith("model 'three_scores': build() returned a model whose output is (None, 3)")
        for line in unlisted
    )
    assert any(line.startswith("global_pool: ") and "MEAN (output 'global_pool" in line for line in unlisted)
    # A long path may be folded mid-word: compare without spaces.
    typo = re.compile(r"\S*models/typo\.py,line\d+:build\(\)ofmodel'typo'raisedAttributeError:.*Conv2d")
    assert any(typo.match(line.replace(" ", "")) for line in unlisted), unlisted


def test_list_names_a_cut_trained_model_reads_a_bad_cache_again_and_lists_in_a_read_only_home(
    cards, home, tmp_path, monkeypatch
):
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    monkeypatch.setenv("MICROSPEECH_HOME", str(copy))
    trained = copy / "models" / "two_conv" / "two_conv.tflite"
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"TFL3" * 10)  # a copy cut short
    for cache in (copy / "cache" / "model_cards").glob("ds_cnn-*.json"):
        cache.write_text("{}")  # from another version, or edited
    result = _run("list")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"two_conv:{trained}:notavalid.tflite" in text.replace(" ", "")  # a long path may fold
    assert "ds_cnn" in text and "tflite_micro_speech" in text
    remeasured = next((copy / "cache" / "model_cards").glob("ds_cnn-*.json"))
    assert json.loads(remeasured.read_text())["name"] == "ds_cnn"
    trained.unlink()

    def read_only_home(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("microspeech.files.write_text_atomic", read_only_home)  # measured, not cached
    result = _run("list", "--refresh")
    assert result.exit_code == 0, result.output
    assert all(card.name in result.output for card in cards)


def test_a_trained_models_row_counts_its_own_parameters_not_an_edited_specs(
    trained_test_model, tmp_path, model_registry, monkeypatch
):
    # After models/NAME.py went from 8 to 16 filters, the row put 16 filters' parameters beside the
    # trained 8-filter model's MACs, size and arena.
    import shutil

    from microspeech.evaluation.catalog import model_card
    from microspeech.models import resolve_model_spec
    from microspeech.tflite.summary import load_keras_file

    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path / "home"))
    trained = tmp_path / "home" / "models" / "widened_kws"
    trained.mkdir(parents=True)
    from microspeech.tflite.metadata import read_parameters, write_parameters

    shutil.copyfile(trained_test_model / "tflite_micro_speech-test.keras", trained / "widened_kws.keras")
    tflite_bytes = (trained_test_model / "tflite_micro_speech-test.tflite").read_bytes()
    named = write_parameters(tflite_bytes, {**read_parameters(tflite_bytes), "name": "widened_kws"})
    (trained / "widened_kws.tflite").write_bytes(named)  # as `train` names what it trains
    Path("models").mkdir()
    Path("models/widened_kws.py").write_text(
        "import dataclasses\n"
        "import keras\n"
        "from microspeech.models import get_model_spec, register_model\n\n"
        "def build(spec):\n"
        "    features = keras.Input(shape=(49, 40))\n"
        "    x = keras.layers.Reshape((49, 40, 1))(features)\n"
        "    x = keras.layers.Conv2D(16, (10, 8), strides=(2, 2), padding='same')(x)\n"
        "    x = keras.layers.Flatten()(x)\n"
        "    return keras.Model(features, keras.layers.Dense(4, activation='softmax')(x))\n\n"
        "@register_model('widened_kws')\n"
        "def widened_kws():\n"
        "    seed = get_model_spec('tflite_micro_speech')\n"
        "    return dataclasses.replace(seed, name='widened_kws', build=build)\n"
    )
    card = model_card("widened_kws", use_cache=False)
    assert card.source == "trained"
    assert card.parameters == load_keras_file(trained / "widened_kws.keras").count_params()
    assert card.parameters != resolve_model_spec("widened_kws").build_model().count_params()


def test_a_tflite_copied_into_a_models_folder_is_not_taken_for_that_model(
    mltk_tflite_path, tmp_path, monkeypatch
):
    # MLTK's model saved as models/two_conv/two_conv.tflite was listed as two_conv's: its size,
    # arena and cycles beside two_conv's name and measured accuracy.
    import shutil

    from microspeech.evaluation.catalog import model_card

    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "models" / "two_conv"
    folder.mkdir(parents=True)
    shutil.copyfile(mltk_tflite_path, folder / "two_conv.tflite")
    card = model_card("two_conv", use_cache=False)
    assert card.source == "untrained build"
    assert card.tflite_bytes != mltk_tflite_path.stat().st_size

