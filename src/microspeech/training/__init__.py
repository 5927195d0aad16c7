"""Training: the trainer, checkpoints, stream-based checkpoint choice and hard-negative mining.

    from microspeech.training import train_model
    from microspeech.models import resolve_model
    artifacts = train_model("tflite_micro_speech", dataset="synthetic", seed=0)
    resolve_model("tflite_micro_speech").tflite_path
"""

from microspeech.training.trainer import train_model

__all__ = ["train_model"]
