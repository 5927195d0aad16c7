"""Decode every file of a dataset and list each one that cannot be used, and why."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from microspeech.audio import AudioError
from microspeech.data.clips import AudioDataset, FileIssue


def verify_dataset(
    dataset: AudioDataset, *, on_progress: Callable[[int], None] | None = None
) -> list[FileIssue]:
    """Every unusable file: those skipped while indexing, plus clips and noise that fail to decode
    or hold only digital zeros. Files that reading converts are not listed (see `dataset.converted`).
    """
    problems = list(dataset.skipped)
    checks = [(clip.path, dataset.read, clip) for clip in dataset.clips]
    checks += [(path, dataset.read_noise, path) for path in dataset.noise_paths]
    for done, (path, reader, item) in enumerate(checks, 1):
        try:
            audio = reader(item)
        except AudioError as error:
            problems.append(FileIssue(path, str(error).removeprefix(f"{path}: "), skipped=True))
        else:
            if not np.any(audio):
                problems.append(FileIssue(path, "all samples are zero (digital silence)", skipped=True))
        if on_progress is not None:
            on_progress(done)
    return problems
