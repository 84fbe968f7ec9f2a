"""Classification-only ops (they cannot move boxes): Inception crop, rotation, zoom."""

from __future__ import annotations

import tensorflow as tf

from cocoprep.augment.base import Op, image_hw, pair, to_float, uniform
from cocoprep.decoding import ENCODED, decode_any, decode_jpeg_window, is_jpeg

__all__ = ["RandomResizedCrop", "RandomRotation", "RandomZoom"]


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
        self.size = pair(size) if size is not None else None
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
    img_h, img_w = image_hw(image)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=to_float(image)[None], transforms=tf.reshape(transform, [1, 8]),
        output_shape=tf.stack([img_h, img_w]), fill_value=0.0, interpolation="BILINEAR",
        fill_mode=fill_mode)[0]
    return tf.cast(tf.round(out), tf.uint8) if image.dtype == tf.uint8 else out


def _about_centre(image, a, b, c, d) -> tf.Tensor:
    """Transform (output -> input) `[[a, b], [c, d]]` around the image centre."""
    img_h, img_w = image_hw(image)
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
        angle = uniform(seed, -self.max_degrees, self.max_degrees) * (3.141592653589793 / 180)
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
        inv = 1.0 / uniform(seed, self.zoom_range[0], self.zoom_range[1])
        image = element["image"]
        element["image"] = _projective(image, _about_centre(image, inv, 0.0, 0.0, inv),
                                       self.fill_mode)
        return element
