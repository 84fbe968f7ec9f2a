"""cocoprep.load: records -> shards -> load() gives the same values back."""

from __future__ import annotations

import hashlib
import io
import subprocess
from dataclasses import replace
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import cocoprep
from cocoprep import schema
from cocoprep.errors import CocoprepError, InputError, ManifestError, UsageError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from cocoprep.options import WriteOptions
from cocoprep.records import (
    BuildResult, ClassificationExample, DetectionExample, EncodedImage, Keypoint,
    ObjectAnnotation,
)
from cocoprep.writer import SplitPlan, write_dataset

NAMES = {1: "person", 3: "car", 38: "kite"}
LABEL_MAP = LabelMap.from_pairs(sorted(NAMES.items()))
BACKGROUND = 40
FILL = {1: 200, 3: 120, 38: 250}


# ------------------------------------------------------------------ builders

class PassThrough:
    """A writer Builder whose items are already-serialized records."""

    def build(self, split, item):
        return BuildResult(example=item, num_objects=0)


def png(arr: np.ndarray, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def encoded(data: bytes, fmt: str, width: int, height: int) -> EncodedImage:
    return EncodedImage(data, fmt, width, height, hashlib.sha256(data).hexdigest())


def det_image(width, height, objects):
    """Image (lossless PNG) with each object drawn as a filled rectangle; objects are
    (y0, x0, y1, x1, label_id) in pixels. Returns (pixels, DetectionExample parts)."""
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    anns = []
    for j, (y0, x0, y1, x1, lab) in enumerate(objects):
        img[y0:y1, x0:x1] = FILL[lab]
        mask = np.zeros((height, width), np.uint8)
        mask[y0:y1, x0:x1] = 1
        anns.append(ObjectAnnotation(
            x0 / width, y0 / height, x1 / width, y1 / height, lab, NAMES[lab],
            is_crowd=(j == 2), area=float((y1 - y0) * (x1 - x0)), annotation_id=j,
            mask_png=png(mask, "L"),
            keypoints=(Keypoint(x0 / width, y0 / height, 2), Keypoint(0.0, 0.0, 0),
                       Keypoint(x1 / width, y1 / height, 1))))
    return img, tuple(anns)


def det_specs(n: int):
    """n images, 0..3 objects each, varied sizes."""
    specs = []
    for i in range(n):
        w, h = 40 + 3 * i, 30 + (i % 4) * 5
        objs = [(2, 3, 12, 15, 3), (8, 10, 25, 30, 1), (1, 20, 9, 38, 38)][: i % 4]
        specs.append((f"{1000 + i}", w, h, objs))
    return specs


def write_detection(out: Path, specs_by_split, *, masks=True, keypoints=0,
                    num_shards=2) -> dict:
    """Write detection splits; returns {split: [(id, pixels, annotations)]} in stored order."""
    truth, plans = {}, []
    for split, specs in specs_by_split.items():
        items, rows = [], []
        for source_id, w, h, objs in specs:
            img, anns = det_image(w, h, objs)
            if not keypoints:
                anns = tuple(replace(a, keypoints=()) for a in anns)
            ex = DetectionExample(encoded(png(img), "png", w, h), f"{source_id}.png", source_id,
                                  anns, with_masks=masks, num_keypoints=keypoints)
            items.append(schema.encode_detection(ex))
            rows.append((source_id, img, anns))
        truth[split] = rows
        plans.append(SplitPlan(split, items, min(num_shards, len(items))))
    write_dataset(out, plans, PassThrough(),
                  manifest=Manifest(task="detection", schema_version=schema.SCHEMA_VERSION,
                                    splits={}),
                  extra_files={"label_map.pbtxt": LABEL_MAP.to_pbtxt()},
                  options=WriteOptions(workers=1, quiet=True))
    return truth


CLASS_NAMES = ["circle", "square", "stripes"]


def write_classification(out: Path, n: int = 12, *, offset: int = 1, num_shards: int = 3,
                         size=(20, 16)) -> list:
    items, truth = [], []
    for i in range(n):
        label = i % len(CLASS_NAMES)
        img = np.full((size[1], size[0], 3), 10 + 20 * i, np.uint8)
        data = png(img)
        ex = ClassificationExample(encoded(data, "png", size[0], size[1]), f"{i:03d}.png",
                                   label + offset, CLASS_NAMES[label])
        items.append(schema.encode_classification(ex))
        truth.append((f"{i:03d}.png", label, img))
    labels = LabelMap.from_names(CLASS_NAMES, start=offset)
    write_dataset(out, [SplitPlan("train", items, num_shards), SplitPlan("val", items[:4], 1)],
                  PassThrough(),
                  manifest=Manifest(task="classification", schema_version=schema.SCHEMA_VERSION,
                                    splits={}, label_offset=offset),
                  extra_files={"labels.txt": labels.to_labels_txt()},
                  options=WriteOptions(workers=1, quiet=True))
    return truth


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    truth = write_detection(out, {"train": det_specs(8), "val": det_specs(3)})
    return out, truth


@pytest.fixture(scope="module")
def det_kp(tmp_path_factory):
    out = tmp_path_factory.mktemp("detkp")
    truth = write_detection(out, {"train": det_specs(4)}, masks=False, keypoints=3, num_shards=1)
    return out, truth


@pytest.fixture(scope="module")
def cls(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    return out, write_classification(out)


def as_numpy(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), e) for e in ds]


