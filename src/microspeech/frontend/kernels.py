"""Numba kernels: one frame of the TFLM micro frontend, bit for bit, and loops over frames and clips.

Every stage mirrors the integer arithmetic of MLTK 0.20's C frontend (TFLM microfrontend
lib + kissfft v130 with FIXED_POINT=16), including its int16/uint32 wrap-arounds, so that
edge cases such as full-scale input give the same bits as firmware. Values are carried in
int64 and wrapped explicitly where C stores into a narrower type.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from microspeech.frontend.tables import (
    P_AD_ALPHA_A,
    P_AD_ALPHA_B,
    P_AD_ARM,
    P_AD_ENABLE,
    P_AD_SCALE,
    P_AD_TRIP,
    P_CORRECTION_BITS,
    P_DC_COEF,
    P_DC_ENABLE,
    P_END_INDEX,
    P_FFT_SIZE,
    P_LOG_ENABLE,
    P_LOG_SHIFT,
    P_N_CHANNELS,
    P_NR_ENABLE,
    P_NR_EVEN,
    P_NR_MIN_REMAINING,
    P_NR_ODD,
    P_NR_SMOOTHING_BITS,
    P_PCAN_ENABLE,
    P_PCAN_SNR_SHIFT,
    P_START_INDEX,
    P_WINDOW_SIZE,
    P_WINDOW_STEP,
)

U32 = 0xFFFFFFFF
# Activity-detection state slots (filter_a, filter_b, arm, trip) in one int64 array.
AD_STATE_SIZE = 4
WORK_EXTRA = 2


@njit(cache=True, inline="always")
def _wrap16(x):
    return ((x + 32768) & 0xFFFF) - 32768


@njit(cache=True, inline="always")
def _wrap32(x):
    return ((x + 2147483648) & U32) - 2147483648


@njit(cache=True, inline="always")
def _sround(x):
    # kissfft sround for FRACBITS=15, stored into an int16.
    return _wrap16((x + 16384) >> 15)


@njit(cache=True, inline="always")
def _msb(x):
    """MostSignificantBit32/64: bits needed to hold x (0 for 0); x >= 0."""
    bits = 0
    while x > 0:
        x >>= 1
        bits += 1
    return bits


@njit(cache=True)
def _sqrt_wide(num):
    """Sqrt64's digit-by-digit path for accumulators that wrapped past 2**63 (C's uint64)."""
    x = np.uint64(num)
    bits = 64
    probe = x
    while probe < np.uint64(1) << np.uint64(63):
        probe <<= np.uint64(1)
        bits -= 1
    max_bit_number = (64 - bits) | 1
    bit = np.uint64(1) << np.uint64(63 - max_bit_number)
    iterations = (63 - max_bit_number) // 2 + 1
    res = np.uint64(0)
    for _ in range(iterations):
        if x >= res + bit:
            x -= res + bit
            res = (res >> np.uint64(1)) + bit
        else:
            res >>= np.uint64(1)
        bit >>= np.uint64(2)
    if x > res and res != np.uint64(U32):
        res += np.uint64(1)
    return np.int64(res)


@njit(cache=True, inline="always")
def _filterbank_sqrt(num):
    """FilterbankSqrt's Sqrt64/Sqrt32: rounded integer square root of a uint64 held in an int64."""
    if num == 0:
        return 0
    if num < 0 or num >= (1 << 62):
        return _sqrt_wide(num)
    root = np.int64(math.sqrt(np.float64(num)))
    while root * root > num:
        root -= 1
    while (root + 1) * (root + 1) <= num:
        root += 1
    limit = 0xFFFF if num <= U32 else U32
    if num - root * root > root and root != limit:
        root += 1
    return root


@njit(cache=True, inline="always")
def _wide_dynamic_function(x, lut):
    """pcan_gain_control.c WideDynamicFunction: piecewise-quadratic gain, int16 result."""
    if x <= 2:
        return lut[x]
    interval = _msb(x)
    base = 4 * interval - 6
    if interval < 11:
        frac = ((x << (11 - interval)) & U32) & 0x3FF
    else:
        frac = (x >> (interval - 11)) & 0x3FF
    result = _wrap32(lut[base + 2] * frac) >> 5
    result += lut[base + 1] * 32
    result = _wrap32(result * frac)
    result = (result + (1 << 14)) >> 15
    result += lut[base]
    return _wrap16(result)


