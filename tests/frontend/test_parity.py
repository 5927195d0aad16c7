"""Every feature value equals MLTK's compiled frontend (the firmware's arithmetic), uint16 and int8."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from microspeech.frontend import FrontendSettings, StreamingFrontend, compute_features
from microspeech.models import get_model_spec, list_models

pytestmark = pytest.mark.xdist_group("frontend")
DEFAULT = FrontendSettings()
DTYPES = ("uint16", "int8")


def assert_same(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == reference.dtype and ours.shape == reference.shape
    mismatched = np.argwhere(ours != reference)
    assert mismatched.size == 0, f"{len(mismatched)} cells differ, first at {mismatched[0].tolist()}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_real_clips_are_bit_exact(real_clips, oracle, dtype):
    assert len(real_clips) >= 250
    assert_same(compute_features(real_clips, DEFAULT, dtype), oracle(DEFAULT, real_clips, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_generated_edge_cases_are_bit_exact(edge_cases, oracle, dtype):
    clips = np.stack(list(edge_cases.values()))
    ours = compute_features(clips, DEFAULT, dtype)
    reference = oracle(DEFAULT, clips, dtype)
    for name, mine, theirs in zip(edge_cases, ours, reference, strict=True):
        assert np.array_equal(mine, theirs), name


def test_single_clip_gives_one_spectrogram(real_clips, oracle):
    features = compute_features(real_clips[0])
    assert features.shape == (49, 40) and features.dtype == np.int8
    assert_same(features, oracle(DEFAULT, real_clips[:1], "int8")[0])


@st.composite
def signals(draw) -> np.ndarray:
    """Mixtures of tones, noise, DC, silence gaps and clipping over the whole int16 range."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    signal = np.zeros(16000)
    for _ in range(draw(st.integers(0, 3))):
        frequency = draw(st.floats(20, 7990))
        signal += draw(st.floats(0, 40000)) * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 6.3))
    signal += rng.normal(0, draw(st.sampled_from([0, 1, 30, 1000, 20000])), 16000)
    signal += draw(st.integers(-32768, 32767)) * draw(st.sampled_from([0, 0, 1]))
    start, length = draw(st.integers(0, 16000)), draw(st.integers(0, 16000))
    signal[start : start + length] *= draw(st.sampled_from([0.0, 0.01, 1.0]))
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clips=st.lists(signals(), min_size=1, max_size=4))
def test_hypothesis_signals_are_bit_exact(oracle, clips):
    batch = np.stack(clips)
    for dtype in DTYPES:
        assert_same(compute_features(batch, DEFAULT, dtype), oracle(DEFAULT, batch, dtype))


VARIANTS = {
    "no_noise_reduction_no_pcan": dict(noise_reduction_enable=False, pcan_enable=False),
    "no_pcan": dict(pcan_enable=False),
    "no_log": dict(log_scale_enable=False),
    "dc_notch": dict(dc_notch_filter_enable=True, dc_notch_filter_coefficient=0.9),
    # MLTK's later keyword models: noise reduction leaves at least 40% of the signal, DC notch on.
    "min_signal_040_dc_notch_095": dict(
        noise_reduction_min_signal_remaining=0.40,
        dc_notch_filter_enable=True,
        dc_notch_filter_coefficient=0.95,
    ),
    "dynamic_quantization": dict(quantize_dynamic_scale_enable=True, quantize_dynamic_scale_range_db=35.0),
    "mltk_defaults_25_10_32": dict(window_size_ms=25, window_step_ms=10, filterbank_n_channels=32),
    "fft_1024_radix2_stage": dict(window_size_ms=48, filterbank_n_channels=64, sample_length_ms=1200),
    "8khz": dict(sample_rate_hz=8000, filterbank_upper_band_limit=3800.0, filterbank_lower_band_limit=60.0),
}


def _fit(clips: np.ndarray, n_samples: int) -> np.ndarray:
    if clips.shape[1] >= n_samples:
        return np.ascontiguousarray(clips[:, :n_samples])
    return np.pad(clips, ((0, 0), (0, n_samples - clips.shape[1])))


def _assert_bit_exact_on_clips(settings, real_clips, edge_cases, oracle) -> None:
    """Every fifth real clip and every edge case, fitted to the settings' length, in every dtype."""
    clips = _fit(np.concatenate([real_clips[::5], np.stack(list(edge_cases.values()))]), settings.n_samples)
    for dtype in DTYPES:
        assert_same(compute_features(clips, settings, dtype), oracle(settings, clips, dtype))


