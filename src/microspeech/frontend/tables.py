"""Fixed-point tables the kernels need, computed once per settings exactly as the C frontend does.

The C code builds its window, filterbank and PCAN tables with single-precision libm calls
(cosf, powf) and float arithmetic, and the mel scale with double log1p; one ulp of
difference can move a rounded Q12 weight, so we call the same libm functions through
ctypes (numpy's own float32 cos/pow are vectorized approximations) and fall back to
numpy only where libm cannot be loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from microspeech.frontend.settings import FrontendSettings, FrontendSettingsError

WINDOW_BITS = 12  # kFrontendWindowBits: Hann window in Q12
FILTERBANK_BITS = 12  # kFilterbankBits: filterbank weights in Q12
NOISE_REDUCTION_BITS = 14  # kNoiseReductionBits
PCAN_SNR_BITS = 12  # kPcanSnrBits
WIDE_DYNAMIC_FUNCTION_BITS = 32  # kWideDynamicFunctionBits
WIDE_DYNAMIC_FUNCTION_LUT_SIZE = 4 * WIDE_DYNAMIC_FUNCTION_BITS - 3
INT16_MAX = 32767

# log_lut.c: 128 segments of the log2 fraction correction, in Q16 (public TFLM table).
LOG_LUT = np.array(
    [
        0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797,
        2944, 3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549,
        4633, 4714, 4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444,
        5477, 5507, 5533, 5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626,
        5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203,
        5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264,
        4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875,
        2768, 2659, 2549, 2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094,
        963, 830, 695, 559, 421, 282, 142, 0, 0,
    ],
    dtype=np.int64,
)  # fmt: skip
LOG_LUT.setflags(write=False)

F32 = np.float32


def _load_libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    try:
        libm = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libm is None:
        return None
    for function in ("cosf", "powf"):
        getattr(libm, function).restype = ctypes.c_float
    libm.cosf.argtypes = [ctypes.c_float]
    libm.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    return libm


_LIBM = _load_libm()


def _cosf(x: np.float32) -> np.float32:
    if _LIBM is not None:
        return F32(_LIBM.cosf(float(x)))
    return np.cos(np.array([x], dtype=F32))[0]


def _powf(x: np.float32, y: np.float32) -> np.float32:
    if _LIBM is not None:
        return F32(_LIBM.powf(float(x), float(y)))
    return F32(np.power(np.float64(x), np.float64(y)))


def _freq_to_mel(freq: np.float32) -> np.float32:
    # MLTK's filterbank_util: float in, double log1p, float out.
    return F32(1127.0 * math.log1p(float(freq) / 700.0))


def _msb(value: int) -> int:
    """MostSignificantBit32: the number of bits needed (0 for 0)."""
    return int(value).bit_length()


@dataclass(frozen=True)
class FrontendTables:
    """Everything precomputed for one FrontendSettings; arrays are read-only inputs to the kernels."""

    window: np.ndarray  # (window_size,) int64 Q12 Hann coefficients
    fft_source: np.ndarray  # (2n,) int64 window position feeding each (re, im) leaf; window_size: zero
    fft_stages: np.ndarray  # (stages, 3) int64 rows (radix, m, fstride), deepest stage first
    twiddles: np.ndarray  # (n, 2) int64 complex twiddles of the n = fft/2 point complex FFT
    super_twiddles: np.ndarray  # (n/2, 2) int64 real-FFT split twiddles
    bin_channel: np.ndarray  # (end-start,) int64 channel (0..n_channels) of each used FFT bin
    bin_weight: np.ndarray  # (end-start,) int64 Q12 weight
    bin_unweight: np.ndarray  # (end-start,) int64 Q12 unweight
    gain_lut: np.ndarray  # (125,) int64 PCAN wide-dynamic-function table
    params: np.ndarray  # (N_PARAMS,) int64 scalars, indexed by the P_* constants below


# Indices into FrontendTables.params (numba kernels take one int64 array instead of 20 scalars).
(
    P_WINDOW_SIZE,
    P_WINDOW_STEP,
    P_FFT_SIZE,
    P_START_INDEX,
    P_END_INDEX,
    P_N_CHANNELS,
    P_NR_ENABLE,
    P_NR_SMOOTHING_BITS,
    P_NR_EVEN,
    P_NR_ODD,
    P_NR_MIN_REMAINING,
    P_PCAN_ENABLE,
    P_PCAN_SNR_SHIFT,
    P_LOG_ENABLE,
    P_LOG_SHIFT,
    P_CORRECTION_BITS,
    P_DC_ENABLE,
    P_DC_COEF,
    P_AD_ENABLE,
    P_AD_SCALE,
    P_AD_ALPHA_A,
    P_AD_ALPHA_B,
    P_AD_ARM,
    P_AD_TRIP,
    N_PARAMS,
) = range(25)


def _window(size: int) -> np.ndarray:
    # MLTK's window_util.c mixes precisions: a float argument, products in double, cosf.
    arg = F32(math.pi * 2.0 / float(F32(size)))
    coefficients = np.empty(size, dtype=np.int64)
    for i in range(size):
        value = F32(0.5 - 0.5 * float(_cosf(F32(float(arg) * (i + 0.5)))))
        coefficients[i] = math.floor(float(value) * (1 << WINDOW_BITS) + 0.5)
    return coefficients


def _kiss_factors(n: int) -> list[tuple[int, int]]:
    """kissfft's kf_factor: radix 4 first, then 2, then odd numbers."""
    factors = []
    p = 4
    floor_sqrt = math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = 2 if p == 4 else (3 if p == 2 else p + 2)
            if p > floor_sqrt:
                p = n
        n //= p
        factors.append((p, n))
        if n <= 1:
            return factors


