import hashlib
import io
import os

import pytest
from PIL import Image

from cocoprep import images
from cocoprep.errors import ItemSkipped
from conftest import image_bytes


def _reason(fn, *args, **kwargs) -> str:
    with pytest.raises(ItemSkipped) as info:
        fn(*args, **kwargs)
    return info.value.reason


@pytest.mark.parametrize("fmt,mode", [("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L")])
def test_plain_images_pass_through_byte_for_byte(fmt, mode):
    data = image_bytes(40, 30, fmt=fmt, mode=mode)
    out = images.prepare_image(data)
    assert out.data == data
    assert out.format == fmt.lower()
    assert (out.width, out.height) == (40, 30)
    assert out.sha256 == hashlib.sha256(data).hexdigest()
    assert out.converted_from is None


@pytest.mark.parametrize("fmt,mode", [
    ("JPEG", "CMYK"), ("PNG", "P"), ("PNG", "RGBA"), ("PNG", "LA"), ("BMP", "RGB"),
    ("GIF", "P"), ("WEBP", "RGB"), ("TIFF", "RGB"),
])
def test_other_images_are_converted_and_format_is_truthful(fmt, mode):
    data = image_bytes(40, 30, fmt=fmt, mode=mode)
    out = images.prepare_image(data)
    assert out.converted_from is not None
    assert out.format == "jpeg" and out.data[:2] == b"\xff\xd8"
    decoded = Image.open(io.BytesIO(out.data))
    assert decoded.mode == "RGB" and decoded.size == (40, 30)
    png = images.prepare_image(data, encode="png")
    assert png.format == "png" and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_sixteen_bit_png_is_scaled_not_clipped():
    im = Image.new("I;16", (8, 4), 40000)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    out = images.prepare_image(buf.getvalue(), encode="png")
    pixel = Image.open(io.BytesIO(out.data)).getpixel((0, 0))
    assert out.converted_from is not None
    assert pixel == (40000 >> 8,) * 3


def test_alpha_is_composited_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    out = images.prepare_image(buf.getvalue(), encode="png")
    assert Image.open(io.BytesIO(out.data)).getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize("cut", [0.5, 0.95])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images_are_rejected(fmt, cut):
    data = image_bytes(64, 48, fmt=fmt)
    assert _reason(images.prepare_image, data[: int(len(data) * cut)]) == images.CORRUPT_IMAGE


def test_jpeg_missing_only_its_end_marker_is_rejected():
    data = image_bytes(64, 48)
    assert _reason(images.prepare_image, data[:-2]) == images.CORRUPT_IMAGE


def test_garbage_is_rejected():
    assert _reason(images.prepare_image, b"not an image at all") == images.CORRUPT_IMAGE


