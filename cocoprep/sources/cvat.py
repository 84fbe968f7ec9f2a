"""CVAT for images 1.1 XML -> finished detection splits.

Layouts: CVAT's own export (`annotations.xml` + `images/`; a project's images carry
`subset="Train"` and its images may sit in `images/<subset>/`), Datumaro's (one XML
per subset, `train.xml`, `val.xml`, beside `images/`), or the XML file itself. The
XML is read with defusedxml's `iterparse` (no entity expansion, no external DTD;
memory bounded: each `<image>` is dropped once read).

Decisions where the format is silent:

* splits are the images' `subset` attribute (one split `default` without it); in
  Datumaro's layout, the XML file's name;
* the label list and its order come from `<meta>` (labels without shapes still get
  ids); a shape whose label is not there is reported (`unknown_category`);
* `box` with `rotation`: the bbox is the axis-aligned box around the rotated one,
  the angle kept (`image/object/rotation`, degrees clockwise); `ellipse` (and its
  rotation) and `polygon` give the box around them; `mask` is CVAT's RLE (row-major
  runs over `width` x `height` starting with background, at `left`, `top`);
  `polyline`, `points`, `skeleton` and `cuboid` are reported (`unsupported_shape`);
* `occluded`, `z_order`, `group_id` (0: none), the shape type and the `<attribute>`
  values (one JSON object per object, sorted keys) are kept; `<tag>`s are the
  image's labels (`image/class/text`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence
from xml.etree.ElementTree import Element, ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from cocoprep.errors import (
    MALFORMED_SHAPE, UNKNOWN_CATEGORY, UNNAMED_OBJECT, UNSUPPORTED_SHAPE, InputError, UsageError,
)
from cocoprep.sources import shapes
from cocoprep.sources.detection import DetectionSource, SourceRequest
from cocoprep.sources.objects import (
    Finish, ObjectProblem, ReadSplit, SourceImage, SourceObject, finish, gc_paused, relative,
)

FORMAT = "cvat"
TITLE = "CVAT for images"
EXPECTED = "CVAT for images 1.1 XML (annotations.xml + images/, or <subset>.xml + images/)"
EXTRAS = ("occluded", "z_order", "group_id", "rotation", "shape", "attributes")
NO_AREA = ("polyline", "points", "skeleton", "cuboid")
AREA = ("box", "polygon", "ellipse", "mask")
DEFAULT_SPLIT = "default"
_ROOT = re.compile(rb"<annotations[\s>]")

_FIXES = {
    UNSUPPORTED_SHAPE: "polylines, points, skeletons and cuboids are not boxes: draw boxes, "
                       "polygons, ellipses or masks for objects to detect",
    MALFORMED_SHAPE: "shape coordinates must be numbers (box xtl ytl xbr ybr, polygon "
                     "points x,y;x,y;..., mask rle + left top width height)",
    UNKNOWN_CATEGORY: "shapes name labels that <meta> does not list",
    UNNAMED_OBJECT: "shapes need a label",
}

__all__ = ["FORMAT", "EXPECTED", "detect", "load", "read_xml"]


# ============================================================== layout

def _is_cvat(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return _ROOT.search(f.read(4096)) is not None
    except OSError:
        return False


def _xmls(src: Path) -> list[Path]:
    if src.is_file():
        return [src] if _is_cvat(src) else []
    if not src.is_dir():
        return []
    if (src / "annotations.xml").is_file():
        return [src / "annotations.xml"] if _is_cvat(src / "annotations.xml") else []
    return sorted(p for p in src.iterdir() if p.suffix.lower() == ".xml" and p.is_file()
                  and _is_cvat(p))


def detect(src: Path) -> bool:
    """SRC is, or holds, an XML whose root is `<annotations>` (VOC's is `<annotation>`)."""
    return bool(_xmls(Path(src)))


# ============================================================== one XML

@dataclass
class CvatSubset:
    """One subset's images as read (in file order), and its image folder."""

    name: str
    images: list[SourceImage] = field(default_factory=list)


@dataclass
class CvatFile:
    labels: list[str]
    subsets: dict[str, CvatSubset]
    images: int = 0


def _float(el: Element, name: str) -> float:
    value = float(el.get(name, "nan"))
    if not math.isfinite(value):
        raise ValueError(name)
    return value


def _floats(el: Element, names: tuple[str, ...]) -> tuple[float, ...]:
    """`_float` of each name, in one pass where all are finite numbers (the usual
    case); else name by name, so that the first bad one raises its own error."""
    get = el.get
    try:
        values = tuple([float(get(n, "nan")) for n in names])
    except ValueError:
        values = ()
    if values and all(map(math.isfinite, values)):
        return values
    return tuple(_float(el, n) for n in names)


_BOX = ("xtl", "ytl", "xbr", "ybr")
_ELLIPSE = ("cx", "cy", "rx", "ry")


def _attributes(el: Element) -> str:
    found = el.findall("attribute")
    if not found:  # most shapes: json.dumps({}) without the encoder
        return "{}"
    attrs = {a.get("name", ""): (a.text or "") for a in found}
    return json.dumps(attrs, sort_keys=True, ensure_ascii=False)


def _points(text: str) -> list[float]:
    out = []
    for pair in text.split(";"):
        x, y = pair.split(",")
        out += [float(x), float(y)]
    if not all(math.isfinite(v) for v in out):
        raise ValueError("points")
    return out


def _mask(el: Element, size: tuple[int, int]):
    runs = [int(v) for v in (el.get("rle") or "").replace(" ", "").split(",") if v]
    left, top = int(_float(el, "left")), int(_float(el, "top"))
    width, height = int(_float(el, "width")), int(_float(el, "height"))
    if width < 1 or height < 1 or any(r < 0 for r in runs) or sum(runs) != width * height:
        raise ValueError(f"rle runs add up to {sum(runs)}, not width x height "
                         f"({width}x{height})")
    values = np.zeros(len(runs), np.uint8)
    values[1::2] = 1
    bitmap = np.repeat(values, runs).reshape(height, width)
    box = shapes.bitmap_box(bitmap, left, top)
    if box is None:
        raise ValueError("the mask has no pixel set")
    w, h = size
    return box, (shapes.bitmap_rle(bitmap, left, top, h, w) if w and h else None)


def _geometry(el: Element, size: tuple[int, int]):
    """(box, segmentation, rotation) of one area shape; ValueError when it does not fit."""
    kind = el.tag
    rotation = float(el.get("rotation") or 0.0)
    if kind == "box":
        box = _floats(el, _BOX)
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"xbr < xtl or ybr < ytl ({' '.join(f'{v:g}' for v in box)})")
        poly = shapes.rotated_corners(box, rotation) if rotation else shapes.rect_polygon(box)
    elif kind == "ellipse":
        cx, cy, rx, ry = _floats(el, _ELLIPSE)
        poly = shapes.ellipse_polygon(0, 0, rx, ry)
        if rotation:
            c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
            poly = [v for x, y in zip(poly[0::2], poly[1::2])
                    for v in (x * c - y * s, x * s + y * c)]
        poly = [v + (cx if i % 2 == 0 else cy) for i, v in enumerate(poly)]
    elif kind == "polygon":
        poly = _points(el.get("points", ""))
        if len(poly) < 6:
            raise ValueError(f"{len(poly) // 2} point(s), a polygon needs 3")
    else:
        box, seg = _mask(el, size)
        return box, seg, rotation
    box = shapes.polygon_box(poly) if kind != "box" or rotation else box
    return box, [poly], rotation


