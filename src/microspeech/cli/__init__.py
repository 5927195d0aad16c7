"""`microspeech` command line: thin wrappers over library functions.

Each module in this package adds its commands to `app`; they are discovered here so
a new command is a new module, not an edit across the tree.
"""

from __future__ import annotations

import importlib
import pkgutil

from microspeech.cli.app import app

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app":
        importlib.import_module(f"{__name__}.{_module.name}")


def main() -> None:
    app()
