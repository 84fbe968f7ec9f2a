"""Read, check and (only when needed) transcode one image.

Rules shared by `convert` and `split`:

* a file name that escapes the image directory (absolute, `..`, or a symlink that
  resolves outside) is rejected before anything is opened;
* the whole image stream must decode (truncated or corrupt data is rejected);
* images over Pillow's decompression-bomb limit are rejected;
* 8-bit RGB or grayscale JPEG and PNG pass through byte for byte; anything else
  (CMYK, palette, alpha, 16-bit, BMP, GIF, WebP, TIFF, ...) is converted to RGB and
  encoded as JPEG (or PNG on request); `format` always tells the truth;
* EXIF orientation is applied (and the image re-encoded) when asked to;
* with `max_side`, an image whose longer side is over it is resized (aspect kept,
  after EXIF orientation) and re-encoded in its own format (see `resize_pixels`).

Each rejection raises `ItemSkipped` with a stable reason code.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from cocoprep.errors import ItemSkipped, UsageError
from cocoprep.records import EncodedImage

# Reason codes (counted in the manifest, written to skipped.jsonl).
UNSAFE_PATH = "unsafe_path"
MISSING_FILE = "missing_file"
UNREADABLE_FILE = "unreadable_file"
CORRUPT_IMAGE = "corrupt_image"
DECOMPRESSION_BOMB = "decompression_bomb"
SIZE_MISMATCH = "size_mismatch"

ENCODINGS = ("jpeg", "png")
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 6

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING = {5, 6, 7, 8}  # orientations that swap width and height

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def resolve_image_path(root: str | Path, file_name: str, *, root_real: str | None = None) -> Path:
    """The path of `file_name` inside `root`, refusing anything that escapes it.

    Nothing is opened: the check uses the name and `realpath` only. `root_real`
    (`os.path.realpath(root)`, when the caller already has it) saves looking up every
    component of the root again for each file.
    """
    if not isinstance(file_name, str) or not file_name or "\x00" in file_name:
        raise ItemSkipped(UNSAFE_PATH, f"file name {file_name!r} is not a usable relative path")
    try:
        os.fsencode(file_name)
    except UnicodeEncodeError:  # lone surrogates: no file on disk can have this name
        raise ItemSkipped(UNSAFE_PATH, f"file name {file_name!r} is not a usable relative "
                          "path (not valid Unicode)") from None
    if os.path.isabs(file_name) or file_name.startswith(("/", "\\")):
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} is an absolute path")
    if root_real is None:
        root_real = os.path.realpath(root)
    joined = os.path.normpath(os.path.join(root_real, file_name))
    if os.path.commonpath([root_real, joined]) != root_real:
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} points outside {root}")
    # The root is already resolved: only the components below it can be links.
    real = joined
    current = root_real
    for part in os.path.relpath(joined, root_real).split(os.sep):
        current = os.path.join(current, part)
        if os.path.islink(current):
            real = os.path.realpath(joined)
            break
    if os.path.commonpath([root_real, real]) != root_real:
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} is a link to {real}, outside {root}")
    return Path(joined)


def read_bytes(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ItemSkipped(MISSING_FILE, f"{path} does not exist") from None
    except IsADirectoryError:
        raise ItemSkipped(UNREADABLE_FILE, f"{path} is a directory") from None
    except OSError as e:
        raise ItemSkipped(UNREADABLE_FILE, f"{path}: {e.strerror or e}") from None


def _png_is_plain(data: bytes) -> bool:
    """8-bit grayscale or RGB PNG (IHDR bit depth 8, colour type 0 or 2)."""
    return len(data) > 26 and data[24] == 8 and data[25] in (0, 2)


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise ItemSkipped(DECOMPRESSION_BOMB, str(e)) from None
        except Image.UnidentifiedImageError:  # its message holds the buffer's address
            raise ItemSkipped(CORRUPT_IMAGE, "not a readable image (no known image format "
                              "recognised)") from None
        except Exception as e:  # Pillow raises many types for unknown/garbled headers
            raise ItemSkipped(CORRUPT_IMAGE, f"not a readable image ({e})") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > limit:
        raise ItemSkipped(
            DECOMPRESSION_BOMB,
            f"{im.width}x{im.height} = {im.width * im.height} pixels is over Pillow's "
            f"limit of {limit}",
        )
    return im


def _decode_fully(im: Image.Image, *, fast_jpeg: bool) -> None:
    """Decode every byte of the stream. For a pass-through JPEG, libjpeg's DCT
    scaling still entropy-decodes the whole stream (so truncation and bad Huffman
    data are caught) while skipping most of the inverse DCT work."""
    if fast_jpeg and im.format == "JPEG":
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as e:
        raise ItemSkipped(CORRUPT_IMAGE, f"image data does not decode ({e})") from None


def _verify_png(data: bytes) -> None:
    """Check every chunk's CRC up to IEND. Pillow's decoder stops once it has the
    pixels without either check; libpng (`tf.io.decode_png`) rejects both, so such a
    file would otherwise only fail at training time."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.open(io.BytesIO(data)).verify()
    except Exception as e:
        raise ItemSkipped(CORRUPT_IMAGE, f"PNG chunks do not check out ({e})") from None


