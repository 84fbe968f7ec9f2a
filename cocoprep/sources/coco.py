"""COCO JSON -> a compact, validated index of images and annotations.

Three layers:

* layout discovery (`discover`): which JSON files and image directories make up
  which split;
* reading (`read_coco_file`): a streaming JSON reader that hands the elements of
  the big top-level arrays to the collector one by one, so a 450 MB annotation file
  never exists as one tree of Python dicts;
* pure parsing and validation (`CocoCollector`, `parse_coco_dict`,
  `assemble_split`): elements -> compact numpy arrays (`CocoFile`, `CocoSplit`).
  Whole-input problems (wrong types, missing keys, duplicate ids) raise `InputError`;
  per-item problems (a malformed bbox, an unknown category) are kept in the index
  and become skips later, in the worker that writes the image.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from cocoprep.errors import InputError, UsageError
from cocoprep.records import SkippedItem

INSTANCES, KEYPOINTS, CAPTIONS, IMAGE_INFO, GENERIC = (
    "instances", "keypoints", "captions", "image_info", "generic",
)
_PREFIXES = (
    ("person_keypoints_", KEYPOINTS), ("instances_", INSTANCES),
    ("captions_", CAPTIONS), ("image_info_", IMAGE_INFO),
)
ROBOFLOW_NAME = "_annotations.coco.json"

# bbox status codes kept per annotation
BBOX_OK, BBOX_MISSING, BBOX_MALFORMED = 0, 1, 2

# skip reasons decided while assembling (the worker adds the per-image ones)
UNKNOWN_IMAGE = "unknown_image"
UNMATCHED_KEYPOINTS = "unmatched_keypoints"


# ============================================================== layout discovery

@dataclass(frozen=True)
class SplitFiles:
    """The files of one split: its JSON files (any may be None) and image directory."""

    name: str
    image_dir: Path
    instances: Path | None = None
    keypoints: Path | None = None
    captions: Path | None = None
    image_info: Path | None = None

    @property
    def main(self) -> Path | None:
        """The file whose images define the split."""
        return self.instances or self.keypoints or self.image_info or self.captions

    def paths(self) -> dict[str, str]:
        out = {"images": str(self.image_dir)}
        for kind in (INSTANCES, KEYPOINTS, CAPTIONS, IMAGE_INFO):
            p = getattr(self, kind)
            if p is not None:
                out[kind] = str(p)
        return out


def _kind_and_split(path: Path) -> tuple[str, str]:
    name = path.name
    if name == ROBOFLOW_NAME:
        return INSTANCES, path.parent.name
    stem = name[:-5] if name.lower().endswith(".json") else name
    for prefix, kind in _PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return kind, stem[len(prefix):]
    return GENERIC, stem


def _group(files: Iterable[Path]) -> dict[str, dict[str, Path]]:
    groups: dict[str, dict[str, Path]] = {}
    for f in sorted(files):
        kind, split = _kind_and_split(f)
        if kind == GENERIC:
            continue
        groups.setdefault(split, {})[kind] = f
    return groups


def discover(src: str | Path, *, images: str | Path | None = None) -> list[SplitFiles]:
    """Find the splits under `src`.

    `src` may be a COCO root (`annotations/instances_<split>.json`, images in
    `<split>/` or `images/<split>/`), a Roboflow-style root (`<split>/_annotations.coco.json`
    beside its images), or one JSON file (images in `images`, default: the file's
    directory). Splits come back sorted by name.
    """
    src = Path(src)
    if not src.exists():
        raise InputError(src, "a COCO root directory or a COCO JSON file", "nothing at that path")
    if src.is_file():
        kind, split = _kind_and_split(src)
        found: dict[str, Path] = {}
        if kind == GENERIC:
            kind = INSTANCES
        elif kind == INSTANCES and src.name != ROBOFLOW_NAME:
            siblings = _group(src.parent.glob("*.json")).get(split, {})
            found.update({k: p for k, p in siblings.items() if k in (KEYPOINTS, CAPTIONS)})
        found[kind] = src
        image_dir = Path(images) if images is not None else src.parent
        return [_checked(SplitFiles(split, image_dir, **found), images)]
    splits: list[SplitFiles] = []
    ann_dir = src / "annotations"
    if ann_dir.is_dir():
        for split, found in sorted(_group(ann_dir.glob("*.json")).items()):
            if images is not None:
                image_dir = Path(images)
            else:
                candidates = [src / split, src / "images" / split]
                image_dir = next((c for c in candidates if c.is_dir()), candidates[0])
            splits.append(SplitFiles(split, image_dir, **found))
    if not splits:
        for f in sorted(src.glob(f"*/{ROBOFLOW_NAME}")):
            image_dir = Path(images) / f.parent.name if images is not None else f.parent
            splits.append(SplitFiles(f.parent.name, image_dir, instances=f))
    if not splits and (src / ROBOFLOW_NAME).is_file():
        splits.append(SplitFiles(src.name, Path(images) if images else src,
                                 instances=src / ROBOFLOW_NAME))
    if not splits:
        raise InputError(
            src, "a COCO root (annotations/instances_<split>.json), a Roboflow export "
            f"(<split>/{ROBOFLOW_NAME}) or a JSON file", "none of these",
        )
    return [_checked(s, images) for s in splits]


def _checked(s: SplitFiles, images) -> SplitFiles:
    if not s.image_dir.is_dir():
        what = "--images" if images is not None else f"the image directory of split {s.name!r}"
        raise InputError(s.image_dir, f"a directory of images ({what})", "no such directory")
    return s


def select_splits(found: Sequence[SplitFiles], wanted: Sequence[str] | None) -> list[SplitFiles]:
    if not wanted:
        return list(found)
    by_name = {s.name: s for s in found}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise UsageError("--splits", f"names from {sorted(by_name)}", ",".join(missing))
    return [by_name[w] for w in wanted]


# ============================================================== compact index

@dataclass
class Category:
    id: int
    name: str
    keypoints: tuple[str, ...] = ()


@dataclass
class CocoFile:
    """What one COCO JSON file holds, in compact arrays (annotations in file order)."""

    path: Path
    kind: str
    categories: list[Category]
    image_ids: np.ndarray          # int64 (n,)
    file_names: list[str]
    widths: np.ndarray             # int32 (n,)
    heights: np.ndarray            # int32 (n,)
    ann_ids: np.ndarray            # int64 (m,)
    ann_image_ids: np.ndarray      # int64 (m,)
    ann_category_ids: np.ndarray   # int64 (m,), 0 for captions
    bbox: np.ndarray               # float64 (m, 4): x, y, w, h (nan when not OK)
    bbox_status: np.ndarray        # int8 (m,)
    iscrowd: np.ndarray            # uint8 (m,)
    area: np.ndarray               # float64 (m,), nan when absent/invalid
    segmentations: list | None = None   # per annotation, only when kept
    keypoints: list | None = None       # per annotation: tuple of floats or None
    captions: list[str] | None = None   # per annotation (captions files)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_annotations(self) -> int:
        return len(self.ann_ids)


_NUMBER_TYPES = (int, float)


def _is_int(v: Any) -> bool:
    return type(v) is int or (isinstance(v, int) and not isinstance(v, bool))


def _is_num(v: Any) -> bool:
    return type(v) in (int, float) or (isinstance(v, (int, float)) and not isinstance(v, bool))


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MAX = 2**31 - 1  # image sizes are stored as int32; label_map.pbtxt ids are int32


def _in_int64(v: int) -> bool:
    return _INT64_MIN <= v <= _INT64_MAX


def _finite_float(v: Any) -> float | None:
    """`v` as a finite float, or None (NaN, infinities, integers too big for a float)."""
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _is_text(s: str) -> bool:
    """Encodable as UTF-8: JSON escapes can spell lone surrogates, which are not text."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _typename(v: Any) -> str:
    if v is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, (dict, list)) else _typename(v)
    return text if len(text) <= 40 else text[:37] + "..."


