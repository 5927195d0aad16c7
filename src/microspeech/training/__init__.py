"""Training, checkpoints and quantization to a full-int8 .tflite.

from microspeech.training import train_model, resolve_model
artifacts = train_model("tflite_micro_speech", dataset="synthetic", seed=0)
resolve_model("tflite_micro_speech").tflite_path
"""

from microspeech.training.artifacts import ModelArtifacts, resolve_model
from microspeech.training.trainer import train_model

__all__ = ["ModelArtifacts", "resolve_model", "train_model"]
