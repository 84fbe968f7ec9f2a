"""Colour: brightness and contrast as one multiply-add; saturation and hue on request."""

from __future__ import annotations

import tensorflow as tf

from cocoprep.augment.base import Op, split_seed, to_float, uniform

__all__ = ["ColorJitter"]


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
        s_b, s_c, s_s, s_h = split_seed(seed, 4)
        image = element["image"]
        x = image
        # Saturation and hue are scale-invariant, so they work on 0..255 directly; the
        # HSV round trip keeps the values in range.
        if self.saturation > 0:
            x = tf.image.adjust_saturation(
                to_float(x), uniform(s_s, max(0.0, 1.0 - self.saturation),
                                       1.0 + self.saturation))
        if self.hue > 0:
            x = tf.image.adjust_hue(to_float(x), uniform(s_h, -min(self.hue, 0.5),
                                                           min(self.hue, 0.5)))
        if self.brightness > 0 or self.contrast > 0:
            gain, offset = self._gain_offset(x, s_b, s_c)
            if x.dtype == tf.uint8 and self.contrast < 1.0:  # gain > 0
                # uint8 -> float32 and x * gain + offset in one pass: dequantizing maps
                # 0..255 linearly onto [offset, offset + 255 * gain].
                x = tf.quantization.dequantize(tf.bitcast(x, tf.quint8), offset,
                                               offset + 255.0 * gain, mode="MIN_COMBINED")
            else:
                x = to_float(x) * gain + offset
            x = tf.minimum(tf.maximum(x, 0.0), 255.0)
        element["image"] = to_float(x)
        return element

    def _gain_offset(self, x, s_b, s_c):
        """Brightness then contrast as x * gain + offset: (x + d - m) * g + m with m the
        mean grey after brightness (mean(x) + d)."""
        delta = (uniform(s_b, -self.brightness, self.brightness) * 255.0
                 if self.brightness > 0 else tf.constant(0.0))
        if self.contrast <= 0:
            return tf.constant(1.0), delta
        gain = uniform(s_c, max(0.0, 1.0 - self.contrast), 1.0 + self.contrast)
        # The mean (over all pixels and channels, as Pillow's contrast) is estimated on
        # every 8th row (whole rows: a strided slice of columns costs more than the
        # colour pass itself).
        rows = tf.gather(x, tf.range(0, tf.shape(x)[0], 8))
        mean = tf.reduce_mean(to_float(rows))
        return gain, (1.0 - gain) * mean + delta
