"""Tiny outputs written with the real writer, for verify/inspect/preview tests."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cocoprep import schema
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from cocoprep.records import (
    BuildResult, ClassificationExample, DetectionExample, EncodedImage, ObjectAnnotation,
)
from cocoprep.options import WriteOptions
from cocoprep.writer import SplitPlan, write_dataset
from conftest import FIXTURES, run_cli

DET_CLASSES = ((1, "person"), (3, "car"), (18, "dog"))


def encoded(width: int, height: int, *, fmt: str = "jpeg", seed: int = 0,
            color: tuple[int, int, int] | None = None) -> EncodedImage:
    if color is None:
        arr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        arr = np.empty((height, width, 3), np.uint8)
        arr[:] = color
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG" if fmt == "jpeg" else "PNG")
    data = buf.getvalue()
    return EncodedImage(data, fmt, width, height, hashlib.sha256(data).hexdigest())


def mask_png(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    arr = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 1
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class DetItem:
    image_id: int
    width: int
    height: int
    objects: tuple[tuple[float, float, float, float, int, bool], ...]  # xmin,ymin,xmax,ymax,id,crowd
    masks: bool = False
    color: tuple[int, int, int] | None = None


class DetBuilder:
    """Builds detection records from `DetItem`s (picklable, no files needed)."""

    def build(self, split: str, item: DetItem) -> BuildResult:
        names = dict(DET_CLASSES)
        img = encoded(item.width, item.height, seed=item.image_id, color=item.color)
        objs = []
        for xmin, ymin, xmax, ymax, label, crowd in item.objects:
            m = None
            if item.masks:
                px = (int(xmin * item.width), int(ymin * item.height),
                      int(xmax * item.width), int(ymax * item.height))
                m = mask_png(item.width, item.height, px)
            objs.append(ObjectAnnotation(xmin, ymin, xmax, ymax, label, names[label], crowd,
                                         1.0, None, m))
        ex = DetectionExample(img, f"{item.image_id:012d}.jpg", str(item.image_id),
                              tuple(objs), with_masks=item.masks)
        counts: dict = {}
        for o in objs:
            counts[o.text] = counts.get(o.text, 0) + 1
        return BuildResult(schema.encode_detection(ex), len(objs), counts)


DET_TRAIN = (
    DetItem(101, 64, 48, ((0.1, 0.1, 0.5, 0.6, 1, False), (0.5, 0.5, 0.9, 0.9, 3, False))),
    DetItem(102, 40, 60, ((0.0, 0.0, 1.0, 1.0, 18, False),)),
    DetItem(103, 48, 48, ()),
    DetItem(104, 50, 30, ((0.2, 0.2, 0.4, 0.4, 1, True), (0.6, 0.1, 0.8, 0.3, 1, False),
                          (0.3, 0.3, 0.7, 0.9, 3, False))),
)
DET_VAL = (
    DetItem(201, 64, 64, ((0.25, 0.25, 0.75, 0.75, 18, False),)),
    DetItem(202, 32, 24, ((0.1, 0.2, 0.3, 0.4, 3, False),)),
)


def write_detection(out: Path, *, train=DET_TRAIN, val=DET_VAL, train_shards: int = 2,
                    builder=None, names: tuple = ("train", "val")) -> Manifest:
    """`names`: the split names of `train` and `val`; `val=None` writes one split."""
    lm = LabelMap.from_pairs(DET_CLASSES)
    plans = [SplitPlan(names[0], list(train), train_shards)]
    if val is not None:
        plans.append(SplitPlan(names[1], list(val), 1))
    template = Manifest(task="detection", schema_version=schema.SCHEMA_VERSION, splits={})
    manifest, _ = write_dataset(
        out, plans, builder or DetBuilder(), manifest=template, class_order=lm.names,
        extra_files={"label_map.pbtxt": lm.to_pbtxt(), "labels.txt": lm.to_labels_txt()},
        options=WriteOptions(workers=1, quiet=True))
    return manifest


CLS_NAMES = ("cat", "dog", "fish")


@dataclass(frozen=True)
class ClsItem:
    index: int
    label: int  # 0-based
    width: int = 40
    height: int = 30


class ClsBuilder:
    def __init__(self, offset: int = 0):
        self.offset = offset

    def build(self, split: str, item: ClsItem) -> BuildResult:
        img = encoded(item.width, item.height, seed=item.index)
        name = CLS_NAMES[item.label]
        ex = ClassificationExample(img, f"{name}/{item.index}.jpg", item.label + self.offset, name)
        return BuildResult(schema.encode_classification(ex), 0, {name: 1})


def write_classification(out: Path, *, offset: int = 0) -> Manifest:
    lm = LabelMap.from_names(CLS_NAMES, start=0)
    train = [ClsItem(i, i % 3) for i in range(7)]
    val = [ClsItem(100 + i, i % 3) for i in range(3)]
    plans = [SplitPlan("train", train, 2), SplitPlan("val", val, 1)]
    template = Manifest(task="classification", schema_version=schema.SCHEMA_VERSION,
                        splits={}, label_map=None, label_offset=offset)
    manifest, _ = write_dataset(
        out, plans, ClsBuilder(offset), manifest=template, class_order=lm.names,
        extra_files={"labels.txt": lm.to_labels_txt()},
        options=WriteOptions(workers=1, quiet=True))
    return manifest


def convert_fixture_coco(out: Path, *extra: str) -> Path:
    code, text = run_cli("convert", str(FIXTURES / "coco"), "-o", str(out), "--quiet",
                         "--workers", "1", *extra)
    assert code == 0, text
    return out


def split_fixture_imgs(out: Path, *extra: str) -> Path:
    code, text = run_cli("split", str(FIXTURES / "imgs"), "-o", str(out), "--quiet",
                         "--workers", "1", *extra)
    assert code == 0, text
    return out
