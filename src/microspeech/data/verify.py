"""Decode every file of a dataset and list each one that cannot be used, and why."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from microspeech.audio import AudioError, decode_audio
from microspeech.data.clips import AudioDataset, FileIssue


def verify_dataset(
    dataset: AudioDataset, *, on_progress: Callable[[int], None] | None = None
) -> list[FileIssue]:
    """Every unusable file (`skipped`): those skipped while indexing, plus clips and noise that fail
    to decode or hold only digital zeros; and every file whose samples clip when read (usable, not
    skipped: float data past full scale, which only decoding finds). Other conversions are not
    listed (see `dataset.converted`).
    """
    problems = list(dataset.skipped)
    paths = [clip.path for clip in dataset.clips] + list(dataset.noise_paths)
    for done, path in enumerate(paths, 1):
        try:
            decoded = decode_audio(path)
        except AudioError as error:
            problems.append(FileIssue(path, str(error).removeprefix(f"{path}: "), skipped=True))
        else:
            if not np.any(decoded.samples):
                problems.append(FileIssue(path, "all samples are zero (digital silence)", skipped=True))
            clipped = [note for note in decoded.conversions if "beyond full scale clipped" in note]
            if clipped:
                problems.append(FileIssue(path, clipped[0], skipped=False))
        if on_progress is not None:
            on_progress(done)
    return problems
