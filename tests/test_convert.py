"""`cocoprep convert` end to end: COCO JSON + images -> shards, manifest, skipped.jsonl."""

from __future__ import annotations

import io
import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cocoprep.convert import convert_coco
from cocoprep.errors import StrictModeError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from conftest import (
    FIXTURES, coco_dict, image_bytes, invoke, read_records, write_image, write_json,
)


run = partial(invoke, "convert")


def assert_refused(result, out: Path, message: str) -> None:
    """Exit 2 with exactly `message` (one `Error:` line), and nothing written."""
    assert result.exit_code == 2, result.output
    assert result.output.strip() == message
    assert not out.exists()


def by_id(records) -> dict[int, dict]:
    return {int(r["source_id"]): r for r in records}


def skipped_lines(out: Path) -> list[dict]:
    text = (out / "skipped.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def ann(aid, image_id, bbox=(2.0, 2.0, 10.0, 8.0), cat=1, **extra):
    a = {"id": aid, "image_id": image_id, "category_id": cat, "iscrowd": 0,
         "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]}
    if bbox is not None:
        a["bbox"] = list(bbox)
    a.update(extra)
    return a


def make_coco(root: Path, images, annotations, *, split="train", categories=None,
              write=True) -> Path:
    """A COCO root: `images` is a list of (id, file_name, w, h); image files are written
    at the JSON size unless `write` is False."""
    for i, (iid, name, w, h) in enumerate(images):
        if write and ".." not in name and not name.startswith("/"):
            write_image(root / split / name, w, h, seed=iid)
    (root / split).mkdir(parents=True, exist_ok=True)
    write_json(root / "annotations" / f"instances_{split}.json",
               coco_dict(images, annotations, categories))
    return root


# ------------------------------------------------------------------ the committed fixtures

def test_fixtures_end_to_end(tmp_path):
    out = tmp_path / "x"
    result = run(FIXTURES / "coco", "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "train       7 images       14 objects" in result.output
    manifest = Manifest.read(out)
    assert manifest.task == "detection"
    assert {n: (s.num_examples, s.num_objects) for n, s in manifest.splits.items()} == {
        "train": (7, 14), "val": (3, 6)}
    assert manifest.splits["train"].class_counts == {"person": 4, "car": 4, "dog": 3, "kite": 3}
    assert LabelMap.read_pbtxt(out / "label_map.pbtxt").ids == [1, 3, 18, 38]
    assert (out / "labels.txt").read_text() == "person\ncar\ndog\nkite\n"
    assert skipped_lines(out) == []
    train = by_id(read_records(out, "train"))
    assert sorted(train) == list(range(101, 108))
    r101 = train[101]
    assert r101["class_label"].tolist() == [1, 3, 18]
    assert r101["class_text"].tolist() == [b"person", b"car", b"dog"]
    # keypoints merged by annotation id (17 per object), captions by image id
    assert len(r101["keypoint_x"]) == 17 * 3 and r101["keypoint_visibility"][:17].max() == 2
    assert len(r101["caption"]) >= 1
    assert train[102]["format"] == "png"
    assert train[106]["xmin"].tolist() == []  # the negative is kept
    assert train[107]["is_crowd"].tolist() == [1, 0]
    val = by_id(read_records(out, "val"))
    assert len(val[201]["keypoint_x"]) == 0 and len(val[201]["caption"]) == 0
    # boxes: normalized by the stored size, equal to the JSON's bbox
    src = json.loads((FIXTURES / "coco/annotations/instances_train.json").read_text())
    a = next(x for x in src["annotations"] if x["id"] == 1001)
    x, y, w, h = a["bbox"]
    np.testing.assert_allclose([r101["xmin"][0], r101["ymin"][0], r101["xmax"][0],
                                r101["ymax"][0]], [x / 320, y / 240, (x + w) / 320, (y + h) / 240],
                               rtol=1e-6)


def test_fixtures_with_masks(tmp_path):
    out = tmp_path / "x"
    result = run(FIXTURES / "coco", "-o", out, "--masks", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    train = by_id(read_records(out, "train"))
    for rec in train.values():
        assert len(rec["mask"]) == len(rec["xmin"])
        for png in rec["mask"]:
            m = np.asarray(Image.open(io.BytesIO(png)))
            assert m.shape == (rec["height"], rec["width"])
            assert set(np.unique(m)) <= {0, 1}
    crowd = np.asarray(Image.open(io.BytesIO(train[107]["mask"][0])))
    assert crowd.sum() == 1125  # the RLE crowd's pixel count
    assert Manifest.read(out).options["masks"] is True


def test_contiguous_ids(tmp_path):
    out = tmp_path / "x"
    assert run(FIXTURES / "coco", "-o", out, "--contiguous-ids", "--workers", "1",
               "--splits", "val").exit_code == 0
    assert LabelMap.read_pbtxt(out / "label_map.pbtxt").ids == [1, 2, 3, 4]
    val = by_id(read_records(out, "val"))
    labels = {int(l): t for r in val.values() for l, t in zip(r["class_label"], r["class_text"])}
    assert labels == {1: b"person", 2: b"car", 3: b"dog", 4: b"kite"}
    assert list(Manifest.read(out).splits) == ["val"]


# ------------------------------------------------------------------ box and annotation rules

def test_box_rules(tmp_path):
    root = make_coco(tmp_path / "src", [(1, "a.jpg", 100, 50)], [
        ann(1, 1, (10, 5, 20, 10)),            # inside
        ann(2, 1, (-0.5, 0, 50.8, 50.9)),      # overshoot <= 1 px: clipped silently
        ann(3, 1, (90, 40, 15, 5)),            # overshoot 5 px: clipped and counted
        ann(4, 1, (120, 10, 5, 5)),            # entirely outside: zero area after clipping
        ann(5, 1, (10, 10, 0, 5)),             # zero width
        ann(6, 1, None),                       # missing bbox
        ann(7, 1, (1, 2, 3)),                  # malformed
        ann(8, 1, (1, 2, 3, 4), cat=99),       # unknown category
        ann(9, 42),                            # unknown image
    ])
    out = tmp_path / "x"
    m = convert_coco(root, out, workers=1, quiet=True, allow_partial=True)  # 6 of 9 lost
    [rec] = read_records(out, "train")
    np.testing.assert_allclose(rec["xmin"], [0.1, 0.0, 0.9], atol=1e-6)
    np.testing.assert_allclose(rec["xmax"], [0.3, 50.3 / 100, 1.0], atol=1e-6)
    np.testing.assert_allclose(rec["ymax"], [0.3, 1.0, 0.9], atol=1e-6)
    assert m.counters == {"boxes_clipped": 1}
    assert m.splits["train"].counters == {"boxes_clipped": 1}
    # the clipped box is named (the one over the 1 px tolerance, not the silent one)
    fixed = [json.loads(line) for line in (out / "fixed.jsonl").read_text().splitlines()]
    assert fixed == [{"split": "train", "image_id": 1, "annotation_id": 3, "file": "a.jpg",
                      "reason": "box_clipped", "detail": "bbox [90, 40, 15, 5] overshoots the "
                      "100x50 image by 5 px: clipped to bbox [90, 40, 10, 5]"}]
    reasons = {s["annotation_id"]: s["reason"] for s in skipped_lines(out)}
    assert reasons == {4: "zero_area_box", 5: "zero_area_box", 6: "missing_bbox",
                       7: "malformed_bbox", 8: "unknown_category", 9: "unknown_image"}
    assert m.skipped == {"malformed_bbox": 1, "missing_bbox": 1, "unknown_category": 1,
                         "unknown_image": 1, "zero_area_box": 2}
    assert m.splits["train"].skipped == m.skipped  # per split too
    line = next(s for s in skipped_lines(out) if s["annotation_id"] == 8)
    assert (line["split"], line["image_id"], line["file"]) == ("train", 1, "a.jpg")


def test_area_defaults_to_the_box_area(tmp_path):
    root = make_coco(tmp_path / "src", [(1, "a.jpg", 100, 50)],
                     [ann(1, 1, (10, 5, 20, 10), area=123.5), ann(2, 1, (10, 5, 20, 10))])
    out = tmp_path / "x"
    convert_coco(root, out, workers=1, quiet=True)
    [rec] = read_records(out, "train")
    assert rec["area"].tolist() == [123.5, 200.0]


def test_negatives_kept_unless_skip_empty(tmp_path):
    root = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30), (2, "b.jpg", 40, 30),
                                        (3, "c.jpg", 40, 30)],
                     [ann(1, 1), ann(2, 3, cat=99)])
    out = tmp_path / "x"
    m = convert_coco(root, out, workers=1, quiet=True)
    assert m.splits["train"].num_examples == 3
    result = run(root, "-o", out, "--skip-empty", "--workers", "1")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert m.splits["train"].num_examples == 1
    lines = skipped_lines(out)
    assert sorted((s["image_id"], s["annotation_id"] or 0, s["reason"]) for s in lines) == [
        (2, 0, "empty_image"), (3, 0, "empty_image"), (3, 2, "unknown_category")]


def test_crowd_kept_or_dropped(tmp_path):
    root = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30)],
                     [ann(1, 1), ann(2, 1, iscrowd=1)])
    out = tmp_path / "x"
    convert_coco(root, out, workers=1, quiet=True)
    assert read_records(out, "train")[0]["is_crowd"].tolist() == [0, 1]
    m = convert_coco(root, out, workers=1, quiet=True, crowd="drop")
    assert read_records(out, "train")[0]["is_crowd"].tolist() == [0]
    assert [(s["annotation_id"], s["reason"]) for s in skipped_lines(out)] == [
        (2, "crowd_dropped")]
    assert m.skipped == {"crowd_dropped": 1}


