"""SL_PARAMSv1 metadata: MLTK's shipped model reads correctly, our bytes equal MLTK's serializer's."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.tflite.metadata import (
    METADATA_TAG,
    ParameterError,
    deserialize_parameters,
    read_metadata,
    read_parameters,
    serialize_parameters,
    write_parameters,
)
from microspeech.tflite.runtime import TfliteRunner

# MLTK's serializer calls a deprecated flatbuffers API
pytestmark = pytest.mark.filterwarnings("ignore:numElems is deprecated:DeprecationWarning")

EXAMPLE = {
    "name": "tiny",
    "version": 3,
    "classes": ["yes", "no", "_unknown_", "_silence_"],
    "detection_threshold": 185,
    "volume_gain": 2.0,
    "verbose_model_output_logs": False,
    "enabled": True,
    "offset": -300,
    "big": 2**40,
    "zero_float": 0.0,
    "ints": [1, -2, 300000],
    "floats": [0.5, -1.25],
    "empty": [],
    "blob": b"\x00\x01\xfe",
    "fe.noise_reduction_even_smoothing": 0.025,
}


def test_reads_mltk_shipped_model(mltk_tflite_path):
    params, dtypes = read_parameters(mltk_tflite_path, with_dtypes=True)
    assert params["name"] == "tflite_micro_speech"
    assert params["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    assert params["detection_threshold"] == 185 and dtypes["detection_threshold"] == "uint8"
    assert params["average_window_duration_ms"] == 1000
    assert params["suppression_ms"] == 750
    assert params["minimum_count"] == 3
    assert params["volume_gain"] == 2
    assert params["latency_ms"] == 100
    assert params["verbose_model_output_logs"] is False
    assert params["runtime_memory_size"] == 9032
    assert params["fe.sample_rate_hz"] == 16000 and params["fe.fft_length"] == 512
    assert params["fe.filterbank_n_channels"] == 40
    assert (
        params["fe.filterbank_upper_band_limit"] == 7500.0
        and dtypes["fe.filterbank_upper_band_limit"] == "float"
    )
    # float32 values come back as their shortest decimal, the same float32 bits
    assert params["fe.noise_reduction_even_smoothing"] == 0.025
    assert params["fe.pcan_strength"] == 0.95
    assert np.float32(params["fe.noise_reduction_odd_smoothing"]) == np.float32(0.06)
    assert params["fe.pcan_gain_bits"] == 21 and params["fe.log_scale_shift"] == 6
    assert params["fe.noise_reduction_enable"] is True and params["fe.pcan_enable"] is True


def test_same_values_as_mltk_reader(mltk_tflite_bytes, mltk_dictionary_class):
    ours = read_parameters(mltk_tflite_bytes)
    theirs = mltk_dictionary_class.deserialize(read_metadata(mltk_tflite_bytes)[METADATA_TAG])
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if isinstance(value, float):
            assert np.float32(ours[key]) == np.float32(value), key
        else:
            assert ours[key] == value, key


def test_serializer_bytes_equal_mltk(mltk_tflite_bytes, mltk_dictionary_class):
    for params in (read_parameters(mltk_tflite_bytes), EXAMPLE):
        assert serialize_parameters(params) == mltk_dictionary_class(params).serialize()


def test_mltk_reads_what_we_write(mltk_dictionary_class):
    theirs = dict(mltk_dictionary_class.deserialize(serialize_parameters(EXAMPLE)))
    assert theirs.keys() == EXAMPLE.keys()
    for key, value in EXAMPLE.items():
        assert np.allclose(theirs[key], value) if isinstance(value, float) else theirs[key] == value


def test_round_trip_in_model_keeps_outputs(mltk_tflite_bytes, random_features):
    updated = write_parameters(mltk_tflite_bytes, EXAMPLE)
    params, dtypes = read_parameters(updated, with_dtypes=True)
    assert params == EXAMPLE
    assert dtypes["offset"] == "int16" and dtypes["big"] == "uint64" and dtypes["zero_float"] == "double"
    assert dtypes["ints"] == "int32_list" and dtypes["empty"] == "str_list" and dtypes["blob"] == "bin"
    # other metadata survives, the SL_PARAMSv1 buffer is replaced rather than duplicated
    assert set(read_metadata(updated)) == set(read_metadata(mltk_tflite_bytes))
    again = write_parameters(updated, {"name": "x"})
    assert read_parameters(again) == {"name": "x"}
    assert len(again) < len(updated)
    reference = TfliteRunner(mltk_tflite_bytes, "tflm").predict(random_features[:4])
    for backend in ("tflm", "litert"):
        assert np.array_equal(TfliteRunner(again, backend).predict(random_features[:4]), reference)


def test_explicit_dtypes_and_errors(mltk_tflite_bytes):
    params, dtypes = deserialize_parameters(
        serialize_parameters({"n": 5, "f": 1.5}, {"n": "int32", "f": "double"}), with_dtypes=True
    )
    assert params == {"n": 5, "f": 1.5} and dtypes == {"n": "int32", "f": "double"}
    with pytest.raises(ParameterError, match="'mixed'"):
        serialize_parameters({"mixed": [1, "a"]})
    with pytest.raises(ParameterError, match="'obj'"):
        serialize_parameters({"obj": object()})
    with pytest.raises(ParameterError, match="out of range for uint8"):
        serialize_parameters({"n": 300}, {"n": "uint8"})
    with pytest.raises(ValueError, match="not a .tflite"):
        read_parameters(b"not a flatbuffer at all")


def test_model_without_parameters_reads_empty(tmp_path):
    from microspeech.tflite.flatbuffer import pack_model, read_model, unpack_model

    model = unpack_model(write_parameters(_minimal_model_bytes(), {"a": 1}))
    model.metadata = [m for m in model.metadata if m.name != METADATA_TAG.encode()]
    stripped = pack_model(model)
    assert read_model(stripped).MetadataLength() == 0
    assert read_parameters(stripped) == {}
    missing = tmp_path / "missing.tflite"
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        read_parameters(missing)


def test_an_unnamed_metadata_entry_is_left_out(mltk_tflite_bytes):
    """The schema allows a metadata entry without a name (a fuzzed MLTK model had one)."""
    from ai_edge_litert import schema_py_generated as schema

    from microspeech.tflite.flatbuffer import pack_model, unpack_model

    model = unpack_model(mltk_tflite_bytes)
    unnamed = schema.MetadataT()
    unnamed.buffer = model.metadata[0].buffer
    model.metadata.append(unnamed)
    with_unnamed = pack_model(model)
    assert sorted(read_metadata(with_unnamed)) == sorted(read_metadata(mltk_tflite_bytes))
    assert read_parameters(with_unnamed) == read_parameters(mltk_tflite_bytes)


def _minimal_model_bytes() -> bytes:
    from ai_edge_litert import schema_py_generated as schema

    from microspeech.tflite.flatbuffer import pack_model

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.subgraphs = [schema.SubGraphT()]
    return pack_model(model)


@pytest.mark.parametrize(
    "value, dtype",
    [(1.7, "int8"), ([1.5, 2.7], "int32_list"), (5, "bin"), ("abc", "str_list"), (5, "bool"), ("1", "float")],
)
def test_a_value_its_dtype_cannot_hold_is_refused_by_key(mltk_tflite_bytes, value, dtype):
    # 1.7 as int8 was stored as 1, "abc" as str_list as ['a', 'b', 'c'], 5 as bin as five zero bytes.
    with pytest.raises(ParameterError, match=f"parameter 'odd': .* cannot be stored as {dtype} without loss"):
        write_parameters(mltk_tflite_bytes, {"odd": value}, {"odd": dtype})
    dtypes = {"odd": "int8", "many": "float_list"}
    kept = write_parameters(mltk_tflite_bytes, {"odd": 2.0, "many": [1, 2]}, dtypes)
    assert read_parameters(kept) == {"odd": 2, "many": [1.0, 2.0]}


def test_writing_parameters_takes_bytes_not_a_path(mltk_tflite_path):
    # A path was read, new bytes returned and the file left as it was: a silent no-op.
    from microspeech.tflite.metadata import read_parameters, write_parameters

    before = mltk_tflite_path.read_bytes()
    for given in (mltk_tflite_path, str(mltk_tflite_path)):
        with pytest.raises(TypeError, match=r"takes the \.tflite's bytes and returns new bytes"):
            write_parameters(given, {"detection_threshold": 200})
    assert mltk_tflite_path.read_bytes() == before
    changed = write_parameters(before, {**read_parameters(before), "detection_threshold": 200})
    assert read_parameters(changed)["detection_threshold"] == 200


def test_a_tflite_files_repr_leaves_out_its_bytes(mltk_tflite_path):
    from microspeech.tflite.files import read_tflite_file

    assert "tflite_bytes" not in repr(read_tflite_file(mltk_tflite_path))
