"""Frontend settings: a typed, validated dataclass that round-trips through MLTK's `fe.*` keys.

The keys and defaults follow MLTK 0.20's AudioFeatureGeneratorSettings, except that our
defaults are the `tflite_micro_speech` model's (30/20 ms windows, 40 channels, noise
reduction and PCAN on). Every derived size (samples, frames, FFT length) is computed
exactly as the C frontend computes it, with integer arithmetic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from microspeech.checks import exact_value

KEY_PREFIX = "fe."
# The smallest FFT we accept: the fixed-point kissfft real transform needs a few bins,
# and a frontend with a window under 16 samples is not a useful configuration.
MIN_WINDOW_SAMPLES = 16


class FrontendSettingsError(ValueError):
    """Invalid frontend settings; the message names the `fe.*` key and what is accepted."""


@dataclass(frozen=True)
class FrontendSettings:
    """The micro frontend's configuration (field names are MLTK's `fe.*` keys without the prefix)."""

    sample_rate_hz: int = 16000
    sample_length_ms: int = 1000
    window_size_ms: int = 30
    window_step_ms: int = 20
    filterbank_n_channels: int = 40
    filterbank_upper_band_limit: float = 7500.0
    filterbank_lower_band_limit: float = 125.0
    noise_reduction_enable: bool = True
    noise_reduction_smoothing_bits: int = 10
    noise_reduction_even_smoothing: float = 0.025
    noise_reduction_odd_smoothing: float = 0.06
    noise_reduction_min_signal_remaining: float = 0.05
    pcan_enable: bool = True
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    pcan_gain_bits: int = 21
    log_scale_enable: bool = True
    log_scale_shift: int = 6
    activity_detection_enable: bool = False
    activity_detection_alpha_a: float = 0.5
    activity_detection_alpha_b: float = 0.8
    activity_detection_arm_threshold: float = 0.75
    activity_detection_trip_threshold: float = 0.8
    dc_notch_filter_enable: bool = False
    dc_notch_filter_coefficient: float = 0.95
    quantize_dynamic_scale_enable: bool = False
    quantize_dynamic_scale_range_db: float = 40.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, _coerce(field.name, field.type, value))
        self._validate()

    # ---- derived sizes (integer arithmetic, as in the C code) ----
    @property
    def n_samples(self) -> int:
        """Samples per clip: sample_rate_hz * sample_length_ms / 1000."""
        return self.sample_rate_hz * self.sample_length_ms // 1000

    @property
    def window_size(self) -> int:
        """Samples per analysis window."""
        return self.window_size_ms * self.sample_rate_hz // 1000

    @property
    def window_step(self) -> int:
        """Samples between the starts of consecutive windows."""
        return self.window_step_ms * self.sample_rate_hz // 1000

    @property
    def n_frames(self) -> int:
        """Feature frames per clip (49 for 1000 ms with 30/20 ms windows)."""
        return (self.n_samples - self.window_size) // self.window_step + 1

    @property
    def n_channels(self) -> int:
        return self.filterbank_n_channels

    @property
    def fft_length(self) -> int:
        """The smallest power of two holding one window."""
        length = 1
        while length < self.window_size:
            length <<= 1
        return length

    @property
    def spectrogram_shape(self) -> tuple[int, int]:
        return (self.n_frames, self.n_channels)

    # ---- serialization ----
    def to_dict(self) -> dict[str, Any]:
        """MLTK's `fe.*` dict (including the derived `fe.fft_length`), as stored in .tflite metadata."""
        values: dict[str, Any] = {KEY_PREFIX + f.name: getattr(self, f.name) for f in fields(self)}
        values[KEY_PREFIX + "fft_length"] = self.fft_length
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FrontendSettings:
        """Build settings from `fe.*` keys; keys without the `fe.` prefix are ignored.

        Missing keys take our defaults. An unknown `fe.*` key, or an `fe.fft_length`
        that disagrees with the window size, is an error naming the key.
        """
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
                continue
            name = key[len(KEY_PREFIX) :]
            if name == "fft_length":
                continue
            if name not in known:
                accepted = ", ".join(sorted(KEY_PREFIX + k for k in known))
                raise FrontendSettingsError(f"unknown frontend setting {key!r}; accepted keys: {accepted}")
            kwargs[name] = value
        settings = cls(**kwargs)
        fft_key = KEY_PREFIX + "fft_length"
        if fft_key in values:
            try:  # "abc", null, 1e400 reached int() as tracebacks
                fft_length = exact_value(values[fft_key], int)
            except (TypeError, ValueError, OverflowError):
                raise FrontendSettingsError(f"{fft_key}={values[fft_key]!r}: expected an int") from None
        if fft_key in values and fft_length != settings.fft_length:
            raise FrontendSettingsError(
                f"{fft_key}={values[fft_key]} does not match the window of {settings.window_size} samples "
                f"(the frontend uses the next power of two, {settings.fft_length})"
            )
        return settings

    def replace(self, **changes: Any) -> FrontendSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- validation ----
    def _validate(self) -> None:
        def bad(name: str, message: str) -> FrontendSettingsError:
            return FrontendSettingsError(f"{KEY_PREFIX}{name}={getattr(self, name)!r}: {message}")

        for name in ("sample_rate_hz", "sample_length_ms", "window_size_ms", "window_step_ms"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        if not 1000 <= self.sample_rate_hz <= 96_000:
            raise bad("sample_rate_hz", "must be 1000 to 96000 Hz")
        if self.sample_length_ms > 60_000:
            raise bad("sample_length_ms", "must be at most 60000 (one minute)")
        if self.window_size < MIN_WINDOW_SAMPLES:
            raise bad("window_size_ms", f"gives {self.window_size} samples; {MIN_WINDOW_SAMPLES} needed")
        if self.window_size > self.n_samples:
            raise bad(
                "window_size_ms",
                f"the window ({self.window_size} samples) must fit in one clip "
                f"({self.n_samples} samples from fe.sample_length_ms={self.sample_length_ms})",
            )
        if not 0 < self.window_step <= self.window_size:
            raise bad("window_step_ms", f"must give 1 to {self.window_size} samples (the window size)")
        fft_bins = self.fft_length // 2 + 1
        if not 1 <= self.filterbank_n_channels <= fft_bins:
            raise bad(
                "filterbank_n_channels",
                f"must be 1 to {fft_bins} (the FFT bins of a {self.fft_length}-point FFT)",
            )
        nyquist = self.sample_rate_hz / 2
        if not 0.0 <= self.filterbank_lower_band_limit < self.filterbank_upper_band_limit:
            raise bad("filterbank_lower_band_limit", "must be >= 0 and below fe.filterbank_upper_band_limit")
        if self.filterbank_upper_band_limit > nyquist:
            raise bad("filterbank_upper_band_limit", f"must not exceed half the sample rate ({nyquist:g} Hz)")
        if not 0 <= self.noise_reduction_smoothing_bits <= 16:
            raise bad("noise_reduction_smoothing_bits", "must be 0..16")
        for name in (
            "noise_reduction_even_smoothing",
            "noise_reduction_odd_smoothing",
            "noise_reduction_min_signal_remaining",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must be between 0.0 and 1.0")
        if self.pcan_enable and not self.noise_reduction_enable:
            raise bad("pcan_enable", "PCAN needs the noise estimate: set fe.noise_reduction_enable=True")
        if self.pcan_strength < 0.0:
            raise bad("pcan_strength", "must be >= 0")
        if self.pcan_offset <= 0.0:
            raise bad("pcan_offset", "must be > 0")
        correction_bits = self.fft_length.bit_length() - 1 - 6
        if self.pcan_enable and self.noise_reduction_smoothing_bits < correction_bits:
            # PCAN's table scales by 2^(smoothing_bits - correction_bits): a negative shift in C
            raise bad(
                "noise_reduction_smoothing_bits",
                f"must be {correction_bits}..16 with PCAN on for an FFT of {self.fft_length}",
            )
        snr_shift = self.pcan_gain_bits - correction_bits - 12
        if self.pcan_enable and not (0 <= self.pcan_gain_bits <= 30 and snr_shift >= 0):
            raise bad("pcan_gain_bits", f"must be {correction_bits + 12}..30 for an FFT of {self.fft_length}")
        if not 0 <= self.log_scale_shift <= 15:
            raise bad("log_scale_shift", "must be 0..15")
        if not 0.0 <= self.dc_notch_filter_coefficient < 1.0:
            raise bad("dc_notch_filter_coefficient", "must be in [0.0, 1.0)")
        for name in ("activity_detection_alpha_a", "activity_detection_alpha_b"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must be between 0.0 and 1.0")
        for name in ("activity_detection_arm_threshold", "activity_detection_trip_threshold"):
            if not 0.0 <= getattr(self, name) < 8.0:
                raise bad(name, "must be in [0.0, 8.0) (a Q12 ratio)")
        if not 0.0 < self.quantize_dynamic_scale_range_db <= 200.0:
            raise bad("quantize_dynamic_scale_range_db", "must be in (0, 200] dB")


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    """`value` as the field's type when that loses nothing (checks.exact_value), else an error naming
    the setting."""
    kind = type_name if isinstance(type_name, str) else type_name.__name__
    try:
        return exact_value(value, {"bool": bool, "int": int, "float": float}[kind])
    except (TypeError, ValueError, OverflowError):
        article = "an" if kind[0] in "aeiou" else "a"
        raise FrontendSettingsError(f"{KEY_PREFIX}{name}={value!r}: expected {article} {kind}") from None
