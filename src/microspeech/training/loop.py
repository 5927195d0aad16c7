"""The fast training loop: many optimizer steps per compiled call over in-memory features.

Keras `fit` pays Python and dispatch overhead on every batch of 32, which dominates for a
336k-MAC model. Here the epoch's features live in one tensor; one `tf.function` call runs
a chunk of steps (gather a batch, forward, weighted cross-entropy, Adam), so the loss and
accuracy come back once per chunk. Callbacks run between epochs, outside the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from microspeech.training.stream_scoring import SharedConvScorer

if TYPE_CHECKING:
    import keras

    from microspeech.detection.windows import StreamInputs

STEPS_PER_CALL = 100
EVAL_BATCH = 2048
PREDICT_THREADS = 2


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    samples: int


def _time_steps_kernel(model: keras.Model) -> tuple[Any, int] | None:
    """(the final Dense layer, time steps) when the model ends in Flatten -> Dense over
    (batch, time, ...) features, whose kernel rows then run time-major; else None."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) < 2 or type(layers[-1]) is not keras.layers.Dense:
        return None
    flatten, dense = layers[-2], layers[-1]
    if not isinstance(flatten, keras.layers.Flatten) or flatten.data_format != "channels_last":
        return None
    shape = flatten.input.shape
    if len(shape) < 3 or shape[1] is None or shape[1] < 2:
        return None
    return dense, int(shape[1])


