"""LabelMe JSON (one file per image) -> finished detection splits.

Layouts: a folder of LabelMe `*.json` (the images beside them or wherever
`imagePath` says, relative to the JSON: `..` and Windows `\\` separators as LabelMe
writes them), an `annotations/` (or `labels/`, `json/`) folder of them, or
`<split>/` folders of either; each split is named after its folder.

Decisions where the format is silent (following what LabelMe's own labelme2coco
does where it says):

* shapes of the same label and `group_id` are one object: the box around them all,
  the union of their masks (`image/object/group_id` keeps the id; 0 = none);
* `rectangle` is two corners in either drag order; `circle` is the centre and a
  rim point (a 64-point polygon for --masks); `polygon` needs 3 points; `mask` is a
  base64 PNG whose top-left pixel is the first point (its box: the set pixels);
  `point`, `points`, `line` and `linestrip` have no area: each is reported
  (`unsupported_shape`), never silently dropped;
* image-level `flags` that are true are the image's labels (`image/class/text`, in
  the file's order); a shape's own `flags` and `description` are its attributes
  (`image/object/attributes`, JSON); the shape type is kept (`image/object/shape`);
* a missing image file is read from the JSON's `imageData` (LabelMe's default)
  when it has one; the size the JSON states is checked against the image.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from cocoprep.errors import (
    MALFORMED_JSON, MALFORMED_SHAPE, MISSING_FILE, UNNAMED_OBJECT, UNSUPPORTED_SHAPE,
    InputError, ItemSkipped, UsageError,
)
from cocoprep.progress import progress_bar
from cocoprep.sources import shapes
from cocoprep.sources.detection import DetectionSource, SourceRequest
from cocoprep.sources.layout import folder_split_name, list_images
from cocoprep.sources.objects import (
    FileProblem, Finish, ObjectProblem, ReadSplit, SourceImage, SourceObject, finish,
    gc_paused, relative,
)

FORMAT = "labelme"
TITLE = "LabelMe"
EXPECTED = "LabelMe JSON files (one per image, with `shapes` and `imagePath`)"
EXTRAS = ("group_id", "shape", "attributes")
NO_AREA = ("point", "points", "line", "linestrip")
_ANNOTATION_DIRS = ("annotations", "labels", "json", "ann")
_SHAPES_KEY = re.compile(rb'"shapes"\s*:\s*\[')
_PEEK = 1 << 16

_FIXES = {
    MALFORMED_JSON: "the JSON files do not parse as LabelMe files (an object with a "
                    "`shapes` list): are they complete?",
    MALFORMED_SHAPE: "shapes need points as [x, y] numbers: 2 for rectangle and circle, "
                     "3 or more for polygon, 2 and a base64 PNG for mask",
    UNSUPPORTED_SHAPE: "points and lines have no area: draw rectangles or polygons for "
                       "objects to detect",
    UNNAMED_OBJECT: "shapes need a `label`",
}

__all__ = ["FORMAT", "EXPECTED", "detect", "load", "parse_labelme", "embedded_image"]


# ============================================================== layout

def _is_labelme(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return _SHAPES_KEY.search(f.read(_PEEK)) is not None
    except OSError:
        return False


def _jsons(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(e.name for e in os.scandir(folder)
                  if e.name.lower().endswith(".json") and e.is_file())


def _holds_labelme(folder: Path) -> bool:
    names = _jsons(folder)
    return bool(names) and _is_labelme(folder / names[0])


def _splits(src: Path) -> list[tuple[str, Path]]:
    """(split name, folder of JSONs) for each split found."""
    if _holds_labelme(src):
        return [(folder_split_name(src), src)]
    for name in _ANNOTATION_DIRS:
        if _holds_labelme(src / name):
            return [(folder_split_name(src), src / name)]
    out = []
    for child in sorted(p for p in src.iterdir() if p.is_dir()):
        inner = [child] + [child / n for n in _ANNOTATION_DIRS]
        found = next((f for f in inner if _holds_labelme(f)), None)
        if found is not None:
            out.append((child.name, found))
    return out


def detect(src: Path) -> bool:
    """A folder whose first JSON (in it, its annotation folder or one split folder
    down) holds a `"shapes": [` list in its first 64 KiB."""
    src = Path(src)
    return src.is_dir() and bool(_splits(src))


# ============================================================== one JSON file

@dataclass(frozen=True)
class LabelmeFile:
    image_path: str | None
    width: int
    height: int
    has_data: bool
    flags: tuple[str, ...]
    objects: tuple[SourceObject | ObjectProblem, ...]


_NUMBER = (int, float)
_NEED = {"rectangle": 2, "circle": 2, "polygon": 3, "mask": 2}  # points per shape type


def _points(shape: dict) -> list[float] | None:
    """The shape's points flat ([x, y, x, y, ...], floats), None unless every one is
    an [x, y] pair of finite numbers."""
    pts = shape.get("points")
    if not isinstance(pts, list):
        return None
    out: list[float] = []
    finite = math.isfinite
    for p in pts:
        if type(p) is not list or len(p) != 2:
            return None
        x, y = p
        # exact types: a bool is an int subclass, and not a coordinate
        if (type(x) not in _NUMBER or type(y) not in _NUMBER
                or not (finite(x) and finite(y))):
            return None
        out += (float(x), float(y))
    return out


class _Piece(NamedTuple):
    """One shape read (a NamedTuple: one is made per shape, and cheaply)."""

    label: str
    group: Any
    kind: str
    box: shapes.Box
    segmentation: Any
    attributes: str


def _mask_piece(shape: dict, left_top: Sequence[float], size: tuple[int, int]
                ) -> tuple[shapes.Box, Any] | str:
    from PIL import Image, UnidentifiedImageError
    import numpy as np

    try:
        data = base64.b64decode(shape.get("mask") or "", validate=True)
        bitmap = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        return "its `mask` is not a base64 PNG"
    left, top = int(round(left_top[0])), int(round(left_top[1]))
    box = shapes.bitmap_box(bitmap, left, top)
    if box is None:
        return "its mask has no pixel set"
    width, height = size
    seg = shapes.bitmap_rle(bitmap, left, top, height, width) if width and height else None
    return box, seg


def _attributes(shape: dict) -> str:
    flags, description = shape.get("flags"), shape.get("description")
    if not flags and not description:  # most shapes: nothing to encode
        return "{}"
    attrs = {}
    if isinstance(flags, dict) and flags:
        attrs["flags"] = flags
    if isinstance(description, str) and description:
        attrs["description"] = description
    return json.dumps(attrs, sort_keys=True, ensure_ascii=False) if attrs else "{}"


def _piece(shape: Any, index: int, size: tuple[int, int]) -> _Piece | ObjectProblem:
    if not isinstance(shape, dict):
        return ObjectProblem(MALFORMED_SHAPE, f"shape {index} is not an object")
    label = shape.get("label")
    kind = shape.get("shape_type") or "polygon"
    if not isinstance(label, str) or not label.strip():
        return ObjectProblem(UNNAMED_OBJECT, f"shape {index} ({kind}) has no label")
    if kind in NO_AREA:
        return ObjectProblem(UNSUPPORTED_SHAPE, f"shape {index} ({label!r}, {kind}): a {kind} "
                             "has no area, so it is not an object to detect")
    pts = _points(shape)
    need = _NEED.get(kind)
    if need is None:
        return ObjectProblem(UNSUPPORTED_SHAPE, f"shape {index} ({label!r}, {kind}): unknown "
                             "shape type")
    if pts is None or len(pts) < 2 * need or (kind in ("circle", "mask") and len(pts) != 4):
        return ObjectProblem(MALFORMED_SHAPE, f"shape {index} ({label!r}, {kind}): points are "
                             f"not {need}{' or more' if kind in ('polygon', 'rectangle') else ''} "
                             "[x, y] number pairs")
    if kind == "circle":
        cx, cy, px, py = pts
        r = math.hypot(px - cx, py - cy)
        box, seg = (cx - r, cy - r, cx + r, cy + r), [shapes.ellipse_polygon(cx, cy, r, r)]
    elif kind == "mask":
        made = _mask_piece(shape, pts, size)
        if isinstance(made, str):
            return ObjectProblem(MALFORMED_SHAPE, f"shape {index} ({label!r}, {kind}): {made}")
        box, seg = made
    else:
        box = shapes.bounds(pts[0::2], pts[1::2])
        seg = [shapes.rect_polygon(box) if kind == "rectangle" else pts]
    return _Piece(label, shape.get("group_id"), kind, box, seg, _attributes(shape))


def _group_id(group: Any) -> int:
    return group if isinstance(group, int) and not isinstance(group, bool) else 0


def _object(pieces: list[_Piece], size: tuple[int, int]) -> SourceObject:
    """The object of one shape, or of the shapes of one (label, group_id) merged."""
    first = pieces[0]
    if len(pieces) == 1:  # most objects: one shape, nothing to merge
        seg, kinds, box = first.segmentation, first.kind, first.box
    else:
        width, height = size
        seg = shapes.union_segmentation([p.segmentation for p in pieces], height, width)
        kinds = "+".join(sorted({p.kind for p in pieces}))
        box = shapes.union_box([p.box for p in pieces])
    return SourceObject(first.label, box, segmentation=seg, extras=(
        ("group_id", _group_id(first.group)), ("shape", kinds),
        ("attributes", first.attributes)))


def _objects(raw: Sequence, size: tuple[int, int]) -> tuple[SourceObject | ObjectProblem, ...]:
    """Each shape's piece; pieces of one (label, group_id) merge into the first's place."""
    out: list[Any] = []  # objects, problems, and (grouped) lists of pieces merged later
    groups: dict[tuple[str, Any], int] = {}
    for index, shape in enumerate(raw):
        piece = _piece(shape, index, size)
        if isinstance(piece, ObjectProblem):
            out.append(piece)
        elif piece.group is None:
            out.append(_object([piece], size))
        else:
            key = (piece.label, json.dumps(piece.group))
            if key in groups:
                out[groups[key]].append(piece)
            else:
                groups[key] = len(out)
                out.append([piece])
    if groups:
        out = [_object(item, size) if isinstance(item, list) else item for item in out]
    return tuple(out)


def _dimension(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else 0


def parse_labelme(data: bytes) -> LabelmeFile:
    """One LabelMe JSON -> `LabelmeFile`; `ItemSkipped(MALFORMED_JSON)` when it is not
    JSON or not an object with a `shapes` list."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ItemSkipped(MALFORMED_JSON, f"not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise ItemSkipped(MALFORMED_JSON, "not a LabelMe file (no `shapes` list)")
    size = (_dimension(doc.get("imageWidth")), _dimension(doc.get("imageHeight")))
    if not all(size):
        size = (0, 0)
    flags = doc.get("flags")
    flags = tuple(k for k, v in flags.items() if v is True) if isinstance(flags, dict) else ()
    path = doc.get("imagePath")
    return LabelmeFile(path if isinstance(path, str) and path else None, size[0], size[1],
                       bool(doc.get("imageData")), flags, _objects(doc["shapes"], size))


