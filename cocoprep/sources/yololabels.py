"""One YOLO label file's text -> its objects, and the lines that are not objects.

Pure: text in, values out. A line is `class cx cy w h` (a box, centre and size as
fractions of the image), `class x1 y1 x2 y2 x3 y3 ...` (a polygon of three or more
points: Ultralytics segmentation, and the four corners of an OBB label), or, in a
pose dataset (`kpt_shape` in data.yaml), `class cx cy w h` followed by the keypoint
values. Blank lines are ignored. A line that is none of these, names a class outside
`names`, or has a coordinate outside [0, 1] by more than `TOLERANCE` is a
`LineProblem` (its object is skipped and reported with its line number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cocoprep.errors import COORDINATES_OUT_OF_RANGE, MALFORMED_LABEL_LINE, UNKNOWN_CATEGORY

# Fractions: how far outside [0, 1] a coordinate may lie and still be read as the
# image's edge (float error in exports: 1.0000001, -0.0004). Beyond this a value is
# not a normalized coordinate (pixels, or a broken export): the object is skipped.
# Corners just outside the image (cx + w/2 > 1) are the builder's to clip.
TOLERANCE = 0.01

# Skip reasons (the COCO path's `unknown_category` for a class outside the names).
UNKNOWN_CLASS = UNKNOWN_CATEGORY
MALFORMED_LINE = MALFORMED_LABEL_LINE
OUT_OF_RANGE = COORDINATES_OUT_OF_RANGE


@dataclass(frozen=True)
class LabelObject:
    """One object of a label file: its class index, its box as x, y, w, h fractions
    (top-left corner and size) and, for polygon lines, the polygon's x1, y1, x2, ...
    fractions."""

    line: int
    class_index: int
    box: tuple[float, float, float, float]
    polygon: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LineProblem:
    """A line that was not read as an object, and why (one of the reasons above)."""

    line: int
    reason: str
    detail: str


@dataclass(frozen=True)
class LabelFile:
    """What one label file holds, in line order."""

    objects: tuple[LabelObject, ...]
    problems: tuple[LineProblem, ...]

    @property
    def num_lines(self) -> int:
        """Object lines (read or not): what the annotation ids count."""
        return len(self.objects) + len(self.problems)


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _class_index(token: str) -> int | None:
    """`3` (or `3.0`, as some converters write it) -> 3; anything else None."""
    value = _number(token)
    if value is None or not value.is_integer():
        return None
    return int(value)


def _shape_problem(count: int, keypoint_values: int) -> str | None:
    """Why `count` values after the class make no object, or None."""
    if keypoint_values:
        if count == 4 + keypoint_values:
            return None
        return (f"expected class cx cy w h and {keypoint_values} keypoint values "
                f"(kpt_shape), found {count} values after the class")
    if count == 4 or (count >= 6 and count % 2 == 0):
        return None
    return (f"expected class cx cy w h, or a class and 3 or more x y pairs, found "
            f"{count} value(s) after the class")


def parse_line(number: int, text: str, *, num_classes: int,
               keypoint_values: int = 0) -> LabelObject | LineProblem | None:
    """One line (1-based `number`) -> an object, a problem, or None for a blank line."""
    fields = text.split()
    if not fields:
        return None
    problem = _shape_problem(len(fields) - 1, keypoint_values)
    if problem is not None:
        return LineProblem(number, MALFORMED_LINE, f"line {number}: {problem}")
    cls = _class_index(fields[0])
    values = [_number(t) for t in fields[1:]]
    if cls is None or any(v is None for v in values):
        return LineProblem(number, MALFORMED_LINE, f"line {number}: {text.strip()[:80]!r} "
                           "is not an integer class followed by finite numbers")
    if not 0 <= cls < num_classes:
        return LineProblem(number, UNKNOWN_CLASS, f"line {number}: class {cls} is not in "
                           f"names (0..{num_classes - 1})")
    coords = values[:4] if keypoint_values else values
    bad = next((v for v in coords if not -TOLERANCE <= v <= 1 + TOLERANCE), None)
    if bad is not None:
        return LineProblem(number, OUT_OF_RANGE, f"line {number}: coordinate {bad:g} is "
                           f"outside [0, 1] by more than {TOLERANCE:g} (not normalized?)")
    if len(coords) == 4:
        cx, cy, w, h = coords
        return LabelObject(number, cls, (cx - w / 2, cy - h / 2, w, h))
    xs, ys = coords[0::2], coords[1::2]
    x0, y0 = min(xs), min(ys)
    return LabelObject(number, cls, (x0, y0, max(xs) - x0, max(ys) - y0), tuple(coords))


def parse_label_text(text: str, *, num_classes: int, keypoint_values: int = 0) -> LabelFile:
    """Every line of a label file, in order."""
    objects: list[LabelObject] = []
    problems: list[LineProblem] = []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        item = parse_line(number, line, num_classes=num_classes,
                          keypoint_values=keypoint_values)
        if isinstance(item, LabelObject):
            objects.append(item)
        elif item is not None:
            problems.append(item)
    return LabelFile(tuple(objects), tuple(problems))
