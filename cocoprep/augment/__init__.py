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
``is_crowd``, ``area`` (kept as stored), ``num_boxes``; for segmentation ``mask``
[H, W] class ids (resized nearest-neighbour only, padded with the void id 255;
classification-only ops refuse it). Keys an op does not know pass through unchanged.

Modules, one job each: `base` (the `Op` class, seeds, sizes), `geometry` (crop, pad,
resize, flip: boxes, masks and keypoints move with the pixels), `warps`
(classification-only crops, rotation, zoom), `colour` (`ColorJitter`) and
`composition` (the decode step, `Compose`, the default sets, `apply`).
"""

from __future__ import annotations

from cocoprep.augment.base import Op
from cocoprep.augment.colour import ColorJitter
from cocoprep.augment.composition import Compose, Decode, apply, default_ops, resolve
from cocoprep.augment.geometry import (CLASS_MASK, COCO_KEYPOINT_FLIP, OBJECT_KEYS, Letterbox,
                                       RandomCrop, RandomFlip, Resize, ScaleJitter, crop,
                                       letterbox, pad, resize, resize_class_mask, resize_masks,
                                       resize_to)
from cocoprep.augment.warps import RandomResizedCrop, RandomRotation, RandomZoom

__all__ = [
    "Op", "Decode", "Compose", "RandomFlip", "RandomCrop", "ScaleJitter", "ColorJitter", "Letterbox",
    "Resize", "COCO_KEYPOINT_FLIP", "OBJECT_KEYS", "CLASS_MASK", "resize_class_mask",
    "RandomResizedCrop", "RandomRotation", "RandomZoom", "resolve", "apply", "resize_to",
    "default_ops", "crop", "pad", "resize", "resize_masks", "letterbox",
]
