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
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bundles import SUBSET, linked_copy, shared_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", required=True, help="comma-separated words to hold out, e.g. go,left")
    parser.add_argument("--output", type=Path, required=True, help="a new (or empty) folder")
    args = parser.parse_args()
    words = {word.strip() for word in args.words.split(",") if word.strip()}
    source = shared_bundle(SUBSET)
    present = {path.name for path in source.iterdir() if path.is_dir()}
    missing = sorted(words - present)
    if not words or missing:
        parser.error(
            f"--words: {', '.join(missing) or 'none given'} not in the subset (it has: "
            f"{', '.join(sorted(present))})"
        )
    if args.output.exists() and any(args.output.iterdir()):
        parser.error(f"--output {args.output}: not empty")
    linked, left_out = linked_copy(source, args.output, lambda relative: relative.parts[0] not in words)
    print(
        f"{args.output}: {linked} files linked to {source}, {left_out} clips of {', '.join(sorted(words))} "
        f"left out"
    )
    print(f"train on it with --dataset {os.fspath(args.output)}; score on --dataset {source}")


if __name__ == "__main__":
    main()
