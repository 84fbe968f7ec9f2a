"""COCO layout discovery, the streaming reader, the compact index and split assembly."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocoprep.errors import InputError, UsageError
from cocoprep.sources import coco, cocosplits, jsonstream, layout
from cocoprep.sources.coco import BboxStatus, KeypointsMark
from conftest import coco_dict, write_json


def _ann(aid, image_id, cat=1, bbox=(1.0, 2.0, 10.0, 8.0), **extra):
    a = {"id": aid, "image_id": image_id, "category_id": cat, "iscrowd": 0,
         "area": 80.0, "segmentation": [[1, 2, 11, 2, 11, 10]]}
    if bbox is not None:
        a["bbox"] = list(bbox)
    a.update(extra)
    return a


# ------------------------------------------------------------------ discovery

def test_discover_coco_root_with_keypoints_and_captions(fixtures_dir):
    splits = layout.discover(fixtures_dir / "coco").splits
    assert [s.name for s in splits] == ["train", "val"]
    train, val = splits
    assert train.instances.name == "instances_train.json"
    assert train.keypoints.name == "person_keypoints_train.json"
    assert train.captions.name == "captions_train.json"
    assert train.image_dir == fixtures_dir / "coco" / "train"
    assert val.keypoints is None and val.captions is None


def test_discover_images_subdir_and_split_names(tmp_path):
    write_json(tmp_path / "annotations" / "instances_train2017.json", coco_dict([], []))
    write_json(tmp_path / "annotations" / "image_info_test2017.json", {"images": []})
    (tmp_path / "images" / "train2017").mkdir(parents=True)
    (tmp_path / "images" / "test2017").mkdir(parents=True)
    splits = layout.discover(tmp_path).splits
    assert [s.name for s in splits] == ["test2017", "train2017"]
    assert splits[0].image_info is not None and splits[0].instances is None
    assert splits[1].image_dir == tmp_path / "images" / "train2017"


def test_discover_roboflow_layout(tmp_path):
    for split in ("train", "valid"):
        write_json(tmp_path / split / layout.ROBOFLOW_NAME, coco_dict([], []))
    splits = layout.discover(tmp_path).splits
    assert [(s.name, s.image_dir) for s in splits] == [
        ("train", tmp_path / "train"), ("valid", tmp_path / "valid")]


def test_discover_single_file_with_images_dir(tmp_path):
    f = write_json(tmp_path / "export.json", coco_dict([], []))
    (tmp_path / "pics").mkdir()
    [s] = layout.discover(f, images=tmp_path / "pics").splits
    assert (s.name, s.instances, s.image_dir) == ("export", f, tmp_path / "pics")


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="nothing at that path"):
        layout.discover(tmp_path / "nope")
    with pytest.raises(InputError, match="none of these"):
        layout.discover(tmp_path)
    write_json(tmp_path / "annotations" / "instances_train.json", coco_dict([], []))
    with pytest.raises(InputError, match="image directory of split 'train'"):
        layout.discover(tmp_path)


def _coco_beside_images(root, json_name, fixtures_dir):
    """`annotations/<json_name>` with the fixture's train images flat in `images/`."""
    import shutil

    (root / "annotations").mkdir(parents=True)
    shutil.copy(fixtures_dir / "coco" / "annotations" / "instances_train.json",
                root / "annotations" / json_name)
    shutil.copytree(fixtures_dir / "coco" / "train", root / "images")
    return root


@pytest.mark.parametrize("json_name, split", [("instances.json", "train"),
                                              ("instances_train.json", "train"),
                                              ("instances_minival2014.json", "minival2014")])
def test_annotations_json_beside_flat_images_is_a_coco_root(tmp_path, fixtures_dir,
                                                            json_name, split):
    from conftest import run_cli

    src = _coco_beside_images(tmp_path / "src", json_name, fixtures_dir)
    [s] = layout.discover(src).splits
    assert (s.name, s.image_dir, s.instances.name) == (split, src / "images", json_name)
    code, text = run_cli("convert", str(src), "-o", str(tmp_path / "out"), "--workers", "1")
    assert code == 0, text
    first, second = text.splitlines()[:2]
    assert first == "layout: COCO layout (1 split)"
    assert second.split() == [split, "7", "images", "14", "objects", "in", "1", "shard(s)"]


