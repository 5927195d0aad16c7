"""The layers contract (tests/check_layers.py) holds, and a wrong-way import breaks `make lint`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "microspeech"
_spec = importlib.util.spec_from_file_location("check_layers", REPO / "tests" / "check_layers.py")
check_layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_layers)
violations = check_layers.violations


def test_the_package_keeps_the_contract():
    assert violations(PACKAGE) == []


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "microspeech"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # The firmware loop reaching for training, inside a function: still an import.
        (
            "detection/detector.py",
            "from microspeech.training import train_model",
            "detection must not import training",
        ),
        (
            "tflite/metadata.py",
            "from microspeech.models import resolve_model",
            "tflite must not import models",
        ),
        ("data/pipeline.py", "from microspeech.models.spec import ModelSpec", "data must not import models"),
        ("frontend/batch.py", "from microspeech.data import load_dataset", "frontend must not import data"),
        ("evaluation/metrics.py", "from microspeech.cli.app import fail", "evaluation imports the CLI"),
        ("models/spec.py", "from microspeech.evaluation import evaluate_model", "import cycle between"),
    ],
)
def test_a_wrong_way_import_fails_make_lint(package_copy: Path, module: str, line: str, expected: str):
    _append(package_copy / module, f"\n\ndef _wrong_way():\n    {line}\n")
    found = violations(package_copy)
    assert any(expected in problem for problem in found), found
    assert any(module in problem for problem in found), found
    # What `make lint` runs: the same check as a command, failing with the file and line.
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "check_layers.py"), str(package_copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert expected in result.stdout


def test_make_lint_runs_the_contract():
    makefile = (REPO / "Makefile").read_text()
    lint_recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "tests/check_layers.py" in lint_recipe
