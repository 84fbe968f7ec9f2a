"""cocoprep.augment: boxes, masks and keypoints move with the pixels; seeded ops."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tensorflow as tf  # noqa: E402  (a required dependency: a broken install fails)

from cocoprep import augment as aug  # noqa: E402
from cocoprep import decoding  # noqa: E402
from cocoprep.errors import UsageError  # noqa: E402
from conftest import photo_jpeg  # noqa: E402

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FILL = 255


# ------------------------------------------------------------------ elements

@st.composite
def scenes(draw, max_objects=3):
    """(height, width, rects) with rects as pixel (y0, x0, y1, x1), y1/x1 exclusive."""
    h = draw(st.integers(12, 48))
    w = draw(st.integers(12, 48))
    rects = []
    for _ in range(draw(st.integers(1, max_objects))):
        y0 = draw(st.integers(0, h - 3))
        x0 = draw(st.integers(0, w - 3))
        y1 = draw(st.integers(y0 + 2, h))
        x1 = draw(st.integers(x0 + 2, w))
        rects.append((y0, x0, y1, x1))
    return h, w, rects


def element(h, w, rects, *, dtype=np.uint8, keypoints=True):
    """A detection element: black image, the first rect drawn white; one mask per
    rect; keypoints at the rect corners (the second one absent)."""
    image = np.zeros((h, w, 3), dtype)
    y0, x0, y1, x1 = rects[0]
    image[y0:y1, x0:x1] = FILL
    masks = np.zeros((len(rects), h, w), np.uint8)
    for i, (a, b, c, d) in enumerate(rects):
        masks[i, a:c, b:d] = 1
    boxes = np.array([[a / h, b / w, c / h, d / w] for a, b, c, d in rects], np.float32)
    n = len(rects)
    e = {
        "image": tf.constant(image),
        "image_id": tf.constant(b"1"),
        "boxes": tf.constant(boxes),
        "classes": tf.range(n, dtype=tf.int32),
        "label_ids": tf.range(1, n + 1, dtype=tf.int32),
        "is_crowd": tf.zeros([n], tf.bool),
        "area": tf.constant([(c - a) * (d - b) for a, b, c, d in rects], tf.float32),
        "num_boxes": tf.constant(n, tf.int32),
        "masks": tf.constant(masks),
    }
    if keypoints:
        kp = np.array([[[a / h, b / w], [0, 0], [(c - 1) / h, (d - 1) / w]]
                       for a, b, c, d in rects], np.float32)
        e["keypoints"] = tf.constant(kp)
        e["keypoint_visibility"] = tf.constant([[2, 0, 2]] * n, tf.int32)
    return e


def np_el(e):
    return {k: v.numpy() for k, v in e.items()}


def check_geometry(out, *, tol_px=2.0, first_drawn=True):
    """Boxes in [0, 1] with min <= max; per-object tensors agree in length; every mask's
    pixels inside its box; the drawn rectangle inside the first object's box."""
    o = np_el(out)
    boxes = o["boxes"]
    n = boxes.shape[0]
    assert boxes.dtype == np.float32
    assert ((boxes >= 0) & (boxes <= 1)).all(), boxes
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
    for key in aug.OBJECT_KEYS:
        if key in o:
            assert o[key].shape[0] == n, key
    assert o["num_boxes"] == n
    h, w = o["image"].shape[:2]
    assert o["masks"].shape[1:] == (h, w)
    for box, mask in zip(boxes, o["masks"]):
        ys, xs = np.nonzero(mask)
        if len(ys):
            assert ys.min() >= box[0] * h - tol_px and ys.max() + 1 <= box[2] * h + tol_px
            assert xs.min() >= box[1] * w - tol_px and xs.max() + 1 <= box[3] * w + tol_px
    if "keypoints" in o:
        kp, vis = o["keypoints"], o["keypoint_visibility"]
        assert ((kp >= 0) & (kp <= 1)).all()
        assert (kp[vis == 0] == 0).all()
    if first_drawn and n and o["label_ids"][0] == 1:
        # The white rectangle (object 1) lies inside its box.
        ys, xs = np.nonzero(o["image"][..., 0] > FILL / 2)
        box = boxes[0]
        if len(ys):
            assert ys.min() >= box[0] * h - tol_px and ys.max() + 1 <= box[2] * h + tol_px
            assert xs.min() >= box[1] * w - tol_px and xs.max() + 1 <= box[3] * w + tol_px
    return o


