"""How far a training window's warm-up leaves the frontend from the state it has on a stream.

    .venv/bin/python benchmarks/warm_up_distance.py [--windows 200] [--warm-up-ms 0 500 1000 2000 3000]

Training windows start the frontend `warm_up_ms` before the window (AugmentationSettings) so that
its noise estimate is warm, as on a stream; a device's frontend has run for minutes. For windows
at random places of the validation stream (the seed model's stream settings, seed 1000: the audio
`validation_diagnosis.py --stream-offset 1000` scores), this prints how much the window's int8
features differ, per cell, between a frontend started `warm_up_ms` before it and one that has run
over the `--history-s` seconds before it (the stream's state, within rounding).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from bundles import SUBSET, description, machine_description, run, seed_number, shared_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--windows", type=int, default=200, help="windows drawn from the stream")
    parser.add_argument("--warm-up-ms", type=int, nargs="+", default=[0, 500, 1000, 2000, 3000])
    parser.add_argument("--history-s", type=int, default=10, help="audio before the reference window")
    parser.add_argument("--seed", type=seed_number, default=0, help="where the windows are drawn")
    args = parser.parse_args()
    if args.windows < 1 or args.history_s < 1 or any(ms < 0 for ms in args.warm_up_ms):
        parser.error("--windows and --history-s must be at least 1, --warm-up-ms at least 0")
    if max(args.warm_up_ms) > 1000 * args.history_s:  # its audio began before the stream's: wrong windows
        parser.error(f"--warm-up-ms {max(args.warm_up_ms)}: longer than --history-s {args.history_s}")
    print(machine_description(), flush=True)
    from microspeech.data import load_dataset
    from microspeech.data.pipeline import warm_up_samples
    from microspeech.frontend import StreamingFrontend, uint16_to_int8
    from microspeech.models.tflite_micro_speech import tflite_micro_speech
    from microspeech.training.stream_selection import ValidationStream

    spec = tflite_micro_speech()
    settings = spec.frontend
    # The samples training renders before a window for each warm-up (refused, as training refuses
    # it, when not a whole number of frontend steps).
    try:
        warm_ups = {
            ms: warm_up_samples(dataclasses.replace(spec.augmentation, warm_up_ms=ms), settings)
            for ms in args.warm_up_ms
        }
    except ValueError as error:
        parser.error(f"--warm-up-ms: {error}")
    minutes = spec.train.stream_validation_minutes
    if args.history_s + 2 > 60 * minutes:  # no window fitted after it: numpy's error, after the stream
        parser.error(f"--history-s {args.history_s}: longer than the {minutes:g}-minute stream")
    stream = ValidationStream.build(load_dataset(shared_bundle(SUBSET)), spec, seed=1000).stream
    rate, step = settings.sample_rate_hz, settings.window_step

    def window_features(audio: np.ndarray) -> np.ndarray:
        # A fresh frontend over `audio`; the window is its last n_frames frames.
        frames = StreamingFrontend(settings).process(audio)
        return uint16_to_int8(frames[-settings.n_frames :]).astype(np.int16)

    history, window = args.history_s * rate, settings.n_samples
    rng = np.random.default_rng(args.seed)
    distances: dict[int, list[float]] = {ms: [] for ms in args.warm_up_ms}
    for _ in range(args.windows):
        # Window starts on the frontend's frame grid, as the firmware's hops are.
        start = int(rng.integers(history, len(stream.audio) - window)) // step * step
        reference = window_features(stream.audio[start - history : start + window])
        for ms, warm_up in warm_ups.items():
            features = window_features(stream.audio[start - warm_up : start + window])
            distances[ms].append(float(np.abs(features - reference).mean()))
    print(
        f"{args.windows} windows of the validation stream; mean |int8 difference| per feature against "
        f"a frontend that ran over the {args.history_s} s before the window:"
    )
    for ms, values in distances.items():
        values_array = np.asarray(values)
        print(
            f"  warm-up {ms:5d} ms: mean {values_array.mean():.2f}, median {np.median(values_array):.2f}, "
            f"90th percentile {np.percentile(values_array, 90):.2f}"
        )


if __name__ == "__main__":
    run(main)
