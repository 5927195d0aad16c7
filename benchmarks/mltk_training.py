"""Training time of MLTK 0.20 and microspeech on the same bundle, same machine, one run.

    .venv/bin/python benchmarks/mltk_training.py [--skip-full] [--seed 0] [--repeats 1] [--output DIR]
        [--cpu avx2]

Both tools train `tflite_micro_speech` from the command line, as their users run them:
- MLTK: `mltk train tflite_micro_speech` (and `-test`, its dry run) in a virtualenv of its own
  with `silabs-mltk==0.20.0`, TensorFlow 2.16 and what training needs (`MLTK_REQUIREMENTS`),
  built once into `~/.cache/microspeech/mltk-env` (`$MICROSPEECH_MLTK_ENV`) with `--python` (one
  built with another interpreter is refused, not rebuilt: delete it to rebuild). The model is
  MLTK's shipped specification, copied into a folder of its own with one line changed: its
  dataset is the subset bundle instead of the 2.3 GB download (a `load_data()` that returns the
  folder, MLTK's own Speech Commands file lister kept), which is how MLTK documents custom datasets.
  MLTK writes a `.index/` folder into its dataset, so it reads a hard-linked copy of the bundle.
- microspeech: `microspeech train tflite_micro_speech --dataset <bundle>` (and `-test`), from
  the interpreter running this script (`PYTHONPATH=src` selects a worktree's code).

Times are wall times from process start to exit, each command's defaults: MLTK's includes its
evaluation of the .h5 and the int8 .tflite on its validation split (it prints the int8
accuracy); microspeech's includes calibration and the int8 export. MLTK 0.20 has no seed
setting (its augmentation reseeds from the clock), so `--seed` reaches microspeech only.
Both tools' run lengths vary (MLTK's epoch count from run to run, microspeech's with the seed),
so one pair's ratio moves with them: `--repeats N` runs the full pair N times, alternating (MLTK,
then microspeech with seed, seed + 1, ...), and reports each pair and the ratio of the summed times.
Each tool runs with TensorFlow's oneDNN as it chooses: MLTK with TensorFlow's default for the
CPU, microspeech with oneDNN on (`import microspeech` asks for it); `--cpu avx2` runs both as on
a CPU without AVX-512 (bundles.tensorflow_environment).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bundles import (
    CPU_CHOICES,
    CPU_HELP,
    REPO,
    SUBSET,
    check_output,
    cpu_flags,
    description,
    existing_folder,
    fail,
    machine_description,
    positive_int,
    run,
    seed_number,
    shared_bundle,
    tensorflow_environment,
)

MLTK_ENV = Path(os.environ.get("MICROSPEECH_MLTK_ENV", Path.home() / ".cache" / "microspeech" / "mltk-env"))
MLTK_WHEEL = "silabs-mltk==0.20.0"
# What `mltk train` needs, found by trying (installed first, then the wheel without its declared
# dependencies): MLTK's own requirements with its bounds, less pytest, pytest-dependency,
# pytest-html-reporter, cmake, ninja, pyserial, bincopy and tensorflow-probability, which
# training never imports, and with four pins. A plain `pip install silabs-mltk==0.20.0` gives an
# `mltk` that does not start today: typer 0.29 (allowed by `typer<1.0`) no longer brings click,
# which `mltk` imports, and click 8.5 under typer 0.12 fails on "Secondary flag is not valid for
# non-boolean flag". TensorFlow and tf-keras: what pip resolves under MLTK's `tensorflow<2.17`.
MLTK_REQUIREMENTS = (
    "tensorflow==2.16.2",
    "tf-keras==2.16.0",
    "typer==0.12.5",
    "click==8.1.7",
    "protobuf>=3.18,<4.0",
    "tflite-support",
    "librosa<1.0",
    "scipy<2.0",
    "matplotlib<4.0",
    "pillow<11.0",
    "pyaml<22.0",
    "prettytable>=2.0,<3.0",
    "psutil",
    "tqdm<5.0",
    "msgpack",
    "patool==1.12",
    "GPUtil<2.0",
)
MLTK_PACKAGES = (
    "silabs-mltk",
    "tensorflow",
    "tf-keras",
    "numpy",
    "librosa",
    "protobuf",
    "typer",
    "click",
)
MODEL = "tflite_micro_speech"
SHIPPED_DATASET_LINE = "my_model.dataset = speech_commands_v2"
LOCAL_DATASET_LINES = """\
# microspeech benchmark: the local bundle instead of the download; MLTK's file lister and split kept
import types as _types
my_model.dataset = _types.SimpleNamespace(
    load_data=lambda: {dataset!r},
    list_valid_filenames_in_directory=speech_commands_v2.list_valid_filenames_in_directory,
)"""


MLTK_STAMP = MLTK_ENV / "microspeech-requirements.txt"
MLTK_STAMP_TEXT = "\n".join((MLTK_WHEEL, *MLTK_REQUIREMENTS)) + "\n"


def cached_env_python() -> str | None:
    """The base interpreter the cached MLTK environment was built with (pyvenv.cfg, else where its
    python links to); None when no complete environment is cached (the stamp file marks it)."""
    if not (MLTK_STAMP.is_file() and MLTK_STAMP.read_text() == MLTK_STAMP_TEXT):
        return None
    config = MLTK_ENV / "pyvenv.cfg"
    lines = config.read_text().splitlines() if config.is_file() else []
    values = {key.strip(): value.strip() for key, _, value in (line.partition("=") for line in lines)}
    return os.path.realpath(values.get("executable") or MLTK_ENV / "bin" / "python")


def base_interpreter(python: str) -> tuple[str, tuple[int, int]]:
    """(real path, version) of the base interpreter `python -m venv` builds on, or exit naming --python."""
    code = "import os, sys; print(os.path.realpath(sys._base_executable)); print(*sys.version_info[:2])"
    try:
        found = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        fail(f"--python {python}: cannot run it ({error})")
    if found.returncode != 0 or len(found.stdout.split()) != 3:
        last = (found.stderr.strip().splitlines() or ["no output"])[-1]
        fail(f"--python {python}: not a Python 3 interpreter ({last})")
    path, major, minor = found.stdout.split()
    return path, (int(major), int(minor))


def build_mltk_env(python: str) -> Path:
    """The MLTK virtualenv, built on first use; a stamp file holding the requirements marks it complete."""
    if cached := cached_env_python():
        print(f"MLTK environment: cached in {MLTK_ENV} (built with {cached})")
        return MLTK_ENV / "bin"
    shutil.rmtree(MLTK_ENV, ignore_errors=True)
    print(
        f"MLTK environment: building {MLTK_ENV} with {python}: {MLTK_WHEEL}, {', '.join(MLTK_REQUIREMENTS)}",
        flush=True,
    )
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(MLTK_ENV)], check=True)
    pip = [str(MLTK_ENV / "bin" / "python"), "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *MLTK_REQUIREMENTS], check=True)
    subprocess.run([*pip, "--no-deps", MLTK_WHEEL], check=True)
    MLTK_STAMP.write_text(MLTK_STAMP_TEXT)
    print(f"MLTK environment: built in {time.perf_counter() - started:.0f} s", flush=True)
    return MLTK_ENV / "bin"


def package_versions(python: Path | str, packages: tuple[str, ...]) -> str:
    """`name version` of each installed package, as seen by interpreter `python`."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for p in sys.argv[1:]:\n"
        "    try: print(p, m.version(p))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    output = subprocess.run([str(python), "-c", code, *packages], check=True, capture_output=True, text=True)
    return ", ".join(output.stdout.splitlines())


