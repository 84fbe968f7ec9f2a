import re
from pathlib import Path

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from cocoprep import schema
from cocoprep.errors import SchemaError
from cocoprep.records import (
    ClassificationExample, DetectionExample, EncodedImage, Keypoint, ObjectAnnotation,
)
from conftest import parse_record

IMG = EncodedImage(data=b"\xff\xd8fake", format="jpeg", width=40, height=30, sha256="ab" * 32)


def _parse_one(task_schema, serialized: bytes) -> dict:
    return parse_record(task_schema, tf.constant(serialized))


def test_detection_round_trip_with_optional_features():
    objs = (
        ObjectAnnotation(0.1, 0.2, 0.5, 0.6, 18, "dog", False, 12.5, 7, b"png1",
                         (Keypoint(0.1, 0.2, 2), Keypoint(0.0, 0.0, 0))),
        ObjectAnnotation(0.0, 0.0, 1.0, 1.0, 1, "person", True, 99.0, 8, b"png2"),
    )
    ex = DetectionExample(IMG, "a.jpg", "101", objs, with_masks=True, num_keypoints=2,
                          captions=("a dog", "two things"))
    got = _parse_one(schema.DETECTION, schema.encode_detection(ex))
    assert got["encoded"] == IMG.data
    assert got["format"] == b"jpeg"
    assert (got["height"], got["width"]) == (30, 40)
    assert got["source_id"] == b"101"
    assert got["sha256"] == IMG.sha256.encode()
    assert got["xmin"].tolist() == pytest.approx([0.1, 0.0])
    assert got["ymax"].tolist() == pytest.approx([0.6, 1.0])
    assert got["class_label"].tolist() == [18, 1]
    assert got["class_text"].tolist() == [b"dog", b"person"]
    assert got["is_crowd"].tolist() == [0, 1]
    assert got["area"].tolist() == pytest.approx([12.5, 99.0])
    assert got["mask"].tolist() == [b"png1", b"png2"]
    # the second object has no keypoints: it gets K zero keypoints with visibility 0
    assert got["keypoint_x"].tolist() == pytest.approx([0.1, 0.0, 0.0, 0.0])
    assert got["keypoint_visibility"].tolist() == [2, 0, 0, 0]
    assert got["caption"].tolist() == [b"a dog", b"two things"]


def test_detection_round_trip_without_objects_or_optional_features():
    ex = DetectionExample(IMG, "neg.jpg", "5")
    serialized = schema.encode_detection(ex)
    keys = set(tf.train.Example.FromString(serialized).features.feature)
    optional = {f.key for f in schema.DETECTION.features if not f.required}
    assert not keys & optional
    got = _parse_one(schema.DETECTION, serialized)
    assert got["xmin"].shape == (0,)
    assert got["class_label"].shape == (0,)
    assert got["mask"].shape == (0,) and got["caption"].shape == (0,)
    assert got["filename"] == b"neg.jpg"


def test_classification_round_trip():
    ex = ClassificationExample(IMG, "cat/1.jpg", 2, "cat")
    got = _parse_one(schema.CLASSIFICATION, schema.encode_classification(ex))
    assert got["label"] == 2 and got["label_text"] == b"cat"
    assert got["filename"] == b"cat/1.jpg" and got["encoded"] == IMG.data


def _protobuf_bytes(task_schema, values: dict) -> bytes:
    """The same values serialized by protobuf itself (deterministic: keys sorted)."""
    example = tf.train.Example()
    for f in task_schema.features:
        value = values.get(f.name)
        if value is None:
            continue
        items = [value] if f.shape == schema.SCALAR else list(value)
        feature = example.features.feature[f.key]
        if f.dtype == schema.BYTES:
            feature.bytes_list.SetInParent()
            feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in items)
        elif f.dtype == schema.FLOAT:
            feature.float_list.SetInParent()
            feature.float_list.value.extend(items)
        else:
            feature.int64_list.SetInParent()
            feature.int64_list.value.extend(items)
    return example.SerializeToString(deterministic=True)


_INT64 = st.integers(-(2**63), 2**63 - 1)
_FLOAT32 = st.floats(width=32, allow_nan=False)
_TEXT = st.text(max_size=12)


@st.composite
def detection_values(draw) -> dict:
    """Named detection values: any number of objects (0..12), negative and huge
    integers, optional masks, keypoints (K per object) and captions."""
    n = draw(st.integers(0, 12))
    k = draw(st.integers(0, 3))

    def per_object(strategy, size=n):
        return draw(st.lists(strategy, min_size=size, max_size=size))

    values = {
        "encoded": draw(st.binary(max_size=64)), "format": draw(st.sampled_from(["jpeg", "png"])),
        "height": draw(_INT64), "width": draw(_INT64), "filename": draw(_TEXT),
        "source_id": draw(_TEXT), "sha256": draw(st.text("0123456789abcdef", max_size=64)),
        "xmin": per_object(_FLOAT32), "ymin": per_object(_FLOAT32),
        "xmax": per_object(_FLOAT32), "ymax": per_object(_FLOAT32),
        "class_text": per_object(_TEXT), "class_label": per_object(_INT64),
        "is_crowd": per_object(_INT64), "area": per_object(_FLOAT32),
    }
    if draw(st.booleans()):
        values["mask"] = per_object(st.binary(max_size=40))
    if k:
        values["keypoint_x"] = per_object(_FLOAT32, n * k)
        values["keypoint_y"] = per_object(_FLOAT32, n * k)
        values["keypoint_visibility"] = per_object(st.integers(-1, 2), n * k)
    if draw(st.booleans()):
        values["caption"] = draw(st.lists(_TEXT, max_size=5))
    return values


