"""Pascal VOC XML + images -> finished detection splits (`sources.detection`).

`voclayout.discover` finds the splits; here each XML is parsed with defusedxml (no
entity expansion, no external DTD), images are matched to XMLs, class names become
label ids 1..N (sorted, or in `--classes` order) and the splits are assembled.
What a file cannot give is skipped with its reason: an XML that does not parse, an
id listed without an XML, an object without a class name, without `<bndbox>`, with
coordinates that are not numbers (or max < min), or of a class `--classes` leaves
out. Everything else goes to the builder, which applies COCO's rules (size
mismatch, clipping, zero-area boxes). Boxes stay in pixels as the XML gives them
(floats, no 1-pixel shift: normalised as `xmin / width`, as the OD API does); a
missing or zero `<size>` is read from the image.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from xml.etree import ElementTree
from xml.etree.ElementTree import Element, ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from cocoprep.errors import (
    MALFORMED_BBOX, MALFORMED_XML, MISSING_BBOX, MISSING_XML, UNNAMED_OBJECT,
    ItemSkipped, UsageError,
)
from cocoprep.images import IMAGE_EXTENSIONS
from cocoprep.labelmap import LabelMap
from cocoprep.losses import split_missing_hint
from cocoprep.progress import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources.coco import Category
from cocoprep.sources.detection import (
    DetectionSource, DetectionSplit, LabelPlan, SourceRequest, output_splits, unlisted_images,
)
from cocoprep.sources.voclayout import (
    ANNOTATION_DIRS, VocSplitFiles, detect, discover, select_splits,
)
from cocoprep.sources.layout import list_images

FORMAT = "voc"
TITLE = "Pascal VOC"
OPTIONS = ("--skip-difficult",)  # what `sources._FORMAT_OPTIONS` lets through
EXPECTED = ("Pascal VOC XMLs (VOCdevkit Annotations/ + JPEGImages/, images/ + "
            "annotations/, image + XML pairs, or <split>/ folders of these)")

# Skip reasons found while reading (the builder adds the per-image ones; MISSING_BBOX,
# MALFORMED_BBOX and UNKNOWN_CATEGORY are COCO's names for the same faults).
_TRUE = frozenset({"1", "true", "yes", "1.0"})

__all__ = ["FORMAT", "EXPECTED", "detect", "discover", "load", "parse_voc"]


# ============================================================== one XML file

@dataclass(frozen=True)
class VocObject:
    """One `<object>`: class, box corners in pixels, and the VOC flags."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: int = 0
    truncated: int = 0
    pose: str = ""


@dataclass(frozen=True)
class ObjectProblem:
    """An `<object>` that cannot be written: the reason and what was found."""

    reason: str
    detail: str


@dataclass(frozen=True)
class VocRecord:
    """What one annotation XML says. Sizes are 0 when absent, zero or not numbers."""

    filename: str | None
    width: int
    height: int
    objects: tuple[VocObject | ObjectProblem, ...]


def _text(parent: Element, tag: str) -> str:
    found = parent.find(tag)
    return (found.text or "").strip() if found is not None else ""


