"""`microspeech dataset download|info|synth|verify`: thin wrappers over microspeech.data."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from microspeech.cli.app import app, console, fail, path_option
from microspeech.progress import progress_bar

dataset_app = typer.Typer(help="Download, inspect, generate and check datasets.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")

DOWNLOAD_HELP = "Download a named dataset when it is not on disk (generate it, for the synthetic ones)."
NAME_HELP = "speech_commands_v2, speech_commands_test_set_v0.02, synthetic, synthetic-tiny, or a folder PATH."


def _load(name_or_path: str, download: bool, *, quiet_skips: bool = False):
    """The dataset; `quiet_skips`: the indexer's warnings of skipped files are left out (verify
    lists each file itself: they were printed twice)."""
    import logging

    from microspeech.data import load_dataset
    from microspeech.data.speech_commands import DatasetUnavailableError
    from microspeech.data.synthetic import SynthesisError

    def not_a_skip(record: logging.LogRecord) -> bool:  # other warnings (a broken split list) stay
        return not (record.msg == "skipped %s: %s" or str(record.msg).endswith("unusable file(s) skipped"))

    data_logger = logging.getLogger("microspeech.data")
    if quiet_skips:
        data_logger.addFilter(not_a_skip)
    try:
        return load_dataset(name_or_path, download=download)
    except (DatasetUnavailableError, SynthesisError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        _interrupted("the work done so far (downloaded bytes, rendered clips) is kept")
    finally:
        data_logger.removeFilter(not_a_skip)


def _interrupted(kept: str) -> None:
    """Ctrl-C: one line saying what is kept. A process pool's shutdown, racing its stopped
    workers, may still report a closed pipe from a thread or an exit handler: not news to them."""
    import threading

    sys.unraisablehook = lambda unraisable: None
    threading.excepthook = lambda args: None
    fail(f"interrupted; {kept}, run the same command to resume", code=130)


@dataset_app.command("download")
def download_command(
    name: str = typer.Argument(
        ..., help="speech_commands_v2, speech_commands_test_set_v0.02, synthetic or synthetic-tiny."
    ),
) -> None:
    """Fetch a named dataset into ~/.microspeech/datasets (MICROSPEECH_HOME): resumable and verified."""
    from microspeech.data import list_datasets

    if name not in list_datasets():
        fail(f"unknown dataset {name!r}; expected one of {', '.join(list_datasets())}")
    started = time.perf_counter()
    dataset = _load(name, download=True)
    console.print(
        f"{dataset.name}: {len(dataset.clips):,} clips, {len(dataset.noise_paths)} noise files "
        f"in {dataset.root} ({time.perf_counter() - started:.1f} s)"
    )


@dataset_app.command("info")
def info_command(
    name_or_path: str = typer.Argument(..., help=NAME_HELP),
    download: bool = typer.Option(False, "--download/--no-download", help=DOWNLOAD_HELP),
) -> None:
    """Clips per word and split, speakers per split, background noise, skipped and converted files."""
    from microspeech.data import SPLITS
    from microspeech.data.folder import LAYOUT_SPEECH_COMMANDS, LAYOUT_TEST_SET, SILENCE_DIR, UNKNOWN_DIR
    from microspeech.data.splits import NOHASH
    from microspeech.data.synthetic import read_synthetic_manifest
    from microspeech.labels import BACKGROUND_NOISE_DIR

    dataset = _load(name_or_path, download)
    console.print(f"[bold]{escape(dataset.name)}[/] ({dataset.layout} layout): {escape(str(dataset.root))}")
    if dataset.layout == LAYOUT_TEST_SET:  # a user's folder can look like it, and then has no train split
        console.print(
            f"  {UNKNOWN_DIR}/ and {SILENCE_DIR}/ without {BACKGROUND_NOISE_DIR}/: the official test-set "
            "archive's layout, every clip a test clip (a folder of your own to train on needs a "
            f"{BACKGROUND_NOISE_DIR}/ folder, or validation_list.txt and testing_list.txt).",
            style="dim",
            markup=False,
        )
    table = Table()
    table.add_column("word")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    counts = dataset.counts()
    for word in dataset.words:
        row = counts[word]
        table.add_row(escape(word), *(f"{row[split]:,}" for split in SPLITS), f"{sum(row.values()):,}")
    totals = [len(dataset.split(split)) for split in SPLITS]
    table.add_row("[bold]all", *(f"[bold]{n:,}" for n in totals), f"[bold]{sum(totals):,}")
    speakers = [f"{len(dataset.speakers(split)):,}" for split in SPLITS]
    table.add_row("speakers", *speakers, f"{len(dataset.speakers()):,}")
    console.print(table)
    in_unknown = [clip for clip in dataset.clips if clip.path.parent.name == UNKNOWN_DIR]
    named = sum(1 for clip in in_unknown if clip.word != UNKNOWN_DIR)
    if named:  # rows such as "happy 11" with no happy/ folder: where they come from
        console.print(
            f"{named:,} clip(s) of {UNKNOWN_DIR}/ are counted under the word their name starts with "
            f"(happy_<speaker>_nohash_0.wav: happy)",
            markup=False,
        )
    shared = dataset.speakers("train") & (dataset.speakers("validation") | dataset.speakers("test"))
    console.print(f"background noise: {len(dataset.noise_paths)} file(s)")
    try:
        manifest = read_synthetic_manifest(dataset.root)
    except ValueError as error:
        fail(str(error))
    if manifest is not None:
        voices = ", ".join(f"{split} {len(names)}" for split, names in manifest["voices"].items())
        engines = ", ".join(manifest["engines"])
        console.print(f"synthetic voices each split draws from (none in two): {voices}; engines: {engines}")
    console.print(f"speakers in train and in validation/test: {len(shared)}")
    spoken = [clip for clip in dataset.clips if clip.word != SILENCE_DIR]  # noise slices have no speaker
    unnamed = sum(1 for clip in spoken if NOHASH not in clip.path.name)
    if unnamed and dataset.layout not in (LAYOUT_SPEECH_COMMANDS, LAYOUT_TEST_SET):  # not split by lists
        # The hash split keeps a speaker's clips together only when the name says who spoke:
        # alice_1.wav and alice_2.wav are two "speakers", and may land in train and in test.
        console.print(
            f"[yellow]note:[/] {unnamed:,} file name(s) without {NOHASH} (e.g. "
            f"{escape(next(c.path.name for c in spoken if NOHASH not in c.path.name))}): each is a "
            f"speaker of its own, so one person's clips may be split across train and test; name them "
            f"<speaker>{NOHASH}<n>.wav to keep each person in one split"
        )
    console.print(
        f"skipped: {len(dataset.skipped)} unusable file(s); converted when read: {len(dataset.converted)} "
        "(run `microspeech dataset verify` to list them)"
    )


@dataset_app.command("synth")
def synth_command(
    preset: str = typer.Option("synthetic", "--preset", help="synthetic (default size) or synthetic-tiny."),
    train_per_word: int = typer.Option(None, "--train-per-word", help="Training clips per word."),
    validation_per_word: int = typer.Option(None, "--validation-per-word"),
    test_per_word: int = typer.Option(None, "--test-per-word"),
    command_factor: int = typer.Option(
        None, "--command-factor", help="The 10 command words get this many times more clips."
    ),
    speakers_per_voice: int = typer.Option(None, "--speakers-per-voice"),
    seed: int = typer.Option(None, "--seed", help="Changes every voice assignment and clip."),
    workers: int = typer.Option(None, "--workers", help="Processes (default: all cores)."),
    words: str = typer.Option(
        None,
        "--words",
        help="Comma-separated words or short phrases to speak instead of the 35 Speech Commands words, "
        'e.g. "marvin,sheila,lights on"; a phrase\'s folder (its label) has _ for spaces: lights_on.',
    ),
    output: Path = typer.Option(
        None,
        "--output",
        parser=path_option,
        help="Write the dataset here (default: ~/.microspeech/datasets/synthetic-<hash>).",
    ),
) -> None:
    """Generate the synthetic dataset with eSpeak NG (cached: a second run returns at once).

    Split by voice (no voice in two splits), Speech Commands layout: one folder per word,
    validation_list.txt, testing_list.txt, _background_noise_/. Read it with
    `--dataset DIR` or `load_dataset(DIR)`.
    """
    import dataclasses

    from microspeech.data.folder import LAYOUT_SPEECH_COMMANDS, index_folder
    from microspeech.data.synthetic import (
        PRESETS,
        SynthesisError,
        generate_synthetic,
        parse_words,
        read_synthetic_manifest,
    )

    if preset not in PRESETS:
        fail(f"unknown --preset {preset!r}; expected one of {', '.join(PRESETS)}")
    from microspeech.checks import OptionError, check_int, check_seed

    try:  # one line naming the option (Typer's own range check prints a box)
        if seed is not None:
            check_seed(seed)
        for option, value, low in (
            ("--train-per-word", train_per_word, 1),
            ("--validation-per-word", validation_per_word, 0),
            ("--test-per-word", test_per_word, 0),
            ("--command-factor", command_factor, 1),
            ("--speakers-per-voice", speakers_per_voice, 1),
            ("--workers", workers, 1),
        ):
            if value is not None:
                check_int(value, option, low=low)
    except OptionError as error:
        fail(str(error))
    overrides = {
        "train_per_word": train_per_word,
        "validation_per_word": validation_per_word,
        "test_per_word": test_per_word,
        "command_factor": command_factor,
        "speakers_per_voice": speakers_per_voice,
        "seed": seed,
    }
    if words is not None:
        try:
            overrides["words"] = parse_words(words)
        except ValueError as error:
            fail(f"--words: {error}")
    if output is not None and output.exists():
        _check_output(output)
    name = output.name if output is not None else preset if words is None else "synthetic-words"
    try:
        config = dataclasses.replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
        made = read_synthetic_manifest(output) if output is not None else None
        if made is not None and made["config"] != config.to_dict():
            fail(f"--output {output} holds a synthetic dataset made with other options; choose another")
        generation = generate_synthetic(config, root=output, workers=workers)
        dataset = index_folder(generation.root, name=name, layout=LAYOUT_SPEECH_COMMANDS)
    except (SynthesisError, ValueError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        _interrupted("the clips already rendered are kept")
    if generation.clips_rendered:
        console.print(
            f"generated {generation.clips_rendered:,} clips in {generation.seconds:.1f} s "
            f"({generation.clips_per_second:.0f} clips/s)"
        )
    else:
        console.print("already generated (cached)")
    console.print(f"{dataset!r}\n{generation.root}", markup=False)


def _check_output(output: Path) -> None:
    """An existing --output must be a finished synthetic dataset (reused) or an empty folder:
    generation replaces the folder as a whole, so anything else in it would be lost."""
    from microspeech.files import COMPLETE_MARKER

    if not output.is_dir():
        fail(f"--output {output} is a file, not a folder")
    finished = (output / COMPLETE_MARKER).exists() and (output / "synthetic.json").is_file()
    if not finished and any(output.iterdir()):
        fail(f"--output {output} is not empty and not a synthetic dataset; choose a new or empty folder")


@dataset_app.command("verify")
def verify_command(
    name_or_path: str = typer.Argument(..., help=NAME_HELP),
    download: bool = typer.Option(False, "--download/--no-download", help=DOWNLOAD_HELP),
) -> None:
    """Decode every file; list each unusable one with the reason (exit code 1 when any)."""
    from microspeech.data.verify import verify_dataset

    dataset = _load(name_or_path, download, quiet_skips=True)
    total = len(dataset.clips) + len(dataset.noise_paths)
    progress = progress_bar(kind="count-eta", console=console, only_on_terminal=False)
    with progress:
        task = progress.add_task("verifying", total=total)
        problems = verify_dataset(dataset, on_progress=lambda done: progress.update(task, completed=done))
    unusable = {issue.path for issue in problems if issue.skipped}
    # A float file whose samples turn out NaN is unusable, not converted: listed once, there.
    converted = [issue for issue in dataset.converted if issue.path not in unusable]
    if converted:  # usable, but not what the device records: each named, as `dataset info` promises
        console.print(f"{len(converted)} file(s) are converted when read:")
        for issue in converted:
            line = f"  {_shown(issue.path, dataset.root)}: {issue.problem}"
            console.print(line, soft_wrap=True, markup=False)
    clipping = [issue for issue in problems if not issue.skipped]
    problems = [issue for issue in problems if issue.skipped]
    if clipping:  # usable, but damaged: training would learn the distortion
        console.print(f"[yellow]{len(clipping)} file(s) clip when read[/] (float samples past full scale):")
        for issue in clipping:
            line = f"  {_shown(issue.path, dataset.root)}: {issue.problem}"
            console.print(line, soft_wrap=True, markup=False, highlight=False)
    if not problems:
        console.print(f"[green]all {total:,} files are usable[/]")
        return
    console.print(f"[bold red]{len(problems)} unusable file(s)[/] in {escape(str(dataset.root))}:")
    for issue in problems:
        shown = _shown(issue.path, dataset.root)
        console.print(f"  {shown}: {issue.problem}", soft_wrap=True, markup=False, highlight=False)
    raise typer.Exit(1)


def _shown(path: Path, root: Path) -> Path:
    """A file of the dataset relative to its root (noise from elsewhere as it is)."""
    return path.relative_to(root) if path.is_relative_to(root) else path
