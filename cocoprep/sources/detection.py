"""The one contract every detection source meets: finished splits.

A format module under `sources/` (COCO, Pascal VOC, YOLO) exposes `FORMAT`, `TITLE`
(its name for people), `EXPECTED`, `OPTIONS` (the format-only options it takes),
`detect(src) -> bool` and `load(src, request) -> DetectionSource`. What it returns
is the same value whatever the format: per split, images and their annotations as
compact arrays (`DetectionSplit`), the label plan, the items it already had to skip,
and what it understood (the summary's first line, notes). The builder, the writer
and the runners never learn which format it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from cocoprep.labelmap import LabelMap
from cocoprep.errors import UNLISTED_IMAGE
from cocoprep.records import SkippedItem
from cocoprep.sources.coco import Category
from cocoprep.sources.folder import select_classes as pick
from cocoprep.sources.layout import SplitFiles, list_images
from cocoprep.sources.segstore import take

RATIO_SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class SourceRequest:
    """What the user asked of a detection source (the options every format reads)."""

    images: str | None = None
    splits: tuple[str, ...] | None = None
    ratio: tuple[float, ...] | None = None
    seed: int = 0
    masks: bool = False
    contiguous_ids: bool = False
    classes: tuple[str, ...] | None = None
    skip_difficult: bool = False
    quiet: bool = True


@dataclass
class DetectionSplit:
    """A split ready to write, from any detection format: images, and their
    annotations grouped by image.

    Annotation arrays are sorted by image (file order within an image);
    `ann_start[i]:ann_start[i + 1]` are image i's annotations. `bbox` rows are
    x, y, width, height in pixels, or in fractions of the image's real size when
    `normalized` (YOLO; polygons too). A width/height of 0 means unknown: the
    image's own size is used and nothing is compared.
    """

    name: str
    image_dir: Path
    image_ids: np.ndarray
    file_names: list[str]
    widths: np.ndarray
    heights: np.ndarray
    ann_start: np.ndarray
    ann_ids: np.ndarray
    ann_category_ids: np.ndarray
    bbox: np.ndarray
    bbox_status: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    segmentations: Sequence | None = None  # per annotation: a SegmentationStore or a list
    keypoints: list | None = None      # per annotation: tuple of floats or a KeypointsMark
    num_keypoints: int = 0
    captions: list[tuple[str, ...]] | None = None  # per image
    has_objects: bool = True           # False for image_info splits
    categories: list[Category] = field(default_factory=list)
    files: SplitFiles | None = None    # COCO: the JSON files read
    normalized: bool = False
    source_ids: list[str] | None = None   # per image image/source_id (default: the image id)
    difficult: np.ndarray | None = None   # per annotation 0/1 (Pascal VOC), with the two below
    truncated: np.ndarray | None = None
    views: list[str] | None = None        # per annotation: VOC <pose> ("" when absent)
    # per image: the annotation file reports name (a VOC XML, relative to SRC; "" none)
    annotation_files: list[str] | None = None
    corner_boxes: bool = False  # the source writes xmin, ymin, xmax, ymax: report boxes so
    # per annotation: optional DETECTION feature name -> one value per annotation
    # (KITTI, CVAT, LabelMe, Open Images: `schema`'s issue-29 block); per image: name ->
    # one tuple of values per image (image-level labels)
    extras: dict[str, list] | None = None
    image_extras: dict[str, list] | None = None
    # per image: a LabelMe JSON whose imageData holds the image (its file is missing)
    embedded: list[str | None] | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def annotation_rows(self, image_row: int) -> range:
        return range(int(self.ann_start[image_row]), int(self.ann_start[image_row + 1]))


    def source_id(self, row: int) -> str:
        return self.source_ids[row] if self.source_ids is not None else str(int(self.image_ids[row]))


@dataclass(frozen=True)
class LabelPlan:
    """The label map and, per COCO category id, its (label-map id, name)."""

    label_map: LabelMap
    labels: dict[int, tuple[int, str]]
    notes: tuple[str, ...] = ()
    contiguous: bool = False
    # source category ids that `--classes` left out: their objects are dropped as
    # asked (reason `class_not_selected`, never a loss)
    unselected: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSplit:
    """One split to write: the `DetectionSplit` its rows index, and the rows (source order)."""

    name: str
    source: DetectionSplit
    rows: np.ndarray


@dataclass(frozen=True)
class DetectionSource:
    """What `convert` writes: finished splits, their labels, the skips found while
    reading, and what was understood (`layout`: the summary's first line)."""

    format: str
    layout: str
    splits: tuple[OutputSplit, ...]
    labels: LabelPlan
    skipped: tuple[SkippedItem, ...] = ()
    notes: tuple[str, ...] = ()
    source_paths: dict[str, dict[str, str]] = field(default_factory=dict)
    # (SplitLoss, skipped items) -> a hint where the missing files may be, or None
    missing_hint: Callable[[Any, Sequence[SkippedItem]], str | None] | None = None
    # the likely fix per skip reason, where this format knows better than `losses`
    fixes: dict[str, str] = field(default_factory=dict)


def stratified_split(split: DetectionSplit, ratio: Sequence[float], seed: int) -> list[np.ndarray]:
    """Image rows for each ratio part, stratified by category presence.

    Each image's stratum is the rarest category it contains (images without objects
    form their own stratum). Strata are shuffled with `seed` and dealt out in turn to
    the part furthest below its share, so every part gets its share of every
    stratum (within one image) and of the whole (within one image).
    """
    n = split.num_images
    rng = np.random.default_rng(seed)
    cats = split.ann_category_ids
    freq: dict[int, int] = {}
    if len(cats):
        uniq, counts = np.unique(cats, return_counts=True)
        freq = dict(zip(uniq.tolist(), counts.tolist()))
    strata: dict[tuple, list[int]] = {}
    for row in range(n):
        present = set(cats[split.ann_start[row]:split.ann_start[row + 1]].tolist())
        key = min(((freq[c], c) for c in present), default=(-1, -1))
        strata.setdefault(key, []).append(row)
    assigned = [0] * len(ratio)
    parts: list[list[int]] = [[] for _ in ratio]
    total = 0
    for key in sorted(strata):
        rows = np.array(strata[key], dtype=np.int64)
        rows = rows[rng.permutation(len(rows))]
        for r in rows.tolist():
            total += 1
            j = max(range(len(ratio)), key=lambda i: (ratio[i] * total - assigned[i], -i))
            assigned[j] += 1
            parts[j].append(r)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def output_splits(read: Sequence[DetectionSplit], *, ratio: Sequence[float] | None,
                  seed: int, skipped: Sequence[SkippedItem] = ()
                  ) -> tuple[tuple[OutputSplit, ...], tuple[SkippedItem, ...]]:
    """The splits to write: each split as read, or, with `ratio`, the one split dealt
    out into train/val(/test) (its skips then count against train)."""
    if ratio is None:
        return (tuple(OutputSplit(s.name, s, np.arange(s.num_images, dtype=np.int64))
                      for s in read), tuple(skipped))
    source = read[0]
    names = RATIO_SPLIT_NAMES[:len(ratio)]
    parts = stratified_split(source, ratio, seed)
    outputs = tuple(OutputSplit(n, source, rows) for n, rows in zip(names, parts))
    return outputs, tuple(replace(s, split=names[0]) for s in skipped)


def subset(split: DetectionSplit, rows: np.ndarray) -> DetectionSplit:
    """`split` holding only image `rows` (in that order) and their annotations: what
    one Beam worker needs for one shard."""
    starts, stops = split.ann_start[rows], split.ann_start[rows + 1]
    ann = (np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in zip(starts, stops)])
           if len(rows) else np.zeros(0, np.int64))
    ann_start = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(stops - starts, out=ann_start[1:])
    pick, rows_list = ann.tolist(), rows.tolist()

    def per_ann(values):
        return None if values is None else [values[k] for k in pick]

    def per_image(values):
        return None if values is None else [values[r] for r in rows_list]

    return replace(
        split, image_ids=split.image_ids[rows], file_names=per_image(split.file_names),
        widths=split.widths[rows], heights=split.heights[rows], ann_start=ann_start,
        ann_ids=split.ann_ids[ann], ann_category_ids=split.ann_category_ids[ann],
        bbox=split.bbox[ann], bbox_status=split.bbox_status[ann], iscrowd=split.iscrowd[ann],
        area=split.area[ann], segmentations=take(split.segmentations, pick),
        keypoints=per_ann(split.keypoints), captions=per_image(split.captions),
        source_ids=per_image(split.source_ids),
        difficult=None if split.difficult is None else split.difficult[ann],
        truncated=None if split.truncated is None else split.truncated[ann],
        views=per_ann(split.views), annotation_files=per_image(split.annotation_files),
        extras=None if split.extras is None else {k: per_ann(v) for k, v in split.extras.items()},
        image_extras=(None if split.image_extras is None
                      else {k: per_image(v) for k, v in split.image_extras.items()}),
        embedded=per_image(split.embedded),
    )


