"""Generate the synthetic dataset: plan each clip from the seed, render in parallel, publish atomically.

Layout (the Speech Commands v0.02 layout, so the ordinary loader reads it):
`<word>/<speaker_id>_nohash_<n>.wav`, `validation_list.txt`, `testing_list.txt`,
`_background_noise_/{white,pink,brown}_noise.wav`, `synthetic.json` (the recipe and
what came out). Splits are by voice: a voice's speakers are all on one side.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import select
import shutil
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.audio import write_wav
from microspeech.data.clips import AudioDataset
from microspeech.data.folder import LAYOUT_SPEECH_COMMANDS, index_folder
from microspeech.data.speech_commands import COMMAND_WORDS, WORDS
from microspeech.data.splits import TESTING_LIST, VALIDATION_LIST
from microspeech.data.synthetic import espeak
from microspeech.data.synthetic.engines import CommandEngine, optional_engines
from microspeech.data.synthetic.render import (
    MAX_SPEECH_SAMPLES,
    MIN_SPEECH_SAMPLES,
    ClipSpec,
    Speaker,
    SynthesisError,
    finish_clip,
    noise_recording,
    stable_seed,
    trim_silence,
)
from microspeech.files import COMPLETE_MARKER, atomic_directory, short_temporary_folder
from microspeech.labels import BACKGROUND_NOISE_DIR
from microspeech.paths import datasets_dir
from microspeech.progress import progress_bar

GENERATOR_VERSION = 1
MANIFEST = "synthetic.json"


def read_synthetic_manifest(root: Path) -> dict[str, Any] | None:
    """`root`'s synthetic.json as generation wrote it (config, engines, voices), None when there is
    none; a ValueError naming the file when it is unreadable, cut off or not microspeech's."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable synthetic dataset manifest ({error})") from None
    expected = {"config": dict, "engines": dict, "voices": dict}
    if not isinstance(manifest, dict) or any(
        not isinstance(manifest.get(key), kind) for key, kind in expected.items()
    ):
        raise ValueError(
            f"{path}: not a synthetic dataset manifest written by microspeech "
            f"(expected the keys {', '.join(expected)})"
        )
    return manifest


NOISE_COLORS = ("white", "pink", "brown")
# Fixed batch size: results must not depend on how many workers share the work.
PARTIAL_RECIPE = ".microspeech-recipe"  # the fingerprint of what a partial folder holds
BATCH_CLIPS = 40
RATES_WPM = (115, 135, 155, 175, 200, 225)
PITCHES = (20, 32, 44, 56, 68, 80)
PITCH_RANGES = (20, 45, 70, 95)
WARPS = (0.88, 0.94, 1.0, 1.06, 1.12)


