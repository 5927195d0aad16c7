"""`microspeech` command line: thin wrappers over library functions.

Each module in this package adds its commands to `app`; they are discovered here so
a new command is a new module, not an edit across the tree.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from microspeech.cli.app import app

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app":
        importlib.import_module(f"{__name__}.{_module.name}")


def main() -> None:
    from microspeech import stopping

    replaced = stopping.install()  # kill ends a command as Ctrl-C does: cleaned up, status 128 + signal
    try:
        app()
    except SystemExit as exit_:
        # Typer ends a stop it caught with 130, Click with 1 ("Aborted!"), whatever the signal;
        # a shell expects 128 + the signal (143 for kill).
        if stopping.received() is not None and exit_.code in (1, 130):
            raise SystemExit(stopping.exit_status()) from None
        raise
    except OSError as error:
        # What the commands do not catch themselves (a full disk, a folder that refuses the
        # write, a device gone): one line that names the file, not a traceback.
        from microspeech.cli.app import fail

        try:
            fail(_describe(error))
        except typer.Exit as exit_:  # outside the app now: no Click to turn it into an exit status
            raise SystemExit(exit_.exit_code) from None
    finally:
        stopping.restore(replaced)  # main() called from Python (tests) leaves the handlers it found


def _describe(error: OSError) -> str:
    """The error's own words, with the file it names (OSError's str puts errno first)."""
    if error.strerror and error.filename:
        target = f"{error.filename} -> {error.filename2}" if error.filename2 else str(error.filename)
        return f"{target}: {error.strerror}"
    return str(error)