_REQUIRED_KEYS = {
    INSTANCES: ("images", "annotations", "categories"),
    KEYPOINTS: ("images", "annotations", "categories"),
    CAPTIONS: ("images", "annotations"),
    IMAGE_INFO: ("images",),
}


class CocoCollector:
    """Validates COCO elements one at a time and packs them into arrays.

    Feed it with `image()`, `annotation()` and `category()` (in any order: files
    do not always list images first), then call `finish()`.
    """

    def __init__(self, path: str | Path, kind: str, *, keep_segmentation: bool = False):
        self.path = Path(path)
        self.kind = kind
        self.keep_segmentation = keep_segmentation and kind in (INSTANCES, KEYPOINTS)
        self.categories: list[Category] = []
        self._image_ids = array("q")
        self._file_names: list[str] = []
        self._wh = array("l")
        self._ann_ids = array("q")
        self._ann_image_ids = array("q")
        self._ann_cats = array("q")
        self._bbox = array("d")
        self._bbox_status = array("b")
        self._iscrowd = array("B")
        self._area = array("d")
        self._segs: list | None = [] if self.keep_segmentation else None
        self._kps: list | None = [] if kind == KEYPOINTS else None
        self._captions: list[str] | None = [] if kind == CAPTIONS else None
        self.seen_keys: set[str] = set()
        # only instances: valid annotations can take the inline quick path
        self._instances_only = self._kps is None and self._captions is None

    # ------------------------------------------------------------- errors
    def _error(self, where: str, expected: str, value: Any) -> InputError:
        return InputError(self.path, f"{where} to be {expected}",
                          f"{_typename(value)} {_show(value)}" if not isinstance(value, (dict, list))
                          or value is None else _typename(value))

    # ------------------------------------------------------------- elements
    def image(self, im: Any, i: int) -> None:
        if type(im) is not dict:
            raise self._error(f"images[{i}]", "an object", im)
        try:
            iid, name, w, h = im["id"], im["file_name"], im["width"], im["height"]
        except KeyError as e:
            raise InputError(self.path, f"images[{i}] to have the key {e.args[0]!r}",
                             f"keys {sorted(im)}") from None
        if not _is_int(iid):
            raise self._error(f"images[{i}].id", "an integer", iid)
        if not _in_int64(iid):
            raise self._error(f"images[{i}].id", "a 64-bit integer", iid)
        if type(name) is not str or not name:
            raise self._error(f"images[{i}].file_name (image id {iid})", "a non-empty string", name)
        if not _is_text(name):
            raise self._error(f"images[{i}].file_name (image id {iid})", "valid Unicode text",
                            name.encode("utf-8", "backslashreplace").decode())
        if not _is_int(w) or w <= 0:
            raise self._error(f"images[{i}].width (image id {iid})", "a positive integer", w)
        if not _is_int(h) or h <= 0:
            raise self._error(f"images[{i}].height (image id {iid})", "a positive integer", h)
        if w > _INT32_MAX:
            raise self._error(f"images[{i}].width (image id {iid})",
                            "a positive integer below 2**31", w)
        if h > _INT32_MAX:
            raise self._error(f"images[{i}].height (image id {iid})",
                            "a positive integer below 2**31", h)
        self._image_ids.append(iid)
        self._file_names.append(name)
        self._wh.append(w)
        self._wh.append(h)

    def category(self, c: Any, i: int) -> None:
        if type(c) is not dict:
            raise self._error(f"categories[{i}]", "an object", c)
        cid, name = c.get("id"), c.get("name")
        # 0 is read (Label Studio numbers from 0, Roboflow adds a category 0); whether
        # it can be a label-map id is decided when the label map is made.
        if not _is_int(cid) or cid < 0:
            raise self._error(f"categories[{i}].id", "an integer >= 0", cid)
        if cid > _INT32_MAX:
            raise self._error(f"categories[{i}].id", f"an integer from 0 to {_INT32_MAX} "
                            "(label_map.pbtxt ids are 32-bit)", cid)
        if type(name) is not str or not name:
            raise self._error(f"categories[{i}].name (category id {cid})", "a non-empty string",
                              name)
        if not _is_text(name):
            raise self._error(f"categories[{i}].name (category id {cid})", "valid Unicode text",
                            name.encode("utf-8", "backslashreplace").decode())
        kps = c.get("keypoints", ())
        if kps is None:
            kps = ()
        if type(kps) is not list and kps != () or not all(type(k) is str for k in kps):
            raise self._error(f"categories[{i}].keypoints (category id {cid})",
                            "a list of names", kps)
        self.categories.append(Category(cid, name, tuple(kps)))

    def annotation(self, a: Any, i: int) -> None:
        # Fast path for the common, valid instance annotation (860k of them in COCO
        # train): plain type checks inline; anything unusual takes the full path.
        if self._instances_only and type(a) is dict:
            aid, image_id, cat = a.get("id"), a.get("image_id"), a.get("category_id")
            box, area, crowd = a.get("bbox"), a.get("area"), a.get("iscrowd", 0)
            if (type(aid) is int and type(image_id) is int and type(cat) is int
                    and type(crowd) is int and (crowd == 0 or crowd == 1)
                    and type(box) is list and len(box) == 4 and type(area) in _NUMBER_TYPES):
                x, y, w, h = box
                try:
                    if (type(x) in _NUMBER_TYPES and type(y) in _NUMBER_TYPES
                            and type(w) in _NUMBER_TYPES and type(h) in _NUMBER_TYPES
                            and w >= 0 and h >= 0 and area >= 0
                            and x - x + y - y + w - w + h - h + area - area == 0):  # finite
                        self._ann_ids.append(aid)
                        self._ann_image_ids.append(image_id)
                        self._ann_cats.append(cat)
                        self._iscrowd.append(crowd)
                        self._bbox.extend(box)
                        self._bbox_status.append(BBOX_OK)
                        self._area.append(area)
                        if self._segs is not None:
                            self._segs.append(a.get("segmentation"))
                        return
                except OverflowError:  # an integer beyond 64 bits or beyond a float
                    self._drop_partial()
        self._annotation_checked(a, i)

    def _drop_partial(self) -> None:
        """Undo a half-appended annotation (the checked path then decides)."""
        n = len(self._bbox_status)
        for arr in (self._ann_ids, self._ann_image_ids, self._ann_cats, self._iscrowd,
                    self._area):
            del arr[n:]
        del self._bbox[4 * n:]

    def _annotation_checked(self, a: Any, i: int) -> None:
        if type(a) is not dict:
            raise self._error(f"annotations[{i}]", "an object", a)
        aid = a.get("id")
        if not _is_int(aid):
            raise self._error(f"annotations[{i}].id", "an integer", aid)
        if not _in_int64(aid):
            raise self._error(f"annotations[{i}].id", "a 64-bit integer", aid)
        image_id = a.get("image_id")
        if not _is_int(image_id):
            raise self._error(f"annotations[{i}].image_id (annotation id {aid})", "an integer", image_id)
        if not _in_int64(image_id):
            raise self._error(f"annotations[{i}].image_id (annotation id {aid})",
                              "a 64-bit integer", image_id)
        self._ann_ids.append(aid)
        self._ann_image_ids.append(image_id)
        if self._captions is not None:
            cap = a.get("caption")
            if type(cap) is not str:
                raise self._error(f"annotations[{i}].caption (annotation id {aid})", "a string",
                                  cap)
            if not _is_text(cap):
                raise self._error(f"annotations[{i}].caption (annotation id {aid})",
                                "valid Unicode text", cap.encode("utf-8", "backslashreplace").decode())
            self._captions.append(cap)
            self._ann_cats.append(0)
            return
        cat = a.get("category_id")
        if not _is_int(cat):
            raise self._error(f"annotations[{i}].category_id (annotation id {aid})", "an integer", cat)
        if not _in_int64(cat):
            raise self._error(f"annotations[{i}].category_id (annotation id {aid})",
                            "a 64-bit integer", cat)
        self._ann_cats.append(cat)
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1) or type(crowd) not in (int, bool):
            raise self._error(f"annotations[{i}].iscrowd (annotation id {aid})", "0 or 1", crowd)
        self._iscrowd.append(int(crowd))
        box = a.get("bbox")
        status = BBOX_OK
        if box is None:
            status = BBOX_MISSING
        elif type(box) is not list or len(box) != 4 or not all(_is_num(v) for v in box):
            status = BBOX_MALFORMED
        else:
            box = [_finite_float(v) for v in box]
            if None in box or box[2] < 0 or box[3] < 0:
                status = BBOX_MALFORMED
        if status == BBOX_OK:
            self._bbox.extend(box)
        else:
            self._bbox.extend((math.nan,) * 4)
        self._bbox_status.append(status)
        area = a.get("area")
        area = _finite_float(area) if _is_num(area) else None
        self._area.append(area if area is not None and area >= 0 else math.nan)
        if self._segs is not None:
            self._segs.append(a.get("segmentation"))
        if self._kps is not None:
            kp = a.get("keypoints")
            ok = type(kp) is list and len(kp) % 3 == 0 and all(_is_num(v) for v in kp)
            values = tuple(_finite_float(v) for v in kp) if ok else ()
            ok = ok and None not in values
            self._kps.append(values if ok else (None if kp is None else False))

    # ------------------------------------------------------------- result
    def finish(self) -> CocoFile:
        missing = [k for k in _REQUIRED_KEYS.get(self.kind, ()) if k not in self.seen_keys]
        if missing:
            raise InputError(self.path, f"the top-level key(s) {', '.join(map(repr, missing))}",
                             f"keys {sorted(self.seen_keys) or 'none'}")
        image_ids = np.frombuffer(self._image_ids, dtype=np.int64).copy()
        if len(image_ids):
            order = np.argsort(image_ids, kind="stable")
            s = image_ids[order]
            dup = np.nonzero(s[1:] == s[:-1])[0]
            if len(dup):
                first = int(s[dup[0]])
                where = [int(k) for k in np.nonzero(image_ids == first)[0][:2]]
                raise InputError(self.path, "unique image ids",
                                 f"image id {first} twice (images[{where[0]}] and images[{where[1]}])")
        cat_ids = [c.id for c in self.categories]
        if len(set(cat_ids)) != len(cat_ids):
            seen: set[int] = set()
            dup_id = next(c for c in cat_ids if c in seen or seen.add(c))
            raise InputError(self.path, "unique category ids", f"category id {dup_id} twice")
        ann_ids = np.frombuffer(self._ann_ids, dtype=np.int64).copy()
        if len(ann_ids):
            s = np.sort(ann_ids)
            dup = np.nonzero(s[1:] == s[:-1])[0]
            if len(dup):
                raise InputError(self.path, "unique annotation ids",
                                 f"annotation id {int(s[dup[0]])} twice")
        wh = np.frombuffer(self._wh, dtype=np.dtype("l")).astype(np.int32).reshape(-1, 2)
        m = len(ann_ids)
        is_caps = self._captions is not None
        result = CocoFile(
            path=self.path, kind=self.kind, categories=self.categories,
            image_ids=image_ids, file_names=self._file_names,
            widths=wh[:, 0].copy(), heights=wh[:, 1].copy(),
            ann_ids=ann_ids,
            ann_image_ids=np.frombuffer(self._ann_image_ids, dtype=np.int64).copy(),
            ann_category_ids=np.frombuffer(self._ann_cats, dtype=np.int64).copy(),
            bbox=(np.full((m, 4), np.nan) if is_caps
                  else np.frombuffer(self._bbox, dtype=np.float64).reshape(-1, 4).copy()),
            bbox_status=(np.full(m, BBOX_MISSING, np.int8) if is_caps
                         else np.frombuffer(self._bbox_status, dtype=np.int8).copy()),
            iscrowd=(np.zeros(m, np.uint8) if is_caps
                     else np.frombuffer(self._iscrowd, dtype=np.uint8).copy()),
            area=(np.full(m, np.nan) if is_caps
                  else np.frombuffer(self._area, dtype=np.float64).copy()),
            segmentations=self._segs, keypoints=self._kps, captions=self._captions,
        )
        return result

    def handlers(self) -> dict[str, Callable[[Any, int], None]]:
        h = {"images": self.image, "annotations": self.annotation}
        if self.kind != CAPTIONS:
            h["categories"] = self.category
        return h


