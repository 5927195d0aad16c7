"""`microspeech classify_audio` and `tune` end to end (a fake sounddevice stands in for a microphone)."""

import json
import shutil
import sys
import types
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from microspeech.audio import SAMPLE_RATE, fit_length, read_audio, write_wav
from microspeech.cli import app
from microspeech.cli.app import console
from microspeech.data.streams import rate_interval
from microspeech.tflite.metadata import read_parameters

pytestmark = pytest.mark.xdist_group("mltk_model")
runner = CliRunner()


@pytest.fixture(scope="module")
def yes_wav(test_set_dir, tmp_path_factory):
    """A real "yes" with a second of its folder's silence after it."""
    clip = sorted((test_set_dir / "yes").glob("*.wav"))[0]
    path = tmp_path_factory.mktemp("wav") / "yes_then_quiet.wav"
    write_wav(path, fit_length(read_audio(clip), 2 * SAMPLE_RATE))
    return path


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def says(result, text: str) -> bool:
    """Whether the output holds `text`, ignoring whitespace (rich wraps long lines, even mid-word)."""
    return "".join(text.split()) in "".join(result.output.split())


def test_classify_audio_refuses_a_file_and_the_microphone_together(archive, yes_wav):
    # The file's detections were printed, then --mic failed (or would listen on after them).
    result = invoke("classify_audio", archive, "--wav", yes_wav, "--mic")
    assert result.exit_code == 2 and says(result, "--wav and --mic: give one or the other")
    assert "detected" not in result.output


def test_classify_audio_prints_each_detection_with_time_label_and_score(archive, yes_wav):
    result = invoke("classify_audio", archive, "--wav", yes_wav)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "detected" in line]
    assert len(lines) == 1 and "yes" in lines[0] and "score=" in lines[0]
    assert "detection_threshold=185" in result.output  # the embedded parameters are shown


def test_command_line_overrides_the_embedded_parameters(archive, yes_wav):
    result = invoke("classify_audio", archive, "--wav", yes_wav, "--threshold", "255", "--verbose")
    assert result.exit_code == 0, result.output
    assert "detected" not in result.output and "detection_threshold=255" in result.output
    inferences = [line for line in result.output.splitlines() if "averages" in line]
    assert len(inferences) == 20  # 2 s at latency_ms=100
    result = invoke("classify_audio", archive, "--wav", yes_wav, "--latency", "200", "--verbose", "-c", "1")
    assert len([line for line in result.output.splitlines() if "averages" in line]) == 10


