"""COCO instances -> semantic masks with --task segmentation (crowd void, smaller
objects on top), checked against pycocotools' own decode of every annotation."""

from __future__ import annotations

import json

import numpy as np
from pycocotools import mask as mask_utils

from cocoprep.sources import find_task
from conftest import FIXTURES, coco_dict, run_cli, write_image, write_json
from seg_builders import VOID, model_garden_records, skipped_lines


def _decoded(ann: dict, h: int, w: int) -> np.ndarray:
    seg = ann["segmentation"]
    rle = (mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list)
           else mask_utils.frPyObjects(seg, h, w))
    return mask_utils.decode(rle).astype(bool)


def test_fixture_instances_drawn_per_category(tmp_path):
    assert find_task(FIXTURES / "coco") == "detection"
    code, output = run_cli("convert", FIXTURES / "coco", "-o", tmp_path / "out", "--task",
                           "segmentation", "--workers", "1")
    assert code == 0, output
    data = json.loads((FIXTURES / "coco" / "annotations" / "instances_train.json").read_text())
    cats = sorted(c["id"] for c in data["categories"])
    names = (tmp_path / "out" / "labels.txt").read_text().splitlines()
    assert names == ["background"] + [c["name"] for c in sorted(data["categories"],
                                                                 key=lambda c: c["id"])]
    masks = model_garden_records(tmp_path / "out", "train")
    assert len(masks) == len(data["images"])
    crowd_seen = 0
    for im in data["images"]:
        h, w = im["height"], im["width"]
        _, mask = masks[im["file_name"]]
        anns = [a for a in data["annotations"] if a["image_id"] == im["id"]]
        drawn = [(_decoded(a, h, w), a) for a in anns]
        cover = sum((m.astype(int) for m, _ in drawn), np.zeros((h, w), int))
        assert (mask[cover == 0] == 0).all()  # no annotation: background
        for m, a in drawn:
            alone = m & (cover == 1)  # pixels no other annotation claims
            want = VOID if a["iscrowd"] else cats.index(a["category_id"]) + 1
            assert alone.any() and (mask[alone] == want).all()
            crowd_seen += a["iscrowd"]
    assert crowd_seen == 1


def test_smaller_object_on_a_larger_one_stays_visible(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", 40, 30)
    big = [[0, 0, 40, 0, 40, 30, 0, 30]]
    small = [[10, 10, 20, 10, 20, 20, 10, 20]]
    write_json(tmp_path / "annotations" / "instances_train.json", coco_dict(
        [(1, "a.jpg", 40, 30)],
        [{"id": 2, "image_id": 1, "category_id": 3, "bbox": [10, 10, 10, 10], "area": 100,
          "iscrowd": 0, "segmentation": small},
         {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 30], "area": 1200,
          "iscrowd": 0, "segmentation": big}]))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--task",
                           "segmentation", "--images", tmp_path / "images", "-q")
    assert code == 0, output
    ((_, mask),) = model_garden_records(tmp_path / "out", "train").values()
    assert (mask[12:18, 12:18] == 2).all() and mask[2, 2] == 1  # car on person


def test_an_unusable_segmentation_skips_the_image(tmp_path):
    for i in (1, 2, 3):
        write_image(tmp_path / "images" / f"{i}.jpg", 40, 30)
    good = [[0, 0, 10, 0, 10, 10, 0, 10]]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
             "iscrowd": 0, "segmentation": good if i != 2 else [[1, 2, 3]]} for i in (1, 2, 3)]
    write_json(tmp_path / "annotations" / "instances_train.json",
               coco_dict([(i, f"{i}.jpg", 40, 30) for i in (1, 2, 3)], anns))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--task",
                           "segmentation", "--images", tmp_path / "images")
    assert code == 0, output
    assert "skipped 1 (malformed_segmentation 1)" in output
    (line,) = skipped_lines(tmp_path / "out")
    assert line["file"] == "2.jpg"
    assert line["detail"] == ("instances_train.json#2: a polygon has an odd number of "
                              "coordinates (3)")


def test_an_unknown_category_skips_the_image_not_its_pixels(tmp_path):
    for i in (1, 2, 3):
        write_image(tmp_path / "images" / f"{i}.jpg", 40, 30)
    box = [[0, 0, 10, 0, 10, 10, 0, 10]]
    anns = [{"id": i, "image_id": i, "category_id": 1 if i != 3 else 77, "bbox": [0, 0, 10, 10],
             "area": 100, "iscrowd": 0, "segmentation": box} for i in (1, 2, 3)]
    write_json(tmp_path / "annotations" / "instances_train.json",
               coco_dict([(i, f"{i}.jpg", 40, 30) for i in (1, 2, 3)], anns))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--task",
                           "segmentation", "--images", tmp_path / "images")
    assert code == 0, output
    (line,) = skipped_lines(tmp_path / "out")
    assert (line["reason"], line["file"], line["detail"]) == (
        "unknown_category", "3.jpg",
        "instances_train.json#3: category id(s) 77 not in the file's categories")
