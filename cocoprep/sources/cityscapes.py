"""Cityscapes (`leftImg8bit/` + `gtFine/`) -> finished segmentation splits.

`gtFine/<split>/<city>/<name>_gtFine_labelIds.png` holds the 34 label ids;
training uses the benchmark's 19 train classes (the table of the
`cityscapesscripts` package: road 7 -> 0, ..., bicycle 33 -> 18) and every other
id is void (255). The image of a mask is
`leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`. The `_color.png`,
`_instanceIds.png` and `_polygons.json` files beside the masks are not read.

Splits: `train` and `val`, as DeepLab's build_cityscapes_data converts them; the
`test` masks hold no labels (all void), so `test` is written only when `--splits`
names it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cocoprep.errors import InputError
from cocoprep.schema import VOID_ID
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.segmentation import (
    MaskCodec, SegmentationSource, SegmentationSplit, label_map_of, pair_items,
    ratio_splits, select,
)

TITLE = "Cityscapes"
FORMAT = "cityscapes"
EXPECTED = "Cityscapes (leftImg8bit/<split>/<city>/ + gtFine/<split>/<city>/*_labelIds.png)"
IMAGES, MASKS = "leftImg8bit", "gtFine"
IMAGE_SUFFIX, MASK_SUFFIX = "_leftImg8bit", "_gtFine_labelIds"
DEFAULT_SPLITS = ("train", "val")
# label id -> (train id, name) of the 19 classes the benchmark trains and scores
TRAIN_IDS = {7: (0, "road"), 8: (1, "sidewalk"), 11: (2, "building"), 12: (3, "wall"),
             13: (4, "fence"), 17: (5, "pole"), 19: (6, "traffic light"),
             20: (7, "traffic sign"), 21: (8, "vegetation"), 22: (9, "terrain"),
             23: (10, "sky"), 24: (11, "person"), 25: (12, "rider"), 26: (13, "car"),
             27: (14, "truck"), 28: (15, "bus"), 31: (16, "train"), 32: (17, "motorcycle"),
             33: (18, "bicycle")}


def _root(src: Path) -> Path | None:
    for base in (src, src / "cityscapes"):
        if (base / IMAGES).is_dir() and (base / MASKS).is_dir():
            return base
    return None


def detect(src: Path, *, forced: bool = False) -> bool:
    return Path(src).is_dir() and _root(Path(src)) is not None


def codec() -> tuple[tuple[str, ...], MaskCodec]:
    """The 19 names in train-id order, and label id -> train id (others void)."""
    values = [VOID_ID] * 256
    for label_id, (train_id, _) in TRAIN_IDS.items():
        values[label_id] = train_id
    names = tuple(name for _, name in sorted(TRAIN_IDS.values()))
    return names, MaskCodec(tuple(values))


def load(src: Path, request: SourceRequest) -> SegmentationSource:
    root = _root(Path(src))
    if root is None:
        raise InputError(src, EXPECTED, "none of these")
    found = sorted(p.name for p in (root / MASKS).iterdir()
                   if p.is_dir() and (root / IMAGES / p.name).is_dir())
    splits = [SegmentationSplit(s, root / IMAGES / s, root / MASKS / s, ()) for s in found]
    wanted = request.splits or tuple(s for s in DEFAULT_SPLITS if s in found) or None
    chosen = select(splits, wanted)
    if request.images is not None:
        chosen = tuple(replace(s, image_dir=Path(request.images) / s.name) for s in chosen)
    out, skipped = [], []
    for s in chosen:
        items, skips = pair_items(s.name, s.image_dir, s.mask_dir, mask_suffix=MASK_SUFFIX,
                                  image_suffix=IMAGE_SUFFIX)
        out.append(replace(s, items=items))
        skipped += skips
    final, skipped_out = ratio_splits(out, request.ratio, request.seed, skipped)
    names, mask_codec = codec()
    layout = f"Cityscapes (gtFine labelIds): split{'s' if len(final) != 1 else ''} " + \
        ", ".join(s.name for s in final)
    notes = (f"the 19 train classes (trainIds 0..18); every other label id is void ({VOID_ID})",)
    return SegmentationSource(FORMAT, layout, final, label_map_of(names), mask_codec,
                              tuple(skipped_out), notes)