seeds = st.integers(0, 2**31 - 1)


# ------------------------------------------------------------------ properties

@SETTINGS
@given(scenes(), seeds)
def test_flip_twice_is_identity(scene, seed):
    e = element(*scene)
    flip = aug.RandomFlip(p=1.0)
    once = flip(e, seed)
    twice = np_el(flip(once, seed + 1))
    o, e_np = np_el(once), np_el(e)
    for key in ("image", "masks", "keypoint_visibility", "classes"):
        np.testing.assert_array_equal(twice[key], e_np[key])
    np.testing.assert_allclose(twice["boxes"], e_np["boxes"], atol=1e-6)
    np.testing.assert_allclose(twice["keypoints"], e_np["keypoints"], atol=1e-6)
    # One flip mirrors: the drawn rectangle now sits at w - x1 .. w - x0.
    check_geometry(once, tol_px=0.01)
    h, w, rects = scene
    y0, x0, y1, x1 = rects[0]
    np.testing.assert_allclose(o["boxes"][0], [y0 / h, 1 - x1 / w, y1 / h, 1 - x0 / w],
                               atol=1e-6)


@SETTINGS
@given(scenes(), seeds, st.sampled_from([0.0, 0.3, 0.7]))
def test_random_crop_keeps_geometry(scene, seed, coverage):
    e = element(*scene)
    out = aug.RandomCrop(coverage)(e, seed)
    o = check_geometry(out, tol_px=0.01)
    # Boxes are clipped to the crop, so masks (cropped the same way) match them exactly.
    h, w = o["image"].shape[:2]
    for box, mask in zip(o["boxes"], o["masks"]):
        ys, xs = np.nonzero(mask)
        if len(ys):
            np.testing.assert_allclose([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1],
                                       box * [h, w, h, w], atol=1e-3)


@SETTINGS
@given(scenes(), st.data())
def test_crop_drops_exactly_the_objects_whose_centre_is_outside(scene, data):
    h, w, rects = scene
    top = data.draw(st.integers(0, h - 1))
    left = data.draw(st.integers(0, w - 1))
    ch = data.draw(st.integers(1, h - top))
    cw = data.draw(st.integers(1, w - left))
    o = check_geometry(aug.crop(element(h, w, rects), top, left, ch, cw), tol_px=0.01)
    expect = [i + 1 for i, (a, b, c, d) in enumerate(rects)
              if top <= (a + c) / 2 <= top + ch and left <= (b + d) / 2 <= left + cw]
    assert o["label_ids"].tolist() == expect
    assert o["image"].shape[:2] == (ch, cw)


@SETTINGS
@given(scenes(), seeds, st.integers(16, 64))
def test_scale_jitter_keeps_geometry(scene, seed, size):
    e = element(*scene)
    out = aug.ScaleJitter(size, (0.5, 1.5))(e, seed)
    o = check_geometry(out, tol_px=2.0)
    assert o["image"].shape == (size, size, 3) and o["masks"].shape[1:] == (size, size)


@SETTINGS
@given(scenes(), st.integers(8, 64), st.integers(8, 64))
def test_letterbox_keeps_geometry_and_aspect(scene, th, tw):
    h, w, rects = scene
    o = check_geometry(aug.Letterbox((th, tw))(element(h, w, rects)), tol_px=2.0)
    assert o["image"].shape == (th, tw, 3) and o["image"].dtype == np.float32
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    assert (o["image"][nh:] == 0).all() and (o["image"][:, nw:] == 0).all()
    boxes = np.array([[a / h, b / w, c / h, d / w] for a, b, c, d in rects])
    np.testing.assert_allclose(o["boxes"], boxes * [nh / th, nw / tw, nh / th, nw / tw],
                               atol=1e-5)


