"""The mask path's short cuts (`segmasks`): each gives the ids, counts and stored PNG
a full decode and re-encode would, and falls back where its premise does not hold.

Masks are built as the tools write them: Pillow's palette PNGs (every row
unfiltered, as libpng and Pillow write palette images), Pillow's grey PNGs
(adaptive row filters), and hand-built palette PNGs with filtered rows or with
bytes after the zlib stream (libpng warns and decodes)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cocoprep import pngcheck, segmasks
from cocoprep.errors import UNKNOWN_MASK_VALUE, ItemSkipped
from cocoprep.sources.segmentation import MaskCodec
from image_fuzz import PNG_SIGNATURE, _chunk, png_chunks, tf_decodes
from seg_builders import VOID, class_mask, png_bytes, voc_palette

CODEC = MaskCodec.identity(21)


def _tf_ids(png: bytes) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_png(png, channels=1).numpy()[..., 0]


def _palette_png(ids: np.ndarray, *, sub_filter: bool = False, tail: bytes = b"") -> bytes:
    """An 8-bit palette PNG of `ids`: rows unfiltered, or all with the Sub filter;
    `tail`: bytes after the end of the zlib stream, in the same IDAT chunk."""
    h, w = ids.shape
    rows = np.zeros((h, w + 1), np.uint8)
    if sub_filter:
        rows[:, 0] = 1
        rows[:, 1:] = np.diff(ids.astype(np.int16), axis=1, prepend=0).astype(np.uint8)
    else:
        rows[:, 1:] = ids
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"PLTE", bytes(voc_palette()))
            + _chunk(b"IDAT", zlib.compress(rows.tobytes()) + tail) + _chunk(b"IEND", b""))


def _kinds(png: bytes) -> list[bytes]:
    return [png[a + 4:a + 8] for a, _ in png_chunks(png)]


def _idat_body(png: bytes) -> bytes:
    return b"".join(png[a + 8:b - 4] for a, b in png_chunks(png) if png[a + 4:a + 8] == b"IDAT")


def test_a_voc_palette_mask_is_stored_as_grey_without_a_second_decode_or_encode():
    ids = class_mask(3, 21, width=64, height=48)
    data = png_bytes(ids, mode="P")
    mask = segmasks.decode_mask(data, CODEC, name="2007_000032.png")
    assert np.array_equal(mask.ids, ids)
    assert _kinds(mask.png) == [b"IHDR", b"IDAT", b"IEND"]
    assert mask.png[25] == 0  # IHDR colour type: grey
    assert _idat_body(mask.png) == _idat_body(data)  # the source's own zlib stream
    assert np.array_equal(_tf_ids(mask.png), ids)
    assert np.array_equal(segmasks.mask_ids(mask.png), ids)
    assert np.array_equal(mask.counts, np.bincount(ids.ravel(), minlength=256))


@pytest.mark.parametrize("case", ["sub filter", "bytes after the stream"])
def test_a_palette_mask_off_the_short_cuts_still_gives_its_indices(case):
    ids = class_mask(4, 21, width=50, height=20)
    data = (_palette_png(ids, sub_filter=True) if case == "sub filter"
            else _palette_png(ids, tail=b"surplus"))
    assert tf_decodes(data, (50, 20))
    mask = segmasks.decode_mask(data, CODEC, name="m.png")
    assert np.array_equal(mask.ids, ids)
    if case == "sub filter":  # the rows are the grey PNG's all the same
        assert _idat_body(mask.png) == _idat_body(data)
        assert np.array_equal(_tf_ids(mask.png), ids)
    else:  # the surplus would go with the stream: encoded anew
        assert mask.png is None
    assert np.array_equal(mask.counts, np.bincount(ids.ravel(), minlength=256))


def test_a_grey_mask_of_ids_is_kept_byte_for_byte_and_counted():
    ids = class_mask(5, 21, width=64, height=48)
    data = png_bytes(ids)
    mask = segmasks.decode_mask(data, CODEC, name="m.png")
    assert mask.png == data
    assert np.array_equal(mask.ids, ids)
    assert np.array_equal(mask.counts, np.bincount(ids.ravel(), minlength=256))


def test_values_mapped_to_other_ids_are_looked_up_counted_by_id_and_encoded():
    values = [255] * 256
    values[7], values[8], values[0] = 0, 1, 255  # Cityscapes-like: 7 -> 0, 8 -> 1, 0 void
    codec = MaskCodec(tuple(values))
    raw = np.full((30, 40), 7, np.uint8)
    raw[5:15, 5:25] = 8
    raw[0] = 0
    mask = segmasks.decode_mask(png_bytes(raw, mode="P"), codec, name="m.png")
    want = np.asarray(values, np.uint8)[raw]
    assert np.array_equal(mask.ids, want)
    assert mask.png is None  # not the source's rows: encoded anew (`encode_mask`)
    assert np.array_equal(mask.counts, np.bincount(want.ravel(), minlength=256))


def test_unknown_values_are_named_with_their_pixel_count():
    ids = class_mask(6, 21)
    ids[0, :3] = 40
    ids[1, :2] = 33
    with pytest.raises(ItemSkipped) as e:
        segmasks.decode_mask(png_bytes(ids, mode="P"), CODEC, name="bad.png")
    assert e.value.reason == UNKNOWN_MASK_VALUE
    assert e.value.detail.startswith("bad.png: value(s) 33, 40 in 5 pixel(s) are neither "
                                     "classes (values 0..20) nor void (255)")


def test_a_16_bit_mask_is_read_by_its_values():
    ids = class_mask(7, 21)
    buf = io.BytesIO()
    Image.frombytes("I;16", (ids.shape[1], ids.shape[0]), ids.astype("<u2").tobytes()).save(
        buf, "PNG")
    mask = segmasks.decode_mask(buf.getvalue(), CODEC, name="m.png")
    assert np.array_equal(mask.ids, ids)
    assert mask.png is None  # to be encoded as 8-bit


@pytest.mark.parametrize("specks", [False, True])
def test_encode_mask_decodes_to_the_ids_and_is_no_bigger_than_pillows(specks):
    ids = class_mask(8, 21, width=512, height=384)
    if specks:  # a pattern that repeats down the rows (where Pillow's Up filter shines)
        ids[::7, ::5] = VOID
    png = segmasks.encode_mask(ids)
    assert pngcheck.check_png(png).stream is not None
    assert np.array_equal(_tf_ids(png), ids)
    assert np.array_equal(segmasks.mask_ids(png), ids)
    buf = io.BytesIO()
    Image.fromarray(ids, "L").save(buf, "PNG", compress_level=segmasks.MASK_PNG_LEVEL)
    assert len(png) <= len(buf.getvalue()) * 1.05
    assert segmasks.encode_mask(ids.copy()) == png  # deterministic


@pytest.mark.parametrize("kind", ["flat", "noise", "one value", "one pixel"])
def test_value_counts_are_bincounts(kind):
    rng = np.random.default_rng(9)
    raw = {"flat": class_mask(10, 21, width=64, height=48),
           "noise": rng.integers(0, 256, (48, 64)).astype(np.uint8),
           "one value": np.full((48, 64), 7, np.uint8),
           "one pixel": np.full((1, 1), 255, np.uint8)}[kind]
    counts = segmasks._value_counts(raw[:, ::-1])  # a view, as the PNG rows are
    assert counts.dtype == np.int64
    assert np.array_equal(counts, np.bincount(raw.ravel(), minlength=256))
