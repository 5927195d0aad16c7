"""Issue 16, cases 3 and 6: one safe reader for .tflite flatbuffers and model archives.

Every command gets "a named error or a result, never another exception, and bounded memory"
from truncated files, random bytes after "TFL3", metadata offsets out of range, truncated
archives and archives that expand to gigabytes.
"""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.tflite.flatbuffer import (
    MAX_TFLITE_BYTES,
    TfliteFormatError,
    load_bytes,
    pack_model,
    read_archive_member,
    unpack_model,
)
from microspeech.tflite.metadata import ParameterError, read_parameters

pytestmark = pytest.mark.xdist_group("mltk_model")


@pytest.fixture(scope="module")
def bad_models(mltk_tflite_bytes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    data = mltk_tflite_bytes
    files = {
        "truncated.tflite": data[: len(data) // 2],
        "random.tflite": b"\x10\x00\x00\x00TFL3" + bytes((i * 7919 + 13) % 256 for i in range(3000)),
    }
    model = unpack_model(data)
    model.metadata[0].buffer = 9999
    files["metadata_offset.tflite"] = pack_model(model)
    # Indices a reader follows, out of range (an IndexError traceback in summarize, profile,
    # export and view), and a tensor name that is not text (an error naming no file).
    model = unpack_model(data)
    model.subgraphs[0].operators[0].opcodeIndex = 77
    files["opcode_index.tflite"] = pack_model(model)
    model = unpack_model(data)
    operator = model.subgraphs[0].operators[-1]
    operator.inputs = [999, *list(operator.inputs)[1:]]
    files["operator_tensor.tflite"] = pack_model(model)
    model = unpack_model(data)
    model.subgraphs[0].tensors[0].name = b"\xff" + model.subgraphs[0].tensors[0].name
    files["tensor_name.tflite"] = pack_model(model)
    # A type code no tensor type has (a KeyError traceback in profile --accelerator mvp), and a
    # convolution without inputs (an IndexError traceback in summarize, profile, export and view).
    model = unpack_model(data)
    model.subgraphs[0].tensors[0].type = -53
    files["tensor_type.tflite"] = pack_model(model)
    model = unpack_model(data)
    codes = model.operatorCodes
    conv = next(op for op in model.subgraphs[0].operators if codes[op.opcodeIndex].builtinCode == 3)
    conv.inputs = []
    files["conv_inputs.tflite"] = pack_model(model)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("tflite_micro_speech.tflite", data)
    files["truncated.mltk.zip"] = archive.getvalue()[: len(archive.getvalue()) // 2]
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def bomb(path, size: int, claimed: int | None = None) -> None:
    """A zip whose .tflite member expands to `size` bytes of zeros (a few kB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        with bundle.open("model.tflite", "w", force_zip64=True) as member:
            for _ in range(size // 2**20):
                member.write(bytes(2**20))
    if claimed is not None:  # a lying header: the central directory claims `claimed` bytes
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as bundle:
            info = bundle.infolist()[0]
        assert info.file_size == size
        raw = raw.replace(size.to_bytes(8, "little"), claimed.to_bytes(8, "little"))
        path.write_bytes(bytes(raw))


def test_archive_member_over_the_cap_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.mltk.zip"
    bomb(path, MAX_TFLITE_BYTES + 2**20)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(TfliteFormatError, match="bomb.mltk.zip: member model.tflite expands to"):
            read_archive_member(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20 and time.perf_counter() - started < 2


def test_archive_whose_header_lies_about_the_size_is_read_streaming_and_capped(tmp_path):
    path = tmp_path / "liar.mltk.zip"
    bomb(path, 8 * 2**20, claimed=1000)
    with pytest.raises(TfliteFormatError, match="liar.mltk.zip"):
        read_archive_member(path, limit=2 * 2**20)


@pytest.mark.parametrize(
    "name, message",
    [
        ("truncated.tflite", "not a valid .tflite: an offset or length is out of range"),
        ("random.tflite", "not a valid .tflite"),
        ("metadata_offset.tflite", "points to buffer 9999, which does not exist"),
        ("opcode_index.tflite", "operator 0 has operator code 77, which does not exist"),
        ("operator_tensor.tflite", "uses tensor 999, which does not exist"),
        ("tensor_name.tflite", "is not UTF-8 text"),
        ("tensor_type.tflite", "has type code -53, which does not exist"),
        ("truncated.mltk.zip", "not a readable zip archive"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["params"],
        ["summarize"],
        ["summarize", "--tflite"],
        ["export", "--c", "{tmp}/c"],
        ["profile"],
        ["view", "--tflite", "--out", "{tmp}/view"],
        ["features", "{clip}", "--model"],
        ["classify_audio", "--wav", "{clip}"],
        ["evaluate", "--tflite"],
    ],
    ids=lambda c: c[0] if isinstance(c, list) else c,
)
def test_every_command_names_the_malformed_model(bad_models, tmp_path, command, name, message):
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    model = str(bad_models / name)
    args = [part.format(tmp=tmp_path, clip=clip) for part in command]
    if args[0] == "features":
        args = [*args, model]
    else:
        args = [args[0], model, *args[1:]]
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert name in text and message in text, text
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "command",
    [["summarize"], ["profile"], ["profile", "--accelerator", "mvp"], ["export", "--c", "{tmp}/c"]],
    ids=lambda c: " ".join(c),
)
def test_an_operator_whose_tensors_no_such_operator_has_is_named(bad_models, tmp_path, command):
    model = bad_models / "conv_inputs.tflite"
    args = [command[0], str(model), *(part.format(tmp=tmp_path) for part in command[1:])]
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "(CONV_2D) has no inputs, which no CONV_2D has" in text, text
    assert "conv_inputs.tflite" in text


def test_an_archive_with_two_models_side_by_side_is_ambiguous(tmp_path, mltk_tflite_bytes):
    path = tmp_path / "two.mltk.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("b.tflite", mltk_tflite_bytes)
        bundle.writestr("a.tflite", mltk_tflite_bytes)
        bundle.writestr("deeper/c.tflite", mltk_tflite_bytes)
    result = CliRunner().invoke(app, ["params", str(path)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "holds 2 .tflite models (a.tflite, b.tflite)" in message


def test_mltks_float_build_beside_its_model_is_not_ambiguous(tmp_path, mltk_tflite_bytes):
    # MLTK's keyword_spotting_on_off_v3.mltk.zip holds NAME.tflite and NAME.float32.tflite; every
    # command refused it as ambiguous. MLTK loads NAME.tflite.
    path = tmp_path / "kws.mltk.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("kws.float32.tflite", b"MLTK's float build")
        bundle.writestr("kws.tflite", mltk_tflite_bytes)
    assert read_archive_member(path) == ("kws", mltk_tflite_bytes)


def test_a_zip_named_tflite_is_an_archive_for_every_command(tmp_path, mltk_tflite_bytes):
    # classify_audio read it (by the zip's magic) while params, summarize, profile, view and
    # features --model took it for a flatbuffer (by its name) and refused it.
    path = tmp_path / "zipped.tflite"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("kws.tflite", mltk_tflite_bytes)
    for command in (["params"], ["summarize"], ["view", "--out", str(tmp_path / "drawn")]):
        result = CliRunner().invoke(app, [*command, str(path)])
        assert result.exit_code == 0, (command, result.output)
    assert {file.name for file in (tmp_path / "drawn").iterdir()} == {"kws-tflite.svg", "kws-tflite.png"}


def test_an_archives_model_is_copied_where_no_other_user_can_plant_one(tmp_path, mltk_tflite_bytes):
    # The copy went to /tmp/microspeech-<digest>/NAME.tflite and was reused as found: anyone could
    # put another model there for a public archive's digest, and export or profile used it.
    import os
    import stat

    from microspeech.tflite.files import is_archive_copy, materialize_tflite, read_tflite_file

    path = tmp_path / "kws.mltk.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("kws.tflite", mltk_tflite_bytes)
    copy = materialize_tflite(read_tflite_file(path))
    assert copy.read_bytes() == mltk_tflite_bytes and is_archive_copy(copy)
    folder = copy.parent.parent
    assert folder.stat().st_uid == os.getuid() and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert materialize_tflite(read_tflite_file(path)) == copy
    plain = tmp_path / "kws.tflite"
    plain.write_bytes(mltk_tflite_bytes)
    assert materialize_tflite(read_tflite_file(plain)) == plain and not is_archive_copy(plain)


def test_unusable_frontend_settings_stop_only_what_needs_the_frontend(
    tmp_path, mltk_tflite_bytes, test_set_dir
):
    # MLTK's older models store fe.n_channels and the like: params, summarize, profile, view and
    # export all refused them for a frontend they never use, so nobody could see what was stored.
    from microspeech.models import ModelResolutionError, resolve_model
    from microspeech.tflite.metadata import write_parameters

    parameters = {**read_parameters(mltk_tflite_bytes), "fe.n_channels": 40}
    path = tmp_path / "older.tflite"
    path.write_bytes(write_parameters(mltk_tflite_bytes, parameters))
    inspections = (["params"], ["summarize"], ["profile", "--runs", "10"], ["export", "--c", str(tmp_path)])
    for command in (*inspections, ["view", "--out", str(tmp_path / "drawn")]):
        result = CliRunner().invoke(app, [command[0], str(path), *command[1:]])
        assert result.exit_code == 0, (command, result.output)
    resolved = resolve_model(str(path))
    assert resolved.classes == ["yes", "no", "_unknown_", "_silence_"]
    with pytest.raises(ModelResolutionError, match=r"older.tflite: bad frontend settings .*'fe.n_channels'"):
        _ = resolved.frontend
    result = CliRunner().invoke(app, ["evaluate", str(path), "--dataset", str(test_set_dir)])
    assert result.exit_code == 2 and "bad frontend settings" in " ".join(result.output.split())


@pytest.mark.parametrize("spec", ["garbage", {"name": "tflite_micro_speech", "classes": 5}])
def test_a_manifest_whose_spec_was_edited_into_another_shape_is_named(tmp_path, mltk_tflite_bytes, spec):
    # A TypeError traceback from every command (string indices must be integers).
    import json

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "tflite_micro_speech.tflite").write_bytes(mltk_tflite_bytes)
    (folder / "manifest.json").write_text(json.dumps({"name": "tflite_micro_speech", "spec": spec}))
    for command in ("params", "summarize"):
        result = CliRunner().invoke(app, [command, str(folder)])
        assert result.exit_code == 2, result.output
        assert f"{folder / 'manifest.json'}: its 'spec' cannot be read" in " ".join(result.output.split())


def test_archives_are_models_for_params_and_summarize(tmp_path, mltk_tflite_bytes):
    path = tmp_path / "kws.mltk.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("kws.tflite", mltk_tflite_bytes)
    for command in (["params"], ["summarize"]):
        result = CliRunner().invoke(app, [*command, str(path)])
        assert result.exit_code == 0, result.output
        assert "detection_threshold" in result.output and "train" not in result.output


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flatbuffer_fuzz_named_error_or_result_with_bounded_memory(mltk_tflite_bytes, data):
    original = mltk_tflite_bytes
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 16))):
        mutated[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(original))))
    candidate = bytes(mutated[:cut] if cut is not None else mutated)
    tracemalloc.start()
    try:
        try:
            params = read_parameters(candidate)
        except (TfliteFormatError, ParameterError) as error:
            assert "not a" in str(error) or "SL_PARAMS" in str(error) or "TFL3" in str(error)
        else:
            assert isinstance(params, dict)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=3000), cut=st.integers(0, 4000), flips=st.lists(st.integers(0, 3999)))
def test_archive_fuzz_named_error_or_result(tmp_path, payload, cut, flips):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("m.tflite", payload)
    raw = bytearray(buffer.getvalue())
    for index in flips:
        if index < len(raw):
            raw[index] ^= 0xFF
    path = tmp_path / "fuzz.mltk.zip"
    path.write_bytes(bytes(raw[:cut]))
    try:
        name, member = read_archive_member(path)
    except TfliteFormatError as error:
        assert "fuzz.mltk.zip" in str(error)
    else:
        assert name == "m" and len(member) <= MAX_TFLITE_BYTES


def test_the_good_model_still_loads(mltk_tflite_bytes):
    assert load_bytes(mltk_tflite_bytes) == mltk_tflite_bytes


def test_an_empty_path_is_refused_as_empty_not_taken_for_the_current_folder(mltk_tflite_bytes, tmp_path):
    # Path("") is ".": readers said ".: is a folder", and export_c(model, "") wrote here.
    from microspeech.audio import AudioError, read_audio
    from microspeech.tflite.c_export import export_c
    from microspeech.tflite.files import TfliteFileError, read_tflite_file

    with pytest.raises(AudioError, match="an empty path"):
        read_audio("")
    with pytest.raises(TfliteFileError, match="an empty path"):
        read_tflite_file("")
    with pytest.raises(FileNotFoundError, match="an empty path"):
        load_bytes("")
    with pytest.raises(ValueError, match="directory: an empty path"):
        export_c(mltk_tflite_bytes, "")
    result = CliRunner().invoke(app, ["features", ""])
    assert result.exit_code == 2 and "an empty path" in result.output


def test_a_zip_named_tflite_loads_as_the_archive_it_is(tmp_path, mltk_tflite_bytes):
    path = tmp_path / "zipped.tflite"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("kws.tflite", mltk_tflite_bytes)
    assert load_bytes(path) == mltk_tflite_bytes


def test_a_model_litert_cannot_read_is_named_by_its_file(mltk_tflite_bytes, tmp_path):
    # LiteRT's reader raises ValueError ("Model provided is schema version 7 ..."), which reached
    # the user without the file's name.
    from microspeech.tflite.runtime import TfliteRunner

    model = unpack_model(mltk_tflite_bytes)
    model.version = 7
    path = tmp_path / "v7.tflite"
    path.write_bytes(pack_model(model))
    with pytest.raises(ValueError, match=rf"{path}: LiteRT could not read the model: .*schema version 7"):
        TfliteRunner(path)
    result = CliRunner().invoke(app, ["profile", str(path), "--runs", "10"])
    said = "v7.tflite: LiteRT could not read the model"
    assert result.exit_code == 2 and said in " ".join(result.output.split())
