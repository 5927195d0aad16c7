"""The model registry: `@register_model("name")` on a function that returns a ModelSpec.

Specs come from two places, both registering with the same decorator:
- every module of `microspeech.models` (a new model is a new file there);
- spec files the user owns, anywhere: the `*.py` files of `./models/` (the current folder's)
  and of each folder (or file) in `$MICROSPEECH_MODEL_PATH` (os.pathsep-separated) are
  loaded on first lookup, and a file named by path (`microspeech train ./my_model.py`) is
  loaded when asked for (`load_spec_file`).
A name registered from two files is an error naming both; a file that raises while loading,
or registers nothing, is a `ModelFileError` naming the file (and the line). A broken file on
the search path does not hide the models that load: it is an error when its name (the file's
stem) or a name it claims is asked for, or when the name asked for is found nowhere (it may
be the broken file's), and `broken_spec_files` lists it.

Appending `-test` to a registered name gives its dry run: the same code path with a few
clips per class, 3 epochs and batch 3. `with_keywords` gives the same spec on other words.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import keyword
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from microspeech.files import text_bytes
from microspeech.labels import SILENCE, UNKNOWN
from microspeech.models.spec import ModelSpec

__all__ = [
    "MODEL_PATH_ENV",
    "ModelFileError",
    "broken_spec_files",
    "check_model_name",
    "dry_run_spec",
    "get_model_spec",
    "list_models",
    "load_spec_file",
    "main_for",
    "model_search_path",
    "model_source",
    "register_model",
    "resolve_model_spec",
    "spec_file_model_name",
    "with_keywords",
]

DRY_RUN_SUFFIX = "-test"
DRY_RUN_CLIPS_PER_CLASS = 12
MODEL_PATH_ENV = "MICROSPEECH_MODEL_PATH"
SPEC_FILE_SUFFIX = ".py"

_FACTORIES: dict[str, Callable[[], ModelSpec]] = {}
# name -> the file whose code registered it (resolved path)
_SOURCES: dict[str, str] = {}
# spec file (resolved) -> the names it registered, once loaded
_LOADED: dict[Path, list[str]] = {}
# search-path spec files that failed to load -> their error
_BROKEN: dict[Path, ModelFileError] = {}
_INFRASTRUCTURE = {"artifacts", "registry", "spec", "template"}
_MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEYWORD = re.compile(r"[A-Za-z0-9_']+")


class ModelFileError(ValueError):
    """A spec file that cannot be used: missing, raising while loading, registering nothing.

    `claimed`: the model name the file tried to register when another file already had it."""

    def __init__(self, message: str, *, claimed: str | None = None) -> None:
        super().__init__(message)
        self.claimed = claimed


class _DuplicateModel(ValueError):
    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


# A name becomes folder and file names (`NAME-test/NAME-test.keras`, `NAME-eval`): kept far
# below the usual 255-byte limit of one file name.
MAX_MODEL_NAME = 100


def check_model_name(name: str) -> str:
    """`name` if it can name a model (a letter, then letters, digits or _), else ValueError."""
    if keyword.iskeyword(name):
        raise ValueError(f"model name {name!r} is a Python keyword; choose another (e.g. my_{name})")
    if not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"model name {name!r}: use a letter then letters, digits or underscores (e.g. my_model)"
        )
    if len(name) > MAX_MODEL_NAME:
        raise ValueError(f"model name {name[:20]}...: {len(name)} characters; at most {MAX_MODEL_NAME}")
    return name


def _source_file(factory: Callable[..., object]) -> str:
    code = getattr(factory, "__code__", None)
    filename = inspect.getsourcefile(factory) if code is None else code.co_filename
    return str(Path(filename).resolve()) if filename else repr(factory)


def register_model(name: str) -> Callable[[Callable[[], ModelSpec]], Callable[[], ModelSpec]]:
    """Decorator registering a spec factory under `name` (which must not end in -test)."""
    if name.endswith(DRY_RUN_SUFFIX):
        raise ValueError(f"model name {name!r} must not end in {DRY_RUN_SUFFIX!r} (reserved for dry runs)")

    def decorator(factory: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
        source = _source_file(factory)
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            # One file run as a script and loaded by path registers twice: keep the first.
            if _SOURCES[name] == source:
                return factory
            raise _DuplicateModel(
                f"model {name!r} is registered twice: in {_SOURCES[name]} and in {source}", name
            )
        _FACTORIES[name] = factory
        _SOURCES[name] = source
        return factory

    return decorator


def model_source(name: str) -> str:
    """The file that registered `name` (KeyError if none did)."""
    _discover()
    return _SOURCES[name.removesuffix(DRY_RUN_SUFFIX)]


def model_search_path() -> list[Path]:
    """Where user spec files are looked for: ./models, then each entry of $MICROSPEECH_MODEL_PATH."""
    entries = [entry for entry in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep) if entry]
    return [Path.cwd() / "models", *(Path(entry).expanduser() for entry in entries)]


def _search_files() -> list[Path]:
    files: list[Path] = []
    for index, entry in enumerate(model_search_path()):
        if entry.is_file() and entry.suffix == SPEC_FILE_SUFFIX:
            files.append(entry)
        elif entry.is_dir():
            files += [path for path in sorted(entry.glob("*.py")) if not path.name.startswith("_")]
        elif index > 0:
            raise ModelFileError(f"${MODEL_PATH_ENV}: {entry} is neither a folder nor a .py spec file")
    return files


def _line_in(error: BaseException, path: Path) -> int | None:
    """The line of `path` where `error` was raised (the deepest frame in that file)."""
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == path:
        return error.lineno
    line = None
    traceback: TracebackType | None = error.__traceback__
    while traceback is not None:
        if Path(traceback.tb_frame.f_code.co_filename).resolve() == path:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def where_in_file(path: Path, error: BaseException) -> str:
    """The file and line of the deepest frame of `error` in `path`: "PATH, line N" (PATH if none)."""
    line = _line_in(error, path)
    return f"{path}, line {line}" if line else str(path)


def _names_from(path: Path) -> list[str]:
    return sorted(name for name, source in _SOURCES.items() if source == str(path))


def load_spec_file(path: str | Path) -> list[str]:
    """Load a spec file (once) and return the model names it registers."""
    path = Path(path).expanduser().resolve()
    if path in _LOADED:
        return _LOADED[path]
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model spec file")
    if path.suffix != SPEC_FILE_SUFFIX:
        raise ModelFileError(f"{path}: a model spec file is Python source (.py)")
    before = set(_FACTORIES)
    digest = hashlib.sha1(text_bytes(str(path))).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"_microspeech_model_{stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ModelFileError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running, as an import would: dataclasses in the file look it up.
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        for name in set(_FACTORIES) - before:
            del _FACTORIES[name], _SOURCES[name]
        kind = "ValueError" if isinstance(error, _DuplicateModel) else type(error).__name__
        raise ModelFileError(
            f"{where_in_file(path, error)}: loading the model spec file raised {kind}: {error}",
            claimed=error.name if isinstance(error, _DuplicateModel) else None,
        ) from error
    names = _names_from(path)
    if not names:
        raise ModelFileError(
            f"{path}: registers no model; decorate a function returning a ModelSpec with "
            '@register_model("NAME") (from microspeech.models import register_model)'
        )
    _LOADED[path] = names
    return names


def _discover() -> None:
    import microspeech.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{package.__name__}.{module.name}")
    files = _search_files()
    _BROKEN.clear()  # the search path follows the current folder and the environment
    for path in files:
        try:
            load_spec_file(path)
        except ModelFileError as error:
            _BROKEN[path.resolve()] = error


def broken_spec_files() -> dict[Path, ModelFileError]:
    """Spec files on the search path that failed to load, with their errors (models in the
    other files stay usable)."""
    _discover()
    return dict(_BROKEN)


def _check_not_broken(name: str) -> None:
    """Raise the error of a broken search-path file that is, or claims, the model `name`."""
    for path, error in _BROKEN.items():
        if path.stem == name or error.claimed == name:
            raise error


def list_models() -> list[str]:
    """Registered model names (without the -test dry-run variants)."""
    _discover()
    return sorted(_FACTORIES)


def dry_run_spec(spec: ModelSpec) -> ModelSpec:
    """The dry-run variant of a spec: same model and code path, tiny data, 3 epochs, batch 3,
    at most a minute of validation stream (a minute and a half to calibrate on), one mining
    round of half a minute, no weight averaging."""
    train = dataclasses.replace(
        spec.train,
        epochs=3,
        batch_size=3,
        max_clips_per_class=DRY_RUN_CLIPS_PER_CLASS,
        stream_validation_minutes=min(spec.train.stream_validation_minutes, 1.0),
        calibration_minutes=min(spec.train.calibration_minutes, 1.5),
        mining_rounds=min(spec.train.mining_rounds, 1),
        mining_every=1,
        mining_minutes=min(spec.train.mining_minutes, 0.5),
        # A few dozen steps: an average over hundreds would keep the initial weights.
        weight_averaging=0.0,
        norm_windows=0,
        cosine_hold_epochs=min(spec.train.cosine_hold_epochs, 2),  # within the 3 epochs
    )
    return dataclasses.replace(spec, name=spec.name + DRY_RUN_SUFFIX, train=train)


def get_model_spec(name: str) -> ModelSpec:
    """A fresh spec for a registered name (or NAME-test); unknown names list the known ones."""
    if not isinstance(name, str):  # a Path to a spec file: AttributeError 'removesuffix'
        raise TypeError(
            f"get_model_spec({name!r}): expected a registered model's name; for a spec file use "
            "microspeech.models.resolve_model_spec(path)"
        )
    _discover()
    base = name.removesuffix(DRY_RUN_SUFFIX)
    _check_not_broken(base)
    if base not in _FACTORIES:
        known = ", ".join(list_models()) or "none"
        broken = "".join(f"; {error}" for error in _BROKEN.values())
        if broken:
            raise ModelFileError(
                f"unknown model {name!r}; registered models: {known}; spec files that failed to "
                f"load (one may hold it){broken}"
            )
        raise KeyError(f"unknown model {name!r}; registered models: {known} (add -test for a dry run)")
    source = Path(_SOURCES[base])
    try:
        spec = _FACTORIES[base]()
    except Exception as error:
        raise ModelFileError(
            f"{where_in_file(source, error)}: the spec function of model {base!r} raised "
            f"{type(error).__name__}: {error}"
        ) from error
    if spec.name != base:
        raise ValueError(f"model factory registered as {base!r} returned a spec named {spec.name!r}")
    return dry_run_spec(spec) if name.endswith(DRY_RUN_SUFFIX) else spec


def is_spec_file(model: str | Path) -> bool:
    """Whether a MODEL argument names a spec file (ends in .py) rather than a registered name."""
    return str(model).endswith(SPEC_FILE_SUFFIX)


def spec_file_model_name(path: str | Path) -> str:
    """The one model a spec file registers (ModelFileError if it registers several)."""
    names = load_spec_file(path)
    if len(names) > 1:
        raise ModelFileError(
            f"{Path(path).expanduser().resolve()}: registers {len(names)} models ({', '.join(names)}); "
            "name one of them instead of the file"
        )
    return names[0]


def with_keywords(spec: ModelSpec, keywords: str | Sequence[str]) -> ModelSpec:
    """`spec` trained on other words: the same architecture and recipe, classes `keywords` then
    the spec's `_unknown_`/`_silence_`, named `<spec name>-<word>-<word>...`."""
    if isinstance(keywords, str):  # "on,off" was read as the words o, n, ",", ...
        keywords = keywords.split(",")
    if isinstance(keywords, set | frozenset) or not isinstance(keywords, Sequence):
        # A set's order (the classes' order, the model's name) changed with PYTHONHASHSEED.
        raise TypeError(f"keywords: a list of words, in the classes' order, or 'a,b'; got {keywords!r}")
    if not all(isinstance(word, str) for word in keywords):
        raise TypeError(f"keywords {list(keywords)!r}: each word a string")
    words = [word.strip() for word in keywords]
    bad = [word for word in words if not _KEYWORD.fullmatch(word) or word in (UNKNOWN, SILENCE)]
    if not words or bad:
        raise ValueError(
            f"keywords {','.join(keywords)!r}: give one or more words (ASCII letters a-z, digits, _ or '), "
            f"comma-separated; {UNKNOWN} and {SILENCE} are kept by themselves"
        )
    if len(set(words)) != len(words):
        raise ValueError(f"keywords {','.join(words)!r}: a word is given twice")
    classes = [*words, *(name for name in spec.classes if name in (UNKNOWN, SILENCE))]
    scales = {name: scale for name, scale in spec.train.class_weight_scale.items() if name in classes}
    return dataclasses.replace(
        spec,
        # An apostrophe is a word's (don't) but no part of a Keras name scope.
        name=f"{spec.name}-{'-'.join(word.replace(chr(39), '') for word in words)}",
        classes=classes,
        train=dataclasses.replace(spec.train, class_weight_scale=scales),
        description=f"{spec.description} (keywords {', '.join(words)})".strip(),
    )


