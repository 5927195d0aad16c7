"""What a dataset is: a list of clips (path, word, speaker, split), background noise, and how to read them.

Indexing probes every audio file's header (cheap: about the cost of decoding a
one-second clip) so that files that cannot be used are skipped at load time with a
warning naming them, instead of failing in the middle of training.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from microspeech.audio import (
    SAMPLE_RATE,
    AudioError,
    check_audio_header,
    check_file_readable,
    format_conversions,
    loudest_window,
    read_audio,
    repaired_wav,
    soundfile_reason,
    truncated_wav_frames,
    truncation_note,
    unfinished_note,
)
from microspeech.labels import SILENCE

logger = logging.getLogger("microspeech.data")

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")
# Audio, but not what a dataset folder is indexed from (only WAV and FLAC headers are probed fast).
OTHER_AUDIO_EXTENSIONS: tuple[str, ...] = (".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff")
CLIP_SAMPLES = SAMPLE_RATE  # every word clip is at most one second
# A background-noise recording shorter than this is a scrap, never mixed in (data.streams, verify).
MIN_NOISE_SAMPLES = SAMPLE_RATE // 4


@dataclass(frozen=True)
class Clip:
    """One labelled recording. `word` is what was said (or a folder name such as `_silence_`)."""

    path: Path
    word: str
    speaker_id: str
    split: str

    def __post_init__(self) -> None:
        # A path given as a string (a user's own list of clips) failed late, deep in the pipeline.
        if isinstance(self.path, str) and self.path:
            object.__setattr__(self, "path", Path(self.path))
        if not isinstance(self.path, Path):
            raise ValueError(f"clip path {self.path!r}: expected a file path")
        if self.split not in SPLITS:
            raise ValueError(f"{self.path}: split must be one of {', '.join(SPLITS)}, got {self.split!r}")


@dataclass(frozen=True)
class FileIssue:
    """A file that was skipped (unusable) or will be converted when read."""

    path: Path
    problem: str
    skipped: bool


@dataclass(frozen=True)
class ProbeResult:
    """What a header says about an audio file, and how reading it will convert it."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str
    declared_frames: int | None = None  # what a WAV header promises, when more than is present
    unfinished: bool = False  # a WAV header whose data size is 0: read to the file's end

    def conversions(self, clip_samples: int | None) -> list[str]:
        """What reading will change; `clip_samples` None for recordings of any length (noise)."""
        notes = format_conversions(self.sample_rate, self.channels, self.subtype)
        if self.declared_frames is not None:
            notes.append(truncation_note(self.frames, self.declared_frames))
        if self.unfinished:
            notes.append(unfinished_note(self.frames))
        duration = self.frames / self.sample_rate
        if clip_samples is not None and duration * SAMPLE_RATE > clip_samples:
            notes.append(f"{duration:.2f} s long: its loudest {clip_samples / SAMPLE_RATE:g} s is used")
        return notes


def probe_audio(path: Path) -> ProbeResult:
    """Read an audio file's header; AudioError naming the file when it is not usable audio."""
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        if path.suffix.lower() in OTHER_AUDIO_EXTENSIONS:  # `features` and classify_audio read these
            raise AudioError(
                f"{path}: a {path.suffix.lower()} file; datasets take {' or '.join(AUDIO_EXTENSIONS)} "
                "clips (convert it, e.g. with sox or ffmpeg)"
            )
        raise AudioError(f"{path}: not an audio file (expected {' or '.join(AUDIO_EXTENSIONS)})")
    check_file_readable(path)  # "permission denied", not libsndfile's "System error"
    try:
        size = path.stat().st_size
    except OSError as error:
        raise AudioError(f"{path}: cannot be read ({error})") from error
    if size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        info = sf.info(os.fsencode(path))  # bytes: soundfile refuses a str name that is not UTF-8
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not a readable audio file ({soundfile_reason(error)})") from error
    unfinished = False
    if (repaired := repaired_wav(path, info)) is not None:
        info, unfinished = sf.info(io.BytesIO(repaired)), True  # read to the file's end, as decoding does
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    check_audio_header(str(path), info.samplerate, info.channels, info.frames)
    truncated = None if unfinished else truncated_wav_frames(path, info)
    return ProbeResult(info.samplerate, info.channels, info.frames, info.subtype, truncated, unfinished)