def _shape(el: Element, index: int, size: tuple[int, int],
           labels: set[str]) -> SourceObject | ObjectProblem:
    label = el.get("label") or ""
    tag = el.tag
    if not label:
        return ObjectProblem(UNNAMED_OBJECT, f"<{tag}> {index} has no label")
    if tag in NO_AREA:
        return ObjectProblem(UNSUPPORTED_SHAPE, f"<{tag}> {index} ({label!r}): a {tag} has no "
                             "area, so it is not an object to detect")
    if labels and label not in labels:
        return ObjectProblem(UNKNOWN_CATEGORY, f"<{tag}> {index} ({label!r}): label {label!r} "
                             "is not in <meta>'s labels")
    try:
        box, seg, rotation = _geometry(el, size)
        extras = (("occluded", int(el.get("occluded") or 0)),
                  ("z_order", int(el.get("z_order") or 0)),
                  ("group_id", int(el.get("group_id") or 0)), ("rotation", rotation),
                  ("shape", tag), ("attributes", _attributes(el)))
    except (ValueError, TypeError) as e:
        return ObjectProblem(MALFORMED_SHAPE, f"<{tag}> {index} ({label!r}): "
                             f"{str(e)[:80] or 'not numbers'}")
    return SourceObject(label, box, segmentation=seg, extras=extras)


