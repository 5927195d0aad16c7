"""uint16 frontend features -> the int8 the model sees, exactly as MLTK's AudioFeatureGenerator does."""

from __future__ import annotations

import numpy as np

from microspeech.frontend import kernels
from microspeech.frontend.settings import FrontendSettings

LN10_DIV_20 = 0.11512925465


def dynamic_quantize_range(settings: FrontendSettings) -> int:
    """The uint16 span mapped onto int8 by dynamic quantization (C: float math, then double)."""
    range_db = np.float32(settings.quantize_dynamic_scale_range_db)
    scaled = np.float32(range_db * np.float32(1 << settings.log_scale_shift))
    return int(float(scaled) * LN10_DIV_20)


def uint16_to_int8(features_u16: np.ndarray, settings: FrontendSettings | None = None) -> np.ndarray:
    """Quantize uint16 features (any shape) to int8.

    By default (and for settings without `quantize_dynamic_scale_enable`) every value maps
    with the fixed rule `clip((u16 * 256 + 333) // 666 - 128, -128, 127)`. With dynamic
    quantization enabled, each spectrogram (the last two axes) maps its own maximum to +127
    and everything `quantize_dynamic_scale_range_db` below it, or lower, to -128.
    """
    values = np.asarray(features_u16)
    if values.dtype != np.uint16:
        raise TypeError(f"uint16_to_int8 expects uint16 features, got {values.dtype}")
    if settings is None or not settings.quantize_dynamic_scale_enable:
        # MLTK / TFLM micro_speech: round(u16 * 256 / 666) - 128, the range 0..666 onto int8.
        flat = np.ascontiguousarray(values).reshape(-1)
        quantized = np.empty(flat.shape, dtype=np.int8)
        kernels.quantize_int8(flat, quantized)
        return quantized.reshape(values.shape)
    wide = values.astype(np.int32)
    if values.ndim < 2:
        raise ValueError("dynamic quantization needs whole spectrograms (frames, channels)")
    maximum = wide.max(axis=(-2, -1), keepdims=True)
    minimum = np.maximum(maximum - dynamic_quantize_range(settings), 0)
    span = np.maximum(maximum - minimum, 1)
    numerator = (wide - minimum) * 255
    # C integer division truncates toward zero (values below the range are negative here).
    quotient = np.where(numerator >= 0, numerator // span, -((-numerator) // span))
    return np.clip(quotient - 128, -128, 127).astype(np.int8)