def parse_coco_dict(data: Any, path: str | Path, kind: str = INSTANCES, *,
                    keep_segmentation: bool = False) -> CocoFile:
    """Validate an already-loaded COCO dict (pure: no I/O)."""
    if type(data) is not dict:
        raise InputError(path, "a JSON object with images, annotations and categories",
                         _typename(data))
    col = CocoCollector(path, kind, keep_segmentation=keep_segmentation)
    for key, handler in col.handlers().items():
        if key not in data:
            continue
        value = data[key]
        if type(value) is not list:
            raise InputError(path, f"{key!r} to be a list", _typename(value))
        col.seen_keys.add(key)
        for i, element in enumerate(value):
            handler(element, i)
    return col.finish()


# ============================================================== streaming JSON

_WS = re.compile(r"[ \t\n\r]*")
_SEGMENTATION_KEY = '"segmentation"'
# A polygon segmentation: a list (of lists) of numbers. Greedy over the characters
# numbers and lists are made of, then back to its last `]`: the key that follows
# (after `,`) starts with `"`, which stops the run. RLE ({...}) never matches.
_POLYGONS = re.compile(r'"segmentation"\s*:\s*\[[-+0-9.eE,\s\[\]]*\]')


def _drop_polygons(text: str) -> str:
    if "\n" in text:  # keep line numbers right for error messages
        return _POLYGONS.sub(lambda m: '"segmentation":0' + "\n" * m.group().count("\n"), text)
    return _POLYGONS.sub('"segmentation":0', text)


