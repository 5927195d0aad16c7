"""Numba kernels of the TFLM micro frontend, bit for bit, over blocks of frames and batches of clips.

Every stage mirrors the integer arithmetic of MLTK 0.20's C frontend (TFLM microfrontend
lib + kissfft v130 with FIXED_POINT=16), including its int16/int32/uint32 wrap-arounds, so
that edge cases such as full-scale input give the same bits as firmware. Window, FFT and
power spectrum run in int32 lanes (values provably fit); filterbank sums, noise reduction,
PCAN and log run in int64 with explicit wraps where C stores into a narrower type.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import leading_zeros

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
# Wherever C computes in 16/32-bit integers and values provably fit (window, FFT, power
# spectrum), we truncate every step to int32 (I32): that changes nothing, and it lets LLVM
# use 32-bit SIMD lanes (twice as many as int64, with a native multiply).
I32 = np.int32


@njit(cache=True, inline="always")
def _wrap16(x):
    return ((x + 32768) & 0xFFFF) - 32768


@njit(cache=True, inline="always")
def _wrap32(x):
    return ((x + 2147483648) & U32) - 2147483648


@njit(cache=True, inline="always")
def _msb(x):
    """MostSignificantBit32/64: bits needed to hold x (0 for 0); x >= 0 and int64."""
    return 64 - leading_zeros(x)


@njit(cache=True)
def _sqrt_wide(num):
    """Sqrt64's digit-by-digit path for accumulators that wrapped past 2**63 (C's uint64)."""
    x = np.uint64(num)
    max_bit_number = leading_zeros(x) | 1
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


# The per-value helpers below are branch-free (both sides computed, then selected) so that
# the loops over channels calling them compile to SIMD code.


@njit(cache=True, inline="always")
def _wide_dynamic_function(x, lut):
    """pcan_gain_control.c WideDynamicFunction: piecewise-quadratic gain, int16 result."""
    interval = max(_msb(x), 2)  # x <= 2 reads lut[x] below; keep the other path in bounds
    base = 4 * interval - 6
    # C: x << (11 - interval) below 11, x >> (interval - 11) above; only 10 bits are kept.
    frac = ((x << max(11 - interval, 0)) >> max(interval - 11, 0)) & 0x3FF
    result = _wrap32(lut[base + 2] * frac) >> 5
    result += lut[base + 1] * 32
    result = _wrap32(result * frac)
    result = (result + (1 << 14)) >> 15
    result += lut[base]
    return lut[min(x, 2)] if x <= 2 else _wrap16(result)


@njit(cache=True, inline="always")
def _pcan_shrink(x):
    return ((x * x) >> 20) if x < (2 << 12) else (x >> 6) - 64


@njit(cache=True, inline="always")
def _log_scale(x, scale_shift, log_lut):
    """log_scale.c Log(): fixed-point natural log scaled by 2**scale_shift (x >= 2)."""
    integer = _msb(x) - 1
    frac = x - (1 << integer)
    # C: frac << (16 - integer) below 16, frac >> (integer - 16) above.
    frac = (frac << max(16 - integer, 0)) >> max(integer - 16, 0)
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


# Frames transformed together run in SIMD lanes: every inner loop goes across frames. The
# batch API puts the frames of several clips side by side (about TARGET_LANES lanes), so
# the per-loop overhead of the FFT's many short loops is shared; LANE_MULTIPLE is the SIMD
# width that lane counts are padded to.
TARGET_LANES = 200
LANE_MULTIPLE = 8


@njit(cache=True)
def _window_lanes(flat, lane_offset, count, lanes, window, source, params, windowed, fft_re, fft_im, shifts):
    """Q12 window, dynamic input shift and kissfft's input permutation for `count` frames.

    Frame b starts at flat[lane_offset[b]]. `windowed` (window_size + 1, capacity) holds
    window position x frame, its last row zeros; source[2j] / source[2j + 1] is the row
    feeding the real / imaginary part of FFT leaf j (the zero row past the window). Lanes
    from `count` up to `lanes` (a multiple of the SIMD width) are zero padding.
    """
    size = params[P_WINDOW_SIZE]
    for i in range(size):
        coefficient = I32(window[i])
        for b in range(count):
            windowed[i, b] = I32(I32(flat[lane_offset[b] + i]) * coefficient) >> 12
    windowed[:, count:lanes] = 0
    windowed[size, :lanes] = 0
    max_abs = np.zeros(lanes, dtype=np.int32)
    for i in range(size):
        for b in range(lanes):
            value = I32(windowed[i, b])
            # C negates in int16: -32768 stays negative and never counts as the maximum.
            max_abs[b] = max(max_abs[b], abs(value) if value > -32768 else 0)
    for b in range(lanes):
        shifts[b] = 15 - _msb(np.int64(max_abs[b]))
    # int16 stores truncate: that is C's (int16_t)((uint16_t)x << shift).
    for j in range(fft_re.shape[0]):
        real_row = source[2 * j]
        imag_row = source[2 * j + 1]
        for b in range(lanes):
            fft_re[j, b] = I32(windowed[real_row, b]) << I32(shifts[b])
            fft_im[j, b] = I32(windowed[imag_row, b]) << I32(shifts[b])


@njit(cache=True, inline="always")
def _r15(x):
    # kissfft sround (FRACBITS=15) of an int32 product sum.
    return I32(I32(x + 16384) >> 15)


@njit(cache=True, inline="always")
def _w16(x):
    # Store-to-int16 wrap of an int32 value.
    return I32(np.int16(x))


@njit(cache=True, inline="always")
def _div4(x):
    # C_FIXDIV(x, 4) = sround(x * (32767 // 4)); the result fits in int16.
    return _r15(I32(I32(x) * 8191))


@njit(cache=True, inline="always")
def _div2(x):
    # C_FIXDIV(x, 2) = sround(x * (32767 // 2)).
    return _r15(I32(I32(x) * 16383))


@njit(cache=True, inline="always")
def _mul_re(ar, ai, wr, wi):
    # Real part of C_MUL: sround(ar * wr - ai * wi).
    return _r15(I32(I32(ar * wr) - I32(ai * wi)))


@njit(cache=True, inline="always")
def _mul_im(ar, ai, wr, wi):
    # Imaginary part of C_MUL: sround(ar * wi + ai * wr).
    return _r15(I32(I32(ar * wi) + I32(ai * wr)))


@njit(cache=True)
def _fft_block(stages, twiddles, super_twiddles, re, im, spec_re, spec_im, count):
    """kissfft (FIXED_POINT=16) real FFT of `count` frames at once; rows are bins, columns frames.

    re/im/spec are int16 arrays, so every store wraps exactly as C's int16 fields do. Values
    that provably stay in int16 (C_FIXDIV outputs, their products with twiddles, sums of two
    such terms) skip the explicit wrap; the others get _w16.
    """
    n = re.shape[0]
    for s in range(stages.shape[0]):
        radix = stages[s, 0]
        m = stages[s, 1]
        fstride = stages[s, 2]
        for base in range(0, n, radix * m):
            for k in range(m):
                i0 = base + k
                i1 = i0 + m
                w1r = I32(twiddles[k * fstride, 0])
                w1i = I32(twiddles[k * fstride, 1])
                if radix == 2:
                    for b in range(count):
                        ar = _div2(re[i0, b])
                        ai = _div2(im[i0, b])
                        br = _div2(re[i1, b])
                        bi = _div2(im[i1, b])
                        tr = _mul_re(br, bi, w1r, w1i)
                        ti = _mul_im(br, bi, w1r, w1i)
                        re[i1, b] = ar - tr
                        im[i1, b] = ai - ti
                        re[i0, b] = ar + tr
                        im[i0, b] = ai + ti
                    continue
                i2 = i1 + m
                i3 = i2 + m
                w2r = I32(twiddles[2 * k * fstride, 0])
                w2i = I32(twiddles[2 * k * fstride, 1])
                w3r = I32(twiddles[3 * k * fstride, 0])
                w3i = I32(twiddles[3 * k * fstride, 1])
                for b in range(count):
                    f0r = _div4(re[i0, b])
                    f0i = _div4(im[i0, b])
                    f1r = _div4(re[i1, b])
                    f1i = _div4(im[i1, b])
                    f2r = _div4(re[i2, b])
                    f2i = _div4(im[i2, b])
                    f3r = _div4(re[i3, b])
                    f3i = _div4(im[i3, b])
                    s0r = _mul_re(f1r, f1i, w1r, w1i)
                    s0i = _mul_im(f1r, f1i, w1r, w1i)
                    s1r = _mul_re(f2r, f2i, w2r, w2i)
                    s1i = _mul_im(f2r, f2i, w2r, w2i)
                    s2r = _mul_re(f3r, f3i, w3r, w3i)
                    s2i = _mul_im(f3r, f3i, w3r, w3i)
                    s5r = I32(f0r - s1r)
                    s5i = I32(f0i - s1i)
                    f0r = I32(f0r + s1r)
                    f0i = I32(f0i + s1i)
                    s3r = I32(s0r + s2r)
                    s3i = I32(s0i + s2i)
                    s4r = I32(s0r - s2r)
                    s4i = I32(s0i - s2i)
                    re[i2, b] = f0r - s3r
                    im[i2, b] = f0i - s3i
                    re[i0, b] = f0r + s3r
                    im[i0, b] = f0i + s3i
                    re[i1, b] = s5r + s4i
                    im[i1, b] = s5i - s4r
                    re[i3, b] = s5r - s4i
                    im[i3, b] = s5i + s4r

    # kiss_fftr: split the packed transform into the real signal's spectrum.
    for k in range(1, n // 2 + 1):
        wr = I32(super_twiddles[k - 1, 0])
        wi = I32(super_twiddles[k - 1, 1])
        for b in range(count):
            pkr = _div2(re[k, b])
            pki = _div2(im[k, b])
            nkr = _div2(re[n - k, b])
            nki = _div2(_w16(-I32(im[n - k, b])))
            f1r = _w16(pkr + nkr)
            f1i = _w16(pki + nki)
            f2r = _w16(pkr - nkr)
            f2i = _w16(pki - nki)
            tr = _w16(_mul_re(f2r, f2i, wr, wi))
            ti = _w16(_mul_im(f2r, f2i, wr, wi))
            spec_re[k, b] = I32(f1r + tr) >> 1
            spec_im[k, b] = I32(f1i + ti) >> 1
            spec_re[n - k, b] = I32(f1r - tr) >> 1
            spec_im[n - k, b] = I32(ti - f1i) >> 1


@njit(cache=True)
def _filterbank_block(
    spec_re, spec_im, bin_channel, bin_weight, bin_unweight, params, shifts, acc, signal, count
):
    """Power spectrum (int32 in C: 2**31 wraps negative), triangular filterbank, rounded sqrt."""
    n_channels = params[P_N_CHANNELS]
    start = params[P_START_INDEX]
    acc[:, :count] = 0
    for bin_index in range(params[P_END_INDEX] - start):
        channel = bin_channel[bin_index]
        weight = bin_weight[bin_index]
        unweight = bin_unweight[bin_index]
        for b in range(count):
            real = I32(spec_re[start + bin_index, b])
            imag = I32(spec_im[start + bin_index, b])
            energy = np.int64(I32(I32(real * real) + I32(imag * imag)))  # C's int32, wrap included
            acc[channel, b] += weight * energy
            acc[channel + 1, b] += unweight * energy
    # acc row 0 holds channel 0's weights and row n+1 the last unweights: C drops both.
    for c in range(n_channels):
        for b in range(count):
            signal[b, c] = _filterbank_sqrt(acc[c + 1, b]) >> shifts[b]


@njit(cache=True)
def _post_process(frames, smoothing, gain_lut, log_lut, params, estimate, ad_state, state_only=False):
    """Noise reduction, PCAN and log scale of one frame of G streams, in place.

    frames, smoothing, estimate: (G, n_channels); ad_state: (G, AD_STATE_SIZE). The noise
    estimate carries on to the next frame. Each stage is one branch-free loop over all
    G * n_channels values, so it runs in SIMD lanes. `state_only`: advance the state (activity
    detection, noise estimate) and stop; `frames` then holds no features (a warm-up frame).
    """
    if params[P_AD_ENABLE]:
        for g in range(frames.shape[0]):
            _activity_detection(frames[g], frames.shape[1], params, ad_state[g])
    value = frames.reshape(-1)
    noise_estimate = estimate.reshape(-1)
    smoothing = smoothing.reshape(-1)
    n = value.shape[0]
    if params[P_NR_ENABLE]:
        smoothing_bits = params[P_NR_SMOOTHING_BITS]
        min_remaining = params[P_NR_MIN_REMAINING]
        for c in range(n):
            scaled = (value[c] << smoothing_bits) & U32
            noise = (scaled * smoothing[c] + noise_estimate[c] * ((1 << 14) - smoothing[c])) >> 14
            noise_estimate[c] = noise
            floor = (value[c] * min_remaining) >> 14
            value[c] = max((scaled - min(noise, scaled)) >> smoothing_bits, floor)
    if state_only:  # PCAN and the log scale keep no state
        return
    if params[P_PCAN_ENABLE]:
        snr_shift = np.uint64(params[P_PCAN_SNR_SHIFT])
        for c in range(n):
            gain = _wide_dynamic_function(noise_estimate[c], gain_lut) & U32
            snr = np.int64((np.uint64(value[c]) * np.uint64(gain)) >> snr_shift) & U32
            value[c] = _pcan_shrink(snr)
    if params[P_LOG_ENABLE]:
        left = max(params[P_CORRECTION_BITS], 0)
        right = max(-params[P_CORRECTION_BITS], 0)
        log_shift = params[P_LOG_SHIFT]
        for c in range(n):
            scaled = ((value[c] << left) & U32) >> right
            value[c] = _log_scale(max(scaled, 2), log_shift, log_lut) if scaled > 1 else 0
    for c in range(n):
        value[c] = min(value[c], 0xFFFF)


@njit(cache=True)
def _scratch(params, capacity):
    """Work arrays for `capacity` lanes."""
    n = params[P_FFT_SIZE] // 2
    n_channels = params[P_N_CHANNELS]
    smoothing = np.empty(n_channels, dtype=np.int64)
    smoothing[0::2] = params[P_NR_EVEN]
    smoothing[1::2] = params[P_NR_ODD]
    return (
        np.empty((params[P_WINDOW_SIZE] + 1, capacity), dtype=np.int16),  # windowed
        np.empty((n, capacity), dtype=np.int16),  # FFT real
        np.empty((n, capacity), dtype=np.int16),  # FFT imaginary
        np.empty((n + 1, capacity), dtype=np.int16),  # spectrum real
        np.empty((n + 1, capacity), dtype=np.int16),  # spectrum imaginary
        np.empty((n_channels + 2, capacity), dtype=np.int64),  # filterbank accumulators
        np.empty((capacity, n_channels), dtype=np.int64),  # filterbank output, frame-major
        np.empty(capacity, dtype=np.int64),  # input shifts
        np.empty(capacity, dtype=np.int64),  # lane offsets
        smoothing,
    )


@njit(cache=True)
def _transform(flat, count, window, source, stages, twiddles, super_twiddles, bin_channel, bin_weight,
               bin_unweight, params, scratch):  # fmt: skip
    """Window, FFT, filterbank and sqrt of `count` frames (offsets in scratch[8]): state-free."""
    windowed, fft_re, fft_im, spec_re, spec_im, acc, signal, shifts, lane_offset, _ = scratch
    lanes = min(fft_re.shape[1], (count + LANE_MULTIPLE - 1) // LANE_MULTIPLE * LANE_MULTIPLE)
    _window_lanes(flat, lane_offset, count, lanes, window, source, params, windowed, fft_re, fft_im, shifts)
    _fft_block(stages, twiddles, super_twiddles, fft_re, fft_im, spec_re, spec_im, count)
    _filterbank_block(
        spec_re, spec_im, bin_channel, bin_weight, bin_unweight, params, shifts, acc, signal, count
    )


@njit(cache=True, nogil=True)  # the firmware loop's frontend runs beside the model (detection.classify)
def process_frames(samples, n_frames, window, source, stages, twiddles, super_twiddles, bin_channel,
                   bin_weight, bin_unweight, gain_lut, log_lut, params, estimate, ad_state, out,
                   snapshot_counts, estimate_snapshots, ad_snapshots):  # fmt: skip
    """Consecutive windows of `samples` (hop = window step) into out[:n_frames]; state carries on.

    Windows, FFTs and filterbanks of up to TARGET_LANES frames are computed together
    (they do not depend on state); noise reduction, PCAN and log then run frame by frame.
    snapshot_counts (non-decreasing, may be empty): row i of estimate_snapshots and
    ad_snapshots gets the state once snapshot_counts[i] frames are done.
    """
    step = params[P_WINDOW_STEP]
    # At least one lane: a call that completes no frame (a short chunk) still takes its snapshots,
    # where range(0, 0, 0) raised.
    capacity = max(1, min(TARGET_LANES, (n_frames + LANE_MULTIPLE - 1) // LANE_MULTIPLE * LANE_MULTIPLE))
    scratch = _scratch(params, capacity)
    lane_offset, signal, smoothing = scratch[8], scratch[6], scratch[9]
    streams_estimate = estimate.reshape(1, -1)
    streams_ad = ad_state.reshape(1, -1)
    streams_smoothing = smoothing.reshape(1, -1)
    snapshot = _take_snapshots(0, 0, snapshot_counts, estimate, ad_state, estimate_snapshots, ad_snapshots)
    for first in range(0, n_frames, capacity):
        count = min(capacity, n_frames - first)
        for b in range(count):
            lane_offset[b] = (first + b) * step
        _transform(samples, count, window, source, stages, twiddles, super_twiddles, bin_channel, bin_weight,
                   bin_unweight, params, scratch)  # fmt: skip
        for b in range(count):
            frame = signal[b : b + 1]
            _post_process(frame, streams_smoothing, gain_lut, log_lut, params, streams_estimate, streams_ad)
            out[first + b] = frame[0]
            snapshot = _take_snapshots(
                snapshot, first + b + 1, snapshot_counts, estimate, ad_state, estimate_snapshots, ad_snapshots
            )


@njit(cache=True, inline="always")
def _take_snapshots(next_snapshot, frames_done, counts, estimate, ad_state, estimate_snapshots, ad_snapshots):
    """Copy the state into every snapshot due after `frames_done` frames; the next one due."""
    while next_snapshot < counts.shape[0] and counts[next_snapshot] == frames_done:
        estimate_snapshots[next_snapshot] = estimate
        ad_snapshots[next_snapshot] = ad_state
        next_snapshot += 1
    return next_snapshot


@njit(cache=True)
def no_snapshots(n_channels):
    """`process_frames`'s snapshot arguments when no state is recorded."""
    return (
        np.zeros(0, dtype=np.int64),
        np.zeros((0, n_channels), dtype=np.int64),
        np.zeros((0, AD_STATE_SIZE), dtype=np.int64),
    )


