"""YOLO in: every layout the tools write converts with every object's class and box
as its label line says, negatives kept; each bad line and stray label file is
reported with its reason; the never-silent rule; masks from polygons; same bytes
for any worker count and for Beam; read back through cocoprep.load."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cocoprep.errors import InputError, UsageError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import SKIPPED_NAME, Manifest
from cocoprep.sources import load_detection, yolo, yololayout
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.yololabels import (
    MALFORMED_LINE, OUT_OF_RANGE, UNKNOWN_CLASS, LabelObject, LineProblem, parse_label_text,
    parse_line,
)
from cocoprep.sources.yololayout import label_path
from conftest import read_records, run_cli
from yolo_builders import (
    NAMES, Expected, box_line, cvat_ultralytics, cvat_yolo11, darknet_folder,
    label_studio_tree, put_image, roboflow_tree, segmentation_tree, ultralytics_tree,
)


def convert(src: Path, out: Path, *args) -> tuple[int, str]:
    return run_cli("convert", src, "-o", out, "--workers", "1", *args)


def request(**kw) -> SourceRequest:
    return SourceRequest(**kw)


# ------------------------------------------------------------------ label lines

def test_box_line_becomes_top_left_and_size():
    obj = parse_line(3, "2 0.5 0.25 0.2 0.1", num_classes=3)
    assert obj.line == 3 and obj.class_index == 2 and obj.polygon is None
    assert obj.box == pytest.approx((0.4, 0.2, 0.2, 0.1))


def test_polygon_line_gives_its_bounding_box_and_points():
    obj = parse_line(1, "0 0.1 0.2 0.5 0.3 0.3 0.7", num_classes=1)
    assert obj.box == pytest.approx((0.1, 0.2, 0.4, 0.5))
    assert obj.polygon == (0.1, 0.2, 0.5, 0.3, 0.3, 0.7)


def test_obb_corners_are_a_polygon():
    obj = parse_line(1, "0 0.2 0.1 0.6 0.2 0.5 0.6 0.1 0.5", num_classes=1)
    assert obj.box == pytest.approx((0.1, 0.1, 0.5, 0.5)) and len(obj.polygon) == 8


def test_pose_line_reads_its_box_and_leaves_the_keypoints():
    line = "0 0.5 0.5 0.2 0.4 " + " ".join(["0.5 0.5 2"] * 17)
    obj = parse_line(1, line, num_classes=1, keypoint_values=51)
    assert obj.box == pytest.approx((0.4, 0.3, 0.2, 0.4)) and obj.polygon is None
    bad = parse_line(1, "0 0.5 0.5 0.2 0.4 0.1", num_classes=1, keypoint_values=51)
    assert bad.reason == MALFORMED_LINE and "51 keypoint values" in bad.detail


@pytest.mark.parametrize("line", ["0 0.5 0.5 0.2", "0 0.5 0.5 0.2 0.2 0.3",
                                  "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "x 0.5 0.5 0.2 0.2",
                                  "1.5 0.5 0.5 0.2 0.2", "0 0.5 nan 0.2 0.2",
                                  "0 0.5 0.5 0.2 inf", "0 0,5 0.5 0.2 0.2"])
def test_malformed_lines_are_problems_with_their_line_number(line):
    got = parse_line(7, line, num_classes=3)
    assert isinstance(got, LineProblem)
    assert got.reason == MALFORMED_LINE and got.line == 7
    assert got.detail.startswith("line 7: ")


@pytest.mark.parametrize("cls", ["3", "-1", "17"])
def test_a_class_outside_names_is_unknown(cls):
    got = parse_line(2, f"{cls} 0.5 0.5 0.2 0.2", num_classes=3)
    assert got.reason == UNKNOWN_CLASS
    assert got.detail == f"line 2: class {int(cls)} is not in names (0..2)"


def test_integral_float_classes_are_read():
    assert parse_line(1, "2.0 0.5 0.5 0.2 0.2", num_classes=3).class_index == 2


@pytest.mark.parametrize("value, ok", [("1.0099", True), ("-0.0099", True),
                                       ("1.011", False), ("-0.02", False), ("57", False)])
def test_coordinates_tolerate_one_percent_outside_the_image(value, ok):
    got = parse_line(1, f"0 {value} 0.5 0.2 0.2", num_classes=1)
    if ok:
        assert isinstance(got, LabelObject)
    else:
        assert got.reason == OUT_OF_RANGE
        assert got.detail.startswith(f"line 1: coordinate {float(value):g} is outside [0, 1]")


def test_a_file_keeps_line_order_and_ignores_blank_lines():
    parsed = parse_label_text("\ufeff0 0.5 0.5 0.2 0.2\n\n   \n9 0.5 0.5 0.1 0.1\r\n"
                              "1 0.5 0.5 0.1 0.1", num_classes=2)
    assert [o.line for o in parsed.objects] == [1, 5]
    assert [(p.line, p.reason) for p in parsed.problems] == [(4, UNKNOWN_CLASS)]
    assert parsed.num_lines == 3


# ------------------------------------------------------------------ label paths

@pytest.mark.parametrize("image, label", [
    ("images/train/a.jpg", "labels/train/a.txt"),             # Ultralytics
    ("train/images/a.b.jpg", "train/labels/a.b.txt"),         # Roboflow
    ("images/x/images/a.png", "images/x/labels/a.txt"),       # the last `images` only
    ("obj_train_data/a.jpg", "obj_train_data/a.txt"),         # darknet: beside
    ("images.jpg", "images.txt"),                             # a file is no folder
])
def test_label_path_replaces_the_last_images_folder(tmp_path, image, label):
    assert label_path(tmp_path / image, tmp_path) == tmp_path / label


def test_label_path_leaves_folders_above_the_root_alone(tmp_path):
    root = tmp_path / "images" / "set"
    assert label_path(root / "a.jpg", root) == root / "a.txt"


# ------------------------------------------------------------------ data.yaml

def _yaml(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(text)
    put_image(root / "images" / "train" / "a.jpg", 32, 24)
    return root


@pytest.mark.parametrize("names", ["names: [a, b]", "names:\n  0: a\n  1: b",
                                   "names: {'1': b, '0': a}", "nc: 2\nnames: [a, b]"])
def test_names_as_a_list_or_a_map(tmp_path, names):
    root = _yaml(tmp_path, f"train: images/train\n{names}\n")
    src = yolo.load(root, request())
    assert src.labels.label_map.names == ["a", "b"] and src.labels.label_map.ids == [1, 2]
    assert src.labels.labels == {0: (1, "a"), 1: (2, "b")}


def test_nc_without_names_names_the_classes_as_ultralytics_does(tmp_path):
    src = yolo.load(_yaml(tmp_path, "train: images/train\nnc: 2\n"), request())
    assert src.labels.label_map.names == ["class_0", "class_1"]
    assert src.notes == ("data.yaml has no names: classes named class_0..class_1",)


@pytest.mark.parametrize("text, message", [
    ("names: [a, b]\nnc: 3", "expected nc to equal the number of names (2), found 3"),
    ("names: {0: a, 2: b}", "expected names keys 0..1, found [0, 2]"),
    ("names: [a, a]", "expected each class name once, found 'a' for classes 0 and 1"),
    ("names: {x: a}", "expected names keys to be class indices (0: person), found 'x'"),
    ("val: images/train", "expected names (a list or an {index: name} map) or nc, found "
                          "neither"),
    ("names: [a]\nval: [1, 2]", "expected val: a path or a list of paths, found [1, 2]"),
    ("names: [a]\ntrain: [a", "expected YAML, found a syntax error at line 3"),
])
def test_bad_data_yaml_is_one_error_line(tmp_path, text, message):
    root = _yaml(tmp_path / "set", text + "\n")
    code, output = convert(root / "data.yaml", tmp_path / "out")
    assert code == 2
    assert output.strip().splitlines()[-1] == f"Error: {root / 'data.yaml'}: {message}"
    assert "Traceback" not in output


def test_a_missing_split_folder_names_the_key_and_where_it_looked(tmp_path):
    root = _yaml(tmp_path, "train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(InputError) as e:
        yolo.load(root, request())
    assert "val: 'images/val' to be a folder of images or a .txt list of them (looked " \
           f"for {root / 'images/val'})" in str(e.value)
    # --splits train reads only what it asked for
    assert [s.name for s in yolo.load(root, request(splits=("train",))).splits] == ["train"]


def test_roboflow_parent_paths_follow_ultralytics(tmp_path):
    """`../train/images` is below the YAML's parent when that exists, else `train/images`
    beside the YAML (the rule of Ultralytics' check_det_dataset)."""
    root = _yaml(tmp_path / "set", "train: ../images/train\nnames: [a]\n")
    assert yolo.load(root, request()).splits[0].source.image_dir == root / "images" / "train"
    put_image(tmp_path / "images" / "train" / "b.jpg", 32, 24)
    got = yolo.load(root, request()).splits[0].source
    assert got.image_dir == tmp_path / "images" / "train" and got.file_names == ["b.jpg"]


def test_path_key_is_the_root_and_a_foreign_one_falls_back(tmp_path):
    _yaml(tmp_path / "data", "x: 1\n")
    cfg = tmp_path / "cfg" / "set.yaml"
    cfg.parent.mkdir()
    cfg.write_text("path: ../data\ntrain: images/train\nnames: [a]\n")
    assert yolo.load(cfg, request()).splits[0].source.file_names == ["a.jpg"]
    root = _yaml(tmp_path / "moved", "path: /content/datasets/gone\ntrain: images/train\n"
                 "names: [a]\n")
    src = yolo.load(root, request())
    assert src.splits[0].source.file_names == ["a.jpg"]
    assert src.notes == ("path: /content/datasets/gone is not a folder here; paths are read "
                         "from the YAML's folder",)


def test_splits_as_lists_of_folders_and_image_lists(tmp_path):
    root = _yaml(tmp_path, "names: [a]\ntrain: [images/train, extra.txt]\n")
    put_image(root / "more" / "images" / "c.jpg", 32, 24)
    put_image(root / "more" / "images" / "d.jpg", 32, 24)
    (root / "extra.txt").write_text("./more/images/d.jpg\nmore/images/c.jpg\n"
                                    "images/train/a.jpg\n")
    split = yolo.load(root, request()).splits[0].source
    assert split.image_dir == root
    # folder images sorted, then the list in its own order; a repeated image once
    assert split.file_names == ["images/train/a.jpg", "more/images/d.jpg",
                                "more/images/c.jpg"]
    assert split.image_ids.tolist() == [1, 2, 3]


def test_options_that_cannot_apply(tmp_path):
    roboflow_tree(tmp_path / "rf")
    with pytest.raises(UsageError, match="--ratio: expected exactly one split"):
        yolo.load(tmp_path / "rf", request(ratio=(0.8, 0.2)))
    with pytest.raises(UsageError, match="--images: expected no --images"):
        yolo.load(tmp_path / "rf", request(images="x"))
    with pytest.raises(UsageError, match=r"--splits: expected names from \['train', 'val', "
                       r"'test'\], found 'valid'"):
        yolo.load(tmp_path / "rf", request(splits=("valid",)))
    with pytest.raises(UsageError, match=r"--classes: expected names of the YOLO data "
                       r"set's classes \(.*\), found 'x, y, z'$"):
        load_detection(tmp_path / "rf", request(classes=("x", "y", "z")))


def test_detect_is_cheap_and_specific(tmp_path):
    assert not yolo.detect(tmp_path)
    put_image(tmp_path / "a.jpg", 8, 8)
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert not yolo.detect(tmp_path)          # no names: not recognisably YOLO
    (tmp_path / "other.yaml").write_text("foo: 1\n")
    assert not yolo.detect(tmp_path)
    (tmp_path / "classes.txt").write_text("a\n")
    assert yolo.detect(tmp_path)


def test_darknet_folder_without_names_takes_classes(tmp_path):
    put_image(tmp_path / "a.jpg", 8, 8)
    (tmp_path / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    src = yolo.load(tmp_path, request(classes=("cat", "dog")))
    assert src.labels.label_map.names == ["cat", "dog"]
    with pytest.raises(InputError, match="expected a YOLO data set"):
        yolo.load(tmp_path, request())


# ------------------------------------------------------------------ whole layouts

LAYOUTS = {
    "ultralytics": (ultralytics_tree, "YOLO (Ultralytics data.yaml): splits train, val"),
    "roboflow": (roboflow_tree, "YOLO (Roboflow data.yaml): splits train, val, test"),
    "cvat_yolo11": (cvat_yolo11, "YOLO (darknet obj.data): split train"),
    "cvat_ultralytics": (cvat_ultralytics, "YOLO (Ultralytics data.yaml): split train"),
    "label_studio": (label_studio_tree, "YOLO (Label Studio YOLO export): split export"),
    "darknet": (darknet_folder, "YOLO (darknet folder): split export"),
}


def assert_records_match(out: Path, expected: Expected) -> None:
    """Every image written, each object's class and box within 0.1 px of its line."""
    m = Manifest.read(out)
    assert sorted(m.splits) == sorted(expected)
    assert LabelMap.read_pbtxt(out / "label_map.pbtxt").names == list(NAMES)
    for split, images in expected.items():
        records = {r["filename"]: r for r in read_records(out, split)}
        assert sorted(records) == sorted(im.name for im in images)
        for im in images:
            r = records[im.name]
            assert (int(r["width"]), int(r["height"])) == (im.width, im.height)
            assert r["class_label"].tolist() == [o.cls + 1 for o in im.objects]
            assert [t.decode() for t in r["class_text"]] == [NAMES[o.cls] for o in im.objects]
            got = np.stack([r["xmin"] * im.width, r["ymin"] * im.height,
                            (r["xmax"] - r["xmin"]) * im.width,
                            (r["ymax"] - r["ymin"]) * im.height], -1) if im.objects else \
                np.zeros((0, 4))
            want = np.array([o.box for o in im.objects]).reshape(-1, 4)
            np.testing.assert_allclose(got, want, atol=0.1)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_converts_with_every_box(tmp_path, layout):
    build, first_line = LAYOUTS[layout]
    expected = build(tmp_path / "export")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "export", out)
    assert code == 0, output
    assert output.splitlines()[0] == f"layout: {first_line}"
    assert_records_match(out, expected)
    m = Manifest.read(out)
    assert sum(m.skipped.values()) == 0
    assert not (out / SKIPPED_NAME).exists() or not (out / SKIPPED_NAME).read_text()


def test_negatives_and_png_are_written(tmp_path):
    expected = ultralytics_tree(tmp_path / "u")
    out = tmp_path / "out"
    assert convert(tmp_path / "u" / "data.yaml", out)[0] == 0
    records = {r["filename"]: r for r in read_records(out, "train")}
    assert records["train_001.png"]["format"] == "png"
    assert len(records["train_003.jpg"]["xmin"]) == 0          # no label file
    val = {r["filename"]: r for r in read_records(out, "val")}
    assert len(val["val_001.jpg"]["xmin"]) == 0                # an empty label file
    assert Manifest.read(out).splits["train"].num_examples == len(expected["train"])


def test_ratio_deals_one_split_out(tmp_path):
    darknet_folder(tmp_path / "d")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "d", out, "--ratio", "0.67,0.33")
    assert code == 0, output
    m = Manifest.read(out)
    assert {s: i.num_examples for s, i in m.splits.items()} == {"train": 2, "val": 1}


