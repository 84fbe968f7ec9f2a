"""Open Images V6/V7 CSVs (official, Datumaro or FiftyOne layout) -> finished splits.

`openimageslayout` finds the files. The box CSV is streamed row by row with the
standard library's `csv` module into compact columns (`array`s: a few dozen bytes
per row), never a table in memory: the real train CSV has 14.6 million rows.

Decisions where the format is silent (or the OD API's converter chose otherwise):

* `class/text` is the display name ("Person", from the class descriptions), the MID
  is kept in `image/object/class/mid`; without a descriptions file the MIDs are the
  names (a note says so); two MIDs sharing a display name become "Name (MID)";
* label ids 1..N: the classes the boxes use, sorted by name (`--classes` picks and
  orders by display name); with `--classes`, the other classes' boxes and the images
  left without a box are not written (a note counts them: Open Images is not
  exhaustively labelled, so such images are not negatives);
* `IsGroupOf` is the crowd flag and is also written as `image/object/group_of`;
  `IsOccluded`, `IsTruncated`, `IsDepiction`, `IsInside` are kept (-1, unknown, as
  written) when the CSV has the column (the OD API's keys; truncated is VOC's int key);
* images are those the box CSV names (`ImageID.jpg`), in ImageID order; annotation
  ids are CSV line numbers; boxes stay fractions (the builder scales them by each
  image's size); a coordinate outside [0, 1] by more than 0.01 is reported;
* verified image-level labels (`Confidence` 1) of the human-imagelabels CSV (FiftyOne:
  classifications.csv) go to `image/class/text`, as display names;
* `--masks`: the object-segmentation CSV joins the box rows (`openimagesmasks`); each
  mask PNG, at its own size, is resized to its image's by nearest neighbour.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from cocoprep.errors import (
    CLASS_NOT_SELECTED, COORDINATES_OUT_OF_RANGE, MALFORMED_BBOX, UNKNOWN_CATEGORY, InputError,
    UsageError,
)
from cocoprep.labelmap import LabelMap
from cocoprep.losses import split_missing_hint
from cocoprep.progress import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources.coco import Category
from cocoprep.sources.detection import (
    DetectionSource, DetectionSplit, LabelPlan, SourceRequest, output_splits, unlisted_images,
)
from cocoprep.sources.objects import IMAGE_LABELS, plan_names
from cocoprep.sources.openimageslayout import OidLayout, OidSplitFiles, detect, discover

if TYPE_CHECKING:  # read at run time only with --masks (it reads CSVs with this module)
    from cocoprep.sources.openimagesmasks import OidMasks

FORMAT = "openimages"
TITLE = "Open Images"
# --classes is applied while the box CSV streams (a 2 GB file: other classes never
# held), so `sources.select_classes` leaves this format alone
SELECTS_CLASSES = True
# its instance masks (masks/<split>/ beside Datumaro's images/<split>/) are no
# semantic-mask tree: `sources.find_task` keeps the folder a detection data set
OWNS_MASK_FOLDERS = True
EXPECTED = ("Open Images CSVs (<split>-annotations-bbox.csv + class descriptions, or "
            "FiftyOne's <split>/labels/detections.csv)")
BOX_COLUMNS = ("XMin", "XMax", "YMin", "YMax")
REQUIRED = ("ImageID", "LabelName", *BOX_COLUMNS)
FLAGS = {"IsOccluded": "occluded", "IsTruncated": "truncated", "IsGroupOf": "group_of",
         "IsDepiction": "depiction", "IsInside": "inside"}
TOLERANCE = 0.01
_BAR_EVERY = 10_000

_FIXES = {
    COORDINATES_OUT_OF_RANGE: "Open Images boxes are fractions of the image (XMin..YMax "
                              "in [0, 1])",
    MALFORMED_BBOX: "box rows need XMin <= XMax and YMin <= YMax, as numbers",
    UNKNOWN_CATEGORY: "box rows name MIDs the class descriptions CSV does not list: is it "
                      "the file of the same version (oidv7-class-descriptions-boxable.csv)?",
}

__all__ = ["FORMAT", "EXPECTED", "detect", "load", "read_boxes", "read_classes"]


# ============================================================== CSV streams

def csv_rows(path: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each row, streamed; a CSV error is an InputError."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            for row in reader:
                yield reader.line_num, row
    except csv.Error as e:
        raise InputError(path, what, f"a malformed CSV ({e})") from None
    except OSError as e:
        raise InputError(path, what, f"an unreadable file ({e.strerror})") from None


def csv_header(path: Path, rows: Iterator, need: Sequence[str], what: str) -> dict[str, int]:
    first = next(rows, None)
    header = [c.strip().lstrip("\ufeff") for c in (first[1] if first else [])]
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(path, f"{what} with the columns {', '.join(need)}",
                         f"the header {','.join(header)[:120]!r}")
    return {c: i for i, c in enumerate(header)}


def read_classes(paths: Sequence[Path]) -> dict[str, str]:
    """MID -> display name from the descriptions CSVs (the first file's name wins;
    V7's header row `LabelName,DisplayName` is skipped)."""
    names: dict[str, str] = {}
    for path in paths:
        for line, row in csv_rows(path, "class descriptions (MID,DisplayName rows)"):
            if line == 1 and row[:1] == ["LabelName"]:
                continue
            if len(row) < 2 or not row[0]:
                raise InputError(path, "class descriptions (MID,DisplayName rows)",
                                 f"line {line}: {','.join(row)[:80]!r}")
            names.setdefault(row[0], row[1])
    return names


# ============================================================== one split

@dataclass
class _Columns:
    """The kept box rows, as compact columns."""

    image: array = field(default_factory=lambda: array("i"))
    mid: array = field(default_factory=lambda: array("i"))
    line: array = field(default_factory=lambda: array("q"))
    box: array = field(default_factory=lambda: array("d"))
    flags: dict[str, array] = field(default_factory=dict)


@dataclass
class OidBoxes:
    """One split's box CSV, read: image ids (first-seen order), MIDs by code, the
    kept rows' columns, and the rows' skips."""

    image_ids: list[str]
    mids: list[str]
    cols: _Columns
    skipped: list[SkippedItem]
    flag_names: tuple[str, ...]
    last_line: int = 0          # the CSV's last line number


def parse_box(row: list[str], at: dict[str, int], line: int,
              names: Sequence[str] = BOX_COLUMNS) -> tuple[float, ...] | tuple[str, str]:
    """The row's box as clipped fractions (x1, y1, x2, y2) from its `names` columns
    (XMin, XMax, YMin, YMax), or (reason, detail)."""
    try:
        x1, x2, y1, y2 = (float(row[at[c]]) for c in names)
    except (ValueError, IndexError):
        return MALFORMED_BBOX, f"line {line}: {', '.join(names)} are not all numbers"
    for name, v in zip(names, (x1, x2, y1, y2)):
        if not math.isfinite(v) or v < -TOLERANCE or v > 1 + TOLERANCE:
            return COORDINATES_OUT_OF_RANGE, (f"line {line}: {name} {v:g} is outside [0, 1] "
                                              f"by more than {TOLERANCE:g} (not normalized?)")
    if x2 < x1 or y2 < y1:
        return MALFORMED_BBOX, (f"line {line}: {names[1]} < {names[0]} or {names[3]} < "
                                f"{names[2]} ({x1:g}, {x2:g}, {y1:g}, {y2:g})")
    clip = [min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2)]
    return tuple(clip)