def test_bare_kind_json_names_the_whole_set(tmp_path):
    assert layout.kind_and_split(tmp_path / "instances.json") == (layout.INSTANCES, "train")
    assert layout.kind_and_split(tmp_path / "person_keypoints.json") == (layout.KEYPOINTS,
                                                                         "train")
    assert layout.kind_and_split(tmp_path / "export.json") == (layout.GENERIC, "export")


def test_json_alone_stops_before_writing_and_names_images(tmp_path, fixtures_dir):
    from conftest import run_cli

    src = _coco_beside_images(tmp_path / "src", "instances_train.json", fixtures_dir)
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "instances_train.json").write_bytes(
        (src / "annotations" / "instances_train.json").read_bytes())
    out = tmp_path / "out"
    code, text = run_cli("convert", str(lone / "instances_train.json"), "-o", str(out))
    assert code == 2
    assert text.strip() == (f"Error: {lone / 'instances_train.json'}: expected its images "
                            "beside it, or their folder given with --images DIR, found no "
                            f"image file in {lone}")
    assert not out.exists()
    # An images folder nearby is named.
    moved = lone / "ann"
    moved.mkdir()
    (lone / "instances_train.json").rename(moved / "x.json")
    (src / "images").rename(lone / "images")
    code, text = run_cli("convert", str(moved / "x.json"), "-o", str(out))
    assert code == 2 and text.strip().endswith(
        f"found no image file in {moved} (--images {lone / 'images'}?)")
    assert not out.exists()
    code, text = run_cli("convert", str(moved / "x.json"), "--images", str(lone / "images"),
                         "-o", str(out), "--workers", "1")
    assert code == 0, text


@pytest.mark.parametrize("text, message", [
    ('{"foo": 1}', "expected the top-level key(s) 'images', 'annotations', 'categories', "
                   "found keys foo"),
    ("[1, 2]", "expected a JSON object ('{') with images, annotations and categories at line "
               "1 column 1, found a JSON list ('[')"),
])
def test_json_that_is_not_coco_as_src(tmp_path, text, message):
    from conftest import run_cli, write_image

    src = tmp_path / "data.json"
    src.write_text(text)
    write_image(tmp_path / "a.jpg")
    code, out = run_cli("convert", str(src), "-o", str(tmp_path / "out"))
    assert code == 2
    assert out.strip() == f"Error: {src}: {message}"
    assert not (tmp_path / "out").exists()


def test_select_splits_unknown_name(fixtures_dir):
    found = layout.discover(fixtures_dir / "coco")
    assert [s.name for s in layout.select_splits(found, ["val"]).splits] == ["val"]
    with pytest.raises(UsageError, match="--splits: expected names from \\['train', 'val'\\]"):
        layout.select_splits(found, ["test"])


# ------------------------------------------------------------------ streaming reader

def test_stream_reader_matches_json_load_on_fixtures(fixtures_dir):
    path = fixtures_dir / "coco" / "annotations" / "instances_train.json"
    streamed = coco.read_coco_file(path, keep_segmentation=True)
    loaded = coco.parse_coco_dict(json.loads(path.read_text()), path, keep_segmentation=True)
    for name in ("image_ids", "widths", "heights", "ann_ids", "ann_image_ids",
                 "ann_category_ids", "bbox_status", "iscrowd", "area"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(loaded, name))
    np.testing.assert_array_equal(streamed.bbox, loaded.bbox)
    assert streamed.file_names == loaded.file_names
    assert streamed.segmentations == loaded.segmentations
    assert [c.name for c in streamed.categories] == ["person", "car", "dog", "kite"]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_stream_reader_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    """Tiny read windows split numbers, strings and escapes between reads."""
    data = coco_dict([(1, "a \u00e9\\\"b.jpg", 640, 480), (22, "c.jpg", 10, 10)],
                     [_ann(12345, 1, bbox=(0.125, 2e-3, 100.5, 3.0)), _ann(7, 22, cat=3)])
    data["info"] = {"nested": [1, {"x": "y"}]}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data, indent=1))
    monkeypatch.setattr(jsonstream.JsonStream, "CHUNK", chunk)
    got = coco.read_coco_file(path)
    assert got.file_names == ["a \u00e9\\\"b.jpg", "c.jpg"]
    assert got.image_ids.tolist() == [1, 22]
    assert got.ann_ids.tolist() == [12345, 7]
    assert got.bbox[0].tolist() == [0.125, 2e-3, 100.5, 3.0]


