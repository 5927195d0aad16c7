"""`microspeech view`: SVG and PNG diagrams that show ops, shapes and byte sizes."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import matplotlib.image
import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.tflite.diagram import draw_model
from microspeech.tflite.graph import remove_reshape_before_fully_connected
from microspeech.tflite.summary import summarize_keras, summarize_tflite

pytestmark = pytest.mark.xdist_group("tflite_models")


def _svg_text(path) -> str:
    ElementTree.parse(path)  # well-formed XML
    return path.read_text()


def test_tflite_diagram(mltk_tflite_bytes, tmp_path):
    svg, png = draw_model(summarize_tflite(mltk_tflite_bytes), tmp_path, stem="speech")
    assert (svg.name, png.name) == ("speech.svg", "speech.png")
    text = _svg_text(svg)
    for expected in (
        "CONV_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
        "1x25x20x8 int8 (4,000 B)",
        "16,000 B",
    ):
        assert expected in text, expected
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 500 and image.shape[1] > 500
    slim_svg, _ = draw_model(
        summarize_tflite(remove_reshape_before_fully_connected(mltk_tflite_bytes)), tmp_path
    )
    assert "RESHAPE" not in _svg_text(slim_svg)


def test_keras_diagram_and_cli(seed_keras, tmp_path):
    _, path = seed_keras
    svg, _ = draw_model(summarize_keras(path), tmp_path)
    text = _svg_text(svg)
    assert "conv2d (Conv2D)" in text and "1x4000" not in text and "4000 float32 (16,000 B)" in text
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["view", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["seed-keras.png", "seed-keras.svg"]


def test_netron_missing_is_explained(mltk_tflite_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_netron(name, *args, **kwargs):
        if name == "netron":
            raise ImportError("No module named 'netron'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_netron)
    result = CliRunner().invoke(app, ["view", str(mltk_tflite_path), "--netron"])
    assert result.exit_code == 2 and "pip install netron" in result.output


def test_the_svg_and_png_are_written_both_or_neither(mltk_tflite_bytes, tmp_path):
    # A folder where the PNG goes: the SVG was written first, then the PNG failed naming its
    # temporary file; now nothing is written and the message names the PNG.
    model = tmp_path / "kws.tflite"
    model.write_bytes(mltk_tflite_bytes)
    out = tmp_path / "view"
    (out / "kws-tflite.png").mkdir(parents=True)
    result = CliRunner().invoke(app, ["view", str(model), "--out", str(out)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{out / 'kws-tflite.png'}: a folder stands" in message
    assert sorted(path.name for path in out.iterdir()) == ["kws-tflite.png"]


def test_an_archives_diagram_lands_in_the_current_folder_and_a_lone_tflite_is_drawn(
    mltk_tflite_path, tmp_path, monkeypatch
):
    # An .mltk.zip's diagram went to the hidden cache folder its .tflite is copied out to; a
    # folder holding only a .tflite was refused ("has no .keras model") by view and summarize.
    from microspeech.mltk_wheel import shipped_speech_model_zip

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["view", str(shipped_speech_model_zip())])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tflite_micro_speech-tflite.png",
        "tflite_micro_speech-tflite.svg",
    ]
    folder = tmp_path / "lone"
    folder.mkdir()
    (folder / "kws.tflite").write_bytes(mltk_tflite_path.read_bytes())
    for command in ("view", "summarize"):
        result = CliRunner().invoke(app, [command, str(folder)])
        assert result.exit_code == 0, result.output
    assert (folder / "kws-tflite.svg").is_file()


def test_draw_model_refuses_what_it_cannot_draw_or_would_write_elsewhere(mltk_tflite_bytes, tmp_path):
    # stem="../escaped" wrote beside the folder; a path for the summary failed on .layers; a file
    # as the folder read "cannot write prof.json/x.svg: File exists".
    summary = summarize_tflite(mltk_tflite_bytes)
    for stem in ("../escaped", "a/b", "", ".."):
        with pytest.raises(ValueError, match="a file name without folders"):
            draw_model(summary, tmp_path / "out", stem=stem)
    with pytest.raises(TypeError, match="draw_model takes a summary, not str"):
        draw_model("model.tflite", tmp_path)
    (tmp_path / "prof.json").write_text("{}")
    with pytest.raises(ValueError, match="prof.json: is a file, not a folder"):
        draw_model(summary, tmp_path / "prof.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prof.json"]
