"""Segmentation outputs written with the real writer, as `cocoprep convert` writes them
(schema.encode_segmentation records in shards, manifest.json, labels.txt and
label_map.pbtxt), for the reader, preview and smoke-train tests.

The pictures tell their mask: every pixel's colour is its class's colour (`COLOURS`),
void pixels inside the picture are white (as VOC's void border is a drawn line) and
nothing is black, so after any augmentation a black pixel is padding and its mask
must be void.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from cocoprep import schema
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from cocoprep.options import WriteOptions
from cocoprep.records import BuildResult, EncodedImage, SegmentationExample
from cocoprep.writer import SplitPlan, write_dataset

SEG_CLASSES = ("background", "cat", "dog", "fish")
# Class id -> colour; far apart so a bilinear blend never looks like another class.
COLOURS = np.array([(40, 160, 40), (220, 40, 40), (40, 40, 220), (220, 200, 40)], np.uint8)
VOID_COLOUR = (255, 255, 255)


def png(arr: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def encoded(arr: np.ndarray, fmt: str) -> EncodedImage:
    if fmt == "png":
        data = png(arr, "RGB")
    else:
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=95)
        data = buf.getvalue()
    h, w = arr.shape[:2]
    return EncodedImage(data, fmt, w, h, hashlib.sha256(data).hexdigest())


def block_mask(index: int, width: int, height: int, block: int) -> np.ndarray:
    """Square blocks of random classes, one of them void (a VOC-like void area)."""
    rng = np.random.default_rng(index)
    rows, cols = -(-height // block), -(-width // block)
    ids = rng.integers(0, len(SEG_CLASSES), (rows, cols)).astype(np.uint8)
    ids[rng.integers(rows), rng.integers(cols)] = schema.VOID_ID
    return np.kron(ids, np.ones((block, block), np.uint8))[:height, :width]


def picture(mask: np.ndarray) -> np.ndarray:
    """The pixels of `mask`: class colours, void white."""
    out = np.empty(mask.shape + (3,), np.uint8)
    out[:] = VOID_COLOUR
    known = mask != schema.VOID_ID
    out[known] = COLOURS[mask[known]]
    return out


@dataclass(frozen=True)
class SegItem:
    """One picture and its mask. `corrupt`: "" (the right mask), "mirror" (the mask
    flipped left-right against its picture) or "shift" (rolled by half the width)."""

    index: int
    width: int = 64
    height: int = 48
    block: int = 8
    fmt: str = "png"
    corrupt: str = ""

    def mask(self) -> np.ndarray:
        return block_mask(self.index, self.width, self.height, self.block)

    def pixels(self) -> np.ndarray:
        return picture(self.mask())

    def stored_mask(self) -> np.ndarray:
        mask = self.mask()
        if self.corrupt == "mirror":
            return mask[:, ::-1].copy()
        if self.corrupt == "shift":
            return np.roll(mask, self.width // 2, axis=1)
        return mask


class SegBuilder:
    """A writer Builder: `SegItem` -> one segmentation record (picklable, no files).
    `pixels`/`stored_mask` may be overridden by a subclass for other pictures."""

    def build(self, split: str, item) -> BuildResult:
        mask = item.stored_mask()
        ex = SegmentationExample(encoded(item.pixels(), item.fmt),
                                 f"{item.index:06d}.{'png' if item.fmt == 'png' else 'jpg'}",
                                 str(item.index), png(mask, "L"))
        counts = {SEG_CLASSES[i]: 1 for i in np.unique(mask) if i != schema.VOID_ID}
        return BuildResult(schema.encode_segmentation(ex), 0, counts)


def write_segmentation(out: Path, splits: dict[str, Sequence], *, shards: int = 2,
                       builder=None, names: Sequence[str] = SEG_CLASSES) -> Manifest:
    """Write `splits` (name -> items) into `out` with the real writer."""
    lm = LabelMap.from_names(names, start=0)
    plans = [SplitPlan(name, list(items), min(shards, len(items)))
             for name, items in splits.items()]
    template = Manifest(task="segmentation", schema_version=schema.SCHEMA_VERSION, splits={})
    manifest, _ = write_dataset(
        out, plans, builder or SegBuilder(), manifest=template, class_order=lm.names,
        extra_files={"label_map.pbtxt": lm.to_pbtxt(), "labels.txt": lm.to_labels_txt()},
        options=WriteOptions(workers=1, quiet=True))
    return manifest


def scene(index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like picture and its mask: a noisy, shaded background (class 0) and
    one to three shapes at random places, each class its own hue and shape (1: disc,
    2: box, 3: ring), with VOC's 2-pixel void border around every shape."""
    rng = np.random.default_rng(10_000 + index)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 90 + 40 * np.sin(xx / width * rng.uniform(1, 4) + rng.uniform(0, 6))[..., None]
    img = shade + np.array([10.0, 30.0, 10.0]) + rng.normal(0, 12, (height, width, 3))
    mask = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(1, len(SEG_CLASSES)))
        r = rng.uniform(0.12, 0.25) * min(width, height)
        cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
        dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        box = np.maximum(np.abs(yy - cy), np.abs(xx - cx))
        inside = {1: dist <= r, 2: box <= r, 3: (dist <= r) & (dist >= 0.5 * r)}[cls]
        edge = {1: dist, 2: box, 3: dist}[cls]
        border = ~inside & (edge <= r + 2) & (mask != schema.VOID_ID)
        colour = COLOURS[cls].astype(np.float32)
        img[inside] = colour * rng.uniform(0.8, 1.1) + rng.normal(0, 15, (int(inside.sum()), 3))
        mask[inside] = cls
        mask[border | ((cls == 3) & (dist < 0.5 * r) & (dist >= 0.5 * r - 2))] = schema.VOID_ID
    return np.clip(img, 0, 255).astype(np.uint8), mask


@dataclass(frozen=True)
class SceneItem(SegItem):
    """A `scene` (photo-like, JPEG by default) instead of coloured blocks."""

    width: int = 128
    height: int = 96
    fmt: str = "jpeg"

    def mask(self) -> np.ndarray:
        return scene(self.index, self.width, self.height)[1]

    def pixels(self) -> np.ndarray:
        return scene(self.index, self.width, self.height)[0]


def write_scenes(out: Path, *, train: int = 48, val: int = 16, corrupt: str = "",
                 width: int = 128, height: int = 96) -> Manifest:
    """A train and a val split of `SceneItem`s; `corrupt` applies to every mask."""
    return write_segmentation(out, {
        "train": [SceneItem(i, width, height, corrupt=corrupt) for i in range(train)],
        "val": [SceneItem(1000 + i, width, height, corrupt=corrupt) for i in range(val)]})