def write_mltk_spec(env_bin: Path, dataset: Path, folder: Path) -> Path:
    """MLTK's shipped spec with its dataset pointed at `dataset`, written as folder/tflite_micro_speech.py."""
    shipped = sorted(
        (env_bin.parent / "lib").glob(f"python3.*/site-packages/mltk/models/tflite_micro/{MODEL}.py")
    )
    if not shipped:
        fail(f"{MODEL}.py not found under {env_bin.parent / 'lib'}; delete {MLTK_ENV} to rebuild it")
    source = shipped[0].read_text()
    if source.count(SHIPPED_DATASET_LINE) != 1:
        fail(f"{shipped[0]} does not contain the line {SHIPPED_DATASET_LINE!r} exactly once")
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / f"{MODEL}.py"
    spec.write_text(source.replace(SHIPPED_DATASET_LINE, LOCAL_DATASET_LINES.format(dataset=str(dataset))))
    return spec


def link_copy(source: Path, destination: Path) -> Path:
    """A hard-linked copy of folder `source` (a plain copy across file systems)."""
    if not destination.is_dir():
        try:
            shutil.copytree(source, destination, copy_function=os.link)
        except OSError:
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(source, destination)
    return destination


def children_cpu_seconds() -> float:
    """User + system CPU time of every finished child process (and the children they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(
    label: str, command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> tuple[float, float, str]:
    """Run `command`, output into `log`: wall and CPU seconds, output. A failure prints the tail, exits."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n[{label}] {' '.join(command)}\n  (in {cwd}; log {log}; load average {load})", flush=True)
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    with log.open("w") as stream:
        result = subprocess.run(command, cwd=cwd, env=env, stdout=stream, stderr=subprocess.STDOUT)
    seconds, cpu_seconds = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    output = log.read_text(errors="replace")
    if result.returncode != 0:
        print("\n".join(output.splitlines()[-40:]))
        sys.exit(f"error: {label} failed (exit code {result.returncode}); full output in {log}")
    print(f"[{label}] {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU", flush=True)
    return seconds, cpu_seconds, output


