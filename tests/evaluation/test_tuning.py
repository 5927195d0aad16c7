"""The tuning choice on hand-made curves: the pick, its preference order, the slack rule."""

from __future__ import annotations

import json

import pytest

from microspeech.data.streams import DetectionSummary
from microspeech.evaluation.tuning import (
    CheckedSetting,
    DetectionSetting,
    ReplayedSetting,
    candidates,
    choose,
    pick,
    verify_candidates,
)

HOURS = 0.5  # a 30-minute stream: one false accept is 2 FA/h


def summary(misses, false_accepts):
    return DetectionSummary(100 - misses, misses, misses / 100, false_accepts, false_accepts / HOURS, 0)


def row(threshold, window=1000, count=3, suppression=750, misses=10, false_accepts=0):
    setting = DetectionSetting(threshold, window, count, suppression)
    return ReplayedSetting(setting, summary(misses, false_accepts))


def test_the_pick_has_the_fewest_misses_within_the_budget():
    rows = [row(150, misses=2, false_accepts=3), row(180, misses=5, false_accepts=1), row(200, misses=9)]
    assert pick(rows, max_fa_per_hour=2.0).setting.detection_threshold == 180  # 150 misses less: 6 FA/h
    assert pick(rows, max_fa_per_hour=6.0).setting.detection_threshold == 150
    assert pick([row(150, false_accepts=3)], max_fa_per_hour=2.0) is None


def test_ties_prefer_fewer_false_accepts_then_a_higher_threshold_shorter_window_longer_suppression():
    def picked(*rows):
        return pick(rows, 2.0).setting

    assert picked(row(180, false_accepts=1), row(200, false_accepts=0)).detection_threshold == 200
    assert picked(row(180), row(200)).detection_threshold == 200
    assert picked(row(200, window=1000), row(200, window=500)).average_window_duration_ms == 500
    assert picked(row(200, suppression=500), row(200, suppression=1500)).suppression_ms == 1500


def test_the_slack_rule_checks_rows_one_false_accept_over_the_budget_but_not_more():
    within = row(200, misses=20, false_accepts=1)  # 2 FA/h: at the budget
    one_over = row(180, misses=10, false_accepts=2)  # 4 FA/h: one false accept over
    far_over = row(150, misses=1, false_accepts=5)  # 10 FA/h
    shortlist = candidates([within, one_over, far_over], max_fa_per_hour=2.0, stream_hours=HOURS)
    assert within in shortlist and one_over in shortlist and far_over not in shortlist
    assert shortlist.index(within) < shortlist.index(one_over)  # within the budget first
    assert candidates([within, one_over], 2.0, HOURS, check_over_budget=False) == [within]


def test_rows_with_false_accepts_to_spare_are_shortlisted_too():
    # More than `verify` rows at the budget: those with one or two false accepts to spare still get
    # a firmware check, since the firmware's resets can add a false accept.
    at_budget = [row(t, misses=5, false_accepts=1) for t in (150, 160, 170, 180)]
    spare = row(230, misses=30, false_accepts=0)
    shortlist = candidates([*at_budget, spare], max_fa_per_hour=2.0, stream_hours=HOURS, verify=2)
    assert spare in shortlist and len([r for r in shortlist if r in at_budget]) == 2


def entry(threshold, misses, fa_per_hour):
    setting = DetectionSetting(threshold, 1000, 3, 750)
    return CheckedSetting(setting, summary(misses, round(fa_per_hour * HOURS)))


def test_the_choice_follows_the_firmware_result_and_the_models_own_parameters_compete():
    replay_best = entry(180, misses=5, fa_per_hour=4.0)  # fitted on replay, overshoots on the firmware
    second = entry(200, misses=8, fa_per_hour=2.0)
    current = entry(185, misses=12, fa_per_hour=0.0)
    assert choose([replay_best, second], current, 2.0) is second
    assert choose([replay_best], current, 2.0) is current
    assert choose([replay_best], entry(185, 12, 6.0), 2.0) is None


