"""C export: the array holds exactly the .tflite, and the sources compile and run."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.testing.readback import parse_c_array
from microspeech.tflite.c_export import c_identifier, export_c
from microspeech.tflite.metadata import read_parameters, write_parameters

CHECK_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include "{symbol}_model_data.h"
#include "{symbol}_model_settings.h"

int main(void) {{
    if (g_{symbol}_model_data_len != {upper}_MODEL_DATA_LEN) return 1;
    if (((unsigned long)g_{symbol}_model_data) % 16 != 0) return 2;
    if (memcmp(g_{symbol}_model_data + 4, "TFL3", 4) != 0) return 3;
    printf("%u %d %s %d %d %g %d\n", g_{symbol}_model_data_len, {upper}_CLASSES_COUNT,
           {upper}_CLASSES[{upper}_CLASSES_COUNT - 1], {upper}_DETECTION_THRESHOLD,
           {upper}_FE_SAMPLE_RATE_HZ, (double){upper}_FE_PCAN_STRENGTH, {upper}_OUTPUT_ZERO_POINT);
    return 0;
}}
"""


def test_array_is_the_tflite(mltk_tflite_bytes, tmp_path):
    files = export_c(mltk_tflite_bytes, tmp_path)
    assert files.symbol == "tflite_micro_speech"
    assert parse_c_array(files.source.read_text()) == mltk_tflite_bytes
    assert f"_MODEL_DATA_LEN {len(mltk_tflite_bytes)}" in files.header.read_text()
    settings = files.settings.read_text()
    assert "#define TFLITE_MICRO_SPEECH_FE_NOISE_REDUCTION_EVEN_SMOOTHING 0.025f" in settings
    assert "#define TFLITE_MICRO_SPEECH_DETECTION_THRESHOLD 185" in settings
    assert '{"yes", "no", "_unknown_", "_silence_"}' in settings
    assert "#define TFLITE_MICRO_SPEECH_OUTPUT_ZERO_POINT (-128)" in settings


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("gcc") is None, reason="no C/C++ compiler")
def test_sources_compile_and_run(mltk_tflite_bytes, tmp_path):
    model = write_parameters(mltk_tflite_bytes, {**read_parameters(mltk_tflite_bytes), "name": "kws-test 2"})
    files = export_c(model, tmp_path)
    symbol = files.symbol
    assert symbol == c_identifier("kws-test 2") == "kws_test_2"
    main = tmp_path / "main.c"
    main.write_text(CHECK_PROGRAM.format(symbol=symbol, upper=symbol.upper()))
    objects = tmp_path / "model.o"
    subprocess.run(
        ["g++", "-std=c++11", "-Wall", "-Werror", "-c", str(files.source), "-o", str(objects)], check=True
    )
    # the settings header is plain C
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-Wall",
            "-Werror",
            "-Wno-unused-variable",
            "-c",
            str(main),
            "-o",
            str(tmp_path / "main.o"),
        ],
        check=True,
    )
    binary = tmp_path / "check"
    subprocess.run(["g++", str(tmp_path / "main.o"), str(objects), "-o", str(binary)], check=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(len(model)), "4", "_silence_", "185", "16000", "0.95", "-128"]


