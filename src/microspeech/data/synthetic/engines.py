"""Optional speech synthesizers, used only when their command-line programs are installed.

eSpeak NG (from PyPI, espeak.py) is always there. Debian's `flite` (voices kal16, awb,
rms, slt) and `pico2wave` (en-US, en-GB) add timbres eSpeak does not have; each is
run as a subprocess writing a WAV file. Executables are resolved once in the parent
process and passed to the workers, so the workers' environment does not matter.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from microspeech.data.synthetic.render import Speaker, SynthesisError

FLITE_VOICES = ("awb", "kal16", "rms", "slt")
PICO_LANGUAGES = ("en-GB", "en-US")


class EngineError(SynthesisError):
    """An optional synthesizer that failed; the message names the program and the word."""


@dataclass(frozen=True)
class CommandEngine:
    """A synthesizer program: its name, executable, and the voices it offers here."""

    name: str
    executable: str
    voices: tuple[str, ...]

    def render(self, text: str, speaker: Speaker) -> tuple[np.ndarray, int]:
        """`text` spoken by `speaker` -> (int16 samples, sample rate)."""
        with tempfile.TemporaryDirectory(prefix=f"microspeech-{self.name}-") as scratch:
            output = Path(scratch) / "speech.wav"
            command = self._command(text, speaker, output)
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=60)
                samples, rate = sf.read(str(output), dtype="int16", always_2d=True)
            except (subprocess.SubprocessError, OSError, sf.LibsndfileError) as error:
                failure = f"{self.executable} failed to speak {text!r} as {speaker.variant} ({error})"
                raise EngineError(failure) from error
        return samples[:, 0], rate

    def _command(self, text: str, speaker: Speaker, output: Path) -> list[str]:
        if self.name == "flite":
            # duration_stretch > 1 is slower; eSpeak's default rate (175 wpm) maps to 1.0.
            stretch = 175.0 / speaker.rate_wpm
            f0_mean = 70.0 + 1.6 * speaker.pitch
            return [
                self.executable, "-voice", speaker.variant, "--setf", f"duration_stretch={stretch:.3f}",
                "--setf", f"int_f0_target_mean={f0_mean:.1f}", "-t", text, "-o", str(output),
            ]  # fmt: skip
        if self.name == "pico2wave":
            return [self.executable, "-l", speaker.variant, "-w", str(output), text]
        raise EngineError(f"no command line for engine {self.name!r}")


def _flite(executable: str) -> CommandEngine | None:
    try:
        listing = subprocess.run([executable, "-lv"], capture_output=True, text=True, timeout=20).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    available = set(listing.replace(":", " ").split())
    voices = tuple(voice for voice in FLITE_VOICES if voice in available)
    return CommandEngine("flite", executable, voices) if voices else None


def optional_engines() -> dict[str, CommandEngine]:
    """The optional synthesizers installed on this machine, by name (often none)."""
    found: dict[str, CommandEngine] = {}
    if executable := shutil.which("flite"):
        engine = _flite(executable)
        if engine is not None:
            found["flite"] = engine
    if executable := shutil.which("pico2wave"):
        found["pico2wave"] = CommandEngine("pico2wave", executable, PICO_LANGUAGES)
    return found