# ------------------------------------------------------------------ skips

def _bad_tree(root: Path) -> None:
    """One split: a good image, one with each kind of bad line, a stray label file."""
    root.mkdir(parents=True)
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b]\n")
    lines = {"good": ["0 0.5 0.5 0.2 0.2", "1 0.3 0.3 0.2 0.2"],
             "bad": ["0 0.5 0.5 0.2 0.2", "", "5 0.5 0.5 0.2 0.2", "0 0.5 0.5",
                     "1 120 80 30 40", "1 0.4 0.4 0.1 0.1"]}
    for stem, ls in lines.items():
        put_image(root / "images" / "train" / f"{stem}.jpg", 40, 30)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{stem}.txt").write_text("\n".join(ls) + "\n")
    (root / "labels" / "train" / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")


def test_each_bad_line_is_reported_with_its_line_number(tmp_path):
    _bad_tree(tmp_path / "y")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "y", out)
    assert code == 0, output
    items = [json.loads(line) for line in (out / SKIPPED_NAME).read_text().splitlines()]
    got = [(i["reason"], i["image_id"], i["annotation_id"], i["file"], i["detail"])
           for i in items]
    assert got == [
        ("unknown_category", 1, 2, "bad.jpg",
         "labels/train/bad.txt line 3: class 5 is not in names (0..1)"),
        ("malformed_label_line", 1, 3, "bad.jpg",
         "labels/train/bad.txt line 4: expected class cx cy w h, or a class and 3 or "
         "more x y pairs, found 2 value(s) after the class"),
        ("coordinates_out_of_range", 1, 4, "bad.jpg",
         "labels/train/bad.txt line 5: coordinate 120 is outside [0, 1] by more than "
         "0.01 (not normalized?)"),
        ("label_without_image", None, None, "labels/train/gone.txt",
         "labels/train/gone.txt: a label file with no image of its name in split 'train'"),
    ]
    m = Manifest.read(out)
    assert m.splits["train"].num_examples == 2 and m.splits["train"].num_objects == 4
    records = {r["filename"]: r for r in read_records(out, "train")}
    assert records["bad.jpg"]["class_label"].tolist() == [1, 2]


