"""Model specs: a registry, one module per architecture, and the resolver for trained models."""

from microspeech.models.artifacts import ModelArtifacts, ModelResolutionError, ResolvedModel, resolve_model
from microspeech.models.registry import get_model_spec, list_models, register_model
from microspeech.models.spec import ModelSpec, TrainSettings

__all__ = [
    "ModelArtifacts",
    "ModelResolutionError",
    "ModelSpec",
    "ResolvedModel",
    "TrainSettings",
    "get_model_spec",
    "list_models",
    "register_model",
    "resolve_model",
]
