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


def _uncompressed_rle(m: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a 0/1 array: run lengths in column-major order,
    starting with a run of zeros."""
    counts, last, run = [], 0, 0
    for v in m.flatten(order="F").tolist():
        if v != last:
            counts.append(run)
            run, last = 0, v
        run += 1
    counts.append(run)
    return {"counts": counts, "size": list(m.shape)}


def _encode_png(m: np.ndarray) -> bytes:
    """Any 0/1 array as a mask PNG, through the one public way in."""
    return masks.mask_png(_uncompressed_rle(m), *m.shape)


def test_arbitrary_mask_round_trips_exactly():
    rng = np.random.default_rng(0)
    m = (rng.random((37, 53)) > 0.7).astype(np.uint8)
    got = _png_pixels(_encode_png(m))
    assert got.shape == (37, 53)
    np.testing.assert_array_equal(got, m)


def test_mask_png_is_decoded_by_tensorflow():
    import tensorflow as tf

    m = np.zeros((6, 9), np.uint8)
    m[2:4, 3:8] = 1
    decoded = tf.io.decode_png(_encode_png(m), channels=1).numpy()[:, :, 0]
    np.testing.assert_array_equal(decoded, m)


def test_polygon_mask_matches_pycocotools_at_full_size():
    poly = [[10.0, 10.0, 50.0, 12.0, 40.0, 40.0, 12.0, 30.0]]
    got = _png_pixels(masks.mask_png(poly, 60, 80))
    want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 60, 80)))
    assert got.shape == (60, 80) and set(np.unique(got)) == {0, 1}
    np.testing.assert_array_equal(got, want)


def test_several_polygons_are_merged():
    polys = [[0, 0, 10, 0, 10, 10, 0, 10], [20, 20, 30, 20, 30, 30, 20, 30]]
    got = _png_pixels(masks.mask_png(polys, 40, 40))
    assert got[5, 5] == 1 and got[25, 25] == 1 and got[15, 15] == 0


def test_uncompressed_and_compressed_rle():
    m = np.zeros((8, 6), np.uint8, order="F")
    m[2:5, 1:4] = 1
    got = _png_pixels(masks.mask_png(_uncompressed_rle(m), 8, 6))
    np.testing.assert_array_equal(got, m)
    compressed = mask_utils.encode(np.asfortranarray(m))
    got2 = _png_pixels(masks.mask_png({"counts": compressed["counts"].decode(), "size": [8, 6]},
                                      8, 6))
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


def test_mask_png_equals_pycocotools_full_decode_on_random_shapes():
    """Polygons (also partly outside the image, several per object) and compressed
    RLE: the PNG holds exactly what pycocotools decodes at full size."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        n = int(rng.integers(3, 10))
        pts = np.round(rng.uniform(-0.2, 1.2, 2 * n) * np.tile([w, h], n), 2).tolist()
        polys = [pts, [v * 0.5 for v in pts]]
        want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        np.testing.assert_array_equal(_png_pixels(masks.mask_png(polys, h, w)), want)
        noise = (rng.random((h, w)) > 0.6).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(noise))
        seg = {"counts": rle["counts"].decode(), "size": [h, w]}
        np.testing.assert_array_equal(_png_pixels(masks.mask_png(seg, h, w)), noise)
        np.testing.assert_array_equal(_png_pixels(_encode_png(noise)), noise)


def test_empty_and_full_masks():
    empty = {"counts": [12], "size": [3, 4]}
    np.testing.assert_array_equal(_png_pixels(masks.mask_png(empty, 3, 4)), np.zeros((3, 4)))
    full = {"counts": [0, 12], "size": [3, 4]}
    np.testing.assert_array_equal(_png_pixels(masks.mask_png(full, 3, 4)), np.ones((3, 4)))


def test_rle_counts_matches_pycocotools():
    m = np.zeros((50, 40), np.uint8)
    m[3:30, 5:9] = 1
    m[10:45, 20:38] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    counts = masks.rle_counts(rle["counts"])
    assert counts.sum() == 50 * 40
    rebuilt = np.repeat(np.arange(len(counts)) % 2, counts).reshape(40, 50).T
    np.testing.assert_array_equal(rebuilt, m)


def test_corrupt_compressed_rle_is_malformed():
    with pytest.raises(ItemSkipped) as e:
        masks.mask_png({"counts": "\x01\x02", "size": [4, 4]}, 4, 4)
    assert e.value.reason == "malformed_segmentation"
    with pytest.raises(ItemSkipped) as e:
        masks.mask_png({"counts": "52", "size": [4, 4]}, 4, 4)  # runs add up to 7
    assert e.value.reason == "malformed_segmentation"


# ------------------------------------------------------------------ review: far-out polygons

_FAR_OUT_SCRIPT = """
import sys, json
from cocoprep import masks
from cocoprep.errors import ItemSkipped
try:
    masks.mask_png(json.loads(sys.argv[1]), 48, 64)
    print("written")
except ItemSkipped as e:
    print(e.reason, e.detail)
"""


@pytest.mark.parametrize("poly", [
    [0, 0, 3e9, 0, 3e9, 3e9],         # beyond pycocotools' int: it used to crash the process
    [0, 0, 1e308, 0, 1e308, 1e308],
    [-1e20, 5, 10, 5, 10, 20],
])
def test_polygon_far_outside_the_image_is_malformed_not_a_crash(poly):
    import json
    import subprocess
    import sys

    # A subprocess: pycocotools used to segfault (or exhaust memory) on these.
    result = subprocess.run([sys.executable, "-c", _FAR_OUT_SCRIPT, json.dumps([poly])],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith(f"{masks.MALFORMED_SEGMENTATION} a polygon reaches far "
                                    "outside the 64x48 image"), result.stdout


def test_polygon_slightly_outside_the_image_still_gives_the_clipped_mask():
    poly = [-10.0, -5.0, 70.0, -5.0, 70.0, 20.0, -10.0, 20.0]  # within one image size
    got = _png_pixels(masks.mask_png([poly], 48, 64))
    want = mask_utils.decode(mask_utils.frPyObjects([poly], 48, 64))[:, :, 0]
    np.testing.assert_array_equal(got, want)
    assert got[:20].all() and not got[21:].any()


def test_polygon_with_an_integer_too_big_for_a_float_is_malformed():
    with pytest.raises(ItemSkipped) as info:
        masks.mask_png([[0, 0, 10**400, 0, 5, 5]], 48, 64)
    assert info.value.reason == masks.MALFORMED_SEGMENTATION


def test_box_mask_covers_every_pixel_the_box_touches():
    from cocoprep.masks import box_mask_png

    arr = np.asarray(Image.open(io.BytesIO(box_mask_png((2.5, 3.0, 10.2, 7.0), 12, 16))))
    assert arr.shape == (12, 16) and arr.dtype == np.uint8
    expected = np.zeros((12, 16), np.uint8)
    expected[3:7, 2:11] = 1
    np.testing.assert_array_equal(arr, expected)
    # a sliver still gets one pixel; a box at the far edge stays inside the image
    tiny = np.asarray(Image.open(io.BytesIO(box_mask_png((15.9, 11.9, 16.0, 12.0), 12, 16))))
    assert tiny.sum() == 1 and tiny[11, 15] == 1
