"""Model specs: everything that defines a trainable model, as serializable dataclasses.

A spec holds the class names, the frontend settings, a Keras builder and the training,
augmentation and detection settings. It is what `microspeech train NAME` trains and what
the .tflite metadata records.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microspeech.audio import SAMPLE_RATE
from microspeech.checks import MAX_FA_PER_HOUR, MAX_STREAM_MINUTES, SNR_DB_RANGE
from microspeech.config import check_field_types, from_known_keys
from microspeech.data.settings import AugmentationSettings
from microspeech.data.streams import CLEAN
from microspeech.detection.params import DetectionParams
from microspeech.labels import SILENCE, UNKNOWN

if TYPE_CHECKING:
    import keras

    from microspeech.data.pipeline import TrainingTarget
    from microspeech.frontend import FrontendSettings

__all__ = ["ModelSpec", "TrainSettings"]


# TrainSettings keys older manifests may hold that no longer mean anything.
RETIRED_KEYS = frozenset({"validation_fraction"})
# A spec's name: a registered one, -test, -<keyword>... (a folder, file names, a Keras name scope);
# 200 leaves a temporary file's additions within a file name's 255 bytes.
MAX_SPEC_NAME = 200
SPEC_NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_-]{{0,{MAX_SPEC_NAME - 1}}}")


@dataclass
class TrainSettings:
    """Optimizer, schedule and stopping rules (MLTK tflite_micro_speech defaults)."""

    batch_size: int = 32
    epochs: int = 200
    learning_rate: float = 1e-3
    # "plateau": the rate falls by `reduce_lr_factor` after `reduce_lr_patience` epochs without
    # progress in `reduce_lr_monitor` (MLTK); "cosine": it holds for `cosine_hold_epochs`, then
    # follows half a cosine down to `min_learning_rate` at epoch `epochs`.
    learning_rate_schedule: str = "plateau"
    cosine_hold_epochs: int = 0
    reduce_lr_factor: float = 0.25
    reduce_lr_patience: int = 7
    min_learning_rate: float = 1e-6
    early_stopping_patience: int = 20
    # MLTK: the learning rate follows the training accuracy, early stopping and the kept
    # (best) weights follow the validation accuracy.
    reduce_lr_monitor: str = "accuracy"
    monitor: str = "val_accuracy"
    # Early stopping follows this metric when set (else `monitor`): a noisy checkpoint metric
    # such as the stream score would stop training before the learning rate has decayed.
    stopping_monitor: str | None = None
    balanced_class_weights: bool = True
    # Per-class multipliers on the loss weights above, by class name (e.g. {"no": 1.3} to
    # push a weak class's recall); classes not named keep x1. Empty is off.
    class_weight_scale: dict[str, float] = field(default_factory=dict)
    # Cross-entropy against (1 - s) one-hot + s / classes (Keras' label_smoothing); 0 is off.
    label_smoothing: float = 0.0
    # Focal loss (Lin et al., 2017): each class's cross-entropy term times (1 - its score) ** gamma,
    # so well-classified windows weigh little and the hard ones (confusable words, keywords in
    # noise) carry the loss; Keras' CategoricalFocalCrossentropy with alpha 1. 0 is off.
    focal_gamma: float = 0.0
    # Time smoothness of the classifier (0 is off): this times the summed squared difference
    # between the final Dense layer's weights for consecutive time steps of the Flatten before it,
    # added to the loss, so the scores change little as a word slides by one step in the window.
    time_smoothing: float = 0.0
    # A second, training-only head (0 is off): a Dense softmax over every word of the training
    # split (plus silence, keyword fragments, reversed words and mined windows) on the input of
    # the final Dense layer, its cross-entropy times this added to the loss. The word labels ask
    # the shared layers to tell apart the words one class lumps together (`_unknown_` holds "go"
    # beside the keyword "no"); the head is dropped, so the exported model is unchanged.
    word_head: float = 0.0
    # Exponential moving average of the trainable weights, momentum per step (0 is off): each
    # epoch is evaluated, chosen and mined with the averaged weights, which are the ones kept.
    weight_averaging: float = 0.0
    # With weight averaging: the BatchNorm statistics used with the averaged weights recomputed
    # over this many of the epoch's windows (0: the trained weights' own statistics, which follow
    # another model's activations: a mismatch that makes the averaged model's scores drift).
    norm_windows: int = 0
    # Clip counts relative to the mean keyword count (MLTK: unknown 3x, silence 0.2x).
    unknown_ratio: float = 3.0
    silence_ratio: float = 0.2
    # Relative share of an `_unknown_` word's training windows (1 for a word not named), e.g. more
    # of the words the model confuses with a keyword; the `_unknown_` total stays the same.
    unknown_word_weights: dict[str, float] = field(default_factory=dict)
    # Dry runs cap the clips per class; None keeps all.
    max_clips_per_class: int | None = None
    # Streaming validation (training.stream_selection): minutes of a stream built from the
    # validation split, one segment per condition (clean if `stream_clean_segment`, then each
    # SNR in dB). With monitor "val_stream_score" it picks the checkpoint: the mean share of
    # keywords found within 1, 2, 4 and 8 x `max_fa_per_hour` ("val_stream_plus_accuracy": that
    # plus validation accuracy, so the clips break the stream's near-ties); and at the end of
    # training the detection parameters are calibrated for that budget and written into the .tflite.
    # 0 minutes: no stream (checkpoints by clip metrics, the spec's detection parameters).
    stream_validation_minutes: float = 0.0
    stream_snr_db: tuple[float, ...] = (30.0, 20.0, 10.0, 5.0, 0.0)
    stream_clean_segment: bool = True
    max_fa_per_hour: float = 2.0
    # Minutes of a stream of its own (the validation split, other placements and noise than the
    # checkpoint stream's) that the detection parameters are calibrated on; 0: calibrate on the
    # checkpoint stream. A budget of 2 FA/h allows one false accept in 30 minutes, so a short
    # stream sets the threshold by its one worst word (BENCHMARKS.md, "Calibration stream length").
    # Without a validation stream nothing is calibrated and this is unused.
    calibration_minutes: float = 0.0
    # Hard-negative mining (training.mining): after every `mining_every` epochs, up to
    # `mining_rounds` times, score a `mining_minutes` stream of the training split's other
    # words; windows whose top keyword score reaches `mining_threshold` (0-255) join training
    # as `_unknown_` (at most `mining_max_windows` a round). 0 rounds is off.
    mining_rounds: int = 0
    mining_every: int = 10
    mining_minutes: float = 20.0
    mining_threshold: int = 128
    mining_max_windows: int = 1000

    def __post_init__(self) -> None:
        check_field_types(self, "train")  # ints, finite numbers, flags, tuples: before any range
        bounds = {  # (low, high), inclusive; what can run, and what a run can afford
            "batch_size": (1, 65_536),
            "epochs": (1, 100_000),
            "reduce_lr_patience": (0, 100_000),
            "early_stopping_patience": (1, 100_000),
            "min_learning_rate": (0.0, 1.0),
            "unknown_ratio": (0.0, 1000.0),
            "silence_ratio": (0.0, 1000.0),
            "stream_validation_minutes": (0.0, MAX_STREAM_MINUTES),
            "calibration_minutes": (0.0, MAX_STREAM_MINUTES),
            "mining_minutes": (0.0, MAX_STREAM_MINUTES),
            "max_fa_per_hour": (0.0, MAX_FA_PER_HOUR),
            "mining_max_windows": (0, 1_000_000),
        }
        for name, (low, high) in bounds.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"train {name}={getattr(self, name)!r}: must be {low} to {high}")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValueError(f"train learning_rate={self.learning_rate!r}: must be above 0 and at most 1")
        if not 0.0 < self.reduce_lr_factor < 1.0:
            raise ValueError(f"train reduce_lr_factor={self.reduce_lr_factor!r}: must be between 0 and 1")
        if not 0.0 <= self.weight_averaging < 1.0:
            # Momentum 1 never moves the average off the untrained weights.
            raise ValueError(f"train weight_averaging={self.weight_averaging!r}: must be in [0, 1)")
        if self.max_clips_per_class is not None and self.max_clips_per_class < 1:
            raise ValueError(f"train max_clips_per_class={self.max_clips_per_class}: must be >= 1 or None")
        for snr in self.stream_snr_db:
            if not (SNR_DB_RANGE[0] <= snr <= SNR_DB_RANGE[1] or snr == CLEAN):
                raise ValueError(
                    f"train stream_snr_db={self.stream_snr_db}: each SNR {SNR_DB_RANGE[0]:g} to "
                    f"{SNR_DB_RANGE[1]:g} dB, or inf for a clean segment"
                )
        if self.stream_validation_minutes > 0 and not self.stream_conditions:
            raise ValueError(
                "train stream_snr_db is empty and stream_clean_segment False: the validation stream "
                "has no segment to play"
            )
        metrics = (
            "accuracy",
            "loss",
            "val_accuracy",
            "val_loss",
            "val_balanced_accuracy",
            "val_stream_score",
            "val_stream_plus_accuracy",
        )
        for name in ("monitor", "reduce_lr_monitor", "stopping_monitor"):
            if name == "stopping_monitor" and self.stopping_monitor is None:
                continue
            if getattr(self, name) not in metrics:
                raise ValueError(f"{name} must be one of {', '.join(metrics)}, got {getattr(self, name)!r}")
        for monitor in (self.monitor, self.reduce_lr_monitor, self.stopping_monitor):
            if (monitor or "").startswith("val_stream") and not self.stream_validation_minutes > 0:
                raise ValueError(f"monitor {monitor} needs stream_validation_minutes > 0")
        if self.stream_validation_minutes < 0 or not self.max_fa_per_hour > 0:
            raise ValueError(
                f"stream_validation_minutes must be >= 0 and max_fa_per_hour > 0, got "
                f"{self.stream_validation_minutes} and {self.max_fa_per_hour}"
            )
        if self.mining_rounds < 0 or self.mining_every < 1 or not 0 <= self.mining_threshold <= 255:
            raise ValueError(
                "mining_rounds must be >= 0, mining_every >= 1 and mining_threshold within 0-255, got "
                f"{self.mining_rounds}, {self.mining_every}, {self.mining_threshold}"
            )
        if self.mining_rounds and not (self.mining_minutes > 0 and self.mining_max_windows > 0):
            raise ValueError("mining needs mining_minutes > 0 and mining_max_windows > 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.learning_rate_schedule not in ("plateau", "cosine"):
            raise ValueError(
                f"learning_rate_schedule must be 'plateau' or 'cosine', got {self.learning_rate_schedule!r}"
            )
        if not 0 <= self.cosine_hold_epochs < self.epochs:
            raise ValueError(
                f"cosine_hold_epochs must be within 0..{self.epochs - 1} (epochs - 1), "
                f"got {self.cosine_hold_epochs}"
            )
        if not 0.0 <= self.focal_gamma <= 10.0:
            raise ValueError(f"focal_gamma must be within 0-10, got {self.focal_gamma}")
        if not 0.0 <= self.time_smoothing < float("inf"):
            raise ValueError(f"time_smoothing must be a number >= 0, got {self.time_smoothing}")
        if self.norm_windows < 0 or (self.norm_windows and not self.weight_averaging):
            raise ValueError(f"norm_windows must be >= 0 and needs weight_averaging, got {self.norm_windows}")
        if not 0.0 <= self.word_head < float("inf"):
            raise ValueError(f"word_head must be a number >= 0, got {self.word_head}")
        for word, weight in self.unknown_word_weights.items():
            if not (isinstance(weight, int | float) and 0.0 < weight < float("inf")):
                raise ValueError(f"unknown_word_weights[{word!r}] must be a positive number, got {weight!r}")
        for name, scale in self.class_weight_scale.items():
            if not (isinstance(scale, int | float) and 0.0 < scale < float("inf")):
                raise ValueError(f"class_weight_scale[{name!r}] must be a positive number, got {scale!r}")

    @property
    def stream_conditions(self) -> list[float]:
        """SNRs of the validation and mining streams' segments, clean (inf) first when asked for."""
        return ([CLEAN] if self.stream_clean_segment else []) + list(self.stream_snr_db)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainSettings:
        # Manifests written before it was removed carry the never-used validation_fraction.
        return from_known_keys(cls, {k: v for k, v in values.items() if k not in RETIRED_KEYS})


