"""KITTI 2D object labels -> finished detection splits (`sources.detection`).

Layouts: KITTI's own `training/image_2` + `training/label_2` (`testing/` has no
labels: reported in a note, not written), Datumaro's `<subset>/image_2` +
`<subset>/label_2`, or SRC itself holding `image_2/` + `label_2/`. Each split is
named after its folder. A label line is `type truncated occluded alpha left top
right bottom height width length x y z rotation_y` (a 16th value, a detector's
score, is ignored).

Decisions where the format is silent (or the OD API's converter chose otherwise):

* names are kept as written (`Car`, `Person_sitting`; the OD API lowercases them)
  and every class is kept (it keeps a fixed list); `--classes` selects;
* `DontCare` regions are written as ignore regions: objects of class `DontCare`
  with is_crowd 1 (`--crowd drop` leaves them out, reported);
* truncated (a float 0..1), occluded (0..3), alpha and the 3D box are kept under
  named keys (`schema`'s issue-29 block; the OD API's keys, but truncation under
  `image/object/kitti/truncated`, VOC's integer key being taken);
* boxes stay in pixels as written (no 1-pixel shift); an image is matched to its
  label file by name; an image without a label file is written without objects;
* there is no split in KITTI: `--ratio` makes one, seeded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cocoprep.errors import (
    LABEL_WITHOUT_IMAGE, MALFORMED_BBOX, MALFORMED_LABEL_LINE, InputError, UsageError,
)
from cocoprep.progress import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources.detection import DetectionSource, SourceRequest
from cocoprep.sources.objects import (
    Finish, ObjectProblem, ReadSplit, SourceImage, SourceObject, finish, relative,
)
from cocoprep.sources.layout import folder_split_name, list_images

FORMAT = "kitti"
TITLE = "KITTI"
EXPECTED = ("KITTI object labels (training/image_2 + training/label_2, or "
            "<subset>/image_2 + <subset>/label_2)")
IMAGES, LABELS = "image_2", "label_2"
DONT_CARE = "DontCare"
EXTRAS = ("kitti_truncated", "occluded", "alpha", "box3d_height", "box3d_width",
          "box3d_length", "box3d_x", "box3d_y", "box3d_z", "box3d_rot_y")
_FIELDS = ("type", "truncated", "occluded", "alpha", "left", "top", "right", "bottom",
           "height", "width", "length", "x", "y", "z", "rotation_y")

_FIXES = {
    MALFORMED_LABEL_LINE: "KITTI label lines have 15 values: type truncated occluded alpha "
                          "left top right bottom height width length x y z rotation_y",
    MALFORMED_BBOX: "KITTI boxes need right >= left and bottom >= top (pixels)",
    LABEL_WITHOUT_IMAGE: "label_2/ files have no image of the same name in image_2/",
}

__all__ = ["FORMAT", "EXPECTED", "detect", "discover", "load", "parse_label_text"]


# ============================================================== layout

@dataclass(frozen=True)
class KittiLayout:
    kind: str
    splits: tuple[tuple[str, Path], ...]   # (name, folder holding image_2 + label_2)
    unlabelled: tuple[str, ...] = ()       # folders with image_2 but no label_2

    def describe(self) -> str:
        names = ", ".join(n for n, _ in self.splits)
        return f"KITTI ({self.kind}): split{'s' if len(self.splits) != 1 else ''} {names}"


def _has(folder: Path, name: str) -> bool:
    return (folder / name).is_dir()


def detect(src: Path) -> bool:
    """Cheap: a `label_2/` folder beside `image_2/`, in SRC or one folder below."""
    src = Path(src)
    if not src.is_dir():
        return False
    if _has(src, LABELS) and _has(src, IMAGES):
        return True
    return any(p.is_dir() and _has(p, LABELS) and _has(p, IMAGES) for p in src.iterdir())


def discover(src: Path) -> KittiLayout:
    if _has(src, LABELS):
        return KittiLayout(f"{IMAGES}/ + {LABELS}/", ((folder_split_name(src), src),))
    folders = sorted(p for p in src.iterdir() if p.is_dir() and _has(p, IMAGES))
    labelled = tuple((p.name, p) for p in folders if _has(p, LABELS))
    if not labelled:
        raise InputError(src, EXPECTED, "no label_2/ folder")
    kind = ("training/image_2 + training/label_2" if [n for n, _ in labelled] == ["training"]
            else f"<subset>/{IMAGES} + <subset>/{LABELS}")
    return KittiLayout(kind, labelled, tuple(p.name for p in folders if not _has(p, LABELS)))


def _select(layout: KittiLayout, wanted: Sequence[str] | None) -> KittiLayout:
    if not wanted:
        return layout
    have = dict(layout.splits)
    for name in wanted:
        if name not in have:
            raise UsageError("--splits", f"split names of this KITTI folder "
                             f"({', '.join(have)})", name)
    return KittiLayout(layout.kind, tuple((n, have[n]) for n in wanted), layout.unlabelled)


# ============================================================== one label file

def _number(text: str, field: str, line: int) -> float | ObjectProblem:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        return ObjectProblem(MALFORMED_LABEL_LINE, f"line {line}: {field} is {text[:40]!r}, "
                             "not a number")
    return value


def _line(text: str, line: int) -> SourceObject | ObjectProblem:
    parts = text.split()
    if len(parts) not in (15, 16):
        return ObjectProblem(MALFORMED_LABEL_LINE, f"line {line}: expected 15 values (type "
                             f"truncated occluded alpha left top right bottom height width "
                             f"length x y z rotation_y), found {len(parts)}")
    values = []
    for field, raw in zip(_FIELDS[1:], parts[1:15]):
        value = _number(raw, field, line)
        if isinstance(value, ObjectProblem):
            return value
        values.append(value)
    trunc, occ, alpha, left, top, right, bottom = values[:7]
    name = parts[0]
    if right < left or bottom < top:
        return ObjectProblem(MALFORMED_BBOX, f"line {line}: the {name!r} box has right < "
                             f"left or bottom < top ({left:g} {top:g} {right:g} {bottom:g})")
    extras = tuple(zip(EXTRAS, [trunc, int(occ), alpha] + values[7:]))
    return SourceObject(name, (left, top, right, bottom), crowd=name == DONT_CARE,
                        extras=extras)


def parse_label_text(text: str) -> tuple[SourceObject | ObjectProblem, ...]:
    """One label_2 file's objects (or each line's problem), blank lines ignored."""
    return tuple(_line(t, n) for n, t in enumerate(text.splitlines(), 1) if t.strip())


# ============================================================== one split

def read_split(name: str, folder: Path, src: Path, *, images: Path | None = None,
               quiet: bool = True) -> ReadSplit:
    """Every label file of the split with its image (by name), then the images
    without a label file (no objects); label files without an image are reported."""
    image_dir = images or folder / IMAGES
    by_stem: dict[str, str] = {}
    for f in list_images(image_dir, recursive=False):
        by_stem.setdefault(os.path.splitext(f)[0], f)
    label_dir = folder / LABELS
    label_names = sorted(e.name for e in os.scandir(label_dir)
                         if e.name.endswith(".txt") and e.is_file())
    out: list[SourceImage] = []
    skipped: list[SkippedItem] = []
    with progress_bar(len(label_names), f"reading {name} labels", "file", quiet) as bar:
        for label in label_names:
            bar.update()
            stem, where = label[:-4], relative(label_dir / label, src)
            image = by_stem.pop(stem, None)
            if image is None:
                skipped.append(SkippedItem(name, None, None, where, LABEL_WITHOUT_IMAGE,
                                           f"{where}: no image {stem}.* in "
                                           f"{relative(image_dir, src)}/"))
                continue
            text = (label_dir / label).read_bytes().decode("utf-8", errors="replace")
            out.append(SourceImage(image, stem, objects=parse_label_text(text), where=where))
    out += [SourceImage(f, stem) for stem, f in sorted(by_stem.items())]
    out.sort(key=lambda im: im.file_name)
    return ReadSplit(name, image_dir, out, skipped)


def load(src: Path, request: SourceRequest) -> DetectionSource:
    """Discover and read a KITTI folder into finished splits."""
    src = Path(src)
    layout = _select(discover(src), request.splits)
    images = Path(request.images) if request.images else None
    reads = [read_split(n, f, src, images=images, quiet=request.quiet)
             for n, f in layout.splits]
    notes = [f"{DONT_CARE} regions written as ignore regions (is_crowd 1, class "
             f"{DONT_CARE}; --crowd drop leaves them out)"]
    notes += [f"{u}/: {IMAGES} without {LABELS} (KITTI's test images have no labels): "
              "not written" for u in layout.unlabelled]
    unlabelled = sum(1 for r in reads for im in r.images if not im.where)
    if unlabelled:
        notes.append(f"{unlabelled} image(s) without a label file: written without objects")
    orphans = sum(len(r.skipped) for r in reads)
    missed = (f"{orphans} {LABELS}/ file(s) with no image of their name in {IMAGES}/"
              if orphans and not any(r.images for r in reads)
              else f"no object line in any {LABELS}/*.txt")
    return finish(src, reads, request, Finish(
        FORMAT, layout.describe(), tuple(notes),
        {n: {"images": str(f / IMAGES), "labels": str(f / LABELS)} for n, f in layout.splits},
        _FIXES, EXTRAS, missed=missed))