def mltk_epochs(output: str) -> int:
    """How many epochs Keras started in `mltk train` (its "Epoch N/M" lines)."""
    return max((int(number) for number in re.findall(r"^Epoch (\d+)/", output, re.M)), default=0)


def mltk_samples(output: str) -> str:
    """MLTK's own count of the samples it found, e.g. "training 4,181, validation 742"."""
    found = re.findall(r"^(Training|Validation) dataset: Found (\d+) samples", output, re.M)
    return ", ".join(f"{subset.lower()} {int(count):,}" for subset, count in found)


def mltk_accuracies(output: str) -> dict[str, str]:
    """The overall accuracies `mltk train` prints after training, for the float .h5 and the int8 .tflite."""
    found, model = {}, None
    for line in output.splitlines():
        marker = re.search(r"Evaluating the \.(h5|tflite) model", line)
        if marker:
            model = "float .h5" if marker.group(1) == "h5" else "int8 .tflite"
        accuracy = re.search(r"Overall accuracy:\s*([\d.]+%)", line)
        if accuracy and model:
            found[model] = accuracy.group(1)
    return found


def manifest_summary(folder: Path) -> str:
    """Epochs and the best validation accuracy from a microspeech run's manifest.json."""
    manifest = json.loads((folder / "manifest.json").read_text())
    return (
        f"epochs {manifest['epochs_run']} (best {manifest['best_epoch']}), "
        f"best val_accuracy {manifest['best_val_accuracy']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--skip-full", action="store_true", help="only the two dry runs (-test)")
    parser.add_argument("--seed", type=seed_number, default=0, help="microspeech's seed (MLTK has none)")
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="full runs of each tool, alternated; microspeech's seeds are seed, seed + 1, ...",
    )
    parser.add_argument(
        "--output", type=Path, help="logs, models and results.json (default: a temporary folder)"
    )
    parser.add_argument(
        "--dataset", type=existing_folder, help="a Speech Commands folder (default: the subset bundle)"
    )
    parser.add_argument(
        "--python",
        help=f"Python 3.9-3.12 that builds the MLTK environment in {MLTK_ENV} (default: this script's "
        "base interpreter). An environment already built there with another interpreter is refused, "
        "not rebuilt (a rebuild takes minutes and the network): delete that folder to rebuild it "
        "with --python, or set MICROSPEECH_MLTK_ENV to another folder",
    )
    parser.add_argument("--cpu", choices=CPU_CHOICES, default="native", help=CPU_HELP)
    args = parser.parse_args()
    # Every option checked before anything is built or run.
    if args.skip_full and args.repeats > 1:
        parser.error("--repeats: repeats the full runs, which --skip-full leaves out")
    if args.seed + args.repeats - 1 >= 2**32:
        parser.error(f"--seed {args.seed} --repeats {args.repeats}: the last seed passes 2**32 - 1")
    if args.dataset is not None:
        folders = ("yes", "no", "_background_noise_")
        if missing := [name for name in folders if not (args.dataset / name).is_dir()]:
            parser.error(f"--dataset {args.dataset}: not a Speech Commands folder (no {', '.join(missing)})")
    check_output(args.output, "--output", "mltk", "mltk*.log", "microspeech*", "results.json")
    cached = cached_env_python()
    python = args.python or sys._base_executable
    if args.python is not None or cached is None:  # the interpreter that builds (or built) it
        interpreter, version = base_interpreter(python)
        if not (3, 9) <= version <= (3, 12):
            parser.error(f"--python {python}: Python {version[0]}.{version[1]}; MLTK 0.20 needs 3.9-3.12")
        if cached is not None and cached != interpreter:
            parser.error(
                f"--python {python}: the MLTK environment cached in {MLTK_ENV} was built with {cached}, "
                f"and is not rebuilt behind your back: delete it (rm -r {MLTK_ENV}) to rebuild it with "
                f"{interpreter}, or set MICROSPEECH_MLTK_ENV to another folder"
            )

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit.stdout.strip() or '?'}"
    print(f"{when}; {machine_description()}")
    dataset = (args.dataset or shared_bundle(SUBSET, "pass --dataset")).resolve()
    if args.output is not None and dataset in [args.output.resolve(), *args.output.resolve().parents]:
        fail(f"--output {args.output}: inside the dataset {dataset}; MLTK's copy of it would copy itself")
    output = (args.output or Path(tempfile.mkdtemp(prefix="mltk-training-"))).resolve()
    output.mkdir(parents=True, exist_ok=True)

    env_bin = build_mltk_env(python)
    mltk_versions = package_versions(env_bin / "python", MLTK_PACKAGES)
    ours_versions = package_versions(
        sys.executable, ("microspeech", "tensorflow-cpu", "keras", "numpy", "numba")
    )
    print(f"MLTK env ({env_bin.parent}): {mltk_versions}")
    print(f"microspeech env ({sys.prefix}): {ours_versions}")

    mltk_dataset = link_copy(dataset, output / "mltk" / "dataset")
    spec_folder = write_mltk_spec(env_bin, mltk_dataset, output / "mltk" / "spec").parent
    # MLTK keeps its logs and models under MLTK_CACHE_DIR (default ~/.mltk); keep them in the output.
    # `mltk train NAME` finds NAME.py in the working directory before its own model folder.
    mltk_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    mltk_env = tensorflow_environment(args.cpu, microspeech=False, base=mltk_env)
    ours_env = tensorflow_environment(args.cpu, microspeech=True)
    for tool, env in (("MLTK", mltk_env), ("microspeech", ours_env)):
        settings = {key: env.get(key, "-") for key in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
        print(f"{tool} runs with {settings} (cpu: {args.cpu}; '-': the tool's own choice)")
    mltk_env.update(
        MLTK_CACHE_DIR=str(output / "mltk" / "cache"), PATH=f"{env_bin}{os.pathsep}{os.environ['PATH']}"
    )
    if "amx_tile" in cpu_flags() and "ONEDNN_MAX_CPU_ISA" not in mltk_env:
        # On CPUs with AMX, TensorFlow 2.16's oneDNN asks the kernel for the AMX state, which grows
        # the signal frame past the fixed alternate stack of the crash handler in MLTK's TFLM
        # wrapper: `mltk train` then dies after quantizing ("sigaltstack: Cannot allocate
        # memory", exit 1). Capping oneDNN below AMX avoids it; float32 training never uses AMX
        # (bf16/int8 only), so MLTK's speed is unchanged.
        mltk_env["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE_VNNI"
        print(f"MLTK runs with ONEDNN_MAX_CPU_ISA={mltk_env['ONEDNN_MAX_CPU_ISA']} (AMX CPU; see the script)")
    microspeech = str(Path(sys.executable).parent / "microspeech")
    print(f"dataset: {dataset} (MLTK reads the hard-linked copy {mltk_dataset}); output: {output}")

    # (model suffix, kind, microspeech's seed, file suffix): the dry runs, then each full pair.
    runs = [("-test", "dry run", args.seed, "-test")]
    if not args.skip_full:
        for repeat in range(args.repeats):
            number = "" if args.repeats == 1 else f"{repeat + 1}"
            runs.append(("", f"full {number}".strip(), args.seed + repeat, f"-full{number}"))
    results = {}
    for suffix, kind, seed, name in runs:
        mltk_seconds, mltk_cpu, mltk_output = timed(
            f"MLTK {kind}",
            [str(env_bin / "mltk"), "train", MODEL + suffix, "--clean"],
            spec_folder,
            mltk_env,
            output / f"mltk{name}.log",
        )
        ours_folder = output / f"microspeech{name}"
        ours_seconds, ours_cpu, _ = timed(
            f"microspeech {kind}",
            [
                microspeech,
                "train",
                MODEL + suffix,
                "--dataset",
                str(dataset),
                "--seed",
                str(seed),
                "--output",
                str(ours_folder),
                "--quiet",
            ],
            REPO,
            ours_env,
            output / f"microspeech{name}.log",
        )
        results[kind] = {
            "microspeech_seed": seed,
            "mltk_seconds": round(mltk_seconds, 1),
            "mltk_cpu_seconds": round(mltk_cpu, 1),
            "microspeech_seconds": round(ours_seconds, 1),
            "microspeech_cpu_seconds": round(ours_cpu, 1),
            "ratio": round(mltk_seconds / ours_seconds, 2),
            "mltk_epochs": mltk_epochs(mltk_output),
            "mltk_samples": mltk_samples(mltk_output),
            "mltk_accuracy": mltk_accuracies(mltk_output),
            "microspeech": manifest_summary(ours_folder) if (ours_folder / "manifest.json").is_file() else "",
        }

    print(f"\nsame machine, same run; dataset {dataset.name}")
    for kind, result in results.items():
        mltk_seconds, ours_seconds = result["mltk_seconds"], result["microspeech_seconds"]
        print(
            f"{kind:8s}: MLTK {mltk_seconds:8.1f} s = {mltk_seconds / 60:5.1f} min; "
            f"microspeech {ours_seconds:7.1f} s = {ours_seconds / 60:5.1f} min; "
            f"ratio MLTK / microspeech {result['ratio']:.1f}x"
        )
        indent = " " * 10
        mltk_cpu, ours_cpu = result["mltk_cpu_seconds"], result["microspeech_cpu_seconds"]
        print(f"{indent}CPU time: MLTK {mltk_cpu:.0f} s, microspeech {ours_cpu:.0f} s")
        accuracies = ", ".join(f"{model} {value}" for model, value in result["mltk_accuracy"].items())
        print(f"{indent}MLTK: samples {result['mltk_samples'] or '-'}; epochs {result['mltk_epochs']}")
        print(f"{indent}MLTK: accuracy on its validation split: {accuracies or '-'}")
        print(f"{indent}microspeech (seed {result['microspeech_seed']}): {result['microspeech'] or '-'}")
    full = [result for kind, result in results.items() if kind.startswith("full")]
    if len(full) > 1:
        mltk_total = sum(result["mltk_seconds"] for result in full)
        ours_total = sum(result["microspeech_seconds"] for result in full)
        ratios = [result["ratio"] for result in full]
        results["all full runs"] = {
            "mltk_seconds": round(mltk_total, 1),
            "microspeech_seconds": round(ours_total, 1),
            "ratio": round(mltk_total / ours_total, 2),
            "pair_ratios": ratios,
        }
        print(
            f"{len(full)} full pairs: MLTK {mltk_total / len(full):.1f} s, microspeech "
            f"{ours_total / len(full):.1f} s on average; ratio of the sums {mltk_total / ours_total:.1f}x "
            f"(pairs {min(ratios):.1f}-{max(ratios):.1f}x)"
        )
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {output / 'results.json'}")


if __name__ == "__main__":
    run(main)