def _size(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        return 0
    return int(value) if math.isfinite(value) and value.is_integer() and value > 0 else 0


def _flag(text: str) -> int:
    return 1 if text.lower() in _TRUE else 0


def _object(obj: Element) -> VocObject | ObjectProblem:
    name = _text(obj, "name")
    if not name:
        return ObjectProblem(UNNAMED_OBJECT, "the <object> has no <name>")
    box = obj.find("bndbox")
    if box is None:
        return ObjectProblem(MISSING_BBOX, f"the {name!r} <object> has no <bndbox>")
    corners = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(box, tag)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            return ObjectProblem(MALFORMED_BBOX, f"<{tag}> of the {name!r} <bndbox> is "
                                 f"{text[:40]!r}, not a number")
        corners.append(value)
    xmin, ymin, xmax, ymax = corners
    if xmax < xmin or ymax < ymin:
        return ObjectProblem(MALFORMED_BBOX, f"the {name!r} <bndbox> has xmax < xmin or "
                             f"ymax < ymin ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
    return VocObject(name, xmin, ymin, xmax, ymax, _flag(_text(obj, "difficult")),
                     _flag(_text(obj, "truncated")), _text(obj, "pose"))


_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_PLAIN_ENCODINGS = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}


def _without_dtd(data: bytes) -> bool:
    """True when the XML can carry no DTD: no `<!DOCTYPE` in an ASCII-compatible
    encoding (no NUL byte, no other declared encoding that could hide the bytes).
    Without a DTD no entity can be declared, so expat's C parser (the standard
    library's, several times faster than defusedxml's Python-level tree builder) is
    as safe as defusedxml; anything else goes through defusedxml."""
    if b"<!DOCTYPE" in data or b"\x00" in data:
        return False
    declared = _ENCODING.search(data[:200])
    return declared is None or declared.group(1).lower() in _PLAIN_ENCODINGS


def _tree(data: bytes) -> Element:
    return ElementTree.fromstring(data) if _without_dtd(data) else fromstring(data)


def parse_voc(data: bytes) -> VocRecord:
    """One annotation XML -> `VocRecord`; raises `ItemSkipped(MALFORMED_XML)` when it
    does not parse (or declares entities, which are never expanded) or its root is
    not `<annotation>`. Only direct `<object>` children are objects (VOC2012's
    `<part>`s inside a person are not)."""
    try:
        root = _tree(data)
    except (ParseError, DefusedXmlException) as e:
        kind = type(e).__name__ if isinstance(e, DefusedXmlException) else "not well-formed"
        raise ItemSkipped(MALFORMED_XML, f"{kind}: {e}") from None
    if root.tag != "annotation":
        raise ItemSkipped(MALFORMED_XML, f"the root element is <{root.tag[:40]}>, not "
                          "<annotation>")
    size = root.find("size")
    width = _size(_text(size, "width")) if size is not None else 0
    height = _size(_text(size, "height")) if size is not None else 0
    if not (width and height):
        width = height = 0
    filename = _text(root, "filename") or None
    return VocRecord(filename, width, height, tuple(_object(o) for o in root.findall("object")))


# ============================================================== image names

def image_lookup(names: Sequence[str]) -> dict[str, str]:
    """Image files (paths relative to the image folder) by name and by name without
    its image extension (the first in sorted order wins a shared stem)."""
    lookup: dict[str, str] = {}
    for name in sorted(names):
        base, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS:
            lookup.setdefault(name, name)
            lookup.setdefault(base, name)
    return lookup


def _inside(name: str) -> str:
    """`name` with `/` separators; an absolute name or one that climbs out of the
    folder becomes its file name (nothing outside the image folder is named)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:/", name) or ".." in name.split("/"):
        return name.rsplit("/", 1)[-1]
    return name


BY_FILENAME, BY_XML_NAME, NOT_FOUND = "filename", "xml_name", "not_found"
NO_XML = "no_xml"  # an image of the folder that no XML names (kept without objects)


def resolve_image(filename: str | None, xml_stem: str, lookup: dict[str, str]) -> tuple[str, str]:
    """The image of one XML, relative to the image folder: its `<filename>` (Label
    Studio writes it without extension: any image extension then), else the XML's
    own base name with any image extension. Returns (name, how it was found); a
    name NOT_FOUND is what the builder reports as a missing file."""
    if filename:
        name = _inside(filename)
        if name in lookup:
            return lookup[name], BY_FILENAME
    if xml_stem in lookup:
        return lookup[xml_stem], BY_XML_NAME
    return (_inside(filename) if filename else f"{xml_stem}.jpg"), NOT_FOUND


# ============================================================== one split

def _read_one(path: Path) -> VocRecord | ItemSkipped:
    try:
        return parse_voc(path.read_bytes())
    except OSError as e:
        return ItemSkipped(MALFORMED_XML, f"unreadable: {e.strerror}")
    except ItemSkipped as e:
        return e


def read_split(files: VocSplitFiles, *, quiet: bool = True
               ) -> list[tuple[str, VocRecord | ItemSkipped]]:
    """Every XML of a split, parsed (or the reason it cannot be), in listing order."""
    out: list[tuple[str, VocRecord | ItemSkipped]] = []
    with progress_bar(len(files.xml_names), f"reading {files.name} XMLs", "file", quiet) as bar:
        for name in files.xml_names:
            out.append((name, _read_one(files.ann_dir / name)))
            bar.update()
    return out


def class_names(read: Sequence[Sequence[tuple[str, VocRecord | ItemSkipped]]]) -> list[str]:
    """The label map's names: every class the XMLs name, sorted (label ids 1..N in
    that order; `--classes` then picks and orders, as for every format)."""
    names = {o.name for split in read for _, r in split if isinstance(r, VocRecord)
             for o in r.objects if isinstance(o, VocObject)}
    return sorted(names)


@dataclass
class _Columns:
    """A split's arrays while they are collected."""

    image_ids: list[int]
    file_names: list[str]
    source_ids: list[str]
    widths: list[int]
    heights: list[int]
    counts: list[int]
    ann_ids: list[int]
    labels: list[int]
    boxes: list[tuple[float, float, float, float]]
    difficult: list[int]
    truncated: list[int]
    views: list[str]
    xml_files: list[str]  # per image, as reports name it ("" for an image without one)


