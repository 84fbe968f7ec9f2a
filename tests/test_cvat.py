"""CVAT for images 1.1 in: every area shape gives its box to 0.1 px (rotated boxes the
box around them), lines and points are reported, labels come from <meta>, occluded /
z_order / group / attributes / rotation / tags are kept, Datumaro's XML per subset
converts (it used to end in `label_map.pbtxt: no items`), bad XML is one Error line."""

from __future__ import annotations

import gc
import io
import json

import numpy as np
import pytest
from PIL import Image

from cocoprep.errors import InputError
from cocoprep.manifest import Manifest
from cocoprep.sources import cvat
from cocoprep.sources.detection import SourceRequest
from format_builders import (
    boxes_px, convert, cvat_box, cvat_image, cvat_mask, cvat_tree, cvat_xml, error_lines,
    errors_of, examples, photo, skipped_lines, texts, worker_counts_agree,
)


def test_task_export_boxes_values_and_labels(tmp_path):
    boxes = cvat_tree(tmp_path / "c")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "c", out)
    assert code == 0, output
    assert output.splitlines()[:3] == [
        "layout: CVAT for images 1.1 (annotations.xml + images/): split default",
        "  note: label ids 1..4: the format's label list, then other classes sorted "
        "(--classes picks and orders)",
        "  note: label list from <meta>: 4 label(s)"]
    assert (out / "labels.txt").read_text().split() == ["car", "person", "lane", "bicycle"]
    got = examples(out, "default")
    assert sorted(got) == ["a.jpg", "sub/b.jpg"]
    a = got["a.jpg"]
    assert texts(a) == [n for n, *_ in boxes]
    np.testing.assert_allclose(boxes_px(a), [b for _, *b in boxes], atol=0.1)
    assert a["image/object/class/label"] == [1, 1, 2, 2, 2]
    assert a["image/object/occluded"] == [1, 0, 0, 1, 0]
    assert a["image/object/z_order"] == [2, 0, 1, 0, 0]
    assert a["image/object/group_id"] == [3, 0, 0, 0, 0]
    assert a["image/object/rotation"] == [0, 90, 0, 0, 0]
    assert texts(a, "image/object/shape") == ["box", "box", "polygon", "ellipse", "mask"]
    assert texts(a, "image/object/attributes")[:2] == ['{"color": "blue"}', "{}"]
    assert texts(a, "image/class/text") == ["outdoor"]
    assert skipped_lines(out) == [
        ("unsupported_shape", 1, 6, "a.jpg", "annotations.xml: <polyline> 5 ('lane'): a "
         "polyline has no area, so it is not an object to detect"),
        ("unsupported_shape", 1, 7, "a.jpg", "annotations.xml: <points> 6 ('person'): a "
         "points has no area, so it is not an object to detect")]


def test_masks_follow_each_shape(tmp_path):
    cvat_tree(tmp_path / "c")
    code, output = convert(tmp_path / "c", tmp_path / "out", "--masks")
    assert code == 0, output
    a = examples(tmp_path / "out", "default")["a.jpg"]
    masks = [np.asarray(Image.open(io.BytesIO(m))) for m in a["image/object/mask"]]
    assert masks[4].sum() == 3 and masks[4][50, 71:73].all() and masks[4][51, 71]
    assert masks[0][6:40, 10:50].all()
    assert masks[1][15:35, 25:35].all() and masks[1].sum() == 200   # the turned box


def test_datumaro_subsets_and_a_project(tmp_path):
    root = tmp_path / "d"
    for i, subset in enumerate(("train", "val")):
        photo(root / "images" / subset / f"{subset}.jpg", 80, 60, seed=i)
        (root / f"{subset}.xml").write_text(cvat_xml(
            ["car"], [cvat_image(0, f"{subset}.jpg", [cvat_box("car", (1, 2, 30, 40))])]))
    code, output = convert(root, tmp_path / "out")
    assert code == 0, output
    assert output.splitlines()[0] == ("layout: CVAT for images 1.1 (Datumaro: <subset>.xml + "
                                      "images/): splits train, val")
    assert {s: i.num_objects for s, i in Manifest.read(tmp_path / "out").splits.items()} == {
        "train": 1, "val": 1}
    proj = tmp_path / "p"
    photo(proj / "images" / "Train" / "x.jpg", 80, 60)
    photo(proj / "images" / "Test" / "y.jpg", 80, 60)
    (proj / "annotations.xml").write_text(cvat_xml(["car"], [
        cvat_image(0, "x.jpg", [cvat_box("car", (1, 2, 3, 4))], subset="Train"),
        cvat_image(1, "y.jpg", [cvat_box("car", (1, 2, 3, 4))], subset="Test")],
        owner="project"))
    code, output = convert(proj, tmp_path / "out2")
    assert code == 0, output
    assert set(Manifest.read(tmp_path / "out2").splits) == {"Train", "Test"}


