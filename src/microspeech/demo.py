"""`python -m microspeech.demo` (`make demo`): from a spoken word to a trained, evaluated model.

1. Generates a one-second clip of eSpeak NG saying "yes" over light noise (the same clip
   for the same --seed in every run), computes the bit-exact micro-frontend features the
   tflite_micro_speech model sees, and writes the clip (.wav), the features (.npy) and a
   labelled spectrogram (.png).
2. Loads (generating on first use) the synthetic dataset, trains tflite_micro_speech on it
   with `train_model`, then shows `microspeech summarize` and `microspeech evaluate` of the
   trained model (about 5 minutes on 2 cores). `--features-only` stops after step 1.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from microspeech.audio import fit_length, resample, to_int16, write_wav
from microspeech.frontend import FrontendSettings, compute_features
from microspeech.frontend.files import save_features
from microspeech.frontend.plot import plot_features
from microspeech.paths import home_dir


def spoken_clip(word: str = "yes", *, seed: int = 0, settings: FrontendSettings | None = None) -> np.ndarray:
    """One clip of eSpeak NG saying `word`, 0.2 s in, over quiet white noise: int16 at the frontend rate."""
    from microspeech.data.synthetic import espeak

    settings = settings or FrontendSettings()
    rng = np.random.default_rng(seed)
    variant = espeak.variants()[seed % len(espeak.variants())]
    speech = espeak.engine().render(
        word, accent="en-us", variant=variant, rate_wpm=150, pitch=50, pitch_range=50, seed=seed
    )
    speech = resample(speech, espeak.OUTPUT_RATE, settings.sample_rate_hz).astype(np.float64)
    clip = rng.normal(0.0, 60.0, settings.n_samples)
    onset = settings.sample_rate_hz // 5
    clip += fit_length(np.pad(speech, (onset, 0)), settings.n_samples) * 0.8
    return to_int16(np.clip(clip, -32768, 32767) / 32768.0)


MODEL = "tflite_micro_speech"


def train_and_show(
    dataset: str = "synthetic",
    *,
    seed: int = 0,
    output: Path | None = None,
    epochs: int | None = None,
    example_wav: Path | None = None,
) -> Path:
    """Train MODEL on `dataset`, then print its summary and its evaluation, and what to run next
    on it (the folder is not the name's default one); returns the model folder."""
    from microspeech.cli import app
    from microspeech.cli.app import console
    from microspeech.data import load_dataset
    from microspeech.training import train_model

    started = time.perf_counter()
    console.rule(f"dataset: {dataset}")
    data = load_dataset(dataset)
    console.print(repr(data))
    console.rule(f"train {MODEL} (seed {seed})")
    # The manifest records the `microspeech train` command that trains this very model (the
    # demo's own command line lost --epochs and --output, and trained another).
    artifacts = train_model(MODEL, dataset=dataset, seed=seed, output=output, epochs=epochs, console=console)
    console.rule("summary of the int8 .tflite")
    app(["summarize", str(artifacts.tflite_path)], standalone_mode=False)
    console.rule(f"evaluation on the test split of {data.name}")
    app(["evaluate", str(artifacts.directory)], standalone_mode=False)
    console.print(
        f"[bold green]trained and evaluated in {time.perf_counter() - started:.0f} s[/]: "
        f"{artifacts.directory}"
    )
    # The commands live in this interpreter's bin folder (.venv/bin after `make demo`), which a
    # fresh shell does not have on its PATH; the model is named by its folder.
    installed = Path(sys.executable).parent / "microspeech"
    command = shlex.quote(str(installed)) if installed.exists() else "microspeech"
    folder = shlex.quote(str(artifacts.directory))
    steps = [f"{command} profile {folder}", f"{command} export {folder} --c firmware/"]
    if example_wav is not None:
        wav = shlex.quote(str(example_wav))
        steps.insert(0, f"{command} classify_audio {folder} --wav {wav} --suppression 0")
    console.print("next:", markup=False)
    for step in steps:
        console.print(f"    {step}", markup=False, soft_wrap=True)
    return artifacts.directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Speak a word and plot its features; train and evaluate a model."
    )
    parser.add_argument("--word", default="yes", help="word to speak (default: yes)")
    parser.add_argument("--seed", type=int, default=0, help="voice and noise seed (default: 0)")
    parser.add_argument("--output", type=Path, default=home_dir() / "demo", help="folder for the outputs")
    parser.add_argument("--features-only", action="store_true", help="stop after the features (no training)")
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help="dataset to train on: synthetic (default), speech_commands_v2 or a folder",
    )
    parser.add_argument("--epochs", type=int, default=None, help="cap on the training epochs")
    args = parser.parse_args(argv)

    # The frontend the trained model reads (its noise estimate is faster than MLTK's default).
    from microspeech.models import get_model_spec

    settings = get_model_spec(MODEL).frontend
    clip = spoken_clip(args.word, seed=args.seed, settings=settings)
    features = compute_features(clip, settings)
    stem = args.output / f"{args.word}-seed{args.seed}"
    write_wav(stem.with_suffix(".wav"), clip, settings.sample_rate_hz)
    save_features(features, stem.with_suffix(".npy"))
    title = f'"{args.word}" (seed {args.seed})'
    plot_features(features, stem.with_suffix(".png"), settings, title=title, audio=clip)
    print(f"features: {features.shape} {features.dtype}, min {features.min()}, max {features.max()}")
    for suffix in (".wav", ".npy", ".png"):
        print(f"wrote {stem.with_suffix(suffix)}")
    if not args.features_only:
        train_and_show(
            args.dataset,
            seed=args.seed,
            output=args.output / MODEL,
            epochs=args.epochs,
            example_wav=stem.with_suffix(".wav"),
        )


if __name__ == "__main__":
    main()
