"""StreamingFrontend: any chunking gives the batch API's frames; state carries across chunks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from microspeech.audio import AudioError
from microspeech.frontend import FrontendSettings, StreamingFrontend, compute_features

pytestmark = pytest.mark.xdist_group("frontend")


def stream(frontend: StreamingFrontend, audio: np.ndarray, chunk_sizes) -> np.ndarray:
    frames, position = [], 0
    sizes = iter(chunk_sizes)
    while position < len(audio):
        size = next(sizes)
        frames.append(frontend.process(audio[position : position + size]))
        position += size
    return np.concatenate(frames)


@hsettings(max_examples=40, deadline=None)
@given(index=st.integers(0, 299), seed=st.integers(0, 2**32 - 1), largest=st.sampled_from([1, 7, 320, 5000]))
def test_random_chunks_equal_the_batch_api(real_clips, index, seed, largest):
    clip = real_clips[index % len(real_clips)]
    rng = np.random.default_rng(seed)
    chunk_sizes = rng.integers(0 if largest > 1 else 1, largest + 1, size=20000)
    frontend = StreamingFrontend()
    assert np.array_equal(stream(frontend, clip, chunk_sizes), compute_features(clip, dtype="uint16"))
    assert frontend.frames_emitted == 49


def test_state_carries_over_like_one_long_clip(real_clips, oracle):
    """Three seconds streamed == MLTK run once over a 3000 ms clip (noise estimate kept throughout)."""
    settings = FrontendSettings(sample_length_ms=3000, dc_notch_filter_enable=True)
    audio = np.concatenate(real_clips[10:13])
    frontend = StreamingFrontend(settings)
    frames = stream(frontend, audio, [1234, 321, 4000] * 100)
    assert np.array_equal(frames, oracle(settings, audio[np.newaxis])[0])
    fresh = compute_features(real_clips[11], dtype="uint16")
    assert not np.array_equal(frames[50:99], fresh), "the second second must see the first's noise estimate"


@pytest.mark.parametrize(
    ("hop", "options"),
    [
        (1600, {}),
        (1600, {"dc_notch_filter_enable": True, "activity_detection_enable": True}),
        (160, {}),
        (333, {}),
    ],
)
def test_hops_in_one_pass_equal_the_hop_by_hop_loop(real_clips, hop, options):
    """process_hops gives the frames and the state after every hop that `process` hop by hop gives."""
    settings = FrontendSettings(**options)
    audio = np.concatenate(real_clips[20:24])
    audio = audio[: len(audio) // hop * hop]
    looped, bulk = StreamingFrontend(settings), StreamingFrontend(settings)
    looped.process(real_clips[5][:1000])  # both start mid-stream, with samples pending
    bulk.process(real_clips[5][:1000])
    frames, states = [], []
    for start in range(0, len(audio), hop):
        frames.append(looped.process(audio[start : start + hop]))
        states.append(looped.state_bytes())
    first, second = bulk.process_hops(audio[: 7 * hop], hop), bulk.process_hops(audio[7 * hop :], hop)
    trace = type(first).concatenate([first, second])
    assert np.array_equal(trace.frames, np.concatenate(frames))
    assert np.array_equal(trace.frame_counts, np.cumsum([len(f) for f in frames]))
    assert bulk.state_bytes() == looped.state_bytes()
    assert [trace.state_bytes(k) for k in range(len(states))] == states
    assert trace.same_state(3, trace, 3) and not trace.same_state(3, trace, 4)


def test_hops_that_complete_no_frame_record_their_states(real_clips):
    # Under one window (480 samples) with nothing pending, process_hops raised "range() arg 3 must
    # not be zero": evaluate --streaming and tune at latency_ms <= 7 crashed after a detection.
    looped, bulk = StreamingFrontend(), StreamingFrontend()
    audio = real_clips[3][:448]
    states = []
    for start in range(0, len(audio), 112):
        looped.process(audio[start : start + 112])
        states.append(looped.state_bytes())
    trace = bulk.process_hops(audio, 112)
    assert trace.frames.shape == (0, 40) and list(trace.frame_counts) == [0, 0, 0, 0]
    assert [trace.state_bytes(k) for k in range(4)] == states and bulk.state_bytes() == looped.state_bytes()


def test_reset_starts_over(real_clips):
    frontend = StreamingFrontend()
    first = frontend.process(real_clips[3])
    frontend.process(real_clips[4][:777])
    frontend.reset()
    assert np.array_equal(frontend.process(real_clips[3]), first)


def test_empty_and_short_chunks_emit_nothing():
    frontend = StreamingFrontend()
    assert frontend.process(np.zeros(0, dtype=np.int16)).shape == (0, 40)
    assert frontend.process(np.zeros(479, dtype=np.int16)).shape == (0, 40)
    assert frontend.process(np.zeros(1, dtype=np.int16)).shape == (1, 40)


def test_streaming_rejects_stereo_and_wrong_rate():
    frontend = StreamingFrontend()
    with pytest.raises(AudioError, match="1-D mono"):
        frontend.process(np.zeros((800, 2), dtype=np.int16))
    with pytest.raises(AudioError, match="8000 Hz"):
        frontend.process(np.zeros(800, dtype=np.int16), sample_rate=8000)
    with pytest.raises(AudioError, match="NaN"):
        frontend.process(np.array([0.0, np.nan]))


def test_process_hops_converts_float_audio_as_process_does(real_clips):
    # process_hops cast float samples in [-1, 1] to int16 zeros (every frame silent) where process
    # scales them; a float hop size or empty audio were TypeErrors from deep inside.
    audio = real_clips[3][:16000]
    hops = StreamingFrontend().process_hops(audio.astype(np.float64) / 32768.0, 160)
    assert np.array_equal(hops.frames, StreamingFrontend().process_hops(audio, 160).frames)
    assert hops.frames.max() > 0
    for hop in (160.0, True):
        with pytest.raises(ValueError, match="hop_samples"):
            StreamingFrontend().process_hops(audio, hop)
    with pytest.raises(ValueError, match="hops"):
        StreamingFrontend().process_hops(np.zeros(0, np.int16), 160)


def test_a_state_from_other_settings_is_refused_not_a_crash(real_clips):
    """The kernels index the state without bounds checks: a 10-channel noise estimate loaded into a
    40-channel frontend killed the process (SIGSEGV) on the next chunk."""
    frontend = StreamingFrontend()
    frontend.process(real_clips[0][:1000])
    good = frontend.save_state()
    other = StreamingFrontend(FrontendSettings(filterbank_n_channels=10)).save_state()
    with pytest.raises(ValueError, match=r"noise estimate has shape \(10,\), this frontend's \(40,\)"):
        frontend.load_state(other)
    pending, estimate, activity, dc_state, emitted = good
    for bad in (None, good[:4], (pending, estimate.astype(np.float64), activity, dc_state, emitted)):
        with pytest.raises(ValueError, match="state"):
            frontend.load_state(bad)
    frontend.load_state(good)  # a state of its own still loads, and the stream goes on from it
    assert frontend.save_state()[4] == emitted and len(frontend.process(real_clips[0][1000:2000])) > 0