@njit(cache=True, inline="always")
def _pcan_shrink(x):
    if x < (2 << 12):
        return (x * x) >> 20
    return (x >> 6) - 64


@njit(cache=True, inline="always")
def _log_scale(x, scale_shift, log_lut):
    """log_scale.c Log(): fixed-point natural log scaled by 2**scale_shift."""
    integer = _msb(x) - 1
    frac = x - (1 << integer)
    if integer < 16:
        frac <<= 16 - integer
    else:
        frac >>= integer - 16
    base_seg = frac >> 9
    c0 = log_lut[base_seg]
    c1 = log_lut[base_seg + 1]
    rel_pos = ((c1 - c0) * (frac - 512 * base_seg)) >> 16
    log2 = (integer << 16) + ((frac + c0 + rel_pos) & U32)
    loge = ((45426 * log2 + 32768) >> 16) & U32
    return (((loge << scale_shift) & U32) + 32768 & U32) >> 16


@njit(cache=True)
def dc_notch(samples, out, state, coef):
    """dc_notch_filter.c over a run of samples; state = [prev_in, prev_out] carries across calls."""
    prev_in = state[0]
    prev_out = state[1]
    for n in range(samples.shape[0]):
        value = np.int64(samples[n])
        product = coef * prev_out
        filtered = _wrap16(_wrap16(value - prev_in) + (((product >> 14) + 1) >> 1))
        out[n] = filtered
        prev_in = value
        prev_out = filtered
    state[0] = prev_in
    state[1] = prev_out


@njit(cache=True, inline="always")
def _one_pole(x, state, alpha):
    # activity_detection.c OnePoleIIR: Q8 coefficient, products computed in 32-bit int.
    p1 = _wrap32((256 - alpha) * x)
    p2 = _wrap32(alpha * state)
    return _wrap32((((p1 + p2) >> 7) + 1) >> 1)


@njit(cache=True)
def _activity_detection(signal, n_channels, params, ad_state):
    total = 0
    for i in range(n_channels):
        total = (total + signal[i]) & U32
    x = _wrap32(total >> params[P_AD_SCALE])
    ad_state[0] = _one_pole(x, ad_state[0], params[P_AD_ALPHA_A])
    ad_state[1] = _one_pole(x, ad_state[1], params[P_AD_ALPHA_B])
    if ad_state[2] == 0:
        if ad_state[0] < _wrap32((ad_state[1] * params[P_AD_ARM]) >> 12):
            ad_state[2] = 1
    elif ad_state[0] > _wrap32((ad_state[1] * params[P_AD_TRIP]) >> 12):
        ad_state[2] = 0
        ad_state[3] = 1


