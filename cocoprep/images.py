"""Read, check and (only when needed) transcode one image.

Rules shared by `convert`, `split` and `verify` (one check, `check_image`):

* a file name that escapes the image directory (absolute, `..`, or a symlink that
  resolves outside) is rejected before anything is opened;
* the image must decode completely the way `tf.io.decode_image` decodes it at
  training time: JPEGs through libjpeg (Pillow's) to their end marker, PNGs by
  libpng's rules (`cocoprep.pngcheck`), other formats completely in Pillow. What does
  not is rejected, never re-encoded from a partial decode;
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
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cocoprep import fsio, pngcheck
from cocoprep.errors import (
    CORRUPT_IMAGE, DECOMPRESSION_BOMB, MISSING_FILE, SIZE_MISMATCH, UNREADABLE_FILE, UNSAFE_PATH,
    ItemSkipped, stable_text,
)
from cocoprep.options import JPEG_QUALITY
from cocoprep.records import EncodedImage
from cocoprep.resize import Resize, draft_for_resize, fit_within, resize_pixels

PNG_COMPRESS_LEVEL = 6

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING = {5, 6, 7, 8}  # orientations that swap width and height

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def resolve_image_path(root: str | Path, file_name: str, *, root_real: str | None = None) -> Path:
    """The path of `file_name` inside `root`, refusing anything that escapes it.
    Nothing is opened: the name and `realpath` only. `root_real`, when the caller has
    it, saves resolving the root again for each file."""
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
    if not _inside(joined, root_real):
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} points outside {root}")
    # The root is already resolved: only the components below it can be links.
    real = joined
    current = root_real
    for part in filter(None, joined[len(root_real):].split(os.sep)):
        current = os.path.join(current, part)
        if os.path.islink(current):
            real = os.path.realpath(joined)
            break
    if real is not joined and not _inside(real, root_real):
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} is a link to {real}, outside {root}")
    return Path(joined)


def _inside(path: str, root: str) -> bool:  # "/data2" is not inside "/data"
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


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


@dataclass(frozen=True)
class ImageCheck:
    """What `check_image` found out about an image whose data decodes completely."""

    format: str  # "jpeg", "png", "gif", "bmp", "webp", "tiff", ...
    mode: str  # the pixel layout, as Pillow names it ("RGB", "L", "P", "RGBA", "I;16", ...)
    width: int  # stored pixel size
    height: int
    passthrough: bool  # 8-bit grey or RGB JPEG/PNG: stored byte for byte
    rotate: bool  # the EXIF orientation is to be applied (see `orientation`)
    orientation: int = 1  # EXIF orientation; 1 when absent or not needed
    # What Pillow should decode to convert the image (for a PNG, the file reduced to
    # what libpng reads: see `cocoprep.pngcheck`).
    source: bytes = field(default=b"", repr=False, compare=False)


def error_text(error: BaseException) -> str:
    """A library's error message, fit for a skip reason: the same for the same input,
    wherever and whenever it runs (no object addresses or temp paths), on one line."""
    text = stable_text(str(error) or type(error).__name__)
    text = re.sub(re.escape(tempfile.gettempdir()) + r"[/\\]\S*", "<temp file>", text)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _corrupt(what: str, error: BaseException) -> ItemSkipped:
    return ItemSkipped(CORRUPT_IMAGE, f"{what} ({error_text(error)})")


def _bomb(width: int, height: int) -> ItemSkipped:
    return ItemSkipped(DECOMPRESSION_BOMB, f"{width}x{height} = {width * height} pixels is "
                       f"over Pillow's limit of {Image.MAX_IMAGE_PIXELS}")


def _bomb_check(width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise _bomb(width, height)


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise ItemSkipped(DECOMPRESSION_BOMB, error_text(e)) from None
        except Exception as e:  # Pillow raises many types; 0 bytes: an interrupted copy
            raise (_corrupt("not a readable image", e) if data
                   else ItemSkipped(CORRUPT_IMAGE, "an empty file (0 bytes)")) from None
    _bomb_check(im.width, im.height)
    return im


def _decode_fully(im: Image.Image, *, fast_jpeg: bool) -> None:
    """Decode every byte of the stream. For a pass-through JPEG, libjpeg's DCT
    scaling still entropy-decodes the whole stream (so truncation and bad Huffman
    data are caught) while skipping most of the inverse DCT work."""
    if fast_jpeg and im.format in ("JPEG", "MPO"):
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as e:
        raise _corrupt("image data does not decode", e) from None


def _jpeg_has_end(data: bytes) -> bool:
    """True when an EOI marker follows the first scan of the image.

    When damaged data happens to decode as valid codes to the last pixel (a tail of
    zeros, as an interrupted copy leaves), Pillow is done; libjpeg in
    `tf.io.decode_jpeg` still reads on to EOI and fails. The marker segments before the
    scan are walked (an EXIF thumbnail inside APP1 has its own scan and EOI), skipping
    stray bytes between them as libjpeg does; inside entropy-coded data FF is always
    followed by 00 or a restart marker, so FF D9 there is the end of the image.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:  # stray bytes: libjpeg warns and looks for the next FF
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return False
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:  # start of scan
            # rfind: the marker is normally the last two bytes, so this is O(1).
            return data.rfind(b"\xff\xd9", pos + 2) >= 0
        elif 0xD0 <= marker <= 0xD7 or marker in (0x00, 0x01):  # no length follows
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


