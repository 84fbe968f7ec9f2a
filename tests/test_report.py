"""cocoprep report: the page, opened in a real browser (headless Chromium), shows
the numbers of manifest.json and `inspect`, loads nothing from outside the file,
and renders every plot; bad inputs give one line or a page that says what is wrong."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import load_page, start_browser
from cocoprep import schema
from cocoprep.framing import RecordWriter
from cocoprep.inspection import inspect
from cocoprep.records import EncodedImage, SegmentationExample
from cocoprep.report import class_flags, report
from conftest import FIXTURES, run_cli
from verify_builders import (
    DET_TRAIN, DetItem, convert_fixture_coco, encoded, split_fixture_imgs, write_detection,
)


@pytest.fixture(scope="module")
def browser():
    driver = start_browser()
    yield driver
    driver.quit()


def open_report(browser, out: Path, tmp_path: Path, *args: str, code: int = 0):
    """`cocoprep report OUT` (exit `code`), the page loaded, and the checks every
    page must pass: no console message, no request leaving the file, every image
    and plot with a size."""
    exit_code, text = run_cli("report", str(out), "--quiet", *args)
    assert exit_code == code, text
    page = load_page(browser, out / "report.html", tmp_path / "report.png")
    assert page.console == [], page.console
    assert all(r.startswith("data:") for r in page.requests), page.requests
    assert page.images and all(w > 0 and h > 0 for _, w, h in page.images), page.images
    assert page.screenshot.stat().st_size > 10_000
    return page, text


def convert(src: Path, out: Path, *extra: str) -> Path:
    code, text = run_cli("convert", str(src), "-o", str(out), "--quiet", "--workers", "1", *extra)
    assert code == 0, text
    return out


def assert_numbers_match(page, out: Path) -> None:
    """Every split's counts on the page are manifest.json's and `inspect`'s."""
    manifest = json.loads((out / "manifest.json").read_text())
    stats = inspect(out)
    unit = "objects" if stats["task"] == "detection" else "images"
    for split, info in manifest["splits"].items():
        s = stats["splits"][split]
        assert page.number(f"{split}.examples") == info["num_examples"] == s["examples"]
        assert page.number(f"{split}.shards") == len(info["shards"])
        assert page.number(f"{split}.bytes") == sum(x["size_bytes"] for x in info["shards"])
        assert page.number(f"{split}.skipped") == sum(info["skipped"].values())
        if stats["task"] == "detection":
            assert page.number(f"{split}.objects") == info["num_objects"] == s["objects"]
            assert page.number(f"{split}.crowd") == s["crowd"]
            assert page.number(f"{split}.without_objects") == s["images_without_objects"]
        for name, count in s["classes"].items():
            assert page.number(f"{split}.class.{name}.{unit}") == count
            assert info["class_counts"].get(name, 0) == count


def test_coco_with_masks(browser, tmp_path):
    out = convert_fixture_coco(tmp_path / "out", "--masks")
    page, text = open_report(browser, out, tmp_path)
    assert text.strip() == f"Wrote {out / 'report.html'}"
    assert_numbers_match(page, out)
    # the fixture's boxes: 19 of 20 objects not crowd, all medium-sized (fixtures/README.md)
    small, medium, large = (sum(page.number(f"{s}.{k}") for s in ("train", "val"))
                            for k in ("small", "medium", "large"))
    assert small + medium + large == 20 - 1
    assert page.number("leaks") == 0
    assert "Nothing was skipped." in page.text
    alts = [alt for alt, _, _ in page.images]
    for plot in ("objects and images per class and split", "box sizes", "box centres",
                 "image sizes", "examples with their labels drawn"):
        assert plot in alts
    assert "tfds.builder_from_directory" in page.text and "cocoprep.load(" in page.text
    html = (out / "report.html").read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert (out / "report.html").stat().st_size < 1_000_000
    convert_fixture_coco(out)  # a new conversion of OUT removes the page of the old one
    assert not (out / "report.html").exists()


def test_voc_counts_difficult_apart(browser, tmp_path):
    out = convert(FIXTURES / "voc", tmp_path / "out")
    page, _ = open_report(browser, out, tmp_path)
    assert_numbers_match(page, out)
    from conftest import raw_records

    difficult = 0
    for shard in sorted(out.glob("train.tfrecord-*")):
        for rec in raw_records(shard):
            ex = __import__("tensorflow").train.Example.FromString(rec)
            key = schema.DETECTION.feature("difficult").key
            difficult += sum(ex.features.feature[key].int64_list.value)
    assert difficult > 0
    assert page.number("train.difficult") == difficult