@njit(cache=True, parallel=True)
def process_clips(audio, window, source, stages, twiddles, super_twiddles, bin_channel, bin_weight,
                  bin_unweight, gain_lut, log_lut, params, out, activity, warm_up_frames=0):  # fmt: skip
    """Each clip of `audio` (N, n_samples) from fresh state into out (N, n_frames, n_channels).

    Groups of clips are spread over the cores. Within a group, all frames of all its clips
    are transformed side by side (lane f * group_clips + g is frame f of clip g), then the
    clips' frame f are post-processed together, frame after frame.
    The first `warm_up_frames` frames of each clip only advance the state and are not
    written: out holds the frames after them.
    """
    n_clips, length = audio.shape
    n_frames = out.shape[1] + warm_up_frames
    n_channels = params[P_N_CHANNELS]
    step = params[P_WINDOW_STEP]
    per_group = max(1, TARGET_LANES // n_frames)
    n_groups = (n_clips + per_group - 1) // per_group
    for group in prange(n_groups):
        first_clip = group * per_group
        group_clips = min(per_group, n_clips - first_clip)
        if n_frames > TARGET_LANES:  # long clips: one at a time, in blocks of frames
            clip = first_clip
            samples = audio[clip]
            if params[P_DC_ENABLE]:
                samples = np.empty(length, dtype=np.int16)
                dc_notch(audio[clip], samples, np.zeros(2, dtype=np.int64), params[P_DC_COEF])
            ad_state = np.zeros(AD_STATE_SIZE, dtype=np.int64)
            snapshot_counts, estimate_snapshots, ad_snapshots = no_snapshots(n_channels)
            frames_out = out[clip] if warm_up_frames == 0 else np.empty((n_frames, n_channels), out.dtype)
            process_frames(samples, n_frames, window, source, stages, twiddles, super_twiddles, bin_channel,
                           bin_weight, bin_unweight, gain_lut, log_lut, params,
                           np.zeros(n_channels, dtype=np.int64), ad_state, frames_out, snapshot_counts,
                           estimate_snapshots, ad_snapshots)  # fmt: skip
            if warm_up_frames:
                out[clip] = frames_out[warm_up_frames:]
            activity[clip] = ad_state[3]
            continue
        flat = audio[first_clip : first_clip + group_clips].reshape(-1)
        if params[P_DC_ENABLE]:
            filtered = np.empty(group_clips * length, dtype=np.int16)
            for g in range(group_clips):
                dc_notch(flat[g * length : (g + 1) * length], filtered[g * length : (g + 1) * length],
                         np.zeros(2, dtype=np.int64), params[P_DC_COEF])  # fmt: skip
            flat = filtered
        count = group_clips * n_frames
        scratch = _scratch(params, (count + LANE_MULTIPLE - 1) // LANE_MULTIPLE * LANE_MULTIPLE)
        lane_offset, signal, smoothing = scratch[8], scratch[6], scratch[9]
        for f in range(n_frames):
            for g in range(group_clips):
                lane_offset[f * group_clips + g] = g * length + f * step
        _transform(flat, count, window, source, stages, twiddles, super_twiddles, bin_channel, bin_weight,
                   bin_unweight, params, scratch)  # fmt: skip
        estimate = np.zeros((group_clips, n_channels), dtype=np.int64)
        ad_state = np.zeros((group_clips, AD_STATE_SIZE), dtype=np.int64)
        group_smoothing = np.empty((group_clips, n_channels), dtype=np.int64)
        for g in range(group_clips):
            group_smoothing[g] = smoothing
        for f in range(n_frames):
            frames = signal[f * group_clips : (f + 1) * group_clips]
            warming = f < warm_up_frames
            _post_process(frames, group_smoothing, gain_lut, log_lut, params, estimate, ad_state, warming)
            if not warming:
                for g in range(group_clips):
                    out[first_clip + g, f - warm_up_frames] = frames[g]
        for g in range(group_clips):
            activity[first_clip + g] = ad_state[g, 3]


@njit(cache=True)
def quantize_int8(features, out):
    """MLTK's fixed uint16 -> int8 mapping: clip((u16 * 256 + 333) // 666 - 128, -128, 127).

    Serial: it runs at memory speed, and streaming calls it per frame, where starting
    threads would cost more than the work.
    """
    for i in range(features.shape[0]):
        value = (np.int64(features[i]) * 256 + 333) // 666 - 128
        out[i] = min(max(value, -128), 127)