@dataclass
class ModelSpec:
    """A registered model: name, classes, frontend, architecture and how to train it."""

    name: str
    classes: list[str]
    frontend: FrontendSettings
    build: Callable[[ModelSpec], keras.Model]
    train: TrainSettings = field(default_factory=TrainSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    detection: DetectionParams = field(default_factory=DetectionParams)
    version: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        # The name becomes a folder, file names and a Keras name scope: "" trained into the models
        # folder itself, "../x" outside it, both failing only at the end.
        if not isinstance(self.name, str) or not SPEC_NAME.fullmatch(self.name):
            raise ValueError(
                f"model name {self.name!r}: letters, digits, _ and - (a letter, digit or _ first), "
                f"at most {MAX_SPEC_NAME} characters"
            )
        if isinstance(self.classes, str) or not all(isinstance(name, str) for name in self.classes):
            raise ValueError(f"model {self.name}: classes is a list of names, got {self.classes!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            # "v2" failed with a bare int() error after every epoch; 1.5 became 1.
            raise ValueError(f"model {self.name}: version is a whole number >= 0, got {self.version!r}")
        twice = sorted({name for name in self.classes if self.classes.count(name) > 1})
        if twice:
            raise ValueError(f"model {self.name}: classes {', '.join(map(repr, twice))} given twice")
        if len(self.classes) < 2:
            raise ValueError(f"model {self.name}: classes must be >= 2 distinct names, got {self.classes}")
        if not any(name not in (UNKNOWN, SILENCE) for name in self.classes):
            raise ValueError(f"model {self.name}: classes {self.classes} name no keyword to spot")
        if self.frontend.sample_rate_hz != SAMPLE_RATE:
            # The data pipeline, the streams and the firmware loop run at 16 kHz.
            raise ValueError(
                f"model {self.name}: fe.sample_rate_hz={self.frontend.sample_rate_hz}; only "
                f"{SAMPLE_RATE} Hz models are supported"
            )
        frames, channels = self.frontend.n_frames, self.frontend.n_channels
        for setting, size, unit in (
            ("time_mask_max_frames", frames, "frames"),
            ("freq_mask_max_channels", channels, "channels"),
        ):
            if getattr(self.augmentation, setting) > size:
                raise ValueError(
                    f"model {self.name}: augmentation {setting}={getattr(self.augmentation, setting)}: "
                    f"the features have {size} {unit}"
                )
        if self.augmentation.warm_up_ms % self.frontend.window_step_ms:
            # Said by the data pipeline only after every clip was decoded.
            raise ValueError(
                f"model {self.name}: augmentation warm_up_ms={self.augmentation.warm_up_ms} must be a "
                f"multiple of the frontend step ({self.frontend.window_step_ms} ms), so the window's "
                "frames line up with a stream's"
            )
        for name in self.train.class_weight_scale:
            if name not in self.classes:
                raise ValueError(
                    f"model {self.name}: class_weight_scale names unknown class {name!r}; "
                    f"classes: {self.classes}"
                )
        if self.train.mining_rounds and UNKNOWN not in self.classes:
            # Mined windows are added as _unknown_: the first round crashed, after epoch 10.
            raise ValueError(
                f"model {self.name}: train mining_rounds={self.train.mining_rounds} adds the windows it "
                f"mines as {UNKNOWN}, which classes lack; add {UNKNOWN} or set mining_rounds=0"
            )
        keywords = [word for word in self.train.unknown_word_weights if word in self.classes]
        if keywords:
            raise ValueError(
                f"model {self.name}: unknown_word_weights names {', '.join(map(repr, keywords))}, a class "
                f"of the model, not an {UNKNOWN} word"
            )

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.frontend.n_frames, self.frontend.n_channels)

    @property
    def keywords(self) -> list[str]:
        """The classes that are real words (not `_unknown_`/`_silence_`)."""
        return [name for name in self.classes if name not in (UNKNOWN, SILENCE)]

    def check_trainable(self) -> None:
        """What only training needs of a spec (a stored spec read back is not refused for it:
        its .tflite holds the parameters it runs with): detection parameters that can detect,
        written into the .tflite when the calibration keeps the spec's."""
        detection = self.detection
        if detection.minimum_count > detection.results_in_window:
            raise ValueError(
                f"model {self.name}: detection minimum_count={detection.minimum_count}, but a "
                f"{detection.average_window_duration_ms} ms window holds at most "
                f"{detection.results_in_window} results at one every {detection.latency_ms} ms; "
                "nothing would ever be detected"
            )
        if detection.volume_gain != int(detection.volume_gain):
            # The part multiplies by an int: 1.5 would be written into the .tflite and act as 1.
            raise ValueError(
                f"model {self.name}: detection volume_gain={detection.volume_gain:g}; the firmware "
                "multiplies the samples by a whole number (0 or 1: none)"
            )

    def build_model(self) -> keras.Model:
        """`build(self)`, checked: one input of the frontend's (frames, channels) and one output of a
        score per class, or a ValueError saying what `build` returned (before any training)."""
        from microspeech.models.registry import ModelFileError, where_in_file

        try:
            model = self.build(self)
        except Exception as error:  # the user's code: name its file and line, not a traceback
            source = Path(getattr(getattr(self.build, "__code__", None), "co_filename", "<build>"))
            raise ModelFileError(
                f"{where_in_file(source.resolve(), error)}: build() of model {self.name!r} raised "
                f"{type(error).__name__}: {error}"
            ) from error
        expected_in, expected_out = (None, *self.input_shape), (None, len(self.classes))
        try:
            got_in, got_out = tuple(model.input_shape), tuple(model.output_shape)
        except (AttributeError, TypeError, ValueError) as error:
            raise ValueError(
                f"model {self.name!r}: build() must return a Keras model with a defined input "
                f"(keras.Input(shape={self.input_shape})): {error}"
            ) from None
        if got_in != expected_in:
            raise ValueError(
                f"model {self.name!r}: build() returned a model whose input is {got_in}; the frontend "
                f"gives {expected_in} ({self.frontend.n_frames} frames x {self.frontend.n_channels} "
                "channels, from the spec's frontend settings)"
            )
        if got_out != expected_out:
            raise ValueError(
                f"model {self.name!r}: build() returned a model whose output is {got_out}; expected "
                f"{expected_out}, one score per class ({', '.join(self.classes)})"
            )
        ending = _final_activation(model)
        if ending != "softmax":
            # Logits trained to a loss of 0 learning nothing (the loss takes scores in [0, 1]), and
            # the detector's 0-255 threshold reads each output as a probability.
            raise ValueError(
                f"model {self.name!r}: build() returned a model whose last layer "
                f"({model.layers[-1].name}) ends in {ending}, not a softmax; end it with "
                "Dense(len(spec.classes), activation='softmax')"
            )
        return model

    def training_target(self) -> TrainingTarget:
        """What the data pipeline needs of this spec: classes, frontend, augmentation, quotas."""
        from microspeech.data.pipeline import TrainingTarget

        return TrainingTarget(
            name=self.name,
            classes=list(self.classes),
            frontend=self.frontend,
            augmentation=self.augmentation,
            unknown_ratio=self.train.unknown_ratio,
            silence_ratio=self.train.silence_ratio,
            unknown_word_weights=dict(self.train.unknown_word_weights),
            max_clips_per_class=self.train.max_clips_per_class,
        )

    def parameters(self) -> dict[str, Any]:
        """What the spec puts in the .tflite's SL_PARAMSv1: name, version, classes, detection, frontend."""
        return {
            "name": self.name,
            "version": int(self.version),
            "classes": list(self.classes),
            **self.detection.to_dict(),
            **self.frontend.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything but the builder (code, which the registry finds by name)."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "classes": list(self.classes),
            "frontend": self.frontend.to_dict(),
            "train": self.train.to_dict(),
            "augmentation": self.augmentation.to_dict(),
            "detection": self.detection.to_dict(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], build: Callable[[ModelSpec], keras.Model]) -> ModelSpec:
        from microspeech.frontend import FrontendSettings

        return cls(
            name=values["name"],
            version=int(values.get("version", 1)),
            description=values.get("description", ""),
            classes=list(values["classes"]),
            frontend=FrontendSettings.from_dict(values["frontend"]),
            build=build,
            train=TrainSettings.from_dict(values.get("train", {})),
            augmentation=AugmentationSettings.from_dict(values.get("augmentation", {})),
            detection=DetectionParams.from_dict(values.get("detection", {})),
        )


# Layers that pass their input's values through unchanged at inference: the softmax may be before them.
_VALUE_KEEPING = frozenset({"Reshape", "Flatten", "Dropout", "Identity", "Permute"})


def _final_activation(model: keras.Model) -> str:
    """The activation the model's output comes out of: a Softmax layer, or a layer's `activation`
    (Dense, Conv2D, Activation; TensorFlow's softmax is named softmax_v2), looking through layers
    that keep their input's values and into a nested model's last layer; "softmax" or the name
    found ("no activation" for a layer that has none)."""
    for layer in reversed(model.layers):
        if hasattr(layer, "layers") and layer.layers:  # a nested Sequential or Model head
            return _final_activation(layer)
        if type(layer).__name__ in _VALUE_KEEPING:
            continue
        if type(layer).__name__ == "Softmax":
            return "softmax"
        name = getattr(getattr(layer, "activation", None), "__name__", None)
        if not isinstance(name, str):
            return "no activation"
        return "softmax" if name in ("softmax", "softmax_v2") else name
    return "no activation"
