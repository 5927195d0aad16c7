"""Float scores over a stream's overlapping inputs, with the first convolution computed once.

Training scores every epoch's float model on the validation stream (18,000 inputs for 30
minutes) and mines with it. Consecutive inputs share all but one hop of their frames (44 of
49 at an inference every 100 ms), yet a per-input model convolves every frame about ten
times. For the seed family (Reshape -> Conv2D over one input channel -> BatchNormalization ->
ReLU -> Dropout -> Flatten -> Dense softmax), an output row of the convolution that the
input's zero padding does not reach is a row of one convolution of the whole frame sequence:
those are computed once per frame position, the padded rows at the input's edges per input,
then the dense layer per input. That is about a third of the multiply-adds, in numba loops
whose innermost axis is the inputs (SIMD lanes). The kernels release the GIL: training scores
the stream on its main thread while a worker renders the next epoch.

The scores equal Keras' within float rounding (BatchNorm folded into the convolution, other
summation orders): on a 30-minute stream 3-4 of 72,000 uint8 scores one step apart, the same
epoch metrics (tests/training/test_stream_scoring.py). Models of other shapes return None
from `SharedConvScorer.for_model`, and callers score them input by input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    import keras

    from microspeech.detection.windows import StreamInputs

__all__ = ["SharedConvScorer"]

# Inputs (or frame positions) per pass of the innermost loops: the accumulators stay in L1.
BLOCK = 256


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of the convolution: Keras' output size and zero padding before it."""

    size: int
    kernel: int
    stride: int
    outputs: int
    pad_before: int
    pad_after: int

    @classmethod
    def of(cls, size: int, kernel: int, stride: int, padding: str) -> _Axis:
        if padding == "same":
            outputs = -(-size // stride)
            total = max((outputs - 1) * stride + kernel - size, 0)
            return cls(size, kernel, stride, outputs, total // 2, total - total // 2)
        outputs = (size - kernel) // stride + 1
        return cls(size, kernel, stride, outputs, 0, 0)

    def interior(self, index: int) -> bool:
        """Whether output `index` reads no padding."""
        first = index * self.stride - self.pad_before
        return first >= 0 and first + self.kernel <= self.size


class SharedConvScorer:
    """Scores a Keras model of the seed family on `StreamInputs`; reads the weights at each call,
    so averaged weights swapped into the model are the ones scored."""

    def __init__(self, model: keras.Model, conv, batch_norm, dense) -> None:
        self._conv, self._batch_norm, self._dense = conv, batch_norm, dense
        frames, channels = model.input_shape[1:]
        kernel_rows, kernel_cols = conv.kernel_size
        self._rows = _Axis.of(frames, kernel_rows, conv.strides[0], conv.padding)
        self._cols = _Axis.of(channels, kernel_cols, conv.strides[1], conv.padding)

    @classmethod
    def for_model(cls, model: keras.Model) -> SharedConvScorer | None:
        """A scorer when `model` is Input (frames, channels) -> Reshape (frames, channels, 1) ->
        Conv2D (linear, no dilation or groups) -> [BatchNormalization] -> ReLU -> [Dropout ...]
        -> Flatten -> Dense (softmax); else None."""
        import keras

        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if len(model.inputs) != 1 or len(model.input_shape) != 3 or len(layers) < 5:
            return None
        reshape, conv, *rest = layers
        batch_norm = rest.pop(0) if isinstance(rest[0], keras.layers.BatchNormalization) else None
        if not rest or not _is_plain_relu(rest[0]):
            return None
        rest = rest[1:]
        while rest and isinstance(rest[0], keras.layers.Dropout):  # identity at inference
            rest = rest[1:]
        if len(rest) != 2 or not isinstance(rest[0], keras.layers.Flatten):
            return None
        dense = rest[1]
        frames, channels = model.input_shape[1:]
        if not (
            isinstance(reshape, keras.layers.Reshape)
            and tuple(reshape.target_shape) == (frames, channels, 1)
            and type(conv) is keras.layers.Conv2D
            and conv.data_format == "channels_last"
            and tuple(conv.dilation_rate) == (1, 1)
            and conv.groups == 1
            and conv.activation is keras.activations.linear
            and conv.padding in ("same", "valid")
            and (batch_norm is None or batch_norm.axis in (-1, 3))
            and type(dense) is keras.layers.Dense
            and dense.activation is keras.activations.softmax
        ):
            return None
        return cls(model, conv, batch_norm, dense)

    def _folded_conv(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel (rows, cols, filters), bias) with inference BatchNorm folded in, float32."""
        kernel = np.asarray(self._conv.kernel.numpy(), np.float64)[:, :, 0, :]
        filters = kernel.shape[-1]
        bias = np.asarray(self._conv.bias.numpy(), np.float64) if self._conv.use_bias else np.zeros(filters)
        norm = self._batch_norm
        if norm is not None:
            gamma = norm.gamma.numpy() if norm.scale else np.ones(filters)
            beta = norm.beta.numpy() if norm.center else np.zeros(filters)
            mean, variance = norm.moving_mean.numpy(), norm.moving_variance.numpy()
            scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(variance, np.float64) + norm.epsilon)
            kernel = kernel * scale
            bias = (bias - mean) * scale + beta
        return np.ascontiguousarray(kernel, np.float32), np.asarray(bias, np.float32)

    def scores(self, inputs: StreamInputs) -> np.ndarray | None:
        """Softmax scores (K, classes) float32 of every input, or None when the inputs are not
        evenly spaced cuts of `inputs.frames` (scored input by input then)."""
        if inputs.frames is None:
            return None
        starts, frames = np.asarray(inputs.starts), np.asarray(inputs.frames)
        count = len(starts)
        rows, cols = self._rows, self._cols
        if frames.ndim != 2 or frames.shape[1] != cols.size:
            return None
        hop = int(starts[1] - starts[0]) if count > 1 else 1
        if hop < 1 or np.any(np.diff(starts) != hop) or (count and starts[-1] + rows.size > len(frames)):
            return None
        kernel, bias = self._folded_conv()
        dense_kernel = np.asarray(self._dense.kernel.numpy(), np.float32)
        classes = dense_kernel.shape[1]
        dense_bias = (
            np.asarray(self._dense.bias.numpy(), np.float32)
            if self._dense.use_bias
            else np.zeros(classes, np.float32)
        )
        if count == 0:
            return np.zeros((0, classes), np.float32)
        # Frame positions whose kernel rows an interior output row of some input starts at.
        interior_first = [r * rows.stride - rows.pad_before for r in range(rows.outputs) if rows.interior(r)]
        shared_length = (hop * (count - 1) + max(interior_first, default=0)) // hop + 1
        phased = _phase_layout(
            frames,
            int(starts[0]),
            hop,
            cols.pad_before,
            cols.size + cols.pad_before + cols.pad_after,
            shared_length + (rows.size + hop - 1) // hop + 1,
        )
        shared = (
            _shared_rows(phased, kernel, bias, cols.stride, cols.outputs, shared_length)
            if interior_first
            else np.zeros((cols.outputs, kernel.shape[2], hop, 1), np.float32)
        )
        return _input_scores(
            phased,
            shared,
            kernel,
            bias,
            count,
            rows.stride,
            cols.stride,
            rows.pad_before,
            rows.outputs,
            rows.size,
            dense_kernel,
            dense_bias,
        )


def _is_plain_relu(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return bool(plain)
    return isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.relu


# The kernels index with slices so that numba proves the indices non-negative and vectorizes
# the innermost loops (with `a[d + j]` it keeps negative-index wraparound and stays scalar).


@njit(cache=True, nogil=True)
def _phase_layout(frames, start, hop, pad_left, width, length):
    """out[col, q, m] = frames[start + hop * m + q, col - pad_left] as float32, zero outside:
    frame t + k of input i is out[., (t + k) % hop, i + (t + k) // hop], contiguous in i."""
    n, channels = frames.shape
    out = np.zeros((width, hop, length), np.float32)
    for m in range(length):
        for q in range(hop):
            t = start + hop * m + q
            if t >= n:
                continue
            for channel in range(channels):
                out[channel + pad_left, q, m] = frames[t, channel]
    return out


@njit(cache=True, nogil=True)
def _accumulate_rows(acc, phased, kernel, k, first_col, q, offset, size):
    """acc[f, :size] += sum over kernel columns kk of kernel[k, kk, f] * phased[first_col + kk, q,
    offset : offset + size] for every filter f, the columns added in order (four per pass over
    acc). All filters per pass: the input rows are read once for all of them, from L1."""
    filters = kernel.shape[2]
    columns = kernel.shape[1]
    kk = 0
    while kk + 4 <= columns:
        x0 = phased[first_col + kk, q, offset : offset + size]
        x1 = phased[first_col + kk + 1, q, offset : offset + size]
        x2 = phased[first_col + kk + 2, q, offset : offset + size]
        x3 = phased[first_col + kk + 3, q, offset : offset + size]
        for f in range(filters):
            w0, w1 = kernel[k, kk, f], kernel[k, kk + 1, f]
            w2, w3 = kernel[k, kk + 2, f], kernel[k, kk + 3, f]
            line = acc[f, :size]
            for j in range(size):
                line[j] = line[j] + w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
        kk += 4
    while kk < columns:
        x = phased[first_col + kk, q, offset : offset + size]
        for f in range(filters):
            weight = kernel[k, kk, f]
            line = acc[f, :size]
            for j in range(size):
                line[j] += weight * x[j]
        kk += 1


@njit(cache=True, nogil=True)
def _shared_rows(phased, kernel, bias, col_stride, out_cols, length):
    """shared[c, f, p, m]: the convolution (bias included, no activation) of output column c,
    filter f, at frame position hop * m + p of the sequence."""
    kernel_rows, _, filters = kernel.shape
    hop = phased.shape[1]
    shared = np.empty((out_cols, filters, hop, length), np.float32)
    acc = np.empty((filters, BLOCK), np.float32)
    for c in range(out_cols):
        for p in range(hop):
            for m0 in range(0, length, BLOCK):
                size = min(BLOCK, length - m0)
                acc[:, :size] = 0.0
                for k in range(kernel_rows):
                    q = (p + k) % hop
                    _accumulate_rows(acc, phased, kernel, k, col_stride * c, q, m0 + (p + k) // hop, size)
                for f in range(filters):
                    out = shared[c, f, p, m0 : m0 + size]
                    line = acc[f, :size]
                    for j in range(size):
                        out[j] = line[j] + bias[f]
    return shared


@njit(cache=True, nogil=True)
def _input_scores(
    phased,
    shared,
    kernel,
    bias,
    count,
    row_stride,
    col_stride,
    pad_top,
    out_rows,
    frames,
    dense_kernel,
    dense_bias,
):
    """Softmax of the dense layer over ReLU(convolution) for each input: interior rows read from
    `shared`, rows that reach the zero padding computed here."""
    kernel_rows, _, filters = kernel.shape
    out_cols = shared.shape[0]
    hop = phased.shape[1]
    classes = dense_kernel.shape[1]
    scores = np.empty((count, classes), np.float32)
    logits = np.empty((classes, BLOCK), np.float32)
    act = np.empty((filters, BLOCK), np.float32)
    for i0 in range(0, count, BLOCK):
        size = min(BLOCK, count - i0)
        logits[:, :] = 0.0
        for r in range(out_rows):
            first = row_stride * r - pad_top
            interior = first >= 0 and first + kernel_rows <= frames
            for c in range(out_cols):
                if interior:
                    offset = i0 + first // hop
                    for f in range(filters):
                        source = shared[c, f, first % hop, offset : offset + size]
                        line = act[f, :size]
                        for j in range(size):
                            value = source[j]
                            line[j] = value if value > 0.0 else 0.0
                else:
                    act[:, :size] = 0.0
                    for k in range(kernel_rows):
                        row = first + k
                        if 0 <= row < frames:
                            _accumulate_rows(
                                act, phased, kernel, k, col_stride * c, row % hop, i0 + row // hop, size
                            )
                    for f in range(filters):
                        line = act[f, :size]
                        for j in range(size):
                            value = line[j] + bias[f]
                            line[j] = value if value > 0.0 else 0.0
                for f in range(filters):
                    index = (r * out_cols + c) * filters + f
                    line = act[f, :size]
                    for cl in range(classes):
                        weight = dense_kernel[index, cl]
                        total = logits[cl, :size]
                        for j in range(size):
                            total[j] += weight * line[j]
        for j in range(size):
            top = logits[0, j] + dense_bias[0]
            for cl in range(1, classes):
                top = max(top, logits[cl, j] + dense_bias[cl])
            total = np.float32(0.0)
            for cl in range(classes):
                e = np.exp(logits[cl, j] + dense_bias[cl] - top)
                scores[i0 + j, cl] = e
                total += e
            for cl in range(classes):
                scores[i0 + j, cl] /= total
    return scores