def test_crowd_drop_of_most_objects_is_never_a_loss(tmp_path):
    """--crowd drop is asked for: dropping 6 of 8 objects (every image keeps one) is
    no data loss, exit 0, with the drops counted, whatever the share."""
    from conftest import run_cli

    anns = [ann(1, 1), ann(2, 1, iscrowd=1), ann(3, 1, iscrowd=1), ann(4, 1, iscrowd=1),
            ann(5, 2), ann(6, 2, iscrowd=1), ann(7, 2, iscrowd=1), ann(8, 2, iscrowd=1)]
    root = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30), (2, "b.jpg", 40, 30)], anns)
    out = tmp_path / "x"
    code, text = run_cli("convert", str(root), "-o", str(out), "--crowd", "drop",
                         "--workers", "1", "--quiet")
    assert code == 0, text
    m = Manifest.read(out)
    assert m.skipped == {"crowd_dropped": 6}
    assert m.splits["train"].num_examples == 2 and m.splits["train"].num_objects == 2


# ------------------------------------------------------------------ image checks

def _exif_rotated_jpeg(w: int, h: int) -> bytes:
    im = Image.fromarray(np.random.default_rng(1).integers(0, 255, (h, w, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_image_checks(tmp_path):
    src = tmp_path / "src"
    outside = write_image(tmp_path / "outside.jpg", 40, 30)
    images = [(1, "ok.jpg", 40, 30), (2, "missing.jpg", 40, 30), (3, "trunc.jpg", 40, 30),
              (4, "../outside.jpg", 40, 30), (5, "link.jpg", 40, 30), (6, "small.jpg", 40, 30),
              (7, "rot.jpg", 30, 40), (8, "rgba.png", 40, 30), (9, "pic.bmp", 40, 30),
              (10, "/etc/hostname", 40, 30), (11, "cmyk.jpg", 40, 30), (12, "pal.png", 40, 30),
              (13, "deep.png", 40, 30)]
    make_coco(src, images, [ann(i, i) for i in range(1, 14)], write=False)
    d = src / "train"
    write_image(d / "ok.jpg", 40, 30)
    (d / "trunc.jpg").write_bytes(image_bytes(40, 30)[:-200])
    os.symlink(outside, d / "link.jpg")
    write_image(d / "small.jpg", 20, 30)
    (d / "rot.jpg").write_bytes(_exif_rotated_jpeg(40, 30))  # stored 40x30, displayed 30x40
    write_image(d / "rgba.png", 40, 30, mode="RGBA")
    write_image(d / "pic.bmp", 40, 30, fmt="BMP")
    write_image(d / "cmyk.jpg", 40, 30, mode="CMYK")
    write_image(d / "pal.png", 40, 30, mode="P")
    Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(d / "deep.png")
    out = tmp_path / "x"
    m = convert_coco(src, out, workers=1, quiet=True)
    lines = skipped_lines(out)
    image_reasons = {s["image_id"]: s["reason"] for s in lines if s["annotation_id"] is None}
    # names outside the folder are looked up by file name inside it (never opened
    # where they point); a link out of the folder stays unsafe
    assert image_reasons == {2: "missing_file", 3: "corrupt_image", 4: "missing_file",
                             5: "unsafe_path", 6: "size_mismatch", 10: "missing_file"}
    details = {s["image_id"]: s["detail"] for s in lines if s["annotation_id"] is None}
    assert details[4] == f"{d / 'outside.jpg'} does not exist"
    assert details[10] == f"{d / 'hostname'} does not exist"
    # the annotations of a skipped image are listed too
    assert sorted(s["annotation_id"] for s in lines if s["reason"] == "image_skipped") == \
        [2, 3, 4, 5, 6, 10]
    recs = by_id(read_records(out, "train"))
    assert sorted(recs) == [1, 7, 8, 9, 11, 12, 13]
    assert recs[1]["encoded"] == (d / "ok.jpg").read_bytes()  # passed through byte for byte
    assert (recs[7]["width"], recs[7]["height"]) == (30, 40)  # EXIF orientation applied
    assert recs[8]["format"] == "jpeg" and recs[8]["encoded"][:2] == b"\xff\xd8"
    for i in (9, 11, 12, 13):  # BMP, CMYK, palette, 16-bit: converted to RGB JPEG
        assert recs[i]["format"] == "jpeg" and recs[i]["encoded"][:2] == b"\xff\xd8"
        assert Image.open(io.BytesIO(recs[i]["encoded"])).mode == "RGB"
    assert m.counters == {"images_converted": 5, "images_rotated": 1}


def test_encode_png_for_converted_images(tmp_path):
    src = make_coco(tmp_path / "src", [(1, "a.bmp", 40, 30)], [ann(1, 1)], write=False)
    write_image(src / "train" / "a.bmp", 40, 30, fmt="BMP")
    out = tmp_path / "x"
    result = run(src, "-o", out, "--encode", "png", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    [rec] = read_records(out, "train")
    assert rec["format"] == "png" and rec["encoded"][:4] == b"\x89PNG"


def test_decompression_bomb_is_skipped(tmp_path, monkeypatch):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30), (2, "b.jpg", 4, 3)],
                    [ann(1, 1)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    out = tmp_path / "x"
    m = convert_coco(src, out, workers=1, quiet=True, allow_partial=True)  # its 1 object lost
    assert m.skipped == {"decompression_bomb": 1, "image_skipped": 1}
    assert m.splits["train"].num_examples == 1


# ------------------------------------------------------------------ nothing lost

def test_images_and_annotations_in_equal_written_plus_skipped(tmp_path):
    rng = np.random.default_rng(3)
    images = [(i, f"{i}.jpg", 40, 30) for i in range(1, 21)]
    anns, aid = [], 1
    for iid in range(1, 23):  # 21 and 22 do not exist
        for _ in range(int(rng.integers(0, 4))):
            kind = int(rng.integers(0, 6))
            bbox = {0: (1, 1, 5, 5), 1: None, 2: (50, 1, 5, 5), 3: (1, 1, 5, 5),
                    4: (-3, -3, 10, 10), 5: (1, 1, 5, 5)}[kind]
            anns.append(ann(aid, iid, bbox, cat=99 if kind == 3 else 1,
                            iscrowd=int(kind == 5)))
            aid += 1
    src = make_coco(tmp_path / "src", images, anns)
    (src / "train" / "7.jpg").unlink()
    out = tmp_path / "x"
    m = convert_coco(src, out, workers=1, quiet=True, crowd="drop", num_shards=3,
                     allow_partial=True)
    lines = skipped_lines(out)
    written = read_records(out, "train")
    skipped_images = [s for s in lines if s["annotation_id"] is None]
    skipped_anns = [s for s in lines if s["annotation_id"] is not None]
    assert len(written) + len(skipped_images) == len(images)
    assert sum(len(r["xmin"]) for r in written) + len(skipped_anns) == len(anns)
    assert sorted(s["annotation_id"] for s in skipped_anns) == sorted(
        set(a["id"] for a in anns) - set(range(0)) - {
            a["id"] for a in anns if a["image_id"] != 7 and a["image_id"] <= 20
            and a.get("bbox") is not None and a["category_id"] == 1 and a["bbox"][0] < 40
            and not a["iscrowd"]})
    assert sum(m.skipped.values()) == len(lines)
    assert m.splits["train"].num_objects == sum(len(r["xmin"]) for r in written)
    assert len(m.splits["train"].shards) == 3


# ------------------------------------------------------------------ bad input: errors

def test_duplicate_image_ids_is_a_clear_error_and_nothing_is_written(tmp_path):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30), (1, "b.jpg", 40, 30)], [])
    out = tmp_path / "x"
    path = src / "annotations" / "instances_train.json"
    assert_refused(run(src, "-o", out), out, f"Error: {path}: expected unique image ids, found "
                   "image id 1 twice (images[0] and images[1])")