class _JsonStream:
    """A minimal pull reader for one JSON object whose big values are arrays:
    it keeps only a window of the text and decodes one element at a time."""

    CHUNK = 1 << 23

    def __init__(self, f, path: Path, progress: Callable[[int], None] | None = None, *,
                 drop_polygons: bool = False):
        self.f, self.path, self.progress = f, path, progress
        self.buf, self.pos, self.eof = "", 0, False
        self.line_base, self.char_base = 1, 0
        self.decode = json.JSONDecoder().raw_decode
        self.drop_polygons = drop_polygons
        self._carry = ""

    def _read(self) -> str:
        try:
            data = self.f.read(self.CHUNK)
        except UnicodeDecodeError as e:
            raise InputError(self.path, "UTF-8 encoded JSON", f"undecodable bytes ({e.reason})") from None
        if self.progress is not None:
            self.progress(len(data))
        return data

    def _read_text(self) -> str:
        """The next piece of text ('' at the end). With `drop_polygons`, polygon
        segmentations are cut out of the text before it is decoded: they are most of
        a COCO file's bytes and all of its numbers, and boxes-only needs none of them.
        Text from the last `"segmentation"` key on waits for the next read, so every
        polygon list that is cut is complete."""
        if not self.drop_polygons:
            return self._read()
        while True:
            data = self._read()
            if not data:
                text, self._carry = self._carry, ""
                return _drop_polygons(text)
            text = self._carry + data
            cut = text.rfind(_SEGMENTATION_KEY)
            if cut < 0:
                cut = len(text)
            text, self._carry = text[:cut], text[cut:]
            if text:
                return _drop_polygons(text)

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self._read_text()
        if not data:
            self.eof = True
            return False
        if self.pos:
            self.line_base += self.buf.count("\n", 0, self.pos)
            self.char_base += self.pos
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def _where(self, pos: int) -> str:
        line = self.line_base + self.buf.count("\n", 0, pos)
        last_nl = self.buf.rfind("\n", 0, pos)
        col = pos - last_nl if last_nl >= 0 else pos + 1 + (self.char_base if line == 1 else 0)
        return f"line {line} column {col}"

    def error(self, what: str, pos: int | None = None) -> InputError:
        pos = self.pos if pos is None else pos
        return InputError(self.path, "valid COCO JSON", f"{what} at {self._where(pos)}")

    def peek(self) -> str:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self.decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                near_end = e.pos >= len(self.buf) - 8 or e.msg.startswith("Unterminated string")
                if not self.eof and near_end:
                    self._more()
                    continue
                if self.eof and (e.pos >= len(self.buf.rstrip())
                                 or e.msg.startswith("Unterminated string")):
                    raise self.error("the file ends too early (truncated?)", e.pos) from None
                raise self.error(e.msg, e.pos) from None
            except RecursionError:
                raise self.error("values nested too deeply") from None
            if end >= len(self.buf) and not self.eof and self._more():
                continue  # a number may continue in the next chunk
            self.pos = end
            return obj

    def expect(self, char: str, what: str) -> None:
        c = self.peek()
        if c != char:
            raise self.error(f"expected {what}, found {c!r}" if c else f"expected {what}, "
                             "found the end of the file")
        self.pos += 1

    def read_object(self, handlers: dict[str, Callable[[Any, int], None]],
                    seen_keys: set[str]) -> None:
        c = self.peek()
        if c != "{":
            if not c:
                raise InputError(self.path, "a JSON object", "an empty file")
            raise self.error(f"expected a JSON object ('{{'), found {c!r}")
        self.pos += 1
        first = True
        while True:
            c = self.peek()
            if c == "}":
                self.pos += 1
                break
            if not first:
                self.expect(",", "',' or '}'")
                c = self.peek()
            first = False
            if c != '"':
                raise self.error("expected a key in double quotes" if c else
                                 "unexpected end of the file")
            key = self.value()
            self.expect(":", "':'")
            handler = handlers.get(key)
            if handler is None:
                self.value()  # info, licenses, ...: not needed
                continue
            if self.peek() != "[":
                found = self.value()
                raise InputError(self.path, f"{key!r} to be a list", _typename(found))
            seen_keys.add(key)
            self.pos += 1
            if self.peek() == "]":
                self.pos += 1
                continue
            i = 0
            decode = self.value
            while True:
                handler(decode(), i)
                i += 1
                c = self.peek()
                if c == ",":
                    self.pos += 1
                elif c == "]":
                    self.pos += 1
                    break
                else:
                    raise self.error(f"expected ',' or ']' after {key}[{i - 1}], found "
                                     f"{c!r}" if c else f"unexpected end of the file in {key!r}")
        if self.peek():
            raise self.error("extra data after the top-level object")


