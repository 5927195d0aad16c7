"""The subset bundle without some words, to choose recipes on words a model never trained on.

    .venv/bin/python benchmarks/held_out_words.py --words go,left --output /tmp/held_out
    microspeech train tflite_micro_speech --dataset /tmp/held_out --seed 0 --output /tmp/m-s0
    .venv/bin/python benchmarks/validation_diagnosis.py --dataset <subset> --stream-offset 1000 \\
        --minutes 120 --peaks /tmp/m-s0

Why: the validation split that training chooses on (and the 120-minute validation stream of
`validation_diagnosis.py`) holds only words that training has clips of, while most of the test
set's `_unknown_` clips are words the subset has a handful of clips of or none (on, off, the
digits, backward, ...). A copy without every clip of the held-out words (training and
validation alike, so neither the checkpoint nor the calibration sees them) trains models that
meet those words first in the full subset's validation clips and stream, as a model meets the
test set's unseen words. The copy is a folder of symbolic links to the unpacked bundle, with the
split lists filtered; nothing is copied or written into the bundle.

`--synthetic-words go,left` also links the `synthetic` dataset's training clips of those words
(eSpeak NG, generated on first use) into the copy's word folders, as training clips: does synthetic
speech of a word teach a model to reject real recordings of it?
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bundles import SUBSET, check_output, description, linked_copy, machine_description, run, shared_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--words", required=True, help="comma-separated words to hold out, e.g. go,left")
    parser.add_argument("--output", type=Path, required=True, help="a new (or empty) folder")
    parser.add_argument(
        "--synthetic-words",
        default="",
        help="comma-separated words whose synthetic (eSpeak NG) training clips join the copy's training",
    )
    args = parser.parse_args()
    words = {word.strip() for word in args.words.split(",") if word.strip()}
    synthetic_words = {word.strip() for word in args.synthetic_words.split(",") if word.strip()}
    if not words:
        parser.error("--words: none given")
    check_output(args.output, "--output")  # before the bundle is unpacked; a file was an OSError
    if synthetic_words:  # checked before the copy: a late error left a half copy that blocked the retry
        from microspeech.data.synthetic import PRESETS

        known = set(PRESETS["synthetic"].words)
        if unknown := sorted(synthetic_words - known):
            parser.error(f"--synthetic-words: {', '.join(unknown)} not in the synthetic dataset")
    print(machine_description(), flush=True)
    source = shared_bundle(SUBSET)
    present = {path.name for path in source.iterdir() if path.is_dir()}
    missing = sorted(words - present)
    if missing:
        parser.error(
            f"--words: {', '.join(missing)} not in the subset (it has: {', '.join(sorted(present))})"
        )
    linked, left_out = linked_copy(source, args.output, lambda relative: relative.parts[0] not in words)
    print(
        f"{args.output}: {linked} files linked to {source}, {left_out} clips of {', '.join(sorted(words))} "
        f"left out"
    )
    if synthetic_words:
        added = add_synthetic_clips(args.output, synthetic_words, parser)
        print(f"{args.output}: {added} synthetic training clips of {', '.join(sorted(synthetic_words))}")
    print(f"train on it with --dataset {os.fspath(args.output)}; score on --dataset {source}")


def add_synthetic_clips(output: Path, words: set[str], parser: argparse.ArgumentParser) -> int:
    """Link the `synthetic` dataset's training clips of `words` into `output`'s word folders.

    They are listed in neither of the copy's split lists, so the copy's loader puts them in training;
    the synthetic set's own validation and test clips stay out."""
    from microspeech.data import load_dataset

    synthetic = load_dataset("synthetic")
    missing = sorted(words - set(synthetic.words))
    if missing:
        parser.error(f"--synthetic-words: {', '.join(missing)} not in the synthetic dataset")
    added = 0
    for clip in synthetic.split("train"):
        if clip.word in words:
            target = output / clip.word / clip.path.name
            target.parent.mkdir(exist_ok=True)
            target.symlink_to(clip.path.resolve())
            added += 1
    return added


if __name__ == "__main__":
    run(main)