def test_yolo_skipped_items_with_thumbnails(browser, tmp_path):
    out = convert(FIXTURES / "yolo", tmp_path / "out")
    page, _ = open_report(browser, out, tmp_path)
    assert_numbers_match(page, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for split, info in manifest["splits"].items():
        for reason, count in info["skipped"].items():
            assert page.number(f"{split}.skipped.{reason}") == count
    assert page.number("train.skipped.unknown_category") == 1
    assert "street_002.jpg" in page.text  # the item, with its thumbnail
    assert any(alt == "street_002.jpg" for alt, _, _ in page.images)


def test_classification_split(browser, tmp_path):
    out = split_fixture_imgs(tmp_path / "out")
    page, _ = open_report(browser, out, tmp_path)
    assert_numbers_match(page, out)
    assert "Boxes" not in page.text and "Segmentation" not in page.text  # not this task's
    assert "examples with their labels drawn" in [alt for alt, _, _ in page.images]


def test_the_check_catches_a_page_that_reaches_out(browser, tmp_path):
    """The browser checks can fail: an outside image is blocked and reported."""
    from cocoprep.report.page import CSP

    page = tmp_path / "report.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                    f'content="{CSP}"></head><body><img src="http://127.0.0.1:9/x.png" '
                    'alt="x"></body></html>')
    loaded = load_page(browser, page, tmp_path / "shot.png")
    assert loaded.console and "Content Security Policy" in loaded.console[0]["message"]
    assert loaded.images == [("x", 0, 0)]


def test_leakage_and_flags(browser, tmp_path):
    out = tmp_path / "out"
    same = DET_TRAIN[0]  # the same pixels in both splits
    write_detection(out, val=(same, DetItem(301, 40, 40, ((0.1, 0.1, 0.2, 0.2, 1, False),))))
    page, _ = open_report(browser, out, tmp_path, "--verify")
    assert page.values["verify"].startswith("verify: OK: 6 examples in 3 shards")
    assert_numbers_match(page, out)  # train's two shards added up (Tally.merge) = inspect's
    assert page.number("leaks") == 1
    assert "000000000101.jpg" in page.text
    # val holds no dog; car's share of val (1 of 3) is its share of train (2 of 6) -> no flag
    assert "missing from val" in page.text
    assert page.number("val.class.dog.objects") == 0


def test_class_flags():
    counts = {"train": {"a": 90, "b": 10, "c": 5}, "val": {"a": 10, "b": 10, "c": 0}}
    flags = class_flags(counts, ["a", "b", "c"], "train", 2.0)
    assert flags["a"] == []  # 0.50 of val vs 0.86 of train: within 2x
    assert flags["b"] == ["val share 5.2x train's"]
    assert flags["c"] == ["missing from val"]
    assert class_flags(counts, ["b"], "train", 6.0)["b"] == []


def _segmentation_shard(path: Path, masks: list[np.ndarray]) -> None:
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for i, ids in enumerate(masks):
            h, w = ids.shape
            buf = io.BytesIO()
            Image.fromarray(ids, "L").save(buf, format="PNG")
            img = encoded(w, h, fmt="png", seed=i)
            writer.write(schema.encode_segmentation(SegmentationExample(
                EncodedImage(img.data, "png", w, h, img.sha256), f"{i}.png", str(i),
                buf.getvalue())))


