"""Images and their objects as a format reads them -> finished splits.

The shared tail of the formats that read objects image by image (KITTI, LabelMe,
CVAT for images, Open Images): each parses its files into `SourceImage`s (objects
with a class name, a box, an optional segmentation and the format's extra values,
or the reason an object cannot be written); here the label plan is made (every
class found, sorted, or `--classes`, each of which must be found), the objects are
gathered into a `DetectionSplit`, and the splits become a `DetectionSource`.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from cocoprep import schema
from cocoprep.errors import InputError, UsageError
from cocoprep.sources.folder import select_classes as pick_classes
from cocoprep.labelmap import LabelMap
from cocoprep.losses import split_missing_hint
from cocoprep.records import SkippedItem
from cocoprep.sources.coco import Category
from cocoprep.sources.detection import (
    DetectionSource, DetectionSplit, LabelPlan, SourceRequest, output_splits, unlisted_images,
)
from cocoprep.sources.voc import ObjectProblem  # an object that cannot be written: why

__all__ = ["ObjectProblem", "SourceObject", "SourceImage", "FileProblem", "ReadSplit",
           "Finish", "assemble", "finish", "gc_paused", "plan_names", "relative"]

IMAGE_LABELS = "image_class_text"  # the schema name of image-level labels


@dataclass(frozen=True)
class SourceObject:
    """One object: its class as written, its box corners (x1, y1, x2, y2; pixels, or
    fractions of the image in a `normalized` split), whether it is a crowd / ignore
    region, a COCO-style segmentation for --masks (pixels: polygons or an RLE), and
    the format's extra values by schema name."""

    name: str
    box: tuple[float, float, float, float]
    crowd: bool = False
    segmentation: Any = None
    extras: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class SourceImage:
    """One image: its file (relative to the split's image folder), source id, size
    as the annotation states it (0: unknown, read from the image), objects in file
    order, image-level labels, and the annotation file as reports name it."""

    file_name: str
    source_id: str
    width: int = 0
    height: int = 0
    objects: tuple[SourceObject | ObjectProblem, ...] = ()
    labels: tuple[str, ...] = ()
    where: str = ""


@dataclass(frozen=True)
class FileProblem:
    """An annotation file that gives no image at all (it does not parse)."""

    file: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ReadSplit:
    """One split as read: its name, image folder and images (or file problems)."""

    name: str
    image_dir: Path
    images: Sequence[SourceImage | FileProblem]
    skipped: Sequence[SkippedItem] = ()
    normalized: bool = False
    # per entry of `images`: a LabelMe JSON whose imageData holds the image, or None
    embedded: Sequence[str | None] | None = None


def found_names(splits: Iterable[ReadSplit]) -> set[str]:
    return {o.name for s in splits for im in s.images if isinstance(im, SourceImage)
            for o in im.objects if isinstance(o, SourceObject)}


def plan_names(found: set[str], request: SourceRequest, *, src: Path, layout: str,
               missed: str, declared: Sequence[str] = (), select: str = "") -> list[str]:
    """The label map's names: `declared` (a format's own label list, in its order)
    followed by any other class found, else every class found, sorted (`--classes`
    then picks and orders, as for every format: `sources.select_classes`). No class
    at all is an error naming the layout taken and what it lacked. A format that
    applies `--classes` while it reads (Open Images) passes its title as `select`:
    the names are then `--classes`, each checked by the one rule every format uses."""
    if select and request.classes:
        known = sorted(set(found) | set(declared))
        return list(pick_classes(known, request.classes, what=f"the {select} data set's "
                                 "classes"))
    names = list(dict.fromkeys(declared)) + sorted(found - set(declared))
    if not names:
        raise InputError(src, f"objects with class names ({layout})", missed)
    return names


@dataclass
class _Columns:
    ids: list = field(default_factory=list)
    cats: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    crowd: list = field(default_factory=list)
    segs: list = field(default_factory=list)
    starts: list = field(default_factory=lambda: [0])


def _default(name: str) -> Any:
    dtype = schema.DETECTION.feature(name).dtype
    return "" if dtype == schema.BYTES else 0.0 if dtype == schema.FLOAT else 0