@njit(cache=True)
def process_frame(
    frame,
    window,
    perm,
    stages,
    twiddles,
    super_twiddles,
    bin_channel,
    bin_weight,
    bin_unweight,
    gain_lut,
    log_lut,
    params,
    estimate,
    ad_state,
    out,
    work,
):
    """One window of int16 samples -> one row of uint16 features; `estimate` is the noise state.

    `work` is an int64 scratch of length WORK_EXTRA + 4 * fft_size + n_channels.
    """
    size = params[P_WINDOW_SIZE]
    fft_size = params[P_FFT_SIZE]
    n = fft_size // 2
    n_channels = params[P_N_CHANNELS]
    fft_in = work[:fft_size]
    re = work[fft_size : fft_size + n]
    im = work[fft_size + n : 2 * fft_size]
    spec_re = work[2 * fft_size : 2 * fft_size + n + 1]
    spec_im = work[3 * fft_size : 3 * fft_size + n + 1]
    # One slot per channel plus two: channel 0's weights and the last channel's unweights,
    # which C accumulates and then drops.
    acc = work[4 * fft_size : 4 * fft_size + n_channels + 2]

    # Window (Q12) and the largest magnitude; C negates in int16, so -32768 stays negative.
    max_abs = 0
    for i in range(size):
        value = (np.int64(frame[i]) * window[i]) >> 12
        fft_in[i] = value
        magnitude = _wrap16(-value) if value < 0 else value
        if magnitude > max_abs:
            max_abs = magnitude
    shift = 15 - _msb(max_abs)
    for i in range(size):
        fft_in[i] = _wrap16((fft_in[i] & 0xFFFF) << shift)
    for i in range(size, fft_size):
        fft_in[i] = 0

    # kissfft complex FFT of n points (even samples real, odd imaginary), stages unrolled.
    for j in range(n):
        source = perm[j]
        re[j] = fft_in[2 * source]
        im[j] = fft_in[2 * source + 1]
    for s in range(stages.shape[0]):
        radix = stages[s, 0]
        m = stages[s, 1]
        fstride = stages[s, 2]
        for base in range(0, n, radix * m):
            for k in range(m):
                i0 = base + k
                i1 = i0 + m
                if radix == 2:
                    ar = _sround(re[i0] * 16383)
                    ai = _sround(im[i0] * 16383)
                    br = _sround(re[i1] * 16383)
                    bi = _sround(im[i1] * 16383)
                    wr = twiddles[k * fstride, 0]
                    wi = twiddles[k * fstride, 1]
                    tr = _sround(br * wr - bi * wi)
                    ti = _sround(br * wi + bi * wr)
                    re[i1] = _wrap16(ar - tr)
                    im[i1] = _wrap16(ai - ti)
                    re[i0] = _wrap16(ar + tr)
                    im[i0] = _wrap16(ai + ti)
                    continue
                i2 = i1 + m
                i3 = i2 + m
                f0r = _sround(re[i0] * 8191)
                f0i = _sround(im[i0] * 8191)
                f1r = _sround(re[i1] * 8191)
                f1i = _sround(im[i1] * 8191)
                f2r = _sround(re[i2] * 8191)
                f2i = _sround(im[i2] * 8191)
                f3r = _sround(re[i3] * 8191)
                f3i = _sround(im[i3] * 8191)
                w1 = k * fstride
                w2 = 2 * w1
                w3 = 3 * w1
                s0r = _sround(f1r * twiddles[w1, 0] - f1i * twiddles[w1, 1])
                s0i = _sround(f1r * twiddles[w1, 1] + f1i * twiddles[w1, 0])
                s1r = _sround(f2r * twiddles[w2, 0] - f2i * twiddles[w2, 1])
                s1i = _sround(f2r * twiddles[w2, 1] + f2i * twiddles[w2, 0])
                s2r = _sround(f3r * twiddles[w3, 0] - f3i * twiddles[w3, 1])
                s2i = _sround(f3r * twiddles[w3, 1] + f3i * twiddles[w3, 0])
                s5r = _wrap16(f0r - s1r)
                s5i = _wrap16(f0i - s1i)
                f0r = _wrap16(f0r + s1r)
                f0i = _wrap16(f0i + s1i)
                s3r = _wrap16(s0r + s2r)
                s3i = _wrap16(s0i + s2i)
                s4r = _wrap16(s0r - s2r)
                s4i = _wrap16(s0i - s2i)
                re[i2] = _wrap16(f0r - s3r)
                im[i2] = _wrap16(f0i - s3i)
                re[i0] = _wrap16(f0r + s3r)
                im[i0] = _wrap16(f0i + s3i)
                re[i1] = _wrap16(s5r + s4i)
                im[i1] = _wrap16(s5i - s4r)
                re[i3] = _wrap16(s5r - s4i)
                im[i3] = _wrap16(s5i + s4r)

    # kiss_fftr: split the packed transform into the real signal's spectrum.
    for k in range(1, n // 2 + 1):
        pkr = _sround(re[k] * 16383)
        pki = _sround(im[k] * 16383)
        nkr = _sround(re[n - k] * 16383)
        nki = _sround(_wrap16(-im[n - k]) * 16383)
        f1r = _wrap16(pkr + nkr)
        f1i = _wrap16(pki + nki)
        f2r = _wrap16(pkr - nkr)
        f2i = _wrap16(pki - nki)
        wr = super_twiddles[k - 1, 0]
        wi = super_twiddles[k - 1, 1]
        tr = _sround(f2r * wr - f2i * wi)
        ti = _sround(f2r * wi + f2i * wr)
        spec_re[k] = _wrap16((f1r + tr) >> 1)
        spec_im[k] = _wrap16((f1i + ti) >> 1)
        spec_re[n - k] = _wrap16((f1r - tr) >> 1)
        spec_im[n - k] = _wrap16((ti - f1i) >> 1)

    # Power spectrum (int32 in C: 2**31 wraps negative) into the triangular filterbank.
    for c in range(n_channels + 2):
        acc[c] = 0
    start = params[P_START_INDEX]
    for b in range(params[P_END_INDEX] - start):
        real = spec_re[start + b]
        imag = spec_im[start + b]
        energy = _wrap32(real * real + imag * imag)
        channel = bin_channel[b]
        acc[channel] += bin_weight[b] * energy
        acc[channel + 1] += bin_unweight[b] * energy

    smoothing_bits = params[P_NR_SMOOTHING_BITS]
    correction_bits = params[P_CORRECTION_BITS]
    log_shift = params[P_LOG_SHIFT]
    for c in range(n_channels):
        out_value = _filterbank_sqrt(acc[c + 1]) >> shift
        acc[c] = out_value  # acc[c] is no longer needed: reuse it for the signal
    signal = acc
    if params[P_AD_ENABLE]:
        _activity_detection(signal, n_channels, params, ad_state)

    for c in range(n_channels):
        value = signal[c]
        if params[P_NR_ENABLE]:
            smoothing = params[P_NR_EVEN] if c % 2 == 0 else params[P_NR_ODD]
            scaled = (value << smoothing_bits) & U32
            noise = (scaled * smoothing + estimate[c] * ((1 << 14) - smoothing)) >> 14
            estimate[c] = noise
            if noise > scaled:
                noise = scaled
            floor = (value * params[P_NR_MIN_REMAINING]) >> 14
            subtracted = (scaled - noise) >> smoothing_bits
            value = subtracted if subtracted > floor else floor
            if params[P_PCAN_ENABLE]:
                gain = _wide_dynamic_function(estimate[c], gain_lut) & U32
                snr = np.uint64(value) * np.uint64(gain)
                value = _pcan_shrink(np.int64(snr >> np.uint64(params[P_PCAN_SNR_SHIFT])) & U32)
        if params[P_LOG_ENABLE]:
            if correction_bits < 0:
                value >>= -correction_bits
            else:
                value = (value << correction_bits) & U32
            value = _log_scale(value, log_shift, log_lut) if value > 1 else 0
        out[c] = value if value < 0xFFFF else 0xFFFF


@njit(cache=True)
def process_frames(
    samples,
    n_frames,
    window,
    perm,
    stages,
    twiddles,
    super_twiddles,
    bin_channel,
    bin_weight,
    bin_unweight,
    gain_lut,
    log_lut,
    params,
    estimate,
    ad_state,
    out,
):
    """Consecutive windows of `samples` (hop = window step) into out[:n_frames]; state carries on."""
    work = np.empty(WORK_EXTRA + 4 * params[P_FFT_SIZE] + params[P_N_CHANNELS], dtype=np.int64)
    step = params[P_WINDOW_STEP]
    size = params[P_WINDOW_SIZE]
    for f in range(n_frames):
        process_frame(
            samples[f * step : f * step + size],
            window,
            perm,
            stages,
            twiddles,
            super_twiddles,
            bin_channel,
            bin_weight,
            bin_unweight,
            gain_lut,
            log_lut,
            params,
            estimate,
            ad_state,
            out[f],
            work,
        )


@njit(cache=True, parallel=True)
def process_clips(
    audio,
    window,
    perm,
    stages,
    twiddles,
    super_twiddles,
    bin_channel,
    bin_weight,
    bin_unweight,
    gain_lut,
    log_lut,
    params,
    out,
    activity,
):
    """Each clip of `audio` (N, n_samples) from fresh state into out (N, n_frames, n_channels)."""
    n_clips = audio.shape[0]
    n_frames = out.shape[1]
    for clip in prange(n_clips):
        estimate = np.zeros(params[P_N_CHANNELS], dtype=np.int64)
        ad_state = np.zeros(AD_STATE_SIZE, dtype=np.int64)
        if params[P_DC_ENABLE]:
            filtered = np.empty(audio.shape[1], dtype=np.int64)
            dc_state = np.zeros(2, dtype=np.int64)
            dc_notch(audio[clip], filtered, dc_state, params[P_DC_COEF])
            samples = filtered
        else:
            samples = audio[clip].astype(np.int64)
        process_frames(
            samples,
            n_frames,
            window,
            perm,
            stages,
            twiddles,
            super_twiddles,
            bin_channel,
            bin_weight,
            bin_unweight,
            gain_lut,
            log_lut,
            params,
            estimate,
            ad_state,
            out[clip],
        )
        activity[clip] = ad_state[3]