def test_strict_fails_on_a_bad_line(tmp_path):
    _bad_tree(tmp_path / "y")
    code, output = convert(tmp_path / "y", tmp_path / "out", "--strict")
    assert code == 1
    assert output.strip().splitlines()[-1].startswith("Error: --strict: 4 item(s) skipped")


def test_pixel_coordinates_fail_the_run_with_the_fix(tmp_path):
    """Labels in pixels (a common mistake): most objects lost -> exit 1, one line."""
    root = tmp_path / "y"
    root.mkdir()
    (root / "classes.txt").write_text("a\n")
    for i in range(3):
        put_image(root / f"{i}.jpg", 40, 30)
        (root / f"{i}.txt").write_text("0 20 15 10 8\n" if i else "0 0.5 0.5 0.2 0.2\n")
    code, output = convert(root, tmp_path / "out")
    assert code == 1
    lines = [ln for ln in output.splitlines() if ln.startswith("Error:")]
    assert lines == [
        "Error: split 'y': 2 of 3 objects skipped (coordinates_out_of_range 2); label "
        "coordinates must be fractions of the image size (class cx cy w h, each in [0, 1]); "
        f"pixel coordinates are not YOLO [output written to {tmp_path / 'out'} (reasons in "
        f"{tmp_path / 'out' / SKIPPED_NAME}); --allow-partial accepts such a run]"]
    assert "Traceback" not in output
    assert convert(root, tmp_path / "out2", "--allow-partial")[0] == 0


