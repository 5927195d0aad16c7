"""Option checks at the edge: NaN/inf refused, ranges counted before they are expanded."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microspeech.checks import (
    OptionError,
    check_int,
    check_minutes,
    check_named,
    check_number,
    check_output_folder,
    check_seed,
    exact_value,
    parse_float_list,
    parse_int_list,
    parse_snr_list,
)


def test_int_list_ranges_steps_and_values():
    assert parse_int_list("100-110/5, 7", "--x", low=0, high=255) == [100, 105, 110, 7]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0-1000000000", "out of range"),  # issue 16, case 1: this grew to 24 GB
        ("10-5", "ends before"),
        ("1-9/0", "step"),
        ("1-9/-2", "step"),
        ("abc", "not understood"),
        ("", "at least one"),
        ("-5", "out of range"),
        ("100,,200", "an empty value between commas"),  # was [100, 200]
        ("100,", "an empty value between commas"),
    ],
)
def test_int_list_refuses_with_the_option_named(text, fragment):
    with pytest.raises(OptionError, match=fragment) as error:
        parse_int_list(text, "--thresholds", low=0, high=255)
    assert "--thresholds" in str(error.value)


def test_int_list_counts_before_expanding():
    tracemalloc.start()
    try:
        with pytest.raises(OptionError, match="5000001 values"):
            parse_int_list("0-5000000", "--windows", low=0, high=10**9, max_count=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), math.inf])
def test_numbers_refuse_nan_and_infinities(value):
    with pytest.raises(OptionError, match="--clock-mhz"):
        check_number(value, "--clock-mhz", above=0.0)


def test_numbers_bounds_and_allowed_inf():
    assert check_number("inf", "--snr-db", low=-40, allow_inf=True) == math.inf
    # A clean stream's SNR passes the upper bound of levels (the README's `--snr-db inf`).
    assert check_number("inf", "--snr-db", low=-40, high=100, allow_inf=True) == math.inf
    with pytest.raises(OptionError, match="out of range"):
        check_number(101, "--snr-db", low=-40, high=100, allow_inf=True)
    with pytest.raises(OptionError, match="from -40 to 100"):
        check_number(-math.inf, "--snr-db", low=-40, high=100, allow_inf=True)
    with pytest.raises(OptionError, match="above 0"):
        check_number(0, "--max-fa-per-hour", above=0.0)
    with pytest.raises(OptionError, match="--minutes"):
        check_minutes(math.inf)
    assert parse_float_list("5, 10,inf", "--snr-db", low=-40, high=100, allow_inf=True)[-1] == math.inf
    with pytest.raises(OptionError, match="--snr-db '5,,10': an empty value between commas"):
        parse_float_list("5,,10", "--snr-db", low=-40, high=100)  # was [5, 10]


def test_snr_lists_mix_clean_with_noise_only_in_segments():
    assert parse_snr_list("inf") == [math.inf] and parse_snr_list("5,10") == [5.0, 10.0]
    assert parse_snr_list("inf,30,0", segmented=True) == [math.inf, 30.0, 0.0]
    with pytest.raises(OptionError, match="--snr-db inf,30: .*add --segmented"):
        parse_snr_list("inf,30")
    with pytest.raises(OptionError, match="--snr-db 101"):
        parse_snr_list("101", segmented=True)


def test_seeds_are_32_bit():
    assert check_seed(2**32 - 1) == 2**32 - 1
    for seed in (-1, 2**32):
        with pytest.raises(OptionError, match="--seed"):
            check_seed(seed)
    with pytest.raises(OptionError, match="integer"):
        check_int(1.5, "--runs")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="integer"):
        check_int(True, "--runs")


def test_numpy_integers_are_integers_and_come_back_as_int():
    checked = check_seed(np.uint32(7))
    assert checked == 7 and type(checked) is int
    with pytest.raises(OptionError, match="--seed -1"):
        check_seed(np.int64(-1))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789-/, x", max_size=40))
def test_int_list_fuzz_named_error_or_bounded_list(text):
    try:
        values = parse_int_list(text, "--counts", low=0, high=10**9, max_count=1000)
    except OptionError as error:
        assert "--counts" in str(error)
    else:
        assert 1 <= len(values) <= 1000 and all(0 <= v <= 10**9 for v in values)


def test_exact_value_converts_only_without_loss():
    assert exact_value(np.float32(1000.0), int) == 1000 and isinstance(exact_value(1000.0, int), int)
    assert exact_value(2**60 + 1, int) == 2**60 + 1  # not through a float
    assert (
        exact_value("40", int) == 40 and exact_value(" Yes ", bool) is True and exact_value(0, bool) is False
    )
    assert exact_value(np.int8(3), float) == 3.0
    for value, kind in [
        (185.9, int),
        ("False!", bool),
        (2, bool),
        (True, int),
        (True, float),
        ("nan", float),
        (float("inf"), float),
        (None, int),
        ([1], int),
        (b"1", int),
    ]:
        with pytest.raises(ValueError):
            exact_value(value, kind)


def test_an_output_file_through_a_link_is_checked_where_the_link_points(tmp_path):
    # profile --json LINK ran the whole profile, then failed writing where LINK pointed.
    from pathlib import Path

    from microspeech.checks import check_output_file

    (tmp_path / "plain.txt").write_text("x")
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "plain.txt" / "x.json")
    with pytest.raises(OptionError, match=r"--json .*out.json: a link to .*plain.txt/x.json, whose folder"):
        check_output_file(link, "--json")
    missing = tmp_path / "missing.json"
    missing.symlink_to(tmp_path / "folder" / "x.json")  # the write refuses a folder a link names
    with pytest.raises(OptionError, match=r"--json .*missing.json: a link to .*x.json, whose folder"):
        check_output_file(missing, "--json")
    good = tmp_path / "good.json"
    good.symlink_to(tmp_path / "x.json")  # dangling into a folder that exists: the file is created
    assert check_output_file(good, "--json") == good
    assert check_output_file(Path("/dev/null"), "--json") == Path("/dev/null")  # written in place


def test_snr_lists_take_clean_and_refuse_a_value_given_twice():
    # "clean" (as BENCHMARKS.md names it) was "not a number"; 10,10 built another stream than 10,
    # and with --segmented two segments under one key.
    import math

    assert parse_snr_list("clean,10", "--snr-db", segmented=True) == [math.inf, 10.0]
    with pytest.raises(OptionError, match=r"--snr-db 10,10: 10 given twice"):
        parse_snr_list("10,10", "--snr-db")


def test_an_output_folder_is_refused_before_the_work_where_it_cannot_be_made(tmp_path):
    # A dangling link and /sys (os.access answers yes to root there) failed at the first file
    # written, after the work: "File exists", "Operation not permitted".
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for folder, said in (
        (tmp_path / "dangling", "dangling is a link to"),
        (tmp_path / "dangling" / "deeper", "dangling is a link to"),
        (Path("/sys/microspeech-probe"), "the folder /sys is not writable"),
    ):
        with pytest.raises(OptionError, match=said):
            check_output_folder(folder, "--output")
    assert check_output_folder(tmp_path / "new" / "deeper", "--output") == tmp_path / "new" / "deeper"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dangling"]  # the probe is gone


def test_an_empty_dataset_name_is_refused_not_taken_as_the_default():
    check_named(None, "--dataset")
    check_named("speech_commands_test_set_v0.02", "--dataset")
    with pytest.raises(OptionError, match="--dataset '  ': an empty name"):
        check_named("  ", "--dataset")
