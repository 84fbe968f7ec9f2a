"""PNG rules of the image check, each one checked against `tf.io.decode_png` too.

Each case is a small hand-built file; the test states cocoprep's verdict and that
TensorFlow (libpng) gives the same one, so a rule that drifts from libpng fails here.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from cocoprep import images, pngcheck
from cocoprep.errors import ItemSkipped
from image_fuzz import PNG_SIGNATURE, _chunk, _png, png_chunks, tf_decodes

W, H = 9, 7


def _parts(ctype: int = 2, depth: int = 8) -> list[bytes]:
    """IHDR, tEXt, [PLTE, tRNS,] gAMA, IDAT..., IEND of a small valid PNG."""
    data = _png(random.Random(5), ctype, depth, 0, W, H)
    return [data[a:b] for a, b in png_chunks(data)]


def _bad_crc(chunk: bytes) -> bytes:
    return chunk[:-1] + bytes([chunk[-1] ^ 1])


def _join(*parts: bytes) -> bytes:
    return PNG_SIGNATURE + b"".join(parts)


def _idat_with(raw_damage, split: int = 0) -> bytes:
    """An RGB PNG whose zlib stream is changed by `raw_damage`, CRCs recomputed; the
    last `split` bytes of the stream in an IDAT chunk of their own."""
    rows = bytes(range(256)) * ((H * (1 + 3 * W)) // 256 + 1)
    rows = bytearray(rows[:H * (1 + 3 * W)])
    rows[::1 + 3 * W] = bytes(H)  # filter type 0 on every row
    stream = raw_damage(zlib.compress(bytes(rows)))
    p = _parts()
    cut = len(stream) - split
    idat = _chunk(b"IDAT", stream[:cut]) + (_chunk(b"IDAT", stream[cut:]) if split else b"")
    return _join(p[0], idat, p[-1])


def _cases():
    rgb, grey, pal = _parts(2), _parts(0), _parts(3)
    ihdr, text, idat, iend = rgb[0], rgb[1], b"".join(rgb[3:-1]), rgb[-1]
    plte = _chunk(b"PLTE", bytes(48))
    # name -> (data, libpng decodes it)
    return {
        "valid": (_join(*rgb), True),
        "IEND with a bad CRC": (_join(*rgb[:-1], _bad_crc(iend)), False),
        "no IEND": (_join(*rgb[:-1]), False),
        "a second IHDR after IDAT": (_join(*rgb[:-1], ihdr, iend), False),
        "an IDAT with a bad CRC": (_join(ihdr, _bad_crc(idat), iend), False),
        "an ancillary chunk with a bad CRC": (_join(ihdr, _bad_crc(text), idat, iend), True),
        "tEXt before IHDR": (_join(text, *rgb), False),
        "an unknown ancillary chunk before IHDR": (_join(_chunk(b"cICP", bytes(4)), *rgb), True),
        "an unknown critical chunk": (_join(ihdr, _chunk(b"ABCD", b"x"), idat, iend), False),
        "a chunk name that is not letters": (_join(*rgb[:-1], _chunk(b"t3Xt", b"x"), iend),
                                             False),
        "a PLTE in a grey image": (_join(grey[0], plte, *grey[1:]), True),
        "two PLTE in a grey image": (_join(grey[0], plte, plte, *grey[1:]), False),
        "an empty PLTE in an RGB image": (_join(ihdr, _chunk(b"PLTE", b""), idat, iend), False),
        "a PLTE with a bad CRC in an RGB image": (_join(ihdr, _bad_crc(plte), idat, iend),
                                                  False),
        "a palette image without PLTE": (_join(pal[0], *pal[4:]), False),
        "a palette image with two PLTE": (_join(*pal[:3], pal[2], *pal[3:]), False),
        "a palette image whose tRNS has a bad CRC": (
            _join(*pal[:3], _bad_crc(pal[3]), *pal[4:]), True),
        "IDAT data after other chunks, the stream already ended": (
            _join(*rgb[:-1], text, _chunk(b"IDAT", b"junk"), iend), True),
        "bytes after IEND": (_join(*rgb) + b"\x00\x00\x00\x01junk", True),
        "a zlib stream cut after the last row": (_idat_with(lambda s: s[:-4]), False),
        # zlib checks the checksum while the last row is inflated when it has the
        # bytes (fatal), and in libpng's end check when they are in a later IDAT (a
        # warning)
        "a zlib stream with a bad checksum": (
            _idat_with(lambda s: s[:-1] + bytes([s[-1] ^ 1])), False),
        "a zlib stream with a bad checksum in its own IDAT": (
            _idat_with(lambda s: s[:-1] + bytes([s[-1] ^ 1]), split=4), True),
        "a zlib stream whose end is in the next IDAT": (_idat_with(lambda s: s, split=6),
                                                       True),
        "data after the zlib stream": (_idat_with(lambda s: s + b"trailing"), True),
        "a zlib stream damaged in the middle": (
            _idat_with(lambda s: s[:8] + bytes([s[8] ^ 0x55]) + s[9:]), False),
        "a row filter type over 4": (
            _join(ihdr, _chunk(b"IDAT", zlib.compress(b"\x05" + bytes(H * (1 + 3 * W) - 1))),
                  iend), False),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_png_verdict_matches_libpng(name):
    data, decodes = CASES[name]
    assert tf_decodes(data, (W, H)) is decodes  # the rule is libpng's
    if decodes:
        out = images.prepare_image(data, expected_size=(W, H))
        assert tf_decodes(out.data, (W, H))
    else:
        with pytest.raises(ItemSkipped) as info:
            images.prepare_image(data, expected_size=(W, H))
        assert info.value.reason == images.CORRUPT_IMAGE
        assert info.value.detail.startswith("PNG data does not decode (")


def test_a_bad_trns_is_dropped_as_libpng_drops_it():
    """libpng discards an ancillary chunk whose CRC fails, so TensorFlow shows the
    palette colours opaque; the converted image must show them the same way (not
    composited on white as the transparency would have them)."""
    im = Image.new("P", (W, H))
    im.putpalette([10, 200, 30] * 16)
    im.putdata([i % 16 for i in range(W * H)])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    pal = [buf.getvalue()[a:b] for a, b in png_chunks(buf.getvalue())]
    assert [c[4:8] for c in pal] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    trns = _chunk(b"tRNS", bytes(16))  # every entry fully transparent
    good = _join(*pal[:2], trns, *pal[2:])
    bad = _join(*pal[:2], _bad_crc(trns), *pal[2:])
    white = Image.open(io.BytesIO(images.prepare_image(good, encode="png").data))
    kept = Image.open(io.BytesIO(images.prepare_image(bad, encode="png").data))
    assert set(white.getdata()) == {(255, 255, 255)}
    assert set(kept.getdata()) == {(10, 200, 30)}
    assert tf_decodes(bad, (W, H))


def test_a_partial_decode_is_never_reencoded():
    """Pillow stops reading a palette PNG once it has its rows; damage after some rows
    used to come back as a clean-looking converted image."""
    pal = _parts(3)
    idat_at = next(i for i, c in enumerate(pal) if c[4:8] == b"IDAT")
    body = bytearray(pal[idat_at][8:-4])
    body[len(body) // 2] ^= 0xFF
    data = _join(*pal[:idat_at], _chunk(b"IDAT", bytes(body)), *pal[idat_at + 1:])
    assert not tf_decodes(data, (W, H))
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(data)
    assert info.value.reason == images.CORRUPT_IMAGE


def test_interlaced_and_16_bit_pngs_are_converted_and_decode():
    for ctype, depth in ((2, 16), (3, 4), (4, 8), (0, 2)):
        data = _png(random.Random(1), ctype, depth, 1, 13, 11)
        out = images.prepare_image(data, expected_size=(13, 11))
        assert out.converted_from is not None and tf_decodes(out.data, (13, 11))


def test_a_png_over_the_pixel_limit_is_a_bomb_before_anything_is_inflated(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    p = _parts()
    data = _join(p[0], _chunk(b"IDAT", b"not zlib at all"), p[-1])
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(data)
    assert info.value.reason == images.DECOMPRESSION_BOMB
    assert info.value.detail == "9x7 = 63 pixels is over Pillow's limit of 50"


def _with_exif(exif_body: bytes) -> bytes:
    p = _parts()
    return _join(p[0], _chunk(b"eXIf", exif_body), *p[1:])


def _orientation_exif(value: int) -> bytes:
    return b"MM\x00*" + struct.pack(">IHHHIHH", 8, 1, 0x0112, 3, 1, value, 0) + bytes(4)


def test_png_exif_orientation_is_read_from_its_chunk():
    data = _with_exif(_orientation_exif(6))
    out = images.prepare_image(data, orientation="mismatch", expected_size=(H, W))
    assert out.orientation_applied and (out.width, out.height) == (H, W)


def test_an_exif_block_that_does_not_parse_is_a_corrupt_image_when_it_matters():
    data = _with_exif(b"this is no TIFF header")
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(data, orientation="always")
    assert info.value.reason == images.CORRUPT_IMAGE
    assert info.value.detail.startswith("EXIF block does not parse (not a TIFF file")
    # ... and is not read at all when the orientation cannot matter
    assert images.prepare_image(data, expected_size=(W, H)).data == data


def test_check_image_says_what_it_found():
    check = images.check_image(_join(*_parts(0)))
    assert (check.format, check.mode, check.width, check.height) == ("png", "L", W, H)
    assert check.passthrough and not check.rotate
    pal = images.check_image(_join(*_parts(3)))
    assert (pal.format, pal.mode, pal.passthrough) == ("png", "P", False)


def test_error_text_is_deterministic_and_on_one_line(tmp_path):
    import tempfile

    err = OSError(f"cannot identify image file <_io.BytesIO object at 0x7f3a2b1c0d90>\n"
                  f"  while reading {tempfile.gettempdir()}/tmpab12cd/x.png id 0xdeadbeefcafe")
    assert images.error_text(err) == ("cannot identify image file while reading "
                                      "<temp file> id 0x...")
    assert images.error_text(ValueError()) == "ValueError"
    assert len(images.error_text(ValueError("x" * 500))) == 200
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(b"not an image at all")
    assert info.value.detail == "not a readable image (cannot identify image file)"


def test_pngcheck_reports_what_is_wrong():
    with pytest.raises(pngcheck.PngError, match="IEND chunk has a bad CRC"):
        pngcheck.check_png(CASES["IEND with a bad CRC"][0])
    with pytest.raises(pngcheck.PngError, match="filter type 5"):
        pngcheck.check_png(CASES["a row filter type over 4"][0])


@pytest.mark.parametrize("width", [1, 65534, 65535, 70000])
def test_decodable_stores_rows_of_any_length_as_pillow_and_zlib_read_them(width):
    """One grey row of `width` + 1 bytes: within, at and past a stored block's 65535."""
    rows = bytes([0]) + bytes(random.Random(width).randrange(256) for _ in range(width))
    info = pngcheck.PngInfo(width=width, height=1, bit_depth=8, colour_type=0,
                            interlaced=False, exif=None,
                            head=_chunk(b"IHDR", struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0)),
                            rows=rows)
    data = info.decodable()
    assert pngcheck.check_png(data).rows == rows
    assert Image.open(io.BytesIO(data)).tobytes() == rows[1:]