class FastTrainer:
    """Trains one Keras model with Adam and weighted categorical cross-entropy."""

    def __init__(
        self,
        model: keras.Model,
        learning_rate: float,
        class_weights: list[float],
        *,
        label_smoothing: float = 0.0,
        focal_gamma: float = 0.0,
        weight_averaging: float = 0.0,
        time_smoothing: float = 0.0,
        word_classes: int = 0,
        word_head: float = 0.0,
        norm_windows: int = 0,
    ) -> None:
        """`focal_gamma`: the focal loss's exponent (0: plain cross-entropy).
        `weight_averaging`: the momentum per step of an exponential moving average of the
        trainable weights (0: none), which `averaged_weights()` swaps in for evaluation.
        `time_smoothing`: this times the squared differences between the final Dense layer's
        weights for neighbouring time steps is added to the loss (0: none; the model must end in
        Flatten -> Dense over (time, ...) features).
        `word_head`: with `word_classes` > 0, a training-only Dense softmax over that many finer
        labels (`train_epoch`'s `words`) on the final Dense layer's input; its cross-entropy times
        this is added to the loss (0: none). The head is not part of `model`.
        `norm_windows`: with weight averaging, the BatchNorm statistics that go with the averaged
        weights are recomputed over this many of the epoch's windows (0: the trained weights'
        statistics are kept, which normalize another model's activations)."""
        import keras
        import tensorflow as tf

        from microspeech.training.fast_layers import training_graph

        self.model = model
        # The same layers and variables, BatchNorm and Dropout computed faster in training.
        self._training_graph = training_graph(model)
        self._word_head = float(word_head) if word_classes else 0.0
        self._head_graph = self._word_dense = None
        if self._word_head:
            # The training graph with the final layer's input as a second output (that layer's node
            # in this graph: a layer shared with `model` has one there too).
            graph = self._training_graph
            try:
                final, node_index, _ = graph.outputs[0]._keras_history
                hidden = final._inbound_nodes[node_index].input_tensors[0]
            except (AttributeError, IndexError, ValueError) as error:  # a subclassed model: no graph
                raise ValueError(
                    "word_head needs a model built as a graph of layers (keras.Model(inputs, outputs) "
                    f"or Sequential), not {type(model).__name__}"
                ) from error
            self._head_graph = keras.Model(graph.inputs[0], [hidden, graph.outputs[0]])
            self._word_dense = keras.layers.Dense(word_classes, name="word_head")
            self._word_dense.build(tuple(hidden.shape))
        self._trained = list(model.trainable_variables)
        # Weight regularizers (kernel_regularizer=... in a spec's build) join the loss as in Keras'
        # fit; activity regularizers are computed inside a layer's call, which the training graph
        # replaces for some layers, so they are refused rather than silently dropped.
        self._regularized = [v for v in self._trained if getattr(v, "regularizer", None) is not None]
        for layer in _nested_layers(model):
            if getattr(layer, "activity_regularizer", None) is not None:
                raise ValueError(
                    f"layer {layer.name!r} has an activity_regularizer, which microspeech's training "
                    "loop does not apply; use a weight regularizer (kernel_regularizer=...) instead"
                )
        self._norm_windows = int(norm_windows)
        self._norm_inputs: list[tuple[Any, bool, Any]] | None = None
        if self._word_dense is not None:
            self._trained += list(self._word_dense.trainable_variables)
        if weight_averaging:
            self.optimizer = keras.optimizers.Adam(
                learning_rate=learning_rate, use_ema=True, ema_momentum=weight_averaging
            )
        else:
            self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(self._trained)
        self._class_weights = tf.constant(class_weights, dtype=tf.float32)
        self._label_smoothing = float(label_smoothing)
        self._focal_gamma = float(focal_gamma)
        self._time_smoothing = float(time_smoothing)
        self._time_kernel = _time_steps_kernel(model) if time_smoothing else None
        if time_smoothing and self._time_kernel is None:
            raise ValueError(
                "time_smoothing needs a model that ends in Flatten -> Dense over (time, ...) features"
            )
        # Resizable variables hold the epoch's data, so each chunk gathers its batches in-graph.
        # The features stay int8 (a quarter of float32's memory, no float copy per epoch) and
        # become float32 batch by batch, exactly.
        input_shape = tuple(model.input_shape[1:])
        self._features = tf.Variable(
            tf.zeros((1, *input_shape), tf.int8), shape=tf.TensorShape([None, *input_shape]), trainable=False
        )
        self._labels = tf.Variable(tf.zeros((1,), tf.int32), shape=tf.TensorShape([None]), trainable=False)
        self._words = tf.Variable(tf.zeros((1,), tf.int32), shape=tf.TensorShape([None]), trainable=False)
        # One trace with dynamic shapes: which chunk shapes came first (epochs grow when mined
        # negatives join, a resumed run skips the early ones) must not change the numerics.
        self._train_chunk = tf.function(
            self._train_chunk_impl, input_signature=[tf.TensorSpec([None, None], tf.int32)]
        )
        self._predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        self._executor: ThreadPoolExecutor | None = None
        self._stream_scorer = SharedConvScorer.for_model(model)

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate.numpy())

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate.assign(value)

    def _train_chunk_impl(self, batch_indices):  # (steps, batch) int32 -> sums over the chunk
        import tensorflow as tf

        n_classes = self.model.output_shape[-1]
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0, tf.int32)
        for step in tf.range(tf.shape(batch_indices)[0]):
            indices = batch_indices[step]
            x = tf.cast(tf.gather(self._features, indices), tf.float32)
            y = tf.gather(self._labels, indices)
            weights = tf.gather(self._class_weights, y)
            targets = tf.one_hot(y, n_classes)
            if self._label_smoothing:
                targets = targets * (1.0 - self._label_smoothing) + self._label_smoothing / n_classes
            with tf.GradientTape() as tape:
                scores, word_loss = self._forward(x, indices)
                per_class = targets * tf.math.log(tf.clip_by_value(scores, 1e-7, 1.0))
                if self._focal_gamma:  # without it, the graph of plain cross-entropy, op for op
                    per_class = per_class * tf.pow(1.0 - scores, self._focal_gamma)
                per_sample = -tf.reduce_sum(per_class, axis=-1)
                # Keras' "sum_over_batch_size" with sample weights.
                loss = tf.reduce_sum(per_sample * weights) / tf.cast(tf.shape(y)[0], tf.float32)
                if self._time_kernel is not None:
                    dense, steps = self._time_kernel
                    rows = tf.reshape(dense.kernel, (steps, -1))
                    loss += self._time_smoothing * tf.reduce_sum(tf.square(rows[1:] - rows[:-1]))
                if word_loss is not None:
                    loss += self._word_head * word_loss
                for variable in self._regularized:
                    loss += variable.regularizer(variable)
            grads = tape.gradient(loss, self._trained)
            self.optimizer.apply(grads, self._trained)
            loss_sum += loss * tf.cast(tf.shape(y)[0], tf.float32)
            predicted = tf.argmax(scores, -1, output_type=tf.int32)
            correct += tf.reduce_sum(tf.cast(tf.equal(predicted, y), tf.int32))
        return loss_sum, correct

    def _forward(self, x, indices):
        """(training-mode scores, the word head's mean cross-entropy or None when it is off)."""
        import tensorflow as tf

        if self._head_graph is None:
            return self._training_graph(x, training=True), None
        hidden, scores = self._head_graph(x, training=True)
        logits = self._word_dense(hidden)
        words = tf.gather(self._words, indices)
        return scores, tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(words, logits))

    def warm_up(self, batch_size: int) -> None:
        """Run the training step once on zeros, then put every variable back (model, optimizer,
        dropout seed state): TensorFlow traces and optimizes the graph on a step's first call,
        seconds the first epoch need not wait for (training calls this while the first epoch's
        features render). Training afterwards is the same as without it."""
        import tensorflow as tf

        saved = self.state()
        shape = tuple(self._features.shape[1:])
        self._features.assign(tf.zeros((batch_size, *shape), tf.int8))
        self._labels.assign(tf.zeros((batch_size,), tf.int32))
        self._words.assign(tf.zeros((batch_size,), tf.int32))
        self._train_chunk(tf.constant(np.arange(batch_size, dtype=np.int32)[None]))
        self.load_state(saved)

    def train_epoch(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        rng: np.random.Generator,
        on_chunk=None,
        words: np.ndarray | None = None,
    ) -> EpochResult:
        """One pass over shuffled int8 `features`; `on_chunk(samples_done, loss, accuracy)` after each
        call. `words`: each sample's finer label for the word head (needed when it is on)."""
        import tensorflow as tf

        if features.dtype != np.int8:
            raise TypeError(f"FastTrainer trains on int8 features (the frontend's), not {features.dtype}")
        n = len(labels)
        self._features.assign(tf.constant(features))
        self._labels.assign(tf.constant(labels, tf.int32))
        if self._head_graph is not None:
            if words is None or len(words) != n:
                raise ValueError("the word head needs one word label per sample (train_epoch's words)")
            self._words.assign(tf.constant(words, tf.int32))
        order = rng.permutation(n).astype(np.int32)
        full = (n // batch_size) * batch_size
        step = STEPS_PER_CALL * batch_size
        chunks = [
            order[start : min(start + step, full)].reshape(-1, batch_size) for start in range(0, full, step)
        ]
        if full < n:  # the last, smaller batch (as Keras fit does)
            chunks.append(order[full:].reshape(1, -1))
        loss_total, correct_total, done = 0.0, 0, 0
        for chunk in chunks:
            loss_sum, correct = self._train_chunk(tf.constant(chunk))
            loss_total += float(loss_sum)
            correct_total += int(correct)
            done += chunk.size
            if on_chunk is not None:
                on_chunk(done, loss_total / done, correct_total / done)
        return EpochResult(loss_total / max(done, 1), correct_total / max(done, 1), done)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Softmax scores in inference mode (BatchNorm statistics, no dropout).

        The batches run on `PREDICT_THREADS` threads (TensorFlow releases the GIL): training
        keeps one intra-op thread, so evaluation would leave the other core idle. Each batch is
        the same slice whichever thread runs it, so the scores do not depend on the threads.
        """
        starts = range(0, len(features), EVAL_BATCH)

        def batch(start: int) -> np.ndarray:
            return self._predict(np.asarray(features[start : start + EVAL_BATCH], np.float32)).numpy()

        if len(starts) > 1:
            outputs = list(self._pool().map(batch, starts))
        else:
            outputs = [batch(start) for start in starts]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.model.output_shape[-1]), np.float32)

    def predict_stream(self, inputs: StreamInputs) -> np.ndarray:
        """`predict` of every input of a stream; for the seed family with the convolution shared
        between overlapping inputs (training.stream_scoring), a third of the work."""
        if self._stream_scorer is not None:
            scores = self._stream_scorer.scores(inputs)
            if scores is not None:
                return scores
        return self.predict(inputs.features)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(PREDICT_THREADS, thread_name_prefix="predict")
        return self._executor

    def evaluate(self, features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(weighted-free cross-entropy, accuracy), as Keras reports val_loss/val_accuracy."""
        loss, accuracy, _ = self.evaluate_balanced(features, labels)
        return loss, accuracy

    def evaluate_balanced(self, features: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
        """(cross-entropy, accuracy, balanced accuracy = mean recall over the classes present)."""
        scores = self.predict(features)
        labels = np.asarray(labels)
        picked = np.clip(scores[np.arange(len(labels)), labels], 1e-7, 1.0)
        hits = scores.argmax(-1) == labels
        recalls = [hits[labels == c].mean() for c in np.unique(labels)]
        balanced = float(np.mean(recalls)) if recalls else 0.0
        return float(-np.log(picked).mean()), float(hits.mean()), balanced

    @contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Inside the block the model holds the averaged trainable weights, and the BatchNorm
        statistics recomputed for them when `norm_windows` asks; the trained ones come back after
        it. Without averaging, nothing changes."""
        averages = getattr(self.optimizer, "_model_variables_moving_average", None)
        if not self.optimizer.use_ema or not averages:
            yield
            return
        variables = self.model.trainable_variables
        trained = [v.numpy() for v in variables]
        statistics = [(n.moving_mean.numpy(), n.moving_variance.numpy()) for n, _, _ in self._norm_layers()]
        # The optimizer's averages follow `self._trained`: the model's variables, then the head's.
        for variable, average in zip(variables, averages[: len(variables)], strict=True):
            variable.assign(average)
        try:
            if self._norm_windows:
                self._recompute_norm_statistics()
            yield
        finally:
            for variable, value in zip(variables, trained, strict=True):
                variable.assign(value)
            for (norm, _, _), (mean, variance) in zip(self._norm_layers(), statistics, strict=True):
                norm.moving_mean.assign(mean)
                norm.moving_variance.assign(variance)

    def _norm_layers(self) -> list[tuple[Any, bool, Any]]:
        """(BatchNormalization layer, whether its input comes from the previous one's output, the
        function that computes its input), in the model's order, so each layer's statistics
        follow the ones before it. From the previous layer's output: one forward pass in all;
        where the graph in between needs more than that tensor (a skip connection), from the
        model's input. Only with `norm_windows`: otherwise none are touched."""
        if not self._norm_windows:
            return []
        if self._norm_inputs is None:
            import keras
            import tensorflow as tf

            norm_type = keras.layers.BatchNormalization
            self._norm_inputs = []
            previous = None
            for norm in (layer for layer in self.model.layers if isinstance(layer, norm_type)):
                chained = previous is not None
                try:
                    segment = keras.Model(previous.output if chained else self.model.inputs, norm.input)
                except ValueError:  # not computable from the previous layer's output alone
                    chained, segment = False, keras.Model(self.model.inputs, norm.input)
                self._norm_inputs.append((norm, chained, tf.function(segment, reduce_retracing=True)))
                previous = norm
        return self._norm_inputs

    def _recompute_norm_statistics(self) -> None:
        """Each BatchNorm layer's moving mean and (biased) variance set to those of its input over
        `norm_windows` of the current epoch's windows, evenly spaced (no random draw), in inference
        mode, as SWA does for averaged weights (Izmailov et al., 2018)."""
        import tensorflow as tf

        n = int(tf.shape(self._features)[0])
        rows = np.unique(np.linspace(0, n - 1, min(self._norm_windows, n)).astype(np.int64))
        # Only those rows leave the graph's copy of the epoch, not the whole epoch.
        windows = tf.gather(self._features, rows).numpy().astype(np.float32)
        chunks = [windows[start : start + EVAL_BATCH] for start in range(0, len(windows), EVAL_BATCH)]
        outputs = chunks  # the previous BatchNorm layer's outputs, chunk by chunk
        for norm, chained, segment in self._norm_layers():
            inputs = [segment(x) for x in (outputs if chained else chunks)]
            flat = [np.asarray(x, np.float64).reshape(-1, x.shape[-1]) for x in inputs]
            count = sum(len(x) for x in flat)
            mean = sum(x.sum(0) for x in flat) / count
            variance = sum(np.square(x - mean).sum(0) for x in flat) / count
            norm.moving_mean.assign(mean.astype(np.float32))
            norm.moving_variance.assign(variance.astype(np.float32))
            outputs = [norm(x, training=False) for x in inputs]

    def state(self) -> dict[str, np.ndarray]:
        """Model and optimizer variables (incl. dropout seed state), for checkpoints."""
        state = {f"model/{i}": v.numpy() for i, v in enumerate(self.model.variables)}
        state.update({f"optimizer/{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)})
        if self._word_dense is not None:
            state.update({f"word_head/{i}": v.numpy() for i, v in enumerate(self._word_dense.variables)})
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for i, variable in enumerate(self.model.variables):
            variable.assign(state[f"model/{i}"])
        for i, variable in enumerate(self.optimizer.variables):
            variable.assign(state[f"optimizer/{i}"])
        if self._word_dense is not None:
            for i, variable in enumerate(self._word_dense.variables):
                variable.assign(state[f"word_head/{i}"])

    def model_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.variables]

    def set_model_weights(self, weights: list[np.ndarray]) -> None:
        for variable, value in zip(self.model.variables, weights, strict=True):
            variable.assign(value)


def _nested_layers(model: Any) -> Iterator[Any]:
    """Every layer of `model`, those inside nested models included."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _nested_layers(layer)