@pytest.mark.parametrize("text, message", [
    ("{not json", "expected a key in double quotes at line 1 column 2, found 'n'"),
    ('{"images": [], "categories": []}', "expected the top-level key(s) 'annotations', found "
     "keys categories, images"),
    ('{"images": [{"id": 1, "file_name": "a.jpg", "width": "640", "height": 480}], '
     '"annotations": [], "categories": []}',
     'expected images[0].width (image id 1) to be a positive integer, found a string "640"'),
])
def test_invalid_json_fails_before_anything_is_written(tmp_path, text, message):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30)], [ann(1, 1)])
    bad = src / "annotations" / "instances_val.json"
    bad.write_text(text)
    (src / "val").mkdir()
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    result = run(src, "-o", out)
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {bad}: {message}"
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("args, message", [
    (["--ratio", "0.5,0.6"], "Error: --ratio: expected fractions that sum to 1 (these sum to "
                             "1.1), found '0.5,0.6'"),
    (["--ratio", "1"], "Error: --ratio: expected 2 or 3 comma-separated fractions"),
    (["--ratio", "a,b"], "Error: --ratio: expected numbers such as 0.8,0.1,0.1"),
    (["--ratio", "0.5,0.5"], "Error: --ratio: expected exactly one annotation file to split"),
    (["--splits", "test"], "Error: --splits: expected names from ['train', 'val'], found 'test'"),
    (["--shard-size", "lots"], "Error: --shard-size: expected a size such as 200MB"),
    (["--num-shards", "0"], "Error: --num-shards: expected an integer >= 1, found 0"),
    (["--workers", "0"], "Error: --workers: expected an integer >= 1, found 0"),
    (["--seed", "-1"], "Error: --seed: expected an integer >= 0, found -1"),
    (["--shard-size", "inf"], "Error: --shard-size: expected a positive size, found 'inf'"),
])
def test_bad_options(tmp_path, args, message):
    out = tmp_path / "x"
    result = run(FIXTURES / "coco", "-o", out, *args)
    assert result.exit_code == 2
    assert result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1  # one Error line, no traceback
    assert not out.exists()


