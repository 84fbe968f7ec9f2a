"""`--max-side`: images resized at conversion (images.py resize step, masks at the stored
size, original-size features), for `convert`, `split` and the Python API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pycocotools import mask as mask_utils

from cocoprep import schema
from cocoprep.cli import cli
from cocoprep.convert import convert_coco
from cocoprep.errors import UsageError
from cocoprep.images import Resize, fit_within, prepare_image
from cocoprep.manifest import Manifest
from cocoprep.masks import to_rle
from cocoprep.split import split_folder
from conftest import FIXTURES, coco_dict, parse_record, write_json


def smooth(width: int, height: int, *, seed: int = 0, fmt: str = "JPEG", mode: str = "RGB",
           exif_orientation: int | None = None) -> bytes:
    """A gradient with a few blobs (resizes like a photo, unlike noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    arr = np.stack([255 * xx / width, 255 * yy / height,
                    128 + 100 * np.sin(xx / 7.0 + rng.uniform(0, 6))], axis=-1)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, width / 4)
        arr[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").convert(mode)
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mse = ((x - y) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


# ------------------------------------------------------------------ the resize step


@pytest.mark.parametrize("size, max_side, expected", [
    ((4000, 3000), 1024, (1024, 768)),
    ((3000, 4000), 1024, (768, 1024)),
    ((1025, 1024), 1024, (1024, 1023)),
    ((1000, 3), 10, (10, 1)),  # 0.03 px rounds up to the 1-pixel minimum
    ((30, 25), 12, (12, 10)),
    ((31, 25), 12, (12, 10)),  # 9.68 rounds to 10
    ((33, 25), 12, (12, 9)),   # 9.09 rounds to 9
])
def test_fit_within_keeps_the_aspect_and_rounds_half_up(size, max_side, expected):
    r = fit_within(*size, max_side)
    assert r == Resize(size[0], size[1], *expected)


@pytest.mark.parametrize("size, max_side", [((1024, 768), 1024), ((10, 10), 10), ((5, 9), None)])
def test_fit_within_leaves_small_images_alone(size, max_side):
    assert fit_within(*size, max_side) is None


@pytest.mark.parametrize("fmt, mode", [("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"),
                                       ("PNG", "L")])
def test_big_images_are_resized_in_their_own_format(fmt, mode):
    data = smooth(400, 300, fmt=fmt, mode=mode)
    out = prepare_image(data, max_side=100)
    im = decode(out.data)
    assert (out.width, out.height) == im.size == (100, 75)
    assert out.format == fmt.lower() and im.format == fmt and im.mode == mode
    assert (out.original_width, out.original_height) == (400, 300) and out.resized
    assert (out.source_width, out.source_height) == (400, 300)
    assert out.converted_from is None
    # a faithful reduction of the original
    reference = decode(data).resize((100, 75), Image.LANCZOS)
    assert psnr(im, reference) > 30


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("size", [(100, 75), (60, 100), (32, 24)])
def test_images_within_max_side_pass_through_byte_for_byte(fmt, size):
    data = smooth(*size, fmt=fmt)
    out = prepare_image(data, max_side=100)
    assert out.data == data and out.original_width is None and not out.resized
    assert (out.source_width, out.source_height) == size


def test_exif_orientation_is_applied_before_the_resize():
    data = smooth(400, 200, exif_orientation=6)  # stored landscape, shown portrait
    out = prepare_image(data, orientation="always", max_side=100)
    assert (out.width, out.height) == (50, 100)
    assert (out.original_width, out.original_height) == (200, 400)
    assert out.orientation_applied
    upright = decode(data).transpose(Image.Transpose.ROTATE_270).resize((50, 100), Image.LANCZOS)
    assert psnr(decode(out.data), upright) > 25  # any other rotation: < 11 dB
    # the annotations' size (JSON) explains the rotation: same result
    again = prepare_image(data, orientation="mismatch", expected_size=(200, 400), max_side=100)
    assert again.data == out.data


def test_converted_images_are_resized_too():
    data = smooth(300, 200, fmt="BMP")
    out = prepare_image(data, max_side=60, encode="png")
    assert (out.format, out.width, out.height) == ("png", 60, 40)
    assert out.converted_from == "rgb bmp" and out.resized


def test_jpeg_draft_decode_keeps_the_quality_of_a_full_decode():
    # 1600x1200 -> 200 px: libjpeg's 1/4 scale (400x300 = 2x the target) is used;
    # fast_verify=False decodes at full size first (no draft)
    data = smooth(1600, 1200, seed=3)
    drafted = prepare_image(data, max_side=200)
    full = prepare_image(data, max_side=200, fast_verify=False)
    assert (drafted.width, drafted.height) == (200, 150) and drafted.data != full.data
    assert psnr(decode(drafted.data), decode(full.data)) > 42
    # a decode at the target scale itself (1/8) would lose more than the margin allows
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (200, 150))
    assert im.size == (200, 150)


def test_resize_is_deterministic_and_jpeg_quality_is_used():
    data = smooth(400, 300, seed=5)
    a = prepare_image(data, max_side=200)
    assert prepare_image(data, max_side=200).data == a.data
    low = prepare_image(data, max_side=200, jpeg_quality=40)
    assert len(low.data) < len(a.data) and (low.width, low.height) == (200, 150)


# ------------------------------------------------------------------ convert

def _coco(root: Path) -> Path:
    """Two images: 400x300 (resized by --max-side 100) and 80x60 (passes through),
    with polygon, RLE and crowd masks, keypoints and a box that needs clipping."""
    (root / "train").mkdir(parents=True)
    (root / "train" / "big.jpg").write_bytes(smooth(400, 300, seed=1))
    (root / "train" / "small.png").write_bytes(smooth(80, 60, seed=2, fmt="PNG"))
    from pycocotools import mask as mask_utils

    blob = np.zeros((300, 400), np.uint8, order="F")
    blob[40:201, 150:333] = 1
    blob[90:120, 200:260] = 0
    rle = mask_utils.encode(np.asfortranarray(blob))
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [13.3, 20.7, 101, 77.5],
         "area": 5000.0, "segmentation": [[13.3, 20.7, 114.3, 30, 90, 98.2, 20, 80]],
         "keypoints": [20, 30, 2, 0, 0, 0, 100.5, 90.25, 1], "num_keypoints": 2},
        {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 1, "bbox": [150, 40, 183, 161],
         "area": float(blob.sum()),
         "segmentation": {"size": [300, 400], "counts": rle["counts"].decode()}},
        {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 0, "bbox": [380, 250, 30, 60],
         "area": 400.0, "segmentation": [[380, 250, 399, 250, 399, 299, 380, 299]]},
        {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 30, 20],
         "area": 600.0, "segmentation": [[5, 5, 35, 5, 35, 25, 5, 25]],
         "keypoints": [6, 7, 2, 30, 20, 2, 0, 0, 0], "num_keypoints": 2},
    ]
    data = coco_dict([(1, "big.jpg", 400, 300), (2, "small.png", 80, 60)], anns)
    data["categories"][0]["keypoints"] = ["a", "b", "c"]
    write_json(root / "annotations" / "instances_train.json", data)
    people = dict(data, annotations=[a for a in anns if "keypoints" in a],
                  categories=data["categories"][:1])
    write_json(root / "annotations" / "person_keypoints_train.json", people)
    return root


