"""Where microspeech keeps datasets, trained models and caches on disk."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """Root of everything microspeech stores: `MICROSPEECH_HOME` or ~/.microspeech (also when the
    variable is set but empty, which would otherwise mean the current folder)."""
    return Path(os.environ.get("MICROSPEECH_HOME") or Path.home() / ".microspeech").expanduser()


def datasets_dir() -> Path:
    return home_dir() / "datasets"


def models_dir() -> Path:
    return home_dir() / "models"


def cache_dir() -> Path:
    return home_dir() / "cache"
