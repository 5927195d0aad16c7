"""Your own model end to end: `new-model`, `train ./file.py --test --keywords`, a spec file run
by itself (`python my_model.py --test`), and a keyword the dataset lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.models import resolve_model
from microspeech.paths import models_dir
from microspeech.tflite.metadata import read_parameters

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]
SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"


def test_new_model_writes_a_spec_file_whose_dry_run_trains(model_registry, subset_dir):
    runner = CliRunner()
    result = runner.invoke(app, ["new-model", "my_kws", "--from", "tflite_micro_speech"])
    assert result.exit_code == 0, result.output
    path = Path("models/my_kws.py")
    assert '@register_model("my_kws")' in path.read_text()
    again = runner.invoke(app, ["new-model", "my_kws", "--output", "other.py"])
    assert again.exit_code == 2 and "registered already" in again.output and "my_kws.py" in again.output

    command = ["train", f"./{path}", "--test", "--keywords", "on,off", "--dataset", str(subset_dir), "-q"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    folder = models_dir() / "my_kws-on-off-test"
    parameters = read_parameters(folder / "my_kws-on-off-test.tflite")
    assert parameters["name"] == "my_kws-on-off-test"
    assert parameters["classes"] == ["on", "off", "_unknown_", "_silence_"]
    # The trained folder by name (./models is on the search path), then by file before training it.
    assert resolve_model("my_kws-on-off-test").classes == ["on", "off", "_unknown_", "_silence_"]
    result = runner.invoke(app, ["summarize", str(path)])
    assert result.exit_code == 2 and "not trained yet" in result.output


def test_a_keyword_the_dataset_lacks_lists_its_words_with_counts(model_registry, subset_dir):
    result = CliRunner().invoke(
        app, ["train", "tflite_micro_speech", "--keywords", "on,abracadabra", "--dataset", str(subset_dir)]
    )
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "'abracadabra'" in output and "no training clips" in output
    assert "on (" in output and "yes (" in output and "sheila (" in output
    assert not (models_dir() / "tflite_micro_speech-on-abracadabra").exists()


def test_a_spec_file_runs_by_itself(model_registry, subset_dir, test_set_dir):
    result = CliRunner().invoke(app, ["new-model", "solo_model", "--keywords", "left,right"])
    assert result.exit_code == 0, result.output
    environment = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    command = [sys.executable, "models/solo_model.py", "--test", "--dataset", str(subset_dir)]
    command += ["--eval-dataset", str(test_set_dir), "--quiet", "--seed", "2"]
    run = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=540, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = models_dir() / "solo_model-test"
    assert read_parameters(folder / "solo_model-test.tflite")["classes"][:2] == ["left", "right"]
    assert (folder / "eval").is_dir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "--seed 2" in manifest["command"] and "--test" in manifest["command"]


PAIR_OF_MODELS = """
import dataclasses

from microspeech.models import get_model_spec, register_model
from microspeech.models.registry import main_for


@register_model("pair_a")
def pair_a():
    return dataclasses.replace(get_model_spec("tflite_micro_speech"), name="pair_a")


@register_model("pair_b")
def pair_b():
    return dataclasses.replace(get_model_spec("tflite_micro_speech"), name="pair_b")


if __name__ == "__main__":
    main_for(pair_b)
"""


def test_a_spec_file_of_two_models_runs_the_one_it_names(model_registry, subset_dir, test_set_dir, tmp_path):
    # `python pair.py` failed: main_for ran `train pair.py`, which asks which of its two models.
    script = tmp_path / "elsewhere" / "pair.py"
    script.parent.mkdir()
    script.write_text(PAIR_OF_MODELS)
    environment = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    command = [sys.executable, str(script), "--test", "--dataset", str(subset_dir), "--quiet"]
    command += ["--eval-dataset", str(test_set_dir)]
    run = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=540, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = models_dir() / "pair_b-test"
    assert read_parameters(folder / "pair_b-test.tflite")["name"] == "pair_b-test"
    assert (folder / "eval").is_dir() and not (models_dir() / "pair_a-test").exists()


def test_train_on_the_subset_and_a_synthesized_folder_together(model_registry, subset_dir, tmp_path):
    runner = CliRunner()
    synth = tmp_path / "synth"
    command = ["dataset", "synth", "--preset", "synthetic-tiny", "--words", "yes,lights on"]
    result = runner.invoke(app, [*command, "--output", str(synth), "--workers", "1"])
    assert result.exit_code == 0, result.output
    command = ["train", "tflite_micro_speech-test", "--dataset", str(subset_dir), "--dataset", str(synth)]
    result = runner.invoke(app, [*command, "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((models_dir() / "tflite_micro_speech-test" / "manifest.json").read_text())
    entry = manifest["dataset"]
    assert [part["root"] for part in entry["parts"]] == [str(subset_dir.resolve()), str(synth.resolve())]
    synth_part = entry["parts"][1]
    assert synth_part["clips_per_split"] == {"train": 6, "validation": 2, "test": 2}
    assert synth_part["noise_files"] == 3 and len(synth_part["fingerprint"]) == 64
    assert entry["clips"] == sum(part["clips"] for part in entry["parts"])
    assert manifest["command_line"].count("--dataset") == 2
    # evaluate's default dataset was the folder the parts share ("no usable audio clips found").
    result = runner.invoke(app, ["evaluate", str(models_dir() / "tflite_micro_speech-test")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "was trained on several datasets" in said and "pass --dataset" in said