@pytest.mark.parametrize("shape, reason, detail", [
    (cvat_box("dog", (1, 2, 3, 4)), "unknown_category",
     "<box> 0 ('dog'): label 'dog' is not in <meta>'s labels"),
    (cvat_box("car", (30, 2, 3, 4)), "malformed_shape",
     "<box> 0 ('car'): xbr < xtl or ybr < ytl (30 2 3 4)"),
    ('<box label="car" occluded="0" xtl="a" ytl="1" xbr="2" ybr="3" z_order="0"></box>',
     "malformed_shape", "<box> 0 ('car'): could not convert string to float: 'a'"),
    # the first bad coordinate, in xtl ytl xbr ybr order, names the fault
    ('<box label="car" occluded="0" xtl="1" ytl="inf" xbr="b" z_order="0"></box>',
     "malformed_shape", "<box> 0 ('car'): ytl"),
    ('<box label="car" occluded="0" xtl="1" ytl="2" xbr="3" z_order="0"></box>',
     "malformed_shape", "<box> 0 ('car'): ybr"),
    ('<ellipse label="car" occluded="0" cx="1" cy="x" rx="nan" ry="2" z_order="0"></ellipse>',
     "malformed_shape", "<ellipse> 0 ('car'): could not convert string to float: 'x'"),
    ('<polygon label="car" occluded="0" points="1,2;3,4" z_order="0"></polygon>',
     "malformed_shape", "<polygon> 0 ('car'): 2 point(s), a polygon needs 3"),
    ('<mask label="car" occluded="0" rle="1, 2" left="0" top="0" width="2" height="2" '
     'z_order="0"></mask>', "malformed_shape",
     "<mask> 0 ('car'): rle runs add up to 3, not width x height (2x2)"),
    ('<box label="" occluded="0" xtl="1" ytl="1" xbr="2" ybr="3" z_order="0"></box>',
     "unnamed_object", "<box> 0 has no label"),
    ('<skeleton label="car" z_order="0"><points label="1" points="1,1"/></skeleton>',
     "unsupported_shape", "<skeleton> 0 ('car'): a skeleton has no area, so it is not an "
     "object to detect"),
])
def test_bad_shapes_say_why(tmp_path, shape, reason, detail):
    photo(tmp_path / "c" / "images" / "a.jpg", 80, 60)
    (tmp_path / "c" / "annotations.xml").write_text(cvat_xml(
        ["car"], [cvat_image(0, "a.jpg", [shape, cvat_box("car", (1, 1, 9, 9))])]))
    code, output = convert(tmp_path / "c", tmp_path / "out")
    assert code == 0, output
    assert skipped_lines(tmp_path / "out") == [
        (reason, 1, 1, "a.jpg", f"annotations.xml: {detail}")]


def test_malformed_xml_is_one_error_line(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "annotations.xml").write_text("<annotations><version>1.1</version><image")
    assert errors_of(tmp_path / "c", tmp_path / "out") == (2, [
        f"Error: {tmp_path / 'c' / 'annotations.xml'}: expected a CVAT for images 1.1 XML, "
        "found not well-formed: unclosed token: line 1, column 35"])


