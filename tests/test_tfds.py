"""Every output opens in TensorFlow Datasets: `tfds.builder_from_directory(OUT)` reads
the records cocoprep wrote (the same images, boxes, labels and class names as
`cocoprep.load`), slices splits and makes a dataframe; `verify` rejects TFDS files
that do not match the shards; the bytes are the layout TFDS itself writes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds  # the `test` extra installs it; cocoprep never imports it

from cocoprep import schema, tfdsmeta
from cocoprep.convert import convert_coco
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from cocoprep.reader import load
from cocoprep.split import split_folder
from conftest import (FIXTURES, coco_dict, invoke, raw_records, run_cli, write_image,
                      write_json)
from export_builders import cvat_export, roboflow_export

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
DET_LABEL = "image/object/class/label"
CLS_LABEL = "image/class/label"


# ------------------------------------------------------------------ helpers

def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def tfds_records(out: Path, split: str) -> list[dict]:
    builder = tfds.builder_from_directory(str(out))
    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def paired_records(out: Path, split: str, count: int) -> list[tuple[dict, dict]]:
    """Each TFDS record of `split` with `cocoprep.load`'s element of the same file,
    after checking both give `count` records and the same decoded image."""
    ours = {_text(e["filename"]): e for e in load(out, split, shuffle=False).as_numpy_iterator()}
    theirs = tfds_records(out, split)
    assert len(theirs) == len(ours) == count
    pairs = [(rec, ours[_text(rec["image/filename"])]) for rec in theirs]
    for rec, mine in pairs:
        np.testing.assert_array_equal(rec["image/encoded"], mine["image"])
    return pairs


def label_names_match(out: Path, builder, key: str) -> None:
    """The ClassLabel's name at each stored id is the label map's name, and the
    names at the label map's ids, in order, are labels.txt."""
    manifest = Manifest.read(out)
    name = tfdsmeta.labels_file(manifest)
    label_map = tfdsmeta.parse_label_map(manifest, name, (out / name).read_text())
    feature = builder.info.features[key]
    assert [feature.int2str(i) for i in label_map.ids] == \
        (out / "labels.txt").read_text().splitlines()


def check_detection(out: Path, *, masks: bool = False) -> None:
    """Every split: TFDS yields every record, each equal to cocoprep.load's."""
    manifest = Manifest.read(out)
    builder = tfds.builder_from_directory(str(out))
    assert list(builder.info.splits) == list(manifest.splits)
    label_names_match(out, builder, DET_LABEL)
    names = builder.info.features[DET_LABEL]
    for split, info in manifest.splits.items():
        assert builder.info.splits[split].shard_lengths == [s.num_examples for s in info.shards]
        for rec, mine in paired_records(out, split, info.num_examples):
            boxes = np.stack([rec[f"image/object/bbox/{k}"]
                              for k in ("ymin", "xmin", "ymax", "xmax")], axis=-1)
            np.testing.assert_array_equal(boxes.reshape(-1, 4), mine["boxes"])
            np.testing.assert_array_equal(rec[DET_LABEL], mine["label_ids"])
            assert [names.int2str(int(i)) for i in rec[DET_LABEL]] == \
                [_text(t) for t in rec["image/object/class/text"]]
            if masks and len(mine["masks"]):
                np.testing.assert_array_equal(rec["image/object/mask"][..., 0], mine["masks"])
            elif masks:  # no object: TFDS gives shape (0, 0, 0, 1)
                assert rec["image/object/mask"].size == 0


def described_as_written(out: Path) -> None:
    """features.json describes every key the records hold (all shards), and beyond
    them only optional lists that no record here happens to hold (TFDS reads an
    absent list as empty)."""
    described = set(json.loads((out / "features.json").read_text())
                    ["featuresDict"]["features"])
    written: set[str] = set()
    for shard in out.glob("*.tfrecord-*"):
        for raw in raw_records(shard):
            written.update(tf.train.Example.FromString(raw).features.feature)
    assert written and written <= described, sorted(written - described)
    optional_lists = {f.key for f in schema.schema_for(Manifest.read(out).task).features
                      if not f.required and f.shape == schema.LIST}
    assert described - written <= optional_lists, sorted(described - written - optional_lists)


