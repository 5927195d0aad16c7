"""Index a folder of word folders: `<root>/<word>/*.wav|*.flac` (+ `_background_noise_/`).

One indexer serves the three on-disk layouts:
- the Speech Commands v0.02 tree (official `validation_list.txt`/`testing_list.txt`),
- the official test-set tree (`_unknown_`, `_silence_`; every clip is split "test"),
- a user's own folder (optional lists, otherwise TensorFlow's speaker hash split).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from microspeech.audio import SAMPLE_RATE, AudioError
from microspeech.data.clips import (
    AUDIO_EXTENSIONS,
    CLIP_SAMPLES,
    MIN_NOISE_SAMPLES,
    OTHER_AUDIO_EXTENSIONS,
    AudioDataset,
    Clip,
    FileIssue,
    logger,
    probe_audio,
    report_issues,
)
from microspeech.data.splits import (
    NOHASH,
    hash_split,
    read_split_lists,
    speaker_from_filename,
    split_list_problems,
    strip_audio_extensions,
    word_prefix,
)
from microspeech.labels import BACKGROUND_NOISE_DIR

UNKNOWN_DIR = "_unknown_"
SILENCE_DIR = "_silence_"

LAYOUT_SPEECH_COMMANDS = "speech_commands"
LAYOUT_TEST_SET = "test_set"
LAYOUT_FOLDER = "folder"


def spoken_word(clip: Clip | None) -> str:
    """What a clip says: its word (for a test-set `_unknown_` file, the word its name starts
    with), and `_silence_` for silence made from noise (no clip)."""
    if clip is None:
        return SILENCE_DIR
    if clip.word == UNKNOWN_DIR:  # a Clip made by hand: the indexer's reading of its name
        return _said_in_unknown(clip.path, clip.speaker_id)
    return clip.word


def _said_in_unknown(path: Path, speaker: str) -> str:
    """The word an `_unknown_` file's name starts with, where the speaker rule took it off the
    speaker (<word>_<speaker>_nohash_<n>); else `_unknown_`."""
    before = unicodedata.normalize("NFC", strip_audio_extensions(path.name)).split(NOHASH, 1)[0]
    prefix = word_prefix(path.name)
    if prefix and before != speaker:  # "" from a name starting with "_": no word
        return prefix
    return UNKNOWN_DIR


def _unknown_speakers(clips: list[tuple[Path, str]], *, always_prefixed: bool) -> dict[Path, str]:
    """The speaker of each `_unknown_` clip. The official test set names them
    <word>_<speaker>_nohash_<n>; a user's folder may copy that naming (other Speech Commands
    words gathered into `_unknown_`) or not (mary_ann_nohash_0.wav is the speaker mary_ann). The
    word is taken off where the whole name is no speaker of another folder and the rest is one,
    or follows two words there; else the whole name is the speaker. A wrong guess joins two
    people in one split; it never puts one person on both sides."""
    unknown = [path for path, word in clips if word == UNKNOWN_DIR]
    if always_prefixed:
        return {path: speaker_from_filename(path.name, word_prefixed=True) for path in unknown}
    elsewhere = {speaker_from_filename(path.name) for path, word in clips if word != UNKNOWN_DIR}
    wholes = {path: speaker_from_filename(path.name) for path in unknown}
    # (word, rest) of each name that may start with a word: backward_0c540988 -> backward, 0c540988.
    split_names = {
        path: (str(word_prefix(path.name)), whole.split("_", 1)[1])
        for path, whole in wholes.items()
        if word_prefix(path.name) is not None and "_" in whole
    }
    prefixes_per_rest: dict[str, set[str]] = {}
    for prefix, rest in split_names.values():
        prefixes_per_rest.setdefault(rest, set()).add(prefix)
    speakers = {}
    for path, whole in wholes.items():
        rest = split_names[path][1] if path in split_names else None
        prefixed = (
            rest is not None
            and whole not in elsewhere  # yes/mary_eve_nohash_0.wav: the same mary_eve, not "eve"
            and (rest in elsewhere or len(prefixes_per_rest[rest]) > 1)
        )
        speakers[path] = rest if prefixed else whole
    return speakers


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _visible_entries(folder: Path) -> list[Path]:
    # Dot-files are OS metadata (.DS_Store, ._x.wav, our completion marker), never data.
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def detect_layout(root: Path) -> str:
    """Which of the three layouts `root` holds (see the module docstring).

    A v0.02 tree without its lists indexes exactly like a user folder (hash split), so
    only the lists tell the two apart.
    """
    subdirs = {entry.name for entry in _visible_entries(root) if entry.is_dir()}
    if read_split_lists(root) is not None:
        return LAYOUT_SPEECH_COMMANDS
    if {UNKNOWN_DIR, SILENCE_DIR} <= subdirs and BACKGROUND_NOISE_DIR not in subdirs:
        return LAYOUT_TEST_SET
    return LAYOUT_FOLDER


def _probe_all(paths: list[Path], clip_samples: int | None) -> list[FileIssue | None]:
    """Per path: a skip (unusable), a conversion note, or None.

    Serial on purpose: a header read is ~40 us and threads only add GIL contention.
    """

    def check(path: Path) -> FileIssue | None:
        try:
            probed = probe_audio(path)
        except AudioError as error:
            return FileIssue(path, str(error).removeprefix(f"{path}: "), skipped=True)
        if clip_samples is None and probed.frames * SAMPLE_RATE < MIN_NOISE_SAMPLES * probed.sample_rate:
            # Passed by verify, then refused by the streams after every clip was read.
            seconds = MIN_NOISE_SAMPLES / SAMPLE_RATE
            problem = f"shorter than {seconds:g} s: too short for background noise"
            return FileIssue(path, problem, skipped=True)
        notes = probed.conversions(clip_samples)
        return FileIssue(path, "; ".join(notes), skipped=False) if notes else None

    return [check(path) for path in paths]


def index_folder(
    root: str | Path,
    *,
    name: str | None = None,
    layout: str | None = None,
    validation_percent: float = 10.0,
    test_percent: float = 10.0,
) -> AudioDataset:
    """Index `root` into an AudioDataset; unusable files are skipped with a warning naming each.

    `layout` is detected when None. Splits: the official lists when present (listed
    files absent from disk are ignored), "test" for the test-set layout, otherwise
    TensorFlow's speaker hash rule with the given percentages.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    try:
        top_entries = _visible_entries(root)
    except OSError as error:
        raise ValueError(f"{root}: cannot read the dataset folder ({error.strerror or error})") from None
    layout = layout or detect_layout(root)
    split_lists = read_split_lists(root) if layout != LAYOUT_TEST_SET else None

    issues: list[FileIssue] = []
    noise_candidates: list[Path] = []
    candidates: list[tuple[Path, str]] = []
    for entry in top_entries:
        if not entry.is_dir():
            # LICENSE, README and the split lists are not data; a recording here was ignored without
            # a word (and a word folder given as the dataset lost every clip).
            if entry.suffix.lower() in (*AUDIO_EXTENSIONS, *OTHER_AUDIO_EXTENSIONS):
                problem = "an audio file outside any word folder (clips go in <root>/<word>/)"
                issues.append(FileIssue(entry, problem, True))
            continue
        try:
            entries = _visible_entries(entry)
        except OSError as error:  # e.g. a word folder without read permission
            issues.append(FileIssue(entry, f"the folder cannot be read ({error.strerror or error})", True))
            continue
        for path in entries:
            if path.is_dir():
                issues.append(FileIssue(path, "a folder inside a word folder (not searched)", True))
            elif entry.name == BACKGROUND_NOISE_DIR:
                # The official archive documents its noise recordings in a README there.
                if path.suffix.lower() not in (".md", ".txt"):
                    noise_candidates.append(path)
            else:
                candidates.append((path, entry.name))

    unusable: set[Path] = set()
    probed = _probe_all([path for path, _ in candidates], CLIP_SAMPLES) + _probe_all(noise_candidates, None)
    for issue in probed:
        if issue is not None:
            issues.append(issue)
            if issue.skipped:
                unusable.add(issue.path)

    usable = [(path, word) for path, word in candidates if path not in unusable]
    speakers = _unknown_speakers(usable, always_prefixed=layout == LAYOUT_TEST_SET)
    clips: list[Clip] = []
    for path, word in usable:
        speaker = speakers.get(path) or speaker_from_filename(path.name)
        if layout == LAYOUT_TEST_SET:
            split = "test"
        elif split_lists is not None:
            split = split_lists.get(f"{word}/{path.name}", "train")
        else:
            split = hash_split(speaker, validation_percent, test_percent)
        if word == UNKNOWN_DIR and speakers.get(path) is not None:
            # The official test set's _unknown_/happy_<speaker>_nohash_0.wav says "happy": a model
            # whose keyword it is must score it as the keyword (it was scored as _unknown_).
            word = _said_in_unknown(path, speaker)
        clips.append(Clip(path=path, word=word, speaker_id=speaker, split=split))
    noise_paths = [path for path in noise_candidates if path not in unusable]

    if not clips:
        # verify's job is to list them: said here, since nothing is indexed to report them.
        skipped = [issue for issue in issues if issue.skipped]
        listed = "; ".join(f"{_relative(issue.path, root)}: {issue.problem}" for issue in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise ValueError(
            f"{root}: no usable audio clips found; expected <root>/<word>/*.wav or *.flac"
            + (f" ({len(skipped)} file(s) skipped: {listed}{more})" if skipped else "")
        )
    report_issues(issues, str(root))
    split_notes = {}
    if split_lists is not None:
        listed_as = {f"{clip.path.parent.name}/{clip.path.name}" for clip in clips}  # folder, not word
        split_notes = split_list_problems(root, listed_as)
        for note in split_notes.values():
            # Entries outside the folder are a broken list: say so. Entries naming clips that are
            # not there are what any subset of Speech Commands has (its lists name the full
            # dataset): noted on the dataset, and named by the error if a needed split is empty.
            if "outside the dataset folder" in note:
                logger.warning("%s", note)
            else:
                logger.info("%s", note)
    return AudioDataset(
        name=name or root.name,
        root=root,
        clips=clips,
        noise_paths=noise_paths,
        issues=issues,
        layout=layout,
        split_notes=split_notes,
    )