@pytest.mark.parametrize("text, message", [
    ("", "expected a JSON object, found an empty file"),
    ("[1, 2]", "expected a JSON object ('{') with images, annotations and categories at line 1 "
               "column 1, found a JSON list ('[')"),
    ('"x"', "expected a JSON object ('{') with images, annotations and categories at line 1 "
            "column 1, found a JSON string"),
    ('{"images": [}', "expected valid JSON at line 1 column 13, found a syntax error "
                      "(Expecting value)"),
    ('{"images": [], "annotations": [], "categories": []',
     "expected ',' or '}' at line 1 column 51, found the end of the file"),
    ('{"images": [], "annotations": [], "categories": []} x',
     "expected the end of the file after the top-level object at line 1 column 53, found more "
     "data"),
    ('{"images": [', "expected the rest of the JSON at line 1 column 13, found the end of the "
                     "file (truncated?)"),
    ('{"images": [{"id": 1, "file_name": "a', "expected the rest of the JSON at line 1 column "
                                             "36, found the end of the file (truncated?)"),
    ('{"images": [{"id": 1,}]}', "expected valid JSON at line 1 column 22, found a syntax "
                                 "error (Expecting property name enclosed in double quotes)"),
    ("{1: 2}", "expected a key in double quotes at line 1 column 2, found '1'"),
    ('{"foo": 1}', "expected the top-level key(s) 'images', 'annotations', 'categories', found "
                   "keys foo"),
    ('{"info": {}, "images": []}', "expected the top-level key(s) 'annotations', "
                                   "'categories', found keys images, info"),
    ("{}", "expected the top-level key(s) 'images', 'annotations', 'categories', found an "
           "empty object"),
])
def test_invalid_json_is_an_input_error(tmp_path, text, message):
    """Each message says what was expected and what was found, once each."""
    path = tmp_path / "instances_bad.json"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        coco.read_coco_file(path)
    assert str(e.value) == f"{path}: {message}"
    assert str(e.value).count("expected") == 1 and e.value.exit_code == 2


def test_dict_without_coco_keys_names_the_keys_found():
    with pytest.raises(InputError) as e:
        coco.parse_coco_dict({"foo": 1, 2: 3}, "x.json")
    assert str(e.value) == ("x.json: expected the top-level key(s) 'images', 'annotations', "
                            "'categories', found keys 2, foo")


def test_invalid_json_error_names_the_line(tmp_path):
    path = tmp_path / "instances_bad.json"
    path.write_text('{\n "images": [\n  {"id": 1, "file_name": "a.jpg" "width": 3}\n ]\n}')
    with pytest.raises(InputError, match="line 3"):
        coco.read_coco_file(path)