def test_export_cli(mltk_tflite_path, tmp_path):
    out = tmp_path / "firmware"
    result = CliRunner().invoke(app, ["export", str(mltk_tflite_path), "--c", str(out), "--name", "kws"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "kws_model_data.cc",
        "kws_model_data.h",
        "kws_model_settings.h",
    ]
    result = CliRunner().invoke(app, ["export", str(tmp_path / "missing.tflite"), "--c", str(out)])
    assert result.exit_code == 2 and "missing.tflite" in result.output


def test_a_failed_export_leaves_the_previous_one_intact(mltk_tflite_path, tmp_path):
    """Issue 16, case 4: the .h was written first, then a truncated model failed with a traceback."""
    out = tmp_path / "firmware"
    result = CliRunner().invoke(app, ["export", str(mltk_tflite_path), "--c", str(out), "--name", "kws"])
    assert result.exit_code == 0, result.output
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    truncated = tmp_path / "kws.tflite"
    truncated.write_bytes(mltk_tflite_path.read_bytes()[:5000])
    result = CliRunner().invoke(app, ["export", str(truncated), "--c", str(out), "--name", "kws"])
    assert result.exit_code == 2 and "not a valid .tflite" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("name", ["kwś", "../evil", "1abc", "---", "", "a" * 101])
def test_export_refuses_a_name_that_is_no_c_name(mltk_tflite_path, tmp_path, name):
    # Rewritten silently before (kwś -> kw_, ../evil -> evil); 300 characters left an empty folder.
    out = tmp_path / "firmware"
    result = CliRunner().invoke(app, ["export", str(mltk_tflite_path), "--c", str(out), "--name", name])
    assert result.exit_code == 2 and "a symbol prefix is a C name" in " ".join(result.output.split())
    assert not out.exists()


@pytest.mark.parametrize(
    "stored, message",
    [
        ({"detection_threshold": 300}, "detection_threshold=300 is out of range"),
        ({"detection_threshold_list": ["a", "b", "c", "d"]}, "needs one whole 0-255 threshold per class"),
        ({"detection_threshold_list": [180, 999, 255, 255]}, "needs one whole 0-255 threshold per class"),
        # CLASSES_COUNT 2 beside OUTPUT_DIM1 4: firmware read past the class names.
        ({"classes": ["a", "b"]}, "'classes' names 2 classes for an output of 4 scores"),
    ],
)
def test_export_refuses_detection_parameters_the_firmware_cannot_use(
    mltk_tflite_bytes, tmp_path, stored, message
):
    # A header with DETECTION_THRESHOLD 300 built, and the part then detected nothing.
    model = tmp_path / "odd.tflite"
    model.write_bytes(write_parameters(mltk_tflite_bytes, {**read_parameters(mltk_tflite_bytes), **stored}))
    result = CliRunner().invoke(app, ["export", str(model), "--c", str(tmp_path / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{model}: " in said and message in said, said
    assert not (tmp_path / "out").exists()


def _archive(path, tflite_bytes: bytes):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(path.name.removesuffix(".mltk.zip") + ".tflite", tflite_bytes)
    return path


def test_export_of_an_archive_names_the_archive(mltk_tflite_bytes, tmp_path):
    # The error named the temporary copy (/tmp/microspeech-archive-.../kws.tflite).
    stored = {**read_parameters(mltk_tflite_bytes), "classes": ["a", "b"]}
    archive = _archive(tmp_path / "kws.mltk.zip", write_parameters(mltk_tflite_bytes, stored))
    result = CliRunner().invoke(app, ["export", str(archive), "--c", str(tmp_path / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{archive}: cannot write its settings header" in said, said
    assert "microspeech-archive" not in said


def test_export_of_an_archive_with_bad_detection_parameters_says_how_to_mend_them(
    mltk_tflite_bytes, tmp_path
):
    # The advice was `microspeech params kws.mltk.zip --set ...`, which refuses archives.
    stored = {**read_parameters(mltk_tflite_bytes), "detection_threshold": 300}
    archive = _archive(tmp_path / "kws.mltk.zip", write_parameters(mltk_tflite_bytes, stored))
    result = CliRunner().invoke(app, ["export", str(archive), "--c", str(tmp_path / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "detection_threshold=300 is out of range" in said, said
    assert f"unzip {archive} kws.tflite, then `microspeech params kws.tflite --set NAME=VALUE`" in said


def test_detector_parameters_are_every_detection_parameter():
    # A keyword model storing only suppression_ms and minimum_count is still a detector.
    from dataclasses import fields

    from microspeech.detection.params import DetectionParams
    from microspeech.tflite.c_export import DETECTOR_PARAMETERS

    names = {field.name for field in fields(DetectionParams)} | {"detection_threshold_list"}
    assert set(DETECTOR_PARAMETERS) == names


def test_export_keeps_class_names_of_a_model_that_is_no_detector(mltk_tflite_bytes, tmp_path):
    # MLTK's fingerprint model stores "match, no-match" beside 16 signature values and no detection
    # parameters: it was refused as a detector whose names run short of its scores.
    from microspeech.tflite.c_export import DETECTOR_PARAMETERS

    stored = {k: v for k, v in read_parameters(mltk_tflite_bytes).items() if k not in DETECTOR_PARAMETERS}
    stored["classes"] = ["match", "no-match"]
    archive = _archive(tmp_path / "sig.mltk.zip", write_parameters(mltk_tflite_bytes, stored))
    result = CliRunner().invoke(app, ["export", str(archive), "--c", str(tmp_path / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said
    assert "note: 'classes' names 2 classes for an output of 4 values: the header keeps them" in said
    settings = (tmp_path / "out" / "tflite_micro_speech_model_settings.h").read_text()
    assert '{"match", "no-match"}' in settings and "// Note: 'classes' names 2 classes" in settings


def test_export_refuses_a_file_as_the_folder(mltk_tflite_path, tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("x")
    result = CliRunner().invoke(app, ["export", str(mltk_tflite_path), "--c", str(target)])
    assert result.exit_code == 2 and "--c" in result.output and "is a file, not a folder" in result.output


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_odd_metadata_is_still_valid_c_that_reads_back(mltk_tflite_bytes, tmp_path):
    # A CR or a NUL in a class name ended the string literal, "??/" formed a trigraph, 1e39f
    # exceeded float's range and -2**63 was "so large that it is unsigned".
    classes = ["cr\rx\ttab", "tri??/g", 'caf\u00e9"q\\', "nul\0end"]  # one per score
    parameters = {**read_parameters(mltk_tflite_bytes), "classes": classes, "big": 1e39, "low": -(2**63)}
    files = export_c(write_parameters(mltk_tflite_bytes, parameters), tmp_path)
    main = tmp_path / "odd.c"
    main.write_text(
        f'#include "{files.settings.name}"\n#include <stdio.h>\n#include <string.h>\n'
        "int main(void) {\n"
        "    for (int i = 0; i < TFLITE_MICRO_SPEECH_CLASSES_COUNT; i++) {\n"
        "        const char *name = TFLITE_MICRO_SPEECH_CLASSES[i];\n"
        "        size_t length = strlen(name);\n"
        "        if (i == 3) length = 7;  /* past the NUL */\n"
        "        fwrite(name, 1, length, stdout); fputc(10, stdout);\n"
        "    }\n"
        '    printf("%g %lld\\n", (double)TFLITE_MICRO_SPEECH_BIG, (long long)TFLITE_MICRO_SPEECH_LOW);\n'
        "    return 0;\n}\n"
    )
    binary = tmp_path / "odd"
    compile_ = ["gcc", "-std=c99", "-Wall", "-Werror", "-Wtrigraphs", str(main), "-o", str(binary)]
    subprocess.run(compile_, check=True, cwd=tmp_path)
    printed = subprocess.run([str(binary)], capture_output=True, check=True).stdout
    expected = "".join(name + "\n" for name in classes).encode() + b"1e+39 -9223372036854775808\n"
    assert printed == expected


def test_metadata_c_cannot_hold_is_refused_naming_the_parameter(mltk_tflite_path, tmp_path):
    source = mltk_tflite_path.read_bytes()
    for extra, message in (
        ({"volume_gain": float("nan")}, "parameter 'volume_gain': a non-finite number"),
        ({"fe_sample_rate_hz": 8000}, "parameters 'fe.sample_rate_hz' and 'fe_sample_rate_hz' both become"),
        # Names the export derives: firmware saw whichever definition came last.
        ({"model_data_len": 5}, ".*_MODEL_DATA_LEN would be defined twice .*'model_data_len'"),
        ({"classes_count": 9}, "TFLITE_MICRO_SPEECH_CLASSES_COUNT would be defined twice .*'classes_count'"),
        ({"input_count": 2}, "TFLITE_MICRO_SPEECH_INPUT_COUNT would be defined twice .*'input_count'"),
        # The longest name it is derived from: model_data's _LEN, not model's.
        ({"model": "m", "model_data": b"\x01"}, ".*_MODEL_DATA_LEN would be defined twice .*'model_data'"),
    ):
        model = tmp_path / "odd.tflite"
        model.write_bytes(write_parameters(source, {**read_parameters(source), **extra}))
        with pytest.raises(ValueError, match=f"odd.tflite: cannot write its settings header: {message}"):
            export_c(model, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_every_input_and_output_is_described(tmp_path):
    # A model with two inputs and two outputs was described by its first of each, silently.
    import keras
    import tensorflow as tf

    first, second = keras.Input((3,)), keras.Input((5,))
    joined = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], [keras.layers.Dense(2)(joined), keras.layers.Dense(4)(joined)])
    path = tmp_path / "two.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    settings = export_c(path, tmp_path / "c").settings.read_text()
    assert "#define TWO_INPUT_COUNT 2" in settings and "#define TWO_OUTPUT_COUNT 2" in settings
    elements = sorted(line.split()[-1] for line in settings.splitlines() if "_ELEMENTS" in line)
    assert elements == ["2", "3", "4", "5"]


def test_the_api_takes_a_given_name_as_given_or_refuses_it(mltk_tflite_bytes, tmp_path):
    # export_c(model, folder, name="1x") silently wrote m_1x_* (the CLI refused --name 1x).
    with pytest.raises(ValueError, match=r"name '1x': a symbol prefix is a C name"):
        export_c(mltk_tflite_bytes, tmp_path / "out", name="1x")
    assert not (tmp_path / "out").exists()
    assert export_c(mltk_tflite_bytes, tmp_path / "out", name="kws_2").symbol == "kws_2"


def test_the_api_says_a_file_given_as_the_folder_is_a_file(mltk_tflite_bytes, tmp_path):
    (tmp_path / "prof.json").write_text("{}")
    with pytest.raises(ValueError, match="prof.json: is a file, not a folder"):
        export_c(mltk_tflite_bytes, tmp_path / "prof.json")