def check_slicing_and_dataframe(out: Path, split: str) -> None:
    builder = tfds.builder_from_directory(str(out))
    n = builder.info.splits[split].num_examples
    first = len(tfds_records(out, f"{split}[:50%]"))
    rest = len(tfds_records(out, f"{split}[50%:]"))
    assert abs(2 * first - n) <= 1 and first + rest == n
    df = tfds.as_dataframe(builder.as_dataset(split=split).take(2), builder.info)
    assert len(df) == min(2, n)


# ------------------------------------------------------------------ outputs open in TFDS

@pytest.fixture(scope="module")
def coco_masks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tfds") / "coco"
    convert_coco(FIXTURES / "coco", out, masks=True, num_shards=2, workers=1, quiet=True)
    return out


def test_fixture_coco_opens_in_tfds(tmp_path):
    out = tmp_path / "out"
    convert_coco(FIXTURES / "coco", out, num_shards=2, workers=1, quiet=True)
    features = json.loads((out / "features.json").read_text())["featuresDict"]["features"]
    assert "image/object/mask" not in features  # no --masks: not described
    assert "image/object/difficult" not in features  # a VOC key
    check_detection(out)
    described_as_written(out)
    check_slicing_and_dataframe(out, "train")


def test_fixture_coco_with_masks_opens_in_tfds(coco_masks):
    check_detection(coco_masks, masks=True)
    described_as_written(coco_masks)
    rec = tfds_records(coco_masks, "train")[0]
    assert rec["image/object/keypoint/x"].size % 17 == 0  # keypoints and captions read
    assert rec["image/caption"].size >= 1


def test_coco_ids_with_gaps_keep_their_names(coco_masks):
    """COCO's ids (here 1, 3, 18, 38) are stored as they are; TFDS names them."""
    builder = tfds.builder_from_directory(str(coco_masks))
    names = builder.info.features[DET_LABEL].names
    assert len(names) == 39
    assert (names[1], names[3], names[18], names[38]) == ("person", "car", "dog", "kite")
    assert names[0] == "unused_0" and names[2] == "unused_2"


@pytest.mark.parametrize("export", ["roboflow", "cvat"])
def test_tool_exports_open_in_tfds(tmp_path, export):
    src = tmp_path / "src"
    if export == "roboflow":
        roboflow_export(src)
    else:
        cvat_export(src)
    out = tmp_path / "out"
    convert_coco(src, out, masks=export == "cvat", workers=1, quiet=True)
    check_detection(out, masks=export == "cvat")
    described_as_written(out)
    check_slicing_and_dataframe(out, "train" if export == "roboflow" else "default")


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_voc_and_yolo_fixtures_open_in_tfds(tmp_path, fmt):
    """Each format's own lists are described (VOC: difficult/truncated/view), no other's."""
    out = tmp_path / "out"
    convert_coco(FIXTURES / fmt, out, workers=1, quiet=True)
    check_detection(out)
    described_as_written(out)
    features = json.loads((out / "features.json").read_text())["featuresDict"]["features"]
    voc_keys = {"image/object/difficult", "image/object/truncated", "image/object/view"}
    assert (voc_keys <= set(features)) == (fmt == "voc")
    assert "image/caption" not in features and "image/object/keypoint/x" not in features
    if fmt == "voc":
        split = next(iter(Manifest.read(out).splits))
        rec = tfds_records(out, split)[0]
        n = len(rec[DET_LABEL])
        assert len(rec["image/object/difficult"]) == len(rec["image/object/view"]) == n


@pytest.mark.parametrize("offset", [0, 1])
def test_split_output_opens_in_tfds(tmp_path, offset):
    out = tmp_path / "out"
    split_folder(FIXTURES / "imgs", out, num_shards=2, label_offset=offset, workers=1,
                 quiet=True)
    manifest = Manifest.read(out)
    builder = tfds.builder_from_directory(str(out))
    label_names_match(out, builder, CLS_LABEL)
    described_as_written(out)
    assert builder.info.supervised_keys == ("image/encoded", CLS_LABEL)
    for split, info in manifest.splits.items():
        for rec, mine in paired_records(out, split, info.num_examples):
            assert rec[CLS_LABEL] - offset == mine["label"]
            assert builder.info.features[CLS_LABEL].int2str(rec[CLS_LABEL]) == \
                _text(rec["image/class/text"])
    check_slicing_and_dataframe(out, "train")


