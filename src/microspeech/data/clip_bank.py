"""Decoded, trimmed clips back to back in one int16 buffer: in memory, or on disk and memory-mapped.

A training run reads every clip it can use once (decode + MLTK's trim). At the full Speech
Commands size that is ~85k clips and ~1.4 GB of int16: the buffer is filled in place (never a
list of arrays plus a concatenated copy), and `TrainingPipeline` keeps it in a store under the
cache folder, keyed by the clips' paths, sizes and modification times, so the next run with the
same clips maps it instead of decoding again (its pages stay the kernel's to evict).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microspeech.audio import active_rms
from microspeech.files import COMPLETE_MARKER, LockedError, atomic_directory, exclusive_lock, text_bytes

__all__ = ["ClipBank", "bank_store", "trim", "trim_bounds"]

# librosa.effects.trim defaults (frame, hop, amplitude floor), which MLTK trims with.
TRIM_FRAME = 2048
TRIM_HOP = 512
TRIM_AMPLITUDE_FLOOR = 1e-5


def trim_bounds(samples: np.ndarray, threshold_db: float = 20.0) -> tuple[int, int]:
    """[start, end) of the part louder than `threshold_db` below the loudest frame, as MLTK trims.

    Exactly `librosa.effects.trim(samples / 32768, top_db=threshold_db)` (librosa 0.11's
    defaults, which MLTK's generator uses): RMS over 2048-sample frames centred every 512
    samples with zero padding, in dB against the loudest frame (amplitudes floored at 1e-5);
    a frame counts if it is strictly above -threshold_db; the bounds are the first loud
    frame's centre and one hop after the last one's. The wide centred frames keep a margin of
    up to 64 ms around the word, so weak onsets and endings (the n of "no", the t of "left")
    survive; an all-zero clip keeps its full length.
    """
    n = samples.shape[0]
    if n == 0:
        return 0, 0
    padded = np.pad(samples.astype(np.float64) / 32768.0, TRIM_FRAME // 2)
    energy = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.arange(1 + (padded.shape[0] - TRIM_FRAME) // TRIM_HOP) * TRIM_HOP
    rms = np.sqrt(np.maximum(energy[starts + TRIM_FRAME] - energy[starts], 0.0) / TRIM_FRAME)
    level_db = 20.0 * np.log10(np.maximum(rms, TRIM_AMPLITUDE_FLOOR))
    loud = np.flatnonzero(level_db - level_db.max() > -threshold_db)
    return int(loud[0] * TRIM_HOP), int(min(n, (loud[-1] + 1) * TRIM_HOP))


def trim(samples: np.ndarray, threshold_db: float = 20.0) -> np.ndarray:
    start, end = trim_bounds(samples, threshold_db)
    return samples[start:end]


# Bump when decoding or trimming changes: stores of the old format are then never reused.
BANK_FORMAT = 1
BANK_AUDIO = "audio.int16"
BANK_INDEX = "index.npz"
KEPT_STORES = 3  # the most recently used stores kept in a cache folder; older ones are removed


@dataclass
class ClipBank:
    """Decoded (and optionally trimmed) clips, back to back in one int16 buffer."""

    audio: np.ndarray  # int16, all clips concatenated (possibly a read-only memory map)
    starts: np.ndarray  # int64 per clip
    lengths: np.ndarray  # int64 per clip
    levels: np.ndarray  # float64 per clip: active-speech RMS (int16 units), for mixing at an SNR

    @classmethod
    def from_arrays(cls, clips: Sequence[np.ndarray], max_length: int) -> ClipBank:
        return cls.read(lambda clip: np.asarray(clip, dtype=np.int16), clips, max_length, None)

    @classmethod
    def read(
        cls,
        read: Callable[[object], np.ndarray],
        items: Sequence[object],
        max_length: int,
        threshold_db: float | None,
        on_item: Callable[[], None] | None = None,
        *,
        store: Path | None = None,
    ) -> ClipBank:
        """Read each item with `read`, trim at `threshold_db` (None: keep as is), keep <= max_length.

        `store`: a folder to keep the bank in (see `bank_store`): filled once, then memory-mapped;
        a complete store is mapped without reading anything.
        """
        capacity = max(1, len(items) * max_length)
        if store is None:
            # Anonymous memory reserved at the upper bound: only the pages written become resident,
            # so the bank is filled in place, with no list of arrays and no concatenated copy.
            buffer = mmap.mmap(-1, capacity * 2)
            audio = np.frombuffer(buffer, np.int16)
            starts, lengths, levels = _fill(audio, read, items, max_length, threshold_db, on_item)
            return cls(audio[: int(lengths.sum())], starts, lengths, levels)
        for attempt in (1, 2):
            with atomic_directory(store) as building:
                if building is not None:
                    _fill_store(building, read, items, max_length, threshold_db, on_item, capacity)
            _prune_stores(store)
            try:
                return cls.open(store)
            except FileNotFoundError:
                # Another run pruned the store between its check and this map: build it again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def open(cls, store: Path) -> ClipBank:
        """The bank kept in `store`, memory-mapped read-only."""
        with np.load(store / BANK_INDEX) as index:
            starts, lengths, levels = index["starts"], index["lengths"], index["levels"]
        total = int(lengths.sum())
        audio = (
            np.asarray(np.memmap(store / BANK_AUDIO, np.int16, "r", shape=(total,)))
            if total
            else (np.zeros(0, np.int16))
        )
        os.utime(store)  # most recently used: kept by `_prune_stores`
        return cls(audio, starts, lengths, levels)

    def __len__(self) -> int:
        return len(self.lengths)


def _fill_store(
    building: Path,
    read: Callable[[object], np.ndarray],
    items: Sequence[object],
    max_length: int,
    threshold_db: float | None,
    on_item: Callable[[], None] | None,
    capacity: int,
) -> None:
    path = building / BANK_AUDIO
    with open(path, "wb") as file:
        file.truncate(capacity * 2)  # sparse: blocks appear as they are written
    audio = np.memmap(path, np.int16, "r+", shape=(capacity,))
    starts, lengths, levels = _fill(audio, read, items, max_length, threshold_db, on_item)
    audio.flush()
    del audio
    os.truncate(path, int(lengths.sum()) * 2)
    np.savez(building / BANK_INDEX, starts=starts, lengths=lengths, levels=levels)


def _fill(
    audio: np.ndarray,
    read: Callable[[object], np.ndarray],
    items: Sequence[object],
    max_length: int,
    threshold_db: float | None,
    on_item: Callable[[], None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    count = len(items)
    starts, lengths, levels = np.zeros(count, np.int64), np.zeros(count, np.int64), np.zeros(count)
    position = 0
    for i, item in enumerate(items):
        samples = read(item)
        if threshold_db is not None:
            samples = trim(samples, threshold_db)
        samples = np.asarray(samples[:max_length], dtype=np.int16)
        audio[position : position + len(samples)] = samples
        starts[i], lengths[i], levels[i] = position, len(samples), active_rms(samples)
        position += len(samples)
        if on_item is not None:
            on_item()
    return starts, lengths, levels


def bank_store(cache: Path, paths: Iterable[Path], max_length: int, threshold_db: float | None) -> Path:
    """The store folder for these clip files read this way: a digest of every path, size and
    modification time (a changed or replaced file makes a new store), the length and the trim."""
    digest = hashlib.sha256(f"clip bank v{BANK_FORMAT}\t{max_length}\t{threshold_db}\n".encode())
    for path in paths:
        status = path.stat()
        digest.update(text_bytes(f"{path}\t{status.st_size}\t{status.st_mtime_ns}\n"))
    return cache / digest.hexdigest()[:32]


def _prune_stores(keep: Path) -> None:
    """Remove all but the KEPT_STORES most recently used complete stores next to `keep`.

    A process still mapping a removed store keeps reading it (the file lives until unmapped).
    """
    stores = [
        entry
        for entry in keep.parent.iterdir()
        if entry.is_dir() and (entry / COMPLETE_MARKER).exists() and entry != keep
    ]
    stores.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    for old in stores[KEPT_STORES - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
        old.with_name(old.name + ".lock").unlink(missing_ok=True)
    # A build killed mid-write (SIGKILL, a power cut) leaves `<key>.partial`, up to 1.4 GB of the
    # full dataset, until that very dataset is used again: gone once no process builds it.
    for partial in keep.parent.glob("*.partial"):
        target = partial.with_name(partial.name.removesuffix(".partial"))
        if partial.is_dir() and target != keep:
            lock = target.with_name(target.name + ".lock")
            try:
                with exclusive_lock(lock, wait=False):
                    shutil.rmtree(partial, ignore_errors=True)
                    lock.unlink(missing_ok=True)  # as atomic_directory does: a later holder takes a new one
            except LockedError:
                continue  # another process is building it now
