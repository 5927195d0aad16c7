"""Shared fixtures: the genuine Speech Commands bundles from ../shared/data, unpacked once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from microspeech.data.archive import extract_archive

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBSET_ARCHIVE = "speech_commands_v0.02_subset.tar.xz"
TEST_SET_ARCHIVE = "speech_commands_test_set_v0.02_dev.tar.xz"


def shared_data_dir() -> Path | None:
    """The shared bundles: $MICROSPEECH_SHARED_DATA, else ../shared/data next to the repo."""
    candidates = [os.environ.get("MICROSPEECH_SHARED_DATA"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / TEST_SET_ARCHIVE).is_file():
            return Path(candidate)
    return None


# Strict mode (on in .ci/run): a test that would skip because an oracle or a bundle is
# missing fails instead, so CI cannot go quietly green without them.
STRICT = os.environ.get("MICROSPEECH_STRICT_TESTS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"MICROSPEECH_STRICT_TESTS=1: a skip is a failure here ({reason})"


def test_data_cache() -> Path:
    return Path(os.environ.get("MICROSPEECH_TEST_CACHE", Path.home() / ".cache" / "microspeech" / "data"))


def _bundle(archive_name: str) -> Path:
    data_dir = shared_data_dir()
    if data_dir is None:
        pytest.skip(
            "the shared Speech Commands bundles are not on this machine "
            "($MICROSPEECH_SHARED_DATA or ../shared/data next to the repository)"
        )
    return extract_archive(data_dir / archive_name, test_data_cache() / archive_name.removesuffix(".tar.xz"))


@pytest.fixture(scope="session")
def subset_dir() -> Path:
    """Unpacked speech_commands_v0.02_subset: train+validation clips, lists, background noise."""
    return _bundle(SUBSET_ARCHIVE)


@pytest.fixture(scope="session")
def test_set_dir() -> Path:
    """Unpacked speech_commands_test_set_v0.02_dev: 12 folders of official test clips."""
    return _bundle(TEST_SET_ARCHIVE)


@pytest.fixture
def model_registry(tmp_path, monkeypatch):
    """The model registry as it is, restored after the test; the test runs in an empty folder
    (no ./models) with no $MICROSPEECH_MODEL_PATH and its own MICROSPEECH_HOME, so spec files
    it writes or loads are seen by no other test."""
    import sys

    from microspeech.models import registry

    registry.list_models()
    saved = (
        dict(registry._FACTORIES),
        dict(registry._SOURCES),
        dict(registry._LOADED),
        dict(registry._BROKEN),
        set(sys.modules),
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(registry.MODEL_PATH_ENV, raising=False)
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path / "home"))
    yield registry
    states = (registry._FACTORIES, registry._SOURCES, registry._LOADED, registry._BROKEN)
    for state, before in zip(states, saved[:4], strict=True):
        state.clear()
        state.update(before)
    for name in set(sys.modules) - saved[4]:
        if name.startswith("_microspeech_model_"):
            del sys.modules[name]


@pytest.fixture
def unprivileged() -> list[str]:
    """A command prefix under which chmod 000 really denies reading: nothing for a normal user;
    as root (who reads anything), root without the capabilities that bypass file permissions
    (setpriv, util-linux). It stays root, so a checkout in a 0700 folder (mktemp -d) or under
    /root still runs; only the permission bits of what it opens count."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    dropped = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={dropped}", f"--bounding-set={dropped}"]