def test_labels_without_their_images_fail_the_run(tmp_path):
    """A download that lost its images: every label file stray, no image written."""
    roboflow_tree(tmp_path / "rf", sizes=(2, 1, 1))
    for p in (tmp_path / "rf" / "valid" / "images").iterdir():
        p.unlink()
    code, output = convert(tmp_path / "rf", tmp_path / "out")
    assert code == 1
    error = [ln for ln in output.splitlines() if ln.startswith("Error:")]
    assert error[0].startswith(
        "Error: split 'val': no image written (1 of 1 skipped) (label_without_image 1); "
        "label files have no image of the same name: are the images in images/<split> "
        "beside labels/<split> (or <split>/images beside <split>/labels)?")


def test_listed_images_that_are_missing_are_reported(tmp_path):
    cvat_yolo11(tmp_path / "c")
    (tmp_path / "c" / "obj_train_data" / "frame_000001.jpg").unlink()
    out = tmp_path / "out"
    assert convert(tmp_path / "c", out)[0] == 0
    reasons = Manifest.read(out).skipped
    assert reasons.get("missing_file") == 1 and reasons.get("image_skipped") == 2


# ------------------------------------------------------------------ masks

def test_masks_are_drawn_from_polygons(tmp_path):
    expected = segmentation_tree(tmp_path / "s")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "s", out, "--masks")
    assert code == 0, output
    (r,) = read_records(out, "train")
    im = expected["train"][0]
    assert r["class_label"].tolist() == [1, 3, 2]
    for obj, png in zip(im.objects, r["mask"]):
        mask = np.asarray(Image.open(io.BytesIO(png)))
        assert mask.shape == (im.height, im.width) and set(np.unique(mask)) <= {0, 1}
        if obj.polygon is None:                                # a box line: box-filled
            x, y, w, h = obj.box
            assert mask.sum() == pytest.approx(w * h, rel=0.15)
            continue
        ref = Image.new("L", (im.width, im.height))
        pts = list(zip(obj.polygon[0::2], obj.polygon[1::2]))
        ImageDraw.Draw(ref).polygon(pts, fill=1)
        ref = np.asarray(ref)
        inside = (mask == 1) & (ref == 1)
        assert inside.sum() >= 0.9 * ref.sum()                  # the polygon is covered
        assert mask.sum() <= 1.1 * ref.sum()                   # and not much more
        x, y, w, h = obj.box
        ys, xs = np.nonzero(mask)
        assert xs.min() >= math.floor(x) and xs.max() <= math.ceil(x + w)
        assert ys.min() >= math.floor(y) and ys.max() <= math.ceil(y + h)
    assert Manifest.read(out).counters.get("masks_from_boxes") == 1