def _image(el: Element, labels: set[str], where: str) -> SourceImage:
    name = el.get("name") or ""
    try:
        size = (int(el.get("width") or 0), int(el.get("height") or 0))
    except ValueError:
        size = (0, 0)
    objects = []
    for index, child in enumerate(c for c in el if c.tag != "tag"):
        if child.tag in AREA or child.tag in NO_AREA:
            objects.append(_shape(child, index, size, labels))
    tags = [t.get("label") for t in el.findall("tag") if t.get("label")]
    return SourceImage(name.replace("\\", "/"), name, size[0], size[1], tuple(objects),
                       tuple(tags), where)


def _meta_labels(meta: Element) -> list[str]:
    for owner in ("task", "project", "job"):
        found = meta.find(f"{owner}/labels")
        if found is not None:
            return [lab.findtext("name", "") for lab in found.findall("label")
                    if lab.findtext("name")]
    return []


def _events(path: Path) -> Iterator[tuple[str, Element]]:
    try:
        yield from iterparse(str(path), events=("start", "end"))
    except (ParseError, DefusedXmlException) as e:
        kind = type(e).__name__ if isinstance(e, DefusedXmlException) else "not well-formed"
        raise InputError(path, "a CVAT for images 1.1 XML", f"{kind}: {e}") from None


def read_xml(path: Path, where: str, *, split: str | None = None) -> CvatFile:
    """Every `<image>` of one CVAT XML, by subset (`split` names them all, for
    Datumaro's one-file-per-subset layout)."""
    out = CvatFile([], {})
    labels: set[str] = set()
    depth = 0
    root_seen = False
    for event, el in _events(path):
        if event == "start":
            if not root_seen:
                root_seen = True
                if el.tag != "annotations":
                    raise InputError(path, "a CVAT for images 1.1 XML (root <annotations>)",
                                     f"<{el.tag[:40]}>")
            depth += 1
            continue
        depth -= 1
        if depth != 1:
            continue
        if el.tag == "meta":
            out.labels = _meta_labels(el)
            labels = set(out.labels)
        elif el.tag == "image":
            name = split or el.get("subset") or DEFAULT_SPLIT
            out.subsets.setdefault(name, CvatSubset(name)).images.append(
                _image(el, labels, where))
            out.images += 1
        el.clear()
    return out


# ============================================================== the source

def _image_dir(root: Path, subset: str, images: Sequence[SourceImage]) -> Path:
    """images/<subset>/ when the first image is there, else images/, else the XML's folder."""
    for folder in (root / "images" / subset, root / "images", root):
        if images and (folder / images[0].file_name).exists():
            return folder
    return root / "images" if (root / "images").is_dir() else root


def load(src: Path, request: SourceRequest) -> DetectionSource:
    """Read a CVAT for images XML (or Datumaro's XML per subset) into finished splits."""
    with gc_paused():
        return _load(src, request)


def _load(src: Path, request: SourceRequest) -> DetectionSource:
    src = Path(src)
    xmls = _xmls(src)
    if not xmls:
        raise InputError(src, EXPECTED, "no such XML")
    root = xmls[0].parent
    datumaro = xmls[0].name != "annotations.xml" and src.is_dir()
    subsets: dict[str, CvatSubset] = {}
    declared: list[str] = []
    images = 0
    for xml in xmls:
        read = read_xml(xml, relative(xml, root), split=xml.stem if datumaro else None)
        declared += [n for n in read.labels if n not in declared]
        subsets.update(read.subsets)
        images += read.images
    names = list(subsets)
    if request.splits:
        for n in request.splits:
            if n not in subsets:
                raise UsageError("--splits", f"subsets of this CVAT XML ({', '.join(names)})", n)
        names = list(request.splits)
    reads = [ReadSplit(n, _image_dir(root, n, subsets[n].images), subsets[n].images)
             for n in names]
    kind = ("Datumaro: <subset>.xml + images/" if datumaro
            else f"{xmls[0].name} + images/" if (root / "images").is_dir() else xmls[0].name)
    layout = f"CVAT for images 1.1 ({kind}): split{'s' if len(names) != 1 else ''} " + \
        (", ".join(names) or "none")
    missed = (f"no <image> in {', '.join(x.name for x in xmls)}" if not images
              else f"no <label> in <meta> and no shape with a label in {images} <image>(s)")
    if not reads:
        raise InputError(src, f"images in {layout}", missed)
    notes = (f"label list from <meta>: {len(declared)} label(s)",) if declared else ()
    return finish(src, reads, request, Finish(
        FORMAT, layout, notes, {n: {"annotations": ", ".join(str(x) for x in xmls)}
                                for n in names},
        _FIXES, EXTRAS, image_labels=True, declared=tuple(declared), missed=missed,
        index="CVAT XML"))
