"""The named datasets `load_dataset` knows."""

from __future__ import annotations

from microspeech.data.clips import AudioDataset
from microspeech.data.registry import register_dataset
from microspeech.data.speech_commands import (
    SPEECH_COMMANDS_TEST_SET_V2,
    SPEECH_COMMANDS_V2,
    DatasetUnavailableError,
    load_remote,
)
from microspeech.data.synthetic import PRESETS, load_synthetic, synthetic_dir
from microspeech.files import COMPLETE_MARKER


@register_dataset(SPEECH_COMMANDS_V2.name)
def speech_commands_v2(*, download: bool = True) -> AudioDataset:
    """Google Speech Commands v0.02: 35 words, official validation/testing lists, background noise."""
    return load_remote(SPEECH_COMMANDS_V2, download=download)


@register_dataset(SPEECH_COMMANDS_TEST_SET_V2.name)
def speech_commands_test_set_v2(*, download: bool = True) -> AudioDataset:
    """The official v0.02 test archive: 10 commands, `_unknown_`, `_silence_`; every clip is split "test"."""
    return load_remote(SPEECH_COMMANDS_TEST_SET_V2, download=download)


@register_dataset("synthetic")
def synthetic(*, download: bool = True) -> AudioDataset:
    """eSpeak NG speaking all 35 words (~4,700 clips), generated offline on first use and cached."""
    return _synthetic("synthetic", download)


@register_dataset("synthetic-tiny")
def synthetic_tiny(*, download: bool = True) -> AudioDataset:
    """Five clips per word: for tests and dry runs, made in seconds."""
    return _synthetic("synthetic-tiny", download)


def _synthetic(name: str, download: bool) -> AudioDataset:
    """`download=False` does not make it (minutes for `synthetic`): `dataset info --no-download`,
    the default, generated it all the same."""
    if not download and not (synthetic_dir(PRESETS[name]) / COMPLETE_MARKER).exists():
        raise DatasetUnavailableError(
            f"dataset {name!r} has not been generated yet: it is made offline with eSpeak NG on first "
            f"use (`microspeech dataset download {name}`, or --download)"
        )
    return load_synthetic(name)
