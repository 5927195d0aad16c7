"""FrontendSettings: tflite_micro_speech defaults, MLTK fe.* round trip, clear validation errors."""

from __future__ import annotations

import importlib.util

import pytest

from microspeech.frontend import FrontendSettings, FrontendSettingsError
from microspeech.testing.mltk_oracle import find_wrapper


def test_defaults_are_the_tflite_micro_speech_frontend():
    settings = FrontendSettings()
    assert (settings.n_samples, settings.n_frames, settings.n_channels) == (16000, 49, 40)
    assert (settings.window_size, settings.window_step, settings.fft_length) == (480, 320, 512)
    values = settings.to_dict()
    assert values["fe.filterbank_lower_band_limit"] == 125.0
    assert values["fe.filterbank_upper_band_limit"] == 7500.0
    assert values["fe.noise_reduction_enable"] and values["fe.pcan_enable"]
    assert values["fe.log_scale_shift"] == 6 and values["fe.fft_length"] == 512


def test_dict_round_trip_and_coercion_from_metadata():
    settings = FrontendSettings(window_step_ms=10, filterbank_n_channels=32, dc_notch_filter_enable=True)
    assert FrontendSettings.from_dict(settings.to_dict()) == settings
    # metadata may carry other model parameters and JSON-ish types
    values = {**settings.to_dict(), "classes": ["yes", "no"], "fe.noise_reduction_enable": 1}
    values["fe.filterbank_n_channels"] = "32"
    assert FrontendSettings.from_dict(values) == settings


def test_keys_are_exactly_mltk_0_20s():
    path = find_wrapper()
    if path is None:
        pytest.skip("silabs-mltk==0.20.0 is not installed")
    settings_file = path.parent / "audio_feature_generator_settings.py"
    spec = importlib.util.spec_from_file_location("afg_settings", settings_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mltk_keys = set(module.AudioFeatureGeneratorSettings().keys())
    assert set(FrontendSettings().to_dict()) == mltk_keys
    mltk = module.AudioFeatureGeneratorSettings()
    mltk.window_size_ms, mltk.window_step_ms, mltk.filterbank_n_channels = 30, 20, 40
    assert FrontendSettings.from_dict(dict(mltk)).fft_length == mltk.fft_length == 512


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(noise_reduction_enable=False), "fe.pcan_enable.*noise_reduction_enable"),
        (dict(window_size_ms=1100), "window .* must fit"),
        (dict(window_step_ms=40), "fe.window_step_ms"),
        (dict(filterbank_upper_band_limit=9000.0), "half the sample rate"),
        (dict(filterbank_lower_band_limit=8000.0), "below fe.filterbank_upper_band_limit"),
        (dict(filterbank_lower_band_limit=-1.0), "fe.filterbank_lower_band_limit"),
        (dict(sample_rate_hz=0), "fe.sample_rate_hz"),
        (dict(filterbank_n_channels=0), "fe.filterbank_n_channels"),
        (dict(noise_reduction_even_smoothing=1.5), "fe.noise_reduction_even_smoothing"),
        (dict(dc_notch_filter_coefficient=1.0), "fe.dc_notch_filter_coefficient"),
        (dict(window_size_ms=30.5), "expected an int"),
        (dict(window_size_ms=True), "fe.window_size_ms=True: expected an int"),  # was taken as 1 ms
        (dict(pcan_strength=False), "fe.pcan_strength=False: expected a float"),
        (dict(pcan_enable="maybe"), "expected a bool"),
        (dict(pcan_gain_bits=5), "fe.pcan_gain_bits"),
        # passed validation, then "negative shift count" inside compute_features
        (dict(noise_reduction_smoothing_bits=2), "smoothing_bits=2: must be 3..16 with PCAN"),
    ],
)
def test_invalid_settings_name_the_key(changes, message):
    with pytest.raises(FrontendSettingsError, match=message):
        FrontendSettings().replace(**changes)


def test_filterbank_beyond_the_fft_is_an_error():
    from microspeech.frontend.tables import build_tables

    with pytest.raises(FrontendSettingsError, match="fe.filterbank_upper_band_limit"):
        build_tables(FrontendSettings(filterbank_n_channels=200, filterbank_upper_band_limit=8000.0))


def test_unknown_key_and_inconsistent_fft_length_are_errors():
    with pytest.raises(FrontendSettingsError, match="fe.windowsize_ms"):
        FrontendSettings.from_dict({"fe.windowsize_ms": 30})
    with pytest.raises(FrontendSettingsError, match="fe.fft_length=256"):
        FrontendSettings.from_dict({**FrontendSettings().to_dict(), "fe.fft_length": 256})
    # A stored fft_length that is no number reached int() as a ValueError / TypeError / OverflowError
    # traceback (features --settings); a whole float or a numeric string is MLTK's number.
    for value in ("abc", None, 1e400, 512.5):
        with pytest.raises(FrontendSettingsError, match=r"fe.fft_length=.*: expected an int"):
            FrontendSettings.from_dict({"fe.fft_length": value})
    assert FrontendSettings.from_dict({"fe.fft_length": 512.0}).fft_length == 512