def _firmware(outcomes):
    """A fake firmware loop: the (hits, false accepts) each threshold really gives, and a log of calls."""
    calls = []

    def firmware_score(setting):
        calls.append(setting.detection_threshold)
        hits, false_accepts = outcomes[setting.detection_threshold]
        return summary(100 - hits, false_accepts)

    return firmware_score, calls


def test_the_firmware_check_walks_down_past_a_shortlist_that_overshoots():
    # The best replayed rows all gain a false accept on the firmware loop; the 0-FA rows are poor.
    # The walk must reach threshold 192 (73 hits) instead of settling for 248 (13 hits).
    replayed = [row(188, misses=23, false_accepts=1), row(184, misses=23, false_accepts=1)]
    replayed += [row(192, misses=28, false_accepts=1), row(136, misses=29, false_accepts=1)]
    replayed += [row(248, misses=87, false_accepts=0), row(236, misses=88, false_accepts=0)]
    replayed += [row(t, misses=95, false_accepts=0) for t in (250, 252, 254)]
    truth = {188: (78, 2), 184: (79, 2), 192: (73, 1), 136: (75, 2), 248: (13, 0), 236: (12, 0)}
    truth |= {250: (5, 0), 252: (5, 0), 254: (5, 0)}
    firmware_score, calls = _firmware(truth)
    verified = verify_candidates(replayed, 2.0, HOURS, firmware_score, verify=1, check_over_budget=False)
    current = CheckedSetting(DetectionSetting(0, 0, 0, 0), summary(100, 0))
    assert choose(verified, current, 2.0).setting.detection_threshold == 192
    # Each check holds the row's replayed score beside the firmware's.
    replayed_scores = {r.setting: r.score for r in replayed}
    assert all(entry.replayed == replayed_scores[entry.setting] for entry in verified)
    # It stops once no row further down can beat the best fitting result: 250-254 are never run.
    assert not {250, 252, 254} & set(calls) and len(calls) == len(set(calls))


def test_the_walk_respects_its_budget_of_firmware_checks():
    replayed = [row(100 + t, misses=t, false_accepts=1) for t in range(40)]  # every one overshoots
    firmware_score, calls = _firmware({100 + t: (100 - t, 3) for t in range(40)})
    verified = verify_candidates(replayed, 2.0, HOURS, firmware_score, verify=2, max_checks=7)
    assert len(calls) == len(verified) == 7


def _scripted_stream():
    """A minute of stream whose scores are written by hand: two "yes" (score 230), two "no"
    (score 150, a weak keyword) and another word that looks like "yes" (200)."""
    import numpy as np

    from microspeech.audio import SAMPLE_RATE
    from microspeech.data.streams import KeywordStream, StreamEvent

    classes = ["yes", "no", "_unknown_", "_silence_"]
    times_ms = np.arange(100, 60_001, 100, dtype=np.int64)
    scores = np.zeros((len(times_ms), 4), np.uint8)
    scores[:, 3] = 240  # silence between the words
    events = []
    for second, word, index, level in ((5, "yes", 0, 230), (15, "yes", 0, 230), (25, "no", 1, 150)):
        events.append(StreamEvent(second * SAMPLE_RATE, SAMPLE_RATE, word, word, True, 20.0, word))
        during = (times_ms > second * 1000) & (times_ms <= second * 1000 + 800)
        scores[during] = 0
        scores[during, index] = level
    events.append(StreamEvent(35 * SAMPLE_RATE, SAMPLE_RATE, "no", "no", True, 20.0, "no2"))
    during = (times_ms > 35_000) & (times_ms <= 35_800)
    scores[during] = 0
    scores[during, 1] = 150
    events.append(StreamEvent(45 * SAMPLE_RATE, SAMPLE_RATE, "left", "_unknown_", False, 20.0, "left"))
    during = (times_ms > 45_000) & (times_ms <= 45_800)
    scores[during] = 0
    scores[during, 0] = 200  # taken for "yes": a false accept below 200
    stream = KeywordStream(np.zeros(60 * SAMPLE_RATE, np.int16), events, 0.0, 0)
    return stream, scores, times_ms, classes


