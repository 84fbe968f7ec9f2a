"""A seeded corpus of good and damaged JPEG and PNG files, and TensorFlow's verdict on them.

Used by `tests/test_images_fuzz.py` (a few hundred files) and by
`benchmarks/fuzz_images.py` (a larger run). Everything is derived from one seed, so
a disagreement found once can be rebuilt by name.

PNGs are written by hand here (zlib + chunk framing) because Pillow cannot write
interlaced or 16-bit colour PNGs; the rows get random filter types 0-4, which makes
odd pixels but a valid file.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (colour type, bit depth) -> samples per pixel
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_KINDS = [  # name, colour type, bit depth, interlace
    ("rgb8", 2, 8, 0), ("rgb8_i", 2, 8, 1), ("grey8", 0, 8, 0), ("rgba8", 6, 8, 0),
    ("pal8", 3, 8, 0), ("pal4_i", 3, 4, 1), ("grey16", 0, 16, 0), ("rgb16_i", 2, 16, 1),
    ("grey1", 0, 1, 0), ("greya8_i", 4, 8, 1), ("rgba16", 6, 16, 0), ("grey2_i", 0, 2, 1),
]
_JPEG_KINDS = ["baseline", "progressive", "restart", "grey", "baseline444", "exif"]
_DAMAGE = ["none", "flip", "flip_data", "truncate", "zero_tail", "dup", "remove", "bad_crc",
           "move", "insert"]
# Chunks and segments that `insert` puts at a random place: out-of-order, foreign or
# unknown ones (a PLTE in a grey image, an unknown critical chunk, a second SOF, ...).
_PNG_INSERTS = [(b"PLTE", bytes(range(48))), (b"tRNS", b"\x00\x10"), (b"tRNS", bytes(6)),
                (b"abCd", b"private"), (b"ABCD", b"critical"), (b"eXIf", b"MM\x00*junk"),
                (b"IDAT", zlib.compress(b"")), (b"IEND", b""), (b"sRGB", b"\x00")]
_JPEG_INSERTS = [b"\xff\xfe\x00\x07hello", b"\xff\xe1\x00\x08Exif\x00\x00",
                 b"\xff\xd8", b"\xff\xd9", b"\x00\x13\x37", b"\xff\xdd\x00\x04\x00\x01"]


@dataclass(frozen=True)
class Sample:
    name: str  # kind/damage/index: enough to rebuild it
    data: bytes
    size: tuple[int, int]  # (width, height) the annotation says
    format: str  # what the file was before the damage: "jpeg" or "png"
    damage: str


# ------------------------------------------------------------------ building good files

def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _pass_sizes(width: int, height: int, interlace: int) -> list[tuple[int, int]]:
    if not interlace:
        return [(width, height)]
    out = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                           (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        out.append(((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy))
    return out


def _png(rng: random.Random, ctype: int, depth: int, interlace: int, width: int,
         height: int) -> bytes:
    bits = _CHANNELS[ctype] * depth
    raw = bytearray()
    for pw, ph in _pass_sizes(width, height, interlace):
        if pw == 0 or ph == 0:
            continue
        rowbytes = (pw * bits + 7) // 8
        for _ in range(ph):
            raw.append(rng.randrange(5))
            row = rng.randbytes(rowbytes)
            if ctype == 3 and depth == 8:
                row = bytes(b % 16 for b in row)  # stay inside a 16-entry palette
            raw += row
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0,
                                          interlace))]
    chunks.append(_chunk(b"tEXt", b"Comment\x00made by the cocoprep fuzz corpus"))
    if ctype == 3:
        chunks.append(_chunk(b"PLTE", rng.randbytes(3 * 16)))
        chunks.append(_chunk(b"tRNS", bytes(rng.randrange(256) for _ in range(8))))
    chunks.append(_chunk(b"gAMA", struct.pack(">I", 45455)))
    stream = zlib.compress(bytes(raw), rng.choice([1, 6, 9]))
    step = rng.choice([len(stream), 97, 1000])  # one IDAT, or several
    for i in range(0, len(stream), step):
        chunks.append(_chunk(b"IDAT", stream[i:i + step]))
    chunks.append(_chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)


def _photo(rng: random.Random, width: int, height: int) -> Image.Image:
    nrng = np.random.default_rng(rng.randrange(2**32))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, p = nrng.uniform(-3, 3, 3)
        img[..., c] = 128 + 80 * np.sin(xx / width * a + yy / height * b + p)
    img += nrng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _jpeg(rng: random.Random, kind: str, width: int, height: int) -> bytes:
    im = _photo(rng, width, height)
    opts: dict = {"quality": rng.choice([75, 90])}
    if kind == "progressive":
        opts["progressive"] = True
    elif kind == "restart":
        opts["restart_marker_blocks"] = rng.choice([1, 4])
    elif kind == "grey":
        im = im.convert("L")
    elif kind == "baseline444":
        opts["subsampling"] = 0
    elif kind == "exif":
        exif = Image.Exif()
        exif[0x010F] = "fuzz"
        exif[0x0112] = 1
        opts["exif"] = exif.tobytes()
    buf = io.BytesIO()
    im.save(buf, "JPEG", **opts)
    return buf.getvalue()


# ------------------------------------------------------------------ damage

def png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each whole chunk (length, type, body, CRC) as far as it is framed."""
    out, pos = [], 8
    while pos + 12 <= len(data):
        end = pos + 12 + int.from_bytes(data[pos:pos + 4], "big")
        out.append((pos, min(end, len(data))))
        pos = end
    return out


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each marker segment before the first scan, then the scan itself."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        out.append((pos, min(end, len(data))))
        if data[pos + 1] == 0xDA:
            break
        pos = end
    return out


