"""Several datasets as one: `load_datasets` / `AudioDataset.combine`."""

import dataclasses

import pytest

from microspeech.data import SPLITS, AudioDataset, load_dataset, load_datasets
from microspeech.data.pipeline import dataset_fingerprint
from microspeech.data.synthetic import PRESETS, generate_synthetic

pytestmark = pytest.mark.xdist_group("synthetic")
WORDS = ("yes", "lights on")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    config = dataclasses.replace(PRESETS["synthetic-tiny"], words=WORDS, noise_seconds=2.0)
    root = tmp_path_factory.mktemp("combine") / "synth"
    return generate_synthetic(config, root=root, workers=1, show_progress=False).root


def test_combined_dataset_keeps_each_split_and_reads_from_each_root(subset_dir, synth_dir):
    subset, synth = load_dataset(subset_dir), load_dataset(synth_dir)
    combined = load_datasets([str(subset_dir), str(synth_dir)])
    assert combined.parts == [subset, synth] and combined.layout == "combined"
    assert combined.name == f"{subset.name}+{synth.name}"
    for split in SPLITS:
        assert combined.split(split) == subset.split(split) + synth.split(split)
    assert set(combined.words) == set(subset.words) | {"yes", "lights_on"}
    assert combined.noise_paths == subset.noise_paths + synth.noise_paths
    assert combined.read(synth.split("test")[0]).shape == (16000,)
    assert dataset_fingerprint(combined) not in (dataset_fingerprint(subset), dataset_fingerprint(synth))
    assert load_datasets([str(synth_dir)]) == synth  # one dataset is itself
    with pytest.raises(ValueError, match="given twice"):
        AudioDataset.combine([synth, load_dataset(synth_dir)])
    with pytest.raises(ValueError, match="no dataset"):
        load_datasets([])


def test_two_datasets_that_link_the_same_word_folder_are_refused(synth_dir, tmp_path):
    # A folder whose word folders are links to another dataset's: both were loaded, every clip
    # twice, and the two parts' hash splits put copies of one clip in training and in test.
    import shutil

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for entry in synth_dir.iterdir():
        if entry.is_dir() and entry.name == "yes":
            (mirror / entry.name).symlink_to(entry, target_is_directory=True)
        elif entry.is_dir():
            shutil.copytree(entry, mirror / entry.name)
    with pytest.raises(ValueError, match=r"both read the clips of .*yes \(a folder linked into both\)"):
        load_datasets([str(synth_dir), str(mirror)])


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_two_datasets_that_link_the_same_clip_file_are_refused(synth_dir, tmp_path, link):
    # A copied dataset whose clip is a link to the original's file: its own folder, so only the
    # file gives it away.
    import shutil

    mirror = tmp_path / "mirror"
    shutil.copytree(synth_dir, mirror)
    clip = sorted((synth_dir / "yes").glob("*.wav"))[0]
    copy = mirror / "yes" / clip.name
    copy.unlink()
    if link == "hard":
        copy.hardlink_to(clip)
    else:
        copy.symlink_to(clip)
    refused = rf"both hold the file .*{clip.name} \(as .*{clip.name} and .*mirror.*: links to one file\)"
    with pytest.raises(ValueError, match=refused):
        load_datasets([str(synth_dir), str(mirror)])
    copy.unlink()
    shutil.copy(clip, copy)  # a copy of the file is two files: allowed
    assert len(load_datasets([str(synth_dir), str(mirror)]).clips) == 2 * len(load_dataset(synth_dir).clips)


def test_one_dataset_given_alone_is_that_dataset(subset_dir):
    # A string was iterated character by character: "/" (the filesystem root) was scanned first.
    from microspeech.data import load_datasets

    for given in (str(subset_dir), subset_dir, [str(subset_dir)]):
        assert load_datasets(given).root == load_dataset(str(subset_dir)).root
