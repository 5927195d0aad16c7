"""Downloads against a local HTTP server on loopback (the stand-in for the internet)."""

import dataclasses
import hashlib
import http.server
import io
import socket
import tarfile
import threading

import pytest

from microspeech.data import datasets as named
from microspeech.data import load_dataset
from microspeech.data.download import DownloadError, download_file
from microspeech.data.speech_commands import (
    SPEECH_COMMANDS_TEST_SET_V2,
    SPEECH_COMMANDS_V2,
    DatasetUnavailableError,
    fetch,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Server:
    """Serves named payloads with HTTP Range; can cut the first response short or ignore Range."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.honour_range = True
        self.content_type: str | None = None
        self.send_length = True
        self.whole_as_partial = False  # answer a Range with 206 and the whole file
        self.content_range = True  # a 206 names its range
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                start = 0
                if requested and server.honour_range:
                    asked = int(requested.removeprefix("bytes=").split("-")[0])
                    start = 0 if server.whole_as_partial else asked
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    if server.content_range:
                        self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                if server.send_length:
                    self.send_header("Content-Length", str(len(body) - start))
                else:
                    self.close_connection = True
                if server.content_type:
                    self.send_header("Content-Type", server.content_type)
                self.end_headers()
                chunk = body[start:]
                if server.cut_after is not None:
                    chunk, server.cut_after = chunk[: server.cut_after], None
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture()
def server():
    instance = _Server()
    yield instance
    instance.httpd.shutdown()
    instance.httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _get(server, target, **checks):
    return download_file(server.url("a.tar.gz"), target, show_progress=False, **checks)


CHECKS = {"size": len(PAYLOAD), "sha256": hashlib.sha256(PAYLOAD).hexdigest()}


def test_download_verifies_and_publishes_atomically(server, tmp_path):
    server.files["a.tar.gz"] = PAYLOAD
    target = tmp_path / "a.tar.gz"
    _get(server, target, **CHECKS)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.tar.gz.part").exists()
    server.files.clear()  # a second call is served from disk
    assert download_file(server.url("a.tar.gz"), target, show_progress=False) == target


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.files["a.tar.gz"] = PAYLOAD
    server.cut_after = 300_000
    target = tmp_path / "a.tar.gz"
    with pytest.raises(DownloadError, match="run again to resume"):
        _get(server, target, **CHECKS)
    assert not target.exists()  # nothing that looks complete
    assert (tmp_path / "a.tar.gz.part").stat().st_size == 300_000
    _get(server, target, **CHECKS)
    assert server.ranges == [None, "bytes=300000-"]
    assert target.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.files["a.tar.gz"] = PAYLOAD
    server.honour_range = False
    (tmp_path / "a.tar.gz.part").write_bytes(b"stale bytes from another file")
    target = _get(server, tmp_path / "a.tar.gz", **CHECKS)
    assert target.read_bytes() == PAYLOAD


def test_a_whole_file_sent_as_partial_content_is_no_resume(server, tmp_path):
    # A 206 whose Content-Range starts at 0 was appended to the partial file: the answer's size
    # never fitted, and every later run failed the same way on the same partial file.
    server.files["a.tar.gz"] = PAYLOAD
    server.whole_as_partial = True
    (tmp_path / "a.tar.gz.part").write_bytes(PAYLOAD[:1000])
    assert _get(server, tmp_path / "a.tar.gz", **CHECKS).read_bytes() == PAYLOAD
    # A 206 without a Content-Range is the range asked for: resumed, as before.
    server.whole_as_partial, server.content_range = False, False
    (tmp_path / "a.tar.gz").unlink()
    (tmp_path / "a.tar.gz.part").write_bytes(PAYLOAD[:1000])
    assert _get(server, tmp_path / "a.tar.gz", **CHECKS).read_bytes() == PAYLOAD
    assert server.ranges[-1] == "bytes=1000-"


def test_a_full_disk_is_not_called_a_broken_connection(server, tmp_path, monkeypatch):
    import builtins
    import errno

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk_open(path, mode="r", *args, **kwargs):
        writing = "a" in mode or "w" in mode
        return FullDisk(path, mode) if writing else builtins.open(path, mode, *args, **kwargs)

    server.files["a.tar.gz"] = PAYLOAD
    monkeypatch.setattr("microspeech.data.download.open", full_disk_open, raising=False)
    said = r"a.tar.gz.part: cannot write the download \(No space left on device\); make room"
    with pytest.raises(DownloadError, match=said):
        _get(server, tmp_path / "a.tar.gz", **CHECKS)


def test_checksum_mismatch_deletes_everything(server, tmp_path):
    server.files["a.tar.gz"] = PAYLOAD
    with pytest.raises(DownloadError, match="SHA-256"):
        _get(server, tmp_path / "a.tar.gz", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.tar.gz.lock"]


def test_offline_error_says_how_to_go_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    with socket.socket() as probe:  # a port nobody listens on: the machine is offline
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    offline = dataclasses.replace(SPEECH_COMMANDS_V2, url=f"http://127.0.0.1:{closed}/speech_commands_v0.02.tar.gz")
    monkeypatch.setattr(named, "SPEECH_COMMANDS_V2", offline)
    with pytest.raises(DatasetUnavailableError) as raised:
        load_dataset("speech_commands_v2")
    message = str(raised.value)
    assert "cannot connect" in message and "--dataset PATH" in message and "synthetic" in message
    assert "as PATH to `microspeech dataset info/verify`" in message  # they take no --dataset
    with pytest.raises(DatasetUnavailableError, match="download is off"):
        load_dataset("speech_commands_v2", download=False)
    assert not (tmp_path / "datasets" / "speech_commands_v2").exists()


@pytest.mark.xdist_group("speech_commands_bundles")
def test_test_set_download_extract_and_load_end_to_end(server, tmp_path, monkeypatch, test_set_dir):
    # A miniature official test-set archive made of genuine clips, published by the local server.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in ("yes", "_unknown_", "_silence_"):
            for path in sorted((test_set_dir / folder).iterdir())[:3]:
                tar.add(path, arcname=f"./{folder}/{path.name}")
    archive = buffer.getvalue()
    server.files["speech_commands_test_set_v0.02.tar.gz"] = archive
    url = server.url("speech_commands_test_set_v0.02.tar.gz")
    published = {"url": url, "size": len(archive), "sha256": _sha(archive)}
    remote = dataclasses.replace(SPEECH_COMMANDS_TEST_SET_V2, **published)
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    monkeypatch.setattr(named, "SPEECH_COMMANDS_TEST_SET_V2", remote)
    dataset = load_dataset("speech_commands_test_set_v0.02")
    assert dataset.root == tmp_path / "datasets" / "speech_commands_test_set_v0.02"
    assert dataset.layout == "test_set" and len(dataset.clips) == 9
    # _unknown_/backward_<speaker>_nohash_0.wav says "backward", its word.
    assert dataset.words == ["_silence_", "backward", "yes"] and {c.split for c in dataset.clips} == {"test"}
    assert not remote.archive_path.exists()  # the archive is dropped once extracted
    server.files.clear()
    assert len(load_dataset("speech_commands_test_set_v0.02").clips) == 9  # no second download
    assert fetch(remote) == dataset.root


def test_an_archive_found_in_the_download_folder_is_checked_too(server, tmp_path):
    """Issue 16, case 8: a tar placed there was extracted unchecked, marked complete, deleted."""
    server.files["a.tar.gz"] = PAYLOAD
    target = tmp_path / "a.tar.gz"
    target.write_bytes(b"a planted archive of the wrong size")
    assert _get(server, target, **CHECKS).read_bytes() == PAYLOAD  # replaced by the verified download
    same_size = bytes(len(PAYLOAD))
    target.write_bytes(same_size)  # right size, wrong SHA-256
    assert _get(server, target, **CHECKS).read_bytes() == PAYLOAD
    server.files.clear()
    target.write_bytes(same_size)
    # Offline: refused, never handed on for extraction, and the user is told the file is gone.
    with pytest.raises(DownloadError, match=r"the archive already at .*a.tar.gz: SHA-256 .*; removed\)"):
        _get(server, target, **CHECKS)
    assert not target.exists()


def test_an_answer_of_another_size_is_not_taken_for_the_archive(server, tmp_path):
    # A server (or proxy) that ignored Range and sent an 18-byte login page replaced a partial
    # download, then "the connection closed after 18 of N bytes".
    target = tmp_path / "a.tar.gz"
    partial = tmp_path / "a.tar.gz.part"
    partial.write_bytes(PAYLOAD[:100])
    server.files["a.tar.gz"] = b"<html>login</html>"
    server.honour_range = False
    with pytest.raises(DownloadError, match=f"answered with 18 bytes, not the {len(PAYLOAD)}-byte archive"):
        _get(server, target, **CHECKS)
    assert partial.read_bytes() == PAYLOAD[:100] and not target.exists()


def test_a_web_page_is_not_kept_as_a_partial_download(server, tmp_path):
    # Sent without a length it was kept, and the next run resumed the real archive onto it.
    target = tmp_path / "a.tar.gz"
    server.files["a.tar.gz"] = b"<html>please log in</html>"
    server.content_type, server.send_length = "text/html; charset=utf-8", False
    with pytest.raises(DownloadError, match="answered with a web page, not the archive"):
        _get(server, target, **CHECKS)
    assert not target.exists() and not (tmp_path / "a.tar.gz.part").exists()


def test_a_server_refusing_to_resume_a_longer_partial_file_is_said_once(server, tmp_path):
    # HTTP 416 read as "the connection closed; run again to resume", on every run.
    target = tmp_path / "a.tar.gz"
    partial = tmp_path / "a.tar.gz.part"
    partial.write_bytes(PAYLOAD[:5000])
    server.files["a.tar.gz"] = PAYLOAD[:3000]
    with pytest.raises(DownloadError, match=r"refused to resume after 5000 of \d+ bytes \(HTTP 416\)"):
        _get(server, target, **CHECKS)
    assert not partial.exists() and not target.exists()