def select_classes(source: DetectionSource, classes: Sequence[str] | None, *,
                   title: str = "") -> DetectionSource:
    """`--classes`, the same in every format: keep the named classes, in that order
    (label ids 1..N); objects of the others are dropped and reported
    (`class_not_selected`), and a note names them with their object counts (so a
    misspelt class in the data shows). A name the data set does not have is a
    `UsageError` naming it and the names there are."""
    if not classes:
        return source
    plan = source.labels
    names = pick(plan.label_map.names, classes, what=f"the {title or source.format} data "
                 "set's classes")
    label_map = LabelMap.from_names(names)
    labels, unselected = {}, {}
    for cat, (_, name) in plan.labels.items():
        if name in label_map.names:
            labels[cat] = (label_map.id_of(name), name)
        else:
            unselected[cat] = name
    notes = tuple(source.notes)
    if unselected:
        counts = _object_counts(source, unselected)
        notes += (f"--classes keeps {len(names)} of {len(plan.label_map.names)} classes "
                  f"(ids 1..{len(names)}); left out: " + ", ".join(
                      f"{name} ({counts[name]} object{'s' * (counts[name] != 1)})"
                      for name in sorted(counts)),)
    elif list(names) != list(plan.label_map.names) or not plan.contiguous:
        notes += (f"--classes: label ids 1..{len(names)} in its order",)
    return replace(source, labels=LabelPlan(label_map, labels, plan.notes, True, unselected),
                   notes=notes)


