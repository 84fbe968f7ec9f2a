"""COCO panoptic: the semantic mask by category (unlabelled = void), and with
--panoptic the category and instance masks, 16-bit past 255 instances."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cocoprep import schema
from cocoprep.manifest import Manifest
from conftest import raw_records, run_cli
from seg_builders import convert_found, model_garden_records, panoptic_tree


def _panoptic(out, split) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import tensorflow as tf

    keys = schema.keys_of(schema.SEGMENTATION)
    got = {}
    for path in Manifest.read(out).shard_paths(out, split):
        for raw in raw_records(path):
            f = tf.train.Example.FromString(raw).features.feature
            name = f[keys["filename"]].bytes_list.value[0].decode()
            category = Image.open(io.BytesIO(f[keys["category_mask"]].bytes_list.value[0]))
            instance = Image.open(io.BytesIO(f[keys["instance_mask"]].bytes_list.value[0]))
            got[name[:-4]] = (np.asarray(category), np.asarray(instance), instance.mode)
    return got


def test_semantic_mask_by_category_unlabelled_void(tmp_path):
    expected = panoptic_tree(tmp_path)
    convert_found(tmp_path, tmp_path / "out", "layout: COCO panoptic: split val2017",
                  "person\ncar\nsky-other-merged\n")
    masks = model_garden_records(tmp_path / "out", "val2017")
    for name, (_, mask) in masks.items():
        np.testing.assert_array_equal(mask, expected[name[:-4]][0])
    keys = set(schema.keys_of(schema.SEGMENTATION, ("category_mask", "instance_mask")).values())
    (path,) = Manifest.read(tmp_path / "out").shard_paths(tmp_path / "out", "val2017")
    import tensorflow as tf

    assert not keys & set(tf.train.Example.FromString(raw_records(path)[0]).features.feature)


def test_panoptic_masks_with_the_flag(tmp_path):
    expected = panoptic_tree(tmp_path)
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--panoptic", "-q")
    assert code == 0, output
    manifest = Manifest.read(tmp_path / "out")
    assert manifest.options["panoptic"] and manifest.options["instance_mask_bits"] == 8
    for stem, (category, instance, mode) in _panoptic(tmp_path / "out", "val2017").items():
        ids, numbers = expected[stem]
        np.testing.assert_array_equal(category, ids)
        np.testing.assert_array_equal(instance, numbers)  # crowd cars: no instance
        assert mode == "L"
    code, output = run_cli("verify", tmp_path / "out", "--workers", "1")
    assert code == 0, output


def test_more_than_255_instances_are_16_bit_in_every_record(tmp_path):
    import tensorflow_datasets as tfds

    expected = panoptic_tree(tmp_path, many=300)
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--panoptic", "-q")
    assert code == 0, output
    assert Manifest.read(tmp_path / "out").options["instance_mask_bits"] == 16
    got = _panoptic(tmp_path / "out", "val2017")
    for stem, (_, instance, mode) in got.items():
        assert mode.startswith("I;16")
        np.testing.assert_array_equal(instance, expected[stem][1])
    assert int(got["000000000002"][1].max()) == 300  # no wrap-around at 256
    builder = tfds.builder_from_directory(str(tmp_path / "out"))
    key = schema.keys_of(schema.SEGMENTATION, ("instance_mask",))["instance_mask"]
    tops = [int(r[key].max()) for r in tfds.as_numpy(builder.as_dataset(split="val2017"))]
    assert sorted(tops) == [2, 300]
    code, output = run_cli("verify", tmp_path / "out", "--workers", "1")
    assert code == 0, output


def test_panoptic_flag_needs_a_panoptic_source(tmp_path):
    from seg_builders import pairs_tree

    pairs_tree(tmp_path / "src", n=1)
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out", "--panoptic")
    assert code == 2
    assert output.strip().startswith("Error: --panoptic: expected a COCO panoptic source "
                                     "(segments per image), found 'masks (")


def test_a_segment_the_json_does_not_list_is_a_skip(tmp_path):
    import json

    from seg_builders import skipped_lines

    panoptic_tree(tmp_path)
    path = tmp_path / "annotations" / "panoptic_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["segments_info"] = [s for s in data["annotations"][0]["segments_info"]
                                               if s["id"] != 70002]
    path.write_text(json.dumps(data))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--allow-partial", "-q")
    assert code == 0, output
    (line,) = skipped_lines(tmp_path / "out")
    assert (line["reason"], line["file"], line["detail"]) == (
        "unknown_mask_value", "000000000001.png",
        "000000000001.png: segment id(s) 70002 are not in the image's segments_info")


def test_a_category_the_json_does_not_list_is_an_error(tmp_path):
    import json

    panoptic_tree(tmp_path)
    path = tmp_path / "annotations" / "panoptic_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["segments_info"][0]["category_id"] = 99
    path.write_text(json.dumps(data))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out")
    assert code == 2
    assert output.strip() == (f"Error: {path}: expected segments_info category ids listed in "
                              "categories, found category id 99 (image 2)")
    assert not (tmp_path / "out").exists()


def test_panoptic_flag_on_a_detection_source_is_refused(tmp_path):
    from conftest import FIXTURES

    code, output = run_cli("convert", FIXTURES / "coco", "-o", tmp_path / "out", "--panoptic")
    assert code == 2
    assert output.strip() == ("Error: --panoptic: expected --task segmentation (a COCO panoptic "
                              "source), found True")
