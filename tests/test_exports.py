"""Exports from labelling tools convert with no options, every object written; and a
run that lost most of a split never looks like a success."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cocoprep.cli import cli
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from conftest import read_records as records, write_image, write_json
from export_builders import (
    cvat_export, fiftyone_export, label_studio_export, roboflow_export,
    roboflow_keypoint_export,
)


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def convert(*args):
    return run("convert", *args, "--workers", "1")


def assert_verified(out: Path) -> None:
    result = run("verify", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: ")


def labels_of(out: Path) -> list[tuple[int, str]]:
    lm = LabelMap.read_pbtxt(out / "label_map.pbtxt")
    return list(zip(lm.ids, lm.names))


# ------------------------------------------------------------------ export shapes

def test_roboflow_export(tmp_path):
    objects = roboflow_export(tmp_path / "export")
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "layout: Roboflow export (3 splits)"
    assert lines[1] == ("  note: category 0 ('cells') has no annotations (a dataset "
                        "superclass, as Roboflow adds): left out of the label map; the "
                        "other categories keep their ids")
    m = Manifest.read(out)
    assert {s: i.num_objects for s, i in m.splits.items()} == objects
    assert sum(m.skipped.values()) == 0
    assert labels_of(out) == [(1, "Platelets"), (2, "RBC"), (3, "WBC")]
    assert (out / "labels.txt").read_text().split() == ["Platelets", "RBC", "WBC"]
    assert_verified(out)


def test_roboflow_keypoint_export_keeps_its_keypoints(tmp_path):
    """Keypoints are read from any file whose categories name them."""
    n = roboflow_keypoint_export(tmp_path / "export")
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out, "--no-shuffle")
    assert result.exit_code == 0, result.output
    recs = records(out, "train")
    assert sum(len(r["xmin"]) for r in recs) == n
    vis = recs[0]["keypoint_visibility"].tolist()
    assert vis == [2, 2, 0]
    np.testing.assert_allclose(recs[0]["keypoint_x"][:2], [8 / 64, 16 / 64], atol=1e-6)
    assert_verified(out)


@pytest.mark.parametrize("flat", [False, True], ids=["images-default", "images-flat"])
def test_cvat_export(tmp_path, flat):
    counts = cvat_export(tmp_path / "export", flat=flat)
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "layout: CVAT COCO 1.0 export (1 split)"
    m = Manifest.read(out)
    assert m.splits["default"].num_objects == counts["objects"]
    assert labels_of(out) == [(1, "car"), (2, "person")]
    assert_verified(out)


def test_cvat_export_with_masks_keeps_box_only_objects(tmp_path):
    """`segmentation: []` boxes get box-filled masks; RLE brush masks decode as drawn."""
    counts = cvat_export(tmp_path / "export")
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out, "--masks", "--no-shuffle")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert m.splits["default"].num_objects == counts["objects"]
    assert m.counters == {"masks_from_boxes": counts["box_only"]}
    assert (f"  {counts['box_only']} object(s) have no real mask: their masks are filled "
            "from their boxes") in result.stdout
    rec = records(out, "default")[0]
    box, _, brush = (np.asarray(Image.open(io.BytesIO(b))) for b in rec["mask"])
    assert box.sum() == 20 * 10 and box[6:16, 5:25].all()
    assert brush.sum() == 12 and brush[30:33, 10:14].all()
    assert_verified(out)


@pytest.mark.parametrize("names", ["images", "upload", "windows", "relative-upload"])
def test_label_studio_export(tmp_path, names):
    n = label_studio_export(tmp_path / "export", names=names)
    out = tmp_path / "out"
    result = convert(tmp_path / "export" / "result.json", "-o", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "layout: Label Studio export (1 split)"
    assert ("  note: category ids start at 0 ('Cat'), which label maps keep for the "
            "background: ids renumbered 1..N in category order") in lines
    m = Manifest.read(out)
    assert m.splits["result"].num_objects == n and sum(m.skipped.values()) == 0
    assert labels_of(out) == [(1, "Cat"), (2, "Dog")]
    recs = records(out, "result")
    by_id = {int(r["source_id"]): r for r in recs}
    assert by_id[0]["class_label"].tolist() == [1, 2]  # COCO ids 0, 1
    assert by_id[0]["filename"] == "images/0a1b2c3d-photo_0.jpg"
    assert_verified(out)


def test_label_studio_export_directory(tmp_path):
    n = label_studio_export(tmp_path / "export", names="upload")
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out)
    assert result.exit_code == 0, result.output
    assert ("  note: result: 3 file name(s) were absolute or outside the image folder "
            f"(e.g. '/data/upload/3/0a1b2c3d-photo_0.jpg'); each was looked up by its file "
            f"name in {tmp_path / 'export'}") in result.stdout.splitlines()
    assert Manifest.read(out).splits["result"].num_objects == n


@pytest.mark.parametrize("as_file", [False, True], ids=["dir", "labels.json"])
def test_fiftyone_export(tmp_path, as_file):
    n = fiftyone_export(tmp_path / "export")
    out = tmp_path / "out"
    src = tmp_path / "export" / "labels.json" if as_file else tmp_path / "export"
    result = convert(src, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "layout: FiftyOne export (1 split)"
    m = Manifest.read(out)
    assert m.splits["labels"].num_objects == n
    assert labels_of(out) == [(1, "airplane"), (2, "bird")]
    assert_verified(out)


@pytest.mark.parametrize("value, shown", [(64.5, "a number 64.5"), ("inf", None)])
def test_non_integral_sizes_are_still_refused(tmp_path, value, shown):
    fiftyone_export(tmp_path / "export")
    path = tmp_path / "export" / "labels.json"
    data = json.loads(path.read_text())
    data["images"][0]["width"] = float(value)
    path.write_text(json.dumps(data))  # inf is written as Infinity
    result = convert(tmp_path / "export", "-o", tmp_path / "out")
    assert result.exit_code == 2
    found = shown or "a number Infinity"
    assert result.stderr.strip() == (f"Error: {path}: expected images[0].width (image id 1) "
                                     f"to be a positive integer, found {found}")


# ------------------------------------------------------------------ never silent

def test_label_studio_upload_paths_without_images_fail_and_name_the_folder(tmp_path):
    label_studio_export(tmp_path / "export", names="upload", write_images=False)
    uploads = tmp_path / "label-studio" / "media" / "upload" / "3"
    for i in range(3):
        write_image(uploads / f"{i:x}a1b2c3d-photo_{i}.jpg", 64, 48, seed=i)
    out = tmp_path / "out"
    result = convert(tmp_path / "export" / "result.json", "-o", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: split 'result': no image written (3 of 3 skipped) (missing_file 3); "
        f"3 image(s) not found under {tmp_path / 'export'}; their file names look like "
        "Label Studio upload paths ('/data/upload/3/0a1b2c3d-photo_0.jpg'): export 'COCO "
        "with images', or point --images at the folder holding the uploaded files (Label "
        f"Studio's media/upload/<id>); {uploads} holds such files: --images {uploads}? "
        f"[output written to {out} (reasons in {out / 'skipped.jsonl'}); --allow-partial "
        "accepts such a run]")
    assert Manifest.read(out).splits["result"].num_examples == 0  # written, verifiable
    # the suggested fix works
    result = convert(tmp_path / "export" / "result.json", "-o", out, "--images", uploads)
    assert result.exit_code == 0, result.output
    assert Manifest.read(out).splits["result"].num_objects == 6


def test_images_elsewhere_fail_and_name_the_folder(tmp_path):
    fiftyone_export(tmp_path / "export")
    (tmp_path / "export" / "data").rename(tmp_path / "export" / "photos")
    (tmp_path / "export" / "data").mkdir()
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out)
    assert result.exit_code == 1
    photos = tmp_path / "export" / "photos"
    assert (f"3 image(s) not found under {tmp_path / 'export' / 'data'}; {photos} holds such "
            f"files: --images {photos}?") in result.stderr
    assert result.stderr.count("Error:") == 1 and "Traceback" not in result.stderr
    # the summary is still printed: the output exists
    assert "  labels       0 images        0 objects" in result.stdout


def test_most_objects_lost_fails_with_the_reason(tmp_path):
    fiftyone_export(tmp_path / "export")
    path = tmp_path / "export" / "labels.json"
    data = json.loads(path.read_text())
    for a in data["annotations"][:2]:
        a["category_id"] = 7
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = convert(tmp_path / "export", "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: split 'labels': 2 of 3 objects skipped (unknown_category 2); annotations "
        "use category ids the file's categories do not list [output written to ")
    result = convert(tmp_path / "export", "-o", out, "--allow-partial")
    assert result.exit_code == 0, result.stderr
    assert Manifest.read(out).splits["labels"].num_objects == 1


def test_more_than_half_of_the_images_lost_fails(tmp_path):
    fiftyone_export(tmp_path / "export")
    for name in ("000001.jpg", "000002.jpg"):
        (tmp_path / "export" / "data" / name).write_bytes(b"not an image")
    result = convert(tmp_path / "export", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: split 'labels': 2 of 3 images skipped (corrupt_image 2); the files do not "
        "decode: are they complete (a finished download, unzipped)? [output written to ")


def test_a_split_listing_no_images_fails(tmp_path):
    roboflow_export(tmp_path / "export", images_per_split=(2, 1, 0))
    result = convert(tmp_path / "export", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: split 'test': no image written (the split lists no images) [output written")
    assert convert(tmp_path / "export", "-o", tmp_path / "out", "--splits", "train,valid",
                   "-q").exit_code == 0


def test_class_folders_mostly_unreadable_fail(tmp_path):
    """`split` uses the same rule."""
    for cls in ("cat", "dog"):
        for i in range(4):
            p = write_image(tmp_path / "src" / cls / f"{i}.jpg", 16, 16, seed=i + 10 * len(cls))
            if i:
                p.write_bytes(b"broken" + bytes([i]) + cls.encode())
    result = run("split", tmp_path / "src", "-o", tmp_path / "out", "--workers", "1",
                 "--ratio", "0.5,0.5")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: split '")
    assert "skipped) (corrupt_image 4); the files do not decode" in result.stderr
    assert "--allow-partial accepts such a run]" in result.stderr
    result = run("split", tmp_path / "src", "-o", tmp_path / "out", "--workers", "1",
                 "--ratio", "0.5,0.5", "--allow-partial", "-q")
    assert result.exit_code == 0, result.stderr


# ------------------------------------------------------------------ determinism

def _bad_export(root: Path) -> None:
    label_studio_export(root, names="windows")
    images = root / "images"
    (images / "0a1b2c3d-photo_0.jpg").write_bytes(b"\x00garbage, not an image")
    data = (images / "1a1b2c3d-photo_1.jpg").read_bytes()
    (images / "1a1b2c3d-photo_1.jpg").write_bytes(data[: len(data) // 2])
    path = root / "result.json"
    doc = json.loads(path.read_text())
    doc["images"].append({"width": 64, "height": 48, "id": 9, "file_name": "images\\gone.jpg"})
    doc["annotations"].append({"id": 99, "image_id": 9, "category_id": 1, "bbox": [1, 2]})
    doc["annotations"].append({"id": 98, "image_id": 2, "category_id": 5, "bbox": [1, 2, 3, 4]})
    write_json(path, doc)


def test_two_runs_with_bad_items_give_identical_output(tmp_path):
    _bad_export(tmp_path / "export")
    outs = []
    for k, workers in enumerate(("1", "2")):
        out = tmp_path / f"out{k}"
        result = run("convert", tmp_path / "export", "-o", out, "--workers", workers,
                     "--masks", "--allow-partial")
        assert result.exit_code == 0, result.output
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*"))
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*"))
    assert "skipped.jsonl" in {str(f) for f in files}
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    skipped = (outs[0] / "skipped.jsonl").read_text()
    assert "corrupt_image" in skipped and " at 0x" not in skipped


def test_images_lost_before_splitting_count_against_the_run(tmp_path):
    """Files kept out before they had a split (no split name in skipped.jsonl) still
    count: most of the tree unreadable fails the run."""
    from cocoprep.errors import DataLossError
    from cocoprep.losses import check_losses
    from cocoprep.manifest import SplitInfo
    from cocoprep.records import SkippedItem

    m = Manifest(task="classification", schema_version="1",
                 splits={"train": SplitInfo(2, 0, ()), "val": SplitInfo(1, 0, ())})
    lost = [SkippedItem(None, None, None, f"cat/{i}.jpg", "unreadable_file") for i in range(4)]
    with pytest.raises(DataLossError) as e:
        check_losses(m, lost, out="o")
    assert str(e.value) == ("4 of 7 images skipped (unreadable_file 4 before splitting) "
                            "[output written to o (reasons in o/skipped.jsonl); "
                            "--allow-partial accepts such a run]")
    check_losses(m, lost[:3], out="o")  # 3 of 6: not more than half
    check_losses(m, lost, out="o", allow_partial=True)