def test_missing_source(tmp_path):
    result = run(tmp_path / "nope", "-o", tmp_path / "x")
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {tmp_path / 'nope'}: expected a dataset folder (COCO, "
                                    "Pascal VOC or YOLO) or a COCO JSON file, found nothing")


def test_strict_fails_after_writing_the_report(tmp_path):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30)], [ann(1, 1), ann(2, 1, None)])
    out = tmp_path / "x"
    result = run(src, "-o", out, "--strict", "--workers", "1")
    assert result.exit_code == 1
    assert "skipped 1 (missing_bbox 1)" in result.output
    assert f"Error: --strict: 1 item(s) skipped; reasons are listed in {out / 'skipped.jsonl'}" \
        in result.output
    assert [s["reason"] for s in skipped_lines(out)] == ["missing_bbox"]
    assert Manifest.read(out).splits["train"].num_examples == 1
    with pytest.raises(StrictModeError):
        convert_coco(src, out, workers=1, quiet=True, strict=True)
    # nothing skipped: strict passes
    assert run(FIXTURES / "coco", "-o", tmp_path / "y", "--strict", "--workers", "1").exit_code == 0


# ------------------------------------------------------------------ order and determinism

def test_shuffle_is_seeded_and_no_shuffle_keeps_json_order(tmp_path):
    images = [(i, f"{i}.jpg", 16, 12) for i in range(1, 13)]
    src = make_coco(tmp_path / "src", images, [ann(i, i) for i in range(1, 13)])

    def order(**kw):
        out = tmp_path / "x"
        convert_coco(src, out, workers=1, quiet=True, **kw)
        return [int(r["source_id"]) for r in read_records(out, "train")]

    assert order(shuffle=False) == list(range(1, 13))
    a, b, c = order(), order(), order(seed=5)
    assert a == b and a != list(range(1, 13)) and a != c
    assert sorted(a) == sorted(c) == list(range(1, 13))