@SETTINGS
@given(scenes(), seeds)
def test_default_detection_preset_keeps_geometry(scene, seed):
    pipeline = aug.resolve("default", task="detection", image_size=(32, 40))
    o = check_geometry(pipeline(element(*scene), seed), tol_px=2.0)
    assert o["image"].shape == (32, 40, 3)


@SETTINGS
@given(scenes(), seeds)
def test_colour_jitter_keeps_geometry_dtype_and_range(scene, seed):
    e = element(*scene)
    o = np_el(aug.ColorJitter(0.3, 0.3, 0.3, 0.1)(e, seed))
    # uint8 in, float32 out (no rounding pass): values stay within 0..255.
    assert o["image"].dtype == np.float32 and o["image"].shape == e["image"].shape
    assert o["image"].min() >= 0 and o["image"].max() <= 255
    np.testing.assert_array_equal(o["boxes"], e["boxes"].numpy())
    np.testing.assert_array_equal(o["masks"], e["masks"].numpy())
    f = np_el(aug.ColorJitter(0.3, 0.3, 0.3, 0.1)(dict(e, image=tf.cast(e["image"],
                                                                      tf.float32)), seed))
    assert f["image"].dtype == np.float32 and f["image"].min() >= 0 and f["image"].max() <= 255


@SETTINGS
@given(scenes(), seeds)
def test_same_seed_same_output(scene, seed):
    pipeline = aug.Compose([aug.RandomFlip(), aug.RandomCrop(), aug.ScaleJitter(24),
                            aug.ColorJitter()])
    a = np_el(pipeline(element(*scene), seed))
    b = np_el(pipeline(element(*scene), seed))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


# ------------------------------------------------------------------ examples

def test_different_seeds_give_different_outputs():
    e = element(40, 40, [(5, 5, 20, 30)])
    pipeline = aug.Compose([aug.RandomCrop(0.1), aug.ColorJitter()])
    outs = {pipeline(e, s)["image"].numpy().tobytes() for s in range(6)}
    assert len(outs) > 1


@SETTINGS
@given(scenes(), st.data())
def test_scale_jitter_crop_and_pad_in_one_step_equals_crop_then_pad(scene, data):
    """ScaleJitter cuts and pads the pixels in one step (`_crop_and_pad`): the same
    element as `crop` followed by `pad`, pixels, boxes, masks, keypoints and dropped
    objects alike."""
    from cocoprep.augment.geometry import _crop_and_pad

    h, w, rects = scene
    top, left = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    ch, cw = data.draw(st.integers(1, h - top)), data.draw(st.integers(1, w - left))
    out_h, out_w = data.draw(st.integers(ch, 64)), data.draw(st.integers(cw, 64))
    e = element(h, w, rects, dtype=data.draw(st.sampled_from([np.uint8, np.float32])))
    rng = np.random.default_rng(h * 1000 + w)
    e["image"] = tf.constant(rng.integers(0, 256, (h, w, 3)).astype(e["image"].dtype.name))
    one = np_el(_crop_and_pad(e, top, left, ch, cw, out_h, out_w))
    two = np_el(aug.pad(aug.crop(e, top, left, ch, cw), 0, 0, out_h, out_w))
    assert one.keys() == two.keys() and one["image"].shape == (out_h, out_w, 3)
    for key in one:
        if np.asarray(one[key]).dtype == np.float32 and key != "image":
            np.testing.assert_allclose(one[key], two[key], atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(one[key], two[key], err_msg=key)


def test_no_flip_leaves_the_element_unchanged_keypoint_order_included():
    e = element(10, 20, [(0, 0, 5, 5), (2, 3, 9, 18)])
    e["keypoint_visibility"] = tf.constant([[2, 0, 1], [1, 2, 0]], tf.int32)  # not symmetric
    out = np_el(aug.RandomFlip(p=0.0, keypoint_flip_permutation=[2, 1, 0])(e, 5))
    for key, value in np_el(e).items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)


def test_flip_probability_is_respected_over_seeds():
    e = element(10, 20, [(0, 0, 5, 5)])
    flips = [aug.RandomFlip(p=0.5)(e, [s, 0])["boxes"].numpy()[0, 1] > 0.5 for s in range(40)]
    assert 5 < sum(flips) < 35
    assert not any(aug.RandomFlip(p=0.0)(e, [s, 0])["boxes"].numpy()[0, 1] > 0.5
                   for s in range(5))