def test_per_class_thresholds_find_a_weak_keyword_that_one_threshold_cannot_without_false_accepts():
    from microspeech.data.streams import score_detections
    from microspeech.detection.detector import replay
    from microspeech.detection.params import DetectionParams
    from microspeech.evaluation.tuning import sweep

    stream, scores, times_ms, classes = _scripted_stream()
    base = DetectionParams(average_window_duration_ms=300, minimum_count=1, suppression_ms=750)
    grid = {"thresholds": range(100, 256, 10), "windows": (300,), "minimum_counts": (1,)}
    one = pick(sweep(stream, scores, times_ms, classes, base, **grid), max_fa_per_hour=0.0)
    # "no" needs < 150, where "left" fires too
    assert one.score.hits == 2 and one.setting.detection_threshold_list is None
    rows = sweep(stream, scores, times_ms, classes, base, per_class=True, **grid)
    best = pick(rows, max_fa_per_hour=0.0)
    yes, no, unknown, silence = best.setting.detection_threshold_list
    assert best.score.hits == 4 and best.score.false_accepts == 0
    assert 200 <= yes < 230 and no < 150 and unknown == silence == 255
    # Every row's score is the whole list replayed at once, as the firmware applies it.
    for row in rows:
        params = DetectionParams(average_window_duration_ms=300, minimum_count=1, suppression_ms=750)
        listed = list(row.setting.detection_threshold_list)
        detections = replay(scores, times_ms, classes, params, class_thresholds=listed)
        score = score_detections(stream.events, detections, stream.seconds)
        assert (score.hits, score.false_accepts) == (row.score.hits, row.score.false_accepts)
    # More false accepts allowed: the front holds a list that fires on "left" too only if it finds more.
    assert [row.score.hits for row in rows] == sorted({row.score.hits for row in rows})


# A one-minute stream and a grid of two thresholds: what the tuning tests on a trained model need.
SMALL_GRID = {
    "minutes": 1,
    "thresholds": [128, 200],
    "windows": [1000],
    "minimum_counts": [1],
    "show_progress": False,
}


def test_validation_tuning_streams_the_training_dataset(trained_test_model, subset_dir):
    # `tune MODEL --split validation` without --dataset streamed the official test set, which has
    # no validation clips ("no validation-split clips of the keywords"): the README's own command.
    from microspeech.evaluation.tuning import tune_detection

    report = tune_detection(trained_test_model, max_fa_per_hour=1000, split="validation", **SMALL_GRID)
    assert report.dataset == subset_dir.resolve().name


def test_per_class_tuning_refuses_a_stream_without_a_keyword(trained_test_model, subset_dir, tmp_path):
    # The stream held "no" but no "yes": the per-class list gave "yes" 255 (never detected) and
    # `--write` stored it, silently switching the keyword off.
    from microspeech.evaluation.tuning import tune_detection

    for word in ("no", "cat", "_background_noise_"):
        (tmp_path / word).mkdir()
        for clip in sorted((subset_dir / word).glob("*.wav"))[:30]:
            (tmp_path / word / clip.name).write_bytes(clip.read_bytes())
    with pytest.raises(ValueError, match=r"--per-class: the tuning stream holds no clip of 'yes'"):
        tune_detection(
            trained_test_model,
            max_fa_per_hour=1000,
            dataset=str(tmp_path),
            split="train",
            per_class=True,
            **SMALL_GRID,
        )


