"""Polygons and RLE -> 0/1 PNG masks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from cocoprep import masks
from cocoprep.errors import ItemSkipped


def _png_pixels(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG" and im.mode == "L"
    return np.asarray(im)


def test_encode_png_round_trips_exactly():
    rng = np.random.default_rng(0)
    m = (rng.random((37, 53)) > 0.7).astype(np.uint8)
    got = _png_pixels(masks.encode_png(m))
    assert got.shape == (37, 53)
    np.testing.assert_array_equal(got, m)


def test_encode_png_is_decoded_by_tensorflow():
    import tensorflow as tf

    m = np.zeros((6, 9), np.uint8)
    m[2:4, 3:8] = 1
    decoded = tf.io.decode_png(masks.encode_png(m), channels=1).numpy()[:, :, 0]
    np.testing.assert_array_equal(decoded, m)


def test_polygon_mask_matches_pycocotools_at_full_size():
    poly = [[10.0, 10.0, 50.0, 12.0, 40.0, 40.0, 12.0, 30.0]]
    got = _png_pixels(masks.mask_png(poly, 60, 80))
    want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 60, 80)))
    assert got.shape == (60, 80) and set(np.unique(got)) == {0, 1}
    np.testing.assert_array_equal(got, want)


def test_several_polygons_are_merged():
    polys = [[0, 0, 10, 0, 10, 10, 0, 10], [20, 20, 30, 20, 30, 30, 20, 30]]
    got = masks.decode_mask(polys, 40, 40)
    assert got[5, 5] == 1 and got[25, 25] == 1 and got[15, 15] == 0


def test_uncompressed_and_compressed_rle():
    m = np.zeros((8, 6), np.uint8, order="F")
    m[2:5, 1:4] = 1
    flat = m.flatten(order="F").tolist()
    counts, last, run = [], 0, 0
    for v in flat:
        if v != last:
            counts.append(run)
            run, last = 0, v
        run += 1
    counts.append(run)
    got = masks.decode_mask({"counts": counts, "size": [8, 6]}, 8, 6)
    np.testing.assert_array_equal(got, m)
    compressed = mask_utils.encode(np.asfortranarray(m))
    got2 = masks.decode_mask({"counts": compressed["counts"].decode(), "size": [8, 6]}, 8, 6)
    np.testing.assert_array_equal(got2, m)


@pytest.mark.parametrize("seg, reason, detail", [
    (None, "missing_segmentation", "no segmentation"),
    ([], "missing_segmentation", "no segmentation"),
    ([[1, 2, 3]], "malformed_segmentation", "odd number"),
    ([[1, 2, 3, 4]], "malformed_segmentation", "at least 3 points"),
    ([["a", 1, 2, 3, 4, 5]], "malformed_segmentation", "not a list of numbers"),
    ({"counts": [5, 5], "size": [4, 4]}, "malformed_segmentation", "add up to 10"),
    ({"counts": [16], "size": [4, 5]}, "malformed_segmentation", "differs from the image"),
    ({"counts": 3, "size": [4, 4]}, "malformed_segmentation", "neither a list nor a string"),
    ("polygon", "malformed_segmentation", "not polygons or RLE"),
])
def test_bad_segmentations_are_item_skips(seg, reason, detail):
    with pytest.raises(ItemSkipped) as e:
        masks.mask_png(seg, 4, 4)
    assert e.value.reason == reason
    assert detail in e.value.detail