@pytest.mark.slow
def test_byte_identical_whatever_the_workers(tmp_path):
    def shards(out, workers):
        result = run(FIXTURES / "coco", "-o", out, "--workers", workers, "--num-shards", "2",
                     "--masks", "-q")
        assert result.exit_code == 0, result.output
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    one = shards(tmp_path / "a", 1)
    two = shards(tmp_path / "b", 2)
    again = shards(tmp_path / "c", 2)
    assert sorted(one) == sorted(two) and len([n for n in one if ".tfrecord-" in n]) == 4
    assert one == two == again  # shards, manifest, label maps, skipped.jsonl


def test_rerun_replaces_old_output(tmp_path):
    out = tmp_path / "x"
    assert run(FIXTURES / "coco", "-o", out, "--workers", "1", "--num-shards", "3").exit_code == 0
    assert len(list(out.glob("train.tfrecord-*"))) == 3
    assert run(FIXTURES / "coco", "-o", out, "--workers", "1", "--splits", "val").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset_info.json", "features.json", "image.object.class.label.labels.txt",
        "label_map.pbtxt", "labels.txt", "manifest.json", "skipped.jsonl",
        "val.tfrecord-00000-of-00001"]


def test_shard_count_never_exceeds_images(tmp_path):
    out = tmp_path / "x"
    m = convert_coco(FIXTURES / "coco", out, workers=1, quiet=True, num_shards=50)
    assert [len(s.shards) for s in m.splits.values()] == [7, 3]
    m = convert_coco(FIXTURES / "coco", out, workers=1, quiet=True, shard_size="50KB")
    assert len(m.splits["train"].shards) == 4  # ~165 kB of images
    assert sum(s.num_examples for s in m.splits["train"].shards) == 7