def test_one_threshold_tuning_never_keeps_a_stored_list(trained_test_model, subset_dir, tmp_path):
    # Without --per-class the stored list competed as "current" and, when it won, `--write` kept it,
    # though the option says it then stores one threshold for all and removes the list.
    from microspeech.evaluation.tuning import tune_detection
    from microspeech.tflite.metadata import read_parameters, write_parameters

    source = next(trained_test_model.glob("*.tflite"))
    listed = tmp_path / source.name
    parameters = read_parameters(source.read_bytes())
    parameters["detection_threshold_list"] = [120, 120, 255, 255]
    listed.write_bytes(write_parameters(source.read_bytes(), parameters))
    # Thresholds far worse than the stored list, which would win if it competed.
    grid = {**SMALL_GRID, "thresholds": [250, 254]}
    report = tune_detection(listed, max_fa_per_hour=1e6, split="validation", dataset=str(subset_dir), **grid)
    assert report.tuning.current.setting.detection_threshold_list == (120, 120, 255, 255)
    assert report.tuning.chosen is not None and report.tuning.chosen.setting.detection_threshold_list is None


def test_a_stored_list_the_firmware_cannot_use_is_set_aside_and_writing_mends_it(
    trained_test_model, subset_dir, tmp_path
):
    # A hand-edited list with a 999 stopped tune like every other command, though tune --write is
    # what replaces it.
    from microspeech.detection.keyword_model import ModelLoadError, load_keyword_model
    from microspeech.evaluation.tuning import tune_detection, write_detection_params
    from microspeech.tflite.metadata import read_parameters, write_parameters

    source = next(trained_test_model.glob("*.tflite"))
    broken = tmp_path / source.name
    parameters = read_parameters(source.read_bytes())
    parameters["detection_threshold_list"] = [120, 999, 255, 255]
    broken.write_bytes(write_parameters(source.read_bytes(), parameters))
    with pytest.raises(ModelLoadError, match=r"detection_threshold_list .*tune MODEL --write. replaces it"):
        load_keyword_model(broken)
    stream = {"split": "validation", "dataset": str(subset_dir), **SMALL_GRID}
    report = tune_detection(broken, max_fa_per_hour=1e6, **stream)
    assert "detection_threshold_list [120, 999, 255, 255]" in report.ignored_threshold_list
    assert "replaces it" not in report.ignored_threshold_list
    assert report.tuning.current.setting.detection_threshold == parameters["detection_threshold"]
    assert report.tuning.current.setting.detection_threshold_list is None
    assert report.to_dict()["ignored_threshold_list"] == report.ignored_threshold_list
    write_detection_params(broken, report.tuning.chosen.setting.to_dict())
    mended = load_keyword_model(broken)
    assert mended.class_thresholds is None
    assert mended.detection.detection_threshold == report.tuning.chosen.setting.detection_threshold
    clean = tune_detection(source, max_fa_per_hour=1e6, **stream)
    assert clean.ignored_threshold_list is None


def test_tuning_on_silicon_labs_kernels_says_so(trained_test_model, subset_dir):
    from microspeech.evaluation.tuning import tune_detection

    report = tune_detection(
        trained_test_model, max_fa_per_hour=1000, split="validation", backend="silabs-tflm", **SMALL_GRID
    )
    assert report.tuning.runtime == report.to_dict()["runtime"] == "silabs-tflm"
    default = tune_detection(trained_test_model, max_fa_per_hour=1000, split="validation", **SMALL_GRID)
    assert default.tuning.runtime == "litert"


def test_counts_a_window_cannot_hold_are_never_picked(trained_test_model):
    # tune --windows 300 --counts 5 --write wrote a setting that can never detect anything
    # (at most 4 results fit 300 ms at one inference every 100 ms).
    from microspeech.evaluation.tuning import tune_detection

    grid = {**SMALL_GRID, "windows": [300], "minimum_counts": [5]}
    with pytest.raises(ValueError, match=r"--counts 5: no window of --windows holds that many results"):
        tune_detection(trained_test_model, max_fa_per_hour=1000, split="validation", **grid)
    grid["minimum_counts"] = [1, 5]
    report = tune_detection(trained_test_model, max_fa_per_hour=1000, split="validation", **grid)
    assert {row.setting.minimum_count for row in report.tuning.rows} == {1}