def _fft_plan(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unroll kissfft's recursive kf_work into a leaf permutation plus iterative stages."""
    factors = _kiss_factors(n)
    for radix, _ in factors:
        if radix not in (2, 4):
            raise FrontendSettingsError(f"an FFT of {2 * n} points needs radix {radix}; use powers of two")
    perm = np.empty(n, dtype=np.int64)

    def leaves(out_offset: int, in_offset: int, fstride: int, level: int) -> None:
        radix, m = factors[level]
        if m == 1:
            for j in range(radix):
                perm[out_offset + j] = in_offset + j * fstride
        else:
            for q in range(radix):
                leaves(out_offset + q * m, in_offset + q * fstride, fstride * radix, level + 1)

    leaves(0, 0, 1, 0)
    stages = []
    fstride = 1
    for radix, m in factors:
        stages.append((radix, m, fstride))
        fstride *= radix
    return perm, np.array(stages[::-1], dtype=np.int64).reshape(-1, 3)


def _kiss_cexp(phase: float) -> tuple[int, int]:
    # KISS_FFT_COS/SIN for FIXED_POINT=16: floor(.5 + SAMP_MAX * cos(phase)) in double.
    return math.floor(0.5 + INT16_MAX * math.cos(phase)), math.floor(0.5 + INT16_MAX * math.sin(phase))


def _twiddles(n: int) -> tuple[np.ndarray, np.ndarray]:
    pi = 3.14159265358979323846264338327
    twiddles = np.array([_kiss_cexp(-2 * pi * i / n) for i in range(n)], dtype=np.int64).reshape(n, 2)
    supers = [_kiss_cexp(-pi * ((i + 1) / n + 0.5)) for i in range(n // 2)]
    return twiddles, np.array(supers, dtype=np.int64).reshape(-1, 2)


def _filterbank(settings: FrontendSettings, spectrum_size: int) -> tuple[int, int, np.ndarray, ...]:
    """filterbank_util.c's channel layout and Q12 weights, flattened to one entry per FFT bin."""
    n_plus_1 = settings.filterbank_n_channels + 1
    lower = F32(settings.filterbank_lower_band_limit)
    upper = F32(settings.filterbank_upper_band_limit)
    mel_low = _freq_to_mel(lower)
    mel_span = F32(_freq_to_mel(upper) - mel_low)
    mel_spacing = F32(mel_span / F32(n_plus_1))
    centers = [F32(mel_low + F32(mel_spacing * F32(i + 1))) for i in range(n_plus_1)]
    # MLTK's filterbank_util.c (an early TFLM version) computes these two in double.
    hz_per_sbin = F32(0.5 * settings.sample_rate_hz / float(F32(spectrum_size) - F32(1.0)))
    start_index = int(1.5 + float(F32(lower / hz_per_sbin)))

    channel_starts, channel_widths = [], []
    freq_start = start_index
    for channel in range(n_plus_1):
        freq = freq_start
        while _freq_to_mel(F32(F32(freq) * hz_per_sbin)) <= centers[channel]:
            freq += 1
        channel_starts.append(freq_start)
        channel_widths.append(freq - freq_start)
        freq_start = freq
    end_index = max(s + w for s, w in zip(channel_starts, channel_widths, strict=True))
    if end_index >= spectrum_size:
        raise FrontendSettingsError(
            f"fe.filterbank_upper_band_limit={settings.filterbank_upper_band_limit:g}: the filterbank "
            f"reaches FFT bin {end_index}, beyond the {spectrum_size} bins of a "
            f"{settings.fft_length}-point FFT"
        )
    bins = end_index - start_index
    bin_channel = np.zeros(bins, dtype=np.int64)
    bin_weight = np.zeros(bins, dtype=np.int64)
    bin_unweight = np.zeros(bins, dtype=np.int64)
    for channel in range(n_plus_1):
        denominator = mel_low if channel == 0 else centers[channel - 1]
        for freq in range(channel_starts[channel], channel_starts[channel] + channel_widths[channel]):
            mel = _freq_to_mel(F32(F32(freq) * hz_per_sbin))
            weight = F32(F32(centers[channel] - mel) / F32(centers[channel] - denominator))
            index = freq - start_index
            bin_channel[index] = channel
            bin_weight[index] = math.floor(float(weight) * (1 << FILTERBANK_BITS) + 0.5)
            bin_unweight[index] = math.floor((1.0 - float(weight)) * (1 << FILTERBANK_BITS) + 0.5)
    return start_index, end_index, bin_channel, bin_weight, bin_unweight


def _pcan_gain(settings: FrontendSettings, input_bits: int, x: int) -> int:
    x_as_float = F32(F32(x) / F32(1 << input_bits))
    gain = F32(
        F32(1 << settings.pcan_gain_bits)
        * _powf(F32(x_as_float + F32(settings.pcan_offset)), F32(-F32(settings.pcan_strength)))
    )
    if gain > INT16_MAX:
        return INT16_MAX
    return int(F32(gain + F32(0.5)))  # C's (int16_t) conversion truncates


def _pcan_lut(settings: FrontendSettings, correction_bits: int) -> np.ndarray:
    """pcan_gain_control_util.c's piecewise-quadratic table, stored with its -6 offset folded in."""
    lut = np.zeros(WIDE_DYNAMIC_FUNCTION_LUT_SIZE, dtype=np.int64)
    if not settings.pcan_enable:
        return lut
    input_bits = settings.noise_reduction_smoothing_bits - correction_bits
    lut[0] = _pcan_gain(settings, input_bits, 0)
    lut[1] = _pcan_gain(settings, input_bits, 1)
    for interval in range(2, WIDE_DYNAMIC_FUNCTION_BITS + 1):
        x0 = 1 << (interval - 1)
        x1 = x0 + (x0 >> 1)
        x2 = x0 + (x0 - 1) if interval == WIDE_DYNAMIC_FUNCTION_BITS else 2 * x0
        y0, y1, y2 = (_pcan_gain(settings, input_bits, x) for x in (x0, x1, x2))
        a1 = 4 * (y1 - y0) - (y2 - y0)
        a2 = (y2 - y0) - a1
        base = 4 * interval - 6
        lut[base] = y0
        lut[base + 1] = ((a1 + 32768) & 0xFFFF) - 32768  # stored as int16 in C
        lut[base + 2] = ((a2 + 32768) & 0xFFFF) - 32768
    return lut


@lru_cache(maxsize=16)
def build_tables(settings: FrontendSettings) -> FrontendTables:
    """Precompute (and cache) every table for `settings`."""
    fft_size = settings.fft_length
    n = fft_size // 2
    perm, stages = _fft_plan(n)
    window = _window(settings.window_size)
    # Leaf j of the complex FFT reads real sample 2*perm[j] and imaginary sample 2*perm[j]+1;
    # past the window the FFT input is zero: row window_size of the kernel's buffer.
    source = np.stack([2 * perm, 2 * perm + 1], axis=1).reshape(-1)
    source = np.minimum(source, settings.window_size)
    twiddles, supers = _twiddles(n)
    start_index, end_index, bin_channel, bin_weight, bin_unweight = _filterbank(settings, n + 1)
    correction_bits = _msb(fft_size) - 1 - FILTERBANK_BITS // 2

    params = np.zeros(N_PARAMS, dtype=np.int64)
    params[P_WINDOW_SIZE] = settings.window_size
    params[P_WINDOW_STEP] = settings.window_step
    params[P_FFT_SIZE] = fft_size
    params[P_START_INDEX] = start_index
    params[P_END_INDEX] = end_index
    params[P_N_CHANNELS] = settings.filterbank_n_channels
    params[P_NR_ENABLE] = settings.noise_reduction_enable
    params[P_NR_SMOOTHING_BITS] = settings.noise_reduction_smoothing_bits
    # C stores these as uint16 from a float product: truncation.
    scale = F32(1 << NOISE_REDUCTION_BITS)
    params[P_NR_EVEN] = int(F32(F32(settings.noise_reduction_even_smoothing) * scale))
    params[P_NR_ODD] = int(F32(F32(settings.noise_reduction_odd_smoothing) * scale))
    params[P_NR_MIN_REMAINING] = int(F32(F32(settings.noise_reduction_min_signal_remaining) * scale))
    params[P_PCAN_ENABLE] = settings.pcan_enable
    params[P_PCAN_SNR_SHIFT] = settings.pcan_gain_bits - correction_bits - PCAN_SNR_BITS
    params[P_LOG_ENABLE] = settings.log_scale_enable
    params[P_LOG_SHIFT] = settings.log_scale_shift
    params[P_CORRECTION_BITS] = correction_bits
    params[P_DC_ENABLE] = settings.dc_notch_filter_enable
    params[P_DC_COEF] = int(F32(F32(settings.dc_notch_filter_coefficient) * F32(1 << 15)))
    params[P_AD_ENABLE] = settings.activity_detection_enable
    params[P_AD_SCALE] = math.ceil(math.log2(settings.filterbank_n_channels))
    params[P_AD_ALPHA_A] = int(F32(settings.activity_detection_alpha_a) * (1 << 8))
    params[P_AD_ALPHA_B] = int(F32(settings.activity_detection_alpha_b) * (1 << 8))
    params[P_AD_ARM] = int(F32(settings.activity_detection_arm_threshold) * (1 << 12))
    params[P_AD_TRIP] = int(F32(settings.activity_detection_trip_threshold) * (1 << 12))

    tables = FrontendTables(
        window=window,
        fft_source=source,
        fft_stages=stages,
        twiddles=twiddles,
        super_twiddles=supers,
        bin_channel=bin_channel,
        bin_weight=bin_weight,
        bin_unweight=bin_unweight,
        gain_lut=_pcan_lut(settings, correction_bits),
        params=params,
    )
    for name in FrontendTables.__dataclass_fields__:
        getattr(tables, name).setflags(write=False)
    return tables
