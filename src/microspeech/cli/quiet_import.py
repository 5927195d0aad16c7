"""TensorFlow's start-up lines, kept off the command line's output.

Loading TensorFlow 2.21 prints, twice (one per shared library), "WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR" and oneDNN's "custom operations
are on" notice. They come from C++ before absl's logging is set up, so `TF_CPP_MIN_LOG_LEVEL`
does not reach them. The CLI therefore loads the package with file descriptor 2 pointed at a
temporary file and writes back every captured line but those two; if the import fails,
everything captured is written back before the error propagates. Library users importing
TensorFlow themselves are not affected: only the CLI installs the hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["NOISE", "QuietImport", "install", "without_noise"]

# Substrings of the lines dropped: nothing else a module prints while it loads is hidden.
NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on.",
)


def without_noise(text: str, noise: Sequence[str] = NOISE) -> str:
    """`text` without its lines that contain one of `noise`."""
    return "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in noise))


class _CapturingLoader(importlib.abc.Loader):
    """Runs the real loader's `exec_module` with descriptor 2 captured."""

    def __init__(self, loader: importlib.abc.Loader, noise: Sequence[str]) -> None:
        self._loader, self._noise = loader, noise

    def __getattr__(self, name: str):  # resource readers, is_package, ...: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            captured = tempfile.TemporaryFile()
        except OSError:  # no writable temporary folder: load as usual, lines and all
            self._loader.exec_module(module)
            return
        with captured:
            _flush()
            try:
                saved = os.dup(2)
            except OSError:  # no descriptor 2 (stderr closed): nothing to keep clean
                self._loader.exec_module(module)
                return
            os.dup2(captured.fileno(), 2)
            failed = True
            try:
                self._loader.exec_module(module)
                failed = False
            finally:
                _flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", "replace")
                kept = text if failed else without_noise(text, self._noise)
                if kept and sys.stderr is not None:
                    sys.stderr.write(kept)
                    sys.stderr.flush()


def _flush() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()


class QuietImport(importlib.abc.MetaPathFinder):
    """A finder for the top-level packages `names`: their first import runs captured."""

    def __init__(self, names: Sequence[str] = ("tensorflow",), noise: Sequence[str] = NOISE) -> None:
        self.names, self.noise = frozenset(names), tuple(noise)

    def find_spec(self, fullname: str, path, target=None) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        # Find the real spec with this finder out of the way, then wrap its loader once.
        index = sys.meta_path.index(self)
        del sys.meta_path[index]
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(index, self)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _CapturingLoader(spec.loader, self.noise)
        return spec


def install(names: Sequence[str] = ("tensorflow",)) -> None:
    """Capture the start-up lines of `names` at their first import (once per process)."""
    if all(name in sys.modules for name in names):
        return
    if not any(isinstance(finder, QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietImport(names))
