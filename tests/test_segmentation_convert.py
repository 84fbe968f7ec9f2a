"""`convert` of image/mask folder pairs and ADE20K into segmentation records: exact
pixels through the label map (read the way the Model Garden reads them), void,
split folders, names, determinism, TFDS."""

from __future__ import annotations

import numpy as np
import pytest

from cocoprep import schema
from cocoprep.manifest import Manifest
from cocoprep.segconvert import convert_segmentation
from cocoprep.sources import find_task
from conftest import raw_records, run_cli
from seg_builders import VOID, ade_tree, convert_found, model_garden_records, pairs_tree


def _by_stem(records: dict) -> dict:
    return {name.rsplit(".", 1)[0]: value for name, value in records.items()}


def test_pairs_found_without_flags_and_every_pixel_kept(tmp_path):
    expected = pairs_tree(tmp_path / "src", n=4)
    assert find_task(tmp_path / "src") == "segmentation"
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    assert "images/ + masks/ folder pairs: split train" in output
    assert "train       4 images in 1 shard(s)" in output
    got = _by_stem(model_garden_records(tmp_path / "out", "train"))
    assert sorted(got) == sorted(expected)
    for stem, (image, mask) in got.items():
        assert image.shape[:2] == mask.shape
        np.testing.assert_array_equal(mask, expected[stem])
        assert (mask == VOID).any()  # the void border survives as 255
    assert (tmp_path / "out" / "labels.txt").read_text() == "background\ncat\ndog\n"
    pbtxt = (tmp_path / "out" / "label_map.pbtxt").read_text()
    assert pbtxt.startswith(f"# Mask ids are the item ids below; {VOID} is void")
    manifest = Manifest.read(tmp_path / "out")
    assert manifest.task == "segmentation" and manifest.options["void_id"] == VOID
    total = {k: 0 for k in ("background", "cat", "dog")}
    for ids in expected.values():
        for k, name in enumerate(total):
            total[name] += int((ids == k).sum())
    assert manifest.splits["train"].class_counts == total
    assert manifest.counters["void_pixels"] == sum(int((e == VOID).sum())
                                                   for e in expected.values())


def test_palette_masks_in_pairs_are_read_as_indices(tmp_path):
    expected = pairs_tree(tmp_path / "src", mode="P", mask_dir="annotations")
    convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    for stem, (_, mask) in _by_stem(model_garden_records(tmp_path / "out", "train")).items():
        np.testing.assert_array_equal(mask, expected[stem])


def test_split_folders_become_splits(tmp_path):
    expected = pairs_tree(tmp_path / "src", splits=("train", "val"), n=2)
    manifest = convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    assert list(manifest.splits) == ["train", "val"]
    for split in ("train", "val"):
        for stem, (_, mask) in _by_stem(model_garden_records(tmp_path / "out", split)).items():
            np.testing.assert_array_equal(mask, expected[f"{split}/{stem}"])


def test_classes_option_names_the_ids(tmp_path):
    pairs_tree(tmp_path / "src", names_file=False)
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out")
    assert code == 2
    assert output.strip() == (f"Error: {tmp_path / 'src'}: expected class names in mask-value "
                              "order: classes.txt or labels.txt beside the image folder, or "
                              "--classes (id 0 first), found none")
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out", "--classes",
                           "bg,a,b", "-q")
    assert code == 0, output
    assert (tmp_path / "out" / "labels.txt").read_text() == "bg\na\nb\n"


def test_ade20k_other_is_void_and_ids_shift_down(tmp_path):
    expected = ade_tree(tmp_path)
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    assert "ADE20K SceneParsing (images/ + annotations/): splits training, validation" in output
    assert "ADE20K: mask value 0 (other) is void (255); value k is class id k-1" in output
    labels = (tmp_path / "out" / "labels.txt").read_text().splitlines()
    assert len(labels) == 150 and labels[0] == "class1" and labels[149] == "class150"
    for split in ("training", "validation"):
        for stem, (_, mask) in _by_stem(model_garden_records(tmp_path / "out", split)).items():
            np.testing.assert_array_equal(mask, expected[stem])
            assert (mask[0] == VOID).all()


