"""The batch feature pipeline: balanced, augmented training epochs and un-augmented evaluation sets.

Training (`TrainingPipeline`): every keyword's train clips; `_unknown_` = `unknown_ratio` x
the mean keyword count, drawn evenly from all other words; `_silence_` = `silence_ratio` x,
one-second background-noise slices at random gains (near-zero included). Clips are decoded
and trimmed once; each epoch re-draws the unknown clips and the augmentation from
(seed, epoch), renders the batch with numba and computes int8 features with the frontend.

Evaluation (`make_eval_set`): no augmentation, words left-aligned after trimming; a
`_silence_` folder is used as is, otherwise silence is sliced deterministically from noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from microspeech.audio import AudioError
from microspeech.checks import is_whole_number
from microspeech.data.augmentation import (
    FRAGMENT,
    KEYWORD,
    OTHER,
    REVERSED,
    NoiseBank,
    Plan,
    draw_plan,
    mask_features,
    render,
)
from microspeech.data.clip_bank import ClipBank, bank_store
from microspeech.data.folder import LAYOUT_SPEECH_COMMANDS
from microspeech.data.settings import AugmentationSettings
from microspeech.files import text_bytes
from microspeech.labels import SILENCE, UNKNOWN, is_word_class

if TYPE_CHECKING:
    from pathlib import Path

    from microspeech.data.clips import AudioDataset, Clip
    from microspeech.frontend import FrontendSettings

EVAL_SILENCE_RATIO = 0.2
# `TrainingPipeline.word_classes` beyond the words: windows that hold no one whole word.
FRAGMENT_WORD, REVERSED_WORD = "<keyword fragment>", "<reversed word>"
# Audio rendered and featurized at once. Small enough (under glibc's 32 MB ceiling for serving
# freed blocks again) that every batch reuses the memory the last one freed: fresh large arrays,
# which numpy marks for transparent huge pages, cost 4-11 s of kernel time per epoch of 18k clips
# where the kernel compacts memory for them (an AVX2-only EPYC VM; BENCHMARKS.md, "Full-dataset
# scale"). Per-clip work, so the batch size changes no sample.
FEATURE_BATCH_BYTES = 16 * 2**20


class DatasetError(ValueError):
    """The dataset cannot train this model (missing class, too small); raised before training."""


@dataclass
class EvalSet:
    """Features and labels of one split, mapped onto a model's classes."""

    features: np.ndarray  # (N, frames, channels) int8
    labels: np.ndarray  # (N,) int64 class indices
    clips: list[Clip | None]  # None for silence generated from noise
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        bins = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, bins, strict=True)}


def label_of(word: str, classes: Sequence[str]) -> int | None:
    """Class index of a word: itself if it is a class, else `_unknown_` (None if the model has none)."""
    if word in classes:
        return list(classes).index(word)
    return list(classes).index(UNKNOWN) if UNKNOWN in classes else None


def dataset_fingerprint(dataset: AudioDataset) -> str:
    """sha256 over every clip's relative path, word, split and size, and the noise files: what
    `--resume` compares (a file rewritten with other audio of the same size is not seen)."""
    digest = hashlib.sha256()
    entries = [(c.path, c.word, c.split) for c in dataset.clips] + [
        (p, "", "noise") for p in dataset.noise_paths
    ]
    for path, word, split in sorted(entries, key=lambda e: (str(e[0]), e[2])):
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        relative = path.relative_to(dataset.root) if path.is_relative_to(dataset.root) else path
        digest.update(text_bytes(f"{relative}\t{word}\t{split}\t{size}\n"))
    return digest.hexdigest()


def warm_up_samples(settings: AugmentationSettings, frontend: FrontendSettings) -> int:
    """Samples rendered before each training window; a whole number of frontend steps."""
    samples = settings.warm_up_ms * frontend.sample_rate_hz // 1000
    if samples % frontend.window_step:
        raise ValueError(
            f"augmentation warm_up_ms={settings.warm_up_ms} must be a multiple of the frontend step "
            f"({frontend.window_step_ms} ms), so the window's frames line up with a stream's"
        )
    return samples


