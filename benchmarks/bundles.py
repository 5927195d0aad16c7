"""The real Speech Commands bundles of ../shared/data, unpacked once for every benchmark script."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from microspeech.data.archive import extract_archive

REPO = Path(__file__).resolve().parents[1]
# Where the test suite unpacks them too (tests/conftest.py), so nothing is unpacked twice.
BUNDLE_CACHE = Path(os.environ.get("MICROSPEECH_TEST_CACHE", Path.home() / ".cache" / "microspeech" / "data"))
SUBSET = "speech_commands_v0.02_subset"
DEV_TEST_SET = "speech_commands_test_set_v0.02_dev"
MLTK_ZIP = REPO / ".venv/lib/python3.11/site-packages/mltk/models/tflite_micro/tflite_micro_speech.mltk.zip"


def shared_bundle(name: str, hint: str = "") -> Path:
    """Bundle `name` (without .tar.xz) from ../shared/data, unpacked into BUNDLE_CACHE once."""
    for data_dir in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        archive = data_dir / f"{name}.tar.xz"
        if archive.is_file():
            return extract_archive(archive, BUNDLE_CACHE / name)
    sys.exit(f"error: {name}.tar.xz not found in ../shared/data" + (f"; {hint}" if hint else ""))