def embedded_image(json_path: str) -> bytes:
    """The image bytes a LabelMe JSON carries in `imageData` (its file is missing)."""
    try:
        doc = json.loads(Path(json_path).read_bytes())
        return base64.b64decode(doc["imageData"], validate=True)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as e:
        raise ItemSkipped(MISSING_FILE, f"the image file is missing and {Path(json_path).name}'s"
                          f" imageData does not decode ({type(e).__name__})") from None


# ============================================================== one split

def _join(folder: str, name: str) -> str:
    """str(Path(folder) / name) for a plain file name, without building Paths."""
    if folder == ".":
        return name
    return folder + name if folder.endswith("/") else f"{folder}/{name}"


def _image_path(json_dir: str, stem: str, image_path: str | None) -> str:
    """Where the image is: `imagePath` relative to the JSON (either separator; when
    that names no file, its file name beside the JSON), else an image of the JSON's
    name beside it (.jpg unless another exists). Strings: Paths cost per file."""
    if image_path:
        named = image_path.replace("\\", "/")
        path = os.path.normpath(os.path.join(json_dir, named))
        if os.path.exists(path):
            return path
        # an absolute path from another machine: the image of that name beside the JSON
        beside = str(Path(json_dir) / named.rsplit("/", 1)[-1])
        return beside if os.path.exists(beside) else path
    for ext in (".jpg", ".jpeg", ".png", ".bmp"):
        if os.path.exists(candidate := _join(json_dir, f"{stem}{ext}")):
            return candidate
    return _join(json_dir, f"{stem}.jpg")


