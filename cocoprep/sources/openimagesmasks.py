"""Open Images instance masks (`--masks`): the object-segmentation CSV, matched to
the box rows.

The CSV (`MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,
PredictedIoU,Clicks`) is streamed like the box CSV into compact columns. A mask row
is the mask of the box row with the same ImageID, LabelName and box (to 1e-6; the OD
API's challenge tools join the two files on those columns): that object keeps its
box row's flags and gets the mask. A mask row no box row matches becomes an object
of its own, its box from the Box* columns, its flags unknown (-1), its annotation id
the box CSV's last line number + its own line. Box rows no mask row matches have no
segmentation: `--missing-masks` decides (a box-filled mask, counted, as in every
format). The PNGs are only named here; the workers read them (`builders`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocoprep.errors import (
    MISSING_MASK, UNKNOWN_CATEGORY, UNKNOWN_IMAGE, UNSAFE_PATH, InputError,
)
from cocoprep.progress import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources.openimages import OidBoxes, csv_header, csv_rows, parse_box
from cocoprep.sources.openimageslayout import OidSplitFiles
from cocoprep.sources.segstore import MaskFileStore

SEG_BOX_COLUMNS = ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")
SEG_REQUIRED = ("MaskPath", "ImageID", "LabelName", *SEG_BOX_COLUMNS)
EXPECTED_CSV = ("the object-segmentation CSV for --masks ({split}-annotations-object-"
                "segmentation.csv beside the box CSV, or FiftyOne's {split}/labels/"
                "segmentations.csv)")
EXPECTED_DIR = ("the mask PNGs for --masks in masks/{split}/ or {split}-masks/ (FiftyOne: "
                "{split}/labels/masks/)")
_SCALE = 1e6  # boxes match to 1e-6 of the image
_BAR_EVERY = 10_000


@dataclass(frozen=True)
class OidMasks:
    """One split's mask rows: their PNG names (one byte string, end offsets), per box
    row (the extended columns) the index of its mask name or -1, the counts for the
    summary, the rows' skips, and where the PNGs are looked for."""

    names: bytes | bytearray
    ends: np.ndarray
    mask_of: np.ndarray
    matched: int
    own: int
    skipped: tuple[SkippedItem, ...]
    folders: tuple[str, ...]
    searched: str

    def store(self, rows: np.ndarray) -> MaskFileStore:
        """The segmentations of the box rows `rows` (in that order)."""
        return MaskFileStore(self.names, self.ends, self.mask_of[rows], self.folders,
                             self.searched)


@dataclass
class _MaskRows:
    image: array
    mid: array
    line: array
    box: array
    ends: array
    names: bytearray


def _files(files: OidSplitFiles, src: Path) -> tuple[Path, tuple[Path, ...]]:
    if files.segmentation is None:
        raise InputError(src, EXPECTED_CSV.format(split=files.name), "none")
    if not files.mask_dirs:
        raise InputError(src, EXPECTED_DIR.format(split=files.name), "no such folder")
    return files.segmentation, files.mask_dirs


