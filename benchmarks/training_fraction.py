"""A copy of the subset bundle whose training split keeps a fraction of each word's clips, for
learning curves: how the validation stream's misses fall as the training clips double.

    .venv/bin/python benchmarks/training_fraction.py --fraction 0.5 --draw half --output /tmp/lc/half
    .venv/bin/microspeech train tflite_micro_speech --seed N --output H_N \
        --dataset /tmp/lc/half/speech_commands_v0.02_subset
    .venv/bin/python benchmarks/validation_diagnosis.py --stream-offset 1000 --minutes 120 MODEL_FOLDERS ...

The copy is symbolic links into the unpacked bundle (nothing is copied, so it holds no audio of
its own): every validation and test-listed clip, the background noise and the split lists stay;
of each word's training clips, round(fraction x count) are kept, drawn with Python's
`random.Random(f"{word}-{draw}")`, so the same --draw gives the same clips on every machine.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bundles import SPLIT_LISTS, SUBSET, description, linked_copy, machine_description, run, shared_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--fraction", type=float, required=True, help="share of each word's training clips kept"
    )
    parser.add_argument("--draw", required=True, help="names the random draw (e.g. half, quarter)")
    parser.add_argument("--output", type=Path, required=True, help="folder that receives the copy")
    args = parser.parse_args()
    if not 0.0 < args.fraction <= 1.0:
        parser.error(f"--fraction must be within (0, 1], got {args.fraction}")
    from microspeech.checks import check_output_folder

    check_output_folder(args.output, "--output")  # a file failed in the copy, after the bundle was read
    target = args.output / SUBSET
    if target.exists():
        parser.error(f"--output: {target} exists already; give an empty folder")
    print(machine_description(), flush=True)
    source = shared_bundle(SUBSET)
    held_out = set()
    for name in SPLIT_LISTS:
        held_out |= set((source / name).read_text().split())
    chosen: set[str] = set()
    kept = total = 0
    words = [path for path in source.iterdir() if path.is_dir() and path.name != "_background_noise_"]
    for word in sorted(words):
        training = sorted(f"{word.name}/{path.name}" for path in word.glob("*.wav"))
        training = [clip for clip in training if clip not in held_out]
        count = max(1, round(args.fraction * len(training))) if training else 0
        chosen |= set(random.Random(f"{word.name}-{args.draw}").sample(training, count))
        kept, total = kept + count, total + len(training)

    def keep(relative: Path) -> bool:
        is_clip = len(relative.parts) == 2 and relative.parts[0] != "_background_noise_"
        return not is_clip or relative.as_posix() in held_out or relative.as_posix() in chosen

    linked_copy(source, target, keep)
    print(f"{target}: {kept} of {total} training clips kept ({args.draw}); validation and noise unchanged")


if __name__ == "__main__":
    run(main)
