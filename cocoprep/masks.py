"""COCO segmentations (polygons, uncompressed or compressed RLE) -> PNG mask bytes.

Masks are written as the Object Detection API expects them: one 8-bit grayscale
PNG per object, at the full image size, pixel values 0 and 1. Such images are
almost all zeros, so the PNG is assembled directly (no Pillow): only the rows of
the mask's box are materialized (straight from the RLE runs) and compressed, with a
low zlib level; the zero rows around them come from cached deflate pieces. Encoding
full-size masks with Pillow at the default level costs more than everything else in
a `--masks` conversion; this costs about as much as reading the polygon.
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


def _zero_deflate(size: int, level: int) -> bytes:
    """Raw deflate data for `size` zero bytes, ending on a byte boundary (sync flush),
    so that it can be followed by any other raw deflate data."""
    out = []
    bit = 0
    while size:
        if size & 1:
            key = (bit, level)
            piece = _ZERO_PIECES.get(key)
            if piece is None:
                c = zlib.compressobj(level, zlib.DEFLATED, -15)
                piece = c.compress(bytes(1 << bit)) + c.flush(zlib.Z_SYNC_FLUSH)
                _ZERO_PIECES[key] = piece
            out.append(piece)
        size >>= 1
        bit += 1
    return b"".join(out)


_ZERO_PIECES: dict[tuple[int, int], bytes] = {}
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # a final, empty fixed-Huffman block
_ADLER_MOD = 65521


def _adler_zeros(value: int, size: int) -> int:
    """adler32 continued over `size` zero bytes (a stays, b grows by size * a)."""
    a, b = value & 0xFFFF, value >> 16
    return (((b + size * a) % _ADLER_MOD) << 16) | a


def _png(width: int, height: int, band: np.ndarray, top: int, level: int) -> bytes:
    """PNG of a (height, width) 8-bit image that is zero outside rows
    `top:top + len(band)`; `band` holds those rows. Only the band is compressed:
    the zero rows around it come from cached deflate pieces."""
    row = width + 1  # filter byte (0 = None) + pixels
    raw = np.zeros((band.shape[0], row), dtype=np.uint8)
    raw[:, 1:] = band
    body = raw.tobytes()
    before, after = top * row, (height - top - band.shape[0]) * row
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 2)  # small state: quick to set up
    deflate = (_zero_deflate(before, level) + c.compress(body) + c.flush(zlib.Z_SYNC_FLUSH)
               + _zero_deflate(after, level) + _FINAL_EMPTY_BLOCK)
    adler = _adler_zeros(zlib.adler32(body, _adler_zeros(1, before)), after)
    stream = b"\x78\x01" + deflate + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (_PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream)
            + _chunk(b"IEND", b""))


_NUMBER_TYPES = {int, float}


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
            try:
                ok = (type(poly) is list and {type(v) for v in poly} <= _NUMBER_TYPES
                      and all(map(math.isfinite, poly)))
            except OverflowError:  # an integer too big for a float
                ok = False
            if not ok:
                raise ItemSkipped(MALFORMED_SEGMENTATION, "a polygon is not a list of numbers")
            if len(poly) % 2:
                raise ItemSkipped(MALFORMED_SEGMENTATION,
                                  f"a polygon has an odd number of coordinates ({len(poly)})")
            if len(poly) >= 6:
                # pycocotools rasterizes the whole outline at 5x in C ints: coordinates
                # far outside the image exhaust memory or overflow and crash the process.
                xs, ys = poly[0::2], poly[1::2]
                if (min(xs) < -width or max(xs) > 2 * width
                        or min(ys) < -height or max(ys) > 2 * height):
                    raise ItemSkipped(MALFORMED_SEGMENTATION,
                                      f"a polygon reaches far outside the {width}x{height} "
                                      "image (more than the image's size beyond an edge)")
                polys.append(poly)
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


def rle_counts(counts: bytes) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`,
    vectorized): 5-bit groups offset by 48, 0x20 = more groups follow, 0x10 in the
    last group = negative; from the fourth run on, each value is a delta to the run
    two before."""
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if len(c) == 0:
        return np.zeros(0, np.int64)
    last = (c & 0x20) == 0
    ends = np.flatnonzero(last)
    if len(ends) == 0 or ends[-1] != len(c) - 1 or c.min() < 0:
        raise ValueError("truncated or invalid RLE string")
    starts = np.concatenate([[0], ends[:-1] + 1])
    pos = np.arange(len(c)) - np.repeat(starts, ends - starts + 1)
    values = np.add.reduceat((c & 0x1F) << (5 * pos), starts)
    lengths = ends - starts + 1
    negative = (c[ends] & 0x10) != 0
    values = values - np.where(negative, np.left_shift(1, 5 * lengths), 0)
    if len(values) > 3:
        values[1::2] = np.cumsum(values[1::2])
        values[2::2] = np.cumsum(values[2::2])
    return values