# ------------------------------------------------------------------ detection

def test_detection_round_trip(det):
    out, truth = det
    got = {e["image_id"].decode(): e for e in as_numpy(cocoprep.load(out, "val"))}
    assert sorted(got) == sorted(t[0] for t in truth["val"])
    for source_id, img, anns in truth["val"]:
        e = got[source_id]
        np.testing.assert_array_equal(e["image"], img)
        assert e["image"].dtype == np.uint8
        assert e["filename"] == f"{source_id}.png".encode()
        expect_boxes = np.array([[a.ymin, a.xmin, a.ymax, a.xmax] for a in anns],
                                np.float32).reshape(-1, 4)
        np.testing.assert_allclose(e["boxes"], expect_boxes, atol=1e-6)
        assert e["label_ids"].tolist() == [a.label for a in anns]
        # Contiguous classes in label-map order: ids 1, 3, 38 -> 0, 1, 2.
        assert e["classes"].tolist() == [LABEL_MAP.index_of(a.label) for a in anns]
        assert e["is_crowd"].tolist() == [a.is_crowd for a in anns]
        np.testing.assert_allclose(e["area"], [a.area for a in anns])
        assert e["num_boxes"] == len(anns)
        assert e["masks"].shape == (len(anns),) + img.shape[:2]
        for mask, a in zip(e["masks"], anns):
            expect = np.asarray(Image.open(io.BytesIO(a.mask_png)))
            np.testing.assert_array_equal(mask, expect)
            assert set(np.unique(mask)) <= {0, 1}


def test_class_mapping_uses_label_map_order(det):
    out, _ = det
    info = cocoprep.describe(out, "train")
    assert info.task == "detection"
    assert info.class_names == ["person", "car", "kite"]
    assert info.num_classes == 3 and info.has_masks and not info.has_keypoints
    assert info.num_examples == 8 and len(info.files) == 2


def test_empty_image_has_empty_object_tensors(det):
    out, truth = det
    empty = [t[0] for t in truth["train"] if not t[2]]
    got = {e["image_id"].decode(): e for e in as_numpy(cocoprep.load(out, "train", seed=0))}
    for source_id in empty:
        e = got[source_id]
        assert e["boxes"].shape == (0, 4)
        assert e["masks"].shape[0] == 0 and e["classes"].shape == (0,)


def test_keypoints_come_back(det_kp):
    out, truth = det_kp
    got = {e["image_id"].decode(): e for e in as_numpy(cocoprep.load(out, "train",
                                                                      shuffle=False))}
    assert cocoprep.describe(out).has_keypoints
    for source_id, _img, anns in truth["train"]:
        e = got[source_id]
        assert "masks" not in e
        assert e["keypoints"].shape == (len(anns), 3, 2)
        for row, vis, a in zip(e["keypoints"], e["keypoint_visibility"], anns):
            np.testing.assert_allclose(row, [[k.y, k.x] for k in a.keypoints], atol=1e-6)
            assert vis.tolist() == [k.visibility for k in a.keypoints]


