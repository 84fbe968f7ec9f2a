"""Does a PNG decode in libpng, as `tf.io.decode_png` runs it? A pure-Python answer.

Pillow's PNG reader is lenient where libpng is strict (a bad CRC on IEND, a second
IHDR, a missing or doubled PLTE, an IDAT stream that runs short) and strict where
libpng is lenient (a bad CRC on an ancillary chunk, which libpng drops with a
warning). Records must decode in TensorFlow, so this module follows libpng's rules
with its default settings (the ones TensorFlow's decoder uses):

* errors: a critical chunk (IHDR, PLTE of a palette image, IDAT, IEND, any unknown
  chunk whose name starts with a capital) with a bad CRC; a malformed chunk header;
  IHDR missing, not first, doubled or invalid; a palette image without PLTE before
  IDAT; PLTE doubled, empty, or the wrong length in a palette image; a zlib error
  or the end of the first run of IDAT chunks before the last row is out (the
  checksum counts when zlib reaches it in that same call); the IDAT run ending while
  libpng still reads on to the end of the stream; a row filter type over 4; no IEND.
* dropped with a warning: an ancillary chunk with a bad CRC or invalid content; a
  PLTE in a grey image; what zlib reads after the last row (surplus data, a bad
  checksum in a later IDAT chunk); IDAT chunks after the stream has ended; anything
  after IEND; an ancillary chunk unknown to libpng (cICP, APNG's), even before IHDR.

Each rule has a case in `tests/test_images_png.py` that checks TensorFlow agrees.

The work is the chunk walk, CRCs and one zlib inflate, all in C: cheaper than a
Pillow decode, which is not needed at all to pass a plain PNG through.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
          (1, 0, 2, 2), (0, 1, 1, 2))
_MAX_31 = 0x7FFFFFFF
_STORED_MAX = 65535  # bytes in one stored deflate block
_READ_SIZE = 8192  # libpng's PNG_IDAT_READ_SIZE: how much IDAT data it inflates at once
# The ancillary chunks TensorFlow's libpng reads (and so rejects before IHDR); others
# (cICP, APNG's acTL, ...) are unknown to it and skipped wherever they are.
_KNOWN = {b"bKGD", b"cHRM", b"eXIf", b"gAMA", b"hIST", b"iCCP", b"iTXt", b"oFFs", b"pCAL",
          b"pHYs", b"sBIT", b"sCAL", b"sPLT", b"sRGB", b"tEXt", b"tIME", b"tRNS", b"zTXt"}


class PngError(ValueError):
    """The file would not decode in libpng; the message says why."""


class PngTooLarge(PngError):
    """More pixels than the caller allows (checked before anything is inflated)."""

    def __init__(self, width: int, height: int):
        super().__init__(f"{width}x{height} pixels is over the limit")
        self.width, self.height = width, height


@dataclass(frozen=True)
class PngInfo:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool
    exif: bytes | None  # the eXIf chunk, when one with a good CRC is present
    head: bytes = field(repr=False, compare=False)  # IHDR, PLTE, tRNS as libpng uses them
    rows: bytes = field(repr=False, compare=False)  # the inflated, still filtered rows
    # The first IDAT run's zlib stream when it inflates to exactly the rows and ends
    # there (nothing libpng would drop or warn about); else None.
    stream: bytes | None = field(default=None, repr=False, compare=False)

    def decodable(self) -> bytes:
        """The image as libpng decodes it, for Pillow: what libpng drops (bad ancillary
        chunks, stray IDATs, whatever follows the rows in the zlib stream) left out,
        the rows stored uncompressed, so Pillow does not inflate them a second time.
        The stored deflate blocks are framed here, the rows copied once (zlib's level
        0 would copy them through its window: most of the cost on a large image)."""
        rows = memoryview(self.rows)
        body = [b"\x78\x01"]  # zlib header: deflate, 32 KiB window, no dictionary
        for pos in range(0, max(len(rows), 1), _STORED_MAX):
            block = rows[pos:pos + _STORED_MAX]
            last = pos + _STORED_MAX >= len(rows)
            body += [struct.pack("<BHH", last, len(block), len(block) ^ 0xFFFF), block]
        body.append(struct.pack(">I", zlib.adler32(rows)))
        crc = zlib.crc32(b"IDAT")
        for piece in body:
            crc = zlib.crc32(piece, crc)
        size = sum(len(piece) for piece in body)
        return b"".join([SIGNATURE, self.head, struct.pack(">I", size), b"IDAT", *body,
                         struct.pack(">I", crc), _IEND])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


_IEND = _chunk(b"IEND", b"")


def grey_png(width: int, height: int, stream: bytes) -> bytes:
    """A minimal 8-bit grey PNG (IHDR, one IDAT, IEND; not interlaced) around
    `stream`, a zlib stream of the filtered rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def _ihdr(body: bytes) -> tuple[int, int, int, int, int]:
    if len(body) != 13:
        raise PngError(f"IHDR is {len(body)} bytes long, not 13")
    width, height, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
    if not (0 < width <= _MAX_31 and 0 < height <= _MAX_31):
        raise PngError(f"IHDR size {width}x{height} is not usable")
    if depth not in _DEPTHS.get(ctype, ()):
        raise PngError(f"IHDR bit depth {depth} with colour type {ctype} is not valid")
    if comp != 0 or filt != 0 or interlace not in (0, 1):
        raise PngError(f"IHDR compression {comp}, filter {filt}, interlace {interlace} "
                       "are not valid")
    return width, height, depth, ctype, interlace