def test_one_worker_and_two_write_the_same_bytes(tmp_path):
    pairs_tree(tmp_path / "src", splits=("train", "val"), n=5)
    for workers in (1, 2):
        convert_segmentation(tmp_path / "src", tmp_path / f"out{workers}", workers=workers,
                             num_shards=2, quiet=True)
    for name in sorted(p.name for p in (tmp_path / "out1").iterdir()):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()


def test_ratio_deals_one_split_out(tmp_path):
    pairs_tree(tmp_path / "src", n=10)
    manifest = convert_segmentation(tmp_path / "src", tmp_path / "out", ratio="0.8,0.2",
                                    workers=1, quiet=True)
    assert {k: v.num_examples for k, v in manifest.splits.items()} == {"train": 8, "val": 2}


def test_records_hold_exactly_the_schema_keys(tmp_path):
    """Every key comes from schema.SEGMENTATION; no detection key sneaks in."""
    import tensorflow as tf

    pairs_tree(tmp_path / "src", n=1)
    convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    (path,) = Manifest.read(tmp_path / "out").shard_paths(tmp_path / "out", "train")
    example = tf.train.Example.FromString(raw_records(path)[0])
    keys = set(example.features.feature)
    assert keys == {f.key for f in schema.SEGMENTATION.features if f.required}
    feature = example.features.feature
    assert feature[schema.keys_of(schema.SEGMENTATION)["class_mask_format"]].bytes_list.value \
        == [b"png"]
    assert feature[schema.keys_of(schema.SEGMENTATION)["filename"]].bytes_list.value \
        == [b"img_0.jpg"]


def test_tfds_opens_the_output_with_its_masks(tmp_path):
    import tensorflow_datasets as tfds

    expected = pairs_tree(tmp_path / "src", n=3)
    convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    builder = tfds.builder_from_directory(str(tmp_path / "out"))
    keys = schema.keys_of(schema.SEGMENTATION)
    seen = {}
    for rec in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)):
        seen[rec[keys["filename"]].decode().rsplit(".", 1)[0]] = rec[keys["class_mask"]]
    assert sorted(seen) == sorted(expected)
    for stem, mask in seen.items():
        np.testing.assert_array_equal(mask[..., 0], expected[stem])
    image, mask = next(iter(tfds.as_numpy(builder.as_dataset(split="train", as_supervised=True))))
    assert image.shape[:2] == mask.shape[:2] and mask.shape[2] == 1


@pytest.mark.parametrize("flag, value", [("--masks", None), ("--crowd", "drop"),
                                         ("--skip-difficult", None)])
def test_detection_options_are_refused_for_segmentation(tmp_path, flag, value):
    pairs_tree(tmp_path / "src", n=1)
    args = [flag] + ([value] if value else [])
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out", *args)
    shown = repr(value) if value else "True"
    assert code == 2
    assert output.strip() == (f"Error: {flag}: expected no detection option with --task "
                              f"segmentation, found {shown}")
    assert not (tmp_path / "out").exists()


def test_roboflow_masks_beside_their_images(tmp_path):
    from seg_builders import roboflow_tree

    expected = roboflow_tree(tmp_path)
    output = convert_found(tmp_path, tmp_path / "out", "Roboflow semantic segmentation masks: "
                           "splits train, valid", "background\ncrack\nhole\n")
    assert "skipped 0" in output  # the _mask.png files are not taken for images
    for split in ("train", "valid"):
        for stem, (_, mask) in _by_stem(model_garden_records(tmp_path / "out", split)).items():
            np.testing.assert_array_equal(mask, expected[stem])


def test_roboflow_classification_csv_is_not_a_mask_export(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "_classes.csv").write_text("filename, cat, dog\na.jpg, 1, 0\n")
    assert find_task(tmp_path) == "detection"


def test_beam_writes_the_same_bytes_as_the_local_runner(tmp_path):
    pairs_tree(tmp_path / "src", splits=("train", "val"), n=3)
    convert_segmentation(tmp_path / "src", tmp_path / "local", workers=1, num_shards=2,
                         quiet=True)
    convert_segmentation(tmp_path / "src", tmp_path / "beam", workers=1, num_shards=2,
                         quiet=True, runner="beam",
                         beam_options=["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "beam").iterdir())
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "beam" / name).read_bytes()
