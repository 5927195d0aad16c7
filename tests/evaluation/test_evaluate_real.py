"""evaluate on real audio: MLTK's shipped .tflite (bare file) and a model trained in the suite.

Both score the dev test bundle (half the official v0.02 test set, 2,747 clips).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.data.streams import rate_interval
from microspeech.evaluation.evaluate import EvaluationError, evaluate_model
from microspeech.evaluation.streaming import evaluate_streaming

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("evaluation_real")]


def _bundle_clips(test_set_dir: Path) -> set[str]:
    return {str(p) for p in test_set_dir.rglob("*.wav")}


@pytest.fixture(scope="module")
def reference_eval(mltk_tflite_path: Path, test_set_dir: Path, tmp_path_factory) -> Path:
    """`microspeech evaluate <MLTK's .tflite> --dataset <dev bundle>` run once through the CLI."""
    output = tmp_path_factory.mktemp("reference_eval")
    result = CliRunner().invoke(
        app, ["evaluate", str(mltk_tflite_path), "--dataset", str(test_set_dir), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    (output / "console.txt").write_text(result.output)
    return output


def test_bare_tflite_scores_every_clip_once(reference_eval: Path, test_set_dir: Path) -> None:
    saved = json.loads((reference_eval / "eval-results.json").read_text())
    assert saved["classes"] == ["yes", "no", "_unknown_", "_silence_"]  # from its SL_PARAMSv1
    clips = saved["clips"]
    assert len(clips) == len(set(clips)) == saved["n_samples"]
    assert set(clips) == _bundle_clips(test_set_dir)
    assert list(saved["results"]) == ["int8"]  # a bare .tflite has no float model
    int8 = saved["results"]["int8"]
    assert int8["class_counts"] == [232, 224, len(clips) - 232 - 224 - 202, 202]
    assert len(int8["scores"]) == len(clips)
    # MLTK's model on this half of the official test set: about 80% (see BENCHMARKS.md).
    assert 0.75 < int8["overall_accuracy"] < 0.85
    assert int8["class_accuracies"][0] > 0.85 and int8["class_accuracies"][1] > 0.8
    # Its `_silence_` was trained on digital zeros: the test set's real quiet noise is not silence to it.
    assert int8["class_accuracies"][3] < 0.05
    assert 0.8 < int8["roc_auc_avg"] < 0.9
    labels = np.array(saved["labels"])
    predicted = np.argmax(np.array(int8["scores"]), axis=1)
    assert int8["overall_accuracy"] == pytest.approx(np.mean(predicted == labels))


def test_errors_are_counted_by_the_word_spoken(reference_eval: Path) -> None:
    saved = json.loads((reference_eval / "eval-results.json").read_text())
    words, clips = saved["words"], saved["clips"]
    assert len(words) == len(clips)
    # The test set's `_unknown_` clips are named after their word; the commands are folders.
    for word, clip in zip(words, clips, strict=True):
        folder, name = Path(clip).parent.name, Path(clip).name
        assert word == (name.split("_")[0] if folder == "_unknown_" else folder)
    assert {"backward", "go", "on", "yes", "_silence_"} <= set(words)
    entries = saved["results"]["int8"]["errors_by_word"]
    assert sorted(entry["word"] for entry in entries) == sorted(set(words))
    labels = np.array(saved["labels"])
    predicted = np.argmax(np.array(saved["results"]["int8"]["scores"]), axis=1)
    assert sum(entry["errors"] for entry in entries) == int(np.sum(predicted != labels))
    errors = [entry["errors"] for entry in entries]
    assert errors == sorted(errors, reverse=True)
    # MLTK's model takes the test set's real quiet noise for `_unknown_` (see above).
    silence = next(entry for entry in entries if entry["word"] == "_silence_")
    assert silence["clips"] == 202 and silence["predicted_as"].get("_unknown_", 0) > 150
    for entry in entries:
        assert sum(entry["predicted_as"].values()) == entry["errors"] <= entry["clips"]
    summary = (reference_eval / "summary.txt").read_text()
    worst = entries[0]
    assert f"- {worst['word']}: {worst['errors']} of {worst['clips']}" in summary
    taken, clips = next(iter(worst["predicted_as"].items()))
    console = " ".join((reference_eval / "console.txt").read_text().split())
    # The most frequent wrong class with its own count, not the word's every error.
    share = f"as {taken}" if clips == worst["errors"] else f"{clips} as {taken}"
    first = f"{worst['word']} {worst['errors']}/{worst['clips']} ({share})"
    assert f"Most errors (int8, by spoken word): {first}" in console


def test_bare_tflite_writes_report_files(reference_eval: Path) -> None:
    names = {p.name for p in reference_eval.iterdir()}
    plots = {f"int8-{kind}.png" for kind in ("roc", "precision_recall", "confusion_matrix", "tpr_fpr")}
    assert names == {"eval-results.json", "summary.txt", "console.txt"} | plots
    summary = (reference_eval / "summary.txt").read_text()
    assert "Name: tflite_micro_speech" in summary and "Confusion matrix" in summary


def test_bad_model_and_dataset_are_named(tmp_path: Path, mltk_tflite_path: Path, subset_dir: Path) -> None:
    missing = tmp_path / "nope.tflite"
    with pytest.raises(EvaluationError, match="nope.tflite"):
        evaluate_model(missing)
    not_a_model = tmp_path / "junk.tflite"
    not_a_model.write_bytes(b"not a flatbuffer")
    with pytest.raises(EvaluationError, match="junk.tflite"):
        evaluate_model(not_a_model)
    # The subset bundle has no test-split clip: the message names the option and a remedy.
    with pytest.raises(EvaluationError, match="--word-offset 2"):
        evaluate_model(mltk_tflite_path, dataset=str(subset_dir), word_offset=2.0)
    with pytest.raises(EvaluationError, match="--word-offset 'middle': expected a number"):
        evaluate_model(mltk_tflite_path, dataset=str(subset_dir), word_offset="middle")
    with pytest.raises(EvaluationError, match="--output '': an empty folder name"):
        evaluate_model(mltk_tflite_path, dataset=str(subset_dir), output_dir="")
    # "" fell back to the manifest's dataset here, and to the official test set on a stream.
    with pytest.raises(EvaluationError, match="--dataset '': an empty name"):
        evaluate_model(mltk_tflite_path, dataset="", output_dir=tmp_path / "out")
    # Results in a dataset folder became a word folder of unusable files, as train's run would.
    with pytest.raises(EvaluationError, match="inside the dataset .*its results and plots would become"):
        evaluate_model(mltk_tflite_path, dataset=str(subset_dir), output_dir=subset_dir / "eval")
    assert not (subset_dir / "eval").exists()
    # The default folder beside a model kept in the dataset: named as the default, not as --output.
    inside = tmp_path / "words"
    (inside / "yes").mkdir(parents=True)
    for clip in sorted((subset_dir / "yes").glob("*.wav"))[:3]:
        (inside / "yes" / clip.name).write_bytes(clip.read_bytes())
    (inside / "model.tflite").write_bytes(mltk_tflite_path.read_bytes())
    said = r"^the results folder \(the default beside the model\) .*eval: inside"
    with pytest.raises(EvaluationError, match=said):
        evaluate_model(inside / "model.tflite", dataset=str(inside))
    with pytest.raises(EvaluationError, match="--dataset .* has no 'test' clips"):
        evaluate_model(mltk_tflite_path, dataset=str(subset_dir), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # A cut .keras was reported as lacking classes; its damage is the news.
    cut = tmp_path / "cut" / "kws.keras"
    cut.parent.mkdir()
    cut.write_bytes(b"PK not really")
    with pytest.raises(EvaluationError, match="not a readable Keras model: .*kws.keras"):
        evaluate_model(cut)
    # The default results folder (eval/ beside the model) was found unusable only after the
    # work: refused first, with the way out.
    beside = tmp_path / "blocked"
    beside.mkdir()
    blocked = beside / "model.tflite"
    blocked.write_bytes(mltk_tflite_path.read_bytes())
    (beside / "eval").write_text("a file where the results folder goes")
    with pytest.raises(EvaluationError, match="eval: is a file, not a folder .*pass --output"):
        evaluate_model(blocked, dataset=str(subset_dir))
    result = CliRunner().invoke(app, ["evaluate", str(missing)])
    # rich wraps long paths mid-word: compare without whitespace.
    assert result.exit_code == 2 and f"{missing}:nosuchmodelfileorfolder" in "".join(result.output.split())


def test_a_damaged_tflite_beside_the_float_model_is_named_not_skipped(
    trained_test_model: Path, test_set_dir: Path, tmp_path: Path
) -> None:
    # The float model alone was evaluated, without a word of the int8 one; --tflite said there
    # was "no .tflite model to evaluate" beside the damaged file.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_test_model, copy)
    tflite = copy / "tflite_micro_speech-test.tflite"
    tflite.write_bytes(tflite.read_bytes()[:5000])
    said = r"tflite_micro_speech-test\.tflite: not a valid \.tflite.*the float model alone"
    for flags in ({}, {"tflite": True}):
        with pytest.raises(EvaluationError, match=said):
            evaluate_model(copy, dataset=str(test_set_dir), show_progress=False, **flags)
    keras, test_set = copy / "tflite_micro_speech-test.keras", str(test_set_dir)
    float_only = evaluate_model(keras, dataset=test_set, show_progress=False, output_dir=tmp_path / "out")
    assert [result.variant for result in float_only.results] == ["float"]


def test_trained_model_float_and_int8_side_by_side(trained_test_model: Path, test_set_dir: Path) -> None:
    report = evaluate_model(trained_test_model, dataset=str(test_set_dir), show_progress=False)
    assert report.output_dir == trained_test_model / "eval"
    assert [(r.variant, r.runtime) for r in report.results] == [("float", "keras"), ("int8", "litert")]
    n_clips = len(_bundle_clips(test_set_dir))
    assert report.labels.size == n_clips and set(report.clip_paths) == _bundle_clips(test_set_dir)
    float_result, int8_result = report.results
    for result in report.results:
        assert result.scores.shape == (n_clips, 4)
        assert result.metrics.n_samples == n_clips
    # Quantization changes few decisions.
    agreement = np.mean(np.argmax(float_result.scores, 1) == np.argmax(int8_result.scores, 1))
    assert agreement > 0.9
    saved = json.loads((report.output_dir / "eval-results.json").read_text())
    assert list(saved["results"]) == ["float", "int8"]
    # A summary, not every label, path and score (megabytes for a test set).
    paths = len(report.dataset) + len(str(report.output_dir))  # a long TMPDIR makes them long
    assert len(repr(report)) < 200 + paths and f"{report.labels.size} clips" in repr(report)
    summary = (report.output_dir / "summary.txt").read_text()
    header = next(line for line in summary.splitlines() if line.split() == ["float", "int8"])
    assert header  # one column per variant
    assert len(list(report.output_dir.glob("*.png"))) == 8

    # --tflite --tflm: only the int8 model, on the firmware interpreter. LiteRT's optimized
    # int8 kernels round a few outputs apart from TFLM's reference kernels (a few steps of 1/256).
    tflm_report = evaluate_model(
        trained_test_model, tflite=True, tflm=True, dataset=str(test_set_dir), show_progress=False
    )
    assert [(r.variant, r.runtime) for r in tflm_report.results] == [("int8", "tflm")]
    tflm_scores = tflm_report.results[0].scores
    assert np.mean(np.any(tflm_scores != int8_result.scores, axis=1)) < 0.01
    assert np.mean(np.argmax(tflm_scores, 1) == np.argmax(int8_result.scores, 1)) > 0.995
    # The float plots of the earlier run would now contradict eval-results.json: gone.
    assert sorted(p.name.split("-")[0] for p in report.output_dir.glob("*.png")) == ["int8"] * 4

    # A .keras file alone: the float model only, same scores as before.
    keras_path = trained_test_model / "tflite_micro_speech-test.keras"
    # The dataset as a Path (scored every clip, then failed to write the JSON).
    keras_report = evaluate_model(
        keras_path, dataset=test_set_dir, output_dir=trained_test_model / "keras-eval", plots=False
    )
    assert [r.variant for r in keras_report.results] == ["float"]
    assert (trained_test_model / "keras-eval" / "eval-results.json").is_file()
    np.testing.assert_allclose(keras_report.results[0].scores, float_result.scores, atol=1e-6)


def test_default_dataset_is_the_training_one(
    trained_test_model: Path, subset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The manifest records the subset bundle, which holds no test clip: the error says what to
    # pass, and names the manifest (not a --dataset the user never gave), from any folder.
    monkeypatch.chdir(tmp_path)
    expected = f"the training dataset {subset_dir.resolve()} .*manifest.* has no 'test' clips"
    with pytest.raises(EvaluationError, match=expected):
        evaluate_model(trained_test_model)
    # --streaming took the official test set (a download) whatever the manifest said.
    with pytest.raises(ValueError, match=f"dataset '{subset_dir.name}' has no test-split clips"):
        evaluate_streaming(trained_test_model, minutes=1, show_progress=False, output_dir=tmp_path / "s")
    # An older manifest's relative root would be looked up from the current folder, where a
    # folder of that name may be another dataset: refused.
    import json
    import shutil

    old = tmp_path / "old_model"
    shutil.copytree(trained_test_model, old / "tflite_micro_speech-test")
    manifest_path = old / "tflite_micro_speech-test" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["dataset"]["root"] = "base"
    manifest_path.write_text(json.dumps(manifest))
    shutil.copytree(subset_dir / "yes", tmp_path / "base" / "yes")
    with pytest.raises(EvaluationError, match="relative path.*pass --dataset"):
        evaluate_model(old / "tflite_micro_speech-test")
    # The stream took such a manifest for no dataset at all: the official test set, a download.
    with pytest.raises(ValueError, match="relative path.*pass --dataset"):
        evaluate_streaming(old / "tflite_micro_speech-test", minutes=1, show_progress=False)
    # --tflite on a directory without a .tflite names the directory.
    keras_only = trained_test_model.parent / "keras_only"
    keras_only.mkdir()
    (keras_only / "tflite_micro_speech-test.keras").write_bytes(
        (trained_test_model / "tflite_micro_speech-test.keras").read_bytes()
    )
    with pytest.raises(EvaluationError, match=f"{keras_only}: no .tflite model"):
        evaluate_model(keras_only, tflite=True)
    # A .keras file with --tflite said "no .tflite model" though one lay beside it.
    with pytest.raises(EvaluationError, match="a .keras file is the float model"):
        evaluate_model(trained_test_model / "tflite_micro_speech-test.keras", tflite=True)


def test_cli_streaming(mltk_tflite_path: Path, test_set_dir: Path, tmp_path: Path) -> None:
    args = ["evaluate", str(mltk_tflite_path), "--streaming", "--minutes", "2", "--seed", "3"]
    args += ["--dataset", str(test_set_dir), "--output", str(tmp_path), "--tflm"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "streaming.json").read_text())
    assert report["seed"] == 3 and report["minutes"] == 2 and report["backend"] == "tflm"
    assert not (tmp_path / "eval-results.json").exists()  # clip evaluation did not run
    # MLTK's model fires on other words in these two minutes; the console names them.
    by_word = report["false_accepts_by_word"]
    assert sum(by_word.values()) == report["false_accepts"] > 0
    listed = ", ".join(f"{word} {count}" for word, count in by_word.items())
    assert f"False accepts by the word playing: {listed}" in " ".join(result.output.split())
    # The rate's 95% interval from that count over the stream's two minutes, shown beside it.
    low, high = rate_interval(report["false_accepts"], 2 / 60)
    assert report["fa_per_hour_interval"] == pytest.approx([low, high], abs=1e-3)
    assert low < report["fa_per_hour"] < high
    shown = [line for line in result.output.splitlines() if "fa_per_hour, 95% interval" in line]
    assert len(shown) == 1 and f"{low:.3g}-{high:.3g}" in shown[0]
    # The table shows what the JSON holds (it rounded the rounded value again: 0.30435 -> 0.3044).
    row = next(line for line in result.output.splitlines() if " miss_rate " in line)
    assert f" {report['miss_rate']:g} " in row


def test_cli_streaming_in_segments_with_a_clean_one(
    mltk_tflite_path: Path, test_set_dir: Path, subset_dir: Path, tmp_path: Path
) -> None:
    # The headline benchmark's kind of stream from the CLI: one segment per condition, clean included.
    args = ["evaluate", str(mltk_tflite_path), "--streaming", "--minutes", "2", "--snr-db", "inf,10"]
    args += ["--segmented", "--dataset", str(test_set_dir), "--noise-dataset", str(subset_dir)]
    result = CliRunner().invoke(app, [*args, "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output

    def no_infinity(token: str) -> None:
        raise AssertionError(f"streaming.json holds {token}: not JSON")

    report = json.loads((tmp_path / "streaming.json").read_text(), parse_constant=no_infinity)
    assert report["snr_db"] == ["inf", 10.0] and set(report["per_snr"]) == {"inf", "10"}
    assert report["noise_dataset"] == subset_dir.name
    assert {event["snr_db"] for event in report["events"]} == {"inf", 10.0}
    # Word by word (no --segmented), clean cannot mix with noise: refused, naming the option.
    mixed = CliRunner().invoke(app, [*args[:-5], "--dataset", str(test_set_dir), "--output", str(tmp_path)])
    assert mixed.exit_code == 2 and "--snr-db inf,10" in mixed.output and "--segmented" in mixed.output


def test_an_unfinished_training_folder_is_named_as_such(
    trained_test_model: Path, test_set_dir: Path, tmp_path: Path
) -> None:
    # A run that failed after saving its model (an interrupted calibration) left a .tflite with the
    # spec's parameters and no manifest; evaluate used it without a word.
    import shutil

    from typer.testing import CliRunner

    from microspeech.cli import app

    folder = tmp_path / "tflite_micro_speech-test"
    shutil.copytree(trained_test_model, folder)
    (folder / "manifest.json").unlink()
    args = ["evaluate", str(folder), "--dataset", str(test_set_dir), "--no-plots"]
    args += ["--output", str(tmp_path / "e")]
    result = CliRunner().invoke(app, args)
    message = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"warning: {folder} has no manifest.json: its training did not finish" in message
    finished = CliRunner().invoke(app, [*args[:1], str(trained_test_model), *args[2:]])
    assert finished.exit_code == 0 and "warning" not in finished.output


def test_the_python_api_names_a_bad_seed_or_conflicting_runtimes(mltk_tflite_path: Path) -> None:
    # seed=-1 raised numpy's "expected non-negative integer"; tflm=True with runtime="litert"
    # silently ran LiteRT.
    for seed in (-1, 1.5):
        with pytest.raises(EvaluationError, match=f"--seed {seed}"):
            evaluate_model(mltk_tflite_path, seed=seed)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="--tflm and --runtime litert disagree"):
        evaluate_model(mltk_tflite_path, tflm=True, runtime="litert")


def test_a_model_of_other_classes_is_refused_naming_them(
    mltk_tflite_path: Path, test_set_dir: Path, tmp_path
):
    # MLTK's magic-wand model on speech clips: "need at least one array to concatenate".
    from microspeech.tflite.metadata import read_parameters, write_parameters

    parameters = read_parameters(mltk_tflite_path.read_bytes())
    parameters["classes"] = ["wing", "ring", "slope", "negative"]
    gesture = tmp_path / "gesture.tflite"
    gesture.write_bytes(write_parameters(mltk_tflite_path.read_bytes(), parameters))
    with pytest.raises(
        EvaluationError, match=r"no 'test' clip of any class of .*gesture.tflite \(wing, ring"
    ):
        evaluate_model(gesture, tflite=True, dataset=str(test_set_dir), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_clip_and_stream_results_of_an_archive_go_to_one_default_folder(test_set_dir, tmp_path, monkeypatch):
    # Clip results went to ./eval (beside the archive), stream results to ./NAME-eval.
    import shutil

    from microspeech.mltk_wheel import shipped_speech_model_zip

    archive = tmp_path / "tflite_micro_speech.mltk.zip"
    shutil.copy(shipped_speech_model_zip(), archive)
    monkeypatch.chdir(tmp_path)
    clips = evaluate_model(archive, tflite=True, dataset=str(test_set_dir), plots=False)
    stream = evaluate_streaming(
        archive, dataset=str(test_set_dir), minutes=0.5, show_progress=False, plot=False
    )
    assert clips.output_dir == stream.output_dir == tmp_path / "tflite_micro_speech-eval"


def test_a_stopped_evaluation_leaves_the_previous_results_whole(
    reference_eval: Path, mltk_tflite_path: Path, test_set_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    # Stopped after eval-results.json and summary.txt were written, the folder held one model's
    # results beside another's plots, and nothing said so.
    import shutil

    from microspeech.evaluation import evaluate as evaluate_module

    output = tmp_path / "eval"
    shutil.copytree(reference_eval, output)
    before = {path.name: path.read_bytes() for path in output.iterdir()}

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "render_plots", stopped)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(mltk_tflite_path, dataset=str(test_set_dir), output_dir=output, word_offset=0.0)
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before


def test_a_model_without_a_softmax_is_named_with_its_outputs(mltk_tflite_path, test_set_dir, tmp_path):
    # Logits met the metrics' check, which named no file and spoke of dequantizing (an API hint).
    import keras
    import tensorflow as tf

    from microspeech.tflite.metadata import read_parameters, write_parameters

    keras.utils.set_random_seed(0)
    inputs = keras.Input((49, 40, 1))
    logits = keras.layers.Dense(4, kernel_initializer="ones")(keras.layers.Flatten()(inputs))
    converted = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, logits)).convert()
    path = tmp_path / "logits.tflite"
    path.write_bytes(write_parameters(converted, read_parameters(mltk_tflite_path)))
    said = r"logits\.tflite: its outputs .* are not probabilities.*softmax"
    with pytest.raises(EvaluationError, match=said):
        evaluate_model(path, dataset=str(test_set_dir), show_progress=False, output_dir=tmp_path / "out")
