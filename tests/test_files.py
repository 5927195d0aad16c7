import pytest

from microspeech.files import WriteError, atomic_output, exclusive_lock, write_bytes_atomic, write_text_atomic


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


def test_atomic_directory_builds_a_folder_as_a_whole(tmp_path):
    from microspeech.files import COMPLETE_MARKER, atomic_directory

    target = tmp_path / "built"
    with pytest.raises(RuntimeError), atomic_directory(target) as partial:
        (partial / "half.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert not target.exists() and not partial.exists()  # nothing half-built stays behind

    with atomic_directory(target) as partial:
        (partial / "data.txt").write_text("first")
    assert (target / "data.txt").read_text() == "first" and (target / COMPLETE_MARKER).exists()
    with atomic_directory(target) as again:
        assert again is None  # complete: nothing to build
    # Nothing beside the folder: no partial, old copy or lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]


def test_atomic_directory_resume_keeps_the_partial_work(tmp_path):
    from microspeech.files import atomic_directory

    target = tmp_path / "dataset"
    with pytest.raises(KeyboardInterrupt), atomic_directory(target, resume=True) as partial:
        (partial / "batch-1.wav").write_bytes(b"done")
        raise KeyboardInterrupt
    with atomic_directory(target, resume=True) as partial:
        assert (partial / "batch-1.wav").read_bytes() == b"done"
        (partial / "batch-2.wav").write_bytes(b"done")
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == [
        "batch-1.wav",
        "batch-2.wav",
    ]


def test_atomic_directory_without_a_marker_replaces_the_previous_folder(tmp_path):
    from microspeech.files import atomic_directory

    target = tmp_path / "checkpoint"
    for state in ("epoch 1", "epoch 2"):
        with atomic_directory(target, marker=None, lock=False) as partial:
            (partial / "state.json").write_text(state)
    assert (target / "state.json").read_text() == "epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_atomic_directory_refuses_to_build_through_a_link_or_in_the_current_folder(tmp_path, monkeypatch):
    # --output linked -> bigdisk/data: the link was renamed to linked.old and a real folder put in
    # its place; "." failed with "PosixPath('.') has an empty name". A finished folder is still
    # read through a link.
    from microspeech.files import atomic_directory

    (tmp_path / "bigdisk" / "data").mkdir(parents=True)
    (tmp_path / "linked").symlink_to(tmp_path / "bigdisk" / "data")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refusals = (("linked", "linked is a link to .*: a folder is built"), ("dangling", "which does not exist"))
    for link, said in refusals:
        with pytest.raises(ValueError, match=said):
            with atomic_directory(tmp_path / link):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bigdisk", "dangling", "linked"]
    with atomic_directory(tmp_path / "bigdisk" / "data") as partial:  # the folder itself: built
        (partial / "a.txt").write_text("x")
    with atomic_directory(tmp_path / "linked") as partial:
        assert partial is None  # finished: read through the link
    monkeypatch.chdir(tmp_path / "bigdisk")
    with pytest.raises(ValueError, match="name a new folder"), atomic_directory("."):
        pass


def test_a_symbolic_link_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_fifo_or_device_is_written_in_place_never_renamed_over(tmp_path):
    import os
    import stat

    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with atomic_output(fifo) as where:
        assert where == fifo  # written as it is (nothing is written here: a FIFO blocks without a reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    # A link to one (/dev/stdout -> /proc/self/fd/1 -> a pipe) is written through in place too.
    link = tmp_path / "stdout"
    link.symlink_to(fifo)
    with atomic_output(link) as where:
        assert where == link
    assert link.is_symlink() and stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_write_error_names_the_file_not_its_temporary(tmp_path):
    from microspeech.files import WriteError

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(WriteError, match=r"cannot write .*a-file/out\.npy") as raised:
        write_bytes_atomic(tmp_path / "a-file" / "out.npy", b"data")
    assert ".partial" not in str(raised.value)

    def full_disk(_):
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=r"cannot write .*model\.tflite: No space left on device"):
        with atomic_output(tmp_path / "model.tflite") as temporary:
            full_disk(temporary)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_waiting_for_a_held_lock_is_said(tmp_path, caplog):
    # A second download of the same archive blocked without a word.
    import threading
    import time

    lock = tmp_path / "archive.lock"
    held = threading.Event()

    def holder():
        with exclusive_lock(lock):
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(timeout=30)
    with caplog.at_level("WARNING"), exclusive_lock(lock):
        pass
    thread.join()
    assert any(f"it holds {lock}" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"), exclusive_lock(lock):  # free: nothing said
        pass
    assert not caplog.records


def test_a_dangling_link_creates_no_folder_outside_the_output(tmp_path):
    # export --c into a folder holding a dangling link made /nonexistent/dir/ to write its target.
    link = tmp_path / "out.h"
    link.symlink_to(tmp_path / "elsewhere" / "deeper" / "out.h")
    with pytest.raises(WriteError, match="a link to .*whose folder does not exist"):
        write_text_atomic(link, "x")
    assert not (tmp_path / "elsewhere").exists()
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)  # its folder there: the target is created
    write_text_atomic(link, "y")
    assert (tmp_path / "elsewhere" / "deeper" / "out.h").read_text() == "y" and link.is_symlink()


def test_a_lock_file_removed_by_its_holder_is_never_held_twice(tmp_path):
    # atomic_directory removes its lock file when done; a process already waiting won the lock on
    # the removed file while a newcomer locked the new one: both "held the lock".
    import threading
    import time

    from microspeech.files import exclusive_lock

    lock = tmp_path / "built.lock"
    holders, most = [0], [0]
    guard = threading.Lock()
    waiter_started = threading.Event()

    def hold(name: str) -> None:
        with exclusive_lock(lock):
            with guard:
                holders[0] += 1
                most[0] = max(most[0], holders[0])
            time.sleep(0.3)  # long enough for the other to get in, were it let in
            with guard:
                holders[0] -= 1

    def waiter() -> None:
        waiter_started.set()
        hold("waiter")

    with exclusive_lock(lock):
        thread = threading.Thread(target=waiter)
        thread.start()
        waiter_started.wait()
        time.sleep(0.2)  # the waiter now blocks on the file about to be removed
        lock.unlink()
    hold("newcomer")  # takes a new file at the same path
    thread.join(timeout=10)
    assert not thread.is_alive() and most[0] == 1