def test_a_recording_loud_enough_to_wrap_at_the_volume_gain_says_so(archive, yes_wav, tmp_path):
    """MLTK's model stores volume_gain 2: samples past +-16383 wrap around on the part, as here."""
    audio = read_audio(yes_wav)
    loud = tmp_path / "loud.wav"
    write_wav(loud, (audio.astype(np.int32) * 32000 // max(1, int(np.abs(audio).max()))).astype(np.int16))
    samples = read_audio(loud)
    wrapped = int(np.count_nonzero((samples > 16383) | (samples < -16384)))  # x2 beyond int16
    assert wrapped
    result = invoke("classify_audio", archive, "--wav", loud)
    assert result.exit_code == 0, result.output
    assert says(result, f"{wrapped:,} samples")
    assert says(result, "at volume_gain 2 and wrap around, as on the part")
    for quiet in (["--wav", yes_wav], ["--wav", loud, "--volume", "1"]):
        assert "wrap around" not in invoke("classify_audio", archive, *quiet).output
    result = invoke("classify_audio", archive, "--wav", loud, "--volume", "1.5")
    assert result.exit_code == 2 and "--volume" in result.output


def test_a_recording_too_short_to_score_says_so(archive, tmp_path):
    # 10 ms of audio read "reports no 'yes' in the first 0 ms (--suppression)": nothing ran at all.
    short = tmp_path / "short.wav"
    write_wav(short, np.zeros(160, np.int16))
    result = invoke("classify_audio", archive, "--wav", short, "--suppression", "0")
    assert result.exit_code == 0, result.output
    assert says(result, "10 ms of audio is shorter than one inference step (100 ms), so nothing was scored")
    assert "--suppression" not in result.output


def test_reading_from_a_pipe(archive, yes_wav):
    # <(cat x.wav) or /dev/stdin read "Format not recognised": libsndfile opened the pipe twice.
    import os

    read_end, write_end = os.pipe()
    os.write(write_end, yes_wav.read_bytes()[:60000])  # within the pipe's buffer
    os.close(write_end)
    try:
        result = invoke("classify_audio", archive, "--wav", f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert result.exit_code == 0, result.output
    assert says(result, f"/dev/fd/{read_end}: 1.87 s")  # the bytes written, header and all


def test_several_files_are_named_on_their_lines(archive, yes_wav):
    result = invoke("classify_audio", archive, "--wav", yes_wav, "--wav", yes_wav)
    assert result.exit_code == 0, result.output
    detections = [line for line in result.output.splitlines() if "detected" in line]
    assert len(detections) == 2 and all(line.startswith("yes_then_quiet.wav: ") for line in detections)


def test_a_recording_in_another_format_is_converted_and_the_conversion_named(archive, yes_wav, tmp_path):
    import soundfile as sf

    samples = read_audio(yes_wav, 48000).astype(np.float32) / 32768
    other = tmp_path / "yes_48k_stereo.wav"
    sf.write(other, np.stack([samples, samples], axis=1), 48000, subtype="FLOAT")
    plain = invoke("classify_audio", archive, "--wav", yes_wav)
    converted = invoke("classify_audio", archive, "--wav", other)
    assert plain.exit_code == 0 and converted.exit_code == 0, converted.output
    assert says(converted, "resampled from 48000 Hz, downmixed from 2 channels, converted from FLOAT samples")
    assert "resampled" not in plain.output and "downmixed" not in plain.output
    detections = [[line for line in r.output.splitlines() if "detected" in line] for r in (plain, converted)]
    assert len(detections[0]) == len(detections[1]) == 1 and "yes" in detections[1][0]


def test_classify_audio_errors_name_the_problem(archive, yes_wav, tmp_path):
    result = invoke("classify_audio", archive)
    assert result.exit_code == 2 and says(result, "--wav FILE")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    result = invoke("classify_audio", archive, "--wav", bad)
    assert result.exit_code == 2 and says(result, "bad.wav")
    result = invoke("classify_audio", tmp_path / "nope.tflite", "--wav", yes_wav)
    assert result.exit_code == 2 and says(result, "nope.tflite: no such model file")
    result = invoke("classify_audio", archive, "--wav", yes_wav, "--threshold", "300")
    assert result.exit_code == 2 and says(result, "--threshold (detection_threshold) 300")


def fake_sounddevice(audio: np.ndarray | None, status: object = None) -> types.ModuleType:
    """A sounddevice stand-in: no input device when `audio` is None, else a microphone playing
    `audio` (each block's callback given `status`)."""
    module = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        if audio is None:
            raise PortAudioError("Error querying device -1")
        return {"name": "fake mic", "max_input_channels": 1, "default_samplerate": 16000.0}

    class InputStream:
        def __init__(self, samplerate, channels, dtype, blocksize, device, callback):
            assert (samplerate, channels, dtype) == (SAMPLE_RATE, 1, "int16")
            self.blocksize, self.callback = blocksize, callback

        def __enter__(self):
            for start in range(0, len(audio), self.blocksize):
                block = audio[start : start + self.blocksize]
                self.callback(block.reshape(-1, 1), len(block), None, status)
            return self

        def __exit__(self, *exc):
            return False

    module.PortAudioError = PortAudioError
    module.query_devices = query_devices
    module.check_input_settings = lambda **kwargs: None
    module.InputStream = InputStream
    return module


def test_mic_without_sounddevice_says_how_to_get_it(archive, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    result = invoke("classify_audio", archive, "--mic")
    assert result.exit_code == 2 and says(result, "sounddevice") and says(result, "microspeech[mic]")
    assert "Listening" not in result.output  # announced only once the microphone can be opened


def test_mic_without_an_input_device_says_so(archive, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(None))
    result = invoke("classify_audio", archive, "--mic")
    assert result.exit_code == 2 and says(result, "no microphone") and "Listening" not in result.output


def test_mic_audio_goes_through_the_detector(archive, yes_wav, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(read_audio(yes_wav)))
    result = invoke("classify_audio", archive, "--mic", "--seconds", "2")
    assert result.exit_code == 0, result.output
    assert "Listening" in result.output
    assert len([line for line in result.output.splitlines() if "detected" in line and "yes" in line]) == 1


def test_mic_input_overflow_is_said(archive, yes_wav, monkeypatch):
    # The callback never looked at PortAudio's status: dropped audio went unreported.
    status = type("Status", (), {"input_overflow": True, "__bool__": lambda self: True})()
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(read_audio(yes_wav), status))
    with pytest.warns(UserWarning, match="input overflowed: audio was dropped"):
        result = invoke("classify_audio", archive, "--mic", "--seconds", "2")
    assert result.exit_code == 0, result.output


def test_mic_input_that_wraps_at_the_volume_gain_is_said_once(archive, yes_wav, monkeypatch):
    # --wav noted wrapped samples; the microphone, where a loud room meets the gain, said nothing.
    loud = np.clip(read_audio(yes_wav).astype(np.int64) * 8, -32768, 32767).astype(np.int16)
    blocks = loud[: len(loud) // 1600 * 1600].reshape(-1, 1600)  # the mic's blocks: one 100 ms hop
    assert (np.abs(blocks).max(axis=1) > 16383).sum() > 1  # several blocks wrap at a gain of 2: said once
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(loud))
    with pytest.warns(UserWarning, match="loud enough to wrap: .* volume_gain 2 .*--volume 1") as said:
        result = invoke("classify_audio", archive, "--mic", "--seconds", "2", "--volume", "2")
    assert result.exit_code == 0, result.output
    assert len([w for w in said if "wrap" in str(w.message)]) == 1
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(loud))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*wrap")  # at a gain of 1 nothing wraps or is said
        result = invoke("classify_audio", archive, "--mic", "--seconds", "2", "--volume", "1")
    assert result.exit_code == 0, result.output


@pytest.fixture
def tflite_copy(archive, tmp_path):
    import zipfile

    with zipfile.ZipFile(archive) as bundle:
        path = tmp_path / "model.tflite"
        path.write_bytes(bundle.read("tflite_micro_speech.tflite"))
    return path


def test_tune_writes_the_pick_into_the_tflite(tflite_copy, test_set_dir, subset_dir):
    before = read_parameters(tflite_copy, with_dtypes=True)
    args = ["tune", tflite_copy, "--max-fa-per-hour", "1000", "--dataset", test_set_dir]
    args += ["--noise-dataset", subset_dir, "--minutes", "1", "--windows", "500,1000", "--counts", "1,3"]
    args += ["--thresholds", "150-250/10,255"]
    result = invoke(*args, "--write")
    assert result.exit_code == 0, result.output
    after = read_parameters(tflite_copy, with_dtypes=True)
    changed = {key for key in before[0] if before[0][key] != after[0][key]}
    assert changed <= {"detection_threshold", "average_window_duration_ms", "minimum_count"}
    assert after[1] == before[1]  # stored types kept
    assert f"detection_threshold={after[0]['detection_threshold']}" in result.output
    assert after[0]["average_window_duration_ms"] in (500, 1000) and after[0]["minimum_count"] in (1, 3)
    assert after[0]["detection_threshold"] in [*range(150, 251, 10), 255]


def test_tune_keeps_the_models_own_parameters_when_no_grid_setting_fits(
    tflite_copy, test_set_dir, subset_dir
):
    # Threshold 0 fires on nearly every inference: only the model's own parameters fit the budget.
    before = read_parameters(tflite_copy)
    args = ["tune", tflite_copy, "--max-fa-per-hour", "100", "--dataset", test_set_dir]
    args += ["--noise-dataset", subset_dir, "--minutes", "1", "--windows", "500", "--counts", "1"]
    result = invoke(*args, "--thresholds", "0", "--write")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    chosen = next(line.split() for line in lines if line.strip().startswith("chosen "))
    assert chosen[1:5] == ["185", "1000", "3", "750"]  # MLTK's embedded parameters, kept
    assert read_parameters(tflite_copy) == before


def test_tune_on_segments_with_a_clean_one_as_train_calibrates(tflite_copy, subset_dir, tmp_path):
    args = ["tune", tflite_copy, "--max-fa-per-hour", "1000", "--dataset", subset_dir]
    args += ["--split", "validation"]
    args += ["--minutes", "1", "--windows", "500", "--counts", "1", "--thresholds", "150-250/50"]
    output = tmp_path / "tuning.json"
    # On the part's kernels (Silicon Labs' TFLM), as the title and the JSON say.
    on_the_part = ("--runtime", "silabs-tflm")
    result = invoke(*args, "--snr-db", "inf,10", "--segmented", "--output", output, *on_the_part)
    assert result.exit_code == 0, result.output
    assert says(result, "min of speech_commands_v0.02_subset, silabs-tflm")

    def no_infinity(token):
        raise AssertionError(f"{output.name} holds {token}: not JSON")

    written = json.loads(output.read_text(), parse_constant=no_infinity)
    assert written["snr_db"] == ["inf", 10.0] and written["segmented"] is True
    assert written["runtime"] == "silabs-tflm"
    mixed = invoke(*args, "--snr-db", "inf,10")
    assert mixed.exit_code == 2 and says(mixed, "--snr-db inf,10") and says(mixed, "--segmented")


def test_tune_per_class_writes_a_threshold_list_that_classify_audio_uses(
    tflite_copy, test_set_dir, subset_dir, yes_wav, tmp_path, monkeypatch
):
    monkeypatch.setattr(console, "width", 80)  # as in a file or a CI log: the table still fits
    args = ["tune", tflite_copy, "--max-fa-per-hour", "1000", "--dataset", test_set_dir]
    args += ["--noise-dataset", subset_dir, "--minutes", "1", "--windows", "500", "--counts", "1"]
    output = tmp_path / "tuning.json"
    result = invoke(*args, "--thresholds", "150-250/20", "--per-class", "--write", "--output", output)
    assert result.exit_code == 0, result.output
    assert "suppression" in result.output  # the table's header covers every column
    assert "…" not in result.output  # no cell cut short
    chosen = json.loads(output.read_text())["chosen"]["firmware"]
    low, high = rate_interval(chosen["false_accepts"], 1 / 60)
    assert says(result, f"chosen: {chosen['false_accepts']} false accepts in 1 min")
    assert says(result, f"(95% interval {low:.2f}-{high:.2f})")
    params, dtypes = read_parameters(tflite_copy, with_dtypes=True)
    listed = params["detection_threshold_list"]
    assert dtypes["detection_threshold_list"] == "int32_list"  # what MLTK's firmware reads
    assert listed[2:] == [255, 255] and all(t in range(150, 251, 20) for t in listed[:2])
    assert says(result, f"detection_threshold_list={listed}")
    shown = invoke("classify_audio", tflite_copy, "--wav", yes_wav)
    assert shown.exit_code == 0 and says(shown, f"detection_threshold_list={listed}")
    replaced = invoke("classify_audio", tflite_copy, "--wav", yes_wav, "--threshold", "255")
    assert replaced.exit_code == 0 and "detected" not in replaced.output
    assert says(replaced, "--threshold replaces the stored detection_threshold_list")
    # One threshold for all, written: the list goes, or the device would go on using it.
    result = invoke(*args, "--thresholds", "150-250/20", "--write")
    assert result.exit_code == 0 and says(result, "removed its detection_threshold_list")
    assert "detection_threshold_list" not in read_parameters(tflite_copy)


def test_tune_names_a_pick_that_silences_a_keyword_and_writes_nothing(
    tflite_copy, test_set_dir, subset_dir
):
    # Threshold 255 never fires: a per-class pick with it switched the keyword off on the device
    # without a word. Here the model's own list (yes 255) is the one pick within the budget.
    from microspeech.tflite.metadata import write_parameters

    parameters = {**read_parameters(tflite_copy), "detection_threshold_list": [255, 150, 255, 255]}
    tflite_copy.write_bytes(write_parameters(tflite_copy.read_bytes(), parameters))
    before = tflite_copy.read_bytes()
    args = ["tune", tflite_copy, "--dataset", test_set_dir, "--noise-dataset", subset_dir, "--minutes", "1"]
    args += ["--windows", "1000", "--counts", "3", "--thresholds", "0", "--per-class"]
    args += ["--max-fa-per-hour", "200"]
    said = "gives yes threshold 255, which never detects"
    shown = invoke(*args)
    assert shown.exit_code == 0 and says(shown, f"warning: the pick within 200 false accepts per hour {said}")
    refused = invoke(*args, "--write")
    assert refused.exit_code == 1 and says(refused, said) and says(refused, "nothing written")
    assert tflite_copy.read_bytes() == before


def test_tune_refuses_an_impossible_budget_and_writes_nothing(tflite_copy, test_set_dir, archive):
    original = tflite_copy.read_bytes()
    backup = tflite_copy.with_suffix(".orig")
    shutil.copy(tflite_copy, backup)
    for budget in ("0", "-1"):
        result = invoke("tune", tflite_copy, "--max-fa-per-hour", budget, "--write")
        assert result.exit_code == 2 and says(result, "--max-fa-per-hour")
    args = ["tune", tflite_copy, "--max-fa-per-hour", "0.01", "--dataset", test_set_dir, "--minutes", "0.5"]
    result = invoke(*args, "--thresholds", "0", "--windows", "1000", "--counts", "1", "--write")
    assert result.exit_code == 1 and says(result, "nothing written")
    # Per class, lists far over the budget are not even kept as rows: still a message, no traceback.
    result = invoke(*args, "--thresholds", "0", "--windows", "1000", "--counts", "1", "--per-class")
    assert result.exit_code == 1 and says(result, "no per-class threshold list on the grid came within")
    assert tflite_copy.read_bytes() == original
    # Threshold 255 never fires, so it always fits: tune wrote it, and the model detected nothing.
    result = invoke(*args, "--thresholds", "255", "--windows", "1000", "--counts", "3", "--write")
    assert result.exit_code == 1 and says(result, "detects no keyword of the stream")
    assert tflite_copy.read_bytes() == original
    result = invoke(*args[:-1], "0.001")
    assert result.exit_code == 2 and says(result, "holds no keyword clip") and says(result, "--minutes")
    result = invoke("tune", tflite_copy, "--max-fa-per-hour", "5", "--windows", "a,b")
    assert result.exit_code == 2 and says(result, "--windows")
    result = invoke("tune", tflite_copy, "--max-fa-per-hour", "5", "--runtime", "cmsis-nn")
    assert result.exit_code == 2
    assert says(result, "--runtime cmsis-nn: expected one of litert, tflm, silabs-tflm")
    result = invoke("tune", archive, "--max-fa-per-hour", "5", "--write")
    assert result.exit_code == 2 and says(result, "is an archive; give the .tflite file")


@pytest.mark.parametrize("runtime", ["tflm", "silabs-tflm"])
def test_classify_audio_runs_on_each_runtime_with_the_same_detections(archive, yes_wav, runtime):
    reference = invoke("classify_audio", archive, "--wav", yes_wav)
    result = invoke("classify_audio", archive, "--wav", yes_wav, "--runtime", runtime)
    assert result.exit_code == 0, result.output
    detections = [line for line in result.output.splitlines() if "detected" in line]
    assert detections and detections == [line for line in reference.output.splitlines() if "detected" in line]
    refused = invoke("classify_audio", archive, "--wav", yes_wav, "--runtime", "gpu")
    assert refused.exit_code == 2 and says(refused, "--runtime")


def test_evaluate_scores_with_silicon_labs_tflm(archive, test_set_dir, tmp_path):
    import zipfile

    model = tmp_path / "tflite_micro_speech.tflite"
    model.write_bytes(zipfile.ZipFile(archive).read("tflite_micro_speech.tflite"))
    result = invoke(
        "evaluate",
        model,
        "--runtime",
        "silabs-tflm",
        "--dataset",
        test_set_dir,
        "--output",
        tmp_path / "eval",
        "--no-plots",
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "eval-results.json").read_text())["results"]
    assert {variant: r["runtime"] for variant, r in results.items()} == {"int8": "silabs-tflm"}
    refused = invoke("evaluate", model, "--runtime", "cuda", "--dataset", test_set_dir)
    assert refused.exit_code == 2 and says(refused, "--runtime")


def _converted(model, *, int8: bool) -> bytes:
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # without a dataset: dynamic-range weights
    if int8:
        shape = (1, *model.input_shape[1:])
        converter.representative_dataset = lambda: ([np.full(shape, v, np.float32)] for v in (-1.0, 1.0))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def test_a_model_the_runtime_cannot_run_gets_one_line_naming_the_file_and_the_reason(
    tflite_copy, yes_wav, tmp_path, test_set_dir
):
    # Tracebacks before: TFLM lacks hybrid (float input, int8 weights) FULLY_CONNECTED, and the
    # error blamed the arena size ("pass a larger arena_size", not a CLI option).
    import keras

    from microspeech.tflite.metadata import read_parameters, write_parameters

    inputs = keras.Input((49, 40, 1))
    hybrid = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs)))
    path = tmp_path / "hybrid.tflite"
    path.write_bytes(write_parameters(_converted(hybrid, int8=False), read_parameters(tflite_copy)))
    result = invoke("classify_audio", path, "--wav", yes_wav, "--runtime", "tflm")
    assert result.exit_code == 2, result.output
    assert says(result, f"error: {path}: TFLM could not prepare the model")
    assert says(result, "Input type: FLOAT32 with filter type: INT8 not supported")
    assert "arena_size" not in result.output
    # tune and evaluate gave tracebacks for the same model (evaluate's named "<bytes>").
    for args in (
        ("tune", path, "--max-fa-per-hour", "5", "--minutes", "1", "--dataset", test_set_dir),
        ("evaluate", path, "--dataset", test_set_dir, "--output", tmp_path / "eval"),
        ("evaluate", path, "--streaming", "--minutes", "1", "--dataset", test_set_dir, "--output", tmp_path),
    ):
        refused = invoke(*args, "--runtime", "tflm")
        assert refused.exit_code == 2, refused.output
        assert says(refused, f"error: {path}: TFLM could not prepare the model")
    unknown = invoke("classify_audio", path, "--wav", yes_wav, "--runtime", "cmsis-nn")
    assert unknown.exit_code == 2 and says(unknown, "--runtime cmsis-nn: expected one of litert, tflm")
    # profile's arena search said only that no arena worked.
    from microspeech.tflite.profile import find_min_arena_size

    with pytest.raises(RuntimeError, match=f"{path}: .*FLOAT32 with filter type: INT8 not supported"):
        find_min_arena_size(path)
    # Silicon Labs' TFLM crashed on it (SIGSEGV and a native stack), and the MVP simulator
    # reported cycles as if the part could run it.
    for args in (
        ("classify_audio", path, "--wav", yes_wav, "--runtime", "silabs-tflm"),
        ("profile", path, "--accelerator", "mvp"),
    ):
        refused = invoke(*args)
        assert refused.exit_code == 2, refused.output
        assert says(refused, f"error: {path}: ")
        assert says(refused, "FULLY_CONNECTED: a float input with int8 weights (dynamic-range quantization)")
        assert "SIGSEGV" not in refused.output and "cycles" not in refused.output