def _band_from_rle(rle: dict, height: int, width: int) -> tuple[np.ndarray, int]:
    """Rows `top:top + len(band)` of the decoded mask (all zero elsewhere), without
    decoding the whole image: only the columns and rows of the mask's box are filled."""
    runs = rle_counts(rle["counts"])
    if runs.sum() != height * width or (runs < 0).any():
        raise ItemSkipped(MALFORMED_SEGMENTATION,
                          f"RLE runs add up to {int(runs.sum())}, not {height}x{width}")
    ends = np.cumsum(runs)
    begins = ends - runs
    ones = np.arange(1, len(runs), 2)  # runs alternate 0, 1, 0, ... starting with zeros
    ones = ones[runs[ones] > 0]
    if len(ones) == 0:
        return np.zeros((0, width), np.uint8), 0
    first, last = int(ones[0]), int(ones[-1])
    x0, x1 = int(begins[first] // height), int((ends[last] - 1) // height) + 1
    # the runs first..last, padded with zeros to whole columns x0:x1 (column-major)
    lengths = np.concatenate([[begins[first] - x0 * height], runs[first:last + 1],
                              [x1 * height - ends[last]]])
    values = np.zeros(len(lengths), np.uint8)
    values[1:-1:2] = 1
    block = np.repeat(values, lengths).reshape(x1 - x0, height)
    rows = np.flatnonzero(block.any(axis=0))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    band = np.zeros((bottom - top, width), np.uint8)
    band[:, x0:x1] = block[:, top:bottom].T
    return band, top


def _nearest(size: int, out: int) -> np.ndarray:
    """Source index of each of `out` samples over `size` pixels, nearest to the
    sample's centre: floor((i + 0.5) * size / out), in integers (exact)."""
    return ((2 * np.arange(out, dtype=np.int64) + 1) * size) // (2 * out)


def _resize_band(band: np.ndarray, top: int, height: int, width: int, out_height: int,
                 out_width: int) -> tuple[np.ndarray, int]:
    """The band of the mask resized to `out_height` x `out_width` by nearest neighbour,
    and its new top row: only the rows whose source row lies in the band are made."""
    rows = _nearest(height, out_height)
    first = int(np.searchsorted(rows, top, "left"))
    stop = int(np.searchsorted(rows, top + band.shape[0], "left"))
    cols = _nearest(width, out_width)
    return band[rows[first:stop] - top][:, cols], first


def mask_png(segmentation: Any, height: int, width: int, *, level: int = ZLIB_LEVEL,
             out_height: int | None = None, out_width: int | None = None) -> bytes:
    """PNG bytes (8-bit, values 0/1) of a COCO segmentation.

    The segmentation is in `height` x `width` pixels (the image size the annotations
    refer to). The PNG is that size, with exactly the pixels pycocotools decodes, or
    `out_height` x `out_width` (an image resized at conversion): the full-size mask
    resized by nearest neighbour (each pixel takes the full-size pixel under its
    centre). Only the rows of the mask's box are materialized and compressed.
    """
    rle = to_rle(segmentation, height, width)
    try:
        band, top = _band_from_rle(rle, height, width)
    except ValueError as e:  # a corrupt compressed RLE string
        raise ItemSkipped(MALFORMED_SEGMENTATION, f"RLE does not decode ({e})") from None
    out_height, out_width = out_height or height, out_width or width
    if (out_height, out_width) != (height, width):
        band, top = _resize_band(band, top, height, width, out_height, out_width)
    return _png(out_width, out_height, band, top, level)


def box_mask_png(box: tuple[float, float, float, float], height: int, width: int, *,
                 level: int = ZLIB_LEVEL) -> bytes:
    """PNG bytes of a mask filled over the box `(x1, y1, x2, y2)` in pixels (every
    pixel the box touches; at least one), for an object without a usable segmentation:
    a box-filled mask keeps the object, where no mask would turn it into background."""
    x1, y1, x2, y2 = box
    c0 = min(max(int(math.floor(x1)), 0), width - 1)
    r0 = min(max(int(math.floor(y1)), 0), height - 1)
    c1 = max(min(int(math.ceil(x2)), width), c0 + 1)
    r1 = max(min(int(math.ceil(y2)), height), r0 + 1)
    band = np.zeros((r1 - r0, width), np.uint8)
    band[:, c0:c1] = 1
    return _png(width, height, band, r0, level)


def binary_mask_png(data: bytes, name: str, out_height: int, out_width: int, *,
                    level: int = ZLIB_LEVEL) -> bytes:
    """PNG bytes (values 0/1, `out_height` x `out_width`) of a binary mask PNG covering
    the whole image at any size (Open Images: 0/255 or 0/1, usually smaller or larger
    than its image): any non-zero pixel is the object; resized by nearest neighbour
    (each output pixel takes the mask pixel under its centre, as `mask_png` does).

    Raises:
        ItemSkipped: `corrupt_mask` when the data does not decode as an image.
    """
    import io

    from PIL import Image

    from cocoprep.errors import CORRUPT_MASK

    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("L")) > 0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ItemSkipped(CORRUPT_MASK, f"mask {name} does not decode as an image "
                                         f"({type(e).__name__})") from None
    height, width = pixels.shape
    full = pixels[_nearest(height, out_height)][:, _nearest(width, out_width)]
    rows = np.flatnonzero(full.any(axis=1))
    top = int(rows[0]) if len(rows) else 0
    band = full[top:int(rows[-1]) + 1] if len(rows) else full[:0]
    return _png(out_width, out_height, band.astype(np.uint8), top, level)


def mask_file_png(mask: Any, out_height: int, out_width: int) -> bytes | ItemSkipped:
    """An object's own mask PNG (`sources.segstore.MaskFile`: Open Images) at the
    image's stored size, or why not: `missing_mask` (in none of its folders),
    `corrupt_mask` (unreadable, or not an image)."""
    from cocoprep.errors import CORRUPT_MASK, MISSING_FILE, MISSING_MASK
    from cocoprep.images import read_bytes

    for path in mask.paths():
        try:
            data = read_bytes(path)
        except ItemSkipped as e:
            if e.reason == MISSING_FILE:
                continue
            return ItemSkipped(CORRUPT_MASK, f"mask {mask.name} in {mask.searched} cannot "
                               f"be read ({e.reason})")
        try:
            return binary_mask_png(data, mask.name, out_height, out_width)
        except ItemSkipped as e:
            return e
    return ItemSkipped(MISSING_MASK, f"mask {mask.name} is not in {mask.searched}")
