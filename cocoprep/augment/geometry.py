"""Geometry: crop, pad, resize and flip the pixels, with boxes, masks and keypoints
moving along; the ops that use them on detection and segmentation elements.

A segmentation element's ``mask`` ([H, W] class ids) moves with the pixels too: it is
resized nearest-neighbour only (never inventing an id) and padded with the void id."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from cocoprep.augment.base import Op, image_hw, pair, randint, split_seed, to_float, uniform
from cocoprep.schema import VOID_ID

__all__ = [
    "COCO_KEYPOINT_FLIP", "OBJECT_KEYS", "CLASS_MASK", "crop", "pad", "resize", "resize_masks",
    "resize_class_mask", "letterbox",
    "set_size", "resize_to", "RandomFlip", "RandomCrop", "ScaleJitter", "Letterbox", "Resize",
]

# COCO person keypoints (nose, left/right eye, ear, shoulder, elbow, wrist, hip, knee,
# ankle): the order after a horizontal flip, so "left_eye" stays a left eye.
COCO_KEYPOINT_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# Per-object tensors: filtered together when objects are dropped.
OBJECT_KEYS = ("boxes", "classes", "label_ids", "is_crowd", "area", "masks", "keypoints",
               "keypoint_visibility")

# A segmentation element's [H, W] class-id mask (void = schema.VOID_ID).
CLASS_MASK = "mask"


def _keep_objects(element: dict, keep: tf.Tensor) -> dict:
    """The objects where `keep` is True: their indices found once, then one gather per
    per-object tensor (a boolean_mask per tensor cost ~17 graph ops each)."""
    out = dict(element)
    rows = tf.reshape(tf.where(keep), [-1])
    for key in OBJECT_KEYS:
        if key in out:
            out[key] = tf.gather(out[key], rows)
    if "num_boxes" in out:
        out["num_boxes"] = tf.size(rows, out_type=tf.int32)
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


def _window(image, top, left, height, width) -> tuple:
    """int32 scalars (image height, image width, top, left, height, width) and the
    float32 [4] vectors (ymin, xmin, ymax, xmax order) of the image size, the window's
    offset and the window's size, for box and keypoint maths."""
    img_h, img_w = image_hw(image)
    ints = [img_h, img_w] + [tf.cast(v, tf.int32) for v in (top, left, height, width)]
    src, off, dst = tf.unstack(tf.cast(tf.reshape(tf.stack(
        [ints[0], ints[1], ints[0], ints[1], ints[2], ints[3], ints[2], ints[3],
         ints[4], ints[5], ints[4], ints[5]]), [3, 4]), tf.float32))
    return ints, src, off, dst


def crop(element: dict, top, left, height, width) -> dict:
    """Crop to the pixel window; boxes are clipped to it and objects whose centre
    falls outside are dropped; masks are cropped; keypoints outside become absent."""
    ints, src, off, dst = _window(element["image"], top, left, height, width)
    _, _, top, left, height, width = ints
    out = dict(element)
    out["image"] = element["image"][top:top + height, left:left + width]
    return _crop_objects(out, src, off, dst, ints)


def _crop_objects(element: dict, src, off, dst, ints) -> dict:
    """`crop` for everything but the image."""
    _, _, top, left, height, width = ints
    out = dict(element)
    if "masks" in out:
        out["masks"] = out["masks"][:, top:top + height, left:left + width]
    if CLASS_MASK in out:
        out[CLASS_MASK] = out[CLASS_MASK][top:top + height, left:left + width]
    if "keypoints" in out:
        out = _map_keypoints(out, lambda kp: (kp * src[:2] - off[:2]) / dst[:2])
    if "boxes" in out:
        boxes = (out["boxes"] * src - off) / dst
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
        # A centre on the crop's edge counts as inside; 1e-3 px absorbs float32 rounding.
        edge = 1e-3 / dst[:2]
        keep = tf.reduce_all((centre >= -edge) & (centre <= 1.0 + edge), axis=1)
        out["boxes"] = tf.clip_by_value(boxes, 0.0, 1.0)
        out = _keep_objects(out, keep)
    return out


def pad(element: dict, top, left, height, width) -> dict:
    """Place the image at (top, left) of a zero canvas of height x width (a class mask
    on a void canvas)."""
    image = element["image"]
    ints, src, off, dst = _window(image, top, left, height, width)
    img_h, img_w, top, left, height, width = ints
    paddings = [[top, height - img_h - top], [left, width - img_w - left]]
    out = dict(element)
    out["image"] = _pad_pixels(image, paddings, height, width)
    return _pad_objects(out, src, off, dst, paddings)


