"""KITTI in: every layout converts with names as written and boxes to 0.1 px, the OD
API's create_kitti_tf_record_test values are matched on the keys we share, the
per-object values are kept, DontCare is an ignore region, --classes and --ratio work,
bad lines are skipped with their reason, bad inputs end in one Error line."""

from __future__ import annotations

import json
import numpy as np
import pytest

from cocoprep.manifest import Manifest
from cocoprep.sources import kitti
from cocoprep.sources.objects import ObjectProblem, SourceObject
from format_builders import (
    KittiImg, KittiObj, boxes_px, convert, error_lines, errors_of, examples, kitti_tree, photo,
    skipped_lines, texts, worker_counts_agree,
)


def test_parse_reads_every_value():
    (car, dont) = kitti.parse_label_text(
        "Car 0.12 1 -1.20 10.50 5.25 60.75 30.00 1.50 1.60 3.90 1.00 1.70 20.50 -1.30\n\n"
        "DontCare -1 -1 -10 100.00 2.00 120.00 12.00 -1 -1 -1 -1000 -1000 -1000 -10\n")
    assert isinstance(car, SourceObject) and car.name == "Car" and not car.crowd
    assert car.box == (10.5, 5.25, 60.75, 30.0)
    assert dict(car.extras) == {
        "kitti_truncated": 0.12, "occluded": 1, "alpha": -1.2, "box3d_height": 1.5,
        "box3d_width": 1.6, "box3d_length": 3.9, "box3d_x": 1.0, "box3d_y": 1.7,
        "box3d_z": 20.5, "box3d_rot_y": -1.3}
    assert dont.name == "DontCare" and dont.crowd and dont.box == (100, 2, 120, 12)


def test_a_score_column_is_ignored():
    (obj,) = kitti.parse_label_text("Van 0 0 0 1 2 3 4 1 1 1 1 1 1 0 0.93")
    assert obj.name == "Van" and obj.box == (1, 2, 3, 4)


@pytest.mark.parametrize("line, detail", [
    ("Car 0 0 0 1 2 3", "line 1: expected 15 values (type truncated occluded alpha left top "
     "right bottom height width length x y z rotation_y), found 7"),
    ("Car 0 0 0 1 two 3 4 1 1 1 1 1 1 0", "line 1: top is 'two', not a number"),
    ("Car 0 0 0 1 2 3 4 1 1 1 1 nan 1 0", "line 1: y is 'nan', not a number"),
    ("Car 0 0 0 30 2 3 4 1 1 1 1 1 1 0", "line 1: the 'Car' box has right < left or bottom "
     "< top (30 2 3 4)"),
])
def test_bad_lines_are_problems(line, detail):
    (problem,) = kitti.parse_label_text(line)
    assert isinstance(problem, ObjectProblem) and problem.detail == detail
    assert problem.reason == ("malformed_bbox" if "right < left" in detail
                              else "malformed_label_line")


def test_od_api_kitti_test_values(tmp_path):
    """create_kitti_tf_record_test: a 256x256 image, box 64..192, truncated 1, alpha 2,
    3D box 10 11 12 / 13 14 15, rot_y 4 -> bbox 0.25..0.75, the same float lists."""
    root = tmp_path / "k"
    img = KittiImg("tmp_image", [KittiObj("car", (64, 64, 192, 192), 1.0, 0, 2.0,
                                          (10, 11, 12), (13, 14, 15), 4.0)], 256, 256)
    kitti_tree(root, [img])
    code, output = convert(root, tmp_path / "out")
    assert code == 0, output
    ex = examples(tmp_path / "out", "training")["tmp_image.png"]
    assert ex["image/height"] == [256] and ex["image/width"] == [256]
    assert ex["image/format"] == [b"png"]
    for key, value in [("xmin", 0.25), ("ymin", 0.25), ("xmax", 0.75), ("ymax", 0.75)]:
        assert ex[f"image/object/bbox/{key}"] == [value]
    assert ex["image/object/class/text"] == [b"car"]
    assert ex["image/object/class/label"] == [1]
    assert ex["image/object/alpha"] == [2]
    for key, value in [("height", 10), ("width", 11), ("length", 12), ("x", 13), ("y", 14),
                       ("z", 15), ("rot_y", 4)]:
        assert ex[f"image/object/3d_bbox/{key}"] == [value]
    # the OD API's `image/object/truncated` is a float; ours (VOC's key) is an int
    assert ex["image/object/kitti/truncated"] == [1.0]
    assert "image/object/truncated" not in ex