def test_batching_pads_to_max_boxes(det):
    out, truth = det
    ds = cocoprep.load(out, "train", batch_size=4, image_size=(48, 64), max_boxes=5,
                       shuffle=False)
    batches = as_numpy(ds)
    assert [b["image"].shape for b in batches] == [(4, 48, 64, 3)] * 2
    for b in batches:
        assert b["image"].dtype == np.float32
        # Masks are padded only to the batch's largest object count.
        most = int(b["num_boxes"].max())
        assert b["boxes"].shape == (4, 5, 4) and b["masks"].shape == (4, most, 48, 64)
        for i, n in enumerate(b["num_boxes"]):
            assert (b["classes"][i, n:] == -1).all() and (b["label_ids"][i, n:] == -1).all()
            assert (b["classes"][i, :n] >= 0).all()
            assert (b["boxes"][i, n:] == 0).all() and (b["area"][i, n:] == 0).all()
            assert not b["is_crowd"][i, n:].any() and (b["masks"][i, n:] == 0).all()
    counts = sorted(int(n) for b in batches for n in b["num_boxes"])
    assert counts == sorted(len(t[2]) for t in truth["train"])


def test_batching_without_masks_pads_each_element_like_the_padded_batch(det_kp):
    # Records without masks batch through a plain batch, the objects padded per
    # element: the same rows and padding values as the padded batch gives with masks.
    out, _ = det_kp
    single = as_numpy(cocoprep.load(out, "train", image_size=(30, 40), shuffle=False))
    batch = next(iter(cocoprep.load(out, "train", batch_size=4, image_size=(30, 40),
                                    max_boxes=2, shuffle=False)))
    b = {k: v.numpy() for k, v in batch.items()}
    assert b["boxes"].shape == (4, 2, 4) and b["keypoints"].shape == (4, 2, 3, 2)
    pads = {"boxes": 0, "area": 0, "classes": -1, "label_ids": -1, "is_crowd": False,
            "keypoints": 0, "keypoint_visibility": 0}
    for i, e in enumerate(single):
        n = min(len(e["boxes"]), 2)
        assert b["num_boxes"][i] == n
        np.testing.assert_array_equal(b["image"][i], e["image"])
        for key, pad in pads.items():
            np.testing.assert_array_equal(b[key][i, :n], e[key][:n])
            assert (b[key][i, n:] == pad).all(), key


def test_batching_drops_objects_beyond_max_boxes(det):
    out, _ = det
    b = next(iter(cocoprep.load(out, "train", batch_size=8, image_size=32, max_boxes=1,
                                shuffle=False)))
    assert b["boxes"].shape == (8, 1, 4)
    assert b["num_boxes"].numpy().max() == 1


def test_letterbox_keeps_objects_inside_their_boxes(det):
    out, truth = det
    size = (50, 50)
    got = as_numpy(cocoprep.load(out, "val", image_size=size))
    by_id = {t[0]: t for t in truth["val"]}
    for e in got:
        _, img, anns = by_id[e["image_id"].decode()]
        h, w = img.shape[:2]
        scale = min(size[0] / h, size[1] / w)
        nh, nw = round(h * scale), round(w * scale)
        assert e["image"].shape == (50, 50, 3)
        # Padding (bottom/right) is 0, the picture keeps its aspect ratio.
        assert (e["image"][nh:] == 0).all() and (e["image"][:, nw:] == 0).all()
        assert (e["image"][:nh, :nw] > 0).all()
        for box, mask, a in zip(e["boxes"], e["masks"], anns):
            expect = np.array([a.ymin * nh / 50, a.xmin * nw / 50, a.ymax * nh / 50,
                               a.xmax * nw / 50])
            np.testing.assert_allclose(box, expect, atol=1e-5)
            ys, xs = np.nonzero(mask)
            assert ys.min() >= box[0] * 50 - 1 and ys.max() <= box[2] * 50 + 1
            assert xs.min() >= box[1] * 50 - 1 and xs.max() <= box[3] * 50 + 1


