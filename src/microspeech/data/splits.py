"""Which split a clip belongs to: official lists, or TensorFlow's speaker hash rule.

The hash rule is the one in TensorFlow's speech_commands `input_data.which_set`: the
file name up to `_nohash_` names the speaker, its SHA-1 picks a stable percentage, so
all clips of one speaker land in the same split and adding files never moves old ones.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

from microspeech.data.clips import AUDIO_EXTENSIONS
from microspeech.files import text_bytes

NOHASH = "_nohash_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
# TensorFlow's constant: the hash is folded into this many buckets.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def strip_audio_extensions(filename: str) -> str:
    """`a_nohash_0.wav.wav` -> `a_nohash_0` (the official test set doubles the extension)."""
    name = filename
    while True:
        lowered = name.lower()
        suffix = next((ext for ext in AUDIO_EXTENSIONS if lowered.endswith(ext)), None)
        if suffix is None or len(name) == len(suffix):
            return name
        name = name[: -len(suffix)]


def speaker_from_filename(filename: str, *, word_prefixed: bool = False) -> str:
    """The speaker id in `<speaker>_nohash_<n>.wav`; the file stem when there is no `_nohash_`.

    `word_prefixed` handles the test set's `_unknown_` names, `<word>_<speaker>_nohash_<n>.wav.wav`.
    """
    # One name, one speaker: macOS stores "André" decomposed (NFD), other systems composed (NFC),
    # and the two hashed to different splits.
    stem = unicodedata.normalize("NFC", strip_audio_extensions(filename))
    if NOHASH not in stem:
        return stem
    speaker = stem.split(NOHASH, 1)[0]
    if word_prefixed and word_prefix(filename) is not None:
        speaker = speaker.split("_", 1)[1]
    return speaker


def word_prefix(filename: str) -> str | None:
    """The word a test-set `_unknown_` name starts with (`backward_0c540988_nohash_0.wav.wav` ->
    `backward`); None for a name without one (`0c540988_nohash_0.wav`)."""
    stem = strip_audio_extensions(filename)
    if NOHASH not in stem:
        return None
    before = stem.split(NOHASH, 1)[0]
    return before.split("_", 1)[0] if "_" in before else None


def hash_split(speaker_id: str, validation_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """TensorFlow's rule: sha1(speaker) -> percentage -> validation | test | train."""
    # A name that is not UTF-8 is hashed as its bytes; every UTF-8 name as TensorFlow hashes it.
    digest = int(hashlib.sha1(text_bytes(speaker_id)).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percent:
        return "validation"
    if percentage < validation_percent + test_percent:
        return "test"
    return "train"


def _split_list_paths(root: Path) -> dict[str, Path]:
    return {"validation": root / VALIDATION_LIST, "test": root / TESTING_LIST}


def _list_entries(path: Path) -> list[str]:
    try:
        # utf-8-sig: a list saved by Notepad or PowerShell starts with a BOM, which hid its first entry.
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(f"{path}: cannot read the split list ({reason})") from None
    entries = (line.strip().replace("\\", "/").removeprefix("./") for line in lines)
    return [entry for entry in entries if entry]


def read_split_lists(root: Path) -> dict[str, str] | None:
    """{"word/file.wav": split} from the official lists, or None when the folder has none.

    Lists may name files that are absent (a partial copy): they match nothing, and
    `split_list_problems` says how many.
    """
    lists = _split_list_paths(root)
    if not any(path.is_file() for path in lists.values()):
        return None
    assignment: dict[str, str] = {}
    for split, path in lists.items():
        if path.is_file():
            assignment.update(dict.fromkeys(_list_entries(path), split))
    return assignment


def split_list_problems(root: Path, present: set[str]) -> dict[str, str]:
    """Per split, a one-line note on its list's ignored entries (none: the list is sound).

    `present` holds the usable clips as "word/file.wav". An entry is ignored when it points
    outside the dataset folder (absolute, or through `..`) or names no usable clip there.
    """
    problems: dict[str, str] = {}
    for split, path in _split_list_paths(root).items():
        if not path.is_file():
            continue
        entries = _list_entries(path)
        outside = [e for e in entries if e.startswith("/") or ":" in e or ".." in e.split("/")]
        ignored = present | set(outside)
        missing = [e for e in entries if e not in ignored]
        found = []
        if outside:
            found.append(f"{len(outside)} point outside the dataset folder (e.g. {outside[0]!r})")
        if missing:
            found.append(f"{len(missing)} name no usable clip in the dataset (e.g. {missing[0]!r})")
        if found:
            found_text = " and ".join(found)
            problems[split] = f"{path}: of its {len(entries)} entries, {found_text}; they are ignored"
    return problems