def read_coco_file(path: str | Path, kind: str | None = None, *, keep_segmentation: bool = False,
                   progress: Callable[[int], None] | None = None) -> CocoFile:
    """Stream-parse and validate one COCO JSON file."""
    path = Path(path)
    if kind is None:
        kind = _kind_and_split(path)[0]
        if kind == GENERIC:
            kind = INSTANCES
    drop = not keep_segmentation and kind in (INSTANCES, KEYPOINTS)
    try:
        return _read_coco_file(path, kind, keep_segmentation, progress, drop)
    except InputError:
        if not drop:
            raise
    # Report the error at its exact place in the unmodified text.
    return _read_coco_file(path, kind, keep_segmentation, None, False)


def _read_coco_file(path: Path, kind: str, keep_segmentation: bool, progress,
                    drop_polygons: bool) -> CocoFile:
    col = CocoCollector(path, kind, keep_segmentation=keep_segmentation)
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(path, "a COCO JSON file", "no such file") from None
    except OSError as e:
        raise InputError(path, "a readable COCO JSON file", e.strerror or str(e)) from None
    with f:
        _JsonStream(f, path, progress, drop_polygons=drop_polygons).read_object(
            col.handlers(), col.seen_keys)
    return col.finish()


# ============================================================== one split

@dataclass
class CocoSplit:
    """A split ready to write: images, and their annotations grouped by image.

    Annotation arrays are sorted by image (file order within an image);
    `ann_start[i]:ann_start[i + 1]` are image i's annotations.
    """

    name: str
    image_dir: Path
    image_ids: np.ndarray
    file_names: list[str]
    widths: np.ndarray
    heights: np.ndarray
    ann_start: np.ndarray
    ann_ids: np.ndarray
    ann_category_ids: np.ndarray
    bbox: np.ndarray
    bbox_status: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    segmentations: list | None = None
    keypoints: list | None = None      # per annotation: tuple/None/False(malformed)
    num_keypoints: int = 0
    captions: list[tuple[str, ...]] | None = None  # per image
    has_objects: bool = True           # False for image_info splits
    categories: list[Category] = field(default_factory=list)
    files: SplitFiles | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def annotation_rows(self, image_row: int) -> range:
        return range(int(self.ann_start[image_row]), int(self.ann_start[image_row + 1]))