def test_padding_is_exactly_zero_after_the_default_augmentation(det):
    """Colour jitter runs before the letterbox: every pixel (and mask pixel) right of
    the picture is 0, and the picture itself is untouched by padding."""
    out, _ = det
    size = (24, 96)  # wider than any crop of these images: each has padding at the right
    ds = cocoprep.load(out, "train", batch_size=4, image_size=size, augment="default",
                       seed=3, repeat=True)
    for b in as_numpy(ds.take(6)):
        for image, masks, boxes, n in zip(b["image"], b["masks"], b["boxes"],
                                          b["num_boxes"]):
            columns = np.nonzero(image.max(axis=(0, 2)) > 0)[0]
            width = columns.max() + 1
            assert width < size[1] - 8
            # The picture spans the full height and its columns 0..width-1 (no zero
            # pixel inside: the images' darkest value is 40, jitter keeps it above 0).
            assert (image[:, :width] > 0).all() and (image[:, width:] == 0).all()
            assert (masks[:, :, width:] == 0).all()
            assert (boxes[:n, 3] <= width / size[1] + 1e-6).all()


def test_detection_as_supervised(det):
    out, _ = det
    image, targets = next(iter(cocoprep.load(out, "val", as_supervised=True)))
    assert image.dtype == tf.uint8 and "boxes" in targets and "image" not in targets


# ------------------------------------------------------------------ classification

def test_classification_labels_are_zero_based(cls):
    out, truth = cls
    got = as_numpy(cocoprep.load(out, "train", shuffle=False))
    assert [e["filename"].decode() for e in got] == [t[0] for t in truth]
    for e, (_name, label, img) in zip(got, truth):
        assert e["label"] == label and e["label"].dtype == np.int32
        assert e["label_text"].decode() == CLASS_NAMES[label]
        np.testing.assert_array_equal(e["image"], img)
    info = cocoprep.describe(out)
    assert info.label_offset == 1 and info.class_names == CLASS_NAMES


def test_classification_as_supervised_batches(cls):
    out, truth = cls
    ds = cocoprep.load(out, "train", batch_size=5, image_size=8, as_supervised=True,
                       shuffle=False)
    batches = list(ds)
    assert [tuple(x.shape) for x, _ in batches] == [(5, 8, 8, 3), (5, 8, 8, 3), (2, 8, 8, 3)]
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert labels.tolist() == [t[1] for t in truth]


def test_shuffle_is_seeded_and_train_only_by_default(cls):
    out, truth = cls
    order = lambda **kw: [e["filename"] for e in as_numpy(cocoprep.load(out, **kw))]
    first = order(split="train", seed=3)
    assert first == order(split="train", seed=3)
    assert sorted(first) == sorted(t[0].encode() for t in truth)
    assert first != [t[0].encode() for t in truth]
    assert order(split="train", seed=4) != first
    assert order(split="val") == [t[0].encode() for t in truth[:4]]


def test_repeat_and_epochs_reshuffle(cls):
    out, _ = cls
    got = [e["filename"].numpy() for e in cocoprep.load(out, seed=5, repeat=True).take(24)]
    assert sorted(got[:12]) == sorted(got[12:])
    assert got[:12] != got[12:]


@pytest.mark.slow
def test_augmented_pipeline_is_deterministic(det):
    out, _ = det
    run = lambda seed: as_numpy(cocoprep.load(out, "train", seed=seed, augment="default",
                                              image_size=40, batch_size=4))
    a, b, c = run(7), run(7), run(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["boxes"], y["boxes"])
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))


def test_input_context_shards_by_file(cls):
    out, truth = cls
    seen = []
    for pipe in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipe)
        names = [e["filename"] for e in as_numpy(cocoprep.load(out, input_context=ctx,
                                                               shuffle=False))]
        assert len(names) == 4
        seen += names
    assert sorted(seen) == sorted(t[0].encode() for t in truth)


