"""Full-int8 .tflite conversion with the model's parameters embedded (MLTK SL_PARAMSv1).

The quantized model takes the frontend's int8 features directly (input scale 1.0, zero
point 0: firmware feeds frontend output straight in) and returns int8 softmax scores.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from microspeech import stopping
from microspeech.tflite.flatbuffer import operator_names
from microspeech.version import __version__

if TYPE_CHECKING:
    import keras

# Builtin int8 kernels that TFLM (and Silicon Labs' build in MLTK 0.20) run; a converted
# model with anything else (a Flex op, a float op, a custom op) is refused.
ALLOWED_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
        "ADD",
    }
)
REPRESENTATIVE_SAMPLES = 500


class QuantizationError(RuntimeError):
    """The converted model does not meet the contract (ops, input quantization)."""


@contextlib.contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Hold back what TensorFlow's C++ converter prints on the process's stdout/stderr (the
    "fully_quantize: 0, inference_type: 6" line lands in the middle of a table otherwise);
    replayed on stderr if the conversion fails, so nothing that explains an error is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as captured:
        for fd in (1, 2):
            os.dup2(captured.fileno(), fd)
        try:
            yield
        except BaseException:
            _restore(saved)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        _restore(saved)


def _restore(saved: dict[int, int]) -> None:
    for fd, copy in list(saved.items()):
        os.dup2(copy, fd)
        os.close(copy)
        del saved[fd]


def check_convertible_layers(model: keras.Model) -> None:
    """QuantizationError naming the first recurrent layer (LSTM, GRU, SimpleRNN, ConvLSTM, or one
    wrapped in Bidirectional or TimeDistributed): none converts to ALLOWED_OPS, and TensorFlow's
    int8 calibration crashes the process on them (a segfault, seen with TensorFlow 2.21), so they
    are refused before training and before conversion."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional):
            raise QuantizationError(
                f"layer {layer.name!r} ({type(layer).__name__}): recurrent layers do not convert to the "
                f"int8 builtin ops TFLM runs here ({', '.join(sorted(ALLOWED_OPS))}); use convolutions "
                "over time instead"
            )


def _representative(features: np.ndarray, seed: int) -> Iterator[list[np.ndarray]]:
    if len(features) == 0:
        raise QuantizationError("the representative dataset is empty (no validation features)")
    rng = np.random.default_rng(seed)
    picked = features[rng.permutation(len(features))[:REPRESENTATIVE_SAMPLES]].astype(np.float32)
    # Pin the calibrated input range to the full int8 range, so the input's scale is
    # exactly 1.0 with zero point 0 whatever the validation features happen to span.
    pinned = picked[0].copy()
    pinned.flat[0], pinned.flat[1] = -128.0, 127.0
    yield [pinned[None]]
    for sample in picked:
        yield [sample[None]]