# ------------------------------------------------------------------ determinism, read back

def _tree_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_same_bytes_for_any_worker_count(tmp_path):
    roboflow_tree(tmp_path / "rf", sizes=(5, 2, 1))
    _bad_lines(tmp_path / "rf" / "train" / "labels")
    common = ("--quiet", "--num-shards", "2", "--masks")
    a = run_cli("convert", tmp_path / "rf", "-o", tmp_path / "w1", "--workers", "1", *common)
    b = run_cli("convert", tmp_path / "rf", "-o", tmp_path / "w2", "--workers", "2", *common)
    assert a[0] == 0 and b[0] == 0, a[1] + b[1]
    assert _tree_bytes(tmp_path / "w1") == _tree_bytes(tmp_path / "w2")
    assert Manifest.read(tmp_path / "w1").skipped == {"unknown_category": 1}


def _bad_lines(labels: Path) -> None:
    first = sorted(labels.iterdir())[0]
    first.write_text(first.read_text() + "7 0.5 0.5 0.1 0.1\n")


@pytest.mark.slow
def test_beam_writes_the_local_runner_bytes(tmp_path):
    from test_beam import IN_MEMORY

    roboflow_tree(tmp_path / "rf", sizes=(4, 2, 1))
    _bad_lines(tmp_path / "rf" / "train" / "labels")
    common = ("--quiet", "--num-shards", "2")
    a = run_cli("convert", tmp_path / "rf", "-o", tmp_path / "local", "--workers", "2",
                *common)
    b = run_cli("convert", tmp_path / "rf", "-o", tmp_path / "beam", "--runner", "beam",
                "--beam-options", " ".join(IN_MEMORY), *common)
    assert a[0] == 0 and b[0] == 0, a[1] + b[1]
    assert _tree_bytes(tmp_path / "local") == _tree_bytes(tmp_path / "beam")