@dataclass
class AudioDataset:
    """Clips plus background noise, read as 16 kHz mono int16.

    `issues` lists files that were skipped (unusable) or that reading converts
    (other rate, stereo, other sample format, longer than one second).
    """

    name: str
    root: Path
    clips: list[Clip]
    noise_paths: list[Path] = field(default_factory=list)
    issues: list[FileIssue] = field(default_factory=list)
    layout: str = "folder"
    clip_samples: int = CLIP_SAMPLES
    # Per split, what its list file names that was ignored (see data.splits.split_list_problems).
    split_notes: dict[str, str] = field(default_factory=dict)
    # A combined dataset (see `combine`): the datasets it was made of, in order; empty otherwise.
    parts: list[AudioDataset] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Strings are paths to a user building a dataset by hand; they failed late, in the pipeline.
        self.root = Path(self.root)
        self.noise_paths = [Path(path) for path in self.noise_paths]

    @classmethod
    def combine(cls, datasets: Sequence[AudioDataset]) -> AudioDataset:
        """One dataset of several: every clip keeps its own file (its own root) and its own split,
        background noise from all. Named `A+B`; its root is the folder the roots share."""
        if not datasets:
            raise ValueError("combine needs at least one dataset")
        if len(datasets) == 1:
            return datasets[0]
        samples = {dataset.clip_samples for dataset in datasets}
        if len(samples) > 1:
            raise ValueError(f"datasets with different clip lengths cannot be combined: {sorted(samples)}")
        roots = [dataset.root.resolve() for dataset in datasets]
        if len(set(roots)) < len(roots):
            raise ValueError(f"a dataset is given twice: {', '.join(d.name for d in datasets)}")
        _refuse_shared_folders(datasets)
        return cls(
            name="+".join(dataset.name for dataset in datasets),
            root=Path(os.path.commonpath(roots)),
            clips=[clip for dataset in datasets for clip in dataset.clips],
            noise_paths=[path for dataset in datasets for path in dataset.noise_paths],
            issues=[issue for dataset in datasets for issue in dataset.issues],
            layout="combined",
            clip_samples=samples.pop(),
            split_notes={
                split: "; ".join(f"{d.name}: {n[split]}" for d in datasets if split in (n := d.split_notes))
                for split in SPLITS
                if any(split in d.split_notes for d in datasets)
            },
            parts=list(datasets),
        )

    @property
    def words(self) -> list[str]:
        return sorted({clip.word for clip in self.clips})

    @property
    def skipped(self) -> list[FileIssue]:
        return [issue for issue in self.issues if issue.skipped]

    @property
    def converted(self) -> list[FileIssue]:
        return [issue for issue in self.issues if not issue.skipped]

    def split(self, name: str) -> list[Clip]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return [clip for clip in self.clips if clip.split == name]

    def read(self, clip: Clip) -> np.ndarray:
        """The clip as 16 kHz mono int16, not padded; an over-long clip gives its loudest second."""
        return loudest_window(read_audio(clip.path), self.clip_samples)

    def read_noise(self, path: Path) -> np.ndarray:
        """A whole background-noise recording as 16 kHz mono int16."""
        return read_audio(path)

    def speakers(self, split: str | None = None) -> set[str]:
        """The speakers of `split`'s clips (all splits by default); the `_silence_` folder's
        recordings (the official test set's) have none: their file names are not speakers."""
        clips = self.clips if split is None else self.split(split)
        return {clip.speaker_id for clip in clips if clip.word != SILENCE}

    def counts(self) -> dict[str, dict[str, int]]:
        """Clips per word per split: {word: {split: n}}."""
        table: dict[str, Counter] = {word: Counter() for word in self.words}
        for clip in self.clips:
            table[clip.word][clip.split] += 1
        return {word: {split: counter[split] for split in SPLITS} for word, counter in table.items()}

    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split} {len(self.split(split))}" for split in SPLITS)
        return (
            f"AudioDataset({self.name!r}, {len(self.clips)} clips: {sizes}; {len(self.words)} words, "
            f"{len(self.noise_paths)} noise files, {len(self.skipped)} skipped)"
        )


def report_issues(issues: Iterable[FileIssue], source: str) -> None:
    """Warn about each skipped file by name, then the count (conversions are only logged at debug)."""
    skipped = 0
    for issue in issues:
        if issue.skipped:
            skipped += 1
            logger.warning("skipped %s: %s", issue.path, issue.problem)
        else:
            logger.debug("%s: %s", issue.path, issue.problem)
    if skipped:
        logger.warning("%s: %d unusable file(s) skipped", source, skipped)


def _refuse_shared_folders(datasets: Sequence[AudioDataset]) -> None:
    """ValueError when two datasets read clips from one folder (a word folder linked into both)
    or one file (a clip hard-linked or symlinked into both): its clips would count twice, and a
    clip could be in one part's training split and the other's test split."""
    owner: dict[Path, AudioDataset] = {}
    for dataset in datasets:
        folders = {clip.path.parent for clip in dataset.clips}
        for folder in sorted({path.resolve() for path in folders}):
            first = owner.setdefault(folder, dataset)
            if first is not dataset:
                raise ValueError(
                    f"datasets {first.root} and {dataset.root} both read the clips of {folder} "
                    "(a folder linked into both): give its clips to one dataset only"
                )
    # One file under two names (a hard link, or a symlink to the file): the same device and inode.
    files: dict[tuple[int, int], tuple[AudioDataset, Path]] = {}
    for dataset in datasets:
        for clip in dataset.clips:
            try:
                status = clip.path.stat()
            except OSError:  # gone since the scan: reading it reports that, naming the file
                continue
            if not status.st_ino:  # a filesystem without inode numbers: nothing to compare
                continue
            first, first_path = files.setdefault((status.st_dev, status.st_ino), (dataset, clip.path))
            if first is not dataset:
                raise ValueError(
                    f"datasets {first.root} and {dataset.root} both hold the file {clip.path.resolve()} "
                    f"(as {first_path} and {clip.path}: links to one file): give each clip to one "
                    "dataset only"
                )