def test_input_context_with_fewer_files_splits_records(cls):
    out, _ = cls
    seen = []
    for pipe in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipe)
        seen.append([e["filename"] for e in as_numpy(cocoprep.load(out, "val",
                                                                   input_context=ctx))])
    assert len(seen[0]) == len(seen[1]) == 2 and not set(seen[0]) & set(seen[1])


def test_glob_infers_task_and_reads_label_map(cls, det):
    out, truth = cls
    got = as_numpy(cocoprep.load(str(out / "train.tfrecord-*"), shuffle=False))
    assert [e["label"] for e in got] == [t[1] for t in truth]
    det_out, det_truth = det
    info = cocoprep.describe(str(det_out / "val.tfrecord-*"))
    assert info.task == "detection" and info.split is None and info.num_classes == 3


def test_glob_without_manifest_infers_task(tmp_path, cls):
    out, truth = cls
    for f in out.glob("train.tfrecord-*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    info = cocoprep.describe(str(tmp_path / "*"))
    assert info.task == "classification" and info.label_map is None
    got = as_numpy(cocoprep.load(str(tmp_path / "*"), shuffle=False))
    # Without a manifest nothing says an offset was stored: labels as stored.
    assert [e["label"] for e in got] == [t[1] + 1 for t in truth]


# ------------------------------------------------------------------ errors

def test_missing_split_lists_the_splits(det):
    out, _ = det
    with pytest.raises(ManifestError) as err:
        cocoprep.load(out, "test")
    msg = str(err.value)
    assert "no split 'test'" in msg and "train (8 examples)" in msg and "val (3 examples)" in msg
    assert err.value.exit_code == 2  # what the CLI exits with (preview, smoketrain)


def test_missing_manifest_says_what_is_there(tmp_path, cls):
    out, _ = cls
    (tmp_path / "data").mkdir()
    shard = next(out.glob("train.tfrecord-*"))
    (tmp_path / "data" / shard.name).write_bytes(shard.read_bytes())
    with pytest.raises(ManifestError) as err:
        cocoprep.load(tmp_path / "data")
    assert "no manifest here" in str(err.value) and shard.name in str(err.value)
    assert "glob" in str(err.value)
    (tmp_path / "sub" / "ds").mkdir(parents=True)
    (tmp_path / "sub" / "ds" / "manifest.json").write_text((out / "manifest.json").read_text())
    with pytest.raises(ManifestError, match="directories with a manifest: ds/"):
        cocoprep.load(tmp_path / "sub")


def test_missing_path_and_empty_glob(tmp_path):
    with pytest.raises(InputError, match="nothing at that path"):
        cocoprep.load(tmp_path / "nope")
    with pytest.raises(InputError, match="no files"):
        cocoprep.load(str(tmp_path / "*.tfrecord-*"))


def test_missing_shard_file_is_named(tmp_path, cls):
    out, _ = cls
    for f in out.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "val.tfrecord-00000-of-00001").unlink()
    with pytest.raises(ManifestError, match="val.tfrecord-00000-of-00001"):
        cocoprep.load(tmp_path, "val")


@pytest.mark.parametrize("kwargs, option", [
    ({"batch_size": 4}, "image_size"),
    ({"batch_size": 0, "image_size": 8}, "batch_size"),
    ({"image_size": (8, 8, 8)}, "image_size"),
    ({"image_size": 0}, "image_size"),
    ({"max_boxes": 0}, "max_boxes"),
    ({"augment": "fancy"}, "augment"),
])
def test_bad_options(cls, kwargs, option):
    out, _ = cls
    with pytest.raises(UsageError) as err:
        cocoprep.load(out, **kwargs)
    assert str(err.value).startswith(f"{option}: expected")
    assert isinstance(err.value, CocoprepError) and err.value.exit_code == 2


