"""Composition: the decode step, `Compose`, the default sets, and mapping over a dataset."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from cocoprep.augment.base import Op, as_seed, image_hw, pair, split_seed
from cocoprep.augment.colour import ColorJitter
from cocoprep.augment.geometry import (CLASS_MASK, COCO_KEYPOINT_FLIP, Letterbox, RandomCrop,
                                       RandomFlip, ScaleJitter)
from cocoprep.augment.warps import RandomResizedCrop
from cocoprep.decoding import (ENCODED, ENCODED_CLASS_MASK, ENCODED_MASKS, decode_class_mask,
                               decode_image, decode_masks)
from cocoprep.errors import UsageError

__all__ = ["Decode", "Compose", "default_ops", "resolve", "apply"]


class Decode(Op):
    """Decoding, the first step of the reader's element pipeline: ``encoded`` (image
    bytes) -> ``image`` uint8 [H, W, 3], ``encoded_masks`` (a PNG per object) ->
    ``masks`` uint8 [N, H, W] 0/1, and ``encoded_class_mask`` (a segmentation record's
    mask PNG) -> ``mask`` uint8 [H, W] class ids. An op whose `decodes` is True (RandomResizedCrop,
    which decodes only its window of a JPEG) takes this step's place.

    `fit`: the size the image is resized to right after (letterboxed when
    `keep_aspect`); a JPEG shrunk 2x or more is then decoded at reduced DCT scale (see
    `decode_image`). Only for pipelines where nothing between the decode and that
    resize depends on the pixel size, and without masks (they keep the stored size).
    """

    decodes = True

    def __init__(self, fit: int | tuple[int, int] | None = None, *, keep_aspect: bool = False):
        super().__init__(None)
        self.fit = pair(fit) if fit is not None else None
        self.keep_aspect = bool(keep_aspect)

    def apply(self, element, seed):
        image = decode_image(element.pop(ENCODED), fit=self.fit, keep_aspect=self.keep_aspect)
        element["image"] = image
        if ENCODED_MASKS in element:
            height, width = image_hw(image)
            element["masks"] = decode_masks(element.pop(ENCODED_MASKS), height, width)
        if ENCODED_CLASS_MASK in element:
            height, width = image_hw(image)
            element[CLASS_MASK] = decode_class_mask(element.pop(ENCODED_CLASS_MASK),
                                                    height, width)
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
        seeds = split_seed(as_seed(seed, self.seed), len(self.ops))
        element = dict(element)
        for op, op_seed in zip(self.ops, seeds):
            element = op(element, op_seed) if isinstance(op, Op) else op(element)
        return element

    def __repr__(self) -> str:
        return f"Compose({self.ops!r})"

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
    segmentation: flip, then (when `image_size` is given) DeepLab's and the Model
    Garden's training set: scale by a random factor in 0.5..2.0 of the letterbox
    scale, random crop to `image_size`, padding (image 0, mask void) where smaller.
    The mask follows every step, resized nearest-neighbour.
    """
    if task == "segmentation":
        seg_ops: list[Op] = [RandomFlip()]
        if image_size is not None:
            seg_ops.append(ScaleJitter(image_size, (0.5, 2.0)))
        return seg_ops
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
    raise UsageError("task", "detection, segmentation or classification", task)


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