@dataclass(frozen=True)
class SyntheticConfig:
    """How big the synthetic dataset is; every field changes the fingerprint (and the cache folder)."""

    train_per_word: int = 80
    validation_per_word: int = 12
    test_per_word: int = 12
    command_factor: int = 2  # the ten command words get this many times more clips, as in v0.02
    validation_voices: int = 8
    test_voices: int = 12
    speakers_per_voice: int = 4
    noise_seconds: float = 60.0
    seed: int = 0
    words: tuple[str, ...] = field(default=WORDS)
    # flite / pico2wave when installed (see engines.py); a machine with them makes another dataset.
    optional_engines: bool = True

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"SyntheticConfig.{item.name} must be >= 0, got {value}")
        if self.train_per_word < 1 or self.speakers_per_voice < 1 or self.command_factor < 1:
            raise ValueError("train_per_word, speakers_per_voice and command_factor must be >= 1")
        if not self.words or len(set(self.words)) != len(self.words):
            raise ValueError(f"SyntheticConfig.words must be distinct and not empty, got {self.words}")

    def to_dict(self) -> dict:
        return {**asdict(self), "words": list(self.words)}

    @classmethod
    def from_dict(cls, values: dict) -> SyntheticConfig:
        known = {item.name for item in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown SyntheticConfig keys {sorted(unknown)}; expected {sorted(known)}")
        return cls(**{**values, "words": tuple(values.get("words", WORDS))})

    def clips_per_word(self, word: str, split: str) -> int:
        base = {"train": self.train_per_word, "validation": self.validation_per_word}
        base["test"] = self.test_per_word
        return base[split] * (self.command_factor if word in COMMAND_WORDS else 1)

    def fingerprint(self) -> str:
        recipe = {"config": self.to_dict(), "generator": GENERATOR_VERSION, "engines": engine_versions(self)}
        return format(stable_seed(json.dumps(recipe, sort_keys=True)), "x")[:12]


PRESETS: dict[str, SyntheticConfig] = {
    "synthetic": SyntheticConfig(),
    # Seconds to make: for tests and dry runs. Every word, one clip per split and voice side.
    "synthetic-tiny": SyntheticConfig(
        train_per_word=3, validation_per_word=1, test_per_word=1, command_factor=1,
        validation_voices=2, test_voices=2, speakers_per_voice=1, noise_seconds=5.0,
    ),  # fmt: skip
}


# A phrase must fit in a one-second clip (render_clip speeds speech up to 2x to fit it).
MAX_WORD_CHARACTERS = 24
MAX_WORDS_IN_PHRASE = 3
_WORD_PATTERN = re.compile(r"[a-z]+(?:['-][a-z]+)*")


def word_folder(word: str) -> str:
    """The word's folder (and label): a phrase's spaces become underscores ("lights on" -> lights_on)."""
    return word.replace(" ", "_")


def parse_words(text: str) -> tuple[str, ...]:
    """Comma-separated words or short phrases to speak, checked: ValueError says which one is wrong.

    Lower-cased, spaces collapsed; letters with inner ' or - only; at most 3 words and
    24 characters each (a clip is one second); no two with the same folder name.
    """
    words: list[str] = []
    for raw in text.split(","):
        word = " ".join(raw.lower().split())
        if not word:
            raise ValueError(f"an empty word in {text!r} (two commas, or a comma at an end)")
        if not all(_WORD_PATTERN.fullmatch(part) for part in word.split(" ")):
            raise ValueError(f"{word!r}: only the letters a-z, spaces and inner ' or - can be spoken")
        if len(word) > MAX_WORD_CHARACTERS or len(word.split(" ")) > MAX_WORDS_IN_PHRASE:
            raise ValueError(
                f"{word!r} is too long for a one-second clip: at most {MAX_WORDS_IN_PHRASE} words "
                f"and {MAX_WORD_CHARACTERS} characters"
            )
        if any(word_folder(word) == word_folder(other) for other in words):
            raise ValueError(f"{word!r} is given twice")
        words.append(word)
    return tuple(words)


def engine_versions(config: SyntheticConfig) -> dict[str, str]:
    """Engines that will speak, with what identifies their output (package version or voices)."""
    found = {"espeak-ng": version("espeakng-loader")}
    for name, engine in _engines(config).items():
        found[name] = ",".join(engine.voices)
    return found


def _engines(config: SyntheticConfig) -> dict[str, CommandEngine]:
    return optional_engines() if config.optional_engines else {}


@dataclass(frozen=True)
class Plan:
    voices: dict[str, list[str]]
    speakers: dict[str, list[Speaker]]
    clips: list[ClipSpec]
    split_of: dict[str, str]  # relative path -> split


def plan(config: SyntheticConfig, engines: dict[str, CommandEngine] | None = None) -> Plan:
    """Decide every clip (word, speaker, seed, file name) from the config and the engines present.

    Split by voice: `test_voices` voices are the test split, `validation_voices` the
    validation split, the rest train. When optional engines exist, the whole of the first
    one is in the test split (a synthesizer never heard in training), topped up with
    eSpeak voices to `test_voices`.
    """
    engines = _engines(config) if engines is None else engines
    voices = [f"espeak:{variant}" for variant in espeak.variants()]
    held_engine: list[str] = []
    for index, name in enumerate(sorted(engines)):
        named = [f"{name}:{voice}" for voice in engines[name].voices]
        (held_engine if index == 0 else voices).extend(named)
    held_out = config.validation_voices + max(config.test_voices - len(held_engine), 0)
    if len(voices) - held_out < 1:
        raise SynthesisError(
            f"{len(voices)} voices cannot hold out {held_out} for validation+test; lower "
            "validation_voices/test_voices"
        )
    order = sorted(voices, key=lambda voice: stable_seed(config.seed, "voice", voice))
    n_test = held_out - config.validation_voices
    by_split = {
        "test": sorted(held_engine + order[:n_test]),
        "validation": sorted(order[n_test:held_out]),
        "train": sorted(order[held_out:]),
    }
    speakers: dict[str, list[Speaker]] = {}
    for split, split_voices in by_split.items():
        speakers[split] = []
        for voice in split_voices:
            for k in range(config.speakers_per_voice):
                rng = np.random.default_rng(stable_seed(config.seed, "speaker", voice, k))
                engine, variant = voice.split(":", 1)
                speakers[split].append(
                    Speaker(
                        engine=engine,
                        variant=variant,
                        accent=str(rng.choice(espeak.ACCENTS)) if engine == "espeak" else "en",
                        rate_wpm=int(rng.choice(RATES_WPM)),
                        pitch=int(rng.choice(PITCHES)),
                        pitch_range=int(rng.choice(PITCH_RANGES)),
                        warp=float(rng.choice(WARPS)),
                    )
                )
    clips: list[ClipSpec] = []
    split_of: dict[str, str] = {}
    takes: Counter = Counter()
    for split in ("train", "validation", "test"):
        if not speakers[split]:
            continue
        for word in config.words:
            for index in range(config.clips_per_word(word, split)):
                seed = stable_seed(config.seed, "clip", split, word, index)
                speaker = speakers[split][seed % len(speakers[split])]
                take = takes[(word, speaker.speaker_id)]
                takes[(word, speaker.speaker_id)] += 1
                path = f"{word_folder(word)}/{speaker.speaker_id}_nohash_{take}.wav"
                clips.append(ClipSpec(relative_path=path, word=word, speaker=speaker, seed=seed))
                split_of[path] = split
    return Plan(voices=by_split, speakers=speakers, clips=clips, split_of=split_of)


def _speak(word: str, speaker: Speaker, rate_wpm: float, pitch: int, seed: int,
           engines: dict[str, CommandEngine]) -> tuple[np.ndarray, int]:  # fmt: skip
    if speaker.engine == "espeak":
        speech = espeak.engine().render(
            word, accent=speaker.accent, variant=speaker.variant, rate_wpm=round(rate_wpm), pitch=pitch,
            pitch_range=speaker.pitch_range, seed=seed & 0x7FFFFFFF,
        )  # fmt: skip
        return speech, espeak.OUTPUT_RATE
    if speaker.engine not in engines:
        raise SynthesisError(f"{speaker.voice}: the {speaker.engine} program is not installed here")
    adjusted = replace(speaker, rate_wpm=round(rate_wpm), pitch=pitch)
    return engines[speaker.engine].render(word, adjusted)


def render_clip(spec: ClipSpec, engines: dict[str, CommandEngine] | None = None) -> np.ndarray:
    """One clip: speak the word, speeding up until it fits in the clip, then finish it."""
    rng = np.random.default_rng(spec.seed)
    speaker = spec.speaker
    rate = speaker.rate_wpm * rng.uniform(0.93, 1.07)
    pitch = int(np.clip(speaker.pitch + rng.integers(-4, 5), 0, 99))
    for _ in range(4):
        speech, sample_rate = _speak(spec.word, speaker, rate, pitch, spec.seed, engines or {})
        trimmed = trim_silence(speech)
        fitted_length = trimmed.shape[0] / (sample_rate * speaker.warp) * 16000
        if fitted_length <= MAX_SPEECH_SAMPLES:
            break
        rate *= 1.25
    if fitted_length < MIN_SPEECH_SAMPLES:
        # Some voices silently drop sounds: an empty clip would teach the model silence is a word.
        raise SynthesisError(f"{speaker.voice} ({speaker.accent}) produced no speech for {spec.word!r}")
    return finish_clip(trimmed, sample_rate, speaker, rng)


def _render_batch(root: str, batch: list[ClipSpec], engines: dict[str, CommandEngine]) -> int:
    """Runs in a fresh process (see espeak.py: the library's state must start clean)."""
    for spec in batch:
        write_wav(Path(root) / spec.relative_path, render_clip(spec, engines))
    return len(batch)


# The forkserver listens on a Unix socket in multiprocessing's temporary folder
# (<TMPDIR>/pymp-XXXXXXXX/listener-XXXXXXXX); socket paths end at 107 bytes on Linux, 103 on macOS.
_SOCKET_PATH_LIMIT = 100
_SOCKET_SUFFIX = len("/pymp-xxxxxxxx/listener-xxxxxxxx")


def _short_socket_folder() -> None:
    """With a long TMPDIR the forkserver's socket path would not fit ("AF_UNIX path too long"):
    then multiprocessing's temporary folder goes to a short system one (once per process)."""
    from multiprocessing import process, util

    if "tempdir" in process.current_process()._config:  # chosen already (by an earlier pool)
        return
    folder = short_temporary_folder(_SOCKET_PATH_LIMIT - _SOCKET_SUFFIX)
    saved, tempfile.tempdir = tempfile.tempdir, folder
    try:
        util.get_temp_dir()  # made and remembered under that folder
    finally:
        tempfile.tempdir = saved


def _importing_main() -> bool:
    """Whether this call comes from multiprocessing importing the caller's script in another process
    (a spawned child, or the forkserver preloading it): the script is then named __mp_main__."""
    import sys

    main = sys.modules.get("__mp_main__")
    return main is not None and main.__name__ == "__mp_main__"


def _pool(workers: int) -> ProcessPoolExecutor:
    # forkserver: children start from a clean server process, not a copy of a caller that may
    # hold TensorFlow threads; one batch per child keeps eSpeak's hidden state reproducible.
    _short_socket_folder()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["microspeech.data.synthetic.forkserver_start"])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        max_tasks_per_child=1,
        initializer=_end_with_caller,
        initargs=(os.getpid(),),
    )