def test_import_does_not_load_tensorflow():
    code = ("import sys, cocoprep, cocoprep.cli; "
            "assert 'tensorflow' not in sys.modules, 'tf imported'; "
            "assert callable(cocoprep.load); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ------------------------------------------------------------------ convert / split round trips

def _coco(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from cocoprep.convert import convert_coco

    out = tmp_path_factory.mktemp("coco_out")
    convert_coco(Path(__file__).resolve().parent.parent / "fixtures" / "coco", out, masks=True,
                 workers=1, quiet=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "val"])
def test_convert_round_trip_boxes_labels_masks_ids(converted, split, fixtures_dir):
    from pycocotools import mask as mask_utils

    data = _coco(fixtures_dir / "coco" / "annotations" / f"instances_{split}.json")
    cat_ids = sorted(c["id"] for c in data["categories"])
    images = {im["id"]: im for im in data["images"]}
    anns = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    got = as_numpy(cocoprep.load(converted, split))
    assert sorted(int(e["image_id"]) for e in got) == sorted(images)
    for e in got:
        im = images[int(e["image_id"])]
        h, w = im["height"], im["width"]
        assert e["image"].shape == (h, w, 3)
        assert e["filename"].decode() == im["file_name"]
        expected = sorted(anns.get(int(e["image_id"]), []), key=lambda a: a["id"])
        assert e["num_boxes"] == len(expected)
        # Match objects by their box (the record's object order is the writer's).
        for a in expected:
            x, y, bw, bh = a["bbox"]
            box = np.array([y / h, x / w, (y + bh) / h, (x + bw) / w], np.float32)
            dist = np.abs(e["boxes"] - box).max(axis=1)
            i = int(dist.argmin())
            assert dist[i] < 1e-5
            assert e["label_ids"][i] == a["category_id"]
            assert e["classes"][i] == cat_ids.index(a["category_id"])
            assert e["is_crowd"][i] == bool(a["iscrowd"])
            assert e["area"][i] == pytest.approx(a["area"], rel=1e-5)
            seg = a["segmentation"]
            rle = mask_utils.frPyObjects(seg, h, w)  # polygons -> list of RLEs
            expect = mask_utils.decode(mask_utils.merge(rle) if isinstance(rle, list) else rle)
            np.testing.assert_array_equal(e["masks"][i], expect)


@pytest.mark.slow
def test_convert_round_trip_keypoints_and_batches(converted, fixtures_dir):
    kp_data = _coco(fixtures_dir / "coco" / "annotations" / "person_keypoints_train.json")
    images = {im["id"]: im for im in kp_data["images"]}
    got = {int(e["image_id"]): e for e in as_numpy(cocoprep.load(converted, "train"))}
    assert cocoprep.describe(converted).num_keypoints == 17
    for a in kp_data["annotations"]:
        e, im = got[a["image_id"]], images[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        box = np.array([y / im["height"], x / im["width"], (y + bh) / im["height"],
                        (x + bw) / im["width"]])
        i = int(np.abs(e["boxes"] - box).max(axis=1).argmin())
        kps = np.array(a["keypoints"], np.float32).reshape(17, 3)
        assert e["keypoint_visibility"][i].tolist() == kps[:, 2].astype(int).tolist()
        seen = kps[:, 2] > 0
        np.testing.assert_allclose(e["keypoints"][i][seen],
                                   np.stack([kps[seen, 1] / im["height"],
                                             kps[seen, 0] / im["width"]], axis=-1), atol=1e-3)
    batch = next(iter(cocoprep.load(converted, "train", batch_size=7, image_size=64,
                                    max_boxes=6, augment="default", seed=0)))
    most = int(batch["num_boxes"].numpy().max())  # masks: padded to the batch's most objects
    assert batch["masks"].shape == (7, most, 64, 64) and batch["keypoints"].shape == (7, 6, 17, 2)
    assert batch["captions"].shape[0] == 7


@pytest.mark.slow
def test_split_round_trip_labels_zero_based_after_label_offset(tmp_path, fixtures_dir):
    from cocoprep.split import split_folder

    split_folder(fixtures_dir / "imgs", tmp_path, label_offset=1, workers=1, quiet=True)
    names = sorted(p.name for p in (fixtures_dir / "imgs").iterdir() if p.is_dir())
    seen = []
    for split in ("train", "val"):
        for e in as_numpy(cocoprep.load(tmp_path, split)):
            name = e["filename"].decode()
            cls_name = name.split("/")[0]
            assert e["label"] == names.index(cls_name)  # 0-based although 1 is stored
            assert e["label_text"].decode() == cls_name
            data = (fixtures_dir / "imgs" / name).read_bytes()
            np.testing.assert_array_equal(
                e["image"], tf.io.decode_image(data, channels=3, expand_animations=False))
            seen.append(name)
    assert len(seen) == len(set(seen)) == 40
    x, y = next(iter(cocoprep.load(tmp_path, "train", batch_size=32, image_size=32,
                                   augment="default", as_supervised=True, seed=1)))
    assert x.shape == (32, 32, 32, 3) and sorted(set(y.numpy())) == [0, 1, 2, 3]


def test_load_with_a_list_of_ops(cls):
    out, truth = cls
    ops = [cocoprep.augment.RandomFlip(p=1.0), cocoprep.augment.ColorJitter(0.0, 0.0, 0, 0)]
    got = as_numpy(cocoprep.load(out, "train", augment=ops, shuffle=False))
    for e, (_name, _label, img) in zip(got, truth):
        np.testing.assert_array_equal(e["image"], img[:, ::-1])


def test_damaged_shard_is_an_error_naming_the_file(tmp_path, cls):
    """A shard that is not TFRecord data (or whose first record is corrupted) is an
    `InputError` naming the file, not TensorFlow's DataLossError without a name."""
    out, _ = cls
    for f in out.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    shard = sorted(tmp_path.glob("train.tfrecord-*"))[0]
    data = bytearray(shard.read_bytes())
    data[3] ^= 0xFF  # inside the first record's length header
    shard.write_bytes(bytes(data))
    for path in (tmp_path, str(tmp_path / "train.tfrecord-*")):
        with pytest.raises(InputError) as err:
            cocoprep.load(path, "train")
        msg = str(err.value)
        assert shard.name in msg and "corrupted" in msg and "cocoprep verify" in msg
        assert err.value.exit_code == 2


@pytest.mark.parametrize("image_size", ["12", b"12", "64"])
def test_image_size_as_a_string_is_refused(cls, image_size):
    out, _ = cls
    with pytest.raises(UsageError, match="^image_size: expected"):
        cocoprep.load(out, image_size=image_size)


def test_input_context_record_split_with_shuffle_and_no_seed_partitions_the_records(cls):
    """Fewer files than input pipelines: records are split by position, so every
    pipeline must see the files in the same order even when each one shuffles
    unseeded; otherwise pipelines read some records twice and miss others."""
    out, truth = cls
    n_pipes = len(list(out.glob("train.tfrecord-*"))) + 1
    for _ in range(4):
        seen = []
        for pipe in range(n_pipes):
            ctx = tf.distribute.InputContext(num_input_pipelines=n_pipes,
                                             input_pipeline_id=pipe)
            seen += [e["filename"] for e in as_numpy(cocoprep.load(out, input_context=ctx,
                                                                   shuffle=True))]
        assert sorted(seen) == sorted(t[0].encode() for t in truth)


def test_shard_of_records_that_are_not_examples_is_an_error(tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "train.tfrecord-00000-of-00001")) as w:
        w.write(b"\xff\xff\xff")
    with pytest.raises(InputError) as err:
        cocoprep.load(str(tmp_path / "*.tfrecord-*"))
    assert "train.tfrecord-00000-of-00001" in str(err.value)
    assert "not a tf.train.Example" in str(err.value)


@pytest.mark.parametrize("kwargs, option", [
    ({"seed": "a"}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"shuffle_buffer": 0, "shuffle": True}, "shuffle_buffer"),
])
def test_bad_seed_and_shuffle_buffer(cls, kwargs, option):
    out, _ = cls
    with pytest.raises(UsageError) as err:
        cocoprep.load(out, **kwargs)
    assert str(err.value).startswith(f"{option}: expected")


