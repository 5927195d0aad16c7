"""eSpeak NG through ctypes, from the `espeakng-loader` wheel (library + voice data, no system install).

eSpeak keeps state across utterances inside the library (pitch flutter, noise
generators) that neither a seed nor re-initialising resets, so an utterance depends on
every utterance rendered before it in the same process. The generator therefore
renders fixed batches of clips, each in a fresh process (see generate.py).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import numpy as np

from microspeech.files import short_temporary_folder

OUTPUT_RATE = 22050
# Language voices with an English accent shipped in espeak-ng-data ("en" is British English).
ACCENTS: tuple[str, ...] = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
# Variants that do not sound like a human talker (robots, a pitch-shifted monster).
EXCLUDED_VARIANTS = frozenset(
    {"Demonic", "UniRobot", "anikaRobot", "Tweaky"} | {f"robosoft{n}" for n in ("", *range(2, 9))}
)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or refused a voice; the message names it."""


def data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


# eSpeak NG copies the data path into a fixed 160-byte buffer; a longer one (a venv deep in a
# long folder) silently falls back to the build machine's path, and the library exits the process.
_MAX_DATA_PATH = 150


def library_data_path() -> Path:
    """`data_path()`, or a short symlink to it in the temporary folder when it is too long for eSpeak."""
    import hashlib

    path = data_path()
    if len(os.fsencode(path)) <= _MAX_DATA_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    name = f"microspeech-espeak-{os.getuid()}-{digest}"
    link = Path(short_temporary_folder(_MAX_DATA_PATH - len(name) - 1)) / name
    if not (link.is_symlink() and link.resolve() == path.resolve()):
        partial = link.with_name(f"{link.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        partial.symlink_to(path, target_is_directory=True)
        os.replace(partial, link)  # atomic, so parallel workers never see a half-made link
    if len(os.fsencode(link)) > _MAX_DATA_PATH:
        raise EspeakError(f"eSpeak NG's data path is too long ({path}) and the temporary folder too ({link})")
    return link


def variants() -> list[str]:
    """Voice variants (timbres) shipped with the wheel, minus the non-human ones."""
    names = (entry.name for entry in (data_path() / "voices" / "!v").iterdir() if entry.is_file())
    return sorted(name for name in names if name not in EXCLUDED_VARIANTS)


class Espeak:
    """One eSpeak NG instance for this process; renders single words to int16 at 22,050 Hz."""

    def __init__(self) -> None:
        import espeakng_loader

        try:
            self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as error:
            raise EspeakError(f"cannot load eSpeak NG from espeakng-loader ({error})") from error
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(library_data_path()), 0)
        if rate != OUTPUT_RATE:
            raise EspeakError(f"eSpeak NG initialisation failed (returned {rate}, expected {OUTPUT_RATE} Hz)")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept on self: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count: int, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    @property
    def version(self) -> str:
        return self._lib.espeak_Info(None).decode()

    def render(self, text: str, *, accent: str, variant: str, rate_wpm: int, pitch: int, pitch_range: int,
               seed: int) -> np.ndarray:  # fmt: skip
        """`text` spoken by `accent+variant` as int16 samples at OUTPUT_RATE."""
        voice = f"{accent}+{variant}"
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"eSpeak NG has no voice {voice!r}")
        settings = {_ESPEAK_RATE: rate_wpm, _ESPEAK_PITCH: pitch, _ESPEAK_RANGE: pitch_range}
        settings[_ESPEAK_VOLUME] = 100  # full level; the generator sets the final amplitude
        for parameter, value in settings.items():
            self._lib.espeak_SetParameter(parameter, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(seed)
        self._chunks.clear()
        encoded = text.encode()
        status = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 0, None, None)
        self._lib.espeak_Synchronize()
        if status != 0:
            raise EspeakError(f"eSpeak NG failed to speak {text!r} with {voice!r} (status {status})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


@cache
def engine() -> Espeak:
    """The process's eSpeak NG instance (the library is process-global)."""
    return Espeak()
