"""Cityscapes: the 19 train classes from gtFine labelIds, every other id void."""

from __future__ import annotations

import numpy as np

from cocoprep.manifest import Manifest
from cocoprep.sources.cityscapes import TRAIN_IDS
from conftest import run_cli
from seg_builders import VOID, cityscapes_tree, model_garden_records


def test_label_ids_become_train_ids_and_the_rest_void(tmp_path):
    expected = cityscapes_tree(tmp_path)
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    assert "layout: Cityscapes (gtFine labelIds): splits train, val" in output
    manifest = Manifest.read(tmp_path / "out")
    assert list(manifest.splits) == ["train", "val"]  # test masks hold no labels
    assert manifest.skipped == {}  # _color/_instanceIds files are not masks of their own
    labels = (tmp_path / "out" / "labels.txt").read_text().splitlines()
    assert labels[0] == "road" and labels[18] == "bicycle" and len(labels) == 19
    table = np.full(256, VOID, np.uint8)
    for label_id, (train_id, _) in TRAIN_IDS.items():
        table[label_id] = train_id
    assert (table[:34] != VOID).sum() == 19
    for split in ("train", "val"):
        for name, (_, mask) in model_garden_records(tmp_path / "out", split).items():
            stem = name[:-len("_leftImg8bit.png")]
            np.testing.assert_array_equal(mask, table[expected[f"{split}/{stem}"]])
    assert set(np.unique(mask).tolist()) == set(range(19)) | {VOID}


def test_test_split_only_when_named(tmp_path):
    cityscapes_tree(tmp_path, n=1)
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--splits", "test",
                           "-q")
    assert code == 0, output
    assert list(Manifest.read(tmp_path / "out").splits) == ["test"]
