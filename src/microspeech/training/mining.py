"""Hard-negative mining: the windows of a keyword-free stream where the model would fire.

A stream of the *training* split's other words over the background-noise recordings (one
segment per validation condition, a new seed each round) goes through the firmware's input
computation (`detection.windows.stream_inputs`: warm frontend, an inference every hop). The
current float model scores every inference; windows whose top keyword score reaches the
mining threshold are hard negatives, kept (up to a cap) as extra `_unknown_` examples for the
rest of training. Each round reports how many windows fired and how many detections the
spec's detector would have made on the stream (false accepts per hour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from microspeech.data.streams import stream_from_dataset
from microspeech.detection.detector import detect, scores_to_uint8, smooth_scores
from microspeech.detection.windows import stream_inputs
from microspeech.labels import is_word_class

if TYPE_CHECKING:
    from microspeech.data.clips import AudioDataset
    from microspeech.detection.windows import StreamInputs
    from microspeech.models.spec import ModelSpec

__all__ = ["MiningRound", "mine_hard_negatives"]


@dataclass(frozen=True)
class MiningRound:
    """What one round found on its negative stream."""

    round: int
    after_epoch: int
    minutes: float
    inferences: int
    windows_fired: int  # inferences whose top keyword score reached the threshold
    windows_kept: int
    false_accepts: int  # detections of the spec's detector on the stream (all false)
    features: np.ndarray  # (windows_kept, frames, channels) int8

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / (self.minutes / 60) if self.minutes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "after_epoch": self.after_epoch,
            "minutes": round(self.minutes, 3),
            "inferences": self.inferences,
            "windows_fired": self.windows_fired,
            "windows_kept": self.windows_kept,
            "false_accepts": self.false_accepts,
            "fa_per_hour": round(self.fa_per_hour, 2),
        }


def mine_hard_negatives(
    predict: Callable[[StreamInputs], np.ndarray],
    dataset: AudioDataset,
    spec: ModelSpec,
    *,
    seed: int,
    round_number: int,
    after_epoch: int,
) -> MiningRound:
    """One round with `predict` (a stream's inputs -> class scores in [0, 1]); deterministic per
    (seed, round)."""
    settings = spec.train
    stream, _, _ = stream_from_dataset(
        dataset,
        spec.classes,
        minutes=settings.mining_minutes,
        snr_db=settings.stream_conditions,
        seed=seed * 1000 + 104729 + round_number,  # a new stream every round, never the validation one
        split="train",
        show_progress=False,
        segmented=True,
        keyword_fraction=0.0,
        noise_option=None,  # train has no option for other noise
    )
    inputs = stream_inputs(stream.audio, spec.frontend, spec.detection)
    scores_u8 = scores_to_uint8(np.asarray(predict(inputs)).reshape(len(inputs.times_ms), -1))
    keyword_columns = [i for i, name in enumerate(spec.classes) if is_word_class(name)]
    top_keyword = scores_u8[:, keyword_columns].max(axis=1)
    fired = np.flatnonzero(top_keyword >= settings.mining_threshold)
    rng = np.random.default_rng([seed, round_number, 0x313E])
    kept = np.sort(rng.permutation(fired)[: settings.mining_max_windows]) if fired.size else fired
    params = spec.detection
    smoothed = smooth_scores(
        scores_u8, inputs.times_ms, params.average_window_duration_ms, params.minimum_count
    )
    detections = detect(smoothed, spec.classes, params.detection_threshold, params.suppression_ms)
    return MiningRound(
        round=round_number,
        after_epoch=after_epoch,
        minutes=stream.seconds / 60,
        inferences=len(inputs.times_ms),
        windows_fired=int(fired.size),
        windows_kept=int(kept.size),
        false_accepts=len(detections),
        features=np.ascontiguousarray(inputs.features[kept]),
    )
