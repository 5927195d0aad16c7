"""The synthetic dataset: real eSpeak NG speech, deterministic, split by voice, published atomically."""

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest

from microspeech.data import load_dataset
from microspeech.data.archive import COMPLETE_MARKER
from microspeech.data.speech_commands import COMMAND_WORDS, WORDS
from microspeech.data.synthetic import SyntheticConfig, generate_synthetic, load_synthetic
from microspeech.data.synthetic.generate import BATCH_CLIPS, plan
from microspeech.data.synthetic.render import colored_noise

pytestmark = pytest.mark.xdist_group("synthetic")

SMALL = SyntheticConfig(
    train_per_word=14, validation_per_word=2, test_per_word=2, command_factor=1, noise_seconds=2.0,
    words=("yes", "no", "marvin"), validation_voices=2, test_voices=3, speakers_per_voice=1,
)  # fmt: skip


def _digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "synthetic.json")
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return generate_synthetic(SMALL, root=tmp_path_factory.mktemp("syn") / "small", show_progress=False).root


def test_plan_splits_by_voice_and_covers_all_words():
    recipe = plan(SyntheticConfig())
    voices = {split: set(names) for split, names in recipe.voices.items()}
    assert not voices["train"] & voices["test"] and not voices["train"] & voices["validation"]
    assert not voices["validation"] & voices["test"]
    assert len(voices["test"]) == 12 and len(voices["validation"]) == 8 and len(voices["train"]) >= 60
    for spec in recipe.clips:
        assert spec.speaker.voice in voices[recipe.split_of[spec.relative_path]]
    assert {spec.word for spec in recipe.clips} == set(WORDS) and len(WORDS) == 35
    per_word = {word: sum(spec.word == word for spec in recipe.clips) for word in ("yes", "bed")}
    assert per_word == {"yes": 2 * 104, "bed": 104}  # commands get command_factor x (80 + 12 + 12)
    assert len({spec.relative_path for spec in recipe.clips}) == len(recipe.clips)
    assert set(COMMAND_WORDS) < set(WORDS)


