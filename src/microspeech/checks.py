"""Checks at the edge: every number and list a user gives is validated before any work starts.

Each error is an `OptionError` (a `ValueError`, so every command already prints it as one line)
naming the option and stating what would be accepted. NaN and infinities are refused unless a
caller allows infinity explicitly; ranges are counted before they are expanded.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

# A list option expands to at most this many values (a grid of three such lists is still small).
MAX_LIST_VALUES = 1000
# Seeds feed numpy's and TensorFlow's generators, which take 32-bit seeds.
MAX_SEED = 2**32 - 1
# A generated stream is held in memory (int16 plus float work arrays): 4 hours is ~0.5 GB.
MAX_STREAM_MINUTES = 240.0
# A false-accept budget beyond one an inference (36,000 an hour at 100 ms) is no budget; this bound
# (one a millisecond) only keeps the arithmetic finite.
MAX_FA_PER_HOUR = 3.6e6
# Keyword-to-noise ratios a stream can be built at (inf: clean, where accepted).
SNR_DB_RANGE = (-40.0, 100.0)


class OptionError(ValueError):
    """An option's value is outside what is accepted; the message names the option and the range."""


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {_bound(low)} to {_bound(high)}"
    if low is not None:
        return f"at least {_bound(low)}"
    if high is not None:
        return f"at most {_bound(high)}"
    return "a finite number"


