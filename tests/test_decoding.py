"""cocoprep.decoding: the reduced-DCT-scale rule and the decode step."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import tensorflow as tf  # noqa: E402  (a broken install must fail, not skip)

from cocoprep import decoding  # noqa: E402
from conftest import photo_jpeg  # noqa: E402


@pytest.mark.parametrize("source, target, ratio", [
    ((3000, 4000), (299, 299), 8),    # 375 x 500 still covers 299
    ((3000, 4000), (480, 640), 4),    # 750 x 1000; at 8 the 375 rows fall short
    ((3000, 4000), (750, 1000), 4),   # exactly the target at 4
    ((3000, 4000), (751, 1000), 2),
    ((480, 640), (299, 299), 1),      # less than 2x: full scale
    ((480, 640), (240, 320), 2),
    ((481, 641), (61, 81), 8),        # ceil(481 / 8) = 61
    ((481, 641), (62, 81), 4),
    ((100, 100), (200, 200), 1),      # upscaling: full scale
])
def test_decode_ratio_is_the_largest_that_still_covers_the_target(source, target, ratio):
    assert decoding.decode_ratio(*source, *target) == ratio
    got = -(-source[0] // ratio), -(-source[1] // ratio)
    assert ratio == 1 or (got[0] >= target[0] and got[1] >= target[1])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 1000), st.integers(1, 1000))
def test_decode_ratio_never_below_target_and_graph_rule_agrees(h, w, th, tw):
    r = decoding.decode_ratio(h, w, th, tw)
    assert r in (1, 2, 4, 8)
    if r > 1:
        assert -(-h // r) >= th and -(-w // r) >= tw
    if r < 8:  # the next ratio would not cover the target (or is not offered)
        assert -(-h // (2 * r)) < th or -(-w // (2 * r)) < tw
    index = decoding._ratio_index(tf.constant(h), tf.constant(w), th, tw)
    assert (1, 2, 4, 8)[int(index)] == r


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_reduced_decode_is_never_smaller_than_the_resize_target(keep_aspect):
    data = photo_jpeg(400, 520)
    image = decoding.decode_image(tf.constant(data), fit=(96, 96), keep_aspect=keep_aspect)
    assert image.shape == (100, 130, 3)  # ratio 4: at 8, 50 rows < 96 (or 74 letterboxed)
    full = tf.image.resize(tf.io.decode_jpeg(data), (100, 130), antialias=True)
    assert np.abs(image.numpy() - full.numpy()).mean() < 3.0  # the same picture
    small = decoding.decode_image(tf.constant(data), fit=(300, 300))
    assert small.shape == (400, 520, 3)  # less than 2x: full decode
    png_data = io.BytesIO()
    Image.fromarray(np.zeros((400, 520, 3), np.uint8)).save(png_data, "PNG")
    assert decoding.decode_image(tf.constant(png_data.getvalue()), fit=(96, 96)).shape == \
        (400, 520, 3)


def test_masks_decode_to_zero_one_and_empty_keeps_the_image_size():
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 255], [1, 0]], np.uint8), "L").save(buf, "PNG")
    masks = decoding.decode_masks(tf.constant([buf.getvalue()] * 2), 2, 2).numpy()
    assert masks.shape == (2, 2, 2) and masks.tolist()[0] == [[0, 1], [1, 0]]
    assert decoding.decode_masks(tf.constant([], tf.string), 5, 7).shape == (0, 5, 7)