def resolve_model_spec(
    model: str | Path, *, keywords: Sequence[str] | None = None, dry_run: bool = False
) -> ModelSpec:
    """The spec a `train` argument names: a registered name (NAME-test for a dry run) or a spec
    file's path; `keywords` swaps the words (with_keywords), `dry_run` makes it the dry run."""
    name = spec_file_model_name(model) if is_spec_file(model) else str(model)
    dry_run = dry_run or name.endswith(DRY_RUN_SUFFIX)
    spec = get_model_spec(name.removesuffix(DRY_RUN_SUFFIX))
    if keywords:
        spec = with_keywords(spec, keywords)
    return dry_run_spec(spec) if dry_run else spec


def main_for(factory: Callable[[], ModelSpec], argv: Sequence[str] | None = None) -> None:
    """The `if __name__ == "__main__":` of a spec file: `python my_model.py [--test] [train options]`
    trains the file's model with `microspeech train`, then evaluates it with `microspeech evaluate`
    on `--eval-dataset` (default: the training dataset's test split; `--no-evaluate` skips it).
    Exits with the first failing command's status.

    The commands run as child processes: the CLI sits above the models package, which must
    not import it.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name,
        description="Train this spec file's model (the options of `microspeech train`), then evaluate it.",
        allow_abbrev=False,
        epilog="Any other option goes to `microspeech train` as given (--dataset, --seed, --epochs, "
        "--quiet, ...: see `microspeech train --help`).",
    )
    parser.add_argument("--test", action="store_true", help="dry run: a few clips, 3 epochs")
    parser.add_argument("--no-evaluate", action="store_true", help="train only")
    parser.add_argument("--output", "-o", help="output folder (default: models_dir()/NAME)")
    parser.add_argument("--keywords", help="comma-separated words to train on instead")
    parser.add_argument(
        "--eval-dataset", help="test set for the evaluation (default: the training dataset's test split)"
    )
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    path = _source_file(factory)
    # A file of several models is named by the model's name, the file on the child's search path
    # (`train FILE` asks which of them to train).
    names = [name for name, source in _SOURCES.items() if source == path]
    own = [name for name in names if _FACTORIES[name] is factory]
    model, search_path = (own[0], path) if len(names) > 1 and own else (path, None)
    train = [model, *rest]
    train += ["--test"] if known.test else []
    train += ["--output", known.output] if known.output else []
    train += ["--keywords", known.keywords] if known.keywords else []
    status = _run_cli(["train", *train], search_path)
    if status == 0 and not known.no_evaluate:
        if known.output:
            trained = known.output
        else:
            from microspeech.paths import models_dir

            keywords = known.keywords.split(",") if known.keywords else None
            spec = resolve_model_spec(model, keywords=keywords, dry_run=known.test)
            trained = str(models_dir() / spec.name)
        evaluate = ["--dataset", known.eval_dataset] if known.eval_dataset else []
        status = _run_cli(["evaluate", trained, *evaluate], search_path)
    sys.exit(status)


def _run_cli(arguments: list[str], spec_file: str | None = None) -> int:
    """`microspeech ARGUMENTS` in a child process that imports this very microspeech (and finds
    `spec_file`'s models by name)."""
    import microspeech

    environment = dict(os.environ)
    if spec_file is not None:
        entries = [spec_file, *filter(None, [environment.get(MODEL_PATH_ENV)])]
        environment[MODEL_PATH_ENV] = os.pathsep.join(entries)
    source_root = str(Path(microspeech.__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join([source_root, *filter(None, [environment.get("PYTHONPATH")])])
    command = [sys.executable, "-c", "from microspeech.cli import main; main()", *arguments]
    return subprocess.run(command, env=environment, check=False).returncode
