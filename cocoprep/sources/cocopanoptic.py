"""COCO panoptic -> finished segmentation splits (`sources.segmentation`).

Layout: `annotations/panoptic_<split>.json` with its PNG folder
`annotations/panoptic_<split>/` (as COCO's zip unpacks; or `panoptic_<split>/`
beside `annotations/`) and the images in `<split>/` (COCO: `train2017/`) or
`images/<split>/` (Datumaro). Each PNG pixel's segment id is R + 256 G + 256^2 B,
0 unlabelled; the JSON's `segments_info` gives each id's category.

Decisions:
* the label map is the categories in category-id order, ids 0..N-1 (COCO's 133
  panoptic categories: things and stuff); there is no background class:
  unlabelled pixels are void (255);
* the semantic mask is by category, crowd segments included (their pixels are
  that class); with `--panoptic` the category mask is the same ids and the
  instance mask numbers the non-crowd thing segments 1.. in segments_info order
  (0 for stuff, crowd and unlabelled), 8-bit, or 16-bit in every record when an
  image has more than 255 of them (the Model Garden's converter wraps at 256);
* an image without a panoptic annotation is a `missing_mask` skip.

A tree that also holds detection JSONs (instances_, person_keypoints_) stays a
detection source unless `--task segmentation` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cocoprep.errors import MISSING_MASK, InputError
from cocoprep.records import SkippedItem
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.jsonstream import JsonStream
from cocoprep.sources.segmentation import (
    MaskCodec, SegItem, SegmentationSource, SegmentationSplit, check_num_classes, label_map_of,
    ratio_splits, select,
)

TITLE = "COCO panoptic"
FORMAT = "coco_panoptic"
EXPECTED = ("COCO panoptic (annotations/panoptic_<split>.json + annotations/panoptic_<split>/ "
            "PNGs + <split>/ or images/<split>/ images)")
PREFIX = "panoptic_"
_DETECTION_PREFIXES = ("instances_", "person_keypoints_")


def _files(src: Path) -> list[tuple[str, Path, Path, Path]]:
    """(split, JSON, PNG folder, image folder) of each panoptic JSON."""
    ann = src / "annotations"
    if not ann.is_dir():
        return []
    out = []
    for j in sorted(ann.glob(PREFIX + "*.json")):
        split = j.stem[len(PREFIX):]
        pngs = next((d for d in (ann / j.stem, src / j.stem) if d.is_dir()), ann / j.stem)
        images = next((d for d in (src / split, src / "images" / split, src / "images")
                       if d.is_dir()), src / split)
        out.append((split, j, pngs, images))
    return out


def detect(src: Path, *, forced: bool = False) -> bool:
    src = Path(src)
    if not src.is_dir() or not _files(src):
        return False
    names = [p.name for p in (src / "annotations").glob("*.json")]
    return forced or not any(n.startswith(_DETECTION_PREFIXES) for n in names)


@dataclass
class _Panoptic:
    """One panoptic JSON, read as a stream (COCO train's would be gigabytes as
    dicts): images as (id, file name), each annotation's segments as rows of
    segment id, category id, is-crowd."""

    path: Path
    images: list[tuple[int, str]] = field(default_factory=list)
    annotations: dict[int, tuple[str, np.ndarray]] = field(default_factory=dict)
    categories: list[dict] = field(default_factory=list)

    def _bad(self, key: str, i: int, what: str) -> InputError:
        return InputError(self.path, f"{key}[{i}] with {what}", "something else")

    def image(self, v: dict, i: int) -> None:
        try:
            self.images.append((int(v["id"]), str(v["file_name"])))
        except (KeyError, TypeError, ValueError):
            raise self._bad("images", i, "an id and a file_name") from None

    def annotation(self, v: dict, i: int) -> None:
        try:
            rows = [(int(s["id"]), int(s["category_id"]), int(bool(s.get("iscrowd", 0))))
                    for s in v.get("segments_info", [])]
            self.annotations[int(v["image_id"])] = (str(v["file_name"]),
                                                    np.asarray(rows, np.int64).reshape(-1, 3))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._bad("annotations", i, "an image_id, a file_name and segments_info "
                            "entries with an id and a category_id") from None

    def category(self, v: dict, i: int) -> None:
        if not isinstance(v, dict) or not isinstance(v.get("id"), int) or "name" not in v:
            raise self._bad("categories", i, "an id and a name")
        self.categories.append(v)

    @classmethod
    def read(cls, path: Path) -> "_Panoptic":
        out = cls(path)
        seen: set[str] = set()
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                JsonStream(f, path).read_object({"images": out.image,
                                                 "annotations": out.annotation,
                                                 "categories": out.category}, seen)
        except OSError as e:
            raise InputError(path, "a readable COCO panoptic JSON file",
                             e.strerror or str(e)) from None
        missing = {"images", "annotations", "categories"} - seen
        if missing:
            raise InputError(path, "a COCO panoptic JSON (images, annotations, categories "
                             "lists)", f"no {', '.join(sorted(missing))}")
        return out


def _split(split: str, data: _Panoptic, pngs: Path, images: Path, label_of: dict[int, int],
           things: set[int]) -> tuple[SegmentationSplit, list[SkippedItem], int]:
    items, skipped, most = [], [], 0
    for image_id, file_name in sorted(data.images):
        ann = data.annotations.get(image_id)
        if ann is None:
            skipped.append(SkippedItem(split, image_id, None, file_name, MISSING_MASK,
                                       f"no panoptic annotation in {data.path.name}"))
            continue
        png, raw = ann
        unknown = sorted(set(raw[:, 1].tolist()) - set(label_of))
        if unknown:
            raise InputError(data.path, "segments_info category ids listed in categories",
                             f"category id {unknown[0]} (image {image_id})")
        segments = np.zeros((len(raw), 4), np.int64)
        segments[:, 0] = raw[:, 0]
        segments[:, 1] = [label_of[c] for c in raw[:, 1].tolist()]
        segments[:, 2] = [int(c in things) for c in raw[:, 1].tolist()]
        segments[:, 3] = raw[:, 2]
        most = max(most, int(((segments[:, 2] == 1) & (segments[:, 3] == 0)).sum()))
        items.append(SegItem(file_name, png, str(image_id), segments))
    return SegmentationSplit(split, images, pngs, tuple(items)), skipped, most


def load(src: Path, request: SourceRequest) -> SegmentationSource:
    files = _files(Path(src))
    if not files:
        raise InputError(src, EXPECTED, "none of these")
    chosen = {s.name for s in select([SegmentationSplit(f[0], f[3], f[2], ()) for f in files],
                                     request.splits)}
    splits, skipped, most, categories = [], [], 0, None
    for split, path, pngs, images in files:
        if split not in chosen:
            continue
        data = _Panoptic.read(path)
        cats = sorted(data.categories, key=lambda c: c["id"])
        if categories is None:
            categories = cats
        elif cats != categories:
            raise InputError(path, "the categories of the first split's JSON", "others")
        label_of = {int(c["id"]): i for i, c in enumerate(categories)}
        things = {int(c["id"]) for c in categories if c.get("isthing")}
        s, k, m = _split(split, data, pngs, Path(request.images) if request.images else images,
                         label_of, things)
        splits.append(s)
        skipped += k
        most = max(most, m)
    names = tuple(str(c["name"]) for c in categories)
    check_num_classes(names, "the panoptic categories")
    order = [s.name for s in select(splits, request.splits)]
    splits = sorted(splits, key=lambda s: order.index(s.name))
    final, skipped_out = ratio_splits(splits, request.ratio, request.seed, skipped)
    layout = (f"COCO panoptic: split{'s' if len(final) != 1 else ''} "
              + ", ".join(s.name for s in final))
    notes = ("categories in id order are ids 0..N-1; unlabelled pixels are void (255), crowd "
             "segments keep their class",)
    return SegmentationSource(FORMAT, layout, final, label_map_of(names),
                              MaskCodec.identity(len(names)), tuple(skipped_out), notes,
                              instance_bits=16 if most > 255 else 8)