def _objects(cols: _Columns, record: VocRecord, skip, label_ids: dict[str, int],
             next_ann: int) -> int:
    """Append one image's objects (or their skips); returns the next annotation id."""
    kept = 0
    for obj in record.objects:
        ann_id, next_ann = next_ann, next_ann + 1
        if isinstance(obj, ObjectProblem):
            skip(obj.reason, obj.detail, ann_id)
            continue
        label = label_ids[obj.name]  # every name the XMLs use is in the map
        cols.ann_ids.append(ann_id)
        cols.labels.append(label)
        cols.boxes.append((obj.xmin, obj.ymin, obj.xmax - obj.xmin, obj.ymax - obj.ymin))
        cols.difficult.append(obj.difficult)
        cols.truncated.append(obj.truncated)
        cols.views.append(obj.pose)
        kept += 1
    cols.counts.append(kept)
    return next_ann


def assemble(files: VocSplitFiles, read: Sequence[tuple[str, VocRecord | ItemSkipped]], *,
             label_ids: dict[str, int], categories: list[Category], images: Sequence[str],
             where: str = "", unclaimed: bool = False
             ) -> tuple[DetectionSplit, list[SkippedItem], Counter, set[str]]:
    """One split from its parsed XMLs. `images` lists the files of the image folder;
    `where` is the annotation folder as the report names it. With `unclaimed`, the
    folder's images that no XML names are written too, without objects (counted as
    `no_xml`), as YOLO keeps images without labels: an image the source holds is
    never dropped unseen. Returns the split, the skips found here, counts of how
    images were found (`resolve_image`) and the images its XMLs name (a malformed
    XML's too)."""
    lookup = image_lookup(images)
    cols = _Columns(*([] for _ in range(13)))
    skipped: list[SkippedItem] = []
    found: Counter = Counter()
    next_ann = 1
    claimed: set[str] = set()
    for image_id, (xml_name, record) in enumerate(read, 1):  # ids: places in the listing
        xml_path = f"{where}{xml_name}"
        if isinstance(record, ItemSkipped):
            claimed.add(lookup.get(xml_name[:-4], ""))
            skipped.append(SkippedItem(files.name, image_id, None, xml_path, record.reason,
                                       f"{xml_path}: {record.detail}"))
            continue
        name, how = resolve_image(record.filename, xml_name[:-4], lookup)
        found[how] += 1
        claimed.add(name)

        def skip(reason: str, detail: str, ann_id: int) -> None:
            skipped.append(SkippedItem(files.name, image_id, ann_id, name, reason,
                                       f"{xml_path}: {detail}"))

        cols.image_ids.append(image_id)
        cols.file_names.append(name)
        cols.source_ids.append(record.filename or name)
        cols.xml_files.append(xml_path)
        cols.widths.append(record.width)
        cols.heights.append(record.height)
        found["no_size"] += record.width == 0
        next_ann = _objects(cols, record, skip, label_ids, next_ann)
    if unclaimed:
        for image_id, name in enumerate(sorted(set(lookup.values()) - claimed), len(read) + 1):
            cols.image_ids.append(image_id)
            cols.file_names.append(name)
            cols.source_ids.append(name)
            cols.xml_files.append("")
            cols.widths.append(0)
            cols.heights.append(0)
            cols.counts.append(0)
            found[NO_XML] += 1
    for missing in files.missing:
        skipped.append(SkippedItem(
            files.name, None, None, f"{where}{missing}.xml", MISSING_XML,
            f"{files.list_file.name if files.list_file else 'the split list'} lists "
            f"{missing!r}, which has no {where}{missing}.xml"))
    return _split(files, cols, categories), skipped, found, claimed


def _split(files: VocSplitFiles, cols: _Columns, categories: list[Category]) -> DetectionSplit:
    m = len(cols.ann_ids)
    ann_start = np.zeros(len(cols.counts) + 1, np.int64)
    np.cumsum(np.array(cols.counts, np.int64), out=ann_start[1:])
    return DetectionSplit(
        name=files.name, image_dir=files.image_dir,
        image_ids=np.array(cols.image_ids, np.int64), file_names=cols.file_names,
        widths=np.array(cols.widths, np.int64), heights=np.array(cols.heights, np.int64),
        ann_start=ann_start, ann_ids=np.array(cols.ann_ids, np.int64),
        ann_category_ids=np.array(cols.labels, np.int64),
        bbox=np.array(cols.boxes, np.float64).reshape(m, 4),
        bbox_status=np.zeros(m, np.uint8), iscrowd=np.zeros(m, np.uint8),
        area=np.full(m, np.nan), categories=list(categories), source_ids=cols.source_ids,
        difficult=np.array(cols.difficult, np.uint8), truncated=np.array(cols.truncated, np.uint8),
        views=cols.views, annotation_files=cols.xml_files, corner_boxes=True,
    )