def test_suppressions_are_swept_and_the_grid_is_bounded(trained_test_model):
    # tune had no --suppressions (train's calibration sweeps four), and a grid of 256 x 1000 x 51
    # points ran for minutes past 1.7 GB before anything was said.
    from microspeech.checks import OptionError
    from microspeech.evaluation.tuning import MAX_GRID_POINTS, tune_detection

    grid = {**SMALL_GRID, "suppressions": [500, 1500]}
    report = tune_detection(trained_test_model, max_fa_per_hour=1000, split="validation", **grid)
    assert {row.setting.suppression_ms for row in report.tuning.rows} == {500, 1500}
    huge = {"thresholds": range(256), "windows": range(10, 10_001, 10), "minimum_counts": range(51)}
    with pytest.raises(OptionError, match=f"13,056,000 replays of the stream; at most {MAX_GRID_POINTS:,}"):
        tune_detection(trained_test_model, max_fa_per_hour=2, split="validation", **huge)


def test_another_split_of_a_model_without_a_manifest_asks_for_a_dataset(trained_test_model, tmp_path):
    # It fell back to the official test set (a download), which has no validation split anyway.
    from microspeech.checks import OptionError
    from microspeech.evaluation.tuning import tune_detection

    bare = tmp_path / "bare.tflite"
    bare.write_bytes((trained_test_model / "tflite_micro_speech-test.tflite").read_bytes())
    with pytest.raises(OptionError, match="--split validation: .*bare.tflite records no training dataset"):
        tune_detection(bare, max_fa_per_hour=2, split="validation", **SMALL_GRID)


def test_tune_never_writes_over_the_model_and_keeps_its_mode(trained_test_model, mltk_tflite_path, tmp_path):
    # --output at the model's own .tflite replaced it with JSON; --write made a 0600 model 0644
    # and wrote into a read-only one (as root).
    import shutil
    import stat

    from typer.testing import CliRunner

    from microspeech.cli import app
    from microspeech.tflite.metadata import read_parameters, write_parameters

    model = tmp_path / "model"
    shutil.copytree(trained_test_model, model)
    tflite = model / "tflite_micro_speech-test.tflite"
    # The run's files with a model that finds keywords: a pick that detects nothing is not written,
    # and whether a three-epoch dry run puts a keyword on top anywhere in a minute of stream is
    # chance (it stopped doing so when the recipe's warm-up changed). MLTK's shipped model, under
    # the run's name, finds most of them.
    shipped = mltk_tflite_path.read_bytes()
    renamed = {**read_parameters(shipped), "name": "tflite_micro_speech-test"}
    tflite.write_bytes(write_parameters(shipped, renamed))
    before = tflite.read_bytes()
    runner = CliRunner()
    # A budget any detection fits.
    small = ["--max-fa-per-hour", "1000000", "--split", "validation", "--thresholds", "0,150,200"]
    small += ["--windows", "500", "--minutes", "1"]
    refused = runner.invoke(app, ["tune", str(model), *small, "--counts", "1", "--output", str(tflite)])
    assert refused.exit_code == 2 and "that is the model being tuned" in " ".join(refused.output.split())
    assert tflite.read_bytes() == before
    history = (model / "history.csv").read_bytes()  # replaced by the JSON before
    over_history = ["--counts", "1", "--output", str(model / "history.csv")]
    refused = runner.invoke(app, ["tune", str(model), *small, *over_history])
    assert refused.exit_code == 2 and "a file of the training run" in " ".join(refused.output.split())
    assert (model / "history.csv").read_bytes() == history
    tflite.chmod(0o444)
    refused = runner.invoke(app, ["tune", str(model), *small, "--counts", "1", "--write"])
    assert refused.exit_code == 2 and "cannot be written (read-only" in " ".join(refused.output.split())
    assert tflite.read_bytes() == before
    tflite.chmod(0o600)
    calibrated = json.loads((model / "manifest.json").read_text())["detection_calibration"]
    written = runner.invoke(app, ["tune", str(model), *small, "--counts", "1", "--write"])
    assert written.exit_code == 0, written.output
    assert stat.S_IMODE(tflite.stat().st_mode) == 0o600
    # The manifest said train's calibration still described the .tflite: now it says what tune wrote.
    manifest = json.loads((model / "manifest.json").read_text())
    tuned, stored = manifest["detection_tuning"], read_parameters(tflite)
    assert manifest["detection_calibration"] == calibrated
    assert tuned["stream"]["minutes"] == 1 and tuned["max_fa_per_hour"] == 1e6
    assert all(stored[key] == value for key, value in tuned["parameters"].items() if value is not None)
    variant = model / "variant.tflite"  # another model beside it: the manifest is not its own
    shutil.copyfile(tflite, variant)
    written = runner.invoke(app, ["tune", str(variant), *small, "--counts", "1", "--write"])
    assert written.exit_code == 0, written.output
    assert json.loads((model / "manifest.json").read_text())["detection_tuning"] == tuned


