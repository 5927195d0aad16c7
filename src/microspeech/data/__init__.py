"""Datasets: listing clips (path, word, speaker, split), reading them, augmenting them.

    from microspeech.data import load_dataset
    dataset = load_dataset("synthetic")          # or "speech_commands_v2", or a folder path
    clip = dataset.split("train")[0]
    audio = dataset.read(clip)                   # int16, 16 kHz mono, at most one second
"""

from microspeech.data import datasets as _datasets  # noqa: F401  (registers the named datasets)
from microspeech.data.clips import SPLITS, AudioDataset, Clip, FileIssue
from microspeech.data.registry import list_datasets, load_dataset, load_datasets, register_dataset
from microspeech.lazy import lazy_dir


def __getattr__(name: str):
    # The feature pipeline pulls in numba kernels: loaded on first use.
    if name in ("make_eval_set", "TrainingPipeline", "TrainingTarget"):
        from microspeech.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__dir__ = lazy_dir(globals(), ("make_eval_set", "TrainingPipeline", "TrainingTarget"))


__all__ = [
    "SPLITS",
    "AudioDataset",
    "Clip",
    "FileIssue",
    "TrainingPipeline",
    "TrainingTarget",
    "list_datasets",
    "load_dataset",
    "load_datasets",
    "make_eval_set",
    "register_dataset",
]