@pytest.mark.slow
def test_beam_written_output_opens_in_tfds(tmp_path):
    out = tmp_path / "beam"
    convert_coco(FIXTURES / "coco", out, masks=True, num_shards=2, quiet=True,
                 runner="beam", beam_options=IN_MEMORY)
    check_detection(out, masks=True)
    check_slicing_and_dataframe(out, "val")


def test_max_side_describes_the_original_size(tmp_path):
    """Written in every record with --max-side (so described), absent otherwise."""
    out = tmp_path / "out"
    convert_coco(FIXTURES / "coco", out, max_side=100, splits="val", workers=1, quiet=True)
    described_as_written(out)
    rec = tfds_records(out, "val")[0]
    assert rec["image/original_width"] > rec["image/width"] == 100 or \
        rec["image/original_height"] > rec["image/height"] == 100


def test_ids_far_apart_are_plain_integers(tmp_path):
    """More than MAX_UNUSED_IDS unused ids: the label is an int64, still loadable."""
    src = tmp_path / "src"
    write_image(src / "train" / "a.jpg", 40, 30)
    cats = [{"id": 1, "name": "near"}, {"id": 50_000, "name": "far"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 50_000, "bbox": [1, 1, 10, 10],
             "area": 100, "iscrowd": 0}]
    write_json(src / "annotations" / "instances_train.json",
               coco_dict([(1, "a.jpg", 40, 30)], anns, cats))
    out = tmp_path / "out"
    convert_coco(src, out, workers=1, quiet=True)
    assert not list(out.glob("*.labels.txt"))
    (rec,) = tfds_records(out, "train")
    assert rec[DET_LABEL].tolist() == [50_000]
    assert [_text(t) for t in rec["image/object/class/text"]] == ["far"]


# ------------------------------------------------------------------ the files themselves

def test_files_are_the_layout_tfds_writes(coco_masks):
    """TFDS reading our files and writing them again gives the same bytes."""
    from google.protobuf import json_format
    from tensorflow_datasets.core import dataset_info
    from tensorflow_datasets.core.features import feature as feature_lib

    info = (coco_masks / "dataset_info.json").read_text()
    proto = dataset_info.read_from_json(coco_masks / "dataset_info.json")
    assert json_format.MessageToJson(proto, sort_keys=True) == info
    features = (coco_masks / "features.json").read_text()
    rebuilt = feature_lib.FeatureConnector.from_json(json.loads(features))
    assert json.dumps(json_format.MessageToDict(rebuilt.to_proto()), indent=4,
                      sort_keys=True) == features


def test_files_are_listed_in_the_manifest_and_deterministic(coco_masks, tmp_path):
    manifest = Manifest.read(coco_masks)
    assert sorted(manifest.tfds_files) == ["dataset_info.json", "features.json",
                                           "image.object.class.label.labels.txt"]
    again = tmp_path / "again"
    convert_coco(FIXTURES / "coco", again, masks=True, num_shards=2, workers=2, quiet=True)
    for name in manifest.tfds_files:
        assert (again / name).read_bytes() == (coco_masks / name).read_bytes()
    info = json.loads((coco_masks / "dataset_info.json").read_text())
    assert info["splits"][0]["filepathTemplate"] == "{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"


def test_a_new_run_replaces_old_tfds_files(tmp_path):
    out = tmp_path / "out"
    split_folder(FIXTURES / "imgs", out, workers=1, quiet=True)
    assert (out / "image.class.label.labels.txt").is_file()
    convert_coco(FIXTURES / "coco", out, splits="val", workers=1, quiet=True)
    assert not (out / "image.class.label.labels.txt").exists()
    assert sorted(p.name for p in out.glob("*.labels.txt")) == \
        ["image.object.class.label.labels.txt"]


