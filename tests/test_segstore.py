"""The compact segmentation store gives back exactly what the file held."""

from __future__ import annotations

import json
import math
import pickle
import random

import numpy as np
import pytest
import tensorflow as tf
from pycocotools import mask as mask_utils

from cocoprep.sources import segstore
from cocoprep.sources.segstore import SegmentationStore
from conftest import FIXTURES, read_records, run_cli


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _values(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    kinds = [
        lambda: None,
        lambda: {"size": [10, 10], "counts": [100]},             # uncompressed RLE
        lambda: [[1, 2, 3, 4, 5, 6]],                             # integer polygon
        lambda: [],
        lambda: [[]],
        lambda: [[1.5, float("nan"), 3.0, 4.0, 5.0, 6.0]],        # malformed: kept as is
        lambda: [1, 2, 3, 4, 5, 6],                               # flat: malformed, kept
        lambda: [[True, 2, 3, 4, 5, 6]],                          # bools are not numbers
        lambda: [[2**60, 1, 2, 3, 4, 5]],                         # past float64's exact ints
        lambda: [[rng.uniform(0, 600) for _ in range(2 * rng.randrange(0, 12))]
                 for _ in range(rng.randrange(1, 4))],
    ]
    return [rng.choice(kinds)() for _ in range(n)]


def test_items_come_back_as_stored():
    values = _values(3000)
    store = SegmentationStore()
    for v in values:
        store.append(v)
    assert len(store) == len(values)
    assert all(_same(store[k], v) for k, v in enumerate(values))
    assert _same(store[-1], values[-1])


@pytest.mark.parametrize("order", ["random", "identity", "reversed", "empty"])
def test_take_and_pickle_keep_every_item(monkeypatch, order):
    monkeypatch.setattr(segstore, "_CHUNK", 37)  # several chunks even for small inputs
    values = _values(1500, seed=1)
    store = SegmentationStore()
    for v in values:
        store.append(v)
    rng = random.Random(2)
    idx = {"random": [rng.randrange(len(values)) for _ in range(2000)],
           "identity": list(range(len(values))), "reversed": list(range(len(values)))[::-1],
           "empty": []}[order]
    taken = pickle.loads(pickle.dumps(store.take(idx)))
    assert len(taken) == len(idx)
    assert all(_same(taken[j], values[k]) for j, k in enumerate(idx))


def test_polygons_take_eight_bytes_a_coordinate():
    store = SegmentationStore()
    for _ in range(1000):
        store.append([[float(i) for i in range(40)]])
    assert store.nbytes() < 1000 * (40 * 8 + 2 * 8) + 64


def test_take_keeps_rle_and_none_when_no_polygon_is_integer(monkeypatch):
    """The kept objects (RLE dicts, None) come back even when no packed polygon is all
    integers: a shard of float polygons and one crowd RLE (COCO's usual mix)."""
    monkeypatch.setattr(segstore, "_CHUNK", 2)
    rle = {"size": [4, 4], "counts": [3, 5, 8]}
    values = [[[0.5, 1.0, 3.0, 1.0, 3.0, 3.0]], rle, None, [[1.5, 2.5, 3.5, 2.5, 3.5, 3.5]]]
    store = SegmentationStore()
    for v in values:
        store.append(v)
    idx = [3, 1, 0, 2]
    taken = store.take(idx)
    assert [taken[j] for j in range(len(idx))] == [values[k] for k in idx]
    assert taken[1] is rle


def test_a_crowd_rle_mask_survives_a_ratio_split(tmp_path):
    """`convert --masks --ratio` reorders the annotations (`take`): the crowd's mask in
    the records is the source RLE, pixel for pixel, never a box filled in its place."""
    src = json.loads((FIXTURES / "coco" / "annotations" / "instances_train.json").read_text())
    crowd = next(a for a in src["annotations"] if a["iscrowd"])
    image = next(i for i in src["images"] if i["id"] == crowd["image_id"])
    h, w = crowd["segmentation"]["size"]
    expected = mask_utils.decode(mask_utils.frPyObjects(crowd["segmentation"], h, w))
    out = tmp_path / "out"
    code, output = run_cli("convert", FIXTURES / "coco", "-o", out, "--masks", "--splits",
                           "train", "--ratio", "0.5,0.5", "-q", "--workers", "1")
    assert code == 0, output
    found = [r for split in ("train", "val") for r in read_records(out, split)
             if r["filename"] == image["file_name"]]
    assert len(found) == 1
    record = found[0]
    crowds = [png for png, c in zip(record["mask"], record["is_crowd"]) if c]
    assert len(crowds) == 1
    decoded = tf.io.decode_png(crowds[0]).numpy()[..., 0]
    np.testing.assert_array_equal(decoded != 0, expected != 0)