# PNG (colour type, bit depth) -> the mode Pillow decodes it to.
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def _orientation_of(exif: Image.Exif | bytes | None) -> int:
    """The EXIF orientation tag (1 when there is none). A block that does not parse
    is a corrupt image: which way is up cannot be known."""
    if exif is None:
        return 1
    try:
        with warnings.catch_warnings():
            # Pillow warns about a truncated IFD and keeps the tags it could read:
            # cameras write such blocks, and the orientation is usually among them.
            warnings.simplefilter("ignore")
            if isinstance(exif, bytes):
                block = Image.Exif()
                block.load(exif)
                exif = block
            return int(exif.get(_EXIF_ORIENTATION, 1) or 1)
    except Exception as e:
        raise _corrupt("EXIF block does not parse", e) from None


def _needs_orientation(orientation: str, size: tuple[int, int],
                       expected_size: tuple[int, int] | None) -> bool:
    if orientation == "always":
        return True
    return (orientation == "mismatch" and expected_size is not None
            and size != tuple(expected_size) and size[::-1] == tuple(expected_size))


def _size_verdict(size: tuple[int, int], orient: int, *, orientation: str,
                  expected_size: tuple[int, int] | None) -> bool:
    """Whether to rotate; raise `size_mismatch` when the stored size is not the
    expected one and no EXIF orientation explains it."""
    rotate = orient != 1 and orientation == "always"
    if expected_size is not None and size != tuple(expected_size):
        if not (orientation == "mismatch" and orient in _TRANSPOSING
                and size[::-1] == tuple(expected_size)):
            raise ItemSkipped(
                SIZE_MISMATCH,
                f"stored image is {size[0]}x{size[1]}, annotations say "
                f"{expected_size[0]}x{expected_size[1]}",
            )
        rotate = True
    return rotate


def check_png_data(data: bytes) -> pngcheck.PngInfo:
    """`check_image`'s PNG check alone, with what it read (the inflated rows: masks
    are read from them without a second decode).

    Raises:
        ItemSkipped: with reason `corrupt_image` or `decompression_bomb`.
    """
    try:
        return pngcheck.check_png(data, max_pixels=Image.MAX_IMAGE_PIXELS)
    except pngcheck.PngTooLarge as e:
        raise _bomb(e.width, e.height) from None
    except pngcheck.PngError as e:
        raise ItemSkipped(CORRUPT_IMAGE, f"PNG data does not decode ({e})") from None