def _features(
    audio_int16: np.ndarray, frontend: FrontendSettings, warm_up: int = 0, fresh: np.ndarray | None = None
) -> np.ndarray:
    """int8 features of the window that ends each row: the frontend runs over the whole row, or,
    for the rows `fresh` marks, over the window alone (a fresh frontend at the window's start).

    A fresh row must not run over its digital silence first: the frame that straddles the
    window's start (two thirds silence) would seed the noise estimate, and the whole window's
    features would differ from a frontend reset there (by up to 68 int8 steps on noise).
    """
    from microspeech.frontend import compute_features

    if not warm_up:
        return compute_features(audio_int16, frontend, dtype="int8")
    if fresh is None:
        fresh = np.zeros(len(audio_int16), bool)
    out = np.empty((len(audio_int16), frontend.n_frames, frontend.n_channels), np.int8)
    if fresh.any():
        window_only = np.ascontiguousarray(audio_int16[fresh, warm_up:])
        out[fresh] = compute_features(window_only, frontend, dtype="int8")
    if not fresh.all():
        warm_up_ms = warm_up * 1000 // frontend.sample_rate_hz
        out[~fresh] = compute_features(audio_int16[~fresh], frontend, dtype="int8", warm_up_ms=warm_up_ms)
    return out


def _noise_bank(dataset: AudioDataset, window: int) -> NoiseBank | None:
    if not dataset.noise_paths:
        return None
    return NoiseBank.read(dataset.read_noise, sorted(dataset.noise_paths), window)


