"""Issue 16, case 2: audio headers are checked before any allocation; fuzzed headers never crash."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from microspeech.audio import MAX_AUDIO_SECONDS, AudioError, check_audio_header, read_audio
from microspeech.cli import app


def wav_bytes(
    rate: int,
    channels: int = 1,
    bits: int = 16,
    payload: bytes = b"",
    declared: int | None = None,
    fmt_code: int = 1,
) -> bytes:
    """A RIFF/WAVE file with whatever header fields are given (no check: hostile headers too)."""
    size = len(payload) if declared is None else declared
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_code, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body) & 0xFFFFFFFF) + body


def test_a_header_claiming_1_hz_is_refused_before_resampling(tmp_path):
    path = tmp_path / "one_hz.wav"  # 32 KB: once took 5.6 GB and 19.5 s to resample 16000x
    path.write_bytes(wav_bytes(1, payload=np.arange(16000, dtype=np.int16).tobytes()))
    started = time.perf_counter()
    with pytest.raises(AudioError, match=r"one_hz.wav: implausible sample rate 1 Hz .*1000 to 768000 Hz"):
        read_audio(path)
    assert time.perf_counter() - started < 1


def test_features_and_verify_refuse_the_1_hz_file(tmp_path):
    (tmp_path / "yes").mkdir()
    path = tmp_path / "yes" / "one_hz_nohash_0.wav"
    path.write_bytes(wav_bytes(1, payload=np.arange(16000, dtype=np.int16).tobytes()))
    good = (3000 * np.sin(np.arange(16000) / 3)).astype(np.int16).tobytes()
    (tmp_path / "yes" / "good_nohash_0.wav").write_bytes(wav_bytes(16000, payload=good))
    result = CliRunner().invoke(app, ["features", str(path)])
    assert result.exit_code == 2 and "implausible sample rate 1 Hz" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["dataset", "verify", str(tmp_path)], terminal_width=300)
    assert result.exit_code == 1 and "one_hz_nohash_0.wav" in result.output
    assert "implausible sample rate" in result.output


def test_channel_count_and_length_budget(tmp_path):
    many = tmp_path / "many.wav"
    many.write_bytes(wav_bytes(16000, channels=200, payload=bytes(400 * 8)))
    with pytest.raises(AudioError, match="many.wav"):
        read_audio(many)
    long = tmp_path / "long.wav"  # a short file is fine; the budget is on frames the header declares
    long.write_bytes(wav_bytes(1000, payload=bytes(2 * 1000)))
    assert len(read_audio(long)) == 16000
    assert MAX_AUDIO_SECONDS >= 600  # background-noise recordings (minutes) stay readable
    # 40 minutes is under the hour: the refusal names what is over (16 channels at 96 kHz), where
    # it said "2400 s of audio; at most 3600 s".
    with pytest.raises(AudioError, match=r"2400 s of 16 channel\(s\) at 96000 Hz is 3,686,400,000 samples"):
        check_audio_header("wide.wav", 96_000, 16, 2400 * 96_000)
    # An hour of 192 kHz stereo passed the old bound (an hour of mono at 768 kHz) and needed about
    # 17 GB to decode; an hour of 48 kHz stereo (about 4.4 GB) is the most now.
    with pytest.raises(AudioError, match=r"an hour of 48 kHz stereo\) are decoded at once"):
        check_audio_header("hifi.wav", 192_000, 2, 3600 * 192_000)
    check_audio_header("hour.wav", 48_000, 2, 3600 * 48_000)


def test_missing_folder_and_unreadable_files_are_named(tmp_path, unprivileged):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        read_audio(tmp_path)
    # chmod 000 denies reading only to a process without privileges: root reads anything, so as
    # root the check runs in a child process without them (`unprivileged`).
    locked = tmp_path / "locked.wav"
    locked.write_bytes(wav_bytes(16000, payload=bytes(3200)))
    locked.chmod(0)
    code = (
        "import sys\n"
        "from microspeech.audio import AudioError, read_audio\n"
        "try:\n    read_audio(sys.argv[1])\nexcept AudioError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [*unprivileged, sys.executable, "-c", code, str(locked)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "locked.wav: permission denied" in result.stdout, result.stdout + result.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rate=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1, 8000, 16000, 44100])),
    channels=st.integers(0, 300),
    bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]),
    fmt_code=st.sampled_from([1, 3, 0, 0xFFFE, 85]),
    payload=st.binary(max_size=4096),
    declared=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
def test_wav_header_fuzz_named_error_or_result_with_bounded_memory(
    tmp_path, rate, channels, bits, fmt_code, payload, declared
):
    path = tmp_path / "fuzz.wav"
    path.write_bytes(wav_bytes(rate, channels, bits, payload, declared, fmt_code))
    tracemalloc.start()
    try:
        try:
            audio = read_audio(path)
        except AudioError as error:
            assert "fuzz.wav" in str(error)
        else:
            assert audio.dtype == np.int16 and 0 < len(audio) <= MAX_AUDIO_SECONDS * 16000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_verify_names_converted_files_and_nan_audio(tmp_path):
    """`dataset info` says verify lists the files converted when read: it only counted them. And a
    clip of NaN samples passes the header check; decoding (verify, train) names it."""
    import soundfile as sf

    words = tmp_path / "yes"
    words.mkdir()
    sf.write(words / "rate_nohash_0.wav", np.full(8000, 0.1, np.float32), 8000, subtype="PCM_16")
    sf.write(words / "nan_nohash_0.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    good = (3000 * np.sin(np.arange(16000) / 3)).astype(np.int16).tobytes()
    (words / "good_nohash_0.wav").write_bytes(wav_bytes(16000, payload=good))
    result = CliRunner().invoke(app, ["dataset", "verify", str(tmp_path)], terminal_width=300)
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert result.exit_code == 1
    # The 8 kHz one; the float one of NaNs is unusable, listed there alone (not also as converted).
    assert "1 file(s) are converted when read:" in lines
    assert any(line.startswith("yes/rate_nohash_0.wav: ") and "8000 Hz" in line for line in lines), lines
    assert any(line.startswith("yes/nan_nohash_0.wav: ") and "NaN" in line for line in lines), lines


def test_the_rate_and_length_asked_for_are_checked_by_name(tmp_path):
    # read_audio's sample_rate: None or "16000" blamed the file, 10**9 allocated 2 GB; fit_length
    # took -1 as "drop the last sample".
    from microspeech.audio import fit_length

    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(16000, payload=np.arange(1600, dtype=np.int16).tobytes()))
    for rate in (None, "16000", 16000.5, 0, 10**9):
        with pytest.raises(ValueError, match=r"^sample_rate=.*: expected"):
            read_audio(path, sample_rate=rate)  # type: ignore[arg-type]
    assert len(read_audio(path, sample_rate=8000)) == 800
    for length in (-1, 2.5):
        with pytest.raises(ValueError, match="length="):
            fit_length(np.zeros(10, np.int16), length)  # type: ignore[arg-type]
    assert len(fit_length(np.zeros(10, np.int16), 0)) == 0


def test_float_samples_past_full_scale_are_said_to_be_clipped(tmp_path):
    import soundfile as sf

    from microspeech.audio import decode_audio

    path = tmp_path / "loud.wav"
    loud = np.concatenate([np.full(100, 5.0), np.zeros(15900)]).astype(np.float32)
    sf.write(path, loud, 16000, subtype="FLOAT")
    decoded = decode_audio(path)
    assert "100 sample(s) beyond full scale clipped" in decoded.conversions  # clipped without a word
    assert decoded.samples[:100].tolist() == [32767] * 100
    # A 44.1 kHz square wave peaking at 0.9: the resampler's overshoot went past 1.0 and was
    # counted as the file's own clipping (1,078 samples said to clip in a file that never does).
    square = 0.9 * np.sign(np.sin(2 * np.pi * 440 * np.arange(44100) / 44100))
    sf.write(tmp_path / "square.wav", square, 44100, subtype="FLOAT")
    assert not any("full scale" in line for line in decode_audio(tmp_path / "square.wav").conversions)


def test_verify_lists_a_float_clip_that_clips_when_read(tmp_path):
    # A float WAV scaled to +-32768 passed as "all files are usable" (listed only as converted
    # from FLOAT) though 15,948 of its samples clip when read, and train would learn them.
    import soundfile as sf

    words = tmp_path / "yes"
    words.mkdir()
    loud = (32768 * np.sin(np.arange(16000) / 3)).astype(np.float32)
    sf.write(words / "loud_nohash_0.wav", loud, 16000, subtype="FLOAT")
    good = (3000 * np.sin(np.arange(16000) / 3)).astype(np.int16).tobytes()
    (words / "good_nohash_0.wav").write_bytes(wav_bytes(16000, payload=good))
    result = CliRunner().invoke(app, ["dataset", "verify", str(tmp_path)], terminal_width=300)
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert result.exit_code == 0, result.output  # usable, listed
    assert "1 file(s) clip when read (float samples past full scale):" in lines, lines
    named = [line for line in lines if line.startswith("yes/loud_nohash_0.wav: ")]
    assert any("beyond full scale clipped" in line for line in named), lines


def test_a_wav_whose_recorder_never_finished_its_header_is_read_to_its_end(tmp_path):
    # A recorder killed before closing the file leaves data size 0 with 4 s of samples after it:
    # refused as "the file holds no audio samples", and skipped when indexing a dataset.
    from microspeech.audio import decode_audio
    from microspeech.data import load_dataset

    samples = (3000 * np.sin(np.arange(64000) / 3)).astype(np.int16)
    words = tmp_path / "yes"
    words.mkdir()
    path = words / "stream_nohash_0.wav"
    path.write_bytes(wav_bytes(16000, payload=samples.tobytes(), declared=0))
    decoded = decode_audio(path)
    assert np.array_equal(decoded.samples, samples)
    assert decoded.conversions == ("unfinished header (data size 0): 64000 samples read to the file's end",)
    dataset = load_dataset(str(tmp_path))
    assert [clip.path for clip in dataset.clips] == [path] and not dataset.skipped
    assert any("unfinished header" in issue.problem for issue in dataset.converted)
    import os  # the same bytes from a pipe, where a recorder most often leaves them so

    read_end, write_end = os.pipe()
    os.write(write_end, wav_bytes(16000, payload=samples[:16000].tobytes(), declared=0))
    os.close(write_end)
    try:
        assert np.array_equal(read_audio(f"/dev/fd/{read_end}"), samples[:16000])
    finally:
        os.close(read_end)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(wav_bytes(16000, payload=b"", declared=0))
    with pytest.raises(AudioError, match="the file holds no audio samples"):
        read_audio(empty)