def _safe(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def _read(path: Path, files: OidSplitFiles, boxes: OidBoxes, classes: dict[str, str] | None,
          quiet: bool) -> tuple[_MaskRows, list[SkippedItem]]:
    """Stream the CSV: the usable rows' columns (MIDs coded into `boxes.mids`), and
    the others as skips with their line."""
    what = "an Open Images segmentation CSV"
    rows = csv_rows(path, what)
    at = csv_header(path, rows, SEG_REQUIRED, what)
    images = {image_id: k for k, image_id in enumerate(boxes.image_ids)}
    mids = {m: k for k, m in enumerate(boxes.mids)}
    got = _MaskRows(array("i"), array("i"), array("q"), array("d"), array("q"), bytearray())
    skipped: list[SkippedItem] = []
    bar = progress_bar(None, f"reading {files.name} masks", "row", quiet)
    for line, row in rows:
        if line % _BAR_EVERY == 0:
            bar.update(_BAR_EVERY)
        if not row:
            continue
        field = {c: (row[at[c]] if len(row) > at[c] else "") for c in SEG_REQUIRED}
        image_id, mid, name = field["ImageID"], field["LabelName"], field["MaskPath"]
        box = parse_box(row, at, line, SEG_BOX_COLUMNS)
        if image_id not in images:
            reason, detail = UNKNOWN_IMAGE, (f"line {line}: ImageID {image_id!r} has no row "
                                             f"in {files.boxes.name}")
        elif len(box) == 2:
            reason, detail = box
        elif classes is not None and mid not in classes:
            reason, detail = UNKNOWN_CATEGORY, (f"line {line}: LabelName {mid!r} is not in the "
                                                "class descriptions")
        elif not name:
            reason, detail = MISSING_MASK, f"line {line}: MaskPath is empty"
        elif not _safe(name):
            reason, detail = UNSAFE_PATH, f"line {line}: MaskPath {name!r} is not a file name"
        else:
            got.image.append(images[image_id])
            got.mid.append(mids.setdefault(mid, len(mids)))
            got.line.append(line)
            got.box.extend(box)
            got.names += name.encode()
            got.ends.append(len(got.names))
            continue
        skipped.append(SkippedItem(files.name, image_id, boxes.last_line + line, name or
                                   f"{image_id}.jpg", reason, f"{path.name} {detail}"))
    bar.close()
    if len(mids) > len(boxes.mids):
        boxes.mids.extend(list(mids)[len(boxes.mids):])
    return got, skipped


def _keys(image: array, mid: array, box: array, rows: np.ndarray | None = None
          ) -> list[np.ndarray]:
    """The join key of each row (of `rows`), as six int32 columns: image, MID code and
    the box corners in millionths."""
    cols = [np.frombuffer(image, np.int32), np.frombuffer(mid, np.int32)] if len(image) \
        else [np.zeros(0, np.int32)] * 2
    corners = np.frombuffer(box, np.float64).reshape(-1, 4) if len(image) else np.zeros((0, 4))
    if rows is not None:
        cols, corners = [c[rows] for c in cols], corners[rows]
    return cols + [np.rint(corners[:, j] * _SCALE).astype(np.int32) for j in range(4)]


def match(box_keys: list[np.ndarray], mask_keys: list[np.ndarray]) -> np.ndarray:
    """Per mask row, the box row with the same key columns (the k-th equal mask row
    -> the k-th equal box row, in file order), or -1. Column by column: a few bytes a
    row beyond the keys, no row tuples."""
    nb, nm = len(box_keys[0]), len(mask_keys[0])
    found = np.full(nm, -1, np.int64)
    if not nb or not nm:
        return found
    n = nb + nm
    keys = [np.concatenate([b, m]) for b, m in zip(box_keys, mask_keys)]
    side = np.r_[np.zeros(nb, np.int8), np.ones(nm, np.int8)]
    order = np.lexsort((side, *keys[::-1]))  # stable: file order within equal keys
    group_start = np.zeros(n, bool)
    group_start[0] = True
    for column in keys:
        ordered = column[order]
        group_start[1:] |= ordered[1:] != ordered[:-1]
    del keys, ordered
    side = side[order]
    block_start = group_start.copy()
    block_start[1:] |= side[1:] != side[:-1]
    masks = np.flatnonzero(side == 1)   # sorted positions; in a group boxes come first
    first_mask = np.flatnonzero(block_start)[np.cumsum(block_start)[masks] - 1]
    first_row = np.flatnonzero(group_start)[np.cumsum(group_start)[masks] - 1]
    rank = masks - first_mask          # the k-th mask row of its key ...
    paired = rank < first_mask - first_row   # ... pairs with the k-th box row, if any
    found[order[masks[paired]] - nb] = order[(first_row + rank)[paired]]
    return found


def _where(folders: tuple[Path, ...], src: Path) -> str:
    top = [f for f in folders if f.parent not in folders]
    names = []
    for f in top:
        try:
            names.append(f.relative_to(src).as_posix() + "/")
        except ValueError:
            names.append(f"{f.name}/")
    return " or ".join(names) + " (and subfolders)"


def read_masks(files: OidSplitFiles, boxes: OidBoxes, classes: dict[str, str] | None, *,
               src: Path, quiet: bool = True) -> OidMasks:
    """Read one split's segmentation CSV and join it to `boxes`, whose columns grow
    by the mask rows no box row matches (objects of their own)."""
    path, folders = _files(files, src)
    got, skipped = _read(path, files, boxes, classes, quiet)
    cols = boxes.cols
    nb = len(cols.image)
    # only the box rows of images with a mask row can match (Open Images has masks of
    # 350 of its 600 classes, in about half of the images)
    has_mask = np.zeros(len(boxes.image_ids), bool)
    has_mask[np.frombuffer(got.image, np.int32) if len(got.image) else []] = True
    candidates = np.flatnonzero(has_mask[np.frombuffer(cols.image, np.int32)]) if nb else \
        np.zeros(0, np.int64)
    found = match(_keys(cols.image, cols.mid, cols.box, candidates),
                  _keys(got.image, got.mid, got.box))
    found = np.where(found >= 0, candidates[np.maximum(found, 0)], -1)
    mask_of = np.full(nb, -1, np.int64)
    matched = found >= 0
    mask_of[found[matched]] = np.flatnonzero(matched)
    own = np.flatnonzero(~matched)
    boxes_of = np.frombuffer(got.box, np.float64).reshape(-1, 4) if len(got.image) else None
    for k in own.tolist():
        cols.image.append(got.image[k])
        cols.mid.append(got.mid[k])
        cols.line.append(boxes.last_line + got.line[k])
        cols.box.extend(boxes_of[k].tolist())
        for flags in cols.flags.values():
            flags.append(-1)
    mask_of = np.concatenate([mask_of, own])
    ends = np.frombuffer(got.ends, np.int64) if len(got.ends) else np.zeros(0, np.int64)
    return OidMasks(got.names, ends, mask_of,
                    int(matched.sum()), len(own), tuple(skipped),
                    tuple(str(f) for f in folders), _where(folders, src))
