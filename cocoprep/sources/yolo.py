"""YOLO (Ultralytics data.yaml, Roboflow, CVAT, darknet, Label Studio) -> finished splits.

`yololayout` finds the images, label folders and class names; here every image's
label file is read (`yololabels`) into one `DetectionSplit` per split. Boxes and
polygons stay fractions of the image (`normalized`): the builder scales them by the
size it reads from each image, so no image is opened here.

Decisions where the formats are silent:

* split names are the configuration's keys (`train`, `val`, `test` of data.yaml,
  even when Roboflow's folder is `valid/`; `train`, `valid`, `test` of obj.data);
  a folder without configuration is one split named after the folder;
* label id = class index + 1 (label maps keep 0 for the background); the label
  map lists every named class, used or not;
* an image without a label file, or with an empty one, is a negative (written);
  a label file in a split's label folder with no image of its name is reported
  (`label_without_image`), as is each line that is not an object (with its line
  number); such lines still take an annotation id, so ids name lines;
* `--masks`: polygon lines are drawn as masks; box lines get the builder's
  box-filled mask (the `--missing-masks` rule).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from cocoprep.errors import LABEL_WITHOUT_IMAGE, UsageError
from cocoprep.labelmap import LabelMap
from cocoprep.progress import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources import yololayout
from cocoprep.sources.coco import Category
from cocoprep.sources.detection import (
    DetectionSource, DetectionSplit, LabelPlan, SourceRequest, output_splits,
)
from cocoprep.sources.yololabels import (
    MALFORMED_LINE, OUT_OF_RANGE, TOLERANCE, UNKNOWN_CLASS, LabelFile, parse_label_text,
)
from cocoprep.sources.yololayout import YoloLayout, YoloSplitFiles, label_path

FORMAT = "yolo"
TITLE = "YOLO"
EXPECTED = ("a YOLO data set (data.yaml or obj.data, or images with .txt labels and "
            "classes.txt/obj.names)")
_BAR_FROM = 20_000  # label files: a progress bar while reading this many

_FIXES = {
    LABEL_WITHOUT_IMAGE: "label files have no image of the same name: are the images in "
                         "images/<split> beside labels/<split> (or <split>/images beside "
                         "<split>/labels)?",
    OUT_OF_RANGE: "label coordinates must be fractions of the image size "
                  "(class cx cy w h, each in [0, 1]); pixel coordinates are not YOLO",
    MALFORMED_LINE: "label lines must be `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...`",
    UNKNOWN_CLASS: "label lines use class indices that names (data.yaml, classes.txt, "
                   "obj.names) does not list",
}


def detect(src: Path) -> bool:
    return yololayout.detect(Path(src))


def load(src: Path, request: SourceRequest) -> DetectionSource:
    """Discover and read a YOLO data set into finished splits (every whole-input
    error raised here, before anything is written)."""
    if request.images is not None:
        raise UsageError("--images", "no --images with a YOLO data set (images are "
                         "found through data.yaml/obj.data, or beside their labels)",
                         request.images)
    layout = yololayout.discover(Path(src), splits=request.splits, classes=request.classes)
    if request.ratio is not None and len(layout.splits) != 1:
        raise UsageError("--ratio", "exactly one split to deal out (pick one with --splits)",
                         ",".join(s.name for s in layout.splits))
    read: list[DetectionSplit] = []
    skipped: list[SkippedItem] = []
    for files in layout.splits:
        split, skips = read_split(files, layout, masks=request.masks, quiet=request.quiet)
        read.append(split)
        skipped += skips
    outputs, skipped_out = output_splits(read, ratio=request.ratio, seed=request.seed,
                                         skipped=skipped)
    names = ", ".join(s.name for s in layout.splits)
    notes = list(layout.notes)
    if layout.keypoint_values:
        notes.append("pose labels (kpt_shape): boxes written, keypoints not")
    return DetectionSource(
        format=FORMAT,
        layout=f"YOLO ({layout.kind}): split{'s' if len(read) != 1 else ''} {names}",
        splits=outputs, labels=plan_labels(layout.names), skipped=skipped_out,
        notes=tuple(notes), source_paths={s.name: _paths(s, f, layout)
                                          for s, f in zip(read, layout.splits)},
        fixes=_FIXES,
    )


def plan_labels(names: Sequence[str]) -> LabelPlan:
    """Class index i -> label id i + 1, every named class listed."""
    label_map = LabelMap.from_pairs((i + 1, n) for i, n in enumerate(names))
    return LabelPlan(label_map, {i: (i + 1, n) for i, n in enumerate(names)},
                     contiguous=True)


def _paths(split: DetectionSplit, files: YoloSplitFiles, layout: YoloLayout) -> dict:
    out = {"images": str(split.image_dir)}
    if layout.config is not None:
        out["config"] = str(layout.config)
    out["entries"] = ", ".join(files.entries)
    return out


# ------------------------------------------------------------------ one split

def image_folder(files: YoloSplitFiles, root: Path) -> Path:
    """The deepest folder holding every image of the split (names are relative to it)."""
    if not files.images:
        return root
    if len(files.images) == 1:
        return files.images[0].parent
    return Path(os.path.commonpath([str(p.parent) for p in files.images]))


def _read_label(path: Path, num_classes: int, keypoint_values: int) -> LabelFile | None:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except (IsADirectoryError, NotADirectoryError):
        return None
    return parse_label_text(text, num_classes=num_classes, keypoint_values=keypoint_values)


class _Columns:
    """Annotation columns, appended image by image."""

    def __init__(self, masks: bool):
        self.ids: list[int] = []
        self.cats: list[int] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        self.segs: list | None = [] if masks else None
        self.starts = [0]

    def add(self, ann_id: int, obj) -> None:
        self.ids.append(ann_id)
        self.cats.append(obj.class_index)
        self.boxes.append(obj.box)
        if self.segs is not None:
            self.segs.append([list(obj.polygon)] if obj.polygon is not None else None)

    def close_image(self) -> None:
        self.starts.append(len(self.ids))


def read_split(files: YoloSplitFiles, layout: YoloLayout, *, masks: bool = False,
               quiet: bool = True) -> tuple[DetectionSplit, list[SkippedItem]]:
    """Every image of the split with its label file's objects, the lines that are
    not objects, and the split's label files without an image."""
    image_dir = image_folder(files, layout.root)
    names = [p.relative_to(image_dir).as_posix() for p in files.images]
    cols = _Columns(masks)
    skipped: list[SkippedItem] = []
    used: set[Path] = set()
    next_id = 1
    bar = progress_bar(len(names), f"reading {files.name} labels", "file",
                       quiet or len(names) < _BAR_FROM)
    for row, (image, name) in enumerate(zip(files.images, names)):
        bar.update(1)
        lpath = label_path(image, layout.root)
        used.add(lpath)
        parsed = _read_label(lpath, len(layout.names), layout.keypoint_values)
        if parsed is not None:
            shown = _shown(lpath, layout.root)
            items = sorted(parsed.objects + parsed.problems, key=lambda o: o.line)
            for item in items:
                if hasattr(item, "reason"):
                    skipped.append(SkippedItem(files.name, row + 1, next_id, name,
                                               item.reason, f"{shown} {item.detail}"))
                else:
                    cols.add(next_id, item)
                next_id += 1
        cols.close_image()
    bar.close()
    skipped += _orphans(files, layout, used)
    m = len(cols.ids)
    categories = [Category(i, n) for i, n in enumerate(layout.names)]
    split = DetectionSplit(
        name=files.name, image_dir=image_dir,
        image_ids=np.arange(1, len(names) + 1, dtype=np.int64), file_names=names,
        widths=np.zeros(len(names), np.int64), heights=np.zeros(len(names), np.int64),
        ann_start=np.array(cols.starts, np.int64), ann_ids=np.array(cols.ids, np.int64),
        ann_category_ids=np.array(cols.cats, np.int64),
        bbox=np.array(cols.boxes, np.float64).reshape(m, 4),
        bbox_status=np.zeros(m, np.uint8), iscrowd=np.zeros(m, np.uint8),
        area=np.full(m, np.nan), segmentations=cols.segs, categories=categories,
        normalized=True,
    )
    return split, skipped


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _not_a_label(path: Path, layout: YoloLayout) -> bool:
    return path in layout.not_labels or path.name.lower().startswith("readme")


def _orphans(files: YoloSplitFiles, layout: YoloLayout, used: set[Path]) -> list[SkippedItem]:
    """Label files in the split's label folders that no image of the split claims."""
    out = []
    for folder in files.label_dirs:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                path = Path(dirpath, f)
                if (not f.endswith(".txt") or f.startswith(".") or path in used
                        or _not_a_label(path, layout)):
                    continue
                used.add(path)
                shown = _shown(path, layout.root)
                out.append(SkippedItem(files.name, None, None, shown, LABEL_WITHOUT_IMAGE,
                                       f"{shown}: a label file with no image of its name "
                                       f"in split {files.name!r}"))
    return out


__all__ = ["FORMAT", "EXPECTED", "TOLERANCE", "detect", "load", "plan_labels", "read_split"]