# ------------------------------------------------------------------ --ratio

def test_ratio_is_stratified_seeded_and_disjoint(tmp_path):
    cats = [{"id": 1, "name": "common"}, {"id": 2, "name": "rare"}]
    images = [(i, f"{i}.jpg", 16, 12) for i in range(1, 41)]
    anns = [ann(i, i, cat=2 if i % 9 == 0 else 1) for i in range(1, 37)]  # 37-40: negatives
    f = tmp_path / "data" / "instances_all.json"
    write_json(f, coco_dict(images, anns, cats))
    for iid, name, w, h in images:
        write_image(tmp_path / "pics" / name, w, h, seed=iid)

    def split_ids(seed):
        out = tmp_path / f"x{seed}"
        m = convert_coco(f, out, images=tmp_path / "pics", ratio="0.5,0.5", seed=seed,
                         workers=1, quiet=True)
        assert list(m.splits) == ["train", "val"]
        return {n: sorted(int(r["source_id"]) for r in read_records(out, n)) for n in m.splits}, m

    parts, m = split_ids(0)
    assert sorted(parts["train"] + parts["val"]) == list(range(1, 41))
    assert not set(parts["train"]) & set(parts["val"])
    assert len(parts["train"]) == len(parts["val"]) == 20
    for name in ("train", "val"):
        assert m.splits[name].class_counts["rare"] == 2            # 9, 18, 27, 36: 2 + 2
        assert len([i for i in parts[name] if i > 36]) == 2        # 4 negatives: 2 + 2
    assert split_ids(0)[0] == parts
    assert split_ids(1)[0] != parts
    assert m.options["ratio"] == [0.5, 0.5]


def test_ratio_three_way(tmp_path):
    out = tmp_path / "x"
    result = run(FIXTURES / "coco", "-o", out, "--splits", "train", "--ratio", "0.6,0.2,0.2",
                 "--workers", "1")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert {n: s.num_examples for n, s in m.splits.items()} == {"train": 4, "val": 2, "test": 1}


# ------------------------------------------------------------------ other layouts

