"""Streaming keyword detection: the firmware loop on a PC (frontend, int8 model, recognizer)
and its parameters. Knows only the frontend, the .tflite runtime and shared leaves.

    from microspeech.detection import KeywordSpotter, load_keyword_model
    spotter = KeywordSpotter(load_keyword_model("model.tflite"))
    decisions = spotter.process(audio_int16)
"""

from __future__ import annotations

from microspeech.lazy import lazy_dir, lazy_exports

# name -> submodule; resolved on first use, so importing the package loads no runtime.
_LAZY = {
    "CommandRecognizer": "detector",
    "Decision": "detector",
    "Detection": "detector",
    "DetectionParams": "params",
    "KeywordModel": "keyword_model",
    "KeywordSpotter": "classify",
    "ModelLoadError": "keyword_model",
    "detection_params_with": "classify",
    "StreamRun": "stream_run",
    "load_keyword_model": "keyword_model",
    "run_spotter": "stream_run",
    "run_stream": "stream_run",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
