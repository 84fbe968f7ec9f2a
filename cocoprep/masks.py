"""COCO segmentations (polygons, uncompressed or compressed RLE) -> PNG mask bytes.

Masks are written as the Object Detection API expects them: one 8-bit grayscale
PNG per object, at the full image size, pixel values 0 and 1. Such images are
almost all zeros, so the PNG is assembled directly (no Pillow) and compressed with
a low zlib level: at the default level, PNG encoding of full-size masks costs more
than everything else in a `--masks` conversion.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from cocoprep.errors import ItemSkipped

MISSING_SEGMENTATION = "missing_segmentation"
MALFORMED_SEGMENTATION = "malformed_segmentation"

ZLIB_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)) & 0xFFFFFFFF))


def encode_png(mask: np.ndarray, *, level: int = ZLIB_LEVEL) -> bytes:
    """An 8-bit grayscale PNG of a 2-D uint8 array (values kept as they are)."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    h, w = mask.shape
    raw = np.zeros((h, w + 1), dtype=np.uint8)  # column 0: filter type 0 (None) per row
    raw[:, 1:] = mask
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (_PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _chunk(b"IEND", b""))


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """One pycocotools RLE for a COCO segmentation.

    Raises:
        ItemSkipped: `missing_segmentation` or `malformed_segmentation`.
    """
    if segmentation is None or segmentation == [] or segmentation == {}:
        raise ItemSkipped(MISSING_SEGMENTATION, "the annotation has no segmentation")
    if isinstance(segmentation, list):
        polys = []
        for poly in segmentation:
            if not isinstance(poly, list) or not all(_is_num(v) for v in poly):
                raise ItemSkipped(MALFORMED_SEGMENTATION, "a polygon is not a list of numbers")
            if len(poly) % 2:
                raise ItemSkipped(MALFORMED_SEGMENTATION,
                                  f"a polygon has an odd number of coordinates ({len(poly)})")
            if len(poly) >= 6:
                polys.append([float(v) for v in poly])
        if not polys:
            raise ItemSkipped(MALFORMED_SEGMENTATION, "no polygon has at least 3 points")
        rles = mask_utils.frPyObjects(polys, height, width)
        return mask_utils.merge(rles) if len(rles) > 1 else rles[0]
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
            raise ItemSkipped(MALFORMED_SEGMENTATION, f"RLE size {size!r} is not [height, width]")
        if list(size) != [height, width]:
            raise ItemSkipped(MALFORMED_SEGMENTATION,
                              f"RLE size {size} differs from the image's [{height}, {width}]")
        if isinstance(counts, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
                raise ItemSkipped(MALFORMED_SEGMENTATION, "RLE counts are not non-negative integers")
            if sum(counts) != height * width:
                raise ItemSkipped(MALFORMED_SEGMENTATION,
                                  f"RLE counts add up to {sum(counts)}, not {height}x{width}")
            return mask_utils.frPyObjects(segmentation, height, width)
        if isinstance(counts, str):
            return {"size": [height, width], "counts": counts.encode("ascii", "replace")}
        if isinstance(counts, bytes):
            return {"size": [height, width], "counts": counts}
        raise ItemSkipped(MALFORMED_SEGMENTATION, "RLE counts are neither a list nor a string")
    raise ItemSkipped(MALFORMED_SEGMENTATION,
                      f"segmentation is {type(segmentation).__name__}, not polygons or RLE")


def decode_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 array of 0/1."""
    rle = to_rle(segmentation, height, width)
    try:
        m = mask_utils.decode(rle)
    except Exception as e:  # a corrupt compressed RLE string
        raise ItemSkipped(MALFORMED_SEGMENTATION, f"RLE does not decode ({e})") from None
    if m.ndim == 3:
        m = m[:, :, 0]
    if m.shape != (height, width):
        raise ItemSkipped(MALFORMED_SEGMENTATION,
                          f"mask decodes to {m.shape[1]}x{m.shape[0]}, not {width}x{height}")
    return m


def mask_png(segmentation: Any, height: int, width: int, *, level: int = ZLIB_LEVEL) -> bytes:
    """PNG bytes (8-bit, values 0/1, full image size) of a COCO segmentation."""
    return encode_png(decode_mask(segmentation, height, width), level=level)