def test_image_info_split_gives_records_without_objects(tmp_path):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30)], [ann(1, 1)])
    write_json(src / "annotations" / "image_info_test.json",
               {"images": [{"id": 5, "file_name": "t.jpg", "width": 20, "height": 10}]})
    write_image(src / "test" / "t.jpg", 20, 10)
    out = tmp_path / "x"
    m = convert_coco(src, out, workers=1, quiet=True, skip_empty=True)
    assert {n: s.num_examples for n, s in m.splits.items()} == {"test": 1, "train": 1}
    [rec] = read_records(out, "test")
    assert rec["source_id"] == "5" and rec["xmin"].tolist() == []


def test_roboflow_layout(tmp_path):
    for split, iid in (("train", 1), ("valid", 2)):
        write_json(tmp_path / "rf" / split / "_annotations.coco.json",
                   coco_dict([(iid, f"{iid}.jpg", 40, 30)], [ann(iid, iid)]))
        write_image(tmp_path / "rf" / split / f"{iid}.jpg", 40, 30)
    out = tmp_path / "x"
    result = run(tmp_path / "rf", "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert {n: s.num_objects for n, s in m.splits.items()} == {"train": 1, "valid": 1}


def test_single_json_file_with_images_dir(tmp_path):
    f = write_json(tmp_path / "ann" / "instances_mine.json",
                   coco_dict([(1, "sub/a.jpg", 40, 30)], [ann(1, 1)]))
    write_image(tmp_path / "pics" / "sub" / "a.jpg", 40, 30)
    out = tmp_path / "x"
    result = run(f, "--images", tmp_path / "pics", "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert list(m.splits) == ["mine"] and m.splits["mine"].num_objects == 1
    assert read_records(out, "mine")[0]["filename"] == "sub/a.jpg"


def _bad_segmentations(root: Path) -> Path:
    return make_coco(root, [(1, "a.jpg", 40, 30), (2, "b.jpg", 40, 30)], [
        ann(1, 1), ann(2, 1, segmentation=[[1, 2, 3]]), ann(3, 1, segmentation=None),
        ann(4, 1, iscrowd=1, segmentation={"counts": [10, 1190], "size": [30, 40]}),
        ann(5, 1, segmentation={"counts": [1, 2], "size": [30, 40]}),
        ann(6, 2), ann(7, 2)])


def test_masks_without_a_usable_segmentation_are_filled_from_the_box(tmp_path):
    """--masks never turns an object into background: the object keeps a box mask."""
    out = tmp_path / "x"
    m = convert_coco(_bad_segmentations(tmp_path / "src"), out, workers=1, quiet=True,
                     masks=True, shuffle=False)
    rec = read_records(out, "train")[0]
    assert len(rec["mask"]) == len(rec["xmin"]) == 5
    assert not (out / "skipped.jsonl").read_text()
    assert m.counters == {"masks_from_boxes": 3}
    box = np.asarray(Image.open(io.BytesIO(rec["mask"][2])))  # ann 3: bbox (2, 2, 10, 8)
    assert box.shape == (30, 40) and box.sum() == 80 and box[2:10, 2:12].all()
    crowd = np.asarray(Image.open(io.BytesIO(rec["mask"][3])))
    assert crowd.sum() == 1190 and crowd.shape == (30, 40)
    result = run(_bad_segmentations(tmp_path / "src2"), "-o", tmp_path / "y", "--masks",
                 "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "3 object(s) have no real mask: their masks are filled from their boxes" \
        in result.output


def test_missing_masks_skip_image_lists_every_annotation(tmp_path):
    out = tmp_path / "x"
    m = convert_coco(_bad_segmentations(tmp_path / "src"), out, workers=1, quiet=True,
                     masks=True, missing_masks="skip-image", allow_partial=True)
    assert m.splits["train"].num_examples == 1 and m.splits["train"].num_objects == 2
    assert {(s["annotation_id"], s["reason"]) for s in skipped_lines(out)} == {
        (None, "no_mask"), (2, "malformed_segmentation"), (3, "missing_segmentation"),
        (5, "malformed_segmentation"), (1, "image_skipped"), (4, "image_skipped")}
    assert m.counters == {}
    # more than half of the objects lost: without --allow-partial that fails the run
    result = run(_bad_segmentations(tmp_path / "src2"), "-o", tmp_path / "y", "--masks",
                 "--missing-masks", "skip-image", "--workers", "1")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        "Error: split 'train': 5 of 7 objects skipped (image_skipped (no_mask) 2, "
        "malformed_segmentation 2, missing_segmentation 1); --missing-masks box keeps such "
        "objects with box-filled masks [output written to ")


def test_keypoints_are_normalized_by_the_image_size(tmp_path):
    kp = json.loads((FIXTURES / "coco/annotations/person_keypoints_train.json").read_text())
    a = next(x for x in kp["annotations"] if x["id"] == 1001)
    out = tmp_path / "x"
    convert_coco(FIXTURES / "coco", out, workers=1, quiet=True, splits="train")
    r101 = by_id(read_records(out, "train"))[101]
    xs, ys, vs = a["keypoints"][0::3], a["keypoints"][1::3], a["keypoints"][2::3]
    assert r101["keypoint_visibility"][:17].tolist() == vs
    want_x = [x / 320 if v else 0.0 for x, v in zip(xs, vs)]
    want_y = [y / 240 if v else 0.0 for y, v in zip(ys, vs)]
    np.testing.assert_allclose(r101["keypoint_x"][:17], want_x, atol=1e-6)
    np.testing.assert_allclose(r101["keypoint_y"][:17], want_y, atol=1e-6)


# ------------------------------------------------------------------ review: values that used to crash

@pytest.mark.parametrize("field, value, message", [
    ("id", 2**64, "expected images[0].id to be a 64-bit integer, found an integer "
     "18446744073709551616"),
    ("width", 2**32 + 40, "expected images[0].width (image id 1) to be a positive integer "
     "below 2**31, found an integer 4294967336"),
    ("file_name", "a\ud800.jpg", "expected images[0].file_name (image id 1) to be valid "
     'Unicode text, found a string "a\\\\ud800.jpg"'),
])
def test_out_of_range_or_unencodable_values_are_errors_not_tracebacks(tmp_path, field, value,
                                                                      message):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30)], [ann(1, 1)])
    path = src / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["images"][0][field] = value
    path.write_text(json.dumps(data))
    out = tmp_path / "x"
    assert_refused(run(src, "-o", out, "--workers", "1"), out, f"Error: {path}: {message}")