def test_not_utf8_is_an_input_error(tmp_path):
    path = tmp_path / "instances_bad.json"
    path.write_bytes(b'{"images": [{"file_name": "\xff\xfe"}]}')
    with pytest.raises(InputError, match="UTF-8"):
        coco.read_coco_file(path)


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.pop("annotations"), "expected the top-level key(s) 'annotations'"),
    (lambda d: d.pop("categories"), "'categories'"),
    (lambda d: d.update(images={}), "expected 'images' to be a list, found an object"),
    (lambda d: d["images"][0].update(id="1"), "images[0].id to be an integer, found a string"),
    (lambda d: d["images"][0].pop("file_name"), "images[0] to have the key 'file_name'"),
    (lambda d: d["images"][0].update(width=0), "width (image id 1) to be a positive integer"),
    (lambda d: d["images"][0].update(height=2.5), "height (image id 1) to be a positive integer"),
    (lambda d: d["images"].append(5), "images[1] to be an object, found an integer"),
    (lambda d: d["annotations"][0].update(image_id=None), "image_id (annotation id 10) to be "
     "an integer, found null"),
    (lambda d: d["annotations"][0].pop("category_id"), "category_id (annotation id 10)"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "iscrowd (annotation id 10) to be 0 or 1"),
    (lambda d: d["categories"][0].update(name=""), "categories[0].name (category id 1)"),
    (lambda d: d["categories"][0].update(id=True), "categories[0].id to be an integer >= 0"),
])
def test_wrong_types_and_missing_keys(tmp_path, mutate, expected):
    data = coco_dict([(1, "a.jpg", 20, 10)], [_ann(10, 1)])
    mutate(data)
    path = write_json(tmp_path / "instances_t.json", data)
    with pytest.raises(InputError) as e:
        coco.read_coco_file(path)
    assert str(e.value).startswith(f"{path}: expected ")
    assert expected in str(e.value)
    # the pure parser says the same
    with pytest.raises(InputError) as e2:
        coco.parse_coco_dict(data, path)
    assert str(e2.value) == str(e.value)


def test_duplicate_ids_are_errors(tmp_path):
    data = coco_dict([(1, "a.jpg", 20, 10), (2, "b.jpg", 5, 5), (1, "c.jpg", 20, 10)], [])
    with pytest.raises(InputError, match=r"unique image ids, found image id 1 twice "
                       r"\(images\[0\] and images\[2\]\)"):
        coco.parse_coco_dict(data, "x.json")
    data = coco_dict([(1, "a.jpg", 20, 10)], [_ann(5, 1), _ann(5, 1)])
    with pytest.raises(InputError, match="annotation id 5 twice"):
        coco.parse_coco_dict(data, "x.json")
    data = coco_dict([], [], categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
    with pytest.raises(InputError, match="category id 1 twice"):
        coco.parse_coco_dict(data, "x.json")


def test_bbox_status_and_area_are_kept_per_annotation():
    anns = [_ann(1, 1), _ann(2, 1, bbox=None), _ann(3, 1, bbox=(1, 2, 3)),
            _ann(4, 1, bbox=(1, 2, -3, 4)), _ann(5, 1, bbox=("1", 2, 3, 4)),
            _ann(6, 1, bbox=(0, 0, float("inf"), 1)), _ann(7, 1, area="big")]
    f = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 20, 10)], anns), "x.json")
    assert f.bbox_status.tolist() == [BboxStatus.OK, BboxStatus.MISSING] + \
        [BboxStatus.MALFORMED] * 4 + [BboxStatus.OK]
    assert f.area[0] == 80.0 and math.isnan(f.area[6])


def test_segmentation_is_only_kept_when_asked():
    data = coco_dict([(1, "a.jpg", 20, 10)], [_ann(1, 1)])
    assert coco.parse_coco_dict(data, "x.json").segmentations is None
    assert coco.parse_coco_dict(data, "x.json", keep_segmentation=True).segmentations == \
        [[[1, 2, 11, 2, 11, 10]]]


# ------------------------------------------------------------------ assembling a split

def test_assemble_groups_by_image_and_skips_unknown_images(tmp_path):
    data = coco_dict([(5, "a.jpg", 20, 10), (3, "b.jpg", 20, 10), (9, "c.jpg", 20, 10)],
                     [_ann(1, 3), _ann(2, 5), _ann(3, 99), _ann(4, 3, cat=3)])
    f = coco.parse_coco_dict(data, tmp_path / "instances_t.json")
    split, skipped = cocosplits.assemble_split("t", tmp_path, f)
    assert [split.ann_ids[r] for r in split.annotation_rows(0)] == [2]
    assert [split.ann_ids[r] for r in split.annotation_rows(1)] == [1, 4]
    assert list(split.annotation_rows(2)) == []
    [s] = skipped
    assert (s.split, s.image_id, s.annotation_id, s.reason) == ("t", 99, 3, "unknown_image")