def _flip(rng: random.Random, data: bytearray, lo: int, hi: int, count: int) -> None:
    for _ in range(count):
        if hi > lo:
            data[rng.randrange(lo, hi)] ^= rng.randrange(1, 256)


def _damage_png(rng: random.Random, data: bytes, damage: str) -> bytes:
    chunks = png_chunks(data)
    buf = bytearray(data)
    if damage == "flip_data":  # inside IDAT with the CRC recomputed: only zlib/filters see it
        idats = [c for c in chunks if data[c[0] + 4:c[0] + 8] == b"IDAT"]
        s, e = rng.choice(idats)
        _flip(rng, buf, s + 8, e - 4, rng.choice([1, 1, 2, 5]))
        buf[e - 4:e] = struct.pack(">I", zlib.crc32(bytes(buf[s + 4:e - 4])))
        return bytes(buf)
    if damage == "bad_crc":
        s, e = rng.choice(chunks)
        buf[e - 1] ^= 0x01
        return bytes(buf)
    s, e = rng.choice(chunks[1:] if rng.random() < 0.8 else chunks)
    if damage == "insert":
        kind, body = rng.choice(_PNG_INSERTS)
        at = rng.choice(chunks)[rng.randrange(2)]
        return data[:at] + _chunk(kind, body) + data[at:]
    if damage == "move":
        rest = data[:s] + data[e:]
        at = rng.choice([8] + [b - (e - s) if b > s else b for _, b in chunks if b != e])
        return rest[:at] + data[s:e] + rest[at:]
    if damage == "dup":
        return data[:e] + data[s:e] + data[e:]
    return data[:s] + data[e:]  # remove


def _damage_jpeg(rng: random.Random, data: bytes, damage: str) -> bytes:
    segments = jpeg_segments(data)
    buf = bytearray(data)
    if damage == "flip_data":  # inside the entropy-coded data
        _flip(rng, buf, segments[-1][1], len(data) - 2, rng.choice([1, 1, 2, 5]))
        return bytes(buf)
    if damage == "bad_crc":  # no CRC in JPEG: damage one marker segment's header bytes
        s, e = rng.choice(segments)
        _flip(rng, buf, s, min(e, s + 12), 1)
        return bytes(buf)
    s, e = rng.choice(segments)
    if damage == "insert":
        at = rng.choice(segments + [(len(data) - 2, len(data))])[0]
        return data[:at] + rng.choice(_JPEG_INSERTS) + data[at:]
    if damage == "move":
        rest = data[:s] + data[e:]
        at = rng.choice([2] + [b - (e - s) if b > s else b for _, b in segments if b != e])
        return rest[:at] + data[s:e] + rest[at:]
    if damage == "dup":
        return data[:e] + data[s:e] + data[e:]
    return data[:s] + data[e:]


def damage(rng: random.Random, data: bytes, kind: str, is_png: bool) -> bytes:
    if kind == "none":
        return data
    if kind == "flip":
        buf = bytearray(data)
        _flip(rng, buf, 0, len(buf), rng.choice([1, 1, 3]))
        return bytes(buf)
    if kind == "truncate":
        return data[:rng.randrange(len(data))]
    if kind == "zero_tail":
        cut = rng.randrange(len(data))
        return data[:cut] + bytes(len(data) - cut)
    return (_damage_png if is_png else _damage_jpeg)(rng, data, kind)


def corpus(count: int, *, seed: int = 0, max_side: int = 48) -> list[Sample]:
    """`count` samples, half JPEG and half PNG, cycling through kinds and damages."""
    out = []
    for i in range(count):
        rng = random.Random(f"{seed}/{i}")
        width, height = rng.randrange(1, max_side + 1), rng.randrange(1, max_side + 1)
        damage_kind = _DAMAGE[(i // 2) % len(_DAMAGE)]
        if i % 2:
            name, ctype, depth, interlace = _PNG_KINDS[(i // 16) % len(_PNG_KINDS)]
            good = _png(rng, ctype, depth, interlace, width, height)
        else:
            name = _JPEG_KINDS[(i // 16) % len(_JPEG_KINDS)]
            width, height = max(width, 8), max(height, 8)
            good = _jpeg(rng, name, width, height)
        data = damage(rng, good, damage_kind, bool(i % 2))
        out.append(Sample(f"{name}/{damage_kind}/{i}", data, (width, height),
                          "png" if i % 2 else "jpeg", damage_kind))
    return out


# ------------------------------------------------------------------ the oracle

def tf_decodes(data: bytes, size: tuple[int, int]) -> bool:
    """True when `tf.io.decode_image` decodes `data` completely at `size` (width, height)."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return False
    return tuple(image.shape[:2]) == (size[1], size[0])
