from pathlib import Path

import pytest

import microspeech


def test_top_level_exports_resolve():
    for name in microspeech.__all__:
        assert getattr(microspeech, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    try:
        microspeech.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


@pytest.mark.parametrize(
    "package",
    [
        "microspeech",
        *(
            f"microspeech.{name}"
            for name in ("data", "detection", "evaluation", "frontend", "models", "tflite", "training")
        ),
    ],
)
def test_every_package_has_a_public_api_whose_names_resolve(package):
    import importlib
    import pkgutil
    import types

    module = importlib.import_module(package)
    assert module.__all__, f"{package} has no __all__"
    # Every submodule loaded first: `from microspeech.tflite import export_c` gave the module
    # export_c.py once it was imported (the import system sets the attribute to it).
    for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if package != "microspeech" and not sub.name.startswith("_"):
            importlib.import_module(f"{package}.{sub.name}")
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None and not isinstance(value, types.ModuleType), f"{package}.{name}"
        assert name in dir(module), f"{package}.{name} missing from dir(): tab completion would not offer it"


def _onednn_in_fresh_process(environment: dict[str, str]) -> list[str]:
    """(TF_ENABLE_ONEDNN_OPTS after `import microspeech`, whether TensorFlow then runs oneDNN)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"} | environment
    code = (
        "import os, microspeech\n"
        "from microspeech.training.trainer import onednn_enabled\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], onednn_enabled())"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return result.stdout.split()[-2:]


def test_importing_microspeech_turns_tensorflow_onednn_on_unless_the_user_said_otherwise():
    """TensorFlow's own default leaves oneDNN off on CPUs without AVX512-VNNI/BF16 or AMX, where
    training is ~3x slower; a user's explicit choice wins."""
    assert _onednn_in_fresh_process({}) == ["1", "True"]
    assert _onednn_in_fresh_process({"TF_ENABLE_ONEDNN_OPTS": "0"}) == ["0", "False"]


def test_numba_caches_in_a_temporary_folder_when_it_has_no_place_of_its_own(tmp_path):
    """A read-only install with no writable home (a service user) failed every command with
    numba's "no locator available"; then the cache goes to a temporary folder of the user's."""
    import os
    import subprocess
    import sys

    blocked = tmp_path / "a-file"  # nothing can be made under a file, not even by root
    blocked.write_text("")
    package, home_cache = str(blocked / "microspeech"), str(blocked / ".cache")
    fallback = microspeech.numba_cache_fallback(package, home_cache)
    assert fallback is not None and fallback.endswith(f"microspeech-numba-{os.getuid()}")
    assert microspeech.numba_cache_fallback(package, str(tmp_path / "cache")) is None  # the home works
    assert microspeech.numba_cache_fallback(os.path.dirname(microspeech.__file__), home_cache) in (
        None,  # this checkout's own __pycache__ (writable here)
        fallback,
    )
    # The import sets it before any kernel compiles, and a user's own choice wins.
    code = "import os, microspeech; print(os.environ.get('NUMBA_CACHE_DIR'))"
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "mine")}
    run = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    assert run.stdout.strip() == str(tmp_path / "mine"), run.stderr


def test_an_empty_microspeech_home_is_the_default_not_the_current_folder(monkeypatch):
    # MICROSPEECH_HOME= (set, empty) put datasets and models into ./datasets and ./models.
    from microspeech.paths import home_dir

    monkeypatch.setenv("MICROSPEECH_HOME", "")
    assert home_dir() == Path.home() / ".microspeech"