def _jpeg_has_end(data: bytes) -> bool:
    """True when an EOI marker follows the first scan of the image.

    When damaged data happens to decode as valid codes to the last pixel (a tail of
    zeros, as an interrupted copy leaves), Pillow is done; libjpeg in
    `tf.io.decode_jpeg` still reads on to EOI and fails. The marker segments before the
    scan are walked (an EXIF thumbnail inside APP1 has its own scan and EOI); inside
    entropy-coded data FF is always followed by 00 or a restart marker, so FF D9 there
    is the end of the image.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:  # start of scan
            # rfind: the marker is normally the last two bytes, so this is O(1).
            return data.rfind(b"\xff\xd9", pos + 2) >= 0
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(im)
        if im.mode == "F":
            arr = np.clip(arr, 0, 1) * 255 if arr.max() <= 1.0 else np.clip(arr, 0, 255)
        elif arr.max() > 255:
            arr = arr >> 8  # 16-bit data: keep the high byte
        return Image.fromarray(arr.astype("uint8"), "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Alpha is composited onto white, which is what viewers show for transparent
        # backgrounds; dropping alpha would reveal whatever colour hides beneath it.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _encode(im: Image.Image, encoding: str, jpeg_quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    if encoding == "png":
        im.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        im.save(buf, format="JPEG", quality=jpeg_quality)
    return buf.getvalue()


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block must not reject a good image
        return 1


# ---------------------------------------------------------------- resize (--max-side)

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


def check_resize_options(max_side: int | None, jpeg_quality: int) -> None:
    """`--max-side` (None or an integer >= 1) and `--jpeg-quality` (1..100)."""
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int)
                                 or max_side < 1):
        raise UsageError("--max-side", "an integer >= 1 (pixels)", max_side)
    if (isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int)
            or not 1 <= jpeg_quality <= 100):
        raise UsageError("--jpeg-quality", "an integer from 1 to 100", jpeg_quality)


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


def prepare_image(
    data: bytes,
    *,
    encode: str = "jpeg",
    orientation: str = "ignore",
    expected_size: tuple[int, int] | None = None,
    fast_verify: bool = True,
    max_side: int | None = None,
    jpeg_quality: int = JPEG_QUALITY,
) -> EncodedImage:
    """Check `data` and return the bytes to store.

    Args:
        data: the file's bytes.
        encode: `jpeg` or `png`, used only when the image must be converted.
        orientation: `ignore` keeps stored pixels; `always` applies a non-trivial EXIF
            orientation (classification: pixels should display upright); `mismatch`
            applies it only when it explains a difference from `expected_size`.
        expected_size: (width, height) the annotations were made against; a size that
            differs (and no EXIF orientation explains it) is rejected.
        fast_verify: decode pass-through JPEGs with DCT scaling (see `_decode_fully`).
        max_side: resize (after EXIF orientation) an image whose longer side is over
            this, and store it in its own format (converted ones: `encode`); smaller
            images are untouched. The result records the size before the resize.
        jpeg_quality: quality of every JPEG this encodes (converted, rotated, resized).

    Raises:
        ItemSkipped: with reason `corrupt_image`, `decompression_bomb` or `size_mismatch`.
    """
    im = _open(data)
    fmt = im.format
    if fmt == "MPO":
        # A multi-picture JPEG (camera, Ultra HDR gain map): its first image is an
        # ordinary JPEG stream, which is what every JPEG decoder reads.
        fmt = "JPEG"
    plain = (fmt == "JPEG" and im.mode in ("L", "RGB")) or (
        fmt == "PNG" and im.mode in ("L", "RGB") and _png_is_plain(data)
    )
    orient = _orientation(im) if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else 1
    width, height = im.size
    rotate = False
    if orient != 1 and orientation == "always":
        rotate = True
    if expected_size is not None and (width, height) != tuple(expected_size):
        explained = (
            orientation == "mismatch" and orient in _TRANSPOSING
            and (height, width) == tuple(expected_size)
        )
        if not explained:
            raise ItemSkipped(
                SIZE_MISMATCH,
                f"stored image is {width}x{height}, annotations say "
                f"{expected_size[0]}x{expected_size[1]}",
            )
        rotate = True
    upright = (height, width) if rotate and orient in _TRANSPOSING else (width, height)
    resize = fit_within(*upright, max_side)
    scaled_check = fast_verify and plain and not rotate and resize is None
    if resize is not None and fast_verify:
        # One decode is both the check (any DCT scale decodes every byte) and the
        # pixels to resize, at the smallest scale that keeps the quality.
        draft_for_resize(im, resize)
    _decode_fully(im, fast_jpeg=scaled_check)
    if fmt == "PNG":
        _verify_png(data)
    elif fmt == "JPEG" and not _jpeg_has_end(data):
        raise ItemSkipped(CORRUPT_IMAGE, "JPEG data has no end of image marker after its "
                          "scan (truncated or overwritten)")
    if plain and not rotate and resize is None:  # pass through
        return EncodedImage(
            data=data, format=fmt.lower(), width=width, height=height,
            sha256=hashlib.sha256(data).hexdigest(),
        )
    # Past this point the decode above was full size, or scaled for the resize only.
    if rotate:
        im = ImageOps.exif_transpose(im)
    out_format = encode
    if plain and (rotate or resize is not None):
        out_format = fmt.lower()  # re-encode in the original format
    converted = None if plain else f"{im.mode.lower()} {fmt.lower() if fmt else 'image'}"
    rgb = im if (plain and im.mode in ("L", "RGB")) else _to_rgb(im)
    if converted is None and rgb.mode not in ("L", "RGB"):
        rgb = _to_rgb(rgb)
    if resize is not None:
        rgb = resize_pixels(rgb, resize)
    encoded = _encode(rgb, out_format, jpeg_quality)
    return EncodedImage(
        data=encoded, format=out_format, width=rgb.width, height=rgb.height,
        sha256=hashlib.sha256(encoded).hexdigest(), converted_from=converted,
        orientation_applied=rotate,
        original_width=resize.original_width if resize else None,
        original_height=resize.original_height if resize else None,
    )


class ImageLoader:
    """Reads and prepares images under one root (path safety first)."""

    def __init__(self, root: str | Path, **prepare_options):
        self.root = Path(root)
        self.options = prepare_options
        self._root_real: str | None = None

    def load(self, file_name: str, *, expected_size: tuple[int, int] | None = None) -> EncodedImage:
        if self._root_real is None:
            self._root_real = os.path.realpath(self.root)
        path = resolve_image_path(self.root, file_name, root_real=self._root_real)
        return prepare_image(read_bytes(path), expected_size=expected_size, **self.options)