def test_training_layout_keeps_names_values_and_dontcare(tmp_path):
    root = tmp_path / "kitti"
    images = kitti_tree(root, testing=2)
    code, output = convert(root, tmp_path / "out")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "layout: KITTI (training/image_2 + training/label_2): split training"
    assert ("  note: testing/: image_2 without label_2 (KITTI's test images have no labels): "
            "not written") in lines
    assert (tmp_path / "out" / "labels.txt").read_text().split() == [
        "Car", "DontCare", "Pedestrian", "Person_sitting"]
    got = examples(tmp_path / "out", "training")
    assert sorted(got) == [f"{im.stem}.png" for im in images]
    for im in images:
        ex = got[f"{im.stem}.png"]
        assert texts(ex) == [o.name for o in im.objects]
        np.testing.assert_allclose(boxes_px(ex), [o.box for o in im.objects], atol=0.1)
        assert ex["image/object/is_crowd"] == [int(o.name == "DontCare") for o in im.objects]
        dont = [o.name == "DontCare" for o in im.objects]   # the devkit's fillers, kept
        assert ex["image/object/occluded"] == [-1 if d else o.occluded
                                               for d, o in zip(dont, im.objects)]
        np.testing.assert_allclose(ex["image/object/kitti/truncated"],
                                   [-1 if d else o.truncated for d, o in zip(dont, im.objects)],
                                   atol=1e-6)
        np.testing.assert_allclose(ex["image/object/3d_bbox/z"],
                                   [-1000 if d else o.loc[2] for d, o in zip(dont, im.objects)],
                                   atol=1e-4)
        assert ex["image/source_id"] == [im.stem.encode()]


def test_crowd_drop_leaves_dontcare_out(tmp_path):
    kitti_tree(tmp_path / "k")
    code, output = convert(tmp_path / "k", tmp_path / "out", "--crowd", "drop")
    assert code == 0, output
    assert [s[:3] for s in skipped_lines(tmp_path / "out")] == [("crowd_dropped", 1, 2)]
    assert "DontCare" not in texts(examples(tmp_path / "out", "training")["000000.png"])


def test_datumaro_subsets_and_root_layouts(tmp_path):
    kitti_tree(tmp_path / "d", subset="train")
    kitti_tree(tmp_path / "d", subset="val")
    code, output = convert(tmp_path / "d", tmp_path / "out")
    assert code == 0, output
    assert output.splitlines()[0] == ("layout: KITTI (<subset>/image_2 + <subset>/label_2): "
                                      "splits train, val")
    assert set(Manifest.read(tmp_path / "out").splits) == {"train", "val"}
    code, output = convert(tmp_path / "d" / "val", tmp_path / "out2")
    assert code == 0, output
    assert output.splitlines()[0] == "layout: KITTI (image_2/ + label_2/): split val"
    assert errors_of(tmp_path / "d", tmp_path / "out3", "--splits", "test") == (2, [
        "Error: --splits: expected split names of this KITTI "
        "folder (train, val), found 'test'"])


def test_classes_select_and_a_missing_name_is_an_error(tmp_path):
    kitti_tree(tmp_path / "k")
    code, output = convert(tmp_path / "k", tmp_path / "out", "--classes", "Pedestrian,Car")
    assert code == 0, output
    assert (tmp_path / "out" / "labels.txt").read_text().split() == ["Pedestrian", "Car"]
    assert [s[0] for s in skipped_lines(tmp_path / "out")] == ["class_not_selected"] * 2
    assert Manifest.read(tmp_path / "out").splits["training"].num_objects == 3
    assert errors_of(tmp_path / "k", tmp_path / "out2", "--classes", "Car,Bus") == (2, [
        "Error: --classes: expected names of the KITTI data set's classes (Car, "
        "DontCare, Pedestrian, Person_sitting), found 'Bus'"])


def test_ratio_makes_seeded_splits(tmp_path):
    images = [KittiImg(f"{i:06d}", [KittiObj("Car" if i % 2 else "Van", (1, 1, 20, 20))])
              for i in range(10)]
    kitti_tree(tmp_path / "k", images)
    runs = []
    for n in (1, 2):
        code, output = convert(tmp_path / "k", tmp_path / f"out{n}", "--ratio", "0.8,0.2",
                               "--seed", "3")
        assert code == 0, output
        runs.append({s: sorted(examples(tmp_path / f"out{n}", s)) for s in ("train", "val")})
    assert runs[0] == runs[1]
    assert [len(runs[0][s]) for s in ("train", "val")] == [8, 2]


