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


@pytest.mark.parametrize("with_filter", [True, False], ids=["data filter", "fallback below 3.11.4"])
def test_a_member_through_the_archives_own_link_is_refused(tmp_path, monkeypatch, with_filter):
    # lnk -> . first, then lnk/lnk/lnk/../../../x: checked against the still-empty folder, the
    # fallback (Debian 12's Python 3.11.2 takes it) let it land above the target.
    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = tmp_path / "chain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("lnk")
        link.type, link.linkname = tarfile.SYMTYPE, "."
        tar.addfile(link)
        escape = tarfile.TarInfo("lnk/lnk/lnk/../../../via_link.txt")
        escape.size = 3
        tar.addfile(escape, io.BytesIO(b"bad"))
    hard = tmp_path / "hard.tar.gz"  # a hard link whose target goes through the link
    with tarfile.open(hard, "w:gz") as tar:
        tar.addfile(link)
        through = tarfile.TarInfo("h.txt")
        through.type, through.linkname = tarfile.LNKTYPE, "lnk/lnk/lnk/../../secret.txt"
        tar.addfile(through)
    (tmp_path / "deep").mkdir()
    with pytest.raises(ArchiveError, match="hard.tar.gz"):
        extract_archive(hard, tmp_path / "deep" / "hard")
    target = tmp_path / "deep" / "out"
    with pytest.raises(ArchiveError, match="chain.tar.gz"):
        extract_archive(archive, target)
    assert not list(tmp_path.rglob("via_link.txt"))


@pytest.mark.parametrize("mode", ["gz", "xz"])
def test_damaged_compressed_data_is_not_extracted_as_complete(tmp_path, mode):
    # tarfile stops at the end-of-archive blocks and never read the gzip CRC behind them: flipped
    # bytes in a stored (random) block extracted a wrong file and marked the folder complete.
    import os

    archive = tmp_path / f"a.tar.{mode}"
    with tarfile.open(archive, f"w:{mode}") as tar:
        payload = os.urandom(1_000_000)  # incompressible: flipped bytes break no deflate structure
        info = tarfile.TarInfo("top/yes/a.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    damaged = bytearray(archive.read_bytes())
    middle = len(damaged) // 2
    damaged[middle : middle + 8] = bytes(b ^ 0xFF for b in damaged[middle : middle + 8])
    archive.write_bytes(bytes(damaged))
    with pytest.raises(ArchiveError, match=f"a.tar.{mode}: extraction failed"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_an_archive_of_one_word_folder_keeps_it(tmp_path):
    # Unwrapped as if it were a wrapper, "yes/*.wav" landed at the root and lost its word.
    archive = tmp_path / "a.tar.gz"
    _tar_with(archive, [("yes/a.wav", b"x"), ("yes/b.wav", b"y")])
    root = extract_archive(archive, tmp_path / "out")
    assert (root / "yes" / "a.wav").read_bytes() == b"x"