def assemble(read: ReadSplit, label_ids: dict[str, int], categories: list[Category], *,
             extra_names: Sequence[str] = (), image_labels: bool = False,
             masks: bool = False) -> tuple[DetectionSplit, list[SkippedItem]]:
    """One `DetectionSplit` from the images read; objects whose class is not in
    `label_ids` (left out by --classes) and object problems are skipped with their
    reason. Annotation ids number the objects of the split in file order (a skipped
    object keeps its id, so ids name objects). Extras an object lacks get the type's
    zero ("" for text)."""
    cols = _Columns()
    extras: dict[str, list] = {n: [] for n in extra_names}
    skipped: list[SkippedItem] = list(read.skipped)
    files, sources, widths, heights, labels, ids, embedded = [], [], [], [], [], [], []
    next_ann = 1
    for image_id, image in enumerate(read.images, 1):
        if isinstance(image, FileProblem):
            skipped.append(SkippedItem(read.name, image_id, None, image.file, image.reason,
                                       f"{image.file}: {image.detail}"))
            continue
        if read.embedded is not None:
            embedded.append(read.embedded[image_id - 1])
        ids.append(image_id)
        files.append(image.file_name)
        sources.append(image.source_id)
        widths.append(image.width)
        heights.append(image.height)
        labels.append(tuple(image.labels))
        for obj in image.objects:
            ann_id, next_ann = next_ann, next_ann + 1
            problem = obj if isinstance(obj, ObjectProblem) else None
            if problem is not None:
                skipped.append(SkippedItem(read.name, image_id, ann_id, image.file_name,
                                           problem.reason, f"{image.where}: {problem.detail}"))
                continue
            x1, y1, x2, y2 = obj.box
            cols.ids.append(ann_id)
            cols.cats.append(label_ids[obj.name])
            cols.boxes.append((x1, y1, x2 - x1, y2 - y1))
            cols.crowd.append(1 if obj.crowd else 0)
            cols.segs.append(obj.segmentation)
            given = dict(obj.extras)
            for name in extra_names:
                extras[name].append(given[name] if name in given else _default(name))
        cols.starts.append(len(cols.ids))
    m = len(cols.ids)
    split = DetectionSplit(
        name=read.name, image_dir=read.image_dir, image_ids=np.array(ids, np.int64),
        file_names=files, widths=np.array(widths, np.int64),
        heights=np.array(heights, np.int64), ann_start=np.array(cols.starts, np.int64),
        ann_ids=np.array(cols.ids, np.int64), ann_category_ids=np.array(cols.cats, np.int64),
        bbox=np.array(cols.boxes, np.float64).reshape(m, 4), bbox_status=np.zeros(m, np.uint8),
        iscrowd=np.array(cols.crowd, np.uint8), area=np.full(m, np.nan),
        segmentations=cols.segs if masks else None, categories=list(categories),
        normalized=read.normalized, source_ids=sources,
        extras=extras or None, image_extras={IMAGE_LABELS: labels} if image_labels else None,
        embedded=embedded if any(embedded) else None)
    return split, skipped


@dataclass(frozen=True)
class Finish:
    """What a format adds to its splits to make the source: its name, the layout
    line, notes, the files read per split and the fix per skip reason."""

    format: str
    layout: str
    notes: tuple[str, ...] = ()
    source_paths: dict[str, dict[str, str]] = field(default_factory=dict)
    fixes: dict[str, str] = field(default_factory=dict)
    extra_names: tuple[str, ...] = ()
    image_labels: bool = False
    declared: tuple[str, ...] = ()
    missed: str = "no object with a class name"
    # what names a split's images (a CVAT XML): the image folder's other images are
    # then listed as `unlisted_image`; "" when every image was read (pairs, KITTI)
    index: str = ""


def finish(src: Path, reads: Sequence[ReadSplit], request: SourceRequest,
           how: Finish) -> DetectionSource:
    """The finished source: label plan, one `DetectionSplit` per split read (dealt out
    by `--ratio` when asked, which needs exactly one split), skips and notes."""
    if request.ratio is not None and len(reads) != 1:
        raise UsageError("--ratio", "exactly one split to deal out (pick one with --splits)",
                         ",".join(r.name for r in reads))
    names = plan_names(found_names(reads), request, src=src, layout=how.layout,
                       missed=how.missed, declared=how.declared)
    label_ids = {n: i for i, n in enumerate(names, 1)}
    categories = [Category(i, n) for n, i in label_ids.items()]
    splits, skipped = [], []
    for read in reads:
        split, skips = assemble(read, label_ids, categories, extra_names=how.extra_names,
                                image_labels=how.image_labels, masks=request.masks)
        splits.append(split)
        skipped += skips
    if how.index:
        skipped += unlisted_images(splits, listed_by=how.index)
    labels = LabelPlan(LabelMap.from_names(names), {i: (i, n) for n, i in label_ids.items()},
                       (), True)
    outputs, skipped = output_splits(splits, ratio=request.ratio, seed=request.seed,
                                     skipped=skipped)
    order = ("label ids 1..{n}: " + ("the format's label list, then other classes sorted"
                                     if how.declared else "class names sorted")
             + " (--classes picks and orders)")
    return DetectionSource(
        format=how.format, layout=how.layout, splits=outputs, labels=labels,
        skipped=skipped, notes=(order.format(n=len(names)),) + how.notes,
        source_paths=how.source_paths, missing_hint=split_missing_hint(outputs, src),
        fixes=how.fixes)


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` with `/` separators (its name when outside): how
    reports name annotation files, never absolute."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector off while a driver reads: it makes tens of thousands of
    small values (objects, their tuples) that live on and hold no cycles, and every
    collection they set off walks the whole heap (TensorFlow's modules too): a third
    of a CVAT read's CPU. Back as it was on the way out, error or not."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
