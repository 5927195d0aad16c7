import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from microspeech.audio import AudioError, decode_audio, fit_length, read_audio, to_int16, to_mono, write_wav


def test_int16_passes_through_unchanged():
    samples = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert to_int16(samples) is samples


def test_float_is_full_scale_and_saturates():
    out = to_int16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0]))
    assert out.tolist() == [-32768, -32768, 0, 16384, 32767]


def test_int32_keeps_top_bits():
    assert to_int16(np.array([65536 * 3, -65536], dtype=np.int32)).tolist() == [3, -1]


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan]), np.array([np.inf])])
def test_non_finite_is_an_error(bad):
    with pytest.raises(AudioError, match="NaN or infinite"):
        to_int16(bad, source="clip.wav")


def test_empty_and_odd_dtypes_are_errors():
    with pytest.raises(AudioError, match="empty"):
        to_int16(np.array([], dtype=np.int16))
    with pytest.raises(AudioError, match="unsupported sample type"):
        to_int16(np.array(["a"]))
    with pytest.raises(AudioError, match="shape"):
        to_mono(np.zeros((2, 2, 2)))


def test_stereo_downmix_and_resample(tmp_path):
    t = np.arange(44100) / 44100
    tone = 0.25 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone, tone], axis=1), 44100, subtype="PCM_24")
    audio = read_audio(path)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 1
    assert 0.2 * 32768 < np.abs(audio).max() < 0.3 * 32768


def test_pcm16_is_read_exactly_and_written_atomically(tmp_path, monkeypatch):
    samples = np.random.default_rng(0).integers(-32768, 32767, 1600).astype(np.int16)
    path = tmp_path / "x.wav"
    write_wav(path, samples)
    np.testing.assert_array_equal(read_audio(path), samples)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]

    # A writer that dies half-way (disk full, Ctrl-C): the old file stays whole, nothing else remains.
    import microspeech.audio as audio_module

    def dies_half_way(target, data, *args, **kwargs):
        Path(os.fsdecode(target)).write_bytes(b"RIFF\x00\x01")  # soundfile takes names as bytes
        raise OSError("disk full")

    monkeypatch.setattr(audio_module.sf, "write", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_wav(path, -samples)
    np.testing.assert_array_equal(read_audio(path), samples)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioError, match="broken.wav"):
        read_audio(path)


def test_fit_length_pads_and_truncates():
    assert fit_length(np.ones(3, np.int16), 5).tolist() == [1, 1, 1, 0, 0]
    assert fit_length(np.ones((2, 7), np.int16), 5).shape == (2, 5)


def test_a_cut_off_wav_is_read_as_is_and_said_to_be_truncated(tmp_path, subset_dir):
    clip = next(iter(sorted((subset_dir / "yes").glob("*.wav"))))
    whole = decode_audio(clip)
    assert whole.conversions == ()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(clip.read_bytes()[:20_000])  # a copy or download that stopped early
    decoded = decode_audio(cut)
    present = (20_000 - 44) // 2
    np.testing.assert_array_equal(decoded.samples, whole.samples[:present])
    note = f"truncated: {present} of {len(whole.samples)} samples present, read as is"
    assert decoded.conversions == (note,)


def test_channels_first_audio_is_refused_not_averaged_over_time():
    from microspeech.audio import AudioError, to_mono

    stereo = np.stack([np.arange(16000, dtype=np.int16), np.zeros(16000, np.int16)])
    with pytest.raises(AudioError, match=r"looks like \(channels, frames\) audio.*samples\.T"):
        to_mono(stereo)  # gave 2 samples
    assert to_mono(stereo.T).shape == (16000,)
    assert to_mono(np.array([[100, 300]], np.int16)).tolist() == [200]  # one frame of stereo


def test_fit_length_gives_a_copy_and_write_wav_a_whole_rate(tmp_path):
    from microspeech.audio import AudioError, fit_length, write_wav

    original = np.arange(10, dtype=np.int16)
    cut = fit_length(original, 5)
    cut[0] = 99
    assert original[0] == 0  # the caller's array is left alone
    assert fit_length([1, 2, 3], 5).tolist() == [1, 2, 3, 0, 0]
    write_wav(tmp_path / "a.wav", original, 16000.0)  # a whole float is a rate
    with pytest.raises(AudioError, match=r"sample_rate=16000.5: expected a whole number of Hz"):
        write_wav(tmp_path / "b.wav", original, 16000.5)
    assert not (tmp_path / "b.wav").exists()
