"""Roboflow "Semantic Segmentation Masks" -> finished segmentation splits.

Layout: `<split>/` folders (`train/`, `valid/`, `test/`), each holding the images,
one `<image stem>_mask.png` per image (a grey PNG of pixel values) and
`_classes.csv` (`Pixel Value, Class`: each value's class name). Ids are the
classes in pixel-value order (values 0..N-1 keep their value); 255 is void; a
value the CSV does not list is a skip naming the file and the value.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from cocoprep.errors import InputError
from cocoprep.schema import VOID_ID
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.layout import folder_split_name
from cocoprep.sources.segmentation import (
    UNKNOWN, MaskCodec, SegmentationSource, SegmentationSplit, check_num_classes,
    label_map_of, pair_items, ratio_splits, select,
)

TITLE = "Roboflow mask"
FORMAT = "roboflow_masks"
EXPECTED = "a Roboflow Semantic Segmentation Masks export (<split>/_classes.csv + *_mask.png)"
CLASSES_CSV = "_classes.csv"
MASK_SUFFIX = "_mask"
_ORDER = {"train": 0, "valid": 1, "val": 1, "test": 2}


def _is_mask_table(path: Path) -> bool:
    """`_classes.csv` of a mask export (Roboflow's classification CSV export has a
    `_classes.csv` too, with a `filename` header)."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            head = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return head.replace(" ", "").lower().startswith("pixelvalue,")


def _split_dirs(src: Path) -> list[Path]:
    dirs = [p for p in src.iterdir() if p.is_dir() and _is_mask_table(p / CLASSES_CSV)]
    if _is_mask_table(src / CLASSES_CSV):
        dirs.append(src)
    return sorted(dirs, key=lambda p: (_ORDER.get(p.name, len(_ORDER)), p.name))


def detect(src: Path, *, forced: bool = False) -> bool:
    return Path(src).is_dir() and bool(_split_dirs(Path(src)))


def read_classes(path: Path) -> dict[int, str]:
    """Pixel value -> class name, from `_classes.csv`."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [[c.strip() for c in row] for row in csv.reader(f) if row]
    if not rows or [c.lower() for c in rows[0][:2]] != ["pixel value", "class"]:
        raise InputError(path, "a header `Pixel Value, Class`", repr(",".join(rows[0]))
                         if rows else "an empty file")
    out: dict[int, str] = {}
    for number, row in enumerate(rows[1:], 2):
        try:
            value, name = int(row[0]), row[1]
        except (ValueError, IndexError):
            raise InputError(f"{path}:{number}", "a pixel value and a class name",
                             repr(",".join(row))) from None
        if not 0 <= value < VOID_ID or value in out or not name:
            raise InputError(f"{path}:{number}", f"a new pixel value 0..{VOID_ID - 1} and "
                             "a name", repr(",".join(row)))
        out[value] = name
    return out


def load(src: Path, request: SourceRequest) -> SegmentationSource:
    dirs = _split_dirs(Path(src))
    if not dirs:
        raise InputError(src, EXPECTED, "none of these")
    tables = {d.name: read_classes(d / CLASSES_CSV) for d in dirs}
    table = tables[dirs[0].name]
    other = next((name for name, t in tables.items() if t != table), None)
    if other is not None:
        raise InputError(Path(src) / other / CLASSES_CSV, f"the classes of "
                         f"{dirs[0].name}/{CLASSES_CSV}", "other classes")
    splits = select([SegmentationSplit(folder_split_name(d), d, d, ()) for d in dirs],
                    request.splits)
    out, skipped = [], []
    for s in splits:
        items, skips = pair_items(s.name, s.image_dir, s.mask_dir, mask_suffix=MASK_SUFFIX)
        out.append(replace(s, items=items))
        skipped += skips
    final, skipped_out = ratio_splits(out, request.ratio, request.seed, skipped)
    names = tuple(table[v] for v in sorted(table))
    check_num_classes(names, CLASSES_CSV)
    values = [UNKNOWN] * 256
    for i, v in enumerate(sorted(table)):
        values[v] = i
    values[VOID_ID] = VOID_ID
    layout = (f"Roboflow semantic segmentation masks: split{'s' if len(final) != 1 else ''} "
              + ", ".join(s.name for s in final))
    return SegmentationSource(FORMAT, layout, final, label_map_of(names), MaskCodec(tuple(values)),
                              tuple(skipped_out), (f"class names from {CLASSES_CSV}",))