def _row_layout(width: int, height: int, depth: int, ctype: int,
                interlace: int) -> list[tuple[int, int]]:
    """(rows, bytes per row including the filter byte) of each pass that has pixels."""
    bits = _CHANNELS[ctype] * depth
    passes = [(0, 0, 1, 1)] if not interlace else _ADAM7
    out = []
    for x0, y0, dx, dy in passes:
        pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            out.append((ph, 1 + (pw * bits + 7) // 8))
    return out


def _inflate_rows(chunks: list[memoryview], expected: int) -> tuple[bytes, bytes | None]:
    """Inflate the first run of IDAT chunks as libpng does: the rows, and the run's
    zlib stream when it is exactly the rows (`PngInfo.stream`).

    libpng inflates row by row, feeding at most 8 KiB of one chunk at a time; any
    error before the last row is out is fatal. Then, unless the stream has ended, it
    goes on inflating to check the end: a zlib error there only warns, and so does
    surplus data, but running out of IDAT data before the stream ends is fatal ("Not
    enough image data"), and it reads on for as long as surplus data keeps coming.
    """
    whole = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    inflater = zlib.decompressobj(0)  # the window size its header says, as libpng
    try:  # the usual case, in one call: a stream that ends without error is fine
        rows = inflater.decompress(whole, expected)
        if len(rows) == expected and inflater.eof:
            clean = not inflater.unused_data
            return rows, (bytes(whole) if clean else None)
    except zlib.error:
        pass
    inflater = zlib.decompressobj(0)
    pieces = [c[i:i + _READ_SIZE] for c in chunks for i in range(0, len(c), _READ_SIZE)]
    out: list[bytes] = []
    have, index = 0, 0
    while have < expected and index < len(pieces):
        try:
            data = inflater.decompress(pieces[index], expected - have)
        except zlib.error as e:
            raise PngError(f"IDAT data does not inflate ({e})") from None
        out.append(data)
        have += len(data)
        index += 1
    if have < expected:
        raise PngError(f"IDAT data ends after {have} of {expected} bytes of image data")
    rows = b"".join(out)
    if inflater.eof:
        return rows, None
    tail, surplus = inflater.unconsumed_tail, 0
    while True:
        if not tail:
            if index == len(pieces):
                raise PngError("IDAT data ends before its zlib stream does")
            tail, index = pieces[index], index + 1
        try:
            surplus += len(inflater.decompress(tail, 1024))
        except zlib.error:
            return rows, None  # after the last row: a warning in libpng
        tail = inflater.unconsumed_tail
        if inflater.eof or not surplus:
            return rows, None


def _check_filters(rows: bytes, layout: list[tuple[int, int]]) -> None:
    pos = 0
    for count, stride in layout:
        worst = max(rows[pos:pos + count * stride:stride])
        if worst > 4:
            raise PngError(f"a row has filter type {worst} (0-4 are valid)")
        pos += count * stride


def _trns_ok(ctype: int, body: memoryview, palette_entries: int) -> bool:
    """libpng's rules for tRNS (anything else is dropped with a warning)."""
    if ctype == 0:
        return len(body) == 2
    if ctype == 2:
        return len(body) == 6
    return ctype == 3 and 0 < len(body) <= palette_entries


class _Walk:
    """State of the chunk walk: what libpng has seen so far."""

    def __init__(self) -> None:
        self.header: tuple[int, int, int, int, int] | None = None
        self.ihdr = b""
        self.plte_seen = False
        self.palette = b""  # the PLTE chunk of a palette image, whole
        self.palette_entries = 0
        self.trns = b""  # a valid tRNS chunk, whole
        self.exif: bytes | None = None
        self.idat: list[memoryview] = []  # bodies of the first run of IDAT chunks
        self.run = 0  # 0: no IDAT yet, 1: inside the first run, 2: after it

    def chunk(self, kind: bytes, whole: memoryview, body: memoryview, crc_ok: bool) -> None:
        name = kind.decode("ascii")
        critical = not kind[0] & 0x20
        if self.header is None and kind != b"IHDR" and (critical or kind in _KNOWN):
            raise PngError(f"{name} chunk before IHDR")
        if kind != b"IDAT" and self.run == 1:
            self.run = 2
        if critical and not crc_ok:
            raise PngError(f"{name} chunk has a bad CRC")
        if kind == b"IHDR":
            if self.header is not None:
                raise PngError("second IHDR chunk")
            self.header, self.ihdr = _ihdr(bytes(body)), bytes(whole)
        elif kind == b"IDAT":
            if self.header[3] == 3 and not self.palette:
                raise PngError("palette image has no PLTE before IDAT")
            if self.run < 2:
                self.run = 1
                self.idat.append(body)
        elif kind == b"PLTE":
            self._plte(whole, body, crc_ok)
        elif critical:
            raise PngError(f"unknown critical chunk {name!r}")
        elif not crc_ok or self.run:
            pass  # dropped (tRNS after IDAT is out of place; eXIf is read anywhere)
        elif kind == b"tRNS" and not self.trns:
            if _trns_ok(self.header[3], body, self.palette_entries):
                self.trns = bytes(whole)
        if kind == b"eXIf" and crc_ok and self.exif is None:
            self.exif = bytes(body)

    def _plte(self, whole: memoryview, body: memoryview, crc_ok: bool) -> None:
        if self.plte_seen:
            raise PngError("second PLTE chunk")
        self.plte_seen = True
        ctype, depth = self.header[3], self.header[2]
        if self.run or ctype in (0, 4):
            return  # after IDAT, or in a grey image: dropped
        if not body or (ctype == 3 and (len(body) % 3 or len(body) > 768)):
            raise PngError(f"PLTE chunk is {len(body)} bytes long")
        if len(body) % 3 or len(body) > 768:
            return  # in a colour image the palette is only a hint: dropped
        if ctype == 3:
            self.palette = bytes(whole)
            self.palette_entries = min(len(body) // 3, 1 << depth)


def check_png(data: bytes, *, max_pixels: int | None = None) -> PngInfo:
    """Walk the chunks and inflate the image data; raise `PngError` if libpng would fail
    (`PngTooLarge` when the image has more than `max_pixels` pixels)."""
    if not data.startswith(SIGNATURE):
        raise PngError("no PNG signature")
    view, size, pos = memoryview(data), len(data), 8
    walk = _Walk()
    while True:
        if pos + 8 > size:
            raise PngError(f"file ends at byte {size} without an IEND chunk")
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8])
        if length > _MAX_31 or not kind.isalpha():
            raise PngError(f"chunk header at byte {pos} is not valid "
                           f"(type {kind!r}, length {length})")
        end = pos + 8 + length
        if end + 4 > size:
            raise PngError(f"file ends inside the {kind.decode()} chunk at byte {pos}")
        crc_ok = zlib.crc32(view[pos + 4:end]) == int.from_bytes(view[end:end + 4], "big")
        if kind == b"IEND":
            if walk.header is None or not walk.idat:
                raise PngError("IEND chunk before any IDAT")
            if not crc_ok:
                raise PngError("IEND chunk has a bad CRC")
            break
        walk.chunk(kind, view[pos:end + 4], view[pos + 8:end], crc_ok)
        pos = end + 4
    width, height = walk.header[:2]
    if max_pixels and width * height > max_pixels:
        raise PngTooLarge(width, height)
    return _finish(walk)


def _finish(walk: _Walk) -> PngInfo:
    width, height, depth, ctype, interlace = walk.header
    layout = _row_layout(width, height, depth, ctype, interlace)
    rows, stream = _inflate_rows(walk.idat, sum(count * stride for count, stride in layout))
    _check_filters(rows, layout)
    return PngInfo(width=width, height=height, bit_depth=depth, colour_type=ctype,
                   interlaced=bool(interlace), exif=walk.exif,
                   head=walk.ihdr + walk.palette + walk.trns, rows=rows, stream=stream)
