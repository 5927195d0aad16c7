import pytest

from microspeech.files import atomic_output, write_bytes_atomic, write_text_atomic


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_text_atomic(target, "one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temporary:
            assert temporary.suffix == ".tflite"
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


def test_a_set_is_written_whole_or_not_at_all(tmp_path):
    from microspeech.files import write_files_atomic

    first, second = tmp_path / "a.h", tmp_path / "a.cc"
    write_files_atomic({first: b"old header", second: b"old source"})
    with pytest.raises(TypeError):
        write_files_atomic({first: b"new header", second: "not bytes"})  # fails while staging
    assert first.read_bytes() == b"old header" and second.read_bytes() == b"old source"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.cc", "a.h"]  # nothing staged is left
    (tmp_path / "dir.h").mkdir()
    with pytest.raises(IsADirectoryError, match="dir.h"):
        write_files_atomic({first: b"new", tmp_path / "dir.h": b"x"})
    assert first.read_bytes() == b"old header"
