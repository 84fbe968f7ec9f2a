"""One semantic mask file -> the label-map ids of its pixels -> the record's PNG.

The rules (`convert --task segmentation`; `verify` reads masks back with `mask_ids`):

* the mask must decode completely, by the same check as images
  (`images.check_image`: libpng's rules for PNG); a JPEG mask is refused (lossy:
  its edges hold values no class has);
* a palette ("P") PNG is read as its indices (VOC's SegmentationClass), never as
  its colours, unless the format's masks are colour masks; a grey (or 16-bit) mask
  as its values; an RGB mask by the format's colour table (an RGB mask whose
  channels agree everywhere is a grey one);
* every value (or colour) must map to a label-map id or void
  (`sources.segmentation.MaskCodec`), else the item is skipped naming the values;
* the stored mask is an 8-bit one-channel PNG: the source file's own bytes when it
  already is exactly that (grey, 8-bit, values kept); an 8-bit palette mask whose
  indices are kept, its own zlib stream under a grey header (the same rows); else
  encoded here;
* a mask is only ever resized with its image (`--max-side`), by nearest neighbour.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from cocoprep.errors import CORRUPT_MASK, UNKNOWN_MASK_VALUE, ItemSkipped
from cocoprep.images import check_image, check_png_data
from cocoprep.pngcheck import SIGNATURE, PngInfo, grey_png
from cocoprep.schema import VOID_ID
from cocoprep.sources.segmentation import UNKNOWN, MaskCodec, rgb_text

MASK_PNG_LEVEL = 1    # masks are flat: the fastest zlib level loses little
_SHOWN = 5            # unknown values/colours named in a skip, at most
_INDEX_MODES = ("P", "L", "1", "I;16", "I;16B", "I;16L", "I")


@dataclass(frozen=True)
class DecodedMask:
    """A mask's label-map ids ((height, width) uint8, VOID_ID = void), and the
    source's own bytes when they already are the record's mask."""

    ids: np.ndarray
    png: bytes | None = None
    instances: np.ndarray | None = None  # panoptic: instance number per pixel, 0 = none
    counts: np.ndarray | None = None  # pixels per id (256 entries), when already counted

    @property
    def width(self) -> int:
        return int(self.ids.shape[1])

    @property
    def height(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class _Source:
    """A mask file that decodes: what the PNG check read (`info`, None for other
    formats) and whether the bytes are an 8-bit grey PNG."""

    data: bytes = field(repr=False)
    info: PngInfo | None
    grey8: bool
    name: str

    @cached_property
    def plain(self) -> np.ndarray | None:
        """The pixels of an 8-bit grey or palette PNG whose rows are all unfiltered
        (filter type 0, what most tools write for palette images), straight off the
        rows the check inflated: no second decode. None for any other PNG."""
        info = self.info
        if info is None or info.bit_depth != 8 or info.colour_type not in (0, 3) \
                or info.interlaced:
            return None
        rows = np.frombuffer(info.rows, np.uint8).reshape(info.height, info.width + 1)
        return None if rows[:, 0].any() else rows[:, 1:]

    @cached_property
    def image(self) -> Image.Image:
        """Pillow's full decode; for a PNG, of the file as libpng reads it, with the
        rows the check inflated stored uncompressed (no second inflate)."""
        source = self.data if self.info is None else self.info.decodable()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im = Image.open(io.BytesIO(source))
                im.load()
        except Exception as e:  # checked before: only an odd format gets here
            raise ItemSkipped(CORRUPT_MASK, f"{self.name}: does not decode "
                              f"({type(e).__name__})") from None
        return im

    @property
    def mode(self) -> str:
        return {0: "L", 3: "P"}[self.info.colour_type] if self.plain is not None \
            else self.image.mode

    def array(self) -> np.ndarray:
        """The pixel values (palette indices for a palette image)."""
        return self.plain if self.plain is not None else np.asarray(self.image)

    def as_grey_png(self) -> bytes | None:
        """An 8-bit palette PNG as the grey PNG of its indices: the same filtered rows
        in the same zlib stream, under a grey IHDR (for a one-sample 8-bit image the
        two decode the rows alike), so nothing is decoded or compressed again. None
        when the stream is not exactly the rows, or interlaced (then the mask is
        encoded anew)."""
        info = self.info
        if info is None or info.colour_type != 3 or info.bit_depth != 8 \
                or info.stream is None or info.interlaced:
            return None
        return grey_png(info.width, info.height, info.stream)


def _open(data: bytes, name: str) -> _Source:
    """The mask file checked (PNG: libpng's rules, as for images); a JPEG is refused."""
    try:
        if data.startswith(SIGNATURE):
            info = check_png_data(data)
            return _Source(data, info, info.colour_type == 0 and info.bit_depth == 8, name)
        check = check_image(data)
    except ItemSkipped as e:
        raise ItemSkipped(CORRUPT_MASK, f"{name}: {e.detail}") from None
    if check.format == "jpeg":
        raise ItemSkipped(CORRUPT_MASK, f"{name}: a JPEG mask (lossy: its edges hold values "
                          "no class has); masks must be PNG")
    source = _Source(check.source, None, False, name)
    source.image  # decoded now, as the check did: a BMP, GIF or TIFF mask is small
    return source


def _unknown_values(name: str, raw: np.ndarray, bad: np.ndarray, codec: MaskCodec) -> ItemSkipped:
    values = np.unique(raw[bad]).tolist()
    shown = ", ".join(str(v) for v in values[:_SHOWN]) + (", ..." if len(values) > _SHOWN else "")
    known = [v for v in range(256) if codec.values is not None and codec.values[v] != UNKNOWN
             and codec.values[v] != VOID_ID]
    span = f"values {known[0]}..{known[-1]}" if known else "no values"
    voids = [v for v in range(256) if codec.values is not None and codec.values[v] == VOID_ID]
    return ItemSkipped(UNKNOWN_MASK_VALUE, f"{name}: value(s) {shown} in {int(bad.sum())} "
                       f"pixel(s) are neither classes ({span}) nor void "
                       f"({', '.join(map(str, voids)) or 'none'})")


def _value_counts(raw: np.ndarray) -> np.ndarray:
    """Pixels per value (256 entries) of an 8-bit mask. A mask is runs of one value
    along its rows: counted by runs (a few thousand) when there are few of them,
    else pixel by pixel (a noisy mask costs one comparison pass more)."""
    flat = raw.ravel()
    change = flat[1:] != flat[:-1]
    if np.count_nonzero(change) * 8 > flat.size:
        return np.bincount(flat, minlength=256)
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    lengths = np.diff(starts, append=flat.size)
    return np.bincount(flat[starts], weights=lengths, minlength=256).astype(np.int64)


def _by_values(name: str, raw: np.ndarray, codec: MaskCodec
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """The ids of `raw`'s values, and the pixels per id (256 entries) when `raw` is
    8-bit. Those are counted once (one pass over the pixels) and the check and the
    per-class counts read off the counts; when every value present is its own id
    (VOC, most folder layouts) `raw` itself is the ids, with no per-pixel lookup."""
    if raw.dtype != np.uint8:  # 16-bit and 32-bit grey masks: a 65536-entry lookup
        mapped = codec.lut[raw]
        bad = mapped < 0
        if bad.any():
            raise _unknown_values(name, raw, bad, codec)
        return mapped.astype(np.uint8), None
    counts = _value_counts(raw)
    present = np.flatnonzero(counts)
    mapped = codec.lut[present]
    if (mapped < 0).any():
        raise _unknown_values(name, raw, codec.lut[raw] < 0, codec)
    per_id = np.bincount(mapped, weights=counts[present], minlength=256).astype(np.int64)
    if np.array_equal(mapped, present):
        return raw, per_id
    table = np.maximum(codec.lut[:256], 0).astype(np.uint8)
    return np.take(table, raw), per_id


def _by_colours(name: str, rgb: np.ndarray, codec: MaskCodec) -> np.ndarray:
    packed = ((rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
              | rgb[..., 2])
    colours, inverse = np.unique(packed, return_inverse=True)
    table = codec.colour_ids
    ids = np.array([table.get(int(c), UNKNOWN) for c in colours.tolist()], np.int16)
    if (ids < 0).any():
        unknown = [int(c) for c, i in zip(colours.tolist(), ids.tolist()) if i < 0]
        pixels = int(np.isin(packed, unknown).sum())
        shown = ", ".join(rgb_text(c) for c in unknown[:_SHOWN])
        raise ItemSkipped(UNKNOWN_MASK_VALUE, f"{name}: colour(s) {shown}"
                          f"{', ...' if len(unknown) > _SHOWN else ''} in {pixels} pixel(s) "
                          "are not in the colour table")
    return ids[inverse].reshape(packed.shape).astype(np.uint8)


def decode_mask(data: bytes, codec: MaskCodec, *, name: str) -> DecodedMask:
    """The ids of mask file `name` (its bytes `data`) under `codec`.

    Raises:
        ItemSkipped: `corrupt_mask` (does not decode, JPEG, not a label mask) or
            `unknown_mask_value` (values or colours the label map does not name).
    """
    src = _open(data, name)
    mode = src.mode
    if mode in _INDEX_MODES and codec.values is not None:
        raw = src.array()
        if raw.dtype == bool:
            raw = raw.astype(np.uint8)
        ids, counts = _by_values(name, raw, codec)
        png = None
        if ids is raw:  # every value is its own id: the source's rows are the mask's
            png = data if src.grey8 else src.as_grey_png()
        return DecodedMask(ids, png, counts=counts)
    if mode not in _INDEX_MODES + ("RGB", "RGBA"):
        raise ItemSkipped(CORRUPT_MASK, f"{name}: a {mode} image is not a label mask "
                          "(expected palette, grey or RGB)")
    rgb = np.asarray(src.image.convert("RGB"))
    if codec.colours:
        return DecodedMask(_by_colours(name, rgb, codec))
    if codec.values is not None and (rgb[..., 0] == rgb[..., 1]).all() \
            and (rgb[..., 1] == rgb[..., 2]).all():
        ids, counts = _by_values(name, rgb[..., 0], codec)
        return DecodedMask(ids, counts=counts)
    raise ItemSkipped(UNKNOWN_MASK_VALUE, f"{name}: an RGB colour mask, but this layout's "
                      "masks hold class ids (a grey or palette PNG) and it has no colour table")


def panoptic_mask(data: bytes, segments: np.ndarray, *, name: str) -> DecodedMask:
    """A COCO panoptic PNG (segment id = R + 256 G + 256^2 B; 0 unlabelled) as
    label-map ids (unlabelled: void) and instance numbers (1.. for each non-crowd
    thing segment, in `segments` order; 0 for stuff, crowd and unlabelled).
    A segment id `segments` does not list is a skip naming it."""
    rgb = np.asarray(_open(data, name).image.convert("RGB")).astype(np.uint32)
    seg = rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)
    found, inverse = np.unique(seg, return_inverse=True)
    rows = {int(s[0]): i for i, s in enumerate(segments.tolist())}
    unknown = [int(v) for v in found.tolist() if v and v not in rows]
    if unknown:
        shown = ", ".join(map(str, unknown[:_SHOWN])) + (", ..." if len(unknown) > _SHOWN else "")
        raise ItemSkipped(UNKNOWN_MASK_VALUE, f"{name}: segment id(s) {shown} are not in "
                          "the image's segments_info")
    things = np.cumsum((segments[:, 2] == 1) & (segments[:, 3] == 0)) if len(segments) else []
    label, number = [], []
    for v in found.tolist():
        r = rows.get(int(v))
        label.append(VOID_ID if r is None else int(segments[r, 1]))
        thing = r is not None and segments[r, 2] == 1 and segments[r, 3] == 0
        number.append(int(things[r]) if thing else 0)
    ids = np.asarray(label, np.uint8)[inverse].reshape(seg.shape)
    instances = np.asarray(number, np.int64)[inverse].reshape(seg.shape)
    return DecodedMask(ids, None, instances)


def draw_semantic(objects: list[tuple[int, bool, Any]], height: int, width: int,
                  name: str) -> DecodedMask:
    """A class-id mask drawn from COCO instance annotations (label id, is crowd,
    polygons or RLE): background 0; crowd regions void; then the other objects,
    largest first, so a smaller object on a larger one stays visible. An
    annotation whose segmentation is unusable skips the image (its pixels would
    silently turn into background)."""
    from pycocotools import mask as mask_utils

    from cocoprep.masks import MALFORMED_SEGMENTATION, to_rle

    ids = np.zeros((height, width), np.uint8)
    drawn = []
    for label, crowd, seg in objects:
        try:
            rle = to_rle(seg, height, width)
            pixels = mask_utils.decode(rle).astype(bool)
        except ItemSkipped as e:
            raise ItemSkipped(e.reason, f"{name}: {e.detail}") from None
        except ValueError as e:
            raise ItemSkipped(MALFORMED_SEGMENTATION, f"{name}: RLE does not decode "
                              f"({e})") from None
        drawn.append((0 if crowd else 1, -int(pixels.sum()), label, pixels))
    for order, _, label, pixels in sorted(drawn, key=lambda d: d[:2]):
        ids[pixels] = VOID_ID if order == 0 else label
    return DecodedMask(ids)


def encode_instances(numbers: np.ndarray, bits: int) -> bytes:
    """An instance mask PNG: 8-bit, or 16-bit (`bits` 16) for more than 255 instances."""
    buf = io.BytesIO()
    if bits == 16:
        h, w = numbers.shape
        Image.frombytes("I;16", (w, h), numbers.astype("<u2").tobytes()).save(
            buf, format="PNG", compress_level=MASK_PNG_LEVEL)
        return buf.getvalue()
    return encode_mask(numbers.astype(np.uint8))


def nearest_resize(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """`ids` at `height` x `width` by nearest neighbour: each pixel takes the source
    pixel under its centre, floor((i + 0.5) * size / out), in integers (exact)."""
    h, w = ids.shape
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * w) // (2 * width)
    return ids[rows][:, cols]


def encode_mask(ids: np.ndarray) -> bytes:
    """An 8-bit one-channel PNG of `ids` (deterministic bytes): rows unfiltered, zlib
    level 1. Masks are flat, so trying each row filter (Pillow's way) buys little:
    on 512x384 masks this is a third of Pillow's time at level 1, and 10% fewer bytes
    (a pattern that repeats down the rows: about the same size)."""
    height, width = ids.shape
    rows = np.zeros((height, width + 1), np.uint8)  # column 0: filter type 0 (None)
    rows[:, 1:] = ids
    return grey_png(width, height, zlib.compress(rows, MASK_PNG_LEVEL))


def mask_ids(png: bytes) -> np.ndarray:
    """The ids of a stored record mask (verify, inspect): it must be an 8-bit
    one-channel PNG. Raises `ItemSkipped` (corrupt_mask) naming what it is instead."""
    src = _open(png, "mask")
    if not src.grey8:
        raise ItemSkipped(CORRUPT_MASK, f"mask: a {src.mode} image, expected an 8-bit "
                          "one-channel PNG (what tf.io.decode_image(channels=1) reads as ids)")
    return src.array()