def test_reduced_decode_only_where_nothing_before_the_resize_depends_on_pixel_size(cls, det):
    """The reader asks the decode step for a reduced-scale decode (fit=) only when every
    op before the final resize is scale-invariant and there are no masks."""
    from cocoprep import augment as aug
    from cocoprep.reader import _check_options, _element_steps

    def first(path, augment, size=64):
        info = cocoprep.describe(path, "train")
        opts = _check_options(info, image_size=size, batch_size=None, max_boxes=100,
                              shuffle=None, seed=0, shuffle_buffer=8, deterministic=None,
                              repeat=False, drop_remainder=False)
        return _element_steps(info, opts, augment)[0]

    cls_out, _ = cls
    assert first(cls_out, None).fit == (64, 64)
    assert first(cls_out, [aug.RandomFlip(), aug.ColorJitter()]).fit == (64, 64)
    assert first(cls_out, [aug.RandomRotation(5)]).fit is None
    assert first(cls_out, None, size=None).fit is None
    assert isinstance(first(cls_out, "default"), aug.RandomResizedCrop)  # decodes its window
    det_out, _ = det  # masks: decoded at the stored size, so the image is too
    assert first(det_out, None).fit is None and first(det_out, None).keep_aspect


# ------------------------------------------------------------------ decode scale