def test_generated_clips_are_one_second_of_unclipped_speech(small_root):
    dataset = load_synthetic_root(small_root)
    assert dataset.words == ["marvin", "no", "yes"]
    assert {split: len(dataset.split(split)) for split in ("train", "validation", "test")} == {
        "train": 42, "validation": 6, "test": 6,
    }  # fmt: skip
    assert not dataset.issues
    for clip in dataset.clips:
        audio = dataset.read(clip)
        assert audio.dtype == np.int16 and audio.shape == (16000,)
        peak = np.abs(audio.astype(np.int32)).max()
        assert 1500 < peak < 32440, clip.path  # between -24 and -3 dBFS target, never clipped
        # Speech is much louder than the faint noise floor around it: a real word is in there.
        frames = audio.astype(np.float64)[: 16000 // 160 * 160].reshape(-1, 160)
        energy = np.sort((frames**2).mean(axis=1))
        assert energy[-5:].mean() > 1000 * max(energy[:20].mean(), 1e-3), clip.path
    manifest = json.loads((small_root / "synthetic.json").read_text())
    train_voices = {s.split(".")[2] for s in manifest["speakers"]["train"]}
    test_voices = {s.split(".")[2] for s in manifest["speakers"]["test"]}
    assert not train_voices & test_voices
    assert {clip.speaker_id.split(".")[2] for clip in dataset.split("test")} <= test_voices


def test_background_noise_is_white_pink_brown(small_root):
    dataset = load_synthetic_root(small_root)
    names = sorted(path.name for path in dataset.noise_paths)
    assert names == ["brown_noise.wav", "pink_noise.wav", "white_noise.wav"]
    for path in dataset.noise_paths:
        noise = dataset.read_noise(path)
        assert noise.shape == (32000,) and np.any(noise)
    # Spectral slopes: white is flat, pink falls ~3 dB/octave, brown ~6 dB/octave.
    rng = np.random.default_rng(0)
    for color, slope in (("white", 0.0), ("pink", -3.0), ("brown", -6.0)):
        power = np.abs(np.fft.rfft(colored_noise(color, 1 << 16, rng))) ** 2
        bin_of = (1 << 16) / 16000
        bands = [power[int(f * bin_of) : int(2 * f * bin_of)].mean() for f in (250, 500, 1000, 2000)]
        measured = np.mean(np.diff(10 * np.log10(bands)))
        assert abs(measured - slope) < 1.0, color


def test_deterministic_across_worker_counts_and_resumes_cleanly(small_root, tmp_path):
    reference = _digest(small_root)
    # An interrupted run: one finished batch, plus a half-written file, in the work folder.
    target = tmp_path / "resumed"
    partial = tmp_path / "resumed.partial"
    first_batch = [spec.relative_path for spec in plan(SMALL).clips[:BATCH_CLIPS]]
    for relative in first_batch:
        (partial / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(small_root / relative, partial / relative)
    (partial / "yes" / "broken.wav.partial").write_bytes(b"RIFF")
    assert not target.exists()  # nothing that looks like a dataset yet
    generation = generate_synthetic(SMALL, root=target, workers=1, show_progress=False)
    assert generation.clips_rendered == len(plan(SMALL).clips) - len(first_batch)
    assert not partial.exists() and (target / COMPLETE_MARKER).exists()
    assert _digest(target) == reference  # same bytes with 1 worker as with 2, resumed or not
    again = generate_synthetic(SMALL, root=target, show_progress=False)
    assert again.clips_rendered == 0  # cached


def test_load_dataset_synthetic_tiny_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    dataset = load_dataset("synthetic-tiny")
    assert len(dataset.words) == 35 and len(dataset.clips) == 35 * 5
    assert dataset.root.parent == tmp_path / "datasets" and dataset.root.name.startswith("synthetic-")
    assert not dataset.speakers("train") & dataset.speakers("test")
    assert load_synthetic("synthetic-tiny").root == dataset.root


def test_config_validation_and_round_trip():
    assert SyntheticConfig.from_dict(SMALL.to_dict()) == SMALL
    assert SMALL.fingerprint() != SyntheticConfig().fingerprint()
    with pytest.raises(ValueError, match="test_voices"):
        SyntheticConfig(test_voices=-1)
    with pytest.raises(ValueError, match="unknown SyntheticConfig keys"):
        SyntheticConfig.from_dict({"clips": 3})
    with pytest.raises(ValueError, match="synthetic-tiny"):
        load_synthetic("synthetic-huge")


def load_synthetic_root(root):
    from microspeech.data.folder import index_folder

    return index_folder(root, layout="speech_commands")


def test_synth_words_cli_speaks_phrases_into_a_folder_dataset(tmp_path):
    from typer.testing import CliRunner

    from microspeech.cli import app

    output = tmp_path / "words"
    command = ["dataset", "synth", "--preset", "synthetic-tiny", "--words", "marvin, Lights  on", "--output"]
    result = CliRunner().invoke(app, [*command, str(output), "--workers", "1"])
    assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in output.iterdir() if p.is_dir())
    assert folders == ["_background_noise_", "lights_on", "marvin"]
    dataset = load_dataset(output)
    assert dataset.words == ["lights_on", "marvin"] and not dataset.issues
    assert {split: len(dataset.split(split)) for split in ("train", "validation", "test")} == {
        "train": 6, "validation": 2, "test": 2,
    }  # fmt: skip
    assert not dataset.speakers("train") & (dataset.speakers("validation") | dataset.speakers("test"))
    assert "lights_on/" in (output / "testing_list.txt").read_text()
    assert json.loads((output / "synthetic.json").read_text())["config"]["words"] == ["marvin", "lights on"]
    again = CliRunner().invoke(app, [*command, str(output)])
    assert again.exit_code == 0 and "cached" in again.output
    other = CliRunner().invoke(app, ["dataset", "synth", "--words", "sheila", "--output", str(output)])
    assert other.exit_code == 2 and "other options" in other.output


@pytest.mark.parametrize(
    ("words", "message"),
    [("yes,,no", "empty word"), ("yes,YES", "given twice"), ("turn the lights on now", "too long"),
     ("on!", "only the letters a-z"), (" ", "empty word")],
)  # fmt: skip
def test_synth_refuses_bad_words_naming_the_option(words, message, tmp_path):
    from typer.testing import CliRunner

    from microspeech.cli import app

    result = CliRunner().invoke(app, ["dataset", "synth", "--words", words, "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--words" in result.output and message in result.output
    assert not (tmp_path / "x").exists()


def test_an_interrupted_run_of_another_recipe_is_not_resumed(small_root, tmp_path):
    from microspeech.data.synthetic.generate import PARTIAL_RECIPE

    # A run for other words (or options) was interrupted into the same folder: its clips must not
    # end up in this dataset.
    target = tmp_path / "words"
    partial = tmp_path / "words.partial"
    (partial / "sheila").mkdir(parents=True)
    (partial / "sheila" / "stale.wav").write_bytes(b"RIFF")
    (partial / PARTIAL_RECIPE).write_text("another-recipe\n")
    generate_synthetic(SMALL, root=target, workers=1, show_progress=False)
    assert not (target / "sheila").exists() and not (target / PARTIAL_RECIPE).exists()
    assert _digest(target) == _digest(small_root)


def test_a_finished_dataset_of_other_options_is_not_returned_as_this_ones(small_root):
    # A second run with other words, waiting for the first into the same folder, returned the
    # first run's dataset as its own (exit 0, no clip of its words made).
    from microspeech.data.synthetic import SynthesisError

    assert generate_synthetic(SMALL, root=small_root, show_progress=False).clips_rendered == 0
    other = dataclasses.replace(SMALL, words=("zulu",))
    with pytest.raises(SynthesisError, match=r"small holds a synthetic dataset made with other options"):
        generate_synthetic(other, root=small_root, show_progress=False)


def test_importing_the_data_package_leaves_scipy_unloaded():
    # scipy.signal serves only the synthetic channel effects; loaded with microspeech.data it cost
    # every CLI command 0.7 s of start-up.
    import subprocess
    import sys

    code = "import sys, microspeech.data; print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_a_script_without_a_main_guard_fails_with_the_reason_instead_of_hanging(tmp_path):
    # Generating at import: the forkserver imports the script again, which waited forever for the
    # lock its caller held.
    import os
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text("from microspeech import load_dataset\nload_dataset('synthetic-tiny')\n")
    environment = {**os.environ, "MICROSPEECH_HOME": str(tmp_path / "home")}
    command = [sys.executable, str(script)]
    run = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode != 0
    assert 'no `if __name__ == "__main__":` guard' in run.stderr
