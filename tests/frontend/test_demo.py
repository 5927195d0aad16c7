"""The demo speaks a word and writes its clip, features and spectrogram."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from microspeech import demo
from microspeech.audio import read_audio
from microspeech.frontend import compute_features


def test_demo_writes_clip_features_and_plot(tmp_path):
    demo.main(["--output", str(tmp_path), "--word", "no", "--seed", "3", "--features-only"])
    clip = read_audio(tmp_path / "no-seed3.wav")
    features = np.load(tmp_path / "no-seed3.npy")
    assert clip.shape == (16000,) and np.abs(clip).max() > 3000  # a spoken word, not silence
    # The features the trained model reads: its own frontend settings, not MLTK's default.
    from microspeech.models import get_model_spec

    assert np.array_equal(features, compute_features(clip, get_model_spec("tflite_micro_speech").frontend))
    assert not np.array_equal(features, compute_features(clip))
    assert (tmp_path / "no-seed3.png").stat().st_size > 10_000


def test_demo_is_deterministic_per_seed(tmp_path):
    """eSpeak NG keeps state inside a process, so each run is a fresh process, as `make demo` is."""
    clips = []
    for run, seed in (("a", 1), ("b", 1), ("c", 2)):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "microspeech.demo",
                "--output",
                str(tmp_path / run),
                "--seed",
                str(seed),
                "--features-only",
            ],
            check=True,
            capture_output=True,
        )
        clips.append(read_audio(tmp_path / run / f"yes-seed{seed}.wav"))
    first, again, other = clips
    assert np.array_equal(first, again) and not np.array_equal(first, other)
