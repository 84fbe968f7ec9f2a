"""The `--max-side` resize: the one rule for the stored size, and the pixel work.

Used by `images.prepare_image` (conversion) and by the resize tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

# Lanczos (Pillow's best downscaling filter). reducing_gap=3 lets Pillow first shrink
# by a whole factor with a box filter while the rest of the way is at least 3x; Pillow
# documents the result as indistinguishable from a plain Lanczos resize, and it is much
# faster for big reductions. Both are deterministic.
RESIZE_FILTER = Image.Resampling.LANCZOS
RESIZE_REDUCING_GAP = 3.0
# A JPEG to be resized is decoded at a reduced DCT scale (libjpeg's 1/2, 1/4, 1/8) only
# while that leaves at least this many times the target size, so the Lanczos resize
# still has the detail to work from (benchmarks/bench_big_photos.py measures the cost
# and the PSNR against a full decode).
DRAFT_MARGIN = 2


@dataclass(frozen=True)
class Resize:
    """A `max_side` resize: the upright size before it and the size stored."""

    original_width: int
    original_height: int
    width: int
    height: int


def fit_within(width: int, height: int, max_side: int | None) -> Resize | None:
    """The resize that brings the longer side of `width` x `height` down to
    `max_side`, aspect kept (the shorter side rounded half up, at least 1), or None
    when the image is already small enough (it then passes through untouched)."""
    if max_side is None or max(width, height) <= max_side:
        return None
    long, short = max(width, height), min(width, height)
    new_short = max(1, (2 * short * max_side + long) // (2 * long))  # integers: exact
    if width >= height:
        return Resize(width, height, max_side, new_short)
    return Resize(width, height, new_short, max_side)


def draft_for_resize(im: Image.Image, resize: Resize) -> None:
    """Ask libjpeg for a DCT-scaled decode of an unloaded JPEG that is still at least
    DRAFT_MARGIN times the target size (Pillow picks the smallest scale that is at
    least the requested size; nothing changes when no scale fits)."""
    if im.format not in ("JPEG", "MPO"):
        return
    w, h = DRAFT_MARGIN * resize.width, DRAFT_MARGIN * resize.height
    if im.size != (resize.original_width, resize.original_height):
        w, h = h, w  # stored transposed: EXIF orientation is applied after decoding
    im.draft(im.mode, (w, h))


def resize_pixels(im: Image.Image, resize: Resize) -> Image.Image:
    """`im` (upright, possibly a reduced decode) at the target size."""
    return im.resize((resize.width, resize.height), RESIZE_FILTER,
                     reducing_gap=RESIZE_REDUCING_GAP)