def _records(out: Path, task: schema.TaskSchema, split: str) -> list[tuple[dict, bytes]]:
    import tensorflow as tf

    files = [str(p) for p in Manifest.read(out).shard_paths(out, split)]
    return [(parse_record(task, raw), raw.numpy()) for raw in tf.data.TFRecordDataset(files)]


def _on_the_border(reference: np.ndarray) -> np.ndarray:
    """Pixels of a 0/1 mask within one pixel of a change of value (8-neighbourhood)."""
    padded = np.pad(reference, 1, mode="edge")
    h, w = reference.shape
    windows = [padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    return np.max(windows, axis=0) != np.min(windows, axis=0)


def test_convert_with_max_side(tmp_path):
    src = _coco(tmp_path / "src")
    plain = convert_coco(src, tmp_path / "plain", masks=True, workers=1, quiet=True,
                         shuffle=False)
    m = convert_coco(src, tmp_path / "small", masks=True, workers=1, quiet=True, shuffle=False,
                     max_side=100)
    assert m.options["max_side"] == 100 and m.options["jpeg_quality"] == 95
    assert plain.options["max_side"] is None
    assert m.counters["images_resized"] == 1 and "images_resized" not in plain.counters
    before = _records(tmp_path / "plain", schema.DETECTION, "train")
    after = _records(tmp_path / "small", schema.DETECTION, "train")
    big, small = (r for r, _ in after)
    # without --max-side the records carry no original-size keys (bytes as before)
    assert all(b"image/original_height" not in raw for _, raw in before)
    assert all(b"image/original_width" in raw for _, raw in after)
    assert (big["width"], big["height"], big["original_width"], big["original_height"]) == \
        (100, 75, 400, 300)
    assert decode(big["encoded"]).size == (100, 75) and big["format"] == b"jpeg"
    # the small image passes through, byte for byte, and says so
    assert small["encoded"] == (src / "train" / "small.png").read_bytes()
    assert (small["width"], small["original_width"], small["original_height"]) == (80, 80, 60)
    # boxes, keypoints, areas: identical to the unresized conversion
    for (old, _), (new, _) in zip(before, after):
        for name in ("xmin", "ymin", "xmax", "ymax", "area", "keypoint_x", "keypoint_y",
                     "keypoint_visibility", "class_label", "is_crowd"):
            np.testing.assert_array_equal(old[name], new[name], err_msg=name)
    anns = json.loads((src / "annotations" / "instances_train.json").read_text())["annotations"]
    assert big["area"].tolist() == [np.float32(a["area"]) for a in anns[:3]]  # original pixels
    assert big["keypoint_x"][:3].tolist() == [np.float32(20 / 400), 0, np.float32(100.5 / 400)]
    # masks: at the stored size, the full-size pycocotools mask resized by nearest
    # neighbour, give or take the pixels on its border
    for png, a in zip(big["mask"], anns[:3]):
        got = np.asarray(decode(png))
        assert got.shape == (75, 100) and set(np.unique(got)) <= {0, 1}
        full = mask_utils.decode(to_rle(a["segmentation"], 300, 400))  # pycocotools' mask
        ref = np.asarray(Image.fromarray(full).resize((100, 75), Image.NEAREST))
        assert got.sum() > 0
        assert not ((got != ref) & ~_on_the_border(ref)).any(), a["id"]
    assert np.asarray(decode(small["mask"][0])).shape == (60, 80)
    assert verify_ok(tmp_path / "small")


def verify_ok(out: Path) -> bool:
    from cocoprep.verify import verify

    report = verify(str(out), workers=1, quiet=True)
    assert report.ok, [str(p) for p in report.problems]
    return report.ok


def test_convert_resize_is_byte_identical_for_any_worker_count(tmp_path):
    src = _coco(tmp_path / "src")
    (src / "train" / "big2.jpg").write_bytes(smooth(250, 500, seed=7))
    data = json.loads((src / "annotations" / "instances_train.json").read_text())
    data["images"].append({"id": 3, "file_name": "big2.jpg", "width": 250, "height": 500})
    write_json(src / "annotations" / "instances_train.json", data)

    def files(out, workers):
        convert_coco(src, out, masks=True, workers=workers, quiet=True, num_shards=2,
                     max_side=100)
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    one, two, again = files(tmp_path / "a", 1), files(tmp_path / "b", 2), files(tmp_path / "c", 2)
    assert len([n for n in one if ".tfrecord-" in n]) == 2
    assert one == two == again


def test_convert_cli_summary_and_preview(tmp_path):
    out = tmp_path / "x"
    result = CliRunner().invoke(cli, ["convert", str(FIXTURES / "coco"), "-o", str(out),
                                      "--max-side", "100", "--masks", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "images_resized 10" in result.output
    from cocoprep.preview import preview

    written = preview(str(out), n=4, output=str(tmp_path / "p.png"))
    assert decode(Path(written).read_bytes()).size[0] > 0


# ------------------------------------------------------------------ split

def _tree(root: Path) -> Path:
    for c, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            (root / cls / f"{i}.jpg").write_bytes(smooth(120 + 40 * i, 90, seed=10 * c + i))
        (root / cls / "tall.png").write_bytes(smooth(40, 200, seed=c, fmt="PNG"))
    return root


def test_split_with_max_side(tmp_path):
    src = _tree(tmp_path / "src")
    result = CliRunner().invoke(cli, ["split", str(src), "-o", str(tmp_path / "x"),
                                      "--max-side", "160", "--workers", "1"])
    assert result.exit_code == 0, result.output
    # the 200, 240, 280 px wide JPEGs and the 200 px tall PNG, in both classes
    assert "  resized 8 image(s) to at most 160 px on the longer side" in result.output
    m = Manifest.read(tmp_path / "x")
    assert m.counters["images_resized"] == 8 and m.options["max_side"] == 160
    seen = 0
    for split in m.splits:
        for rec, _ in _records(tmp_path / "x", schema.CLASSIFICATION, split):
            name = rec["filename"].decode()
            original = decode((src / name).read_bytes())
            assert (rec["original_width"], rec["original_height"]) == original.size
            stored = decode(rec["encoded"])
            assert stored.size == (rec["width"], rec["height"]) and max(stored.size) <= 160
            assert stored.format == original.format
            if max(original.size) <= 160:
                assert rec["encoded"] == (src / name).read_bytes()
            seen += 1
    assert seen == 12
    assert verify_ok(tmp_path / "x")


def test_split_resize_is_deterministic(tmp_path):
    src = _tree(tmp_path / "src")

    def files(out, workers):
        split_folder(src, out, max_side=100, workers=workers, quiet=True, num_shards=2)
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    assert files(tmp_path / "a", 1) == files(tmp_path / "b", 2)


# ------------------------------------------------------------------ bad values

@pytest.mark.parametrize("command", ["convert", "split"])
@pytest.mark.parametrize("args, message", [
    (["--max-side", "0"], "Error: --max-side: expected an integer >= 1 (pixels), found 0"),
    (["--max-side", "-5"], "Error: --max-side: expected an integer >= 1 (pixels), found -5"),
    (["--max-side", "1.5"], "is not a valid integer"),
    (["--max-side", "big"], "is not a valid integer"),
    (["--jpeg-quality", "0"], "Error: --jpeg-quality: expected an integer from 1 to 100, found 0"),
    (["--jpeg-quality", "101"], "Error: --jpeg-quality: expected an integer from 1 to 100, "
                                "found 101"),
    (["--jpeg-quality", "high"], "is not a valid integer"),
])
def test_bad_resize_options_are_usage_errors(tmp_path, command, args, message):
    src = FIXTURES / ("coco" if command == "convert" else "imgs")
    out = tmp_path / "x"
    result = CliRunner().invoke(cli, [command, str(src), "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize("value", [0, -1, 1.5, "100", True])
def test_bad_max_side_in_the_api(tmp_path, value):
    with pytest.raises(UsageError, match="--max-side"):
        convert_coco(FIXTURES / "coco", tmp_path / "x", max_side=value, quiet=True)
    with pytest.raises(UsageError, match="--max-side"):
        split_folder(FIXTURES / "imgs", tmp_path / "y", max_side=value, quiet=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
