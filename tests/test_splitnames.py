"""The one rule for the split a command uses when none is named."""

import pytest

from cocoprep.errors import UsageError
from cocoprep.splitnames import default_split, pick_splits


@pytest.mark.parametrize("names, train, val", [
    (["train", "val"], "train", "val"),
    (["train2017", "val2017", "test2017"], "train2017", "val2017"),
    (["training", "validation"], "training", "validation"),
    (["train", "valid", "test"], "train", "valid"),
    (["dev", "train"], "train", "dev"),
    (["train", "test"], "train", "test"),
    (["default"], "default", None),
    (["result"], "result", None),
    (["labels"], "labels", None),
    (["train"], "train", None),
    (["val2017", "train2017"], "train2017", "val2017"),
])
def test_pick_splits(names, train, val):
    choice = pick_splits(names)
    assert (choice.train, choice.val) == (train, val)


def test_single_split_says_there_is_no_validation_split():
    assert pick_splits(["default"]).note == "no validation split"


def test_test_split_only_as_last_resort_is_announced():
    choice = pick_splits(["train", "test", "val"])
    assert choice.val == "val" and choice.note == ""
    choice = pick_splits(["train", "test"])
    assert choice.val == "test" and "validating on 'test'" in choice.note


def test_empty_val_split_counts_as_none():
    choice = pick_splits(["train", "val"], counts={"train": 3, "val": 0})
    assert choice.val is None and "empty" in choice.note


def test_named_splits_are_checked_not_guessed():
    assert pick_splits(["a", "b"], train="a", val="b") == pick_splits(["b", "a"], train="a", val="b")
    with pytest.raises(UsageError, match=r"--train-split: expected a split in out \(a, b\), found 'c'"):
        pick_splits(["a", "b"], train="c", where="out")
    with pytest.raises(UsageError, match=r"--val-split: expected a split in out"):
        pick_splits(["a", "b"], train="a", val="z", where="out")


def test_no_train_like_split_among_several_is_a_usage_error():
    with pytest.raises(UsageError, match=r"--split: expected one of the splits in out "
                                         r"\(a \(5 examples\), b \(2 examples\)\)"):
        default_split(["a", "b"], counts={"a": 5, "b": 2}, where="out")


def test_default_split_of_coco2017_names():
    assert default_split(["train2017", "val2017"]) == "train2017"