def convert_to_int8(
    model: keras.Model,
    representative_features: np.ndarray,
    *,
    seed: int = 0,
    legacy: bool = False,
) -> bytes:
    """TFLiteConverter, TFLITE_BUILTINS_INT8, int8 in/out, batch-1 signature, as older TFLM builds run it.

    FULLY_CONNECTED weights get one scale for all rows (`per_channel_dense=False`): TensorFlow
    2.21 quantizes them per output row by default, and TFLM builds older than per-channel
    FULLY_CONNECTED (Silicon Labs' in the MLTK 0.20 wheel among them) apply the first row's
    scale to every row, so the part would compute other scores than the host. The input
    RESHAPE is folded into the input (1x49x40x1, as MLTK's model), one copy less.
    `legacy=True` converts as microspeech did before (per-channel FULLY_CONNECTED, input
    RESHAPE kept): the parity check must catch it (tests, benchmarks/runtime_parity.py).
    """
    import tensorflow as tf

    from microspeech.tflite.graph import remove_reshape_before_fully_connected, simplify_graph

    check_convertible_layers(model)
    input_shape = tuple(model.input_shape[1:])
    with tempfile.TemporaryDirectory(prefix="microspeech-export-") as saved_model:
        # Through a SavedModel with a static batch of 1: the graph then needs no SHAPE/PACK
        # ops to rebuild dynamic shapes, leaving only CONV_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX.
        signature = [tf.TensorSpec((1, *input_shape), tf.float32, name="features")]
        model.export(saved_model, format="tf_saved_model", verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(representative_features, seed)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_disable_per_channel_quantization_for_dense_layers = not legacy
        with _quiet_native_output():
            tflite_bytes = bytes(converter.convert())
    # A Ctrl-C inside the converter's native code returns the model as if none came (train went
    # on to calibrate and said "trained"; list went on measuring).
    stopping.raise_if_received()
    # The rewrites are exact (tested bit for bit in microspeech.tflite.graph): the input
    # RESHAPE becomes the input's shape, and FULLY_CONNECTED flattens by itself, so the
    # RESHAPE before it goes too; TFLM then copies nothing and its arena is lower. A RESHAPE
    # between layers stays, with a batch of -1, so LiteRT can still run batches of inputs.
    if legacy:
        tflite_bytes = remove_reshape_before_fully_connected(tflite_bytes)
    else:
        tflite_bytes = simplify_graph(tflite_bytes)
    check_int8_model(tflite_bytes)
    return tflite_bytes


def check_int8_model(tflite_bytes: bytes) -> None:
    """Raise QuantizationError unless ops are the expected set and the input is int8 x1.0 + 0."""
    from microspeech.tflite.runtime import TfliteRunner

    ops = operator_names(tflite_bytes)
    if not set(ops) <= ALLOWED_OPS:
        # The converter names an op's output after the Keras layer it came from.
        from microspeech.tflite.flatbuffer import read_model

        subgraph = read_model(tflite_bytes).Subgraphs(0)
        found = []
        for index, op in enumerate(ops):
            operator = subgraph.Operators(index)
            if op not in ALLOWED_OPS and operator.OutputsLength():
                name = subgraph.Tensors(operator.Outputs(0)).Name() or b"?"
                found.append(f"{op} (output {name.decode('utf-8', 'replace')!r})")
        raise QuantizationError(
            f"the converted model has ops outside the int8 builtins TFLM runs here: {', '.join(found)}; "
            f"allowed: {', '.join(sorted(ALLOWED_OPS))}. Build the model from layers that convert to "
            "these (Conv2D, DepthwiseConv2D, average or max pooling, Dense, ReLU, Flatten, Add, softmax)"
        )
    runner = TfliteRunner(tflite_bytes, backend="litert")
    details = runner.input_details
    if details.dtype != np.int8 or details.scale != 1.0 or details.zero_point != 0:
        raise QuantizationError(
            f"model input is {details.dtype} scale {details.scale} zero point {details.zero_point}; "
            "expected int8 with scale 1.0 and zero point 0"
        )
    if runner.output_details.dtype != np.int8:
        raise QuantizationError(f"model output is {runner.output_details.dtype}, expected int8")


def tflm_arena_size(tflite_bytes: bytes) -> int:
    """The smallest TFLM arena (bytes) in which the model prepares and runs."""
    from microspeech.tflite.profile import find_min_arena_size

    return int(find_min_arena_size(tflite_bytes))


def artifact_parameters(tflite_bytes: bytes, *, runtime_memory_size: int) -> dict[str, Any]:
    """The SL_PARAMSv1 entries MLTK adds for any converted model: hash, date, arena, tool version."""
    return {
        "hash": hashlib.md5(tflite_bytes).hexdigest(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "runtime_memory_size": int(runtime_memory_size),
        "microspeech_version": __version__,
    }


def build_tflite(
    model: keras.Model,
    representative_features: np.ndarray,
    model_parameters: dict[str, Any],
    *,
    seed: int = 0,
) -> bytes:
    """Convert, measure the TFLM arena, and embed `model_parameters` (name, classes, frontend,
    detection: what the model's spec says) with the artifact's own: the final .tflite bytes."""
    from microspeech.tflite.metadata import write_parameters

    tflite_bytes = convert_to_int8(model, representative_features, seed=seed)
    arena = tflm_arena_size(tflite_bytes)
    parameters = dict(model_parameters)
    # In MLTK's order: name, version, classes, then the artifact's entries, then the rest.
    head = {key: parameters.pop(key) for key in ("name", "version", "classes") if key in parameters}
    return write_parameters(
        tflite_bytes, {**head, **artifact_parameters(tflite_bytes, runtime_memory_size=arena), **parameters}
    )