def _under(path: str, root: str) -> str:
    """Path(path).relative_to(root).as_posix(), by slicing where `path` is plainly
    inside `root` (the usual case), else by pathlib."""
    if "//" not in path:
        if root == "." and not path.startswith("/"):
            return path
        if root not in (".", "/") and path.startswith(root + "/"):
            return path[len(root) + 1:]
    return Path(path).relative_to(root).as_posix()


def read_split(name: str, folder: Path, src: Path, *, quiet: bool = True
               ) -> tuple[ReadSplit, int]:
    """Every JSON of the split parsed; its images relative to the deepest folder
    holding them all (an image missing as a file, with imageData in its JSON, is
    read from there). Returns the split and how many JSONs parse."""
    parsed: list[tuple[str, str | None, LabelmeFile | ItemSkipped]] = []
    names = _jsons(folder)
    unusable: list[str] = []  # the images of JSONs that do not parse: not strays
    at = relative(folder, src)  # as reports name the folder ("." for SRC itself)
    prefix = "" if at == "." else at + "/"
    base = str(folder)
    with progress_bar(len(names), f"reading {name} JSONs", "file", quiet) as bar:
        for jname in names:
            bar.update()
            where = prefix + jname
            try:
                with open(os.path.join(base, jname), "rb") as f:
                    data = f.read()
            except OSError as e:
                parsed.append((where, None, ItemSkipped(MALFORMED_JSON,
                                                        f"unreadable: {e.strerror}")))
                unusable.append(_image_path(base, jname[:-5], None))
                continue
            try:
                record = parse_labelme(data)
            except ItemSkipped as e:
                parsed.append((where, None, e))
                unusable.append(_image_path(base, jname[:-5], None))
                continue
            parsed.append((where, _image_path(base, jname[:-5], record.image_path), record))
    paths = [p for _, p, _ in parsed if p is not None]
    # str(Path(p).parent) of a normalized path: its dirname, "." for a bare name
    root_s = os.path.commonpath([os.path.dirname(p) or "." for p in paths]) if paths else base
    root = Path(root_s)
    images: list[SourceImage | FileProblem] = []
    embedded: list[str | None] = []
    for (where, path, record), jname in zip(parsed, names):
        embedded.append(None)
        if isinstance(record, ItemSkipped):
            images.append(FileProblem(where, record.reason, record.detail))
            continue
        file_name = _under(path, root_s)
        embedded[-1] = (str(folder / jname) if record.has_data and not os.path.exists(path)
                        else None)
        images.append(SourceImage(file_name, record.image_path or file_name, record.width,
                                  record.height, record.objects, record.flags, where))
    # images beside the JSONs that no JSON names: kept without objects, as a folder of
    # image + annotation pairs (VOC's, YOLO's) keeps them; `load` notes how many
    if folder == root:  # paths from `_image_path` are normalized: compare as strings
        named = {os.path.normpath(p) for p in paths + unusable}
        strays = [i for i in list_images(folder, recursive=False)
                  if os.path.normpath(os.path.join(base, i)) not in named]
    else:
        strays = []
    for image in strays:
        images.append(SourceImage(image, image, where=""))
        embedded.append(None)
    return ReadSplit(name, root, images, embedded=embedded), sum(1 for _, p, _ in parsed if p)