def test_skips_with_their_reasons(tmp_path):
    root = tmp_path / "k"
    kitti_tree(root)
    label = root / "training" / "label_2"
    (label / "000001.txt").write_text("Pedestrian 0 0 0 1 2 3\nCar 0 0 0 1 2 30 20 1 1 1 1 1 1 0\n")
    (label / "000009.txt").write_text("Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0\n")
    (label / "000002.txt").write_text("Car 0 0 0 500 2 530 20 1 1 1 1 1 1 0\n")
    code, output = convert(root, tmp_path / "out")
    assert code == 0, output
    assert skipped_lines(tmp_path / "out") == [
        ("label_without_image", None, None, "training/label_2/000009.txt",
         "training/label_2/000009.txt: no image 000009.* in training/image_2/"),
        ("malformed_label_line", 2, 3, "000001.png",
         "training/label_2/000001.txt: line 1: expected 15 values (type truncated occluded "
         "alpha left top right bottom height width length x y z rotation_y), found 7"),
        ("zero_area_box", 3, 5, "000002.png",
         "bbox [500, 2, 30, 18] has no area inside the 124x40 image"),
    ]


def test_out_of_range_box_fails_strict_in_one_line(tmp_path):
    root = tmp_path / "k"
    kitti_tree(root)
    (root / "training" / "label_2" / "000002.txt").write_text(
        "Car 0 0 0 500 2 530 20 1 1 1 1 1 1 0\n")
    assert errors_of(root, tmp_path / "out", "--strict") == (1, [
        f"Error: --strict: 1 item(s) skipped; reasons are listed "
        f"in {tmp_path / 'out' / 'skipped.jsonl'}"])


def test_missing_images_fail_the_run_in_one_line(tmp_path):
    root = tmp_path / "k"
    kitti_tree(root)
    for p in (root / "training" / "image_2").iterdir():
        p.unlink()
    assert errors_of(root, tmp_path / "out") == (2, [
        f"Error: {root}: expected objects with class names (KITTI (training/image_2 + "
        "training/label_2): split training), found 3 label_2/ file(s) with no image of their "
        "name in image_2/"])


def test_a_missing_image_loses_the_split(tmp_path):
    root = tmp_path / "k"
    kitti_tree(root, [KittiImg("000000", [KittiObj("Car", (1, 1, 9, 9))])])
    (root / "training" / "image_2" / "000000.png").write_bytes(b"")
    code, output = convert(root, tmp_path / "out")
    assert code == 1
    (line,) = error_lines(output)
    assert line.startswith("Error: split 'training': no image written (1 of 1 skipped) "
                           "(corrupt_image 1)")


def test_no_classes_names_the_layout(tmp_path):
    root = tmp_path / "k"
    kitti_tree(root, [KittiImg("000000", [])])
    assert errors_of(root, tmp_path / "out") == (2, [
        f"Error: {root}: expected objects with class names (KITTI (training/image_2 + "
        "training/label_2): split training), found no object line in any label_2/*.txt"])


def test_detect_is_specific(tmp_path):
    kitti_tree(tmp_path / "k")
    assert kitti.detect(tmp_path / "k") and kitti.detect(tmp_path / "k" / "training")
    photo(tmp_path / "x" / "image_2" / "a.png")
    assert not kitti.detect(tmp_path / "x") and not kitti.detect(tmp_path / "nothing")


def test_same_bytes_for_any_worker_count_and_tfds_opens_it(tmp_path):
    from test_tfds import check_detection

    kitti_tree(tmp_path / "k", [KittiImg(f"{i:06d}", [KittiObj("Car", (i, 1, 20 + i, 30))])
                                for i in range(7)])
    check_detection(worker_counts_agree(tmp_path / "k", tmp_path))


def test_the_readme_fixture(tmp_path):
    from format_builders import fixture_counts

    lines, splits, skipped = fixture_counts("kitti", tmp_path, "--ratio", "0.8,0.2")
    assert lines[0] == ("layout: KITTI (training/image_2 + training/label_2): split training, "
                        "dealt into train, val by --ratio")
    assert splits == {"train": (8, 14), "val": (2, 6)} and skipped == {}
    assert (tmp_path / "out" / "labels.txt").read_text().split() == [
        "Car", "Dog", "DontCare", "Kite", "Person"]


@pytest.mark.slow
def test_beam_writes_the_local_bytes(tmp_path):
    from conftest import FIXTURES
    from format_builders import beam_matches_local

    local = beam_matches_local(FIXTURES / "kitti", tmp_path, ratio=(0.8, 0.2))
    splits = json.loads(local["manifest.json"])["splits"]
    assert splits and sum(".tfrecord-" in name for name in local) == 2 * len(splits)