def test_assemble_merges_keypoints_by_annotation_id_and_captions_by_image(tmp_path):
    inst = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 20, 10), (2, "b.jpg", 20, 10)],
                                          [_ann(10, 1), _ann(11, 2)]), "instances_t.json")
    kp_cats = [{"id": 1, "name": "person", "keypoints": ["nose", "eye"]}]
    kp = coco.parse_coco_dict(coco_dict([], [_ann(11, 2, keypoints=[1, 2, 2, 0, 0, 0]),
                                             _ann(77, 2, keypoints=[1, 1, 1, 1, 1, 1])],
                                        categories=kp_cats),
                              "person_keypoints_t.json", layout.KEYPOINTS)
    caps = coco.parse_coco_dict({"images": [], "annotations": [
        {"id": 1, "image_id": 2, "caption": "b1"}, {"id": 2, "image_id": 1, "caption": "a1"},
        {"id": 3, "image_id": 2, "caption": "b2"}, {"id": 4, "image_id": 8, "caption": "x"}]},
        "captions_t.json", layout.CAPTIONS)
    split, skipped = cocosplits.assemble_split("t", tmp_path, inst, keypoints=kp, captions=caps)
    assert split.num_keypoints == 2
    assert split.keypoints == [KeypointsMark.ABSENT, (1, 2, 2, 0, 0, 0)]
    assert split.captions == [("a1",), ("b1", "b2")]
    assert sorted((s.reason, s.annotation_id) for s in skipped) == [
        ("unknown_image", 4), ("unmatched_keypoints", 77)]


def test_merge_categories_conflicts(tmp_path):
    def split_with(cats):
        f = coco.parse_coco_dict(coco_dict([], [], categories=cats), tmp_path / "i.json")
        return cocosplits.assemble_split("s", tmp_path, f)[0]

    a = split_with([{"id": 1, "name": "person"}, {"id": 3, "name": "car"}])
    b = split_with([{"id": 3, "name": "car"}, {"id": 4, "name": "bus"}])
    assert [(c.id, c.name) for c in cocosplits.merge_categories([a, b])] == [
        (1, "person"), (3, "car"), (4, "bus")]
    c = split_with([{"id": 3, "name": "truck"}])
    with pytest.raises(InputError, match="category id 3 to be named 'car'"):
        cocosplits.merge_categories([a, c])


@pytest.mark.parametrize("indent", [None, 1])
def test_polygons_skipped_for_boxes_only_give_the_same_index(tmp_path, monkeypatch, indent):
    """Boxes only: polygon text is cut out before decoding (RLE is kept as is); the
    index is the same as a full decode, also when reads split a polygon."""
    anns = [_ann(i, 1, segmentation=[[1.5, 2e1, 3, -4.25E-1, 5, 6], [7, 8, 9, 10, 11, 12]])
            for i in range(1, 30)]
    anns.append(_ann(99, 1, iscrowd=1, segmentation={"counts": [0, 4], "size": [2, 2]}))
    data = coco_dict([(1, "a.jpg", 20, 10)], anns)
    path = tmp_path / "instances_t.json"
    path.write_text(json.dumps(data, indent=indent))
    monkeypatch.setattr(jsonstream.JsonStream, "CHUNK", 97)
    fast = coco.read_coco_file(path)
    full = coco.parse_coco_dict(json.loads(path.read_text()), path)
    assert fast.ann_ids.tolist() == full.ann_ids.tolist()
    np.testing.assert_array_equal(fast.bbox, full.bbox)
    np.testing.assert_array_equal(fast.iscrowd, full.iscrowd)
    kept = coco.read_coco_file(path, keep_segmentation=True)
    assert kept.segmentations[0] == [[1.5, 20.0, 3, -0.425, 5, 6], [7, 8, 9, 10, 11, 12]]
    assert kept.segmentations[-1] == {"counts": [0, 4], "size": [2, 2]}


