"""LabelMe in: every shape type gives its box to 0.1 px (masks their pixels), groups
merge, lines and points are reported, flags are image labels, a missing image comes
from imageData, bad files are skipped with their reason, bad inputs end in one
Error line, and COCO folders are still COCO."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from cocoprep.errors import InputError
from cocoprep.manifest import Manifest
from cocoprep.sources import labelme
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.objects import ObjectProblem, SourceObject
from conftest import FIXTURES
from format_builders import (
    DEFAULT_LABELME_BOXES, boxes_px, convert, error_lines, errors_of, examples, labelme_tree,
    lm_json, lm_mask, lm_shape, photo, skipped_lines, texts, tree_bytes, worker_counts_agree,
)


def parse(shapes, size=(80, 60)):
    return labelme.parse_labelme(json.dumps({
        "shapes": shapes, "imagePath": "a.jpg", "imageWidth": size[0],
        "imageHeight": size[1]}).encode()).objects


# ================================================================== parsing

@pytest.mark.parametrize("shape, box", [
    (lm_shape("a", "rectangle", [(30, 40), (10, 5)]), (10, 5, 30, 40)),
    (lm_shape("a", "rectangle", [(10, 40), (30, 5)]), (10, 5, 30, 40)),
    (lm_shape("a", "polygon", [(1, 2), (9.5, 3), (4, 12.25)]), (1, 2, 9.5, 12.25)),
    (lm_shape("a", None, [(1, 2), (9.5, 3), (4, 12.25)]), (1, 2, 9.5, 12.25)),
    (lm_shape("a", "circle", [(20, 30), (23, 34)]), (15, 25, 25, 35)),
    (lm_shape("a", "mask", [(5, 6), (8, 8)], mask=lm_mask([[0, 1, 1], [0, 1, 0], [0, 0, 0]])),
     (6, 6, 8, 8)),
])
def test_each_shape_gives_its_box(shape, box):
    (obj,) = parse([shape])
    assert isinstance(obj, SourceObject) and obj.name == "a"
    np.testing.assert_allclose(obj.box, box, atol=1e-9)


def test_shapes_of_one_group_are_one_object():
    objs = parse([lm_shape("dog", "polygon", [(20, 20), (30, 20), (25, 35)], group=3),
                  lm_shape("cat", "rectangle", [(0, 0), (4, 4)], group=3),
                  lm_shape("dog", "rectangle", [(40, 1), (42, 2)], group=3)])
    assert [(o.name, o.box) for o in objs] == [("dog", (20, 1, 42, 35)), ("cat", (0, 0, 4, 4))]
    assert dict(objs[0].extras) == {"group_id": 3, "shape": "polygon+rectangle",
                                    "attributes": "{}"}
    assert objs[0].segmentation == [[20, 20, 30, 20, 25, 35], [40, 1, 42, 1, 42, 2, 40, 2]]


def test_a_group_with_a_mask_is_one_rle():
    (obj,) = parse([lm_shape("a", "rectangle", [(0, 0), (2, 2)], group=1),
                    lm_shape("a", "mask", [(10, 10), (11, 11)], mask=lm_mask([[1, 1], [1, 1]]),
                             group=1)], size=(20, 16))
    assert obj.box == (0, 0, 12, 12)
    from pycocotools import mask as mask_utils

    decoded = mask_utils.decode(obj.segmentation)
    assert decoded.shape == (16, 20) and decoded[10:12, 10:12].all() and decoded.sum() == 8


@pytest.mark.parametrize("shape, reason, detail", [
    (lm_shape("tail", "line", [(1, 1), (5, 5)]), "unsupported_shape",
     "shape 0 ('tail', line): a line has no area, so it is not an object to detect"),
    (lm_shape("nose", "point", [(1, 1)]), "unsupported_shape",
     "shape 0 ('nose', point): a point has no area, so it is not an object to detect"),
    (lm_shape("road", "linestrip", [(1, 1), (2, 2), (3, 1)]), "unsupported_shape",
     "shape 0 ('road', linestrip): a linestrip has no area, so it is not an object to detect"),
    (lm_shape("dots", "points", [(1, 1), (2, 2)]), "unsupported_shape",
     "shape 0 ('dots', points): a points has no area, so it is not an object to detect"),
    (lm_shape("a", "cuboid", [(1, 1), (2, 2)]), "unsupported_shape",
     "shape 0 ('a', cuboid): unknown shape type"),
    (lm_shape("", "rectangle", [(1, 1), (2, 2)]), "unnamed_object",
     "shape 0 (rectangle) has no label"),
    (lm_shape("a", "polygon", [(1, 1), (2, 2)]), "malformed_shape",
     "shape 0 ('a', polygon): points are not 3 or more [x, y] number pairs"),
    (lm_shape("a", "circle", [(1, "x"), (2, 2)]), "malformed_shape",
     "shape 0 ('a', circle): points are not 2 [x, y] number pairs"),
    (lm_shape("a", "mask", [(1, 1), (2, 2)], mask="not base64!"), "malformed_shape",
     "shape 0 ('a', mask): its `mask` is not a base64 PNG"),
])
def test_shapes_that_are_not_objects_say_why(shape, reason, detail):
    (problem,) = parse([shape])
    assert isinstance(problem, ObjectProblem)
    assert (problem.reason, problem.detail) == (reason, detail)


@pytest.mark.parametrize("data, detail", [
    (b"{\"shapes\": [", "not JSON (Expecting value: line 1 column 13 (char 12))"),
    (b"[1, 2]", "not a LabelMe file (no `shapes` list)"),
])
def test_malformed_files(data, detail):
    with pytest.raises(Exception) as e:
        labelme.parse_labelme(data)
    assert (e.value.reason, e.value.detail) == ("malformed_json", detail)


# ================================================================== whole runs

def test_windows_paths_imagedata_flags_and_boxes(tmp_path):
    root = labelme_tree(tmp_path / "lm")
    out = tmp_path / "out"
    code, output = convert(root, out)
    assert code == 0, output
    lines = output.splitlines()
    assert lines[:3] == [
        "layout: LabelMe (annotation folder): split lm",
        "  note: label ids 1..2: class names sorted (--classes picks and orders)",
        "  note: 1 image(s) missing as files: read from their JSON's imageData"]
    got = examples(out, "lm")
    assert sorted(got) == ["annotations/b.jpg", "images/a.jpg"]
    a = got["images/a.jpg"]
    assert texts(a) == [n for n, *_ in DEFAULT_LABELME_BOXES]
    np.testing.assert_allclose(boxes_px(a), [b for _, *b in DEFAULT_LABELME_BOXES], atol=0.1)
    assert texts(a, "image/class/text") == ["indoor"]
    assert texts(a, "image/object/shape") == ["rectangle", "circle+polygon", "mask"]
    assert a["image/object/group_id"] == [0, 1, 0]
    assert texts(a, "image/object/attributes") == ["{}", '{"description": "left"}', "{}"]
    assert a["image/source_id"] == [b"..\\images\\a.jpg"]
    b = got["annotations/b.jpg"]
    assert texts(b) == ["dog"] and b.get("image/class/text", []) == []
    np.testing.assert_allclose(boxes_px(b), [(1, 2, 11, 12)], atol=0.1)
    assert np.asarray(Image.open(io.BytesIO(b["image/encoded"][0]))).mean(axis=(0, 1))[0] > 80
    assert skipped_lines(out) == [
        ("unsupported_shape", 1, 4, "images/a.jpg", "annotations/a.json: shape 4 ('tail', "
         "line): a line has no area, so it is not an object to detect"),
        ("unsupported_shape", 1, 5, "images/a.jpg", "annotations/a.json: shape 5 ('nose', "
         "point): a point has no area, so it is not an object to detect")]


def test_masks_are_the_shapes_pixels(tmp_path):
    root = labelme_tree(tmp_path / "lm", windows=False)
    code, output = convert(root, tmp_path / "out", "--masks")
    assert code == 0, output
    a = examples(tmp_path / "out", "lm")["images/a.jpg"]
    masks = [np.asarray(Image.open(io.BytesIO(m))) for m in a["image/object/mask"]]
    assert masks[0][5:40, 10:51].all() and masks[0].sum() == masks[0][5:40, 10:51].sum()
    assert masks[2].sum() == 9 and masks[2][51:54, 62:65].all()
    assert masks[1][20:36, 20:31].any() and masks[1][25:36, 35:46].any()


def test_images_beside_their_json_and_split_folders(tmp_path):
    for split in ("train", "val"):
        photo(tmp_path / "d" / split / "x.png", 40, 30)
        lm_json(tmp_path / "d" / split / "x.json", [lm_shape("a", "rectangle",
                                                             [(1, 1), (20, 10)])],
                image_path="x.png", size=(40, 30))
    code, output = convert(tmp_path / "d", tmp_path / "out")
    assert code == 0, output
    assert output.splitlines()[0] == "layout: LabelMe (JSON + image): splits train, val"
    assert set(Manifest.read(tmp_path / "out").splits) == {"train", "val"}


def test_bad_files_and_missing_images_are_reported(tmp_path):
    root = labelme_tree(tmp_path / "lm")
    (root / "annotations" / "c.json").write_text('{"shapes": [')
    lm_json(root / "annotations" / "d.json", [lm_shape("cat", "rectangle", [(1, 1), (5, 5)])],
            image_path="gone.jpg")
    lm_json(root / "annotations" / "e.json",
            [lm_shape("cat", "rectangle", [(500, 500), (510, 520)])], image_path="../images/a.jpg")
    code, output = convert(root, tmp_path / "out")
    assert code == 0, output
    got = [s for s in skipped_lines(tmp_path / "out") if s[0] != "unsupported_shape"]
    assert got == [
        ("malformed_json", 3, None, "annotations/c.json",
         "annotations/c.json: not JSON (Expecting value: line 1 column 13 (char 12))"),
        ("missing_file", 4, None, "annotations/gone.jpg",
         f"{root / 'annotations' / 'gone.jpg'} does not exist"),
        ("image_skipped", 4, 7, "annotations/gone.jpg", "its image was skipped (missing_file)"),
        ("zero_area_box", 5, 8, "images/a.jpg",
         "bbox [500, 500, 10, 20] has no area inside the 80x60 image")]


def test_out_of_range_fails_strict_in_one_line(tmp_path):
    root = labelme_tree(tmp_path / "lm")
    assert errors_of(root, tmp_path / "out", "--strict") == (1, [
        f"Error: --strict: 2 item(s) skipped; reasons are listed "
        f"in {tmp_path / 'out' / 'skipped.jsonl'}"])


def test_a_missing_image_loses_the_split(tmp_path):
    lm_json(tmp_path / "lm" / "a.json", [lm_shape("cat", "rectangle", [(1, 1), (5, 5)])],
            image_path="a.jpg")
    code, output = convert(tmp_path / "lm", tmp_path / "out")
    assert code == 1
    (line,) = error_lines(output)
    assert line.startswith("Error: split 'lm': no image written (1 of 1 skipped) "
                           "(missing_file 1)")


def test_malformed_json_everywhere_names_the_layout(tmp_path):
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "a.json").write_text('{"shapes": [ {"label": ')
    assert errors_of(tmp_path / "lm", tmp_path / "out") == (2, [
        f"Error: {tmp_path / 'lm'}: expected objects with class names (LabelMe (JSON + "
        "image): split lm), found none of the 1 *.json files parses as a LabelMe file"])


def test_only_lines_names_the_layout(tmp_path):
    photo(tmp_path / "lm" / "a.jpg", 40, 30)
    lm_json(tmp_path / "lm" / "a.json", [lm_shape("road", "linestrip", [(1, 1), (5, 5)])],
            image_path="a.jpg", size=(40, 30))
    assert errors_of(tmp_path / "lm", tmp_path / "out") == (2, [
        f"Error: {tmp_path / 'lm'}: expected objects with class names (LabelMe (JSON + "
        "image): split lm), found no shape with a label and an area in 1 LabelMe file(s)"])


def test_classes_select_and_an_unknown_label_is_an_error(tmp_path):
    root = labelme_tree(tmp_path / "lm")
    code, output = convert(root, tmp_path / "out", "--classes", "dog")
    assert code == 0, output
    assert [s[0] for s in skipped_lines(tmp_path / "out")].count("class_not_selected") == 2
    assert errors_of(root, tmp_path / "out2", "--classes", "dog,horse") == (2, [
        "Error: --classes: expected names of the LabelMe data set's classes (cat, "
        "dog), found 'horse'"])


def test_detect_leaves_coco_alone(tmp_path):
    assert not labelme.detect(FIXTURES / "coco")
    assert labelme.detect(labelme_tree(tmp_path / "lm"))
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "x.json").write_text('{"categories": [{"name": "shapes"}]}')
    assert not labelme.detect(tmp_path / "j")


def test_same_bytes_for_any_worker_count_and_tfds_opens_it(tmp_path):
    from test_tfds import check_detection

    root = labelme_tree(tmp_path / "lm")
    for i in range(4):
        photo(root / "images" / f"p{i}.jpg", 50, 40, seed=i)
        lm_json(root / "annotations" / f"p{i}.json",
                [lm_shape("cat", "rectangle", [(i, 2), (30, 20)])],
                image_path=f"../images/p{i}.jpg", size=(50, 40), flags={"day": i % 2 == 0})
    check_detection(worker_counts_agree(root, tmp_path, "--masks"), masks=True)


def test_the_readme_fixture(tmp_path):
    from format_builders import fixture_counts

    lines, splits, skipped = fixture_counts("labelme", tmp_path, "--masks")
    assert lines[0] == "layout: LabelMe (JSON + image): splits train, val"
    assert splits == {"train": (7, 14), "val": (3, 6)}
    assert skipped == {"unsupported_shape": 1}


@pytest.mark.slow
def test_beam_writes_the_local_bytes(tmp_path):
    from format_builders import beam_matches_local

    local = beam_matches_local(FIXTURES / "labelme", tmp_path, masks=True)
    splits = json.loads(local["manifest.json"])["splits"]
    assert splits and sum(".tfrecord-" in name for name in local) == 2 * len(splits)


# ================================================================== the driver's shortcuts

_SEGMENT = st.sampled_from(["a", "b.jpg", "..", "x y", "é", "c.d"])
_PARTS = st.lists(_SEGMENT, min_size=0, max_size=3)


@given(lead=st.sampled_from(["", "/", "//"]), root=_PARTS, rest=_PARTS.filter(bool),
       name=_SEGMENT)
def test_string_paths_agree_with_pathlib(lead, root, rest, name):
    """The read builds image paths as strings; pathlib is the rule they keep."""
    folder = str(Path(lead + "/".join(root))) if lead or root else "."
    assert labelme._join(folder, name) == str(Path(folder) / name)
    path = str(Path(folder) / "/".join(rest))
    assert labelme._under(path, folder) == Path(path).relative_to(folder).as_posix()


def _shards(out: Path) -> list[bytes]:
    return [v for k, v in tree_bytes(out).items() if ".tfrecord" in k]


def test_a_relative_source_gives_the_same_records(tmp_path, monkeypatch):
    """Relative folders: the image root is then relative too ("." when the images are
    in the working folder, "" when they share no folder)."""
    flat, up = tmp_path / "flat", tmp_path / "up"
    for i in range(2):
        photo(flat / f"{i}.jpg", 40, 30, seed=i)
        lm_json(flat / f"{i}.json", [lm_shape("cat", "rectangle", [(1, 2), (20, 9 + i)])],
                image_path=None if i else f"{i}.jpg", size=(40, 30))
        photo(up / f"{i}.jpg", 40, 30, seed=i)
        lm_json(up / "annotations" / f"{i}.json", [lm_shape("dog", "polygon", [
            (1, 2), (20, 9 + i), (3, 25)])], image_path=f"..\\{i}.jpg", size=(40, 30))
    labelme_tree(tmp_path / "lm")
    cases = [(tmp_path, "flat"), (tmp_path, "lm"), (tmp_path / "lm", "annotations"),
             (up, "annotations")]
    for at, src in cases:
        out = f"{at.name}-{src}"
        assert convert(at / src, tmp_path / "abs" / out)[0] == 0
        monkeypatch.chdir(at)
        assert convert(src, tmp_path / "rel" / out)[0] == 0
        assert len(_shards(tmp_path / "abs" / out)) == 1
    def written(out: Path) -> dict[str, bytes]:  # the manifest names SRC as given
        return {k: v for k, v in tree_bytes(out).items() if not k.endswith("manifest.json")}

    assert written(tmp_path / "abs") == written(tmp_path / "rel")


def test_the_read_pauses_the_cycle_collector_and_restores_it(tmp_path, monkeypatch):
    seen = []
    real = labelme.parse_labelme
    monkeypatch.setattr(labelme, "parse_labelme",
                        lambda data: (seen.append(gc.isenabled()), real(data))[1])
    root = labelme_tree(tmp_path / "lm")
    assert gc.isenabled()
    labelme.load(root, SourceRequest(quiet=True))
    assert seen == [False, False] and gc.isenabled()
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError):
        labelme.load(tmp_path / "none", SourceRequest(quiet=True))
    assert gc.isenabled()
    gc.disable()
    try:
        labelme.load(root, SourceRequest(quiet=True))
        assert not gc.isenabled()  # as it was
    finally:
        gc.enable()