# ============================================================== the whole source

_FIXES = {
    MALFORMED_XML: "the annotation XMLs do not parse as Pascal VOC <annotation> files: "
                   "are they complete (a finished download, unzipped)?",
    MISSING_XML: "the split lists (ImageSets/Main/<split>.txt) name ids that have no XML",
    UNNAMED_OBJECT: "the XMLs' <object>s have no <name>",
    MISSING_BBOX: "the XMLs' <object>s have no <bndbox>",
    MALFORMED_BBOX: "the <bndbox> corners are not numbers with xmin <= xmax, ymin <= ymax",
}


def _hint(outputs, src: Path):
    """Where a lost split's missing images may be."""

    # SRC may be a devkit's Annotations/ folder: its images sit beside it
    inner = src.name in ANNOTATION_DIRS
    search = src.parent if inner else src

    def tail(text: str) -> str:
        if inner and f"; {search}" in text:
            text += f" (or give the folder above as SRC: cocoprep convert {search})"
        return text

    return split_missing_hint(outputs, search, tail)


def _notes(names: list[str], request: SourceRequest, found: Counter) -> tuple[str, ...]:
    notes = [f"label ids 1..{len(names)}: the XMLs' class names in sorted order "
             "(--classes picks and orders)"]
    if found[BY_XML_NAME]:
        notes.append(f"{found[BY_XML_NAME]} image(s) found by the XML's own name (their "
                     "<filename> is absent or names no file in the image folder)")
    if found[NO_XML]:
        notes.append(f"{found[NO_XML]} image(s) have no XML: written as images without "
                     "objects (negatives); add XMLs, or remove them, if they are unlabelled")
    if found["no_size"]:
        notes.append(f"{found['no_size']} XML(s) give no <size> (or 0): those images' "
                     "sizes are read from the images")
    return tuple(notes)


def load(src: str | Path, request: SourceRequest) -> DetectionSource:
    """Discover, read and validate a Pascal VOC source into finished splits (every
    whole-input error is raised here, before anything is written)."""
    layout = select_splits(discover(src, images=request.images), request.splits)
    if request.ratio is not None and len(layout.splits) != 1:
        raise UsageError("--ratio", "exactly one split to deal out (pick one with --splits)",
                         ",".join(s.name for s in layout.splits))
    read = [read_split(files, quiet=request.quiet) for files in layout.splits]
    names = class_names(read)
    label_ids = {n: i for i, n in enumerate(names, 1)}
    categories = [Category(i, n) for n, i in label_ids.items()]
    splits, skipped, found = [], [], Counter()
    shared = Counter(files.image_dir for files in layout.splits)
    named: set[str] = set()  # images the split lists name (a malformed XML's too)
    for files, parsed in zip(layout.splits, read):
        where = _relative(files.ann_dir, Path(src))
        # Without a split list the XMLs are the split: the folder's other images are
        # kept (not when splits share one image folder: whose would they be?)
        split, skips, how, claimed = assemble(
            files, parsed, label_ids=label_ids, categories=categories,
            images=list_images(files.image_dir, recursive=files.recursive_images), where=where,
            unclaimed=files.list_file is None and shared[files.image_dir] == 1)
        splits.append(split)
        skipped += skips
        found += how
        if files.list_file is not None:
            named |= claimed
    listed = [s for s, f in zip(splits, layout.splits) if f.list_file is not None]
    skipped += unlisted_images(listed, listed_by="split list", also_named=named)
    label_map = LabelMap.from_names(names)
    labels = LabelPlan(label_map, {i: (i, n) for n, i in label_ids.items()}, (), True)
    outputs, skipped = output_splits(splits, ratio=request.ratio, seed=request.seed,
                                     skipped=skipped)
    return DetectionSource(
        format=FORMAT, layout=layout.describe(), splits=outputs, labels=labels,
        skipped=skipped, notes=_notes(names, request, found),
        source_paths={s.name: s.paths() for s in layout.splits},
        missing_hint=_hint(outputs, Path(src)),
        fixes=_FIXES)


def _relative(folder: Path, src: Path) -> str:
    """`folder` relative to SRC, with a trailing `/` ("" for SRC itself): how skip
    reports name XML files (never an absolute path: reports are the same bytes
    wherever the data lives)."""
    try:
        rel = folder.relative_to(src).as_posix()
    except ValueError:
        return f"{folder.name}/"
    return "" if rel == "." else f"{rel}/"