def _pad_objects(element: dict, src, off, dst, paddings) -> dict:
    """`pad` for everything but the image."""
    out = dict(element)
    if "masks" in out:
        out["masks"] = tf.pad(out["masks"], [[0, 0]] + paddings)
    if CLASS_MASK in out:
        out[CLASS_MASK] = tf.pad(out[CLASS_MASK], paddings, constant_values=VOID_ID)
    if "keypoints" in out:
        out = _map_keypoints(out, lambda kp: (kp * src[:2] + off[:2]) / dst[:2])
    if "boxes" in out:
        out["boxes"] = tf.clip_by_value((out["boxes"] * src + off) / dst, 0.0, 1.0)
    return out


def _rows(image) -> tuple:
    """The [H, W * C] view of an [H, W, C] image, and C."""
    img_h, img_w = image_hw(image)
    channels = image.shape[-1] if image.shape[-1] is not None else tf.shape(image)[2]
    return tf.reshape(image, [img_h, img_w * channels]), channels


def _pad_pixels(image, paddings, height, width) -> tf.Tensor:
    """`tf.pad` of an [H, W, C] image, done on its [H, W * C] view: the same pixels,
    about 5x faster when the width grows (a 3-value innermost dimension makes the
    3-D pad copy value by value)."""
    rows, channels = _rows(image)
    padded = tf.pad(rows, [paddings[0], [paddings[1][0] * channels, paddings[1][1] * channels]])
    return tf.reshape(padded, [height, width, channels])


def _crop_and_pad(element: dict, top, left, height, width, out_h: int, out_w: int) -> dict:
    """`crop` to the window, then `pad` bottom/right to out_h x out_w: the same
    element, the pixels cut and padded on the [H, W * C] view (one slice, one pad)."""
    image = element["image"]
    ints, src, off, dst = _window(image, top, left, height, width)
    _, _, top, left, height, width = ints
    rows, channels = _rows(image)
    cut = rows[top:top + height, left * channels:(left + width) * channels]
    canvas = tf.pad(cut, [[0, out_h - height], [0, (out_w - width) * channels]])
    out = _crop_objects(dict(element), src, off, dst, ints)
    out["image"] = tf.reshape(canvas, [out_h, out_w, channels])
    # The crop's size is the pad's source size (`dst` above); the pad adds no offset.
    paddings = [[0, out_h - height], [0, out_w - width]]
    return _pad_objects(out, dst, tf.zeros([4]), tf.constant([out_h, out_w] * 2, tf.float32),
                        paddings)


def resize(element: dict, height, width) -> dict:
    """Resize the image (bilinear, float32 result) and masks (nearest; the class
    mask too); normalized boxes and keypoints are unchanged."""
    out = dict(element)
    size = tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32)])
    image = element["image"]
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    # A letterbox of an image that already fits (640x480 into 640) keeps its pixels.
    # Bilinear from float32 input: the same values as from uint8 (the kernel computes in
    # float32 either way), in about 2/3 of the time.
    out["image"] = tf.cond(same, lambda: to_float(image),
                           lambda: tf.image.resize(to_float(image), size))
    if "masks" in out:
        out["masks"] = resize_masks(out["masks"], size)
    if CLASS_MASK in out:
        mask = out[CLASS_MASK]
        out[CLASS_MASK] = tf.cond(same, lambda: mask, lambda: resize_class_mask(mask, size))
    return out


def resize_class_mask(mask, size) -> tf.Tensor:
    """Nearest-neighbour resize of an [H, W] class mask (pixel centres aligned as the
    image's bilinear resize aligns them): every output id is an input id."""
    return tf.image.resize(mask[:, :, None], size, method="nearest")[:, :, 0]


def resize_masks(masks, size) -> tf.Tensor:
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
    img_h, img_w = image_hw(element["image"])
    h, w = tf.cast(img_h, tf.float32), tf.cast(img_w, tf.float32)
    scale = tf.minimum(target_h / h, target_w / w)
    new_h = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, target_h)
    new_w = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, target_w)
    out = pad(resize(element, new_h, new_w), 0, 0, target_h, target_w)
    return set_size(out, size)


