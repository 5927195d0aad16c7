"""Model specs: a registry and one module per architecture."""

from microspeech.models.registry import get_model_spec, list_models, register_model
from microspeech.models.spec import SILENCE, UNKNOWN, AugmentationSettings, ModelSpec, TrainSettings

__all__ = [
    "SILENCE",
    "UNKNOWN",
    "AugmentationSettings",
    "ModelSpec",
    "TrainSettings",
    "get_model_spec",
    "list_models",
    "register_model",
]