@pytest.mark.parametrize("visibility", ["NaN", "Infinity"])
def test_non_finite_keypoints_are_counted_as_malformed(tmp_path, visibility):
    src = make_coco(tmp_path / "src", [(1, "a.jpg", 40, 30)], [ann(1, 1)],
                    categories=[{"id": 1, "name": "person"}])
    kp = coco_dict([(1, "a.jpg", 40, 30)], [ann(1, 1, keypoints=[4, 3, 2, 8, 6, 0])],
                   categories=[{"id": 1, "name": "person", "keypoints": ["a", "b"]}])
    text = json.dumps(kp).replace("[4, 3, 2, 8, 6, 0]", f"[4, 3, {visibility}, 8, 6, 0]")
    (src / "annotations" / "person_keypoints_train.json").write_text(text)
    out = tmp_path / "x"
    result = run(src, "-o", out, "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    [rec] = read_records(out, "train")
    assert rec["keypoint_visibility"].tolist() == [0, 0]
    assert Manifest.read(out).counters == {"keypoints_malformed": 1}


def test_a_split_named_twice_is_a_usage_error(tmp_path):
    out = tmp_path / "x"
    assert_refused(run(FIXTURES / "coco", "-o", out, "--splits", "train,val,train"), out,
                   "Error: --splits: expected each split once, found 'train,val,train'")


def test_category_id_zero_owning_annotations_is_renumbered_and_announced(tmp_path):
    """Label Studio numbers categories from 0: ids 1..N in category order, no option."""
    cats = [{"id": 0, "name": "cells"}, {"id": 1, "name": "rbc"}]
    src = make_coco(tmp_path / "src", [(0, "a.jpg", 40, 30)],
                    [ann(0, 0, cat=0), ann(1, 0, cat=1)], categories=cats)
    out = tmp_path / "x"
    result = run(src, "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert ("  note: category ids start at 0 ('cells'), which label maps keep for the "
            "background: ids renumbered 1..N in category order") in result.output
    assert LabelMap.read_pbtxt(out / "label_map.pbtxt").ids == [1, 2]
    [rec] = read_records(out, "train")
    assert rec["class_label"].tolist() == [1, 2]
    assert [t.decode() for t in rec["class_text"]] == ["cells", "rbc"]