def test_unused_ids_get_names_no_class_has():
    lm = LabelMap.from_pairs([(1, "unused_2"), (3, "_unused_2"), (4, "b")])
    assert tfdsmeta.class_names(lm) == ("unused_0", "unused_2", "__unused_2", "_unused_2", "b")
    # ids 0 and 2..M unused (M of them): still named; one more and the label is plain
    edge = LabelMap.from_pairs([(1, "a"), (tfdsmeta.MAX_UNUSED_IDS + 1, "b")])
    assert len(tfdsmeta.class_names(edge)) == tfdsmeta.MAX_UNUSED_IDS + 2
    far = LabelMap.from_pairs([(1, "a"), (tfdsmeta.MAX_UNUSED_IDS + 2, "b")])
    assert tfdsmeta.class_names(far) is None


# ------------------------------------------------------------------ verify and inspect

@pytest.fixture
def det(coco_masks, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(coco_masks, copy)
    return copy


def test_verify_rejects_a_tampered_dataset_info(det):
    path = det / "dataset_info.json"
    info = json.loads(path.read_text())
    info["splits"][0]["shardLengths"][0] = str(int(info["splits"][0]["shardLengths"][0]) + 1)
    path.write_text(json.dumps(info, indent=2, sort_keys=True))
    code, output = run_cli("verify", det)
    assert code == 1
    assert "dataset_info.json: sha256 differs from manifest.json" in output
    assert ("dataset_info.json: does not match the shards and manifest.json "
            "(splits[0].shardLengths[0]: ") in output


def _edit_with_digest(out: Path, name: str, text: str) -> None:
    """Rewrite a listed TFDS file and its sha256 in manifest.json to match."""
    (out / name).write_text(text)
    data = json.loads((out / "manifest.json").read_text())
    data["tfds_files"][name] = hashlib.sha256(text.encode()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(data, indent=2))


def test_verify_rejects_tfds_files_edited_with_their_digest(det):
    """A names file edited and its sha256 updated in manifest.json: the contents
    still disagree with the label map."""
    name = "image.object.class.label.labels.txt"
    _edit_with_digest(det, name, (det / name).read_text().replace("dog", "cat"))
    code, output = run_cli("verify", det)
    assert code == 1
    assert (f"{name}: does not match the shards and manifest.json "
            "(line 19: 'cat', expected 'dog')") in output


def test_verify_rejects_features_json_edited_with_its_digest(det):
    """A described key dropped from features.json, its sha256 updated: the contents
    are checked against the manifest, not only the digest."""
    features = json.loads((det / "features.json").read_text())
    del features["featuresDict"]["features"]["image/object/area"]
    _edit_with_digest(det, "features.json", json.dumps(features, indent=4, sort_keys=True))
    code, output = run_cli("verify", det)
    assert code == 1
    assert ("features.json: does not match the shards and manifest.json "
            "(featuresDict.features.image/object/area missing)") in output
    assert "sha256 differs" not in output


def test_verify_rejects_missing_features_json(det):
    (det / "features.json").unlink()
    code, output = run_cli("verify", det)
    assert code == 1
    assert "features.json: missing (listed in manifest.json)" in output


def test_verify_warns_about_an_output_without_tfds_files(det):
    data = json.loads((det / "manifest.json").read_text())
    data["tfds_files"] = {}
    (det / "manifest.json").write_text(json.dumps(data, indent=2))
    result = invoke("verify", det)
    assert result.exit_code == 0
    assert "Warning: no TensorFlow Datasets metadata" in result.output


def test_inspect_shows_the_two_lines(coco_masks):
    code, output = run_cli("inspect", coco_masks)
    assert code == 0
    assert output.rstrip().endswith(
        "TensorFlow Datasets (import tensorflow_datasets as tfds):\n"
        f"  builder = tfds.builder_from_directory({str(coco_masks)!r})\n"
        "  ds = builder.as_dataset(split='train')")
    code, output = run_cli("inspect", str(coco_masks / "*.tfrecord-*"))
    assert code == 0 and "tfds." not in output
