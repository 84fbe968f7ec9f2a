"""The record schema: the ONLY module that spells feature keys.

Each task has one declarative table of `Feature`s. The encoder (values ->
serialized `tf.train.Example`), the `tf.io` parse spec used by the reader and the
TensorFlow Datasets description (`tfds_features`) are all derived from that table,
so they cannot drift apart.

Serialization is written directly in the protobuf wire format with keys in sorted
order: it needs no TensorFlow (workers stay light), and the bytes are identical for
identical values, which keeps shards byte-for-byte deterministic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping

from cocoprep.errors import SchemaError
from cocoprep.records import ClassificationExample, DetectionExample, SegmentationExample

SCHEMA_VERSION = "1.0"

BYTES, INT64, FLOAT = "bytes", "int64", "float"
SCALAR, LIST = "scalar", "list"
# What a value is beyond its wire type (None: text for bytes, a plain number otherwise).
IMAGE, MASK, CLASS_ID = "image", "mask", "class_id"


@dataclass(frozen=True)
class Feature:
    """One feature of a task's records.

    Attributes:
        key: the tf.train.Example key.
        name: the value's name in `encode()` input and `parse()` output.
        dtype: `bytes`, `int64` or `float`.
        shape: `scalar` (exactly one value) or `list` (any length).
        required: optional features may be absent from a record.
        group: lists in one group must have the same length (e.g. one per object).
        kind: IMAGE (an encoded JPEG or PNG), MASK (a one-channel PNG), CLASS_ID (an
            id of the output's label map); None: text (bytes) or a plain number.
    """

    key: str
    name: str
    dtype: str
    shape: str = SCALAR
    required: bool = True
    group: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class TaskSchema:
    task: str
    features: tuple[Feature, ...]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property
    def name_set(self) -> frozenset[str]:
        return frozenset(self.names)

    @cached_property
    def wire_order(self) -> tuple[tuple[Feature, bytes], ...]:
        """Features in key order (the order map entries are written, which makes the
        bytes deterministic), each with its encoded key field; computed once."""
        return tuple((f, _field(1, f.key.encode("ascii")))
                     for f in sorted(self.features, key=lambda f: f.key.encode("ascii")))


_IMAGE = (
    Feature("image/encoded", "encoded", BYTES, kind=IMAGE),
    Feature("image/format", "format", BYTES),
    Feature("image/height", "height", INT64),
    Feature("image/width", "width", INT64),
    Feature("image/filename", "filename", BYTES),
    # Written only by a --max-side conversion (in every record, resized or not): the
    # upright size before the resize, the pixels `area` is measured in.
    Feature("image/original_height", "original_height", INT64, required=False),
    Feature("image/original_width", "original_width", INT64, required=False),
)

DETECTION = TaskSchema(
    "detection",
    _IMAGE
    + (
        Feature("image/source_id", "source_id", BYTES),
        Feature("image/key/sha256", "sha256", BYTES),
        Feature("image/object/bbox/xmin", "xmin", FLOAT, LIST, group="object"),
        Feature("image/object/bbox/ymin", "ymin", FLOAT, LIST, group="object"),
        Feature("image/object/bbox/xmax", "xmax", FLOAT, LIST, group="object"),
        Feature("image/object/bbox/ymax", "ymax", FLOAT, LIST, group="object"),
        Feature("image/object/class/text", "class_text", BYTES, LIST, group="object"),
        Feature("image/object/class/label", "class_label", INT64, LIST, group="object",
                kind=CLASS_ID),
        Feature("image/object/is_crowd", "is_crowd", INT64, LIST, group="object"),
        Feature("image/object/area", "area", FLOAT, LIST, group="object"),
        Feature("image/object/mask", "mask", BYTES, LIST, required=False, group="object",
                kind=MASK),
        Feature("image/object/keypoint/x", "keypoint_x", FLOAT, LIST, False, "keypoint"),
        Feature("image/object/keypoint/y", "keypoint_y", FLOAT, LIST, False, "keypoint"),
        Feature(
            "image/object/keypoint/visibility", "keypoint_visibility", INT64, LIST, False,
            "keypoint",
        ),
        Feature("image/caption", "caption", BYTES, LIST, required=False),
        # Pascal VOC's per-object flags, as the OD API's VOC converter writes them
        Feature("image/object/difficult", "difficult", INT64, LIST, False, "object"),
        Feature("image/object/truncated", "truncated", INT64, LIST, False, "object"),
        Feature("image/object/view", "view", BYTES, LIST, False, "object"),
        # ---- issue 29: what LabelMe, CVAT for images, KITTI and Open Images keep beyond
        # boxes; optional, written by the format that has them (DetectionSplit.extras ->
        # ObjectAnnotation.extras, written with DetectionExample.with_extras). Keys the OD API
        # writes are spelled as it spells them (create_kitti_tf_record.py,
        # oid_tfrecord_creation.py); VOC's int `image/object/truncated` is shared with Open
        # Images' IsTruncated, so KITTI's float truncation has its own key.
        # occluded: CVAT and Open Images 0/1, KITTI 0 (visible) .. 3 (unknown)
        Feature("image/object/occluded", "occluded", INT64, LIST, False, "object"),
        # KITTI: truncation 0..1, observation angle, 3D box (camera coordinates, metres)
        Feature("image/object/kitti/truncated", "kitti_truncated", FLOAT, LIST, False, "object"),
        Feature("image/object/alpha", "alpha", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/height", "box3d_height", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/width", "box3d_width", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/length", "box3d_length", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/x", "box3d_x", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/y", "box3d_y", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/z", "box3d_z", FLOAT, LIST, False, "object"),
        Feature("image/object/3d_bbox/rot_y", "box3d_rot_y", FLOAT, LIST, False, "object"),
        # Open Images: the class MID (/m/01g317), IsGroupOf (also is_crowd), IsDepiction,
        # IsInside (IsTruncated is `truncated` above)
        Feature("image/object/class/mid", "class_mid", BYTES, LIST, False, "object"),
        Feature("image/object/group_of", "group_of", INT64, LIST, False, "object"),
        Feature("image/object/depiction", "depiction", INT64, LIST, False, "object"),
        Feature("image/object/inside", "inside", INT64, LIST, False, "object"),
        # CVAT and LabelMe: z_order, group (0: none), rotation in degrees (CVAT's clockwise
        # angle of a rotated box; the bbox is the axis-aligned box around it), the shape's
        # type, and its attributes as one JSON object (sorted keys) per object
        Feature("image/object/z_order", "z_order", INT64, LIST, False, "object"),
        Feature("image/object/group_id", "group_id", INT64, LIST, False, "object"),
        Feature("image/object/rotation", "rotation", FLOAT, LIST, False, "object"),
        Feature("image/object/shape", "shape", BYTES, LIST, False, "object"),
        Feature("image/object/attributes", "attributes", BYTES, LIST, False, "object"),
        # image-level labels: LabelMe's flags that are set, Open Images' verified labels
        Feature("image/class/text", "image_class_text", BYTES, LIST, required=False),
    ),
)

CLASSIFICATION = TaskSchema(
    "classification",
    _IMAGE
    + (
        Feature("image/key/sha256", "sha256", BYTES),
        Feature("image/class/label", "label", INT64, kind=CLASS_ID),
        Feature("image/class/text", "label_text", BYTES),
    ),
)

# The mask value that means "no label" (the void / ignore label of VOC, Cityscapes
# and the Model Garden's segmentation parser): never a class id, padding takes it.
VOID_ID = 255

# Semantic segmentation: the keys DeepLab's build_data.py writes and the Model Garden's
# segmentation_input.Decoder parses. The mask is a one-channel PNG of class ids the
# size of the stored image (8-bit: ids 0..254, the void value 255 where the label map
# says so). The optional panoptic masks are the Model Garden's panoptic keys.
SEGMENTATION = TaskSchema(
    "segmentation",
    _IMAGE
    + (
        Feature("image/source_id", "source_id", BYTES),
        Feature("image/key/sha256", "sha256", BYTES),
        Feature("image/segmentation/class/encoded", "class_mask", BYTES, kind=MASK),
        Feature("image/segmentation/class/format", "class_mask_format", BYTES),
        Feature("image/panoptic/category_mask", "category_mask", BYTES, required=False,
                kind=MASK),
        Feature("image/panoptic/instance_mask", "instance_mask", BYTES, required=False,
                kind=MASK),
    ),
)

SCHEMAS = {s.task: s for s in (DETECTION, SEGMENTATION, CLASSIFICATION)}


def schema_for(task: str) -> TaskSchema:
    try:
        return SCHEMAS[task]
    except KeyError:
        raise SchemaError("task", f"one of {sorted(SCHEMAS)}", task) from None


def infer_task(keys: Iterable[str]) -> str | None:
    """The task whose required keys are all in `keys` (the most specific first), or None."""
    keys = set(keys)
    for schema in (DETECTION, SEGMENTATION, CLASSIFICATION):
        if all(f.key in keys for f in schema.features if f.required):
            return schema.task
    return None


# ---------------------------------------------------------------- wire format

def _varint_slow(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths, labels and tags are almost always small: their encodings are looked up
# (the encoder's hot path; about 40% of the time of encoding a detection record).
_SMALL_VARINTS = tuple(_varint_slow(i) for i in range(1 << 14))


def _varint(value: int) -> bytes:
    if 0 <= value < 16384:
        return _SMALL_VARINTS[value]
    return _varint_slow(value)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _as_bytes(feature: Feature, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise SchemaError(feature.key, "bytes or str", type(value).__name__)


# Tags of the wire format: field 1/2/3, wire type 2 (length-delimited).
_TAG1, _TAG2, _TAG3 = b"\n", b"\x12", b"\x1a"


def _bytes_feature(feature: Feature, values: list, pieces: list) -> int:
    """Append a `Feature` holding a BytesList (field 1) to `pieces` without copying
    the values (an image is copied once, by the final join); its length."""
    body = []
    size = 0
    for v in values:
        if type(v) is not bytes:
            v = _as_bytes(feature, v)
        n = len(v)
        head = _varint(n)
        body += (_TAG1, head, v)
        size += 1 + len(head) + n
    head = _varint(size)
    pieces += (_TAG1, head)
    pieces += body
    return 1 + len(head) + size


def _number_feature(feature: Feature, values: list) -> bytes:
    """A `Feature` holding a FloatList (field 2) or an Int64List (field 3), packed."""
    if feature.dtype == FLOAT:
        try:
            packed = struct.pack(f"<{len(values)}f", *values)
        except struct.error:
            raise SchemaError(feature.key, "floats", values) from None
        tag = _TAG2
    else:
        for v in values:
            if type(v) is not int and (isinstance(v, (bool, float))
                                       or not hasattr(v, "__index__")):
                raise SchemaError(feature.key, "integers", values)
        packed = b"".join([_varint(int(v)) for v in values])
        tag = _TAG3
    inner = _TAG1 + _varint(len(packed)) + packed if values else b""
    return tag + _varint(len(inner)) + inner


def _items(feature: Feature, value: Any, group_len: dict[str, tuple[str, int]]) -> list:
    if feature.shape == SCALAR:
        return [value]
    if isinstance(value, (str, bytes)):
        raise SchemaError(feature.key, "a list", value)
    items = list(value)
    if feature.group:
        seen = group_len.setdefault(feature.group, (feature.key, len(items)))
        if seen[1] != len(items):
            raise SchemaError(feature.key, f"{seen[1]} values (as {seen[0]})", len(items))
    return items


def encode(schema: TaskSchema, values: Mapping[str, Any]) -> bytes:
    """Serialize `values` (keyed by feature name) as a `tf.train.Example`.

    Scalars are single values; lists any sequence. Optional features may be absent
    or None; required ones must be present. Lists of one group must agree in length.

    The message is assembled as a list of pieces with every nested length computed
    up front, then joined once: the image bytes are copied a single time.
    """
    unknown = values.keys() - schema.name_set
    if unknown:
        raise SchemaError(schema.task, f"names from {schema.names}", sorted(unknown))
    group_len: dict[str, tuple[str, int]] = {}
    pieces: list[bytes] = []
    size = 0
    for feature, key_field in schema.wire_order:
        value = values.get(feature.name)
        if value is None:
            if feature.required:
                raise SchemaError(feature.key, "a value", None)
            continue
        items = _items(feature, value, group_len)
        entry_at = len(pieces)
        pieces += (_TAG1, b"", key_field, _TAG2, b"")  # the two lengths come below
        if feature.dtype == BYTES:
            feature_size = _bytes_feature(feature, items, pieces)
        else:
            encoded = _number_feature(feature, items)
            pieces.append(encoded)
            feature_size = len(encoded)
        feature_head = _varint(feature_size)
        entry_size = len(key_field) + 1 + len(feature_head) + feature_size
        entry_head = _varint(entry_size)
        pieces[entry_at + 1], pieces[entry_at + 4] = entry_head, feature_head
        size += 1 + len(entry_head) + entry_size
    return b"".join([_TAG1, _varint(size), *pieces])



# ---------------------------------------------------------------- records -> values

def detection_values(ex: DetectionExample) -> dict[str, Any]:
    """The named values of a detection record (what `encode(DETECTION, ...)` takes)."""
    objs = ex.objects
    values: dict[str, Any] = {
        **_image_values(ex.image, ex.filename),
        "source_id": ex.source_id,
        "xmin": [o.xmin for o in objs],
        "ymin": [o.ymin for o in objs],
        "xmax": [o.xmax for o in objs],
        "ymax": [o.ymax for o in objs],
        "class_text": [o.text for o in objs],
        "class_label": [o.label for o in objs],
        "is_crowd": [int(o.is_crowd) for o in objs],
        "area": [o.area for o in objs],
    }
    for o in objs:
        if o.label < 1:
            raise SchemaError(DETECTION.feature("class_label").key, "a label-map id >= 1", o.label)
    if ex.with_masks:
        missing = [o.annotation_id for o in objs if o.mask_png is None]
        if missing:
            raise SchemaError(DETECTION.feature("mask").key, "a mask for every object", missing)
        values["mask"] = [o.mask_png for o in objs]
    if ex.num_keypoints:
        k = ex.num_keypoints
        xs, ys, vs = [], [], []
        for o in objs:
            kps = o.keypoints or ()
            if kps and len(kps) != k:
                raise SchemaError(
                    DETECTION.feature("keypoint_x").key, f"{k} keypoints per object", len(kps)
                )
            for kp in kps or (None,) * k:
                xs.append(kp.x if kp else 0.0)
                ys.append(kp.y if kp else 0.0)
                vs.append(kp.visibility if kp else 0)
        values.update(keypoint_x=xs, keypoint_y=ys, keypoint_visibility=vs)
    if ex.captions is not None:
        values["caption"] = list(ex.captions)
    if ex.with_voc_flags:
        values.update(difficult=[int(o.difficult) for o in objs],
                      truncated=[int(o.truncated) for o in objs],
                      view=[o.view for o in objs])
    if ex.with_extras or ex.image_extras:  # issue 29's block: every object has each name
        per_object = [dict(o.extras) for o in objs]
        for name in ex.with_extras:
            if any(name not in d for d in per_object):
                raise SchemaError(DETECTION.feature(name).key, "a value for every object",
                                  "an object without one")
            values[name] = [d[name] for d in per_object]
        values.update((name, list(items)) for name, items in ex.image_extras)
    if ex.with_original_size:
        values.update(_original_size(ex.image))
    return values


def _image_values(image, filename: str) -> dict[str, Any]:
    """The values every task's record holds about its image."""
    return {"encoded": image.data, "format": image.format, "height": image.height,
            "width": image.width, "filename": filename, "sha256": image.sha256}


def _original_size(image) -> dict[str, int]:
    return {"original_height": image.source_height, "original_width": image.source_width}


def classification_values(ex: ClassificationExample) -> dict[str, Any]:
    """The named values of a classification record."""
    values = {
        **_image_values(ex.image, ex.filename),
        "label": ex.label,
        "label_text": ex.text,
    }
    if ex.with_original_size:
        values.update(_original_size(ex.image))
    return values


def encode_detection(ex: DetectionExample) -> bytes:
    return encode(DETECTION, detection_values(ex))


def encode_classification(ex: ClassificationExample) -> bytes:
    return encode(CLASSIFICATION, classification_values(ex))


def segmentation_values(ex: SegmentationExample) -> dict[str, Any]:
    """The named values of a semantic-segmentation record."""
    values: dict[str, Any] = {
        **_image_values(ex.image, ex.filename),
        "source_id": ex.source_id,
        "class_mask": ex.mask_png,
        "class_mask_format": "png",
    }
    if ex.category_mask_png is not None:
        values["category_mask"] = ex.category_mask_png
    if ex.instance_mask_png is not None:
        values["instance_mask"] = ex.instance_mask_png
    if ex.with_original_size:
        values.update(_original_size(ex.image))
    return values


def encode_segmentation(ex: SegmentationExample) -> bytes:
    return encode(SEGMENTATION, segmentation_values(ex))


# ---------------------------------------------------------------- parsing (TensorFlow)

def parse_spec(schema: TaskSchema) -> dict:
    """The `tf.io.parse_example` spec derived from the table: scalars are
    FixedLenFeature (optional ones with a default), lists are VarLenFeature."""
    import tensorflow as tf

    dtypes = {BYTES: tf.string, INT64: tf.int64, FLOAT: tf.float32}
    defaults = {BYTES: b"", INT64: 0, FLOAT: 0.0}
    spec = {}
    for f in schema.features:
        if f.shape == SCALAR:
            default = None if f.required else defaults[f.dtype]
            spec[f.key] = tf.io.FixedLenFeature([], dtypes[f.dtype], default_value=default)
        else:
            spec[f.key] = tf.io.VarLenFeature(dtypes[f.dtype])
    return spec


def keys_of(schema: TaskSchema, names: Iterable[str] | None = None) -> dict[str, str]:
    """Feature name -> key, for tools that must read raw records (e.g. verify)."""
    wanted = set(names) if names is not None else None
    return {f.name: f.key for f in schema.features if wanted is None or f.name in wanted}


# ---------------------------------------------------------------- TFDS description

@dataclass(frozen=True)
class TfdsFeature:
    """How TensorFlow Datasets reads one key (rendered by `cocoprep.tfdsmeta`).

    Attributes:
        key: the tf.train.Example key (also the key of TFDS's elements).
        connector: `image` (3 channels), `mask` (PNG, 1 channel), `text`,
            `class_label` or `tensor`.
        dtype: `int64` or `float32` for `tensor` and `class_label`, else None.
        sequence: a list (any length, absent = empty) rather than one value.
    """

    key: str
    connector: str
    dtype: str | None
    sequence: bool


def tfds_features(task_schema: TaskSchema, *, written: Iterable[str],
                  named_labels: bool) -> tuple[TfdsFeature, ...]:
    """The TFDS description of a task's records, in key order.

    Required features are always described; optional ones only when their name is
    in `written` (an optional single value must be in every record TFDS reads; a
    list may be absent from some, which reads as an empty list). Class ids are a
    `class_label` when `named_labels`, else plain int64.
    """
    wanted = set(written)
    out = []
    for f in sorted(task_schema.features, key=lambda f: f.key):
        if not f.required and f.name not in wanted:
            continue
        dtype = None
        if f.kind in (IMAGE, MASK):
            connector = f.kind
        elif f.kind == CLASS_ID and named_labels:
            connector, dtype = "class_label", "int64"
        elif f.dtype == BYTES:
            connector = "text"
        else:
            connector, dtype = "tensor", "int64" if f.dtype == INT64 else "float32"
        out.append(TfdsFeature(f.key, connector, dtype, f.shape == LIST))
    return tuple(out)