@pytest.mark.parametrize("variant", VARIANTS)
def test_other_settings_are_bit_exact(real_clips, edge_cases, oracle, variant):
    _assert_bit_exact_on_clips(DEFAULT.replace(**VARIANTS[variant]), real_clips, edge_cases, oracle)


@pytest.mark.parametrize("name", list_models())
def test_registered_models_frontends_are_bit_exact(real_clips, edge_cases, oracle, name):
    # A registered model may tune its frontend (the seed's noise estimate, the DS-CNN's channels);
    # the device computes what MLTK's library computes for those settings.
    _assert_bit_exact_on_clips(get_model_spec(name).frontend, real_clips, edge_cases, oracle)


@st.composite
def frontend_settings(draw) -> FrontendSettings:
    window_ms = draw(st.integers(10, 64))
    noise_reduction = draw(st.booleans())
    sample_rate = draw(st.sampled_from([8000, 11025, 16000, 16000, 16000]))
    return FrontendSettings(
        sample_rate_hz=sample_rate,
        sample_length_ms=draw(st.integers(window_ms, 1000)),
        window_size_ms=window_ms,
        window_step_ms=draw(st.integers(1, window_ms)),
        filterbank_n_channels=draw(st.integers(4, 64)),
        filterbank_lower_band_limit=draw(st.floats(60, 300)),
        filterbank_upper_band_limit=draw(st.floats(2000, sample_rate / 2 - 100)),
        noise_reduction_enable=noise_reduction,
        noise_reduction_smoothing_bits=draw(st.integers(5, 12)),
        noise_reduction_even_smoothing=draw(st.floats(0.0, 1.0)),
        noise_reduction_odd_smoothing=draw(st.floats(0.0, 1.0)),
        noise_reduction_min_signal_remaining=draw(st.floats(0.0, 1.0)),
        pcan_enable=noise_reduction and draw(st.booleans()),
        pcan_strength=draw(st.floats(0.5, 1.5)),
        pcan_offset=draw(st.floats(1.0, 200.0)),
        pcan_gain_bits=draw(st.integers(18, 24)),
        log_scale_shift=draw(st.integers(0, 10)),
        dc_notch_filter_enable=draw(st.booleans()),
        dc_notch_filter_coefficient=draw(st.floats(0.5, 0.999)),
    )


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(settings=frontend_settings(), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_settings_are_bit_exact(real_clips, edge_cases, oracle, settings, seed):
    rng = np.random.default_rng(seed)
    edges = np.stack(list(edge_cases.values()))[:4]
    clips = np.concatenate([real_clips[rng.choice(len(real_clips), 3)], edges])
    clips = _fit(clips, settings.n_samples)
    assert_same(compute_features(clips, settings, "uint16"), oracle(settings, clips, "uint16"))


def test_activity_detection_matches_mltk(real_clips, edge_cases, oracle):
    from microspeech.testing.mltk_oracle import MltkFrontend

    settings = DEFAULT.replace(activity_detection_enable=True)
    reference = MltkFrontend(settings)
    clips = np.concatenate([real_clips[:40], np.stack(list(edge_cases.values()))])
    tripped = []
    for clip in clips:
        reference.process_sample(clip)
        frontend = StreamingFrontend(settings)
        frontend.process(clip)
        tripped.append(frontend.activity_detected())
        assert tripped[-1] == reference.activity_was_detected()
    assert any(tripped) and not all(tripped)


def test_long_clips_span_several_blocks(real_clips, oracle):
    """Clips with more frames than one SIMD block (TARGET_LANES): noise state crosses blocks."""
    from microspeech.frontend.kernels import TARGET_LANES

    settings = DEFAULT.replace(sample_length_ms=5000, window_step_ms=10, dc_notch_filter_enable=True)
    assert settings.n_frames > 2 * TARGET_LANES
    clips = np.stack([np.concatenate(real_clips[i : i + 5]) for i in (0, 40, 80)])
    for dtype in DTYPES:
        assert_same(compute_features(clips, settings, dtype), oracle(settings, clips, dtype))
    streamed = StreamingFrontend(settings).process(clips[1])
    assert_same(streamed, oracle(settings, clips[1:2])[0])