def test_a_float_tflite_is_not_reported_as_the_int8_model(tflite_copy, tmp_path, test_set_dir):
    import json

    import keras
    import tensorflow as tf

    from microspeech.tflite.metadata import read_parameters, write_parameters

    inputs = keras.Input((49, 40, 1))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs)))
    converted = tf.lite.TFLiteConverter.from_keras_model(model).convert()  # float, no optimization
    path = tmp_path / "float.tflite"
    path.write_bytes(write_parameters(converted, read_parameters(tflite_copy)))
    result = invoke("evaluate", path, "--dataset", test_set_dir, "--output", tmp_path / "eval", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "tflite-float32" in result.output and "int8" not in result.output
    results = json.loads((tmp_path / "eval" / "eval-results.json").read_text())["results"]
    assert list(results) == ["tflite-float32"]
    # Named by the arithmetic, not the input type: full-integer weights under a float input (the
    # converter's default) are the int8 model; integer weights under float arithmetic are hybrid.
    from microspeech.tflite.flatbuffer import quantization_kind

    assert quantization_kind(_converted(model, int8=True)) == "int8"
    assert quantization_kind(_converted(model, int8=False)) == "hybrid"
    assert quantization_kind(converted) == "float32"
    # The stream feeds it what the clip evaluation does, the int8 features as floats (it fed the
    # raw uint16 frontend values: MLTK's .float32.tflite said "off" at every word).
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.frontend import uint16_to_int8

    spotter = KeywordSpotter(path)
    window = np.random.default_rng(0).integers(0, 1200, (49, 40)).astype(np.uint16)
    expected = uint16_to_int8(window, spotter.model.frontend_settings).astype(np.float32)
    np.testing.assert_array_equal(spotter._model_input(window), expected)


def test_a_transposed_convolution_runs_in_tflm_without_an_arena_given():
    # TFLM's default arena counted tensors, not TRANSPOSE_CONV's scratch: prepare failed.
    import keras
    import numpy as np

    from microspeech.tflite.runtime import TfliteRunner

    inputs = keras.Input((25, 20, 4))
    model = keras.Model(inputs, keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(inputs))
    runner = TfliteRunner(_converted(model, int8=True), "tflm")
    assert runner.predict_one(np.zeros((1, 25, 20, 4), np.int8)).shape == (50, 40, 4)


def test_classify_audio_warns_of_a_model_whose_outputs_are_no_softmax(tmp_path, yes_wav, tflite_copy):
    # It printed "score=191" for logits + 128 without a word; evaluate refuses such a model.
    import keras
    import tensorflow as tf

    from microspeech.tflite.metadata import write_parameters

    keras.utils.set_random_seed(0)
    inputs = keras.Input((49, 40, 1))
    logits = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    converter = tf.lite.TFLiteConverter.from_keras_model(logits)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    shape = (1, 49, 40, 1)
    converter.representative_dataset = lambda: ([np.full(shape, v, np.float32)] for v in (-100.0, 100.0))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path / "logits.tflite"
    path.write_bytes(write_parameters(converter.convert(), read_parameters(tflite_copy)))
    result = invoke("classify_audio", path, "--wav", yes_wav)
    assert result.exit_code == 0, result.output
    assert says(result, "is not a softmax's: the scores below are not probabilities")
    assert "not a softmax" not in invoke("classify_audio", tflite_copy, "--wav", yes_wav).output
    # A float model ending in logits was not warned of at all; one ending in a softmax is not, also
    # when int8 inside with float outputs (SOFTMAX, then DEQUANTIZE: the converter's default).
    softmax = keras.Model(inputs, keras.layers.Softmax()(logits.output))
    for name, model, said in (
        ("logits", logits, "float32 output comes from FULLY_CONNECTED, not a SOFTMAX"),
        ("softmax", softmax, None),
        ("softmax_dequantized", softmax, None),
    ):
        path = tmp_path / f"{name}_float.tflite"
        float_converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if name == "softmax_dequantized":
            float_converter.optimizations = [tf.lite.Optimize.DEFAULT]
            float_converter.representative_dataset = converter.representative_dataset
        float_bytes = float_converter.convert()
        path.write_bytes(write_parameters(float_bytes, read_parameters(tflite_copy)))
        result = invoke("classify_audio", path, "--wav", yes_wav)
        assert result.exit_code == 0, result.output
        assert says(result, said) if said else "SOFTMAX" not in result.output