def test_read_back_through_load(tmp_path):
    import cocoprep

    expected = ultralytics_tree(tmp_path / "u")
    out = tmp_path / "out"
    assert convert(tmp_path / "u", out)[0] == 0
    got = {e["filename"].numpy().decode(): e for e in cocoprep.load(out, "train")}
    assert sorted(got) == sorted(im.name for im in expected["train"])
    for im in expected["train"]:
        e = got[im.name]
        assert tuple(e["image"].shape[:2]) == (im.height, im.width)
        assert e["label_ids"].numpy().tolist() == [o.cls + 1 for o in im.objects]
        boxes = e["boxes"].numpy()              # ymin, xmin, ymax, xmax, normalized
        want = np.array([[y / im.height, x / im.width, (y + h) / im.height,
                          (x + w) / im.width] for x, y, w, h in (o.box for o in im.objects)])
        np.testing.assert_allclose(boxes.reshape(-1, 4), want.reshape(-1, 4), atol=0.1 / 48)


def test_box_line_helper_round_trips():
    text, obj = box_line(1, 10, 5, 20, 10, 64, 48)
    assert text == "1 0.312500 0.208333 0.312500 0.208333"
    assert obj.box == pytest.approx((10, 5, 20, 10), abs=1e-4)


def test_the_readme_fixture_converts(tmp_path, fixtures_dir):
    out = tmp_path / "out"
    code, output = convert(fixtures_dir / "yolo", out, "--masks")
    assert code == 0, output
    assert output.splitlines()[0] == "layout: YOLO (Roboflow data.yaml): splits train, val, test"
    m = Manifest.read(out)
    assert {s: (i.num_examples, i.num_objects) for s, i in m.splits.items()} == \
        {"train": (4, 5), "val": (2, 3), "test": (1, 1)}
    assert m.skipped == {"unknown_category": 1}
