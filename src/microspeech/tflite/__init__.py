"""The .tflite artifact: conversion, metadata (SL_PARAMSv1), runtimes, parity, graph surgery,
summary, profiling (TFLM, MVP), C export, diagrams. Knows nothing of data, models or training.

    from microspeech.tflite import read_parameters, TfliteRunner, summarize_tflite, profile_model
"""

from __future__ import annotations

from microspeech.lazy import lazy_dir, lazy_exports

# name -> submodule; resolved on first use, so importing the package loads no runtime.
_LAZY = {
    "TfliteRunner": "runtime",
    "build_tflite": "convert",
    "check_parity": "parity",
    "convert_to_int8": "convert",
    "draw_model": "diagram",
    "export_c": "c_export",
    "find_min_arena_size": "profile",
    "profile_model": "profile",
    "profile_mvp": "mvp",
    "read_parameters": "metadata",
    "read_tflite_file": "files",
    "simplify_graph": "graph",
    "summarize_keras": "summary",
    "summarize_tflite": "summary",
    "write_parameters": "metadata",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
