"""Model specs: a registry (package modules and the user's spec files), one module per
architecture, and the resolver for trained models."""

from microspeech.models.artifacts import ModelArtifacts, ModelResolutionError, ResolvedModel, resolve_model
from microspeech.models.registry import (
    ModelFileError,
    get_model_spec,
    list_models,
    register_model,
    resolve_model_spec,
    with_keywords,
)
from microspeech.models.spec import ModelSpec, TrainSettings

__all__ = [
    "ModelArtifacts",
    "ModelFileError",
    "ModelResolutionError",
    "ModelSpec",
    "ResolvedModel",
    "TrainSettings",
    "get_model_spec",
    "list_models",
    "register_model",
    "resolve_model",
    "resolve_model_spec",
    "with_keywords",
]