def test_writing_detection_parameters_keeps_to_them_and_their_stored_types(mltk_tflite_path, tmp_path):
    # An fe.* value or an unknown key was stored, leaving a model no command could read; a list
    # entry 200.7 was cut to 200; volume_gain 3 turned a stored float into a uint8.
    import shutil

    from microspeech.evaluation.tuning import write_detection_params
    from microspeech.tflite.metadata import read_parameters

    model = tmp_path / "model.tflite"
    shutil.copyfile(mltk_tflite_path, model)
    before = model.read_bytes()
    for values, message in (
        ({"fe.filterbank_n_channels": 0, "foo": 1}, r"fe.filterbank_n_channels, foo: not detection param"),
        ({"detection_threshold_list": [200.7, 255, 255, 255]}, "needs one whole 0-255 threshold per class"),
    ):
        with pytest.raises(ValueError, match=message):
            write_detection_params(model, values)
        assert model.read_bytes() == before
    write_detection_params(model, {"volume_gain": 1.5})  # MLTK's uint8 cannot hold it
    assert read_parameters(model.read_bytes(), with_dtypes=True)[1]["volume_gain"] == "float"
    write_detection_params(model, {"volume_gain": 3, "detection_threshold": 190})
    values, dtypes = read_parameters(model.read_bytes(), with_dtypes=True)
    assert values["volume_gain"] == 3.0 and dtypes["volume_gain"] == "float"
    assert values["detection_threshold"] == 190 and dtypes["detection_threshold"] == "uint8"


def test_a_grid_value_given_twice_is_replayed_once(trained_test_model):
    from microspeech.evaluation.tuning import tune_detection

    grid = {**SMALL_GRID, "thresholds": [200, 200, 128, 200], "windows": [1000, 1000]}
    report = tune_detection(trained_test_model, max_fa_per_hour=1000, split="validation", **grid)
    assert report.tuning.grid_points == len(report.tuning.rows) == 2 * len(SMALL_GRID["minimum_counts"])


def test_a_per_class_list_that_silences_a_keyword_is_named():
    """tune --per-class --write stored 255 for a keyword the stream never found within the budget:
    the device then never detects it, and nothing said so (tune now refuses to write it)."""
    from microspeech.evaluation.tuning import silenced_keywords

    classes = ["marvin", "happy", "_unknown_", "_silence_"]
    assert silenced_keywords(classes, [255, 105, 255, 255]) == ["marvin"]
    assert silenced_keywords(classes, [254, 105, 255, 255]) == []
    assert silenced_keywords(classes, None) == []