def _flag(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return -1


def read_boxes(files: OidSplitFiles, classes: dict[str, str] | None, *,
               quiet: bool = True) -> OidBoxes:
    """Stream one box CSV into columns; rows that cannot be objects are skipped with
    their reason (a MID the descriptions lack: unknown_category)."""
    what = "an Open Images box CSV"
    rows = csv_rows(files.boxes, what)
    at = csv_header(files.boxes, rows, REQUIRED, what)
    flag_cols = tuple(c for c in FLAGS if c in at)
    cols = _Columns(flags={FLAGS[c]: array("b") for c in flag_cols})
    images: dict[str, int] = {}
    mids: dict[str, int] = {}
    skipped: list[SkippedItem] = []
    bar = progress_bar(None, f"reading {files.name} boxes", "row", quiet)
    line = 1
    for line, row in rows:
        if line % _BAR_EVERY == 0:
            bar.update(_BAR_EVERY)
        if not row:
            continue
        image_id = row[at["ImageID"]] if len(row) > at["ImageID"] else ""
        image = images.setdefault(image_id, len(images))
        box = parse_box(row, at, line)
        mid = row[at["LabelName"]] if len(row) > at["LabelName"] else ""
        if len(box) == 2:
            reason, detail = box
        elif classes is not None and mid not in classes:
            reason, detail = UNKNOWN_CATEGORY, (f"line {line}: LabelName {mid!r} is not in the "
                                                "class descriptions")
        else:
            cols.image.append(image)
            cols.mid.append(mids.setdefault(mid, len(mids)))
            cols.line.append(line)
            cols.box.extend(box)
            for c in flag_cols:
                cols.flags[FLAGS[c]].append(max(-1, min(_flag(row[at[c]]), 1))
                                            if len(row) > at[c] else -1)
            continue
        skipped.append(SkippedItem(files.name, image_id, line, f"{image_id}.jpg", reason,
                                   f"{files.boxes.name} {detail}"))
    bar.close()
    return OidBoxes(list(images), list(mids), cols, skipped,
                    tuple(FLAGS[c] for c in flag_cols), last_line=line)


def read_image_labels(path: Path, images: dict[str, int],
                      names: dict[str, str]) -> list[tuple[str, ...]]:
    """Per image (by index), its verified labels' names in file order."""
    what = "an Open Images image-label CSV"
    rows = csv_rows(path, what)
    at = csv_header(path, rows, ("ImageID", "LabelName", "Confidence"), what)
    found: list[list[str]] = [[] for _ in images]
    for _, row in rows:
        if len(row) < len(at) or row[at["Confidence"]] not in ("1", "1.0"):
            continue
        index = images.get(row[at["ImageID"]])
        if index is not None:
            name = names.get(row[at["LabelName"]], row[at["LabelName"]])
            if name not in found[index]:
                found[index].append(name)
    return [tuple(f) for f in found]


# ============================================================== assembly

def display_names(mids: set[str], classes: dict[str, str] | None) -> dict[str, str]:
    """MID -> the label map's name: the display name ("Name (MID)" when two MIDs
    share it), or the MID without descriptions."""
    names = {m: (classes.get(m, m) if classes else m) for m in mids}
    shared = Counter(names.values())
    return {m: (f"{n} ({m})" if shared[n] > 1 else n) for m, n in names.items()}


@dataclass(frozen=True)
class _Assembled:
    split: DetectionSplit
    boxes_left_out: int
    images_left_out: int


def _assemble(files: OidSplitFiles, boxes: OidBoxes, name_of: dict[str, str],
              label_ids: dict[str, int], categories: list[Category], *, selecting: bool,
              image_labels: list[tuple[str, ...]] | None,
              masks: OidMasks | None = None) -> _Assembled:
    """The split's arrays: images in ImageID order (with --classes only those keeping
    a box), each image's boxes in CSV order."""
    cols = boxes.cols
    codes = np.frombuffer(cols.mid, np.int32) if len(cols.mid) else np.zeros(0, np.int32)
    owner = np.frombuffer(cols.image, np.int32) if len(cols.image) else np.zeros(0, np.int32)
    by_code = np.array([label_ids.get(name_of[m], 0) for m in boxes.mids] or [0], np.int64)
    labels = by_code[codes]
    keep = np.flatnonzero(labels > 0)
    n = len(boxes.image_ids)
    has_box = np.zeros(n, bool)
    has_box[owner[keep]] = True
    order = sorted(range(n), key=boxes.image_ids.__getitem__)
    if selecting:
        order = [i for i in order if has_box[i]]
    position = np.full(n, -1, np.int64)
    position[order] = np.arange(len(order))
    keep = keep[position[owner[keep]] >= 0]
    keep = keep[np.argsort(position[owner[keep]], kind="stable")]
    counts = np.bincount(position[owner[keep]], minlength=len(order))
    ann_start = np.zeros(len(order) + 1, np.int64)
    np.cumsum(counts, out=ann_start[1:])
    box = np.frombuffer(cols.box, np.float64).reshape(-1, 4)[keep] if len(keep) else \
        np.zeros((0, 4))
    xywh = np.column_stack([box[:, 0], box[:, 1], box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]])
    extras: dict[str, list] = {"class_mid": [boxes.mids[c] for c in codes[keep].tolist()]}
    for name in boxes.flag_names:
        extras[name] = np.frombuffer(cols.flags[name], np.int8)[keep].tolist()
    crowd = (np.frombuffer(cols.flags["group_of"], np.int8)[keep] == 1).astype(np.uint8) \
        if "group_of" in boxes.flag_names else np.zeros(len(keep), np.uint8)
    m = len(keep)
    ids = [boxes.image_ids[i] for i in order]
    split = DetectionSplit(
        name=files.name, image_dir=files.image_dir, image_ids=np.arange(1, len(order) + 1),
        file_names=[f"{i}.jpg" for i in ids], widths=np.zeros(len(order), np.int64),
        heights=np.zeros(len(order), np.int64), ann_start=ann_start,
        ann_ids=np.frombuffer(cols.line, np.int64)[keep].copy() if m else np.zeros(0, np.int64),
        ann_category_ids=labels[keep], bbox=xywh.reshape(m, 4),
        bbox_status=np.zeros(m, np.uint8), iscrowd=crowd, area=np.full(m, np.nan),
        categories=list(categories), normalized=True, source_ids=ids, extras=extras,
        segmentations=masks.store(keep) if masks is not None else None,
        image_extras=({IMAGE_LABELS: [image_labels[i] for i in order]}
                      if image_labels is not None else None))
    return _Assembled(split, len(codes) - m, n - len(order))