def _check_png(data: bytes, *, orientation: str,
               expected_size: tuple[int, int] | None) -> ImageCheck:
    info = check_png_data(data)
    size = (info.width, info.height)
    orient = 1
    if _needs_orientation(orientation, size, expected_size):
        orient = _orientation_of(info.exif)
    rotate = _size_verdict(size, orient, orientation=orientation, expected_size=expected_size)
    mode = _PNG_MODES[info.colour_type]
    if info.colour_type == 0 and info.bit_depth in (1, 16):
        mode = "1" if info.bit_depth == 1 else "I;16"
    passthrough = info.bit_depth == 8 and info.colour_type in (0, 2)
    return ImageCheck(
        format="png", mode=mode, width=info.width, height=info.height,
        passthrough=passthrough, rotate=rotate, orientation=orient,
        source=data if passthrough and not rotate else info.decodable(),
    )


def _check_with_pillow(data: bytes, *, orientation: str, expected_size: tuple[int, int] | None,
                       fast: bool, max_side: int | None = None
                       ) -> tuple[ImageCheck, Image.Image | None]:
    """JPEG and the formats only Pillow reads; the image comes back decoded unless
    only a DCT-scaled decode was needed. A JPEG to be resized (`max_side`) is decoded
    once, at the DCT scale the resize allows: any scale decodes every byte, so that
    one decode is both the check and the pixels to resize."""
    im = _open(data)
    fmt = "JPEG" if im.format == "MPO" else (im.format or "")
    # A multi-picture JPEG (camera, Ultra HDR gain map): its first image is an
    # ordinary JPEG stream, which is what every JPEG decoder reads.
    passthrough = fmt == "JPEG" and im.mode in ("L", "RGB")
    orient = 1
    if fmt in ("JPEG", "WEBP", "TIFF") and _needs_orientation(orientation, im.size, expected_size):
        orient = _orientation_of(_read_exif(im))
    rotate = _size_verdict(im.size, orient, orientation=orientation, expected_size=expected_size)
    check = ImageCheck(format=fmt.lower(), mode=im.mode, width=im.width, height=im.height,
                       passthrough=passthrough, rotate=rotate, orientation=orient, source=data)
    resize = _resize_of(check, max_side)
    scaled = fast and passthrough and not rotate and resize is None
    if resize is not None and fast:
        draft_for_resize(im, resize)
    _decode_fully(im, fast_jpeg=scaled)  # the size above is the stored one, not the draft's
    if fmt == "JPEG" and not _jpeg_has_end(data):
        raise ItemSkipped(CORRUPT_IMAGE, "JPEG data has no end of image marker after its "
                          "scan (truncated or overwritten)")
    return check, None if scaled else im


def _read_exif(im: Image.Image) -> Image.Exif | bytes:
    """The EXIF block as stored (JPEG APP1, WebP), parsed by `_orientation_of` so that
    its errors surface (`getexif` hides them); TIFF keeps its tags in the IFD itself."""
    raw = im.info.get("exif")
    if isinstance(raw, bytes):
        return raw
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return im.getexif()
    except Exception as e:
        raise _corrupt("EXIF block does not parse", e) from None


def _check(data: bytes, *, orientation: str, expected_size: tuple[int, int] | None,
           fast: bool, max_side: int | None = None) -> tuple[ImageCheck, Image.Image | None]:
    if data.startswith(pngcheck.SIGNATURE):
        return _check_png(data, orientation=orientation, expected_size=expected_size), None
    return _check_with_pillow(data, orientation=orientation, expected_size=expected_size,
                              fast=fast, max_side=max_side)


def check_image(
    data: bytes,
    *,
    orientation: str = "ignore",
    expected_size: tuple[int, int] | None = None,
    fast: bool = True,
) -> ImageCheck:
    """Whether `data` decodes completely, the way `tf.io.decode_image` decodes it.

    The one check behind `convert`, `split` and `verify`. PNGs are checked against
    libpng's rules without Pillow (`cocoprep.pngcheck`); JPEGs are decoded by Pillow's
    libjpeg (DCT-scaled when `fast` and the bytes pass through) and must reach their
    end of image marker; other formats must decode completely in Pillow.

    Args:
        orientation: `ignore`, `always` or `mismatch`; see `prepare_image`. The EXIF
            block is read only when it matters, and one that does not parse is then a
            `corrupt_image` skip.
        expected_size: (width, height) the annotations were made against.

    Raises:
        ItemSkipped: with reason `corrupt_image`, `decompression_bomb` or `size_mismatch`.
    """
    return _check(data, orientation=orientation, expected_size=expected_size, fast=fast)[0]


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