@pytest.fixture(scope="module")
def big_jpegs(tmp_path_factory):
    """Classification records of two 400x520 photo-like JPEGs (stored byte for byte)."""
    from conftest import photo_jpeg, run_cli

    work = tmp_path_factory.mktemp("bigjpeg")
    data = {}
    for cls_name, (h, w) in (("a", (400, 520)), ("b", (520, 400))):
        path = work / "src" / "train" / cls_name / f"{cls_name}.jpg"
        path.parent.mkdir(parents=True)
        path.write_bytes(photo_jpeg(h, w))
        data[cls_name] = path.read_bytes()
    code, text = run_cli("split", str(work / "src"), "-o", str(work / "out"), "--quiet",
                         "--workers", "1")
    assert code == 0, text
    return work / "out", data


def test_full_scale_decode_matches_decode_image_then_resize(big_jpegs):
    out, data = big_jpegs
    full = as_numpy(cocoprep.load(out, "train", image_size=64, decode_scale="full",
                                  shuffle=False))
    auto = as_numpy(cocoprep.load(out, "train", image_size=64, shuffle=False))
    assert len(full) == 2
    for f, a in zip(full, auto):
        name = f["label_text"].decode()
        plain = tf.image.resize(tf.io.decode_image(data[name], channels=3), (64, 64)).numpy()
        np.testing.assert_array_equal(f["image"], plain)
        # The default (reduced DCT scale: 400 px -> 64 px is 1/4) gives other pixels.
        assert np.abs(a["image"] - plain).max() > 1.0


def test_full_scale_decode_with_the_default_crop_decodes_whole_images(big_jpegs):
    """RandomResizedCrop would decode only its window at reduced scale; with "full" it
    crops fully decoded pixels, so a seeded run equals the op on decode_image output."""
    from cocoprep import augment as aug
    from cocoprep.reader import _check_options, _element_steps

    out, _ = big_jpegs
    info = cocoprep.describe(out, "train")
    opts = _check_options(info, image_size=64, batch_size=None, max_boxes=100, shuffle=None,
                          seed=0, shuffle_buffer=8, deterministic=None, repeat=False,
                          drop_remainder=False, decode_scale="full")
    steps = _element_steps(info, opts, "default")
    assert isinstance(steps[0], aug.Decode) and steps[0].fit is None
    assert isinstance(steps[1], aug.RandomResizedCrop)


def test_describe_states_the_decode_rule(det, det_kp):
    from cocoprep.datasetinfo import DECODE_RULES

    with_masks = cocoprep.describe(det[0], "train")
    without = cocoprep.describe(det_kp[0], "train")
    assert with_masks.has_masks and with_masks.decode_rule == DECODE_RULES["masks"]
    assert with_masks.decode_rule.startswith("auto: full scale (the records hold masks")
    assert not without.has_masks and without.decode_rule == DECODE_RULES["no_masks"]
    assert "decode_rule=" in repr(without)


def test_decode_scale_must_be_auto_or_full(big_jpegs):
    with pytest.raises(UsageError) as err:
        cocoprep.load(big_jpegs[0], "train", image_size=64, decode_scale="half")
    assert str(err.value) == "decode_scale: expected 'auto' or 'full', found 'half'"