def _end_with_caller(caller_pid: int) -> None:
    """Worker initializer: the worker ends when the process that made the pool ends (it ignores
    Ctrl-C from birth, see `forkserver_start`).

    A worker's parent is the forkserver, not the caller, so PR_SET_PDEATHSIG would not fire; and
    a worker waiting for work holds the forkserver's liveness pipe, so after a SIGKILL of the
    caller the worker, the forkserver and the resource tracker would wait forever. The worker
    watches the caller instead (a pidfd on Linux, polling elsewhere) and exits when it is gone.
    """
    threading.Thread(target=_watch_caller, args=(caller_pid,), name="caller-watch", daemon=True).start()


def _watch_caller(caller_pid: int) -> None:
    try:
        pidfd = os.pidfd_open(caller_pid)
    except ProcessLookupError:
        os._exit(1)  # the caller is already gone
    except (AttributeError, OSError):  # no pidfd (macOS, Linux < 5.3): poll
        pidfd = None
    if pidfd is not None:
        select.select([pidfd], [], [])  # readable once the caller has ended
    else:
        while True:
            try:
                os.kill(caller_pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            time.sleep(0.5)
    os._exit(1)


@dataclass(frozen=True)
class Generation:
    """Where the dataset is and what this call did (0 clips rendered when it was cached)."""

    root: Path
    clips_rendered: int
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.clips_rendered / self.seconds if self.seconds > 0 else 0.0


def synthetic_dir(config: SyntheticConfig) -> Path:
    return datasets_dir() / f"synthetic-{config.fingerprint()}"


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _check_made_with(root: Path, config: SyntheticConfig) -> None:
    """A finished dataset is this config's: a second run with other words into the same folder,
    waiting for the first, returned the first run's dataset as its own (exit 0)."""
    made = read_synthetic_manifest(root)
    if made is not None and made.get("config") != config.to_dict():
        raise SynthesisError(
            f"{root} holds a synthetic dataset made with other options (words, counts or seed); "
            "choose another folder"
        )


def generate_synthetic(
    config: SyntheticConfig | None = None,
    *,
    root: str | Path | None = None,
    workers: int | None = None,
    show_progress: bool = True,
) -> Generation:
    """Generate (or find cached) the synthetic dataset for `config`; see the module doc.

    Work goes to `<root>.partial/` and is renamed to `root` only when complete; an
    interrupted run resumes there (finished batches are kept, a broken batch is redone).
    """
    config = config or SyntheticConfig()
    root = Path(root) if root is not None else synthetic_dir(config)
    if (root / COMPLETE_MARKER).exists():
        _check_made_with(root, config)
        return Generation(root, 0, 0.0)
    if _importing_main():
        # A worker importing the caller's script, which generates at import (no __main__ guard):
        # it would wait forever for the lock its caller holds. Failing here fails the caller's pool.
        raise SynthesisError(
            "the synthetic dataset is being generated while a worker process imports the script "
            'that asked for it: that script has no `if __name__ == "__main__":` guard; put its code under one'
        )
    # resume: an interrupted run's finished batches stay in <root>.partial for the next one.
    with atomic_directory(root, resume=True) as partial:
        if partial is None:  # another process finished it while this one waited: with these options?
            _check_made_with(root, config)
            return Generation(root, 0, 0.0)
        # Resume only the same recipe: clips an interrupted run rendered for other words or
        # options must not end up in this dataset.
        recipe_file = partial / PARTIAL_RECIPE
        fingerprint = config.fingerprint()
        if recipe_file.is_file() and recipe_file.read_text().strip() != fingerprint:
            for entry in list(partial.iterdir()):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        recipe_file.write_text(fingerprint + "\n")
        started = time.perf_counter()
        engines = _engines(config)
        recipe = plan(config, engines)
        batches = [recipe.clips[i : i + BATCH_CLIPS] for i in range(0, len(recipe.clips), BATCH_CLIPS)]
        todo = [batch for batch in batches if not all((partial / s.relative_path).is_file() for s in batch)]
        rendered = sum(len(batch) for batch in todo)
        _run_batches(partial, todo, engines, len(recipe.clips), workers or default_workers(), show_progress)
        for color in NOISE_COLORS:
            seed = stable_seed(config.seed, "noise", color)
            noise = noise_recording(color, config.noise_seconds, seed)
            write_wav(partial / BACKGROUND_NOISE_DIR / f"{color}_noise.wav", noise)
        for name, split in ((VALIDATION_LIST, "validation"), (TESTING_LIST, "test")):
            listed = sorted(path for path, where in recipe.split_of.items() if where == split)
            _write_text(partial / name, "".join(f"{path}\n" for path in listed))
        seconds = time.perf_counter() - started
        manifest = {
            "generator": GENERATOR_VERSION,
            "engines": engine_versions(config),
            "config": config.to_dict(),
            "voices": recipe.voices,
            "speakers": {split: [s.speaker_id for s in group] for split, group in recipe.speakers.items()},
            "clips": dict(Counter(recipe.split_of.values())),
            "seconds": round(seconds, 2),
        }
        _write_text(partial / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        for leftover in partial.rglob("*.partial*"):  # half-written files of an interrupted run
            leftover.unlink()
        recipe_file.unlink()
    return Generation(root, rendered, seconds)


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _run_batches(
    partial: Path,
    batches: list[list[ClipSpec]],
    engines: dict[str, CommandEngine],
    total: int,
    workers: int,
    show: bool,
) -> None:
    done = total - sum(len(batch) for batch in batches)
    progress = progress_bar(show, kind="count-eta", only_on_terminal=False)
    with progress:
        task = progress.add_task("synthesizing clips", total=total, completed=done)
        if not batches:
            return
        started_before = set(multiprocessing.active_children())
        with _pool(workers) as pool:
            pending: set = set()
            try:
                # Submitting starts the workers: a Ctrl-C then must stop the pool too, not leave
                # the pool's exit to wait for every batch already submitted.
                for batch in batches:
                    pending.add(pool.submit(_render_batch, str(partial), batch, engines))
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        progress.advance(task, future.result())
            except KeyboardInterrupt:
                # Stop the running batches now rather than wait for them (finished clips stay in
                # the partial folder for the next run).
                pool.shutdown(wait=False, cancel_futures=True)
                for worker in set(multiprocessing.active_children()) - started_before:
                    worker.terminate()
                raise
            except BaseException:
                # A failed batch: drop the batches not started and wait for the few running (at most
                # one more per worker), so that no thread of the pool outlives the error. Stopping
                # them as for Ctrl-C leaves the pool's manager thread running, and in CPython 3.11
                # it then fails replacing the worker that just ended ("'NoneType' has no len()").
                for future in pending:
                    future.cancel()
                pool.shutdown(wait=True)
                raise


def load_synthetic(
    config: SyntheticConfig | str | None = None, *, workers: int | None = None, show_progress: bool = True
) -> AudioDataset:
    """The synthetic dataset for `config` (a SyntheticConfig or a preset name), generated on first use."""
    name = config if isinstance(config, str) else "synthetic"
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown synthetic preset {config!r}; expected one of {', '.join(PRESETS)}")
        config = PRESETS[config]
    generation = generate_synthetic(config, workers=workers, show_progress=show_progress)
    return index_folder(generation.root, name=name, layout=LAYOUT_SPEECH_COMMANDS)