def test_flip_permutes_keypoints():
    e = element(10, 20, [(0, 0, 5, 5)])
    out = aug.RandomFlip(p=1.0, keypoint_flip_permutation=[2, 1, 0])(e)
    kp, vis = out["keypoints"].numpy()[0], out["keypoint_visibility"].numpy()[0]
    np.testing.assert_allclose(kp[0], [4 / 10, 1 - 4 / 20], atol=1e-6)
    np.testing.assert_allclose(kp[2], [0.0, 1.0], atol=1e-6)
    assert vis.tolist() == [2, 0, 2]


def test_crop_with_no_objects_and_empty_masks():
    e = element(20, 30, [(0, 0, 4, 4)])
    empty = {k: (v[:0] if k in aug.OBJECT_KEYS else v) for k, v in e.items()}
    empty["num_boxes"] = tf.constant(0)
    for op in (aug.RandomCrop(), aug.ScaleJitter(16), aug.Letterbox(12), aug.RandomFlip(1.0)):
        o = np_el(op(empty, 3))
        assert o["boxes"].shape == (0, 4) and o["masks"].shape[0] == 0


def test_op_seed_in_constructor_is_used():
    e = element(30, 30, [(1, 1, 20, 20)])
    windows = {aug.RandomCrop(0.1, seed=s)(e)["image"].shape for s in range(11, 17)}
    assert len(windows) > 1  # different constructor seeds, different crops
    a = aug.RandomCrop(0.1, seed=11)(e)["image"].numpy()
    np.testing.assert_array_equal(a, aug.RandomCrop(0.1, seed=11)(e)["image"].numpy())
    np.testing.assert_array_equal(a, aug.RandomCrop(0.1)(e, 11)["image"].numpy())


def test_apply_gives_each_element_its_own_seed():
    e = element(16, 16, [(0, 0, 8, 8)])
    ds = tf.data.Dataset.from_tensors(e).repeat(12)
    out = list(aug.apply(ds, aug.RandomFlip(), seed=1))
    flipped = [o["boxes"].numpy()[0, 1] > 0.4 for o in out]
    assert 0 < sum(flipped) < 12
    again = [o["boxes"].numpy()[0, 1] > 0.4 for o in aug.apply(ds, aug.RandomFlip(), seed=1)]
    assert flipped == again


# ------------------------------------------------------------------ classification

def cls_element(h=40, w=60, dtype=np.uint8):
    rng = np.random.default_rng(0)
    return {"image": tf.constant(rng.integers(0, 256, (h, w, 3)).astype(dtype)),
            "label": tf.constant(2)}


def jpeg_bytes(h=48, w=64):
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@SETTINGS
@given(seeds)
def test_random_resized_crop_window_and_size(seed):
    e = cls_element()
    op = aug.RandomResizedCrop(None, scale=(0.2, 1.0))
    out = op(e, seed)["image"].numpy()
    h, w = out.shape[:2]
    assert 0.2 * 40 * 60 * 0.9 <= h * w <= 40 * 60
    assert out.dtype == np.uint8
    sized = aug.RandomResizedCrop(24)(e, seed)["image"]
    assert sized.shape == (24, 24, 3) and sized.dtype == tf.float32


@SETTINGS
@given(seeds)
def test_window_decode_of_a_jpeg_crops_the_same_window(seed):
    data = jpeg_bytes()
    op = aug.RandomResizedCrop(None)
    windowed = op({decoding.ENCODED: tf.constant(data)}, [seed, 0])["image"]
    full = {"image": tf.io.decode_jpeg(data, channels=3)}
    plain = op(full, [seed, 0])["image"]
    assert windowed.shape == plain.shape
    assert np.abs(windowed.numpy().astype(int) - plain.numpy().astype(int)).mean() < 2.0


def test_window_decode_of_a_png_matches_plain_crop():
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    op = aug.RandomResizedCrop(None)
    windowed = op({decoding.ENCODED: tf.constant(buf.getvalue())}, [5, 0])["image"]
    plain = op({"image": tf.constant(arr)}, [5, 0])["image"]
    np.testing.assert_array_equal(windowed.numpy(), plain.numpy())