def test_decompression_bomb_is_rejected(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert _reason(images.prepare_image, image_bytes(20, 20)) == images.DECOMPRESSION_BOMB


def _with_orientation(width, height, orientation) -> bytes:
    im = Image.new("RGB", (width, height), (10, 200, 30))
    im.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    return buf.getvalue()


def test_size_mismatch_explained_by_exif_is_fixed():
    data = _with_orientation(40, 20, 6)
    out = images.prepare_image(data, orientation="mismatch", expected_size=(20, 40))
    assert (out.width, out.height) == (20, 40) and out.orientation_applied
    assert Image.open(io.BytesIO(out.data)).size == (20, 40)


def test_size_mismatch_without_explanation_is_rejected():
    data = image_bytes(40, 20)
    assert _reason(images.prepare_image, data, orientation="mismatch",
                   expected_size=(20, 40)) == images.SIZE_MISMATCH


def test_matching_size_keeps_stored_pixels_even_with_exif():
    data = _with_orientation(40, 20, 6)
    out = images.prepare_image(data, orientation="mismatch", expected_size=(40, 20))
    assert out.data == data


def test_orientation_always_makes_pixels_upright():
    data = _with_orientation(40, 20, 6)
    out = images.prepare_image(data, orientation="always")
    assert (out.width, out.height) == (20, 40) and out.format == "jpeg"


@pytest.mark.parametrize("name", ["../outside.jpg", "a/../../outside.jpg", "/etc/passwd", "",
                                  "../imgs2/x.jpg", "../imgs-old/x.jpg"])
def test_escaping_names_are_rejected_without_opening(tmp_path, name):
    root = tmp_path / "imgs"
    root.mkdir()
    assert _reason(images.resolve_image_path, root, name) == images.UNSAFE_PATH


def test_symlink_outside_is_rejected(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(image_bytes())
    os.symlink(secret, root / "link.jpg")
    assert _reason(images.resolve_image_path, root, "link.jpg") == images.UNSAFE_PATH


def test_symlink_into_a_sibling_with_the_same_prefix_is_rejected(tmp_path):
    """`imgs2` shares its first characters with `imgs` but is not inside it."""
    root, sibling = tmp_path / "imgs", tmp_path / "imgs2"
    root.mkdir()
    sibling.mkdir()
    (sibling / "x.jpg").write_bytes(image_bytes())
    os.symlink(sibling / "x.jpg", root / "link.jpg")
    os.symlink(sibling, root / "dir")
    assert _reason(images.resolve_image_path, root, "link.jpg") == images.UNSAFE_PATH
    assert _reason(images.resolve_image_path, root, "dir/x.jpg") == images.UNSAFE_PATH


def test_symlink_inside_is_fine(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.jpg").write_bytes(image_bytes())
    os.symlink(root / "sub" / "a.jpg", root / "b.jpg")
    assert images.resolve_image_path(root, "b.jpg") == root / "b.jpg"


def test_loader_reports_missing_files(tmp_path):
    (tmp_path / "a.jpg").write_bytes(image_bytes(16, 16))
    loader = images.ImageLoader(tmp_path)
    assert loader.load("a.jpg").width == 16
    assert _reason(loader.load, "missing.jpg") == images.MISSING_FILE
    (tmp_path / "dir.jpg").mkdir()
    assert _reason(loader.load, "dir.jpg") == images.UNREADABLE_FILE


# ------------------------------------------------------------------ review: MPO and odd names

def _mpo(width, height, orientation=None) -> bytes:
    """A multi-picture JPEG (camera / Ultra HDR files): a JPEG with a second image after it."""
    im = Image.frombytes("RGB", (width, height), bytes(range(256)) * (width * height * 3 // 256 + 1))
    kwargs = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    buf = io.BytesIO()
    im.save(buf, "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))], **kwargs)
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    return data


def test_mpo_is_a_jpeg_that_passes_through():
    data = _mpo(40, 30)
    out = images.prepare_image(data, expected_size=(40, 30))
    assert out.data == data and out.format == "jpeg" and out.converted_from is None


def test_mpo_exif_orientation_is_applied():
    data = _mpo(40, 20, orientation=6)
    fixed = images.prepare_image(data, orientation="mismatch", expected_size=(20, 40))
    assert (fixed.width, fixed.height) == (20, 40) and fixed.orientation_applied
    assert fixed.format == "jpeg"
    upright = images.prepare_image(data, orientation="always")
    assert (upright.width, upright.height) == (20, 40) and upright.orientation_applied
    assert Image.open(io.BytesIO(upright.data)).size == (20, 40)


@pytest.mark.parametrize("name", ["a\ud800.jpg", "\udcff\ud800"])
def test_unencodable_names_are_unsafe_paths_not_crashes(tmp_path, name):
    loader = images.ImageLoader(tmp_path)
    with pytest.raises(ItemSkipped) as info:
        loader.load(name)
    assert info.value.reason == images.UNSAFE_PATH


def _png_damaged(kind: str, mode: str = "RGB") -> bytes:
    data = image_bytes(64, 48, fmt="PNG", mode=mode)
    if kind == "no_iend":  # libpng (tf.io.decode_png) rejects a PNG without its end chunk
        assert data.endswith(b"IEND\xaeB`\x82")
        return data[:-12]
    bad = bytearray(data)  # one flipped byte inside IDAT: its CRC no longer matches
    bad[data.find(b"IDAT") + 20] ^= 0xFF
    return bytes(bad)


@pytest.mark.parametrize("mode", ["RGB", "P"])  # passed through, or converted
@pytest.mark.parametrize("kind", ["no_iend", "bad_idat_crc"])
def test_png_with_bad_chunks_is_rejected_before_tensorflow_sees_it(kind, mode):
    data = _png_damaged(kind, mode)
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(data)
    assert info.value.reason == images.CORRUPT_IMAGE
    assert "PNG" in info.value.detail


def _jpeg_zero_tail(frac: float) -> bytes:
    """A baseline JPEG whose end was never written: zeros from `frac` of its length on
    (an interrupted copy into a preallocated file). Pillow decodes it; tf.io.decode_jpeg
    fails on it ("Input file read error")."""
    data = image_bytes(160, 120)
    cut = int(len(data) * frac)
    return data[:cut] + bytes(len(data) - cut)


@pytest.mark.parametrize("frac", [0.3, 0.6, 0.9])
def test_jpeg_with_a_zero_filled_tail_is_rejected(frac):
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(_jpeg_zero_tail(frac))
    assert info.value.reason == images.CORRUPT_IMAGE
    assert "end of image" in info.value.detail


def test_jpeg_with_data_after_its_end_and_an_exif_thumbnail_still_passes():
    thumb = image_bytes(16, 12)  # a thumbnail holds its own SOS and EOI markers
    exif = Image.Exif()
    exif[0x010F] = "camera"
    im = Image.open(io.BytesIO(image_bytes(64, 48)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes() + thumb)
    data = buf.getvalue() + b"trailer data"
    out = images.prepare_image(data)
    assert out.data == data and out.converted_from is None
    # ... but the same file cut inside its main image is caught, thumbnail or not
    main_sos = data.rfind(b"\xff\xda")
    cut = data[:main_sos + 200]
    assert _reason(images.prepare_image, cut + bytes(len(data) - len(cut))) == \
        images.CORRUPT_IMAGE


def test_tensorflow_agrees_about_the_zero_filled_jpeg():
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(_jpeg_zero_tail(0.6))
    tf.io.decode_jpeg(image_bytes(160, 120) + b"trailer data")  # data after EOI is fine


def test_jpeg_with_stray_bytes_before_a_scan_passes_as_libjpeg_reads_it():
    """Without its first SOS header a progressive JPEG still decodes in libjpeg (it
    skips the orphaned scan data as stray bytes, with a warning) and in TensorFlow."""
    import tensorflow as tf

    data = image_bytes(64, 48, progressive=True)
    sos = data.find(b"\xff\xda")
    damaged = data[:sos] + data[sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"):]
    assert tf.io.decode_jpeg(damaged).shape == (48, 64, 3)
    out = images.prepare_image(damaged, expected_size=(64, 48))
    assert out.data == damaged


def test_a_broken_exif_block_only_matters_when_the_orientation_does():
    data = image_bytes(40, 30, exif=b"Exif\x00\x00this is not a TIFF header")
    assert images.prepare_image(data, expected_size=(40, 30)).data == data
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(data, orientation="always")
    assert info.value.reason == images.CORRUPT_IMAGE
    assert info.value.detail.startswith("EXIF block does not parse (")


def test_empty_file_is_reported_as_empty(tmp_path):
    """A 0-byte .jpg (an interrupted copy) says so, not Pillow's 'cannot identify'."""
    with pytest.raises(ItemSkipped) as info:
        images.prepare_image(b"")
    assert (info.value.reason, info.value.detail) == ("corrupt_image", "an empty file (0 bytes)")
    with pytest.raises(ItemSkipped) as info:
        images.check_image(b"")
    assert info.value.detail == "an empty file (0 bytes)"


def test_empty_jpg_in_a_conversion_is_reported_as_empty(tmp_path):
    import json

    from conftest import coco_dict, run_cli, write_image, write_json

    src = tmp_path / "src"
    write_json(src / "annotations" / "instances_train.json",
               coco_dict([(1, "a.jpg", 32, 24), (2, "b.jpg", 32, 24), (3, "empty.jpg", 32, 24)],
                         []))
    write_image(src / "train" / "a.jpg")
    write_image(src / "train" / "b.jpg")
    (src / "train" / "empty.jpg").write_bytes(b"")
    code, text = run_cli("convert", str(src), "-o", str(tmp_path / "out"), "--workers", "1")
    assert code == 0, text
    [line] = (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert (record["reason"], record["detail"]) == ("corrupt_image", "an empty file (0 bytes)")
