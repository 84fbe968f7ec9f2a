"""cocoprep inspect: the counts agree with what the data holds (fixtures/README.md)."""

from __future__ import annotations

import json

import pytest

from cocoprep.inspection import format_inspect, inspect
from conftest import FIXTURES, invoke, run_cli
from verify_builders import (
    convert_fixture_coco, split_fixture_imgs, write_classification, write_detection,
)


@pytest.fixture(scope="module")
def coco_out(tmp_path_factory):
    return convert_fixture_coco(tmp_path_factory.mktemp("coco") / "out", "--masks")


@pytest.fixture(scope="module")
def imgs_out(tmp_path_factory):
    return split_fixture_imgs(tmp_path_factory.mktemp("imgs") / "out")


def test_coco_fixture_counts_match_the_fixture_readme(coco_out):
    code, text = run_cli("inspect", str(coco_out), "--json")
    assert code == 0, text
    report = json.loads(text)
    assert report["task"] == "detection"
    train, val = report["splits"]["train"], report["splits"]["val"]
    assert train["examples"] == 7 and val["examples"] == 3
    assert train["objects"] == 14 and val["objects"] == 6
    assert train["classes"] == {"person": 4, "car": 4, "dog": 3, "kite": 3}
    assert list(train["classes"]) == ["person", "car", "dog", "kite"]  # by count, then label order
    assert val["classes"] == {"car": 2, "dog": 2, "person": 1, "kite": 1}
    assert list(val["classes"]) == ["car", "dog", "person", "kite"]
    assert train["crowd"] == 1 and val["crowd"] == 0
    assert train["images_without_objects"] == 1
    assert train["objects_with_masks"] == 14 and val["objects_with_masks"] == 6
    assert train["objects_with_keypoints"] == 3  # annotations 1001, 1007, 1012
    assert (train["captions"], train["images_with_captions"]) == (12, 7)
    assert val["captions"] == 0
    assert train["image_width"] == {"min": 160, "max": 320}
    assert train["image_height"] == {"min": 120, "max": 240}
    assert val["image_width"] == {"min": 150, "max": 320}
    assert val["image_height"] == {"min": 168, "max": 240}
    assert train["skipped"] == {}
    manifest = json.loads((coco_out / "manifest.json").read_text())
    sizes = [s["size_bytes"] for s in manifest["splits"]["train"]["shards"]]
    assert train["shards"] == {"count": len(sizes), "total_bytes": sum(sizes),
                               "min_bytes": min(sizes), "max_bytes": max(sizes)}
    # objects per image: train images hold 1..4 objects, one holds none
    assert train["objects_per_image"]["mean"] == pytest.approx(2.0)
    assert 1 <= train["objects_per_image"]["max"] <= 14


def test_coco_fixture_table(coco_out):
    code, text = run_cli("inspect", str(coco_out))
    assert code == 0, text
    assert "split train" in text and "split val" in text
    assert "  objects     14  (per image: mean 2.00" in text
    assert "  crowd       1" in text
    assert "  masks       14 of 14 objects" in text
    assert "  keypoints   3 of 14 objects" in text
    assert "  captions    12 in 7 of 7 images" in text
    assert "  image size  width 160..320, height 120..240" in text
    lines = text.splitlines()
    person = next(line for line in lines if line.strip().startswith("person  4"))
    dog = next(line for line in lines if line.strip().startswith("dog     3"))
    assert person.count("█") == 30 and dog.count("█") == round(30 * 3 / 4)


def test_imgs_fixture_counts(imgs_out):
    report = inspect(imgs_out)
    assert report["task"] == "classification"
    splits = report["splits"]
    assert sum(s["examples"] for s in splits.values()) == 40
    total: dict = {}
    for s in splits.values():
        for k, v in s["classes"].items():
            total[k] = total.get(k, 0) + v
    assert total == {"circle": 10, "square": 10, "stripes": 10, "triangle": 10}
    assert splits["train"]["classes"] == {"circle": 8, "square": 8, "stripes": 8, "triangle": 8}
    low = min(s["image_width"]["min"] for s in splits.values())
    high = max(s["image_height"]["max"] for s in splits.values())
    assert 64 <= low and high <= 96
    assert "objects" not in splits["train"]


