"""What every augmentation op shares: the `Op` base class, seeds, sizes."""

from __future__ import annotations

import tensorflow as tf

from cocoprep.errors import UsageError

# A segmentation element's mask, before and after decoding (decoding.ENCODED_CLASS_MASK,
# geometry.CLASS_MASK): classification-only ops refuse elements that hold one.
_SEG_MASK_KEYS = frozenset(("encoded_class_mask", "mask"))

__all__ = ["Op", "as_seed", "split_seed", "uniform", "randint", "image_hw", "to_float", "pair"]


def as_seed(seed, own: int | None) -> tf.Tensor:
    if seed is None:
        seed = 0 if own is None else own
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    return tf.cast(tf.reshape(seed, [2]), tf.int64)


def split_seed(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
    seeds = tf.random.experimental.stateless_split(seed, num=max(n, 1))
    return [seeds[i] for i in range(n)]


def uniform(seed, minval=0.0, maxval=1.0) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed, minval=minval, maxval=maxval, dtype=tf.float32)


def randint(seed, maxval_inclusive) -> tf.Tensor:
    """Uniform int32 in [0, maxval_inclusive]."""
    top = tf.cast(maxval_inclusive, tf.float32) + 1.0
    value = tf.cast(tf.floor(uniform(seed) * top), tf.int32)
    return tf.minimum(value, tf.cast(maxval_inclusive, tf.int32))

def image_hw(image) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.shape(image)
    return shape[0], shape[1]

def to_float(image) -> tf.Tensor:
    return tf.cast(image, tf.float32) if image.dtype != tf.float32 else image

def pair(size) -> tuple[int, int]:
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
        if self.task == "classification" and not _SEG_MASK_KEYS.isdisjoint(element):
            raise UsageError(type(self).__name__, "a classification element (it cannot "
                             "move a segmentation mask)", "an element with a mask")
        return self.apply(dict(element), as_seed(seed, self.seed))

    def apply(self, element: dict, seed: tf.Tensor) -> dict:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"
