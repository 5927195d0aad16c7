"""Optional synthesizers (flite, pico2wave): found on PATH, given a whole test split, run per clip.

Neither program is installed on the build machines, so these tests put small stand-in
programs with the same command lines on PATH; the real ones are used the same way.
"""

import sys
import textwrap
import threading

import numpy as np
import pytest

from microspeech.data.folder import index_folder
from microspeech.data.synthetic import SynthesisError, SyntheticConfig, generate_synthetic
from microspeech.data.synthetic.engines import optional_engines
from microspeech.data.synthetic.generate import plan

pytestmark = pytest.mark.xdist_group("synthetic")

# Writes a vowel-like harmonic tone whose length follows the text and duration_stretch.
FAKE_FLITE = f"""#!{sys.executable}
import sys
import numpy as np
import soundfile as sf
args = sys.argv[1:]
if args == ["-lv"]:
    print("Voices available: kal awb_time kal16 awb rms slt")
    sys.exit(0)
options = dict(zip(args[::2], args[1::2]))
settings = dict(value.split("=") for key, value in zip(args[::2], args[1::2]) if key == "--setf")
if options["-t"] == "silence":
    sf.write(options["-o"], np.zeros(1600, np.int16), 16000)
    sys.exit(0)
seconds = 0.08 * len(options["-t"]) * float(settings["duration_stretch"])
t = np.arange(int(seconds * 16000)) / 16000
f0 = float(settings["int_f0_target_mean"])
tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * np.hanning(t.size)
sf.write(options["-o"], (0.3 * tone * 32767).astype(np.int16), 16000)
"""
FAKE_PICO = f"""#!{sys.executable}
import sys
import numpy as np
import soundfile as sf
t = np.arange(8000) / 16000
sf.write(sys.argv[4], (0.2 * np.sin(2 * np.pi * 150 * t) * 32767).astype(np.int16), 16000)
"""


@pytest.fixture()
def fake_engines(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("flite", FAKE_FLITE), ("pico2wave", FAKE_PICO)):
        (bin_dir / name).write_text(textwrap.dedent(source))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def test_engines_are_found_only_when_installed(fake_engines, monkeypatch):
    engines = optional_engines()
    assert engines["flite"].voices == ("awb", "kal16", "rms", "slt")
    assert engines["pico2wave"].voices == ("en-GB", "en-US")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert optional_engines() == {}


def test_first_optional_engine_is_a_whole_test_split(fake_engines):
    config = SyntheticConfig(test_voices=6)
    recipe = plan(config)
    assert {f"flite:{v}" for v in ("awb", "kal16", "rms", "slt")} <= set(recipe.voices["test"])
    assert len(recipe.voices["test"]) == 6
    elsewhere = recipe.voices["train"] + recipe.voices["validation"]
    assert not any(voice.startswith("flite:") for voice in elsewhere)
    assert any(voice.startswith("pico2wave:") for split in recipe.voices.values() for voice in split)
    assert config.fingerprint() != SyntheticConfig(test_voices=6, optional_engines=False).fingerprint()
    assert all(v.startswith("espeak:") for split in plan(config, {}).voices.values() for v in split)


def test_generation_runs_the_programs_and_rejects_empty_speech(fake_engines, tmp_path, monkeypatch):
    config = SyntheticConfig(
        train_per_word=2, validation_per_word=1, test_per_word=4, command_factor=1, words=("yes", "marvin"),
        validation_voices=1, test_voices=4, speakers_per_voice=1, noise_seconds=1.0,
    )  # fmt: skip
    root = generate_synthetic(config, root=tmp_path / "with-engines", workers=1, show_progress=False).root
    dataset = index_folder(root, layout="speech_commands")
    flite_clips = [clip for clip in dataset.clips if clip.speaker_id.startswith("flite.")]
    assert flite_clips and {clip.split for clip in flite_clips} == {"test"}
    for clip in flite_clips:
        audio = dataset.read(clip)
        assert audio.shape == (16000,) and np.abs(audio.astype(np.int32)).max() > 1000
    silent = SyntheticConfig(**{**config.to_dict(), "words": ("silence",)})
    thread_errors, threads_before = [], set(threading.enumerate())
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    with pytest.raises(SynthesisError, match="produced no speech for 'silence'"):
        generate_synthetic(silent, root=tmp_path / "silent", workers=1, show_progress=False)
    assert not (tmp_path / "silent").exists()
    # The failed pool is shut down before the error surfaces: no thread of it left to fail later.
    assert not set(threading.enumerate()) - threads_before and not thread_errors


def test_a_long_espeak_data_path_is_reached_through_a_short_link(tmp_path, monkeypatch):
    """eSpeak NG keeps its data path in a 160-byte buffer: a venv deep in a long folder must still work."""
    from microspeech.data.synthetic import espeak

    real = espeak.data_path()
    deep = tmp_path.joinpath(*["a_long_folder_name_for_the_virtual_environment"] * 4)
    deep.mkdir(parents=True)
    (deep / "espeak-ng-data").symlink_to(real, target_is_directory=True)
    monkeypatch.setattr(espeak, "data_path", lambda: deep / "espeak-ng-data")
    link = espeak.library_data_path()
    try:
        assert len(str(link)) <= 150 < len(str(deep / "espeak-ng-data"))
        assert (link / "phontab").is_file() and link.resolve() == real.resolve()
        assert espeak.library_data_path() == link  # reused, not made again
    finally:
        link.unlink()  # this test's link would dangle in the temporary folder once tmp_path goes