def _render_features(
    rng: np.random.Generator,
    sources: np.ndarray,
    bank: ClipBank,
    noise: NoiseBank | None,
    settings: AugmentationSettings,
    frontend: FrontendSettings,
    *,
    augment: bool,
    word_offset: float = 0.0,
    kinds: np.ndarray | None = None,
    neighbour_pool: np.ndarray | None = None,
) -> np.ndarray:
    warm_up = warm_up_samples(settings, frontend) if augment else 0
    plan = draw_plan(
        rng,
        sources,
        bank,
        noise,
        settings,
        frontend.n_samples,
        augment=augment,
        word_offset=word_offset,
        kinds=kinds,
        warm_up=warm_up,
        neighbour_pool=neighbour_pool,
    )
    out = np.empty((len(sources), frontend.n_frames, frontend.n_channels), np.int8)
    batch = max(1, FEATURE_BATCH_BYTES // (2 * (frontend.n_samples + warm_up)))  # int16 rows
    for start in range(0, len(sources), batch):
        part = slice(start, start + batch)
        audio = render(_slice_plan(plan, part), bank, noise, frontend.n_samples + warm_up)
        out[part] = _features(audio, frontend, warm_up, plan.silent_until[part] >= warm_up)
    return out


def _slice_plan(plan: Plan, part: slice) -> Plan:
    return dataclasses.replace(
        plan, **{f.name: getattr(plan, f.name)[part] for f in dataclasses.fields(plan)}
    )


def make_eval_set(
    dataset: AudioDataset,
    split: str,
    classes: list[str],
    frontend: FrontendSettings,
    *,
    seed: int = 0,
    silence_ratio: float = EVAL_SILENCE_RATIO,
    unknown_ratio: float | None = None,
    max_per_class: int | None = None,
    word_offset: float = 0.0,
    trim_threshold_db: float | None = None,
) -> EvalSet:
    """Un-augmented features of `split`, labels mapped onto `classes`.

    Words are trimmed as training trims them (`trim_threshold_db`, by default
    AugmentationSettings' 20 dB: pass the model's own setting) and left-aligned (`word_offset`
    0; 0.5 centres them, 1 right-aligns them: the fraction of the room left in the window
    before the word);
    clips whose word is `_silence_` are used
    untrimmed; when `_silence_` is a class and the split has no such clips,
    round(silence_ratio x mean keyword count) noise slices are generated from `seed`.
    `unknown_ratio` balances `_unknown_` as training does (validation splits); None keeps all
    (test sets). `max_per_class` keeps a deterministic sample of each class (dry runs).
    """
    if not 0.0 <= word_offset <= 1.0:
        raise ValueError(f"word_offset must be within [0, 1] (0 left-aligns, 1 right-aligns): {word_offset}")
    if max_per_class is not None and (not is_whole_number(max_per_class) or max_per_class < 1):
        # -1 sliced one clip off every class, silently
        raise ValueError(f"max_per_class={max_per_class!r}: expected a whole number of clips, 1 or more")
    rng = np.random.default_rng([seed, 0xE7A1])
    labelled = [(clip, label_of(clip.word, classes)) for clip in dataset.split(split)]
    labelled = [(clip, label) for clip, label in labelled if label is not None]
    if unknown_ratio is not None and UNKNOWN in classes:
        labelled = _balance_unknown(labelled, classes, unknown_ratio, rng)
    if max_per_class is not None:
        labelled = _cap_per_class(labelled, len(classes), max_per_class, rng)
    settings = AugmentationSettings()
    if trim_threshold_db is not None:
        settings = dataclasses.replace(settings, trim_threshold_db=trim_threshold_db)
    words = [(c, lab) for c, lab in labelled if c.word != SILENCE]
    silences = [(c, lab) for c, lab in labelled if c.word == SILENCE]
    bank = ClipBank.read(dataset.read, [c for c, _ in words], frontend.n_samples, settings.trim_threshold_db)
    features = [
        _render_features(
            rng, np.arange(len(bank)), bank, None, settings, frontend, augment=False, word_offset=word_offset
        )
    ]
    clips: list[Clip | None] = [c for c, _ in words]
    labels = [lab for _, lab in words]
    if silences:
        silence_bank = ClipBank.read(dataset.read, [c for c, _ in silences], frontend.n_samples, None)
        features.append(
            _render_features(
                rng, np.arange(len(silence_bank)), silence_bank, None, settings, frontend, augment=False
            )
        )
        clips += [c for c, _ in silences]
        labels += [lab for _, lab in silences]
    elif SILENCE in classes and dataset.noise_paths:
        keyword_counts = [
            sum(1 for c, _ in words if c.word == k) for k in classes if k not in (UNKNOWN, SILENCE)
        ]
        count = max(1, round(silence_ratio * float(np.mean(keyword_counts or [0]))))
        if max_per_class is not None:
            count = min(count, max_per_class)
        noise = _noise_bank(dataset, frontend.n_samples)
        features.append(
            _render_features(rng, np.full(count, -1), bank, noise, settings, frontend, augment=False)
        )
        clips += [None] * count
        labels += [classes.index(SILENCE)] * count
    stacked = np.concatenate(features) if features else np.zeros((0, frontend.n_frames, frontend.n_channels))
    return EvalSet(stacked.astype(np.int8), np.asarray(labels, dtype=np.int64), clips, list(classes))


def _balance_unknown(labelled: list, classes: Sequence[str], ratio: float, rng: np.random.Generator) -> list:
    """Keep round(ratio x mean keyword count) `_unknown_` clips, drawn evenly from the other words."""
    unknown = classes.index(UNKNOWN)
    keywords = [k for k in classes if k not in (UNKNOWN, SILENCE)]
    mean = float(np.mean([sum(1 for c, _ in labelled if c.word == k) for k in keywords] or [0]))
    by_word: dict[str, list] = {}
    for item in labelled:
        if item[1] == unknown:
            by_word.setdefault(item[0].word, []).append(item)
    words = sorted(by_word)
    quotas = even_quotas([len(by_word[w]) for w in words], round(ratio * mean))
    kept = [item for item in labelled if item[1] != unknown]
    for word, quota in zip(words, quotas, strict=True):
        kept += [by_word[word][i] for i in sorted(rng.permutation(len(by_word[word]))[:quota])]
    return kept


def _cap_per_class(labelled: list, n_classes: int, cap: int, rng: np.random.Generator) -> list:
    kept = []
    for label in range(n_classes):
        members = [item for item in labelled if item[1] == label]
        picked = sorted(rng.permutation(len(members))[:cap])
        kept += [members[i] for i in picked]
    return kept


def even_quotas(available: Sequence[int], total: int) -> list[int]:
    """Split `total` as evenly as possible over groups holding `available` items each.

    Water-filling: a group with fewer items gives them all and the rest is shared by the
    others. The sum is min(total, sum(available)).
    """
    return weighted_quotas(available, [1.0] * len(available), total)


def weighted_quotas(available: Sequence[int], weights: Sequence[float], total: int) -> list[int]:
    """Split `total` over groups in proportion to `weights` (water-filling): group i takes
    floor(w_i x L) items for the highest level L that fits, at most ceil(w_i) x its `available`
    items (so a weight above 1 repeats items), then one more each, in order, while below its cap.
    The sum is min(total, sum of the caps)."""
    caps = [a * max(1, math.ceil(w)) for a, w in zip(available, weights, strict=True)]
    target = min(total, sum(caps))
    low, high = 0.0, float(max(caps, default=0)) / max(min(weights, default=1.0), 1e-9) + 1.0
    for _ in range(64):  # bisection on the level: sum(min(cap, floor(w x L))) <= target
        level = (low + high) / 2
        if sum(min(c, math.floor(w * level)) for c, w in zip(caps, weights, strict=True)) <= target:
            low = level
        else:
            high = level
    quotas = [min(c, math.floor(w * low)) for c, w in zip(caps, weights, strict=True)]
    remainder = target - sum(quotas)
    for i, cap in enumerate(caps):
        if remainder == 0:
            break
        if quotas[i] < cap:
            quotas[i] += 1
            remainder -= 1
    return quotas


def _draw(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """`count` indices below `size`: a permutation's head, whole permutations first when count > size."""
    rounds = [rng.permutation(size) for _ in range(max(1, -(-count // size)))] if size else []
    return np.concatenate(rounds)[:count] if rounds else np.zeros(0, np.int64)


@dataclass(frozen=True)
class TrainingTarget:
    """What the pipeline renders for: a model's classes, frontend and augmentation, and the class
    quotas (clip counts relative to the mean keyword count; a cap per class for dry runs)."""

    name: str
    classes: list[str]
    frontend: FrontendSettings
    augmentation: AugmentationSettings
    unknown_ratio: float = 3.0
    silence_ratio: float = 0.2
    max_clips_per_class: int | None = None
    # Relative share of an `_unknown_` word's windows (1 if absent): a word weighted 2 gets twice
    # the windows of an unweighted one, its clips repeated (newly augmented) beyond its pool.
    unknown_word_weights: Mapping[str, float] = field(default_factory=dict)

    @property
    def keywords(self) -> list[str]:
        return [name for name in self.classes if is_word_class(name)]


class TrainingPipeline:
    """Balanced, augmented training epochs for one target and dataset, deterministic per (seed, epoch)."""

    def __init__(
        self,
        dataset: AudioDataset,
        target: TrainingTarget,
        *,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        bank_cache: Path | None = None,
    ) -> None:
        """Check the dataset, pick the pools, decode and trim them; `progress(done, total)` per clip.

        `bank_cache`: a folder for the decoded clips (`clip_bank.bank_store`), reused by later runs.
        """
        self.dataset = dataset
        self.target = target
        self.seed = seed
        self.frontend = target.frontend
        classes = target.classes
        self.classes = list(classes)
        train_clips = dataset.split("train")
        check_dataset(dataset, target)
        rng = np.random.default_rng([seed, 0x7EA1])
        cap = target.max_clips_per_class
        self.keyword_pools: dict[str, list[Clip]] = {}
        for word in target.keywords:
            members = [c for c in train_clips if c.word == word]
            if cap is not None:
                members = [members[i] for i in sorted(rng.permutation(len(members))[:cap])]
            self.keyword_pools[word] = members
        self.unknown_pools: dict[str, list[Clip]] = {}
        if UNKNOWN in classes:
            for clip in train_clips:
                if clip.word not in classes or clip.word == UNKNOWN:
                    self.unknown_pools.setdefault(clip.word, []).append(clip)
            if cap is not None:
                self.unknown_pools = {
                    w: [p[i] for i in sorted(rng.permutation(len(p))[:cap])]
                    for w, p in sorted(self.unknown_pools.items())
                }
        mean_keywords = float(np.mean([len(p) for p in self.keyword_pools.values()] or [0]))
        self.n_unknown = round(target.unknown_ratio * mean_keywords) if UNKNOWN in classes else 0
        self.n_silence = max(1, round(target.silence_ratio * mean_keywords)) if SILENCE in classes else 0
        if cap is not None:
            self.n_unknown, self.n_silence = min(self.n_unknown, cap), min(self.n_silence, cap)
        # Decode and trim every clip an epoch can use, once; with `bank_cache`, once for every run
        # on the same files (the bank is kept there and memory-mapped).
        ordered = [c for w in target.keywords for c in self.keyword_pools[w]]
        ordered += [c for w in sorted(self.unknown_pools) for c in self.unknown_pools[w]]
        self._index = {clip: i for i, clip in enumerate(ordered)}
        # The finer labels of `epoch_words`: every word the bank holds, then what is not one word.
        self.word_classes = [*sorted({c.word for c in ordered}), SILENCE, FRAGMENT_WORD, REVERSED_WORD]
        word_index = {word: i for i, word in enumerate(self.word_classes)}
        self._bank_words = np.asarray([word_index[c.word] for c in ordered], np.int64)
        # Words that may sit beside another in a window (never a keyword: it would need a label).
        self.neighbour_pool = np.arange(sum(map(len, self.keyword_pools.values())), len(ordered))
        done = iter(range(1, len(ordered) + 1))
        threshold_db = target.augmentation.trim_threshold_db
        store = None
        if bank_cache is not None:
            store = bank_store(bank_cache, (c.path for c in ordered), self.frontend.n_samples, threshold_db)
        self.bank = ClipBank.read(
            dataset.read,
            ordered,
            self.frontend.n_samples,
            threshold_db,
            on_item=(lambda: progress(next(done), len(ordered))) if progress else None,
            store=store,
        )
        bank = self.bank
        silent = [
            clip.path
            for i, clip in enumerate(ordered)
            if bank.levels[i] == 0 and not bank.audio[bank.starts[i] : bank.starts[i] + bank.lengths[i]].any()
        ]
        if silent:
            # A clip of digital zeros would teach its label to mean silence.
            raise AudioError(
                f"{silent[0]}: all samples are zero (digital silence)"
                + (f", as are {len(silent) - 1} more training clips" if len(silent) > 1 else "")
                + f"; remove {'them' if len(silent) > 1 else 'it'} (`microspeech dataset verify` lists every "
                "unusable file)"
            )
        warm_up = warm_up_samples(target.augmentation, self.frontend)
        self.noise = _noise_bank(dataset, self.frontend.n_samples + warm_up)
        self.n_fragments = (
            round(target.augmentation.fragment_ratio * mean_keywords) if UNKNOWN in classes else 0
        )
        self.n_reversed = (
            round(target.augmentation.reversed_ratio * mean_keywords) if UNKNOWN in classes else 0
        )

    def epoch_sources(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(bank index or -1 for silence, label) of every clip of this epoch, in class order."""
        sources, labels, _ = self.epoch_plan(epoch)
        return sources, labels

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bank index or -1 for silence, label, kind) of every clip of this epoch, in class order.

        Kinds (`augmentation.KEYWORD`, `OTHER`, `FRAGMENT`, `REVERSED`) decide how a word may sit
        across the window's edges (and whether it plays backwards); keyword fragments, then
        reversed words, come last among the `_unknown_` clips.
        """
        rng = np.random.default_rng([self.seed, epoch, 0x5E1])
        sources, labels = [], []
        for word, pool in self.keyword_pools.items():
            sources += [self._index[c] for c in pool]
            labels += [self.classes.index(word)] * len(pool)
        n_keyword_clips = len(sources)
        if self.n_unknown:
            words = sorted(self.unknown_pools)
            weights = [self.target.unknown_word_weights.get(w, 1.0) for w in words]
            quotas = weighted_quotas([len(self.unknown_pools[w]) for w in words], weights, self.n_unknown)
            for word, quota in zip(words, quotas, strict=True):
                pool = self.unknown_pools[word]
                sources += [self._index[pool[i]] for i in sorted(_draw(rng, len(pool), quota))]
            labels += [self.classes.index(UNKNOWN)] * (len(sources) - len(labels))
        n_before_fragments = len(sources)
        if self.n_fragments:
            # Own stream, so switching fragments on leaves the other clips' draws unchanged.
            fragment_rng = np.random.default_rng([self.seed, epoch, 0xF5A6])
            sources += [int(i) for i in fragment_rng.integers(0, n_keyword_clips, self.n_fragments)]
            labels += [self.classes.index(UNKNOWN)] * self.n_fragments
        if self.n_reversed:
            reversed_rng = np.random.default_rng([self.seed, epoch, 0xBAC4])
            sources += [int(i) for i in reversed_rng.integers(0, len(self.bank), self.n_reversed)]
            labels += [self.classes.index(UNKNOWN)] * self.n_reversed
        if self.n_silence:
            sources += [-1] * self.n_silence
            labels += [self.classes.index(SILENCE)] * self.n_silence
        kinds = np.full(len(sources), KEYWORD, np.int64)
        kinds[n_keyword_clips:n_before_fragments] = OTHER
        kinds[n_before_fragments : n_before_fragments + self.n_fragments] = FRAGMENT
        first_reversed = n_before_fragments + self.n_fragments
        kinds[first_reversed : first_reversed + self.n_reversed] = REVERSED
        return np.asarray(sources, np.int64), np.asarray(labels, np.int64), kinds

    def epoch_words(self, epoch: int) -> np.ndarray:
        """Each window of `epoch(epoch)`, in its order, as an index into `word_classes`: the word
        it was rendered from (not the neighbour beside it), `_silence_`, a keyword fragment or a
        reversed word."""
        sources, _, kinds = self.epoch_plan(epoch)
        words = np.full(len(sources), self.word_classes.index(SILENCE), np.int64)
        is_word = sources >= 0
        words[is_word] = self._bank_words[sources[is_word]]
        words[kinds == FRAGMENT] = self.word_classes.index(FRAGMENT_WORD)
        words[kinds == REVERSED] = self.word_classes.index(REVERSED_WORD)
        return words

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(features int8 (N, frames, channels), labels) of one augmented training epoch."""
        sources, labels, kinds = self.epoch_plan(epoch)
        rng = np.random.default_rng([self.seed, epoch, 0xA06])
        features = _render_features(
            rng,
            sources,
            self.bank,
            self.noise,
            self.target.augmentation,
            self.frontend,
            augment=True,
            kinds=kinds,
            neighbour_pool=self.neighbour_pool,
        )
        settings = self.target.augmentation
        if settings.time_mask_count or settings.freq_mask_count:
            # Own stream, so switching masks on leaves every other draw of the epoch unchanged.
            features = mask_features(features, np.random.default_rng([self.seed, epoch, 0x3A5C]), settings)
        return features, labels

    def validation(self) -> EvalSet:
        return make_eval_set(
            self.dataset,
            "validation",
            self.classes,
            self.frontend,
            seed=self.seed,
            silence_ratio=self.target.silence_ratio,
            unknown_ratio=self.target.unknown_ratio,
            max_per_class=self.target.max_clips_per_class,
            trim_threshold_db=self.target.augmentation.trim_threshold_db,
        )


def _split_by_lists(dataset: AudioDataset) -> bool:
    """Whether the folder's validation_list.txt / testing_list.txt decide the splits (not speakers)."""
    return dataset.layout == LAYOUT_SPEECH_COMMANDS or any(
        part.layout == LAYOUT_SPEECH_COMMANDS for part in dataset.parts
    )


def check_dataset(dataset: AudioDataset, target: TrainingTarget) -> None:
    """Clear errors before any training: a missing/empty class, no noise for silence, too small a split."""
    train = dataset.split("train")
    validation = dataset.split("validation")
    train_words = {c.word for c in train}
    other_words = train_words - set(target.keywords) - {SILENCE}  # what `_unknown_` is drawn from
    where = f"dataset {dataset.name!r} ({dataset.root})"
    missing = [word for word in target.keywords if word not in train_words]
    if missing:
        counts = Counter(clip.word for clip in train)
        found = ", ".join(f"{word} ({counts[word]})" for word in sorted(counts)) or "none"
        listed = _split_by_lists(dataset)
        elsewhere = []  # clips of the word that the split put in validation or test: why, and the way out
        for word in missing:
            held = [clip for clip in dataset.clips if clip.word == word]
            if held:
                splits = Counter(clip.split for clip in held)
                speakers = len({clip.speaker_id for clip in held})
                why = (
                    "as the folder's validation_list.txt / testing_list.txt say"
                    if listed
                    else f"a split keeps each speaker's clips together and they have {speakers} speaker(s)"
                )
                elsewhere.append(
                    f"its {len(held)} clip(s) of {word!r} are all in "
                    + " and ".join(f"{split} ({n})" for split, n in sorted(splits.items()))
                    + f": {why}"
                )
        way_out = (
            "leave some of them out of the lists (a clip they do not name is train)"
            if listed
            else "record more speakers, or give validation_list.txt and testing_list.txt in the dataset "
            "folder to choose the splits"
        )
        remedy = f"; {'; '.join(elsewhere)} ({way_out})" if elsewhere else ""
        raise DatasetError(
            f"{where}: {'classes' if len(missing) > 1 else 'class'} {', '.join(map(repr, missing))} "
            f"of model {target.name!r} {'have' if len(missing) > 1 else 'has'} no training clips; "
            f"the words it has, with their training clips: {found}{remedy}"
        )
    if UNKNOWN in target.classes and not other_words:
        raise DatasetError(
            f"{where}: class {UNKNOWN!r} needs training clips of words other than "
            f"{', '.join(target.keywords)}, found none"
        )
    absent = sorted(set(target.unknown_word_weights) - other_words)
    if absent and UNKNOWN in target.classes:
        raise DatasetError(
            f"{where}: unknown_word_weights of model {target.name!r} name {', '.join(map(repr, absent))}, "
            f"which the training split has no clips of; its other words: "
            f"{', '.join(sorted(other_words))}"
        )
    if SILENCE in target.classes and not dataset.noise_paths:
        skipped = [issue for issue in dataset.skipped if issue.path.parent.name == "_background_noise_"]
        found = (
            f"all {len(skipped)} skipped (e.g. {skipped[0].path.name}: {skipped[0].problem})"
            if skipped
            else "found none"
        )
        raise DatasetError(
            f"{where}: class {SILENCE!r} and noise augmentation need background-noise "
            f"recordings (a _background_noise_ folder), {found}"
        )
    validation_words = {c.word for c in validation}
    missing = [w for w in target.keywords if w not in validation_words]
    if missing:
        note = dataset.split_notes.get("validation")
        # The lists decide the split when present: more speakers would not help, the list would.
        remedy = (
            "the split comes from its validation_list.txt / testing_list.txt (a clip they do not name "
            "is train): list clips of these words there, or remove the lists to split by speaker"
            if _split_by_lists(dataset)
            else "add recordings from more speakers"
        )
        raise DatasetError(
            f"{where} is too small for the split: no validation clips of {', '.join(missing)} "
            f"({len(train)} train, {len(validation)} validation clips"
            + (f"; {note}" if note else "")
            + f"); {remedy}"
        )