@pytest.mark.parametrize("indent", [None, 2])
def test_error_position_is_exact_after_skipped_polygons(tmp_path, indent):
    data = coco_dict([(1, "a.jpg", 20, 10)], [_ann(i, 1) for i in range(1, 5)])
    text = json.dumps(data, indent=indent)
    last = text.rfind('"iscrowd"')  # the error is in the last annotation, after 3 polygons
    bad = text[:last] + text[last:].replace('"iscrowd": 0', '"iscrowd": 0,,', 1)
    path = tmp_path / "instances_t.json"
    path.write_text(bad)
    try:
        json.loads(bad)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
    with pytest.raises(InputError, match=where):
        coco.read_coco_file(path)


# ------------------------------------------------------------------ review: out-of-range and non-text values

@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["images"][0].update(id=2**64), "images[0].id to be a 64-bit integer"),
    (lambda d: d["images"][0].update(width=2**32 + 20), "width (image id 1) to be a positive "
     "integer below 2**31"),
    (lambda d: d["annotations"][0].update(id=2**64), "annotations[0].id to be a 64-bit integer"),
    (lambda d: d["annotations"][0].update(image_id=-2**63 - 1), "image_id (annotation id 10) "
     "to be a 64-bit integer"),
    (lambda d: d["annotations"][0].update(category_id=2**64), "category_id (annotation id 10) "
     "to be a 64-bit integer"),
    (lambda d: d["categories"][0].update(id=2**31), "categories[0].id to be an integer from 0 "
     "to 2147483647"),
    (lambda d: d["images"][0].update(file_name="a\ud800.jpg"), "file_name (image id 1) to be "
     "valid Unicode text"),
    (lambda d: d["categories"][0].update(name="x\ud800"), "categories[0].name (category id 1) "
     "to be valid Unicode text"),
])
def test_out_of_range_ids_and_unencodable_text_are_input_errors(tmp_path, mutate, expected):
    data = coco_dict([(1, "a.jpg", 20, 10)], [_ann(10, 1)])
    mutate(data)
    path = tmp_path / "instances_t.json"
    path.write_text(json.dumps(data))  # ensure_ascii: lone surrogates become \ud800 escapes
    for read in (lambda: coco.read_coco_file(path), lambda: coco.parse_coco_dict(data, path)):
        with pytest.raises(InputError) as e:
            read()
        assert str(e.value).startswith(f"{path}: expected ")
        assert expected in str(e.value)


