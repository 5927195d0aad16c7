"""`microspeech new-model`: a spec file with the recipe in plain view, made from a registered spec.

The file holds the classes, every frontend, training, augmentation and detection setting (with
the settings' own comments), the Keras builder's source, and a `__main__` block, so it trains
as written: `microspeech train ./models/NAME.py` or `python models/NAME.py [--test]`.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import json
import math
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

from microspeech.labels import SILENCE, UNKNOWN
from microspeech.models.registry import check_model_name
from microspeech.models.spec import ModelSpec

__all__ = ["render_spec_file", "write_spec_file"]

_FIELD = re.compile(r"\s+(\w+)\s*:")


def _field_comments(cls: type) -> dict[str, list[str]]:
    """The `#` comment lines right above (or after) each field in the settings class's source."""
    comments: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "@", "return")):
            trailing = line.split("  # ", 1)[1:]
            comments[match.group(1)] = pending + [f"# {text}" for text in trailing]
        pending = []
    return comments


def _literal(value: Any) -> str:
    """Python source for a setting's value, strings in double quotes as the rest of the file; an
    infinite number (a clean stream segment's SNR) as `float("inf")`, which `repr`'s inf is not."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    if isinstance(value, tuple | list):
        items = ", ".join(_literal(item) for item in value)
        return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{items}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(key)}: {_literal(item)}" for key, item in value.items()) + "}"
    return repr(value)


def _settings_call(value: Any, indent: str) -> str:
    """`ClassName(field=value, ...)` over every init field, each with its comments."""
    cls = type(value)
    comments = _field_comments(cls)
    lines = [f"{cls.__name__}("]
    for field in dataclasses.fields(value):
        if not field.init:
            continue
        lines += [f"{indent}    {comment}" for comment in comments.get(field.name, [])]
        lines.append(f"{indent}    {field.name}={_literal(getattr(value, field.name))},")
    lines.append(f"{indent})")
    return "\n".join(lines)


# What the written file imports itself; a builder may read these from its module.
_FILE_NAMES = frozenset(
    {"AugmentationSettings", "DetectionParams", "FrontendSettings", "ModelSpec", "TrainSettings"}
    | {"SILENCE", "UNKNOWN", "TYPE_CHECKING", "register_model", "main_for", "annotations"}
)


def _builder_source(spec: ModelSpec) -> str:
    """The builder's source, after the module constants it reads (e.g. CHANNELS = 64)."""
    build = spec.build
    read = [name for name in build.__code__.co_names if name in build.__globals__]
    constants = [
        f"{name} = {build.__globals__[name]!r}"
        for name in read
        if isinstance(build.__globals__[name], int | float | str | tuple)
    ]
    others = [
        name
        for name in read
        if name not in _FILE_NAMES and not isinstance(build.__globals__[name], int | float | str | tuple)
    ]
    if others:
        # Named by its file and line: a spec file's module has an internal name of ours.
        where = f"{build.__code__.co_filename}, line {build.__code__.co_firstlineno}"
        raise ValueError(
            f"{where}: {build.__name__}() uses {', '.join(others)} from its file, which a written spec "
            "file would lack: copy that file instead"
        )
    source = textwrap.dedent(inspect.getsource(build))
    if build.__name__ != "build":
        source = source.replace(f"def {build.__name__}(", "def build(", 1)
    return "\n".join(constants) + ("\n\n\n" if constants else "") + source


def _check_free(name: str, spec: ModelSpec) -> None:
    """The file defines a function `name`: refuse a name the file itself reads (an import, the
    builder, a Python builtin or a module constant the builder uses), which that function would hide."""
    build = spec.build
    constants = {read for read in build.__code__.co_names if read in build.__globals__}
    used = set(_FILE_NAMES) | {"build", "keras"} | set(dir(builtins)) | constants
    if name in used:
        raise ValueError(
            f"model name {name!r}: the spec file itself uses the name {name!r} (an import, the "
            f"builder, a Python builtin), which the model's function would hide; choose another "
            f"(e.g. my_{name})"
        )


def render_spec_file(spec: ModelSpec, name: str, *, source: str, location: str | None = None) -> str:
    """A spec file registering `name`: `spec`'s recipe written out; `source` says where it came from,
    `location` where the file is written (as its docstring's commands name it; ./models/NAME.py)."""
    check_model_name(name)
    _check_free(name, spec)
    location = location or f"models/{name}.py"
    in_models = Path(location).parent.name == "models"
    as_typed = location if Path(location).is_absolute() or location.startswith(".") else f"./{location}"
    shown, location = shlex.quote(as_typed), shlex.quote(location)
    if not location.isprintable() or '"' in location or "\\" in location:
        shown = location = "THIS_FILE.py"  # a path a docstring cannot hold as written
    found_by_name = (
        "from the folder above models/ (or with this folder in $MICROSPEECH_MODEL_PATH) the name works too."
        if in_models
        else "with this file's folder in $MICROSPEECH_MODEL_PATH the name works too."
    )
    classes = ", ".join(
        {UNKNOWN: "UNKNOWN", SILENCE: "SILENCE"}.get(word, _literal(word)) for word in spec.classes
    )
    indent = " " * 8
    description = f"{name}: {', '.join(spec.keywords)} (from {source})"
    return f'''"""{name}: a keyword-spotting model spec, written by `microspeech new-model` from {source}.

Train it, then evaluate it (python runs the same `microspeech` commands):
    microspeech train {shown}            or   python {location}
    microspeech train {shown} --test     or   python {location} --test   (dry run)
    microspeech evaluate {shown}
Every setting is spelled out below; edit freely. The file registers the model as {name!r}, so
{found_by_name}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microspeech.data.settings import AugmentationSettings
from microspeech.detection.params import DetectionParams
from microspeech.frontend import FrontendSettings
from microspeech.labels import SILENCE, UNKNOWN
from microspeech.models import ModelSpec, TrainSettings, register_model
from microspeech.models.registry import main_for

if TYPE_CHECKING:
    import keras


{_builder_source(spec).rstrip()}


@register_model({_literal(name)})
def {name}() -> ModelSpec:
    return ModelSpec(
        name={_literal(name)},
        description={_literal(description)},
        # The words to spot, then {UNKNOWN} (any other word) and {SILENCE} (background noise only).
        classes=[{classes}],
        # The micro frontend (as on the device): 16 kHz audio -> int8 filterbank frames.
        frontend={_settings_call(spec.frontend, indent)},
        build=build,
        # Optimizer, schedule, checkpoint choice, stream validation and hard-negative mining.
        train={_settings_call(spec.train, indent)},
        # How training windows are drawn and disturbed (speed, loudness, noise, warm-up, edges).
        augmentation={_settings_call(spec.augmentation, indent)},
        # The detector's settings written into the .tflite (calibrated at the end of training
        # when train.stream_validation_minutes > 0).
        detection={_settings_call(spec.detection, indent)},
        version={spec.version!r},
    )


if __name__ == "__main__":
    main_for({name})
'''


def write_spec_file(spec: ModelSpec, name: str, output: str | Path, *, source: str) -> Path:
    """Write `render_spec_file` to `output`, refusing to overwrite an existing file."""
    path = Path(output).expanduser()
    text = render_spec_file(spec, name, source=source, location=str(output))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:  # a file where a folder of the path should be
        raise NotADirectoryError(error.errno, "a file is in the way of its folder", error.filename) from None
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise FileExistsError(f"{path} exists already; choose another --output or name") from None
    return path
