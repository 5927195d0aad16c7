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