@settings(max_examples=80, deadline=None)
@given(detection_values())
def test_detection_encoding_equals_protobuf(values):
    ours = schema.encode(schema.DETECTION, values)
    assert ours == _protobuf_bytes(schema.DETECTION, values)
    assert tf.train.Example.FromString(ours).SerializeToString(deterministic=True) == ours


@settings(max_examples=60, deadline=None)
@given(label=_INT64, height=_INT64, text=_TEXT, data=st.binary(max_size=64))
def test_classification_encoding_equals_protobuf(label, height, text, data):
    values = {**schema.classification_values(ClassificationExample(IMG, text, 0, text)),
              "label": label, "height": height, "encoded": data}
    assert schema.encode(schema.CLASSIFICATION, values) == \
        _protobuf_bytes(schema.CLASSIFICATION, values)


def test_encoding_matches_protobuf_and_is_deterministic():
    ex = DetectionExample(IMG, "a.jpg", "1", (ObjectAnnotation(0.1, 0.1, 0.2, 0.2, 3, "car"),))
    a, b = schema.encode_detection(ex), schema.encode_detection(ex)
    assert a == b
    assert tf.train.Example.FromString(a).SerializeToString(deterministic=True) == a


def test_negative_and_large_int64_round_trip():
    values = dict(schema.classification_values(ClassificationExample(IMG, "x", 0, "a")))
    values["label"] = -3
    got = _parse_one(schema.CLASSIFICATION, schema.encode(schema.CLASSIFICATION, values))
    assert got["label"] == -3
    values["label"] = 2**40 + 1
    got = _parse_one(schema.CLASSIFICATION, schema.encode(schema.CLASSIFICATION, values))
    assert got["label"] == 2**40 + 1


def test_encode_rejects_bad_values():
    values = schema.classification_values(ClassificationExample(IMG, "x", 0, "a"))
    with pytest.raises(SchemaError, match="image/class/label"):
        schema.encode(schema.CLASSIFICATION, {**values, "label": None})
    with pytest.raises(SchemaError, match="unknown|names"):
        schema.encode(schema.CLASSIFICATION, {**values, "bogus": 1})
    det = schema.detection_values(DetectionExample(IMG, "a", "1", (
        ObjectAnnotation(0.1, 0.1, 0.2, 0.2, 3, "car"),)))
    with pytest.raises(SchemaError, match="1 values"):
        schema.encode(schema.DETECTION, {**det, "ymin": [0.1, 0.2]})
    with pytest.raises(SchemaError, match="label-map id"):
        schema.encode_detection(DetectionExample(IMG, "a", "1", (
            ObjectAnnotation(0.1, 0.1, 0.2, 0.2, 0, "car"),)))
    with pytest.raises(SchemaError, match="mask"):
        schema.encode_detection(DetectionExample(IMG, "a", "1", (
            ObjectAnnotation(0.1, 0.1, 0.2, 0.2, 3, "car"),), with_masks=True))


def test_infer_task():
    det_keys = [f.key for f in schema.DETECTION.features if f.required]
    cls_keys = [f.key for f in schema.CLASSIFICATION.features if f.required]
    assert schema.infer_task(det_keys) == "detection"
    assert schema.infer_task(cls_keys) == "classification"
    assert schema.infer_task(["image/encoded"]) is None


def test_od_api_and_model_garden_key_names():
    """The two decoders read these exact keys; renaming one silently breaks them."""
    keys = {f.key for f in schema.DETECTION.features}
    for key in ("image/encoded", "image/format", "image/height", "image/width",
                "image/source_id", "image/object/bbox/xmin", "image/object/bbox/ymax",
                "image/object/class/label", "image/object/class/text",
                "image/object/is_crowd", "image/object/area", "image/object/mask"):
        assert key in keys


def test_no_feature_key_outside_schema():
    """Feature keys are spelled only in schema.py."""
    root = Path(__file__).resolve().parent.parent
    keys = {f.key for s in schema.SCHEMAS.values() for f in s.features}
    pattern = re.compile("|".join(re.escape(f'"{k}"') + "|" + re.escape(f"'{k}'") for k in keys))
    offenders = []
    for folder in ("cocoprep", "benchmarks", "fixtures"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "schema.py" and path.parent.name == "cocoprep":
                continue
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
