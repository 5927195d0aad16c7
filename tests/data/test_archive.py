import io
import tarfile

import pytest

from microspeech.data.archive import COMPLETE_MARKER, ArchiveError, extract_archive


def _tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_extracts_once_and_unwraps_top_folder(tmp_path):
    archive = tmp_path / "a.tar.gz"
    _tar_with(archive, [("top/yes/a.wav", b"x"), ("top/LICENSE", b"cc")])
    root = extract_archive(archive, tmp_path / "out")
    assert (root / "yes" / "a.wav").read_bytes() == b"x"
    assert (root / COMPLETE_MARKER).exists()
    archive.unlink()  # a second call must not need the archive
    assert extract_archive(archive, tmp_path / "out") == root


def test_refuses_members_outside_the_target(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    _tar_with(archive, [("../escape.txt", b"bad")])
    with pytest.raises(ArchiveError, match="evil.tar.gz"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
