"""Image/mask folder pairs -> finished segmentation splits (`sources.segmentation`).

Layouts:

* `images/` + `masks/` (or `annotations/`, `labels/`), an image and its mask
  sharing their path without extension; masks are one-channel PNGs of class ids
  (grey or palette), 255 void;
* split folders either way: `images/<split>/` + `masks/<split>/`, or
  `<split>/images/` + `<split>/masks/`;
* ADE20K SceneParsing (`ADEChallengeData2016/`: `images/{training,validation}` +
  `annotations/{training,validation}`), the one case with its own id rule: mask
  value 0 is "other", which the benchmark ignores, so it becomes void (255), and
  class k (1..150) becomes id k-1; names from `objectInfo150.csv` (its `Name`
  column, first synonym) when it is there.

Class names, in id order: `--classes`, else `classes.txt` / `labels.txt` beside
the folders (or in the split folder). Without names the layout is refused: the
label map must name every id a mask uses.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path

from cocoprep.errors import InputError
from cocoprep.schema import VOID_ID
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.segmentation import (
    UNKNOWN, MaskCodec, SegmentationSource, SegmentationSplit, check_num_classes, find_names,
    label_map_of, pair_items, ratio_splits, read_names, select,
)

TITLE = "image/mask folder"
FORMAT = "masks"
EXPECTED = ("image/mask folder pairs (images/ + masks/, annotations/ or labels/ of PNG "
            "masks, split folders either way; ADE20K SceneParsing)")
IMAGE_DIRS = ("images", "Images", "imgs")
MASK_DIRS = ("masks", "annotations", "labels", "Masks", "gt")
ADE_ROOT = "ADEChallengeData2016"
ADE_SPLITS = ("training", "validation")
ADE_NAMES = "objectInfo150.csv"
_ORDER = {"train": 0, "training": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
_NOT_MASKS = (".txt", ".xml", ".json")


@dataclass(frozen=True)
class PairLayout:
    kind: str
    root: Path
    splits: tuple[tuple[str, Path, Path], ...]   # (name, image folder, mask folder)
    ade: bool = False

    def describe(self) -> str:
        names = ", ".join(s[0] for s in self.splits)
        return f"{self.kind}: split{'s' if len(self.splits) != 1 else ''} {names}"


def _order(name: str) -> tuple[int, str]:
    return _ORDER.get(name, len(_ORDER)), name


def _subdirs(folder: Path) -> list[str]:
    return sorted((e.name for e in os.scandir(folder) if e.is_dir()
                   and not e.name.startswith(".")), key=_order)


def _has_files(folder: Path) -> bool:
    return any(e.is_file() and not e.name.startswith(".") for e in os.scandir(folder))


def _pair_at(base: Path) -> tuple[str, Path, Path] | None:
    img = next((base / n for n in IMAGE_DIRS if (base / n).is_dir()), None)
    masks = next((base / n for n in MASK_DIRS if (base / n).is_dir()), None)
    return None if img is None or masks is None else ("", img, masks)


def discover(src: Path) -> PairLayout | None:
    """The layout at `src` (see the module docstring), or None."""
    base = src / ADE_ROOT if (src / ADE_ROOT).is_dir() else src
    found = _pair_at(base)
    if found is not None:
        _, img, masks = found
        common = [s for s in _subdirs(img) if (masks / s).is_dir()]
        splits = (tuple((s, img / s, masks / s) for s in common)
                  if common and not _has_files(img) else (("train", img, masks),))
        ade = (base.name == ADE_ROOT or (base / ADE_NAMES).is_file()
               or (masks.name == "annotations" and set(common) == set(ADE_SPLITS)))
        kind = (f"ADE20K SceneParsing ({img.name}/ + {masks.name}/)" if ade
                else f"{img.name}/ + {masks.name}/ folder pairs")
        return PairLayout(kind, base, splits, ade)
    splits = []
    for sub in _subdirs(base):
        pair = _pair_at(base / sub)
        if pair is not None:
            splits.append((sub, pair[1], pair[2]))
    if not splits:
        return None
    kind = f"<split>/{splits[0][1].name}/ + <split>/{splits[0][2].name}/ folder pairs"
    return PairLayout(kind, base, tuple(splits))


def _masks_only(folder: Path) -> bool:
    """A PNG in `folder` (two levels deep at most) and no detection label file."""
    found = False
    for dirpath, dirs, files in os.walk(folder):
        if len(Path(dirpath).relative_to(folder).parts) >= 2:
            dirs[:] = []
        for f in files:
            low = f.lower()
            if low.endswith(_NOT_MASKS) and not f.startswith("."):
                return False
            found = found or low.endswith(".png")
    return found


def detect(src: Path, *, forced: bool = False) -> bool:
    layout = discover(Path(src)) if Path(src).is_dir() else None
    if layout is None:
        return False
    # `forced` changes nothing: a mask folder of JSON, XML or YOLO .txt files is
    # another format's annotations (COCO's images/ + annotations/), never masks
    return all(_masks_only(m) for _, _, m in layout.splits)


def _ade_names(layout: PairLayout) -> tuple[str, ...] | None:
    path = layout.root / ADE_NAMES
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        names = tuple(row["Name"].split(";")[0].strip() for row in rows)
    except (KeyError, AttributeError):
        raise InputError(path, "ADE20K's objectInfo150.csv (Idx,Ratio,Train,Val,Name)",
                         "no Name column") from None
    return names


def _names(layout: PairLayout, request: SourceRequest) -> tuple[tuple[str, ...], str]:
    """The class names in mask-value order and where they came from."""
    if request.classes:
        return tuple(request.classes), "--classes"
    if layout.ade:
        names = _ade_names(layout)
        if names is not None:
            return names, ADE_NAMES
    folders = [layout.root] + [img.parent for _, img, _ in layout.splits]
    path = find_names(folders)
    if path is None:
        raise InputError(layout.root, "class names in mask-value order: classes.txt or "
                         "labels.txt beside the image folder, or --classes (id 0 first)",
                         "none")
    return read_names(path), str(path)


def _codec(names: tuple[str, ...], ade: bool) -> tuple[tuple[str, ...], MaskCodec]:
    """The label names (ids 0..N-1) and the mask codec. ADE20K: value 0 (other) is
    void and value k is id k-1 (a 151-name list's first name is that `other`)."""
    if not ade:
        check_num_classes(names, "--classes or the names file")
        return names, MaskCodec.identity(len(names))
    if len(names) == 151:
        names = names[1:]
    check_num_classes(names, "the ADE20K names")
    values = [UNKNOWN] * 256
    values[0] = VOID_ID
    for k in range(1, len(names) + 1):
        values[k] = k - 1
    values[VOID_ID] = VOID_ID
    return names, MaskCodec(tuple(values))


def load(src: Path, request: SourceRequest) -> SegmentationSource:
    layout = discover(Path(src))
    if layout is None:
        raise InputError(src, EXPECTED, "none of these")
    wanted = select([SegmentationSplit(n, i, m, ()) for n, i, m in layout.splits],
                    request.splits)
    if request.images is not None:
        one = len(wanted) == 1
        wanted = tuple(replace(s, image_dir=Path(request.images) / ("" if one else s.name))
                       for s in wanted)
    names, origin = _names(layout, request)
    names, codec = _codec(names, layout.ade)
    splits, skipped = [], []
    for s in wanted:
        items, skips = pair_items(s.name, s.image_dir, s.mask_dir)
        splits.append(replace(s, items=items))
        skipped += skips
    out, skipped_out = ratio_splits(splits, request.ratio, request.seed, skipped)
    notes = [f"class names from {origin}"]
    if layout.ade:
        notes.append(f"ADE20K: mask value 0 (other) is void ({VOID_ID}); value k is class id k-1")
    return SegmentationSource(FORMAT, layout.describe(), out, label_map_of(names), codec,
                              skipped_out, tuple(notes))
