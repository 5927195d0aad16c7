"""The class names every layer shares: the two non-word classes and the noise folder's name."""

from __future__ import annotations

__all__ = ["BACKGROUND_NOISE_DIR", "SILENCE", "UNKNOWN", "is_word_class"]

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND_NOISE_DIR = "_background_noise_"


def is_word_class(name: str) -> bool:
    """A class that is a spoken word (a keyword), not `_unknown_` or `_silence_`."""
    return name not in (UNKNOWN, SILENCE)