def test_unencodable_caption_is_an_input_error(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 2, "height": 2}],
            "annotations": [{"id": 1, "image_id": 1, "caption": "a\udc80b"}]}
    path = write_json(tmp_path / "captions_t.json", data)
    with pytest.raises(InputError, match=r"caption \(annotation id 1\) to be valid Unicode text"):
        coco.read_coco_file(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_keypoints_are_malformed(tmp_path, bad):
    cats = [{"id": 1, "name": "person", "keypoints": ["a", "b"]}]
    anns = [_ann(1, 1, keypoints=[1, 2, 2, 3, 4, bad]), _ann(2, 1, keypoints=[bad, 2, 2, 3, 4, 1]),
            _ann(3, 1, keypoints=[1, 2, 2, 3, 4, 1])]
    path = tmp_path / "person_keypoints_t.json"
    path.write_text(json.dumps(coco_dict([(1, "a.jpg", 20, 10)], anns, cats)))
    f = coco.read_coco_file(path)
    assert f.keypoints == [KeypointsMark.MALFORMED, KeypointsMark.MALFORMED, (1, 2, 2, 3, 4, 1)]


def test_integers_too_big_for_a_float_make_the_bbox_malformed(tmp_path):
    anns = [_ann(1, 1), _ann(2, 1, bbox=(1, 1, 10**400, 2)), _ann(3, 1, area=10**400),
            _ann(4, 1, bbox=(3, 4, 5, 6))]
    path = tmp_path / "instances_t.json"
    path.write_text(json.dumps(coco_dict([(1, "a.jpg", 20, 10)], anns)))
    f = coco.read_coco_file(path)
    assert f.ann_ids.tolist() == [1, 2, 3, 4]
    assert f.bbox_status.tolist() == [BboxStatus.OK, BboxStatus.MALFORMED, BboxStatus.OK, BboxStatus.OK]
    assert f.bbox[3].tolist() == [3, 4, 5, 6] and math.isnan(f.area[2]) and f.area[3] == 80.0
    assert len(f.iscrowd) == len(f.area) == len(f.ann_category_ids) == len(f.bbox) == 4


def test_too_deeply_nested_json_is_an_input_error(tmp_path):
    path = tmp_path / "instances_t.json"
    path.write_text('{"info": ' + "[" * 100000 + "]" * 100000 +
                    ', "images": [], "annotations": [], "categories": []}')
    with pytest.raises(InputError, match=r"expected JSON values nested less deeply at line 1 "
                       r"column 10, found values nested too deeply for Python's JSON decoder"):
        coco.read_coco_file(path)


def test_category_id_zero_is_read_negative_is_an_error():
    cats = [{"id": 0, "name": "zero"}, {"id": 1, "name": "one"}]
    f = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 20, 10)], [_ann(1, 1, cat=0)], cats), "x.json")
    assert [c.id for c in f.categories] == [0, 1] and f.ann_category_ids.tolist() == [0]
    with pytest.raises(InputError, match=r"categories\[0\].id to be an integer >= 0, found an "
                       r"integer -1"):
        coco.parse_coco_dict(coco_dict([], [], [{"id": -1, "name": "x"}]), "x.json")


# ------------------------------------------------------------------ tool layouts

def test_discover_tool_layouts(tmp_path):
    cvat = tmp_path / "cvat"
    write_json(cvat / "annotations" / "instances_default.json", coco_dict([], []))
    (cvat / "images").mkdir(parents=True)
    found = layout.discover(cvat)
    assert found.describe() == "CVAT COCO 1.0 export (1 split)"
    assert found.splits[0].image_dir == cvat / "images"  # older CVAT: flat images/
    (cvat / "images" / "default").mkdir()
    assert layout.discover(cvat).splits[0].image_dir == cvat / "images" / "default"
    # the JSON file itself: images found from the export root, not annotations/
    [s] = layout.discover(cvat / "annotations" / "instances_default.json").splits
    assert s.image_dir == cvat / "images" / "default"

    ls = tmp_path / "ls"
    write_json(ls / "result.json", coco_dict([], []))
    for src in (ls, ls / "result.json"):
        found = layout.discover(src)
        assert found.kind == layout.LABEL_STUDIO_LAYOUT
        assert [(s.name, s.image_dir) for s in found.splits] == [("result", ls)]

    fo = tmp_path / "fo"
    write_json(fo / "labels.json", coco_dict([], []))
    (fo / "data").mkdir()
    for src in (fo, fo / "labels.json"):
        found = layout.discover(src)
        assert found.kind == layout.FIFTYONE_LAYOUT
        assert [(s.name, s.image_dir) for s in found.splits] == [("labels", fo / "data")]


def test_local_names_keep_lookups_inside_the_image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "b.jpg").write_bytes(b"x")
    (tmp_path / "c.jpg").write_bytes(b"x")
    names, mapping = cocosplits.local_names(
        ["images/a.jpg", "images\\a.jpg", "/data/upload/3/b.jpg", "C:\\Users\\me\\c.jpg",
         "..\\..\\media\\upload\\4\\b.jpg", "../../etc/passwd", "sub/../x.jpg"], tmp_path)
    assert names == ["images/a.jpg", "images/a.jpg", "images/b.jpg", "c.jpg", "images/b.jpg",
                     "passwd", "sub/../x.jpg"]
    assert mapping == cocosplits.NameMapping(backslashes=3, by_file_name=4,
                                             example="/data/upload/3/b.jpg")