def _rows_of(image_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted id in `image_ids`, or -1."""
    if len(image_ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(image_ids, kind="stable")
    sorted_ids = image_ids[order]
    pos = np.searchsorted(sorted_ids, wanted)
    pos_c = np.minimum(pos, len(sorted_ids) - 1)
    found = sorted_ids[pos_c] == wanted
    return np.where(found, order[pos_c], -1)


def assemble_split(name: str, image_dir: Path, main: CocoFile, *,
                   keypoints: CocoFile | None = None, captions: CocoFile | None = None,
                   files: SplitFiles | None = None) -> tuple[CocoSplit, list[SkippedItem]]:
    """Group `main`'s annotations by image, merge keypoints (by annotation id) and
    captions (by image id). Returns the split and the skips found here (annotations
    of unknown images, keypoints without an instance annotation)."""
    skipped: list[SkippedItem] = []
    has_objects = main.kind in (INSTANCES, KEYPOINTS)
    if main.kind == CAPTIONS:
        captions, has_objects = main, False
    m = main.num_annotations if has_objects else 0
    rows = _rows_of(main.image_ids, main.ann_image_ids[:m]) if m else np.zeros(0, np.int64)
    unknown = np.nonzero(rows < 0)[0]
    for k in unknown:
        skipped.append(SkippedItem(name, int(main.ann_image_ids[k]), int(main.ann_ids[k]), None,
                                   UNKNOWN_IMAGE, f"annotation refers to image id "
                                   f"{int(main.ann_image_ids[k])}, which {main.path.name} "
                                   "does not list"))
    known = np.nonzero(rows >= 0)[0]
    order = known[np.argsort(rows[known], kind="stable")]
    counts = np.bincount(rows[known], minlength=main.num_images) if len(known) else \
        np.zeros(main.num_images, np.int64)
    ann_start = np.zeros(main.num_images + 1, np.int64)
    np.cumsum(counts, out=ann_start[1:])
    segs = [main.segmentations[k] for k in order] if main.segmentations is not None else None

    kp_list, num_kp = None, 0
    if keypoints is not None or main.kind == KEYPOINTS:
        kp_file = keypoints if keypoints is not None else main
        num_kp = max((len(c.keypoints) for c in kp_file.categories), default=0)
        if kp_file is main:
            kp_list = [main.keypoints[k] for k in order]
        else:
            pos = {int(a): j for j, a in enumerate(main.ann_ids[order])}
            kp_list = [None] * len(order)
            for j in range(kp_file.num_annotations):
                aid = int(kp_file.ann_ids[j])
                p = pos.get(aid)
                if p is None:
                    skipped.append(SkippedItem(
                        name, int(kp_file.ann_image_ids[j]), aid, None, UNMATCHED_KEYPOINTS,
                        f"{kp_file.path.name} has keypoints for annotation {aid}, which "
                        f"{main.path.name} does not list"))
                    continue
                kp_list[p] = kp_file.keypoints[j]
        if num_kp == 0:
            kp_list = None

    caps = None
    if captions is not None:
        cap_rows = _rows_of(main.image_ids, captions.ann_image_ids)
        per_image: list[list[str]] = [[] for _ in range(main.num_images)]
        for j, r in enumerate(cap_rows):
            if r < 0:
                skipped.append(SkippedItem(
                    name, int(captions.ann_image_ids[j]), int(captions.ann_ids[j]), None,
                    UNKNOWN_IMAGE, f"caption refers to image id {int(captions.ann_image_ids[j])}, "
                    f"which {main.path.name} does not list"))
                continue
            per_image[r].append(captions.captions[j])
        caps = [tuple(c) for c in per_image]

    split = CocoSplit(
        name=name, image_dir=Path(image_dir), image_ids=main.image_ids,
        file_names=main.file_names, widths=main.widths, heights=main.heights,
        ann_start=ann_start, ann_ids=main.ann_ids[:m][order],
        ann_category_ids=main.ann_category_ids[:m][order], bbox=main.bbox[:m][order],
        bbox_status=main.bbox_status[:m][order], iscrowd=main.iscrowd[:m][order],
        area=main.area[:m][order], segmentations=segs, keypoints=kp_list,
        num_keypoints=num_kp, captions=caps, has_objects=has_objects,
        categories=list(main.categories) if has_objects else [], files=files,
    )
    return split, skipped


def merge_categories(splits: Sequence[CocoSplit]) -> list[Category]:
    """One category list for all splits, in first-seen order; the same id must
    carry the same name everywhere."""
    merged: dict[int, Category] = {}
    origin: dict[int, str] = {}
    names: dict[str, int] = {}
    for s in splits:
        where = str(s.files.main) if s.files and s.files.main else s.name
        for c in s.categories:
            have = merged.get(c.id)
            if have is None:
                if c.name in names:
                    raise InputError(where, f"category name {c.name!r} to have one id",
                                     f"ids {names[c.name]} and {c.id}")
                merged[c.id] = c
                origin[c.id] = where
                names[c.name] = c.id
            elif have.name != c.name:
                raise InputError(where, f"category id {c.id} to be named {have.name!r} "
                                 f"(as in {origin[c.id]})", repr(c.name))
    return list(merged.values())
