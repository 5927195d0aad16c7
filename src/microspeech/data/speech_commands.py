"""Google Speech Commands v0.02 (Warden 2018, CC-BY 4.0): the training set and the official test set.

Both are downloaded once into `datasets_dir()` (MICROSPEECH_HOME overrides), verified
against the published size and SHA-256 (the values TensorFlow Datasets and torchaudio
record), and extracted safely (tarfile's data filter, atomic rename).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from microspeech.data.archive import COMPLETE_MARKER, extract_archive
from microspeech.data.clips import AudioDataset
from microspeech.data.download import DownloadError, download_file
from microspeech.data.folder import LAYOUT_SPEECH_COMMANDS, LAYOUT_TEST_SET, index_folder
from microspeech.paths import datasets_dir

# The 35 words of v0.02; the first ten are the "commands" recorded most often.
COMMAND_WORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
AUXILIARY_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip
WORDS: tuple[str, ...] = COMMAND_WORDS + AUXILIARY_WORDS


@dataclass(frozen=True)
class RemoteArchive:
    """A published archive: where it is, what it must hash to, where it is unpacked."""

    name: str
    url: str
    size: int
    sha256: str
    layout: str

    @property
    def directory(self) -> Path:
        return datasets_dir() / self.name

    @property
    def archive_path(self) -> Path:
        return datasets_dir() / "downloads" / Path(self.url).name


SPEECH_COMMANDS_V2 = RemoteArchive(
    name="speech_commands_v2",
    url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    size=2_428_923_189,
    sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    layout=LAYOUT_SPEECH_COMMANDS,
)
SPEECH_COMMANDS_TEST_SET_V2 = RemoteArchive(
    name="speech_commands_test_set_v0.02",
    url="http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
    size=112_563_277,
    sha256="cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
    layout=LAYOUT_TEST_SET,
)


class DatasetUnavailableError(FileNotFoundError):
    """A named dataset that is neither on disk nor downloadable; the message says what to do instead.

    A FileNotFoundError so that callers handling "dataset not found" handle this too.
    """


def fetch(remote: RemoteArchive, *, download: bool = True, show_progress: bool = True) -> Path:
    """The unpacked dataset directory, downloading and extracting it first when needed."""
    if (remote.directory / COMPLETE_MARKER).exists():
        return remote.directory
    # Named as every command takes a dataset: train/evaluate/tune's --dataset, the dataset
    # commands' argument.
    alternatives = (
        f"point at a local copy instead (a folder unpacked from {Path(remote.url).name}, given as "
        "--dataset PATH, or as PATH to `microspeech dataset info/verify`), or use the offline synthetic "
        "dataset (--dataset synthetic)"
    )
    if not download:
        if remote.directory.is_dir():
            # Unpacked by hand, or an extraction cut short: not known to be complete.
            raise DatasetUnavailableError(
                f"{remote.directory} holds no completed download of {remote.name} (no "
                f"{COMPLETE_MARKER} marker: unpacked by hand, or an extraction cut short) and download is "
                f"off; download it again, or {alternatives}"
            )
        raise DatasetUnavailableError(
            f"{remote.name} is not in {remote.directory} and download is off; {alternatives}"
        )
    try:
        archive = download_file(
            remote.url,
            remote.archive_path,
            size=remote.size,
            sha256=remote.sha256,
            show_progress=show_progress,
        )
    except DownloadError as error:
        raise DatasetUnavailableError(f"cannot download {remote.name}: {error}. {alternatives}") from error
    directory = extract_archive(archive, remote.directory, show_progress=show_progress)
    archive.unlink(missing_ok=True)  # 2.3 GB we no longer need: the extracted tree is complete
    return directory


def load_remote(remote: RemoteArchive, *, download: bool = True) -> AudioDataset:
    return index_folder(fetch(remote, download=download), name=remote.name, layout=remote.layout)