def test_entities_are_refused(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "annotations.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><annotations>&e;</annotations>')
    code, output = convert(tmp_path / "c", tmp_path / "out")
    assert code == 2
    (line,) = error_lines(output)
    assert line.startswith(f"Error: {tmp_path / 'c' / 'annotations.xml'}: expected a CVAT for "
                           "images 1.1 XML, found EntitiesForbidden")


def test_no_labels_names_the_layout(tmp_path):
    """What used to end in `label_map.pbtxt: no items`."""
    photo(tmp_path / "c" / "images" / "a.jpg", 80, 60)
    (tmp_path / "c" / "train.xml").write_text(cvat_xml([], [cvat_image(0, "a.jpg", [])]))
    assert errors_of(tmp_path / "c", tmp_path / "out") == (2, [
        f"Error: {tmp_path / 'c'}: expected objects with class names (CVAT for images 1.1 "
        "(Datumaro: <subset>.xml + images/): split train), found no <label> in <meta> and no "
        "shape with a label in 1 <image>(s)"])


def test_missing_image_out_of_range_and_strict(tmp_path):
    root = tmp_path / "c"
    photo(root / "images" / "a.jpg", 80, 60)
    (root / "annotations.xml").write_text(cvat_xml(["car"], [
        cvat_image(0, "a.jpg", [cvat_box("car", (1, 1, 9, 9)),
                                cvat_box("car", (100, 100, 120, 130))]),
        cvat_image(1, "gone.jpg", [cvat_box("car", (1, 1, 9, 9))])]))
    code, output = convert(root, tmp_path / "out")
    assert code == 1
    (line,) = error_lines(output)
    assert line.startswith("Error: split 'default': 2 of 3 objects skipped (image_skipped (missing_file) 1, "
                           "zero_area_box 1); 1 image(s) not found under ")
    code, output = convert(root, tmp_path / "out2", "--allow-partial")
    assert code == 0, output
    assert [s[:3] for s in skipped_lines(tmp_path / "out2")] == [
        ("zero_area_box", 1, 2), ("missing_file", 2, None), ("image_skipped", 2, 3)]
    assert errors_of(root, tmp_path / "out3", "--strict", "--allow-partial") == (1, [
        f"Error: --strict: 3 item(s) skipped; reasons are listed "
        f"in {tmp_path / 'out3' / 'skipped.jsonl'}"])


def test_classes_and_an_unknown_name(tmp_path):
    cvat_tree(tmp_path / "c")
    code, output = convert(tmp_path / "c", tmp_path / "out", "--classes", "bicycle,person")
    assert code == 0, output
    assert (tmp_path / "out" / "labels.txt").read_text().split() == ["bicycle", "person"]
    assert errors_of(tmp_path / "c", tmp_path / "out2", "--classes", "car,truck") == (2, [
        "Error: --classes: expected names of the CVAT for images data set's classes "
        "(car, person, lane, bicycle), found 'truck'"])


def test_detect_tells_cvat_from_voc(tmp_path):
    from voc_builders import vocdevkit

    vocdevkit(tmp_path / "voc", splits=(("train", 2),))
    assert not cvat.detect(tmp_path / "voc")
    cvat_tree(tmp_path / "c")
    assert cvat.detect(tmp_path / "c") and cvat.detect(tmp_path / "c" / "annotations.xml")


def test_same_bytes_for_any_worker_count_and_tfds_opens_it(tmp_path):
    from test_tfds import check_detection

    root = tmp_path / "c"
    cvat_tree(root)
    check_detection(worker_counts_agree(root, tmp_path, "--masks"), masks=True)


def test_mask_rle_matches_the_builder():
    xml = cvat_mask("car", [[1, 0], [1, 1]], 3, 4)
    assert 'rle="0, 1, 1, 2"' in xml


def test_the_readme_fixture(tmp_path):
    from format_builders import fixture_counts

    lines, splits, skipped = fixture_counts("cvat", tmp_path, "--masks")
    assert lines[0] == "layout: CVAT for images 1.1 (annotations.xml + images/): splits train, val"
    assert splits == {"train": (7, 14), "val": (3, 6)}
    assert skipped == {"unsupported_shape": 1}
    assert (tmp_path / "out" / "labels.txt").read_text().split() == [
        "person", "car", "dog", "kite", "bicycle"]


@pytest.mark.slow
def test_beam_writes_the_local_bytes(tmp_path):
    from conftest import FIXTURES
    from format_builders import beam_matches_local

    local = beam_matches_local(FIXTURES / "cvat", tmp_path, masks=True)
    splits = json.loads(local["manifest.json"])["splits"]
    assert splits and sum(".tfrecord-" in name for name in local) == 2 * len(splits)


def test_the_read_pauses_the_cycle_collector_and_restores_it(tmp_path, monkeypatch):
    seen = []
    real = cvat._image
    monkeypatch.setattr(cvat, "_image", lambda *a: (seen.append(gc.isenabled()), real(*a))[1])
    cvat_tree(tmp_path / "c")
    assert gc.isenabled()
    cvat.load(tmp_path / "c", SourceRequest(quiet=True))
    assert seen == [False, False] and gc.isenabled()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "annotations.xml").write_text("<annotations><image")
    with pytest.raises(InputError):
        cvat.load(tmp_path / "bad", SourceRequest(quiet=True))
    assert gc.isenabled()
