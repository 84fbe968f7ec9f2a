"""shards.resolve: one reading of a PATH argument for every command."""

from __future__ import annotations

import pytest

from cocoprep.errors import InputError, ManifestError
from cocoprep.shards import is_glob, resolve, split_of, task_of
from verify_builders import write_classification, write_detection

TRAIN = ("train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002")
VAL = ("val.tfrecord-00000-of-00001",)


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "det"
    write_detection(out)
    return out


def test_split_of_and_is_glob():
    assert split_of("/a/b/train2017.tfrecord-00003-of-00010") == "train2017"
    assert split_of("notes.txt") == "notes.txt"
    assert is_glob("out/*.tfrecord-*") and is_glob("x[12]") and not is_glob("out/train")


def test_directory_gives_manifest_splits_and_task(det):
    shards = resolve(det)
    assert not shards.from_glob and shards.task == "detection" and shards.directory == det
    assert {k: [p.rsplit("/", 1)[1] for p in v] for k, v in shards.splits.items()} == {
        "train": list(TRAIN), "val": list(VAL)}
    assert shards.counts == {"train": 4, "val": 2}
    assert shards.split_files("val") == (str(det / VAL[0]),)
    assert shards.missing() == [] and task_of(shards) == "detection"


def test_glob_groups_files_by_name_and_infers_the_task(det):
    shards = resolve(str(det / "*.tfrecord-*"))
    assert shards.from_glob and shards.manifest is None and shards.task is None
    assert list(shards.splits) == ["train", "val"] and len(shards.files) == 3
    assert shards.split_files("anything") == shards.files  # a glob reads every file
    assert shards.counts is None and task_of(shards) == "detection"


def test_one_shard_file_is_a_glob_of_itself(det, tmp_path):
    shards = resolve(det / VAL[0])
    assert shards.from_glob and shards.files == (str(det / VAL[0]),)
    write_classification(tmp_path / "cls")
    assert task_of(resolve(str(tmp_path / "cls" / "*.tfrecord-*"))) == "classification"


def test_unknown_split_names_the_splits_there(det):
    with pytest.raises(ManifestError) as err:
        resolve(det).split_files("test")
    assert str(err.value) == (f"{det / 'manifest.json'}: no split 'test'; splits here: "
                              "train (4 examples), val (2 examples)")


def test_missing_shard_is_listed(det, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(det, copy)
    (copy / VAL[0]).unlink()
    shards = resolve(copy)
    assert shards.missing() == [str(copy / VAL[0])]
    assert shards.missing("train") == []


def test_bad_paths_are_typed_errors_saying_what_is_there(tmp_path):
    with pytest.raises(InputError, match="nothing at that path"):
        resolve(tmp_path / "nope")
    with pytest.raises(InputError) as err:
        resolve(str(tmp_path / "*.tfrecord"))
    assert "expected a glob matching shard files, found no files (no file matches it in " \
           f"{tmp_path}; entries: none (empty directory))" in str(err.value)
    (tmp_path / "train.tfrecord-00000-of-00001").write_bytes(b"")
    with pytest.raises(ManifestError) as err:
        resolve(tmp_path)
    assert "no manifest here; found 1 shard file(s) such as train.tfrecord-00000-of-00001" \
           in str(err.value)
    with pytest.raises(InputError, match="no readable record"):
        task_of(resolve(str(tmp_path / "*.tfrecord-*")))