def _object_counts(source: DetectionSource, names: dict[int, str]) -> dict[str, int]:
    counts = dict.fromkeys(names.values(), 0)
    seen: set[int] = set()
    for out in source.splits:
        if id(out.source) in seen:  # --ratio: the parts share one split
            continue
        seen.add(id(out.source))
        cats, n = np.unique(out.source.ann_category_ids, return_counts=True)
        for cat, k in zip(cats.tolist(), n.tolist()):
            if cat in names:
                counts[names[cat]] += k
    return counts


def unlisted_images(splits: Sequence[DetectionSplit], *, listed_by: str,
                    also_named: Iterable[str] = ()) -> list[SkippedItem]:
    """The image files of the splits' image folders that no split names, each as a
    skip (`unlisted_image`) of the first split reading that folder: a COCO JSON or a
    VOC split list decides what the data set is, and the rest is reported, never
    dropped unseen. `listed_by` says what would have named them; `also_named` are
    images named but not written (e.g. beside an annotation file that does not parse)."""
    by_dir: dict[Path, list[DetectionSplit]] = {}
    for split in splits:
        by_dir.setdefault(Path(split.image_dir), []).append(split)
    out = []
    for folder, readers in by_dir.items():
        named = {n for s in readers for n in s.file_names} | set(also_named)
        for name in list_images(folder, recursive=True):
            if name not in named:
                out.append(SkippedItem(readers[0].name, None, None, name, UNLISTED_IMAGE,
                                       f"in {folder.name}/ but named by no {listed_by}"))
    return out