def _split_with(tmp_path, categories, used):
    anns = [{"id": i + 1, "image_id": 1, "category_id": c, "bbox": [1, 1, 2, 2], "area": 4}
            for i, c in enumerate(used)]
    f = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 8, 8)], anns, categories), "x.json")
    return cocosplits.assemble_split("s", tmp_path, f)[0]


def test_category_zero_rules(tmp_path):
    cats = [{"id": 0, "name": "cells"}, {"id": 1, "name": "rbc"}, {"id": 3, "name": "wbc"}]
    plan = cocosplits.plan_labels([_split_with(tmp_path, cats, [1, 3])])
    assert plan.labels == {1: (1, "rbc"), 3: (3, "wbc")} and not plan.contiguous
    assert "left out of the label map" in plan.notes[0]
    plan = cocosplits.plan_labels([_split_with(tmp_path, cats, [0, 3])])
    assert plan.labels == {0: (1, "cells"), 1: (2, "rbc"), 3: (3, "wbc")} and plan.contiguous
    assert "renumbered 1..N" in plan.notes[0]
    plan = cocosplits.plan_labels([_split_with(tmp_path, cats[1:], [1, 3])])
    assert plan.labels == {1: (1, "rbc"), 3: (3, "wbc")} and plan.notes == ()


def test_keypoints_read_from_any_file_whose_categories_name_them(tmp_path):
    cats = [{"id": 1, "name": "hand", "keypoints": ["a", "b"]}]
    anns = [_ann(1, 1, keypoints=[1, 2, 2, 3, 4, 1]), _ann(2, 1)]
    f = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 8, 8)], anns, cats), "export.json")
    assert f.keypoints == [(1, 2, 2, 3, 4, 1), KeypointsMark.ABSENT]
    split = cocosplits.assemble_split("s", tmp_path, f)[0]
    assert split.num_keypoints == 2
    # without keypoint names in the categories, keypoints are not read
    f = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 8, 8)], anns), "export.json")
    assert f.keypoints is None


def test_integral_float_sizes_are_integers(tmp_path):
    f = coco.parse_coco_dict(coco_dict([(1, "a.jpg", 500.0, 375.0)], []), "x.json")
    assert f.widths.tolist() == [500] and f.heights.tolist() == [375]
    with pytest.raises(InputError, match=r"images\[0\].height \(image id 1\) to be a positive "
                       "integer, found a number 375.5"):
        coco.parse_coco_dict(coco_dict([(1, "a.jpg", 500, 375.5)], []), "x.json")


_JSON_TEXT = st.text(alphabet=st.sampled_from(list('ab}{],[ "\\:\u00e9\n')), max_size=8)
_JSON_LEAF = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=False,
                       allow_infinity=False), _JSON_TEXT, st.booleans(), st.none())
_JSON_VALUE = st.recursive(_JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_JSON_TEXT, inner, max_size=3)), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(elements=st.lists(st.one_of(st.dictionaries(_JSON_TEXT, _JSON_VALUE, max_size=4),
                                   _JSON_VALUE), max_size=12),
       chunk=st.sampled_from([5, 23, 1 << 23]), run_min=st.sampled_from([0, 40, 1 << 20]),
       indent=st.sampled_from([None, 1]))
def test_runs_of_elements_decode_as_one_by_one(elements, chunk, run_min, indent):
    """Array elements decoded many at a time (cut at a `},`) are exactly the elements
    json.loads sees, in order, also when a string or a nested value holds `},`."""
    text = json.dumps({"info": {"x": "},{"}, "annotations": elements, "z": []}, indent=indent)
    seen = []
    stream = jsonstream.JsonStream(io.StringIO(text), Path("t.json"))
    stream.CHUNK, stream.RUN_MIN = chunk, run_min
    stream.read_object({"annotations": lambda element, i: seen.append((i, element))}, set())
    assert seen == list(enumerate(json.loads(text)["annotations"]))
