"""Augmentation as TensorFlow ops on the element dict that `cocoprep.load` yields.

Boxes, masks and keypoints move with the pixels. Every op uses stateless random
ops driven by a seed, so the same seed gives the same output.

Use inside the reader::

    ds = cocoprep.load("tfrecords", augment="default", image_size=512, seed=1)
    ds = cocoprep.load("tfrecords", augment=[RandomFlip(), ColorJitter(0.2)], seed=1)

or alone on any dataset of element dicts (a per-element seed is derived from
`seed` and the element's position)::

    ds = cocoprep.augment.apply(ds, Compose([RandomFlip(), RandomCrop()]), seed=1)

An op is called as ``op(element, seed)``, `seed` being a shape-[2] integer tensor (or
an int); without one it uses the seed it was built with (the same decision for
every element, which is what tests want and training does not).

Element keys an op understands: ``image`` (uint8 or float32 0..255, [H, W, 3]),
and for detection ``boxes`` [N, 4] (ymin, xmin, ymax, xmax normalized),
``masks`` [N, H, W], ``keypoints`` [N, K, 2] (y, x normalized) with
``keypoint_visibility`` [N, K], and the per-object ``classes``, ``label_ids``,
``is_crowd``, ``area`` (kept as stored), ``num_boxes``. Keys an op does not know
pass through unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from cocoprep.decoding import (
    ENCODED, ENCODED_MASKS, decode_any, decode_image, decode_jpeg_window, decode_masks, is_jpeg,
)
from cocoprep.errors import UsageError

__all__ = [
    "Op", "Decode", "Compose", "RandomFlip", "RandomCrop", "ScaleJitter", "ColorJitter", "Letterbox",
    "Resize", "COCO_KEYPOINT_FLIP",
    "RandomResizedCrop", "RandomRotation", "RandomZoom", "resolve", "apply", "resize_to",
    "default_ops",
]

# COCO person keypoints (nose, left/right eye, ear, shoulder, elbow, wrist, hip, knee,
# ankle): the order after a horizontal flip, so "left_eye" stays a left eye.
COCO_KEYPOINT_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# Per-object tensors: filtered together when objects are dropped.
OBJECT_KEYS = ("boxes", "classes", "label_ids", "is_crowd", "area", "masks", "keypoints",
               "keypoint_visibility")


# ------------------------------------------------------------------ seeds

def _as_seed(seed, own: int | None) -> tf.Tensor:
    if seed is None:
        seed = 0 if own is None else own
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    return tf.cast(tf.reshape(seed, [2]), tf.int64)


def _split(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
    seeds = tf.random.experimental.stateless_split(seed, num=max(n, 1))
    return [seeds[i] for i in range(n)]


def _uniform(seed, minval=0.0, maxval=1.0) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed, minval=minval, maxval=maxval, dtype=tf.float32)


def _randint(seed, maxval_inclusive) -> tf.Tensor:
    """Uniform int32 in [0, maxval_inclusive]."""
    top = tf.cast(maxval_inclusive, tf.float32) + 1.0
    value = tf.cast(tf.floor(_uniform(seed) * top), tf.int32)
    return tf.minimum(value, tf.cast(maxval_inclusive, tf.int32))


# ------------------------------------------------------------------ geometry

def _hw(image) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.shape(image)
    return shape[0], shape[1]


def _keep_objects(element: dict, keep: tf.Tensor) -> dict:
    out = dict(element)
    for key in OBJECT_KEYS:
        if key in out:
            out[key] = tf.boolean_mask(out[key], keep)
    if "num_boxes" in out:
        out["num_boxes"] = tf.reduce_sum(tf.cast(keep, tf.int32))
    return out


def _map_keypoints(element: dict, fn) -> dict:
    """Apply `fn` to visible keypoints ([..., 2] y, x); points leaving [0, 1] become
    absent (visibility 0, coordinates 0)."""
    kp = element["keypoints"]
    vis = element["keypoint_visibility"]
    moved = fn(kp)
    inside = tf.reduce_all((moved >= 0.0) & (moved <= 1.0), axis=-1)
    vis = tf.where(inside & (vis > 0), vis, tf.zeros_like(vis))
    moved = tf.where((vis > 0)[..., None], moved, tf.zeros_like(moved))
    out = dict(element)
    out["keypoints"], out["keypoint_visibility"] = moved, vis
    return out


def crop(element: dict, top, left, height, width) -> dict:
    """Crop to the pixel window; boxes are clipped to it and objects whose centre
    falls outside are dropped; masks are cropped; keypoints outside become absent."""
    image = element["image"]
    img_h, img_w = _hw(image)
    top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    out = dict(element)
    out["image"] = image[top:top + height, left:left + width]
    if "masks" in out:
        out["masks"] = out["masks"][:, top:top + height, left:left + width]
    src = tf.cast(tf.stack([img_h, img_w]), tf.float32)
    off = tf.cast(tf.stack([top, left]), tf.float32)
    dst = tf.cast(tf.stack([height, width]), tf.float32)
    if "keypoints" in out:
        out = _map_keypoints(out, lambda kp: (kp * src - off) / dst)
    if "boxes" in out:
        boxes = (out["boxes"] * tf.tile(src, [2]) - tf.tile(off, [2])) / tf.tile(dst, [2])
        cy = (boxes[:, 0] + boxes[:, 2]) / 2.0
        cx = (boxes[:, 1] + boxes[:, 3]) / 2.0
        # A centre on the crop's edge counts as inside; 1e-3 px absorbs float32 rounding.
        ey, ex = 1e-3 / dst[0], 1e-3 / dst[1]
        keep = (cy >= -ey) & (cy <= 1.0 + ey) & (cx >= -ex) & (cx <= 1.0 + ex)
        out["boxes"] = tf.clip_by_value(boxes, 0.0, 1.0)
        out = _keep_objects(out, keep)
    return out


def pad(element: dict, top, left, height, width) -> dict:
    """Place the image at (top, left) of a zero canvas of height x width."""
    image = element["image"]
    img_h, img_w = _hw(image)
    top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    paddings = [[top, height - img_h - top], [left, width - img_w - left]]
    out = dict(element)
    out["image"] = tf.pad(image, paddings + [[0, 0]])
    if "masks" in out:
        out["masks"] = tf.pad(out["masks"], [[0, 0]] + paddings)
    src = tf.cast(tf.stack([img_h, img_w]), tf.float32)
    off = tf.cast(tf.stack([top, left]), tf.float32)
    dst = tf.cast(tf.stack([height, width]), tf.float32)
    if "keypoints" in out:
        out = _map_keypoints(out, lambda kp: (kp * src + off) / dst)
    if "boxes" in out:
        out["boxes"] = tf.clip_by_value(
            (out["boxes"] * tf.tile(src, [2]) + tf.tile(off, [2])) / tf.tile(dst, [2]), 0.0, 1.0)
    return out


def resize(element: dict, height, width) -> dict:
    """Resize the image (bilinear, float32 result) and masks (nearest); normalized
    boxes and keypoints are unchanged."""
    out = dict(element)
    size = tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32)])
    image = element["image"]
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    # A letterbox of an image that already fits (640x480 into 640) keeps its pixels.
    out["image"] = tf.cond(same, lambda: _to_float(image), lambda: tf.image.resize(image, size))
    if "masks" in out:
        out["masks"] = _resize_masks(out["masks"], size)
    return out


def _resize_masks(masks, size) -> tf.Tensor:
    """Nearest-neighbour resize of [N, H, W] masks as ONE image with N channels (about
    half the time of N one-channel images; same pixels)."""
    def one_image():
        resized = tf.image.resize(tf.transpose(masks, [1, 2, 0]), size, method="nearest")
        return tf.transpose(resized, [2, 0, 1])

    # The resize op refuses an image of 0 channels (an image without objects).
    return tf.cond(tf.shape(masks)[0] > 0, one_image,
                   lambda: tf.zeros(tf.concat([[0], size], 0), masks.dtype))


def letterbox(element: dict, size: tuple[int, int]) -> dict:
    """Resize keeping the aspect ratio so the image fits `size` (height, width), then
    pad bottom/right with 0. The image becomes float32 with static shape `size`."""
    target_h, target_w = size
    img_h, img_w = _hw(element["image"])
    h, w = tf.cast(img_h, tf.float32), tf.cast(img_w, tf.float32)
    scale = tf.minimum(target_h / h, target_w / w)
    new_h = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, target_h)
    new_w = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, target_w)
    out = pad(resize(element, new_h, new_w), 0, 0, target_h, target_w)
    return _set_size(out, size)


def _set_size(element: dict, size: tuple[int, int]) -> dict:
    element["image"] = tf.ensure_shape(element["image"], [size[0], size[1], 3])
    if "masks" in element:
        element["masks"] = tf.ensure_shape(element["masks"], [None, size[0], size[1]])
    return element


def _to_float(image) -> tf.Tensor:
    return tf.cast(image, tf.float32) if image.dtype != tf.float32 else image


def resize_to(element: dict, size: tuple[int, int], *, keep_aspect: bool) -> dict:
    """The reader's last step: images float32 of exactly `size` (letterboxed when
    `keep_aspect`, as for detection; else a plain resize). A no-op when an
    augmentation already produced that size."""
    image = element["image"]
    if image.dtype == tf.float32 and tuple(image.shape[:2]) == tuple(size):
        return element
    if keep_aspect:
        return letterbox(element, size)
    out = dict(element)
    out["image"] = tf.ensure_shape(tf.image.resize(image, size), [size[0], size[1], 3])
    return out


# ------------------------------------------------------------------ ops

class Op:
    """Base class: `op(element, seed=None) -> element`."""

    task: str | None = None  # "classification" when the op cannot move boxes
    decodes = False  # True: takes the undecoded element (in place of `Decode`)
    scale_invariant = False  # True: works the same on a reduced-scale decode

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, element: dict, seed=None) -> dict:
        if self.task == "classification" and "boxes" in element:
            raise UsageError(type(self).__name__, "a classification element (it cannot "
                             "move boxes)", "an element with boxes")
        return self.apply(dict(element), _as_seed(seed, self.seed))

    def apply(self, element: dict, seed: tf.Tensor) -> dict:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Decode(Op):
    """Decoding, the first step of the reader's element pipeline: ``encoded`` (image
    bytes) -> ``image`` uint8 [H, W, 3], and ``encoded_masks`` (a PNG per object) ->
    ``masks`` uint8 [N, H, W] 0/1. An op whose `decodes` is True (RandomResizedCrop,
    which decodes only its window of a JPEG) takes this step's place.

    `fit`: the size the image is resized to right after (letterboxed when
    `keep_aspect`); a JPEG shrunk 2x or more is then decoded at reduced DCT scale (see
    `decode_image`). Only for pipelines where nothing between the decode and that
    resize depends on the pixel size, and without masks (they keep the stored size).
    """

    decodes = True

    def __init__(self, fit: int | tuple[int, int] | None = None, *, keep_aspect: bool = False):
        super().__init__(None)
        self.fit = _pair(fit) if fit is not None else None
        self.keep_aspect = bool(keep_aspect)

    def apply(self, element, seed):
        image = decode_image(element.pop(ENCODED), fit=self.fit, keep_aspect=self.keep_aspect)
        element["image"] = image
        if ENCODED_MASKS in element:
            height, width = _hw(image)
            element["masks"] = decode_masks(element.pop(ENCODED_MASKS), height, width)
        return element


class Compose(Op):
    """Apply ops in order, each with its own seed split from the element's seed.
    Plain callables (not `Op`s) are called with the element only."""

    def __init__(self, ops: Sequence[Callable], seed: int | None = None):
        super().__init__(seed)
        self.ops = list(ops)
        for op in self.ops:
            if not callable(op):
                raise UsageError("augment", "ops (callables)", op)

    def __call__(self, element: dict, seed=None) -> dict:
        seeds = _split(_as_seed(seed, self.seed), len(self.ops))
        element = dict(element)
        for op, op_seed in zip(self.ops, seeds):
            element = op(element, op_seed) if isinstance(op, Op) else op(element)
        return element

    def __repr__(self) -> str:
        return f"Compose({self.ops!r})"


class RandomFlip(Op):
    """Horizontal flip with probability `p`; boxes, masks and keypoints follow.

    `keypoint_flip_permutation`: index order that swaps left/right keypoints (e.g.
    COCO's left_eye <-> right_eye) so their names stay true after a flip.
    """

    scale_invariant = True

    def __init__(self, p: float = 0.5, *, keypoint_flip_permutation: Sequence[int] | None = None,
                 seed: int | None = None):
        super().__init__(seed)
        self.p = float(p)
        self.keypoint_flip_permutation = (
            list(keypoint_flip_permutation) if keypoint_flip_permutation is not None else None)

    def apply(self, element, seed):
        flip = _uniform(seed) < self.p
        return tf.cond(flip, lambda: _flip(element, self.keypoint_flip_permutation),
                       lambda: dict(element))


def _flip(element: dict, permutation) -> dict:
    out = dict(element)
    out["image"] = tf.reverse(element["image"], axis=[1])
    if "boxes" in out:
        b = out["boxes"]
        out["boxes"] = tf.stack([b[:, 0], 1.0 - b[:, 3], b[:, 2], 1.0 - b[:, 1]], axis=-1)
    if "masks" in out:
        out["masks"] = tf.reverse(out["masks"], axis=[2])
    if "keypoints" in out:
        kp, vis = out["keypoints"], out["keypoint_visibility"]
        moved = tf.stack([kp[..., 0], 1.0 - kp[..., 1]], axis=-1)
        moved = tf.where((vis > 0)[..., None], moved, kp)
        if permutation is not None:
            moved = tf.gather(moved, permutation, axis=1)
            vis = tf.gather(vis, permutation, axis=1)
        out["keypoints"], out["keypoint_visibility"] = moved, vis
    return out


class RandomCrop(Op):
    """Detection crop (SSD style) that keeps at least `min_object_covered` of some
    object's box; boxes clipped, objects whose centre falls outside dropped, masks
    cropped. Applied with probability `p`; an image without objects is cropped by
    area/aspect only."""

    def __init__(self, min_object_covered: float = 0.3, *,
                 aspect_ratio_range: tuple[float, float] = (0.5, 2.0),
                 area_range: tuple[float, float] = (0.3, 1.0), max_attempts: int = 50,
                 p: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.min_object_covered = float(min_object_covered)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.area_range = tuple(area_range)
        self.max_attempts = int(max_attempts)
        self.p = float(p)

    def apply(self, element, seed):
        s_apply, s_box = _split(seed, 2)
        boxes = element.get("boxes")
        if boxes is None:
            boxes = tf.zeros([0, 4], tf.float32)
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(element["image"]), bounding_boxes=tf.reshape(boxes, [1, -1, 4]),
            seed=s_box, min_object_covered=self.min_object_covered,
            aspect_ratio_range=self.aspect_ratio_range, area_range=self.area_range,
            max_attempts=self.max_attempts, use_image_if_no_bounding_boxes=True)
        crops = _uniform(s_apply) < self.p
        img_h, img_w = _hw(element["image"])
        top = tf.where(crops, begin[0], 0)
        left = tf.where(crops, begin[1], 0)
        height = tf.where(crops, size[0], img_h)
        width = tf.where(crops, size[1], img_w)
        return crop(element, top, left, height, width)


class ScaleJitter(Op):
    """Letterbox-scale to `output_size`, times a random factor in `scale_range`, then
    randomly crop (when larger) or pad bottom/right (when smaller) to `output_size`."""

    def __init__(self, output_size: int | tuple[int, int], scale_range=(0.5, 2.0),
                 seed: int | None = None):
        super().__init__(seed)
        self.output_size = _pair(output_size)
        self.scale_range = tuple(float(v) for v in scale_range)

    def apply(self, element, seed):
        s_scale, s_y, s_x = _split(seed, 3)
        out_h, out_w = self.output_size
        img_h, img_w = _hw(element["image"])
        h, w = tf.cast(img_h, tf.float32), tf.cast(img_w, tf.float32)
        factor = _uniform(s_scale, self.scale_range[0], self.scale_range[1])
        scale = tf.minimum(out_h / h, out_w / w) * factor
        new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), 1)
        new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), 1)
        element = resize(element, new_h, new_w)
        crop_h, crop_w = tf.minimum(new_h, out_h), tf.minimum(new_w, out_w)
        element = crop(element, _randint(s_y, new_h - crop_h), _randint(s_x, new_w - crop_w),
                       crop_h, crop_w)
        return _set_size(pad(element, 0, 0, out_h, out_w), self.output_size)


class Letterbox(Op):
    """Deterministic letterbox resize to `size` (see `letterbox`)."""

    def __init__(self, size: int | tuple[int, int]):
        super().__init__(None)
        self.size = _pair(size)

    def apply(self, element, seed):
        return letterbox(element, self.size)


class ColorJitter(Op):
    """Random brightness (+-delta of full scale) and contrast (factor in 1 +- value,
    about the image's mean grey level), fused into ONE multiply-add on the pixels;
    saturation (factor in 1 +- value) and hue (+-delta, a fraction of the hue circle)
    only when asked: they go through HSV and each costs about as much as a JPEG decode.
    0 turns a part off. Geometry is untouched; the image becomes float32 within 0..255
    (rounding back to uint8 would cost another pass; resizing works in float anyway).

    Apply it before ops that upscale or pad (the detection default runs it on the
    decoded pixels, before the letterbox): it then costs less and never colours the
    padding.
    """

    scale_invariant = True  # the same at any image size: a reduced decode may precede it

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.0, hue: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)

    def apply(self, element, seed):
        s_b, s_c, s_s, s_h = _split(seed, 4)
        image = element["image"]
        x = image
        # Saturation and hue are scale-invariant, so they work on 0..255 directly; the
        # HSV round trip keeps the values in range.
        if self.saturation > 0:
            x = tf.image.adjust_saturation(
                _to_float(x), _uniform(s_s, max(0.0, 1.0 - self.saturation),
                                       1.0 + self.saturation))
        if self.hue > 0:
            x = tf.image.adjust_hue(_to_float(x), _uniform(s_h, -min(self.hue, 0.5),
                                                           min(self.hue, 0.5)))
        if self.brightness > 0 or self.contrast > 0:
            gain, offset = self._gain_offset(x, s_b, s_c)
            if x.dtype == tf.uint8 and self.contrast < 1.0:  # gain > 0
                # uint8 -> float32 and x * gain + offset in one pass: dequantizing maps
                # 0..255 linearly onto [offset, offset + 255 * gain].
                x = tf.quantization.dequantize(tf.bitcast(x, tf.quint8), offset,
                                               offset + 255.0 * gain, mode="MIN_COMBINED")
            else:
                x = _to_float(x) * gain + offset
            x = tf.minimum(tf.maximum(x, 0.0), 255.0)
        element["image"] = _to_float(x)
        return element

    def _gain_offset(self, x, s_b, s_c):
        """Brightness then contrast as x * gain + offset: (x + d - m) * g + m with m the
        mean grey after brightness (mean(x) + d)."""
        delta = (_uniform(s_b, -self.brightness, self.brightness) * 255.0
                 if self.brightness > 0 else tf.constant(0.0))
        if self.contrast <= 0:
            return tf.constant(1.0), delta
        gain = _uniform(s_c, max(0.0, 1.0 - self.contrast), 1.0 + self.contrast)
        # The mean (over all pixels and channels, as Pillow's contrast) is estimated on
        # every 8th row (whole rows: a strided slice of columns costs more than the
        # colour pass itself).
        rows = tf.gather(x, tf.range(0, tf.shape(x)[0], 8))
        mean = tf.reduce_mean(_to_float(rows))
        return gain, (1.0 - gain) * mean + delta


class Resize(Op):
    """Deterministic plain resize to `size` (bilinear, float32; masks nearest). For
    classification, or for detection when the aspect ratio may change."""

    def __init__(self, size: int | tuple[int, int]):
        super().__init__(None)
        self.size = _pair(size)

    def apply(self, element, seed):
        return _set_size(resize(element, *self.size), self.size)


class RandomResizedCrop(Op):
    """Inception-style crop: a window covering `scale` of the area with aspect ratio in
    `ratio`, resized to `size` (when given). Inside `load` a JPEG is decoded only
    inside the window (`decode_and_crop_jpeg`), which is where its speed comes from."""

    task = "classification"
    decodes = True  # takes an undecoded element in place of the Decode step

    def __init__(self, size: int | tuple[int, int] | None = None, *,
                 scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), max_attempts: int = 10,
                 seed: int | None = None):
        super().__init__(seed)
        self.size = _pair(size) if size is not None else None
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.max_attempts = int(max_attempts)

    def _window(self, shape, seed):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape, bounding_boxes=tf.zeros([1, 0, 4], tf.float32), seed=seed,
            min_object_covered=0.0, aspect_ratio_range=self.ratio, area_range=self.scale,
            max_attempts=self.max_attempts, use_image_if_no_bounding_boxes=True)
        return begin[0], begin[1], size[0], size[1]

    def apply(self, element, seed):
        if "image" in element:
            element["image"] = self._crop(element["image"], seed)
        else:
            element["image"] = self._decode_window(element.pop(ENCODED), seed)
        if self.size is not None:
            element["image"] = tf.ensure_shape(
                tf.image.resize(element["image"], self.size), [*self.size, 3])
        return element

    def _crop(self, image, seed):
        top, left, h, w = self._window(tf.shape(image), seed)
        return image[top:top + h, left:left + w]

    def _decode_window(self, encoded, seed):
        """As the decode step: a JPEG is decoded only inside the window (at reduced DCT
        scale when the window is 2x or more larger than `size`); other formats whole."""
        def jpeg():
            window = self._window(tf.image.extract_jpeg_shape(encoded), seed)
            return decode_jpeg_window(encoded, window, self.size)

        image = tf.cond(is_jpeg(encoded), jpeg, lambda: self._crop(decode_any(encoded), seed))
        image.set_shape([None, None, 3])
        return image


def _projective(image, transform, fill_mode: str):
    """Apply a 3x3 output->input transform (8 numbers) to one image."""
    img_h, img_w = _hw(image)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=_to_float(image)[None], transforms=tf.reshape(transform, [1, 8]),
        output_shape=tf.stack([img_h, img_w]), fill_value=0.0, interpolation="BILINEAR",
        fill_mode=fill_mode)[0]
    return tf.cast(tf.round(out), tf.uint8) if image.dtype == tf.uint8 else out


def _about_centre(image, a, b, c, d) -> tf.Tensor:
    """Transform (output -> input) `[[a, b], [c, d]]` around the image centre."""
    img_h, img_w = _hw(image)
    cx = (tf.cast(img_w, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(img_h, tf.float32) - 1.0) / 2.0
    return tf.stack([a, b, cx - a * cx - b * cy, c, d, cy - c * cx - d * cy, 0.0, 0.0])


class RandomRotation(Op):
    """Rotate by a random angle in +-`max_degrees` about the centre (classification
    only); the uncovered corners are filled by `fill_mode` (reflect, constant, ...)."""

    task = "classification"

    def __init__(self, max_degrees: float = 10.0, *, fill_mode: str = "reflect",
                 seed: int | None = None):
        super().__init__(seed)
        self.max_degrees = float(max_degrees)
        self.fill_mode = fill_mode.upper()

    def apply(self, element, seed):
        angle = _uniform(seed, -self.max_degrees, self.max_degrees) * (3.141592653589793 / 180)
        cos, sin = tf.cos(angle), tf.sin(angle)
        image = element["image"]
        element["image"] = _projective(image, _about_centre(image, cos, -sin, sin, cos),
                                       self.fill_mode)
        return element


class RandomZoom(Op):
    """Zoom about the centre by a factor in `zoom_range` (> 1 zooms in; classification
    only); the image keeps its size."""

    task = "classification"

    def __init__(self, zoom_range: tuple[float, float] = (0.9, 1.1), *,
                 fill_mode: str = "reflect", seed: int | None = None):
        super().__init__(seed)
        self.zoom_range = tuple(float(v) for v in zoom_range)
        self.fill_mode = fill_mode.upper()

    def apply(self, element, seed):
        inv = 1.0 / _uniform(seed, self.zoom_range[0], self.zoom_range[1])
        image = element["image"]
        element["image"] = _projective(image, _about_centre(image, inv, 0.0, 0.0, inv),
                                       self.fill_mode)
        return element


# ------------------------------------------------------------------ presets

def _pair(size) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    else:
        try:
            if isinstance(size, (str, bytes)):
                raise TypeError(size)
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise UsageError("size", "an int or (height, width)", size) from None
        pair = (h, w)
    if min(pair) < 1:
        raise UsageError("size", "an int or (height, width) of positive sizes", size)
    return pair


def default_ops(task: str, image_size: tuple[int, int] | None = None, *,
                num_keypoints: int = 0) -> list[Op]:
    """The `augment="default"` set for a task.

    detection: flip (with 17 keypoints, the COCO left/right swap), SSD crop (half the
    time, >= 30% of an object kept), mild colour jitter (brightness and contrast
    +-0.1, one multiply-add; saturation and hue, which cost a decode each, are left
    out) on the decoded pixels, then letterbox to `image_size` (when given), so the
    padding stays exactly 0.
    classification: Inception random resized crop to `image_size` (decoding only the
    crop window of a JPEG, at reduced DCT scale when the window is 2x or more larger),
    then flip. Colour jitter, rotation and zoom are left out of the default: they cost
    15-60% of the decode+resize work per image at 299 px and add little on top of the
    crop for most models; add them with a list, e.g.
    ``default_ops("classification", size) + [ColorJitter(0.2, 0.2)]``.
    """
    if task == "detection":
        permutation = COCO_KEYPOINT_FLIP if num_keypoints == len(COCO_KEYPOINT_FLIP) else None
        ops: list[Op] = [RandomFlip(keypoint_flip_permutation=permutation),
                         RandomCrop(0.3, p=0.5), ColorJitter(0.1, 0.1)]
        if image_size is not None:
            ops.append(Letterbox(image_size))
        return ops
    if task == "classification":
        # The standard ImageNet training set (as in the TF Model Garden ResNet recipe).
        return [RandomResizedCrop(image_size), RandomFlip()]
    raise UsageError("task", "detection or classification", task)


def resolve(augment: Any, *, task: str, image_size: tuple[int, int] | None = None,
            num_keypoints: int = 0) -> Compose | None:
    """Turn `load(augment=...)` into a `Compose` (or None)."""
    if augment is None or augment is False or augment == "none":
        return None
    if isinstance(augment, str):
        if augment == "default":
            return Compose(default_ops(task, image_size, num_keypoints=num_keypoints))
        raise UsageError("augment", "'default', 'none', an op, Compose or a list of ops",
                         augment)
    if isinstance(augment, Compose):
        return augment
    if isinstance(augment, (list, tuple)):
        return Compose(augment)
    if callable(augment):
        return Compose([augment])
    raise UsageError("augment", "'default', 'none', an op, Compose or a list of ops", augment)


def apply(dataset: tf.data.Dataset, op: Any, seed: int, *, task: str = "detection",
          num_parallel_calls=tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Map `op` (an op, `Compose`, a list, or ``"default"`` for `task`) over a dataset
    of element dicts, each element getting its own seed (from `seed` and its position)."""
    pipeline = op if isinstance(op, Op) else resolve(op, task=task)
    if pipeline is None:
        return dataset
    base = tf.constant(int(seed), tf.int64)
    return dataset.enumerate().map(
        lambda i, element: pipeline(element, tf.stack([base, i])),
        num_parallel_calls=num_parallel_calls)