def _whole(value: float) -> str | None:
    """A whole number in full (a seed's 4294967295, not `:g`'s 4.29497e+09), else None."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e16):
        return str(int(value))
    return None


def _bound(value: float) -> str:
    """A bound in an error message: whole numbers in full, others short."""
    return _whole(value) or f"{value:g}"


def check_number(
    value: float,
    option: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    allow_inf: bool = False,
) -> float:
    """`value` as a float if it is a number within [low, high] (and strictly above `above`).

    NaN is always refused; +-inf only with `allow_inf`: +inf then passes `high` (an SNR's inf is
    a clean stream, not a level), -inf must still pass `low`.
    """
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"{option} {value!r}: expected a number") from None
    accepted = (
        _range_text(low, high)
        if above is None
        else f"above {above:g}" + (f" and at most {high:g}" if high is not None else "")
    )
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise OptionError(f"{option} {value}: expected a finite number, {accepted}")
    if number == math.inf:
        return number
    if (
        (low is not None and number < low)
        or (high is not None and number > high)
        or (above is not None and not number > above)
    ):
        raise OptionError(f"{option} {_as_given(value, number)}: out of range; expected {accepted}")
    return number


def _as_given(value: object, number: float) -> str:
    """The value as the user wrote it (3600001, not the 3.6e+06 that `:g` rounds it to)."""
    if isinstance(value, str):
        return value.strip()
    return _whole(value if isinstance(value, int) else number) or repr(number)


def is_whole_number(value: object) -> bool:
    """An int or numpy integer, not a bool (True is an int to Python, never a count or a size)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_FLAG_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def exact_value(value: object, kind: type) -> bool | int | float:
    """`value` as `kind` (bool, int or float) when that loses nothing, else a ValueError for the
    caller to name: stored settings (JSON, .tflite metadata) may hold 1000 as 1000.0 or "1000" and
    a flag as 0/1, but 185.9 is no int, "False" no True, a JSON true no number, NaN no setting."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # a numpy scalar
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
            return _FLAG_WORDS[value.strip().lower()]
        if is_whole_number(value) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(value)
    number = float(value)  # ValueError for a word
    if not math.isfinite(number):
        raise ValueError(value)
    if kind is float:
        return number
    if is_whole_number(value):
        return int(value)  # exact, even past 2**53
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def whole_within(value: object, low: float, high: float) -> int | None:
    """`value` as an int when it is a whole number (150.0 and "150" are; 150.5 is not) within
    [low, high]; None otherwise, for the caller to name."""
    try:
        number = exact_value(value, int)
    except (TypeError, ValueError, OverflowError):
        return None
    return int(number) if low <= number <= high else None


def check_int(value: int, option: str, *, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int if it is an integer (a numpy one too: a seed from a numpy array) within
    [low, high]."""
    if not is_whole_number(value):
        raise OptionError(f"{option} {value!r}: expected an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise OptionError(f"{option} {value}: out of range; expected an integer {_range_text(low, high)}")
    return int(value)


def check_seed(seed: int, option: str = "--seed") -> int:
    return check_int(seed, option, low=0, high=MAX_SEED)


def check_minutes(minutes: float, option: str = "--minutes") -> float:
    return check_number(minutes, option, above=0.0, high=MAX_STREAM_MINUTES)


def parse_int_list(
    text: str, option: str, *, low: int, high: int, max_count: int = MAX_LIST_VALUES
) -> list[int]:
    """Comma-separated integers and inclusive ranges `START-END` or `START-END/STEP`, bounded.

    Every bound and the count are checked before a range is expanded, so `0-1000000000`
    is an error, not a gigabyte list.
    """
    expected = (
        f"integers from {low} to {high} and ranges such as {low}-{high}/5, separated by commas, "
        f"at most {max_count} values"
    )
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise OptionError(f"{option} {text!r}: give at least one value ({expected})")
    if not all(items):  # "5,,10": a value left out, not a separator typed twice
        raise OptionError(f"{option} {text!r}: an empty value between commas; expected {expected}")
    if len(items) > max_count:
        raise OptionError(f"{option}: {len(items)} values; expected {expected}")
    spans: list[range] = []
    for item in items:
        span, slash, step_text = item.partition("/")
        start_text, dash, end_text = span.partition("-")
        try:
            if dash and start_text.strip():
                start, end = int(start_text), int(end_text)
                step = int(step_text) if slash else 1
            elif slash:
                raise ValueError(item)
            else:
                start = end = int(span)
                step = 1
        except ValueError:
            raise OptionError(f"{option} {text!r}: {item!r} is not understood; expected {expected}") from None
        if step <= 0:
            raise OptionError(f"{option} {item!r}: the step must be a positive integer")
        if not (low <= start <= high and low <= end <= high):
            raise OptionError(f"{option} {item!r}: out of range; expected {expected}")
        if end < start:
            raise OptionError(f"{option} {item!r}: the range ends before it starts")
        spans.append(range(start, end + 1, step))
    count = sum(len(span) for span in spans)
    if count > max_count:
        raise OptionError(f"{option} {text!r}: {count} values; expected {expected}")
    return [value for span in spans for value in span]


def parse_float_list(
    text: str,
    option: str,
    *,
    low: float,
    high: float,
    allow_inf: bool = False,
    max_count: int = 100,
) -> list[float]:
    """Comma-separated numbers within [low, high] (inf too with `allow_inf`), at most `max_count`."""
    items = [part.strip() for part in str(text).split(",")]
    if not any(items):
        raise OptionError(f"{option} {text!r}: give at least one number")
    if not all(items):  # "5,,10": a value left out, not a separator typed twice
        raise OptionError(f"{option} {text!r}: an empty value between commas")
    if len(items) > max_count:
        raise OptionError(f"{option}: {len(items)} values; at most {max_count} are accepted")
    return [check_number(item, option, low=low, high=high, allow_inf=allow_inf) for item in items]


def parse_snr_list(text: str, option: str = "--snr-db", *, segmented: bool = False) -> list[float]:
    """Signal-to-noise ratios in dB (SNR_DB_RANGE), `inf` for clean; clean mixes with noisy
    ratios only when each is a segment of its own (`segmented`), not word by word."""
    # "clean" as BENCHMARKS.md and benchmarks/detection.py name it: inf, a segment without noise.
    text = ",".join("inf" if part.strip().lower() == "clean" else part for part in str(text).split(","))
    snrs = parse_float_list(text, option, low=SNR_DB_RANGE[0], high=SNR_DB_RANGE[1], allow_inf=True)
    twice = sorted({snr for snr in snrs if snrs.count(snr) > 1})
    if twice:  # 10,10 built another stream than 10, and two segments under one key
        raise OptionError(f"{option} {text}: {', '.join(f'{snr:g}' for snr in twice)} given twice")
    if len(snrs) > 1 and math.inf in snrs and not segmented:
        raise OptionError(
            f"{option} {text}: a clean stream (inf) cannot mix with noisy SNRs word by word; "
            "add --segmented to play each as a segment of its own"
        )
    return snrs


def check_stream_request(
    minutes: object, snr_db: object, seed: object, tolerance_ms: object, *, segmented: bool
) -> tuple[float, list[float], int, int]:
    """What a stream is built and scored from, checked as the CLI checks --minutes, --snr-db and
    --seed (the Python API took NaN, "3", seed None or 1.0 and an empty SNR list into numpy's
    errors, and 1000 minutes or a negative tolerance silently); the minutes and SNRs as floats,
    the seed and tolerance as ints (a numpy integer would not go into the results' JSON)."""
    minutes = check_minutes(minutes)  # type: ignore[arg-type]
    seed = check_seed(seed)  # type: ignore[arg-type]
    # At most the streams' shortest gap between clips (data.streams, 2.5 s): a longer late window
    # overlapped the next clip's, and a late hit was scored as a false accept on that clip.
    tolerance_ms = check_int(tolerance_ms, "tolerance_ms", low=0, high=2_500)  # type: ignore[arg-type]
    # One value (numpy's scalars are numbers.Real too) or several.
    values = [snr_db] if isinstance(snr_db, numbers.Real | str) else list(snr_db)  # type: ignore[call-overload]
    if not values:
        raise OptionError("--snr-db: give at least one SNR (inf: clean)")
    snrs = parse_snr_list(",".join(str(value) for value in values), segmented=segmented)
    return minutes, snrs, seed, tolerance_ms


def check_named(value: object, option: str) -> None:
    """An empty or blank name given for an optional dataset or folder: refused, since it fell back
    to the default (another dataset, or the current folder) without a word. None is "not given"."""
    if isinstance(value, str) and not value.strip():
        raise OptionError(
            f"{option} {value!r}: an empty name; give a dataset name or folder (or leave it out)"
        )


def check_output_file(path: Path, option: str) -> Path:
    """`path` if a file can be written there: not a folder, its parent a writable folder (or creatable).
    A link is checked where it points, as the write follows it (the work ran, then failed there)."""
    from microspeech.files import WriteError, is_special_file, output_target

    path = Path(path)
    if path.is_dir():
        raise OptionError(f"{option} {path}: is a folder; give a file name")
    try:
        target = output_target(path)  # where the write lands, as the writers decide it
    except WriteError as error:  # a dangling link into a folder that does not exist
        raise OptionError(f"{option} {path}: {str(error).removeprefix(f'cannot write {path}: ')}") from None
    if is_special_file(target):  # /dev/null, /dev/stdout, a pipe: written in place
        return path
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OptionError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {path}: the folder {parent} is not writable")
    return path


def check_output_folder(path: Path, option: str) -> Path:
    """`path` if it is (or can be created as) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {path}: is a file, not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: "File exists" came only after the work
            raise OptionError(
                f"{option} {path}: {existing} is a link to {os.readlink(existing)}, which does not exist"
            )
        existing = existing.parent
    if not existing.is_dir():
        raise OptionError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        raise OptionError(f"{option} {path}: the folder {existing} is not writable")
    return path


def check_output_outside(
    directory: Path,
    datasets: Sequence[str | Path | tuple[str, Path]],
    what: str = "its checkpoint, logs and model",
    option: str = "--output",
) -> None:
    """An output folder inside a dataset folder would add `what` to the dataset's files (a word
    folder of JSON and PNG files, unusable clips to every later load). A dataset is a folder, or
    (name, root) for a name whose folder is elsewhere; names that are no folder are skipped."""
    folder = Path(directory).resolve()
    for dataset in datasets:
        named, root = dataset if isinstance(dataset, tuple) else (str(dataset), Path(dataset).expanduser())
        # A named dataset's folder may not exist yet: made (downloaded, generated) by this run.
        exists = isinstance(dataset, tuple) or root.is_dir()
        if exists and (folder == root.resolve() or root.resolve() in folder.parents):
            shown = named if Path(named).expanduser() == root else f"{named} (kept in {root})"
            raise OptionError(
                f"{option} {directory}: inside the dataset {shown}; {what} would become files of "
                "the dataset. Choose a folder outside it" + (" (--output)" if option != "--output" else "")
            )


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in `folder`, tried: os.access says yes to root everywhere, also
    where nothing can be written (/sys, a read-only mount). The probe is removed at once."""
    import tempfile

    try:
        # Not a dotfile: shares that veto those (Samba's "veto files = /.*/") refused a writable folder.
        handle, probe = tempfile.mkstemp(dir=folder, prefix="microspeech-write-probe-")
    except OSError:
        return False
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True
