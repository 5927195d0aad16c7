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

    module = importlib.import_module(package)
    assert module.__all__, f"{package} has no __all__"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