# ------------------------------------------------------------------ decoding

@SETTINGS
@given(seeds)
def test_window_decode_at_reduced_scale_covers_the_output_size(seed):
    data = photo_jpeg(600, 800)
    op = aug.RandomResizedCrop(64, scale=(0.3, 1.0))
    windowed = op({decoding.ENCODED: tf.constant(data)}, [seed, 0])["image"].numpy()
    plain = op({"image": tf.io.decode_jpeg(data, channels=3)}, [seed, 0])["image"].numpy()
    assert windowed.shape == plain.shape == (64, 64, 3)
    assert np.abs(windowed - plain).mean() < 4.0


def test_masks_resize_as_one_image_equals_one_resize_per_mask():
    rng = np.random.default_rng(3)
    masks = tf.constant((rng.random((5, 37, 53)) > 0.5).astype(np.uint8))
    for size in [(80, 111), (20, 29), (37, 53)]:
        one = aug.resize_masks(masks, tf.constant(size))
        each = tf.image.resize(masks[..., None], size, method="nearest")[..., 0]
        np.testing.assert_array_equal(one.numpy(), each.numpy())
    empty = aug.resize_masks(tf.zeros([0, 37, 53], tf.uint8), tf.constant((8, 9)))
    assert empty.shape == (0, 8, 9)


def test_colour_jitter_brightness_and_contrast_are_one_multiply_add():
    """Brightness adds, contrast scales about the mean grey, both together are one
    x * gain + offset; compared with the same maths in numpy."""
    rng = np.random.default_rng(4)
    x = rng.integers(60, 190, (16, 20, 3)).astype(np.float32)  # no clipping
    e = {"image": tf.constant(x)}
    for seed in range(3):
        bright = aug.ColorJitter(0.2, 0)(e, seed)["image"].numpy()
        delta = np.median(bright - x)
        assert 0 < abs(delta) <= 0.2 * 255 + 1e-3
        np.testing.assert_allclose(bright, x + delta, atol=1e-3)
        con = aug.ColorJitter(0, 0.5)(e, seed)["image"].numpy()
        m = x[::8].mean()
        g = (con - m).std() / (x - m).std()
        assert 0.5 <= g <= 1.5 and abs(g - 1) > 1e-4
        np.testing.assert_allclose(con, (x - m) * g + m, atol=0.05)
        both = aug.ColorJitter(0.2, 0.5)(e, seed)["image"].numpy()
        gain = np.polyfit(x.ravel(), both.ravel(), 1)
        np.testing.assert_allclose(both, x * gain[0] + gain[1], atol=0.05)