def load(src: Path, request: SourceRequest) -> DetectionSource:
    """Discover and read LabelMe JSONs into finished splits."""
    with gc_paused():
        return _load(src, request)


def _load(src: Path, request: SourceRequest) -> DetectionSource:
    src = Path(src)
    if request.images is not None:
        raise UsageError("--images", "no --images with LabelMe (each JSON's imagePath "
                         "names its image)", request.images)
    found = _splits(src)
    if not found:
        raise InputError(src, EXPECTED, "no such JSON file")
    if request.splits:
        have = dict(found)
        for n in request.splits:
            if n not in have:
                raise UsageError("--splits", f"split names of this LabelMe folder "
                                 f"({', '.join(have)})", n)
        found = [(n, have[n]) for n in request.splits]
    reads, files, parsed = [], 0, 0
    for name, folder in found:
        read, ok = read_split(name, folder, src, quiet=request.quiet)
        reads.append(read)
        files += len(read.images)
        parsed += ok
    kind = "annotation folder" if found[0][1].name in _ANNOTATION_DIRS else "JSON + image"
    layout = (f"LabelMe ({kind}): split{'s' if len(found) != 1 else ''} "
              f"{', '.join(n for n, _ in found)}")
    missed = (f"none of the {files} *.json files parses as a LabelMe file" if not parsed
              else f"no shape with a label and an area in {parsed} LabelMe file(s)")
    notes = []
    bare = sum(1 for r in reads for im in r.images
               if isinstance(im, SourceImage) and not im.where)
    if bare:
        notes.append(f"{bare} image(s) have no LabelMe JSON: written as images without "
                     "objects (negatives); label them, or remove them, if they are unlabelled")
    used = sum(1 for r in reads for v in r.embedded if v)
    if used:
        notes.append(f"{used} image(s) missing as files: read from their JSON's imageData")
    return finish(src, reads, request, Finish(
        FORMAT, layout, tuple(notes), {n: {"annotations": str(f)} for n, f in found}, _FIXES,
        EXTRAS, image_labels=True, missed=missed))