def test_built_records_counts_and_skips_from_manifest(tmp_path):
    out = tmp_path / "det"
    write_detection(out)
    m = out / "manifest.json"
    data = json.loads(m.read_text())
    data["splits"]["train"]["skipped"] = {"missing_file": 2, "corrupt_image": 1}
    m.write_text(json.dumps(data))
    report = inspect(out)
    train = report["splits"]["train"]
    assert train["examples"] == 4 and train["objects"] == 6
    assert train["objects_per_image"] == {"mean": 1.5, "max": 3}
    assert train["images_without_objects"] == 1
    assert train["crowd"] == 1
    assert train["classes"] == {"person": 3, "car": 2, "dog": 1}
    assert train["image_width"] == {"min": 40, "max": 64}
    assert train["image_height"] == {"min": 30, "max": 60}
    assert train["shards"]["count"] == 2
    assert train["skipped"] == {"missing_file": 2, "corrupt_image": 1}
    assert "skipped     missing_file 2, corrupt_image 1" in format_inspect(report)
    # a class of the label map with no objects in a split is listed with 0
    assert report["splits"]["val"]["classes"] == {"dog": 1, "car": 1, "person": 0}


def test_classification_glob_without_manifest(tmp_path):
    write_classification(tmp_path / "cls", offset=1)
    report = inspect(str(tmp_path / "cls" / "*.tfrecord-*"))
    assert report["task"] == "classification"
    assert report["splits"]["train"]["examples"] == 7
    assert report["splits"]["train"]["classes"] == {"cat": 3, "dog": 2, "fish": 2}
    assert report["splits"]["val"]["skipped"] is None
    assert "skipped     unknown (no manifest)" in format_inspect(report)


def test_missing_manifest_and_missing_shard_are_errors(tmp_path):
    code, text = run_cli("inspect", str(tmp_path))
    assert code == 2 and "Error:" in text and "no manifest here" in text
    write_detection(tmp_path / "det")
    (tmp_path / "det" / "val.tfrecord-00000-of-00001").unlink()
    code, text = run_cli("inspect", str(tmp_path / "det"))
    assert code == 2
    assert "Error:" in text and "val.tfrecord-00000-of-00001: expected a shard listed" in text


def _output_with_a_damaged_shard(tmp_path):
    out = tmp_path / "det"
    write_detection(out)
    shard = out / "train.tfrecord-00001-of-00002"
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    return out


def test_damaged_shard_is_an_error_naming_the_file(tmp_path):
    code, text = run_cli("inspect", str(_output_with_a_damaged_shard(tmp_path)))
    assert code == 2
    assert "Error:" in text and "train.tfrecord-00001-of-00002: expected readable" in text
    assert "cocoprep verify" in text and "Traceback" not in text


def test_damaged_shard_message_carries_no_tensorflow_internals(tmp_path):
    code, text = run_cli("inspect", str(_output_with_a_damaged_shard(tmp_path)))
    assert code == 2
    assert "corrupted record at" in text
    assert "function_node" not in text and "[Op:" not in text and "name:" not in text


def test_difficult_objects_are_counted_on_voc_output(tmp_path):
    import re

    out = tmp_path / "voc"
    assert invoke("convert", FIXTURES / "voc", "-o", out, "-q").exit_code == 0
    by_split = {}
    root = FIXTURES / "voc" / "VOCdevkit" / "VOC2007"
    for split in ("train", "val"):
        ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        by_split[split] = sum(
            len(re.findall(r"<difficult>1</difficult>", (root / "Annotations" / f"{i}.xml")
                           .read_text())) for i in ids)
    assert sum(by_split.values()) > 0  # the fixture has difficult objects to count
    result = invoke("inspect", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {s: report["splits"][s]["difficult"] for s in by_split} == by_split
    text = invoke("inspect", out).stdout
    assert f"  difficult   {by_split['train']}\n" in text
