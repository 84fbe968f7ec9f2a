"""Shape geometry shared by LabelMe and CVAT: the box around a shape and, for
--masks, its segmentation as COCO polygons (pixels) or a COCO RLE.

Circles and ellipses become 64-point polygons (the mask builder draws polygons the
way pycocotools does); a rotated box becomes its four corners; a bitmap mask at an
offset becomes a full-image RLE. Shapes grouped into one object are merged: their
boxes into the box around all, their segmentations into one RLE when any is a
bitmap, else into one list of polygons (pycocotools unites them).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

Box = tuple[float, float, float, float]   # x1, y1, x2, y2
_SIDES = 64


def bounds(xs: Sequence[float], ys: Sequence[float]) -> Box:
    return (min(xs), min(ys), max(xs), max(ys))


def flat(points: Sequence[Sequence[float]]) -> list[float]:
    """[[x, y], ...] -> [x, y, x, y, ...] (a COCO polygon)."""
    return [float(v) for p in points for v in p[:2]]


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float) -> list[float]:
    out: list[float] = []
    for k in range(_SIDES):
        t = 2 * math.pi * k / _SIDES
        out += [cx + rx * math.cos(t), cy + ry * math.sin(t)]
    return out


def rect_polygon(box: Box) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def rotated_corners(box: Box, degrees: float) -> list[float]:
    """The corners of `box` turned by `degrees` clockwise (on screen, y down) about
    its centre, as CVAT rotates boxes."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    out: list[float] = []
    for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)):
        dx, dy = x - cx, y - cy
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def polygon_box(poly: Sequence[float]) -> Box:
    return bounds(poly[0::2], poly[1::2])


def bitmap_rle(bitmap: np.ndarray, left: int, top: int, height: int, width: int) -> dict:
    """A COCO RLE of the image-size mask holding `bitmap` (rows x cols, nonzero = on)
    at (`left`, `top`); what falls outside the image is cut."""
    from pycocotools import mask as mask_utils

    full = np.zeros((height, width), np.uint8)
    h, w = bitmap.shape
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, width), min(top + h, height)
    if x1 > x0 and y1 > y0:
        full[y0:y1, x0:x1] = bitmap[y0 - top:y1 - top, x0 - left:x1 - left] != 0
    rle = mask_utils.encode(np.asfortranarray(full))
    return {"size": [height, width], "counts": rle["counts"]}


def bitmap_box(bitmap: np.ndarray, left: int, top: int) -> Box | None:
    """The pixel box (x1, y1, x2, y2; exclusive ends) of the bitmap's set pixels."""
    rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
    if len(rows) == 0:
        return None
    return (left + float(cols[0]), top + float(rows[0]), left + float(cols[-1]) + 1,
            top + float(rows[-1]) + 1)


def union_box(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def union_segmentation(parts: Sequence[Any], height: int, width: int) -> Any:
    """One segmentation of several: polygons stay a list; any RLE (a bitmap) makes
    the union one RLE (needs the image size; None without it: the builder then fills
    the box)."""
    polys = [p for part in parts if isinstance(part, list) for p in part]
    rles = [p for p in parts if isinstance(p, dict)]
    if not rles:
        return polys
    if not (height and width):
        return None
    from pycocotools import mask as mask_utils

    pieces = list(rles)
    if polys:
        pieces += mask_utils.frPyObjects(polys, height, width)
    merged = mask_utils.merge(pieces) if len(pieces) > 1 else pieces[0]
    return {"size": [height, width], "counts": merged["counts"]}