def load(src: Path, request: SourceRequest) -> DetectionSource:
    """Discover and stream an Open Images download into finished splits."""
    src = Path(src)
    layout = discover(src, request.splits)
    if request.ratio is not None and len(layout.splits) != 1:
        raise UsageError("--ratio", "exactly one split to deal out (pick one with --splits)",
                         ",".join(s.name for s in layout.splits))
    boxable = read_classes(layout.classes[:1]) if layout.classes else None
    read = [read_boxes(f, boxable, quiet=request.quiet) for f in layout.splits]
    masks = [None] * len(read)
    if request.masks:  # the box rows it joins are read; it may add rows and MIDs
        from cocoprep.sources.openimagesmasks import read_masks

        masks = [read_masks(f, b, boxable, src=src, quiet=request.quiet)
                 for f, b in zip(layout.splits, read)]
    used = {m for b in read for m in b.mids}
    name_of = display_names(used, boxable)
    names = plan_names(set(name_of.values()), request, src=src, layout=layout.describe(),
                       missed=f"no box row in {', '.join(f.boxes.name for f in layout.splits)}",
                       select=TITLE)
    label_ids = {n: i for i, n in enumerate(names, 1)}
    categories = [Category(i, n) for n, i in label_ids.items()]
    all_names = {**read_classes(layout.classes[1:]), **(boxable or {})} \
        if len(layout.classes) > 1 else (boxable or {})
    splits, skipped, notes = [], [], _notes(layout, boxable, request, names)
    for files, boxes, split_masks in zip(layout.splits, read, masks):
        labels = (read_image_labels(files.image_labels, {i: k for k, i in
                                                         enumerate(boxes.image_ids)}, all_names)
                  if files.image_labels is not None else None)
        made = _assemble(files, boxes, name_of, label_ids, categories,
                         selecting=bool(request.classes), image_labels=labels,
                         masks=split_masks)
        splits.append(made.split)
        skipped += boxes.skipped
        if split_masks is not None:
            skipped += split_masks.skipped
            notes.append(f"--masks: {files.name}: {split_masks.matched} mask(s) joined to their "
                         f"box rows, {split_masks.own} mask row(s) without a box row written "
                         "as objects of their own; boxes without a mask follow --missing-masks")
        if made.boxes_left_out:
            notes.append(f"{files.name}: {made.boxes_left_out} box(es) of classes not in "
                         f"--classes and {made.images_left_out} image(s) left without a box "
                         f"not written ({CLASS_NOT_SELECTED})")
    if not request.classes:  # with --classes, the note above counts the images left out
        skipped += unlisted_images(splits, listed_by="box CSV")
    label_map = LabelMap.from_names(names)
    labels_plan = LabelPlan(label_map, {i: (i, n) for n, i in label_ids.items()}, (), True)
    outputs, skipped = output_splits(splits, ratio=request.ratio, seed=request.seed,
                                     skipped=skipped)
    return DetectionSource(
        format=FORMAT, layout=layout.describe(), splits=outputs, labels=labels_plan,
        skipped=skipped, notes=tuple(notes),
        source_paths={f.name: {"boxes": str(f.boxes), "images": str(f.image_dir)}
                      for f in layout.splits},
        missing_hint=split_missing_hint(outputs, src),
        fixes=_FIXES)


def _notes(layout: OidLayout, boxable: dict | None, request: SourceRequest,
           names: list[str]) -> list[str]:
    notes = [f"label ids 1..{len(names)} in --classes order" if request.classes else
             f"label ids 1..{len(names)}: the boxes' class names sorted (--classes picks "
             "and orders)"]
    if boxable is None:
        notes.append("no class descriptions CSV: classes are named by their MIDs")
    return notes