def test_segmentation_pixel_shares(browser, tmp_path):
    out = tmp_path / "seg"
    out.mkdir()
    a = np.zeros((20, 30), np.uint8)
    a[:5] = 1
    a[-2:] = schema.VOID_ID
    b = np.full((10, 10), 2, np.uint8)
    _segmentation_shard(out / "train.tfrecord-00000-of-00001", [a, b])
    _segmentation_shard(out / "val.tfrecord-00000-of-00001", [b])
    glob = str(out / "*.tfrecord-*")
    code, text = run_cli("report", glob, "-o", str(out / "report.html"), "--quiet")
    assert code == 0, text
    page = load_page(browser, out / "report.html", tmp_path / "seg.png")
    assert page.console == [] and all(w > 0 for _, w, _ in page.images)
    total = a.size + b.size
    assert page.values["train.pixels.id 1"] == f"{100 * 150 / total:.2f}%"
    assert page.values["train.pixels.id 2"] == f"{100 * 100 / total:.2f}%"
    assert page.values["train.pixels.void"] == f"{100 * 60 / total:.2f}%"
    assert page.values["val.pixels.id 2"] == "100.00%"
    assert page.number("train.examples") == 2
    assert page.number("train.classes_present") == 3 and page.number("val.classes_present") == 1
    assert "3 images, 3 classes" in page.text
    assert "Segmentation" in page.text and "Boxes" not in page.text
    assert "examples with their labels drawn" in [alt for alt, _, _ in page.images]


# ------------------------------------------------------------------ bad input

def test_not_an_output_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    code, text = run_cli("report", str(tmp_path / "photos"))
    assert code == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "manifest.json" in lines[0]
    assert not (tmp_path / "photos" / "report.html").exists()


def test_damaged_shard_gives_a_page_and_one_line(browser, tmp_path):
    out = tmp_path / "out"
    write_detection(out, train_shards=1)
    shard = out / "train.tfrecord-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the last record: its checksum no longer fits
    shard.write_bytes(bytes(data))
    page, text = open_report(browser, out, tmp_path, code=1)
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), text
    assert "train.tfrecord-00000-of-00001: record 3" in lines[0] and "report.html" in lines[0]
    assert "1 problem(s)" in page.text and "record 3" in page.text
    assert page.number("train.examples") == 3  # the records before the damage


def test_empty_split_gives_a_page_and_one_line(browser, tmp_path):
    out = tmp_path / "out"
    write_detection(out, val=())
    page, text = open_report(browser, out, tmp_path, code=1)
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "split 'val' holds no examples" in lines[0], text
    assert "split 'val' holds no examples" in page.text
    assert page.number("val.examples") == 0


def test_without_matplotlib_one_line_names_the_extra(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_detection(out)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, text = run_cli("report", str(out))
    assert code == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert lines[0].endswith('install it with: pip install "matplotlib>=3.7" (the `report` '
                             'extra: pip install ".[report]" in a cocoprep checkout)')
    assert not (out / "report.html").exists()


@pytest.mark.slow
def test_same_page_from_one_or_two_worker_processes(tmp_path):
    out = tmp_path / "out"
    write_detection(out)  # 3 shards: two workers really share them
    first = report(out, output=tmp_path / "a.html", quiet=True, workers=1)
    second = report(out, output=tmp_path / "b.html", quiet=True, workers=2)
    assert first.problems == second.problems == ()
    assert first.path.read_bytes() == second.path.read_bytes()


def test_share_factor_must_exceed_one(tmp_path):
    out = tmp_path / "out"
    write_detection(out)
    code, text = run_cli("report", str(out), "--share-factor", "1")
    assert code == 2, text
    lines = text.strip().splitlines()
    assert lines == ["Error: --share-factor: expected a number > 1, found 1.0"]
    assert not (out / "report.html").exists()


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("LA", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"),
                                       ("P", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"),
                                       ("CMYK", "JPEG")])
def test_channels_from_the_header_agree_with_pillow(mode, fmt):
    from cocoprep.report.gather import channels

    buf = io.BytesIO()
    Image.new(mode, (17, 9)).save(buf, format=fmt, **({"exif": b"Exif\0\0" + b"\0" * 40}
                                                       if fmt == "JPEG" else {}))
    data = buf.getvalue()
    assert channels(data) == Image.open(io.BytesIO(data)).mode == mode
    assert channels(data[:20]) == "unknown" and channels(b"GIF89a" + data) == "unknown"


def test_missing_shard_gives_a_page_and_one_line(browser, tmp_path):
    out = tmp_path / "out"
    write_detection(out, train_shards=2)
    (out / "train.tfrecord-00001-of-00002").unlink()
    page, text = open_report(browser, out, tmp_path, code=1)
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), text
    assert "train.tfrecord-00001-of-00002: missing (listed in manifest.json)" in lines[0]
    assert "missing (listed in manifest.json)" in page.text
    assert 0 < page.number("train.examples") < 4
