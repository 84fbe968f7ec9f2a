"""Decoding, the first step of the reader's per-element pipeline: image bytes -> uint8
pixels, at reduced DCT scale when the image is about to be shrunk 2x or more,
instance-mask PNGs -> a [N, H, W] 0/1 tensor, and a segmentation record's class-mask
PNG -> a [H, W] tensor of class ids. TensorFlow ops only (used inside `tf.data` maps).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["ENCODED", "ENCODED_MASKS", "ENCODED_CLASS_MASK", "decode_ratio", "decode_image",
           "decode_jpeg_window", "decode_masks", "decode_class_mask", "is_jpeg", "decode_any"]

# Keys of an element before its decode step (the reader's record fields).
ENCODED = "encoded"
ENCODED_MASKS = "encoded_masks"
ENCODED_CLASS_MASK = "encoded_class_mask"  # segmentation: one PNG of class ids
_RATIOS = (8, 4, 2)  # libjpeg's reduced DCT scales, largest first
_JPEG_START = b"\xff\xd8\xff"


def decode_ratio(height: int, width: int, min_height: int, min_width: int) -> int:
    """The DCT scale (1, 2, 4 or 8) at which to decode a `height` x `width` JPEG that
    will be shrunk to `min_height` x `min_width`: the largest ratio r whose decode is
    still at least that size (libjpeg rounds a scaled size up: ceil(height / r)), so a
    reduced decode is never upsampled; 1 when the shrink is less than 2x."""
    for r in _RATIOS:
        if -(-height // r) >= min_height and -(-width // r) >= min_width:
            return r
    return 1


def _ratio_index(height, width, min_height, min_width) -> tf.Tensor:
    """`decode_ratio` on int32 tensors, as an index into (1, 2, 4, 8)."""
    index = tf.constant(0, tf.int32)
    for i, r in enumerate(reversed(_RATIOS), start=1):  # a fit at 8 implies one at 4, 2
        fits = ((height + r - 1) // r >= min_height) & ((width + r - 1) // r >= min_width)
        index = tf.where(fits, i, index)
    return index


def _fit_size(height, width, size, keep_aspect: bool):
    """The size a `height` x `width` image is resized to for `size` (letterbox or plain)."""
    if not keep_aspect:
        return tf.constant(size[0]), tf.constant(size[1])
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    scale = tf.minimum(size[0] / h, size[1] / w)
    return (tf.cast(tf.round(h * scale), tf.int32), tf.cast(tf.round(w * scale), tf.int32))


def is_jpeg(encoded) -> tf.Tensor:
    return tf.equal(tf.strings.substr(encoded, 0, 3), _JPEG_START)


def decode_any(encoded) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_jpeg_window(encoded, window, min_size) -> tf.Tensor:
    """Decode the (top, left, height, width) window of a JPEG at the largest DCT scale
    that leaves it at least `min_size` (None: full scale)."""
    shape = tf.image.extract_jpeg_shape(encoded)
    top, left, height, width = window
    if min_size is None:
        return tf.image.decode_and_crop_jpeg(encoded, tf.stack(window), channels=3)

    def at(r):
        def run():
            if r == 1:
                return tf.image.decode_and_crop_jpeg(encoded, tf.stack(window), channels=3)
            # libjpeg crops in scaled coordinates: the scaled rows/columns covering the window.
            full_h, full_w = (shape[0] + r - 1) // r, (shape[1] + r - 1) // r
            t, l = top // r, left // r
            h = tf.minimum((top + height + r - 1) // r, full_h) - t
            w = tf.minimum((left + width + r - 1) // r, full_w) - l
            return tf.image.decode_and_crop_jpeg(encoded, tf.stack([t, l, h, w]), channels=3,
                                                 ratio=r)
        return run

    index = _ratio_index(height, width, min_size[0], min_size[1])
    return tf.switch_case(index, [at(1)] + [at(r) for r in reversed(_RATIOS)])


def decode_image(encoded, *, fit: tuple[int, int] | None = None,
                 keep_aspect: bool = False) -> tf.Tensor:
    """Image bytes -> uint8 [H, W, 3]. With `fit`, the size the image is resized to next
    (letterboxed when `keep_aspect`), a JPEG shrunk 2x or more is decoded at reduced DCT
    scale (`decode_ratio`), never below the size it is resized to."""
    if fit is None:
        return decode_any(encoded)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        min_h, min_w = _fit_size(shape[0], shape[1], fit, keep_aspect)
        index = _ratio_index(shape[0], shape[1], min_h, min_w)
        return tf.switch_case(index, [
            lambda r=r: tf.io.decode_jpeg(encoded, channels=3, ratio=r)
            for r in (1,) + tuple(reversed(_RATIOS))])

    image = tf.cond(is_jpeg(encoded), jpeg, lambda: decode_any(encoded))
    image.set_shape([None, None, 3])
    return image


def decode_masks(pngs, height, width) -> tf.Tensor:
    """A PNG per object -> uint8 [N, height, width] with values 0/1."""
    def decode_all():
        masks = tf.map_fn(
            lambda png: tf.io.decode_png(png, channels=1)[:, :, 0],
            pngs, fn_output_signature=tf.TensorSpec([None, None], tf.uint8))
        return tf.minimum(masks, 1)

    masks = tf.cond(tf.size(pngs) > 0, decode_all,
                    lambda: tf.zeros([0, height, width], tf.uint8))
    masks.set_shape([None, None, None])
    return masks


def decode_class_mask(png, height, width) -> tf.Tensor:
    """A segmentation record's one-channel PNG of class ids -> uint8 [height, width]
    (ids as stored, void included). A mask whose size is not the image's fails the
    pipeline with a message rather than misaligning every crop that follows."""
    mask = tf.io.decode_png(png, channels=1)[:, :, 0]
    check = tf.debugging.assert_equal(
        tf.shape(mask), tf.stack([height, width]),
        message="segmentation mask size differs from its image (run `cocoprep verify`)")
    with tf.control_dependencies([check]):
        mask = tf.identity(mask)
    mask.set_shape([None, None])
    return mask
