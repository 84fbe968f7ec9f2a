"""One COCO JSON file -> a compact, validated index (`CocoFile`).

Pure parsing and validation: elements (streamed by `jsonstream`, or from an
already-loaded dict) -> compact numpy arrays. Whole-input problems (wrong types,
missing keys, duplicate ids) raise `InputError`; per-item problems (a malformed
bbox, an unknown category) are kept in the index and become skips later, in the
worker that writes the image.
"""

from __future__ import annotations

import enum
import json
import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cocoprep.errors import InputError
from cocoprep.sources.jsonstream import JsonStream, typename
from cocoprep.sources.segstore import SegmentationStore
from cocoprep.sources.layout import (
    CAPTIONS, GENERIC, IMAGE_INFO, INSTANCES, KEYPOINTS, kind_and_split,
)


class BboxStatus(enum.IntEnum):
    """What an annotation's `bbox` holds (kept per annotation in an int8 array)."""

    OK = 0
    MISSING = 1
    MALFORMED = 2


class KeypointsMark(enum.Enum):
    """An annotation's keypoints when they are not a usable tuple of numbers."""

    ABSENT = "absent"          # no `keypoints` key (or null)
    MALFORMED = "malformed"    # present, but not a list of 3*k finite numbers


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
    segmentations: SegmentationStore | None = None  # per annotation, only when kept
    keypoints: list | None = None       # per annotation: tuple of floats or a KeypointsMark
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


def _integral(v: Any) -> Any:
    """`500.0` -> 500 (some tools write sizes as floats); anything else unchanged, so
    the caller's check refuses it with its usual message."""
    if type(v) is float and v.is_integer():
        return int(v)
    return v


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


def _short_json(v: Any) -> str:
    """A scalar as JSON text, cut to 40 characters; a list or object by its type only
    (error messages quote the bad value without dumping a whole structure)."""
    text = json.dumps(v) if not isinstance(v, (dict, list)) else typename(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _keypoints_of(kp: Any) -> tuple[float, ...] | KeypointsMark:
    if kp is None:
        return KeypointsMark.ABSENT
    ok = type(kp) is list and len(kp) % 3 == 0 and all(_is_num(v) for v in kp)
    values = tuple(_finite_float(v) for v in kp) if ok else ()
    return values if ok and None not in values else KeypointsMark.MALFORMED


_REQUIRED_KEYS = {
    INSTANCES: ("images", "annotations", "categories"),
    KEYPOINTS: ("images", "annotations", "categories"),
    CAPTIONS: ("images", "annotations"),
    IMAGE_INFO: ("images",),
}


def _checked_box(box: Any) -> tuple[tuple[float, ...], BboxStatus]:
    """The four numbers of a `bbox` and its status (NaNs when it is not usable)."""
    if box is None:
        return (math.nan,) * 4, BboxStatus.MISSING
    if type(box) is not list or len(box) != 4 or not all(_is_num(v) for v in box):
        return (math.nan,) * 4, BboxStatus.MALFORMED
    values = tuple(_finite_float(v) for v in box)
    if None in values or values[2] < 0 or values[3] < 0:
        return (math.nan,) * 4, BboxStatus.MALFORMED
    return values, BboxStatus.OK


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
        self._segs = SegmentationStore() if self.keep_segmentation else None
        # Keypoints: every annotation of a person_keypoints_ file; in any other
        # instances file only those that carry them (by annotation row), so the
        # common keypoint-free file keeps the fast path.
        self._kps: list | None = [] if kind == KEYPOINTS else None
        self._kps_by_row: dict[int, tuple | KeypointsMark] = {}
        self._captions: list[str] | None = [] if kind == CAPTIONS else None
        self.seen_keys: set[str] = set()
        self.other_keys: set[str] = set()  # top-level keys not read (info, licenses, ...)
        # only instances: valid annotations can take the inline quick path
        self._instances_only = self._kps is None and self._captions is None

    # ------------------------------------------------------------- errors
    def _error(self, where: str, expected: str, value: Any) -> InputError:
        return InputError(self.path, f"{where} to be {expected}",
                          f"{typename(value)} {_short_json(value)}" if not isinstance(value, (dict, list))
                          or value is None else typename(value))

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
        w, h = _integral(w), _integral(h)
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
                    and type(box) is list and len(box) == 4 and type(area) in _NUMBER_TYPES
                    and "keypoints" not in a):
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
                        self._bbox_status.append(BboxStatus.OK)
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
        box, status = _checked_box(a.get("bbox"))
        self._bbox.extend(box)
        self._bbox_status.append(status)
        area = a.get("area")
        area = _finite_float(area) if _is_num(area) else None
        self._area.append(area if area is not None and area >= 0 else math.nan)
        if self._segs is not None:
            self._segs.append(a.get("segmentation"))
        if self._kps is not None:
            self._kps.append(_keypoints_of(a.get("keypoints")))
        elif a.get("keypoints") is not None:
            self._kps_by_row[len(self._bbox_status) - 1] = _keypoints_of(a["keypoints"])

    # ------------------------------------------------------------- result
    def finish(self) -> CocoFile:
        missing = [k for k in _REQUIRED_KEYS.get(self.kind, ()) if k not in self.seen_keys]
        if missing:
            found = sorted(self.seen_keys | self.other_keys)
            raise InputError(self.path, f"the top-level key(s) {', '.join(map(repr, missing))}",
                             f"keys {', '.join(found[:10])}{', ...' if len(found) > 10 else ''}"
                             if found else "an empty object")
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
            bbox_status=(np.full(m, BboxStatus.MISSING, np.int8) if is_caps
                         else np.frombuffer(self._bbox_status, dtype=np.int8).copy()),
            iscrowd=(np.zeros(m, np.uint8) if is_caps
                     else np.frombuffer(self._iscrowd, dtype=np.uint8).copy()),
            area=(np.full(m, np.nan) if is_caps
                  else np.frombuffer(self._area, dtype=np.float64).copy()),
            segmentations=self._segs, keypoints=self._keypoints(m), captions=self._captions,
        )
        return result

    def _keypoints(self, m: int) -> list | None:
        """Per annotation keypoints, or None when the file has none: a keypoints file,
        or any instances file whose categories name keypoints and whose annotations
        carry them (Roboflow and other tools' keypoint exports)."""
        if self._kps is not None:
            return self._kps
        if not self._kps_by_row or not any(c.keypoints for c in self.categories):
            return None
        out: list = [KeypointsMark.ABSENT] * m
        for row, values in self._kps_by_row.items():
            out[row] = values
        return out

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
                         typename(data))
    col = CocoCollector(path, kind, keep_segmentation=keep_segmentation)
    col.other_keys.update(str(k) for k in data if k not in col.handlers())
    for key, handler in col.handlers().items():
        if key not in data:
            continue
        value = data[key]
        if type(value) is not list:
            raise InputError(path, f"{key!r} to be a list", typename(value))
        col.seen_keys.add(key)
        for i, element in enumerate(value):
            handler(element, i)
    return col.finish()


def read_coco_file(path: str | Path, kind: str | None = None, *, keep_segmentation: bool = False,
                   progress: Callable[[int], None] | None = None) -> CocoFile:
    """Stream-parse and validate one COCO JSON file."""
    path = Path(path)
    if kind is None:
        kind = kind_and_split(path)[0]
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
        JsonStream(f, path, progress, drop_polygons=drop_polygons).read_object(
            col.handlers(), col.seen_keys, col.other_keys)
    return col.finish()