def _decoded(check: ImageCheck, resize: "Resize | None" = None) -> Image.Image:
    """Pillow's decode of what the check accepted (for converting): full size, or for
    a JPEG to be resized at the DCT scale `draft_for_resize` allows."""
    im = _open(check.source)
    if resize is not None:
        draft_for_resize(im, resize)
    _decode_fully(im, fast_jpeg=False)
    return im


def _upright_size(check: ImageCheck) -> tuple[int, int]:
    """(width, height) once the EXIF orientation the check decided on is applied."""
    if check.rotate and check.orientation in _TRANSPOSING:
        return check.height, check.width
    return check.width, check.height


def _resize_of(check: ImageCheck, max_side: int | None) -> "Resize | None":
    return fit_within(*_upright_size(check), max_side)


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
        fast_verify: decode pass-through JPEGs with DCT scaling (see `_decode_fully`),
            and JPEGs to be resized at the DCT scale the resize allows; False decodes
            every image at full size.
        max_side: resize (after EXIF orientation) an image whose longer side is over
            this, and store it in its own format (converted ones: `encode`); smaller
            images are untouched. The result records the size before the resize.
        jpeg_quality: quality of every JPEG this encodes (converted, rotated, resized).

    Raises:
        ItemSkipped: with reason `corrupt_image`, `decompression_bomb` or `size_mismatch`.
    """
    check, im = _check(data, orientation=orientation, expected_size=expected_size,
                       fast=fast_verify, max_side=max_side)
    resize = _resize_of(check, max_side)
    if check.passthrough and not check.rotate and resize is None:
        return EncodedImage(
            data=data, format=check.format, width=check.width, height=check.height,
            sha256=hashlib.sha256(data).hexdigest(),
        )
    if im is None:
        im = _decoded(check, resize if fast_verify else None)
    if check.rotate:
        im = _transposed(im, check.orientation)
    out_format = encode
    if check.passthrough:
        out_format = check.format  # rotated or resized: re-encode in the original format
    converted = None if check.passthrough else f"{check.mode.lower()} {check.format or 'image'}"
    rgb = im if (check.passthrough and im.mode in ("L", "RGB")) else _to_rgb(im)
    if converted is None and rgb.mode not in ("L", "RGB"):
        rgb = _to_rgb(rgb)
    if resize is not None:
        rgb = resize_pixels(rgb, resize)
    encoded = _encode(rgb, out_format, jpeg_quality)
    return EncodedImage(
        data=encoded, format=out_format, width=rgb.width, height=rgb.height,
        sha256=hashlib.sha256(encoded).hexdigest(), converted_from=converted,
        orientation_applied=check.rotate,
        original_width=resize.original_width if resize else None,
        original_height=resize.original_height if resize else None,
    )


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _transposed(im: Image.Image, orientation: int) -> Image.Image:
    """The pixels turned upright for an EXIF orientation the check already read."""
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


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


class RemoteImageLoader:
    """`ImageLoader` for a remote root (bytes read through Beam's FileSystems)."""

    def __init__(self, root: str, **prepare_options):
        self.root = root
        self.options = prepare_options

    def load(self, file_name: str, *, expected_size: tuple[int, int] | None = None) -> EncodedImage:
        path = fsio.remote_image_path(self.root, file_name)
        return prepare_image(fsio.read_image_bytes(path), expected_size=expected_size,
                             **self.options)


def loader_for(root: str, **prepare_options) -> "ImageLoader | RemoteImageLoader":
    """The loader for images under `root`, local or `scheme://`."""
    cls = RemoteImageLoader if fsio.is_remote(root) else ImageLoader
    return cls(root, **prepare_options)