@pytest.mark.parametrize("seed", range(4))
def test_colour_jitter_on_uint8_equals_float_maths(seed):
    """The uint8 path (one dequantize pass) gives the float path's values."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    op = aug.ColorJitter(0.3, 0.4)
    from_uint8 = op({"image": tf.constant(x)}, seed)["image"].numpy()
    from_float = op({"image": tf.constant(x.astype(np.float32))}, seed)["image"].numpy()
    assert from_uint8.dtype == np.float32
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-3)
    assert from_uint8.min() >= 0 and from_uint8.max() <= 255


def test_colour_jitter_saturation_and_hue_only_when_asked():
    rng = np.random.default_rng(5)
    e = {"image": tf.constant(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8))}
    plain = aug.ColorJitter(0, 0)(e, 1)["image"].numpy()
    np.testing.assert_array_equal(plain, e["image"].numpy().astype(np.float32))
    assert aug.ColorJitter().saturation == 0 and aug.ColorJitter().hue == 0
    for op in (aug.ColorJitter(0, 0, saturation=0.5), aug.ColorJitter(0, 0, hue=0.2)):
        assert not np.allclose(op(e, 1)["image"].numpy(), plain, atol=1.0)


def test_colour_jitter_leaves_grey_pixels_grey_without_hue():
    e = {"image": tf.fill([8, 8, 3], tf.constant(100, tf.uint8))}
    out = aug.ColorJitter(0.2, 0.2)(e, 1)["image"].numpy()
    assert (out == out[..., :1]).all()


@pytest.mark.parametrize("op", [aug.RandomRotation(15), aug.RandomZoom((0.8, 1.2))])
def test_rotation_and_zoom_keep_shape_and_change_pixels(op):
    e = cls_element()
    out = op(e, 4)["image"].numpy()
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert not np.array_equal(out, e["image"].numpy())
    np.testing.assert_array_equal(out, op(e, 4)["image"].numpy())
    f = op(cls_element(dtype=np.float32), 4)["image"]
    assert f.dtype == tf.float32


def test_identity_rotation_and_zoom_change_nothing():
    e = cls_element()
    np.testing.assert_array_equal(aug.RandomRotation(0.0)(e, 1)["image"].numpy(),
                                  e["image"].numpy())
    np.testing.assert_array_equal(aug.RandomZoom((1.0, 1.0))(e, 1)["image"].numpy(),
                                  e["image"].numpy())


@pytest.mark.parametrize("op", [aug.RandomRotation(), aug.RandomZoom(),
                                aug.RandomResizedCrop(8)])
def test_classification_only_ops_refuse_boxes(op):
    with pytest.raises(UsageError, match="cannot move boxes"):
        op(element(10, 10, [(0, 0, 5, 5)]), 1)


def test_default_classification_preset():
    pipeline = aug.resolve("default", task="classification", image_size=(16, 20))
    out = pipeline(cls_element(), 9)
    assert out["image"].shape == (16, 20, 3) and out["label"].numpy() == 2
    names = [type(op).__name__ for op in pipeline.ops]
    assert names[0] == "RandomResizedCrop" and "RandomFlip" in names


def test_resolve_forms():
    assert aug.resolve(None, task="detection") is None
    assert aug.resolve("none", task="detection") is None
    flip = aug.RandomFlip()
    assert aug.resolve([flip], task="detection").ops == [flip]
    c = aug.Compose([flip])
    assert aug.resolve(c, task="detection") is c
    assert aug.resolve(flip, task="detection").ops == [flip]
    # A plain function is called with the element only.
    double = aug.resolve([lambda e: dict(e, label=e["label"] * 2)], task="classification")
    assert double(cls_element(), 0)["label"].numpy() == 4
    with pytest.raises(UsageError, match="augment: expected"):
        aug.resolve("strong", task="detection")
    with pytest.raises(UsageError, match="augment: expected"):
        aug.resolve(3, task="detection")


def test_default_detection_flip_swaps_coco_keypoints_only_with_17():
    flip = aug.default_ops("detection", (32, 32), num_keypoints=17)[0]
    assert flip.keypoint_flip_permutation == list(aug.COCO_KEYPOINT_FLIP)
    assert aug.default_ops("detection", None, num_keypoints=3)[0].keypoint_flip_permutation is None
    names = [type(op).__name__ for op in aug.default_ops("detection", (32, 32))]
    assert names == ["RandomFlip", "RandomCrop", "ColorJitter", "Letterbox"]  # colour first


def test_resize_op_sets_static_size_and_moves_masks():
    e = element(20, 40, [(0, 0, 10, 20)])
    o = np_el(aug.Resize(10)(e))
    assert o["image"].shape == (10, 10, 3) and o["masks"].shape == (1, 10, 10)
    assert o["masks"][0, :5, :5].all() and not o["masks"][0, 5:, 5:].any()


def test_centre_on_the_crop_edge_counts_as_inside():
    # Found by hypothesis: float32 rounding put this centre 1e-6 outside.
    out = aug.crop(element(43, 12, [(30, 0, 42, 2)]), 36, 0, 1, 1)
    assert out["label_ids"].numpy().tolist() == [1]
    np.testing.assert_allclose(out["boxes"].numpy(), [[0, 0, 1, 1]])


@pytest.mark.parametrize("size", ["12", b"12", "64", 2.5, (8,), True, 0, (8, -1)])
def test_sizes_must_be_an_int_or_a_pair(size):
    """A string is not read character by character ("12" is not (1, 2))."""
    for op in (aug.Letterbox, aug.Resize, aug.ScaleJitter):
        with pytest.raises(UsageError, match="^size: expected an int or"):
            op(size)