def set_size(element: dict, size: tuple[int, int]) -> dict:
    element["image"] = tf.ensure_shape(element["image"], [size[0], size[1], 3])
    if "masks" in element:
        element["masks"] = tf.ensure_shape(element["masks"], [None, size[0], size[1]])
    if CLASS_MASK in element:
        element[CLASS_MASK] = tf.ensure_shape(element[CLASS_MASK], [size[0], size[1]])
    return element

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
    if CLASS_MASK in out:
        out[CLASS_MASK] = tf.ensure_shape(resize_class_mask(out[CLASS_MASK], size), size)
    return out

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
        return _flip(element, uniform(seed) < self.p, self.keypoint_flip_permutation)


def _flip(element: dict, flip: tf.Tensor, permutation) -> dict:
    """Mirror when `flip` (a bool scalar): pixels and masks under a `tf.cond` (only
    the flipped ones are copied), boxes and keypoints by a select (a few values; a cond
    over the whole element cost a branch input and output per tensor)."""
    out = dict(element)
    image = element["image"]
    out["image"] = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    if "boxes" in out:
        b = out["boxes"]
        mirrored = tf.stack([b[:, 0], 1.0 - b[:, 3], b[:, 2], 1.0 - b[:, 1]], axis=-1)
        out["boxes"] = tf.where(flip, mirrored, b)
    if "masks" in out:
        masks = out["masks"]
        out["masks"] = tf.cond(flip, lambda: tf.reverse(masks, axis=[2]), lambda: masks)
    if CLASS_MASK in out:
        mask = out[CLASS_MASK]
        out[CLASS_MASK] = tf.cond(flip, lambda: tf.reverse(mask, axis=[1]), lambda: mask)
    if "keypoints" in out:
        kp, vis = out["keypoints"], out["keypoint_visibility"]
        moved = tf.stack([kp[..., 0], 1.0 - kp[..., 1]], axis=-1)
        moved = tf.where((vis > 0)[..., None], moved, kp)
        if permutation is not None:
            moved = tf.gather(moved, permutation, axis=1)
            vis = tf.where(flip, tf.gather(vis, permutation, axis=1), vis)
        out["keypoints"], out["keypoint_visibility"] = tf.where(flip, moved, kp), vis
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
        s_apply, s_box = split_seed(seed, 2)
        boxes = element.get("boxes")
        if boxes is None:
            boxes = tf.zeros([0, 4], tf.float32)
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(element["image"]), bounding_boxes=tf.reshape(boxes, [1, -1, 4]),
            seed=s_box, min_object_covered=self.min_object_covered,
            aspect_ratio_range=self.aspect_ratio_range, area_range=self.area_range,
            max_attempts=self.max_attempts, use_image_if_no_bounding_boxes=True)
        crops = uniform(s_apply) < self.p
        img_h, img_w = image_hw(element["image"])
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
        self.output_size = pair(output_size)
        self.scale_range = tuple(float(v) for v in scale_range)

    def apply(self, element, seed):
        s_scale, s_y, s_x = split_seed(seed, 3)
        out_h, out_w = self.output_size
        img_h, img_w = image_hw(element["image"])
        h, w = tf.cast(img_h, tf.float32), tf.cast(img_w, tf.float32)
        factor = uniform(s_scale, self.scale_range[0], self.scale_range[1])
        scale = tf.minimum(out_h / h, out_w / w) * factor
        new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), 1)
        new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), 1)
        element = resize(element, new_h, new_w)
        crop_h, crop_w = tf.minimum(new_h, out_h), tf.minimum(new_w, out_w)
        element = _crop_and_pad(element, randint(s_y, new_h - crop_h),
                                randint(s_x, new_w - crop_w), crop_h, crop_w, out_h, out_w)
        return set_size(element, self.output_size)


class Letterbox(Op):
    """Deterministic letterbox resize to `size` (see `letterbox`)."""

    def __init__(self, size: int | tuple[int, int]):
        super().__init__(None)
        self.size = pair(size)

    def apply(self, element, seed):
        return letterbox(element, self.size)

class Resize(Op):
    """Deterministic plain resize to `size` (bilinear, float32; masks nearest). For
    classification, or for detection when the aspect ratio may change."""

    def __init__(self, size: int | tuple[int, int]):
        super().__init__(None)
        self.size = pair(size)

    def apply(self, element, seed):
        return set_size(resize(element, *self.size), self.size)
