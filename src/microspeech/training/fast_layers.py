"""Faster training-mode stand-ins for Keras' BatchNormalization and Dropout.

At batch 32 a training step is TensorFlow dispatching small ops, and these two layers are ~60%
of the seed model's step: Keras 3 computes BatchNormalization from ~10 separate ops forward and
more backward, and Dropout draws a float32 uniform per element. `training_graph(model)` is the
same Keras graph with those layers swapped, in training only, for:
- one fused TensorFlow op forward and one backward (FusedBatchNormV3) with the same
  normalization (the batch's biased variance) and the same moving-statistics update;
- a mask from 16-bit uniforms (the halves of TensorFlow's stateless Philox words, computed in
  numba: training.dropout_masks), seeded from the Dropout layer's own Keras seed state, so it is
  checkpointed with the model and a resumed run draws the same masks. The rate is kept to
  1/65,536.
Every other layer is the model's own; the stand-ins hold no variables of their own, so the
optimizer trains `model.trainable_variables` and the model, unchanged, is what is saved and
converted. tests/training/test_fast_layers.py checks them against Keras' layers.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from microspeech.training.dropout_masks import dropout_factors, keep_threshold


def _single_axis(layer: Any) -> int | None:
    axis = layer.axis
    if isinstance(axis, int):
        return axis
    return axis[0] if len(axis) == 1 else None


def _fusable_batch_norm(layer: Any) -> bool:
    if type(layer) is not keras.layers.BatchNormalization or not layer.trainable:
        return False
    try:
        rank = len(layer.input.shape)
    except (AttributeError, ValueError):  # a shared layer has no single input
        return False
    return (
        rank in (2, 4)
        and _single_axis(layer) in (-1, rank - 1)
        and not getattr(layer, "renorm", False)
        and not getattr(layer, "synchronized", False)
    )


def _plain_dropout(layer: Any) -> bool:
    return type(layer) is keras.layers.Dropout and layer.noise_shape is None and 0.0 < layer.rate < 1.0


def training_graph(model: keras.Model) -> keras.Model:
    """`model`'s graph with its BatchNormalization and Dropout layers computed as above in
    training; the model itself when it has neither, or is not a graph of layers."""
    if not any(_fusable_batch_norm(layer) or _plain_dropout(layer) for layer in model.layers):
        return model

    def stand_in(layer):
        if _fusable_batch_norm(layer):
            return FusedBatchNorm(layer)
        if _plain_dropout(layer):
            return Uint16Dropout(layer)
        return layer  # shared: the same layer object, the same variables

    try:
        return keras.models.clone_model(model, clone_function=stand_in)
    except ValueError:  # a subclassed model has no graph to rebuild: it trains as it is
        return model


class _StandIn(keras.layers.Layer):
    """Computes the wrapped layer its own way in training, calls it otherwise; owns no variables."""

    def __init__(self, layer: Any) -> None:
        super().__init__(name=f"{layer.name}_training", dtype=layer.dtype_policy)
        # Not tracked as a sublayer, so its variables stay the wrapped layer's only.
        object.__setattr__(self, "wrapped", layer)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None, mask=None):
        if training and mask is None:
            return self.train_call(inputs)
        masked = {"mask": mask} if mask is not None else {}  # only BatchNormalization takes one
        return self.wrapped(inputs, training=training, **masked)

    def train_call(self, inputs):
        raise NotImplementedError


class FusedBatchNorm(_StandIn):
    """BatchNormalization in training as FusedBatchNormV3 (one op forward, one backward)."""

    def train_call(self, inputs):
        norm = self.wrapped
        channels = inputs.shape[-1]
        x = tf.cast(inputs, tf.float32)
        shape = tf.shape(x)
        if x.shape.rank == 2:
            x = tf.reshape(x, [-1, 1, 1, channels])
        gamma = tf.convert_to_tensor(norm.gamma) if norm.scale else tf.ones([channels])
        beta = tf.convert_to_tensor(norm.beta) if norm.center else tf.zeros([channels])
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=norm.epsilon, is_training=True
        )
        # The fused op returns the unbiased variance for the moving statistics; Keras updates
        # them with the biased one it normalizes with.
        count = tf.cast(tf.size(x) // channels, tf.float32)
        variance = variance * (count - 1.0) / count
        momentum = norm.momentum
        norm.moving_mean.assign(norm.moving_mean * momentum + mean * (1.0 - momentum))
        norm.moving_variance.assign(norm.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.reshape(y, shape)


class Uint16Dropout(_StandIn):
    """Dropout in training with a mask of 16-bit uniforms from the layer's own seed state."""

    def train_call(self, inputs):
        rate = self.wrapped.rate
        seed = tf.cast(self.wrapped.seed_generator.next(), tf.int64)
        threshold, keep = keep_threshold(rate), np.float32(1.0 / (1.0 - rate))

        def factors(seed_value: np.ndarray, count: np.ndarray) -> np.ndarray:
            return dropout_factors(seed_value, int(count), threshold, keep)

        # The mask's Philox words and factors in one numba pass (training.dropout_masks); one
        # multiply by 0 or 1 / (1 - rate) forward and backward: the same values as selecting
        # between the scaled input and zeros, at half the cost (no select, no zeros tensor).
        scale = tf.numpy_function(factors, [seed, tf.size(inputs)], tf.float32, stateful=False)
        return inputs * tf.cast(tf.reshape(scale, tf.shape(inputs)), inputs.dtype)  # no gradient: a mask
