"""The promises on every path: `--classes` means one thing in every format, options a
format cannot use are refused, and every image a source sees is written or listed."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest

from cocoprep.manifest import Manifest
from conftest import FIXTURES, coco_dict, invoke, read_records, write_image, write_json
from export_builders import cvat_export, roboflow_export
from voc_builders import (
    H, W, Obj, cvat_voc, flat_voc, labelimg_pairs, photo, voc_xml, vocdevkit,
)
from yolo_builders import darknet_folder, ultralytics_tree

convert = partial(invoke, "convert")


def skipped_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ --classes


def test_classes_picks_and_orders_coco(tmp_path):
    out = tmp_path / "out"
    result = convert(FIXTURES / "coco", "-o", out, "--classes", "car,person")
    assert result.exit_code == 0, result.output
    assert (out / "labels.txt").read_text() == "car\nperson\n"
    assert "id: 1\n  name: 'car'" in (out / "label_map.pbtxt").read_text()
    src = {s: json.loads((FIXTURES / "coco" / "annotations" / f"instances_{s}.json").read_text())
           for s in ("train", "val")}
    names = {c["id"]: c["name"] for c in src["train"]["categories"]}
    m = Manifest.read(out)
    assert m.options["classes"] == ["car", "person"]
    for split, data in src.items():
        kept = [a for a in data["annotations"] if names[a["category_id"]] in ("car", "person")]
        records = read_records(out, split)
        got = sorted(int(v) for r in records for v in r["class_label"])
        assert got == sorted(("car", "person").index(names[a["category_id"]]) + 1
                             for a in kept)
        assert m.splits[split].num_objects == len(kept)
    left = [line for line in skipped_lines(out) if line["reason"] == "class_not_selected"]
    assert len(left) == sum(1 for d in src.values() for a in d["annotations"]
                            if names[a["category_id"]] not in ("car", "person"))
    assert {line["detail"] for line in left} == {"class 'dog' is not in --classes",
                                                 "class 'kite' is not in --classes"}
    assert "note: --classes keeps 2 of 4 classes (ids 1..2); left out: dog (" in result.stdout


@pytest.mark.parametrize("fixture, title, names", [
    ("coco", "COCO", "person, car, dog, kite"),
    ("yolo", "YOLO", None),
    ("voc", "Pascal VOC", None),
])
def test_a_class_name_not_in_the_data_is_refused(tmp_path, fixture, title, names):
    out = tmp_path / "out"
    result = convert(FIXTURES / fixture, "-o", out, "--classes", "person,nosuch")
    assert result.exit_code == 2
    line = result.stderr
    assert line.startswith(f"Error: --classes: expected names of the {title} data set's "
                           "classes (")
    assert line.endswith("), found 'nosuch'\n") and line.count("\n") == 1
    if names:
        assert f"({names})" in line
    assert not out.exists()


# ------------------------------------------------------------------ options for other formats


@pytest.mark.parametrize("option, fixture, line", [
    ("--skip-difficult", "coco", "Error: --skip-difficult: expected a Pascal VOC data set (it "
     "does nothing for COCO: leave it out), found 'a COCO data set'\n"),
    ("--skip-difficult", "yolo", "Error: --skip-difficult: expected a Pascal VOC data set (it "
     "does nothing for YOLO: leave it out), found 'a YOLO data set'\n"),
    ("--contiguous-ids", "voc", "Error: --contiguous-ids: expected a COCO data set (it does "
     "nothing for Pascal VOC: leave it out), found 'a Pascal VOC data set'\n"),
    ("--contiguous-ids", "yolo", "Error: --contiguous-ids: expected a COCO data set (it does "
     "nothing for YOLO: leave it out), found 'a YOLO data set'\n"),
])
def test_an_option_the_format_cannot_use_is_refused(tmp_path, option, fixture, line):
    out = tmp_path / "out"
    result = convert(FIXTURES / fixture, "-o", out, option)
    assert result.exit_code == 2
    assert result.stderr == line
    assert not out.exists()


# ------------------------------------------------------------------ every image seen


def _coco_fixture(root: Path) -> Path:
    shutil.copytree(FIXTURES / "coco", root)
    return root / "train"


def _format_fixture(name: str, root: Path) -> Path:
    """A copy of a committed fixture; the folder of its first image."""
    shutil.copytree(FIXTURES / name, root)
    return sorted(root.rglob("*.jpg"))[0].parent


def _layouts():
    """(name, builder(root) -> the folder a stray image goes into, kept as a negative?)"""
    return [
        ("coco", _coco_fixture, False),
        ("roboflow-coco", lambda r: (roboflow_export(r), r / "train")[1], False),
        ("cvat-coco", lambda r: (cvat_export(r), r / "images" / "default")[1], False),
        ("vocdevkit", lambda r: (vocdevkit(r), r / "VOCdevkit" / "VOC2007" / "JPEGImages")[1],
         False),
        ("cvat-voc", lambda r: (cvat_voc(r), r / "JPEGImages")[1], False),
        ("flat-voc", lambda r: (flat_voc(r), r / "images")[1], True),
        ("labelimg", lambda r: (labelimg_pairs(r), r)[1], True),
        ("ultralytics", lambda r: (ultralytics_tree(r), r / "images" / "train")[1], True),
        ("darknet", lambda r: (darknet_folder(r / "darknet"), r / "darknet")[1], True),
        ("labelme", partial(_format_fixture, "labelme"), True),
        ("cvat-xml", partial(_format_fixture, "cvat"), False),
        ("kitti", partial(_format_fixture, "kitti"), True),
        ("openimages", partial(_format_fixture, "openimages"), False),
    ]


@pytest.mark.parametrize("name, build, negative", _layouts(), ids=[x[0] for x in _layouts()])
def test_a_stray_image_is_written_or_listed_in_every_layout(tmp_path, name, build, negative):
    """An image no annotation names is written (a folder of pairs: a negative, as
    YOLO keeps them) or listed in skipped.jsonl (a JSON or split list decides the
    set): never gone without a word. Images in = written + listed."""
    root = tmp_path / "src"
    folder = build(root)
    # pictures only: Open Images' instance-mask PNGs (validation-masks/) are not images
    before = sum(1 for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png")
                 and not any(part.endswith("masks") for part in p.relative_to(root).parts))
    write_image(folder / "stray_zz.jpg", 40, 30)
    src = root / "darknet" if name == "darknet" else root
    out = tmp_path / "out"
    result = convert(src, "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    written = [r["filename"] for s in m.splits for r in read_records(out, s)]
    listed = [line["file"] for line in skipped_lines(out) if line["image_id"] is None
              and line["annotation_id"] is None]
    strays = [f for f in written + listed if f.endswith("stray_zz.jpg")]
    assert len(strays) == 1, (written, listed)
    assert (strays[0] in written) == negative
    if not negative:
        (line,) = [x for x in skipped_lines(out) if x["file"].endswith("stray_zz.jpg")]
        assert line["reason"] == "unlisted_image"
    assert len(written) + len(listed) == before + 1  # images in = written + listed


def test_a_labelimg_image_without_xml_is_kept_and_noted(tmp_path):
    labelimg_pairs(tmp_path / "src", n=3)
    write_image(tmp_path / "src" / "shot_9.jpg", 40, 30)
    out = tmp_path / "out"
    result = convert(tmp_path / "src", "-o", out)
    assert result.exit_code == 0, result.output
    assert ("note: 1 image(s) have no XML: written as images without objects (negatives); "
            "add XMLs, or remove them, if they are unlabelled") in result.stdout
    assert "train       4 images" in result.stdout
    (record,) = [r for r in read_records(out, "train") if r["filename"] == "shot_9.jpg"]
    assert len(record["class_label"]) == 0


# ------------------------------------------------------------------ messages that name the cause


def test_objects_lost_with_their_images_name_the_images_cause(tmp_path):
    """One of three images does not decode and holds 3 of the 4 objects: the exit-1
    line names `corrupt_image` (and its fix), not only `image_skipped`."""
    src = tmp_path / "src"
    for i in (1, 2, 3):
        write_image(src / "images" / f"{i}.jpg", 40, 30)
    (src / "images" / "3.jpg").write_bytes(b"\xff\xd8\xff not a whole jpeg")
    anns = [{"id": k, "image_id": img, "category_id": 1, "bbox": [1, 1, 10, 10],
             "area": 100, "iscrowd": 0} for k, img in enumerate((1, 3, 3, 3), 1)]
    write_json(src / "annotations" / "instances.json",
               coco_dict([(i, f"{i}.jpg", 40, 30) for i in (1, 2, 3)], anns))
    out = tmp_path / "out"
    result = convert(src, "-o", out, "--workers", "1")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        "Error: split 'train': 3 of 4 objects skipped (image_skipped (corrupt_image) 3); the "
        "files do not decode: are they complete")


def test_a_voc_box_outside_its_image_is_named_in_the_xmls_terms(tmp_path):
    photo(tmp_path / "src" / "a.jpg")
    (tmp_path / "src" / "a.xml").write_bytes(voc_xml("a.jpg", (W, H), [
        Obj("cat", (1, 1, 20, 20)), Obj("cat", (W + 10, 5, W + 40, 30))]))
    out = tmp_path / "out"
    result = convert(tmp_path / "src", "-o", out)
    assert result.exit_code == 0, result.output
    (line,) = skipped_lines(out)
    assert line["reason"] == "zero_area_box"
    assert line["detail"] == (f"a.xml: box xmin {W + 10}, ymin 5, xmax {W + 40}, ymax 30 has "
                              f"no area inside the {W}x{H} image")


def test_the_layout_line_names_the_splits_a_ratio_deals(tmp_path):
    darknet_folder(tmp_path / "darknet")
    out = tmp_path / "out"
    result = convert(tmp_path / "darknet", "-o", out, "--ratio", "0.67,0.33")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "layout: YOLO (darknet folder): split darknet, dealt into train, val by --ratio")
    assert sorted(Manifest.read(out).splits) == ["train", "val"]


def test_the_python_api_is_as_quiet_as_the_cli(tmp_path):
    """`cocoprep.load` in a fresh interpreter prints no TensorFlow start-up notices,
    CUDA-probe lines or TFRecordDataset buffer notes (the CLI hides them too)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    assert convert(FIXTURES / "coco", "-o", out, "-q").exit_code == 0
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("import cocoprep\n"
            f"ds = cocoprep.load({str(out)!r}, 'train', batch_size=2, image_size=64)\n"
            "for batch in ds.take(1): pass\nprint('read', int(batch['image'].shape[0]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "read 2\n"
    assert done.stderr == ""


@pytest.mark.parametrize("command", ["convert", "split"])
def test_help_names_the_tfds_files(command):
    result = invoke(command, "--help")
    text = " ".join(result.stdout.split())
    assert "TensorFlow Datasets files (dataset_info.json, features.json" in text


def test_a_malformed_xml_in_a_split_list_does_not_make_its_image_unlisted(tmp_path):
    src = tmp_path / "voc"
    shutil.copytree(FIXTURES / "voc", src)
    xml = src / "VOCdevkit" / "VOC2007" / "Annotations" / "000000000104.xml"
    xml.write_bytes(xml.read_bytes()[:73])
    out = tmp_path / "out"
    result = convert(src, "-o", out, "--classes", "person,car,dog")
    assert result.exit_code == 0, result.output
    assert [line["reason"] for line in skipped_lines(out)] == ["malformed_xml"]


def test_a_voc_box_partly_outside_is_clipped_and_named(tmp_path):
    photo(tmp_path / "src" / "a.jpg")
    (tmp_path / "src" / "a.xml").write_bytes(voc_xml("a.jpg", (W, H), [
        Obj("cat", (1, 1, 20, 20)), Obj("cat", (W - 10, 5, W + 6, 30))]))
    out = tmp_path / "out"
    result = convert(tmp_path / "src", "-o", out)
    assert result.exit_code == 0, result.output
    assert "  boxes clipped to their images: each named in fixed.jsonl" in result.stdout
    assert skipped_lines(out) == []
    (line,) = [json.loads(x) for x in (out / "fixed.jsonl").read_text().splitlines()]
    assert line == {"split": "train", "image_id": 1, "annotation_id": 2, "file": "a.jpg",
                    "reason": "box_clipped",
                    "detail": f"a.xml: box xmin {W - 10}, ymin 5, xmax {W + 6}, ymax 30 "
                              f"overshoots the {W}x{H} image by 6 px: clipped to box xmin "
                              f"{W - 10}, ymin 5, xmax {W}, ymax 30"}
    again = tmp_path / "again"
    assert convert(tmp_path / "src", "-o", again, "--workers", "2").exit_code == 0
    assert (again / "fixed.jsonl").read_bytes() == (out / "fixed.jsonl").read_bytes()


@pytest.mark.parametrize("fixture, folder", [("labelme", "train"), ("kitti", "training")])
def test_a_folder_given_as_dot_names_its_split_after_itself(tmp_path, monkeypatch, fixture,
                                                            folder):
    """`cocoprep convert .` inside a split folder: `Path(".").name` is empty, and an
    empty split name wrote a hidden shard (`.tfrecord-...`) that verify then missed."""
    shutil.copytree(FIXTURES / fixture, tmp_path / "src")
    monkeypatch.chdir(tmp_path / "src" / folder)
    out = tmp_path / "out"
    result = convert(".", "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert list(m.splits) == [folder]
    assert all(s.file.startswith(f"{folder}.tfrecord-") and (out / s.file).is_file()
               for s in m.splits[folder].shards)
    assert read_records(out, folder)
    verified = invoke("verify", str(out))
    assert verified.exit_code == 0, verified.output


def test_a_roboflow_mask_folder_given_as_dot_names_its_split_after_itself(tmp_path,
                                                                          monkeypatch):
    from seg_builders import roboflow_tree

    roboflow_tree(tmp_path / "src", splits=("valid",))
    monkeypatch.chdir(tmp_path / "src" / "valid")
    out = tmp_path / "out"
    result = convert(".", "-o", out, "--workers", "1", "--task", "segmentation")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert list(m.splits) == ["valid"]
    verified = invoke("verify", str(out))
    assert verified.exit_code == 0, verified.output
