"""TensorFlow Datasets metadata: the files that let `tfds.builder_from_directory(OUT)`
open an output with no cocoprep code on the reading side.

TFDS reads third-party `tf.train.Example` shards ("Load external tfrecord with
TFDS") given `dataset_info.json` (splits, per-shard example counts, the file-name
template) and `features.json` (how to decode each key) beside them; a `ClassLabel`
keeps its names in `<key with / as .>.labels.txt`. These are written here as plain
JSON in the form TFDS itself writes (proto JSON, sorted keys, int64 as strings), so
cocoprep never imports TFDS. Pure: manifest + label map + the schema's table in,
bytes out; the same inputs give the same bytes.

Decisions:
* The shards keep their names: the template `{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}`
  is `manifest.shard_name`.
* Keys are TFDS's element keys unchanged (`image/encoded`, `image/object/bbox/xmin`,
  ...). Every list is a `Sequence`, so a record without it (no captions, no
  keypoints, no objects) reads as an empty list.
* Class ids keep their stored values (COCO's 1..90 with gaps, a classification
  `--label-offset`): the class label is a `ClassLabel` whose name list is indexed
  by the stored id, ids no class uses named `unused_<id>`. With more than
  MAX_UNUSED_IDS such ids it is a plain int64 instead (names: `image/.../text`
  and the label map).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Mapping

from cocoprep import schema
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import MANIFEST_NAME, Manifest

DATASET_INFO_NAME = "dataset_info.json"
FEATURES_NAME = "features.json"
NAMES_SUFFIX = ".labels.txt"
# Every file this module may write, as globs (what a new run replaces).
FILE_PATTERNS = (DATASET_INFO_NAME, FEATURES_NAME, "*" + NAMES_SUFFIX)
FILEPATH_TEMPLATE = "{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"  # = manifest.shard_name
FILE_FORMAT = "tfrecord"
DATASET_NAMES = {"detection": "cocoprep_detection", "classification": "cocoprep_classification",
                 "segmentation": "cocoprep_segmentation"}
_KEYS_FROM = {"segmentation": "DeepLab and the Model Garden read them"}
UNUSED_NAME = "unused_{}"
MAX_UNUSED_IDS = 10_000

_FEATURES = "tensorflow_datasets.core.features."
_CLASSES = {
    "dict": _FEATURES + "features_dict.FeaturesDict",
    "image": _FEATURES + "image_feature.Image",
    "mask": _FEATURES + "image_feature.Image",
    "text": _FEATURES + "text_feature.Text",
    "tensor": _FEATURES + "tensor_feature.Tensor",
    "class_label": _FEATURES + "class_label_feature.ClassLabel",
    "sequence": _FEATURES + "sequence_feature.Sequence",
}


# ------------------------------------------------------------------ labels

def labels_file(manifest: Manifest) -> str | None:
    """The file that names the stored class ids: label_map.pbtxt for detection,
    labels.txt (ids from `label_offset`) for classification; else the other."""
    if manifest.task == "detection":
        return manifest.label_map or manifest.labels_txt
    return manifest.labels_txt or manifest.label_map


def parse_label_map(manifest: Manifest, name: str, text: str, *, path=None) -> LabelMap:
    """The label map in `text`, the contents of `name` (raises LabelMapError)."""
    if name.endswith(".pbtxt"):
        return LabelMap.from_pbtxt(text, path=path or name)
    return LabelMap.from_labels_txt(text, start=manifest.label_offset, path=path or name)


def class_names(label_map: LabelMap | None) -> tuple[str, ...] | None:
    """Names indexed by stored id (0..max id), ids no class uses named
    `unused_<id>` (prefixed with `_` until no class has that name); None when
    there is no label map or more than MAX_UNUSED_IDS unused ids."""
    if label_map is None or not len(label_map):
        return None
    top = max(label_map.ids)
    if top + 1 - len(label_map) > MAX_UNUSED_IDS:
        return None
    taken = set(label_map.names)
    names = []
    for i in range(top + 1):
        if i in label_map:
            names.append(label_map.name_of(i))
            continue
        name = UNUSED_NAME.format(i)
        while name in taken:
            name = "_" + name
        names.append(name)
    return tuple(names)


def names_file(key: str) -> str:
    """Where TFDS looks for the names of the ClassLabel at top-level `key`."""
    return key.replace("/", ".") + NAMES_SUFFIX


# ------------------------------------------------------------------ features.json

# Optional lists each source format may write (manifest.sources["format"]); an
# output whose manifest names no format gets every optional list described.
FORMAT_LISTS = {
    "coco": ("keypoint_x", "keypoint_y", "keypoint_visibility", "caption"),
    "voc": ("difficult", "truncated", "view"),
    "yolo": (),
    "kitti": ("kitti_truncated", "occluded", "alpha", "box3d_height", "box3d_width",
              "box3d_length", "box3d_x", "box3d_y", "box3d_z", "box3d_rot_y"),
    "labelme": ("group_id", "shape", "attributes", "image_class_text"),
    "cvat": ("occluded", "z_order", "group_id", "rotation", "shape", "attributes",
             "image_class_text"),
    "openimages": ("class_mid", "occluded", "truncated", "group_of", "depiction", "inside",
                   "image_class_text"),
}


def written_features(manifest: Manifest) -> frozenset[str]:
    """Names of the optional features the run wrote: masks with --masks, the
    original size (in every record) with --max-side, and the lists its source
    format writes (keypoints and captions: COCO; difficult/truncated/view: VOC).
    A list may still be absent from some records: TFDS reads that as empty."""
    task_schema = schema.schema_for(manifest.task)
    lists = [f.name for f in task_schema.features
             if not f.required and f.shape == schema.LIST and f.kind != schema.MASK]
    fmt = manifest.sources.get("format") if manifest.task == "detection" else None
    names = set(lists if fmt not in FORMAT_LISTS else FORMAT_LISTS[fmt])
    if manifest.options.get("masks"):
        names.update(f.name for f in task_schema.features if f.kind == schema.MASK)
    if manifest.options.get("max_side") is not None:
        names.update(("original_height", "original_width"))
    if manifest.options.get("panoptic"):
        names.update(("category_mask", "instance_mask"))
    return frozenset(names)


def _shape(*dims: int) -> dict:
    return {"dimensions": [str(d) for d in dims]} if dims else {}


def _connector(feature: schema.TfdsFeature, num_classes: int) -> dict[str, Any]:
    kind = feature.connector
    if kind in ("image", "mask"):
        content: dict[str, Any] = {"dtype": "uint8", "shape": _shape(-1, -1, 1 if kind == "mask" else 3)}
        if kind == "mask":
            content["encodingFormat"] = "png"
        out = {"image": content}
    elif kind == "text":
        out = {"text": {}}
    elif kind == "class_label":
        out = {"classLabel": {"numClasses": str(num_classes)}}
    else:
        out = {"tensor": {"dtype": feature.dtype, "encoding": "none", "shape": _shape()}}
    out["pythonClassName"] = _CLASSES[kind]
    if feature.sequence:
        out = {"pythonClassName": _CLASSES["sequence"],
               "sequence": {"feature": out, "length": "-1"}}
    return out


def features_json(manifest: Manifest, names: tuple[str, ...] | None) -> dict[str, Any]:
    """The `features.json` object: a FeaturesDict keyed by the records' keys."""
    described = schema.tfds_features(schema.schema_for(manifest.task),
                                     written=written_features(manifest),
                                     named_labels=names is not None)
    n = len(names) if names else 0
    features = {f.key: _connector(f, n) for f in described}
    if manifest.options.get("instance_mask_bits") == 16:  # --panoptic, > 255 instances
        key = schema.keys_of(schema.SEGMENTATION, ("instance_mask",))["instance_mask"]
        features[key]["image"]["dtype"] = "uint16"
    return {"featuresDict": {"features": features}, "pythonClassName": _CLASSES["dict"]}


# ------------------------------------------------------------------ dataset_info.json

def _version() -> str:
    parts = schema.SCHEMA_VERSION.split(".")
    return ".".join((parts + ["0", "0"])[:3])


def dataset_info_json(manifest: Manifest, names: tuple[str, ...] | None) -> dict[str, Any]:
    """The `dataset_info.json` object: splits in manifest order, each with its
    per-shard example counts and bytes, and the shard-name template."""
    source = labels_file(manifest)
    label_note = (f"class label = the stored id, named by {source}" if source else "")
    keys_from = _KEYS_FROM.get(manifest.task, "the TF Object Detection API writes them")
    if names is not None:
        label_note += f"; ids no class uses are named {UNUSED_NAME.format('<id>')}"
    splits = [{
        "filepathTemplate": FILEPATH_TEMPLATE,
        "name": name,
        "numBytes": str(sum(s.size_bytes for s in info.shards)),
        "shardLengths": [str(s.num_examples) for s in info.shards],
    } for name, info in manifest.splits.items()]
    info: dict[str, Any] = {
        "description": (f"{manifest.task} records written by {manifest.created_by or 'cocoprep'}"
                        f" (keys as {keys_from}); {label_note}"),
        "fileFormat": FILE_FORMAT,
        "name": DATASET_NAMES.get(manifest.task, "cocoprep"),
        "splits": splits,
        "version": _version(),
    }
    if manifest.task == "classification":
        keys = schema.keys_of(schema.CLASSIFICATION, ("encoded", "label"))
        info["supervisedKeys"] = {"tuple": {"items": [{"featureKey": keys["encoded"]},
                                                      {"featureKey": keys["label"]}]}}
    if manifest.task == "segmentation":  # as_supervised: (image, mask)
        keys = schema.keys_of(schema.SEGMENTATION, ("encoded", "class_mask"))
        info["supervisedKeys"] = {"tuple": {"items": [{"featureKey": keys["encoded"]},
                                                      {"featureKey": keys["class_mask"]}]}}
    return info


# ------------------------------------------------------------------ the files

def tfds_files(manifest: Manifest, label_map: LabelMap | None) -> dict[str, bytes]:
    """File name -> bytes of the TFDS metadata of an output (its manifest with
    every split written, and the label map that names its ids)."""
    names = class_names(label_map)
    features = features_json(manifest, names)
    files = {
        # The layouts TFDS's own writer gives (proto JSON, indent 2 / json.dumps, 4).
        DATASET_INFO_NAME: json.dumps(dataset_info_json(manifest, names), indent=2,
                                      sort_keys=True, ensure_ascii=False).encode("utf-8"),
        FEATURES_NAME: json.dumps(features, indent=4, sort_keys=True).encode("utf-8"),
    }
    if names is not None:
        for key, value in features["featuresDict"]["features"].items():
            inner = value.get("sequence", {}).get("feature", value)
            if "classLabel" in inner:
                files[names_file(key)] = ("\n".join(names) + "\n").encode("utf-8")
    return dict(sorted(files.items()))


def label_map_from(manifest: Manifest, texts: Mapping[str, str]) -> LabelMap | None:
    """The label map among `texts` (file name -> text) that names the ids."""
    name = labels_file(manifest)
    if name is None or name not in texts:
        return None
    return parse_label_map(manifest, name, texts[name])


def with_tfds_files(manifest: Manifest, texts: Mapping[str, str]
                    ) -> tuple[Manifest, dict[str, bytes]]:
    """The writer's step: the TFDS files of `manifest` (labels from `texts`, the
    label files written beside it) and the manifest listing them with their sha256."""
    files = tfds_files(manifest, label_map_from(manifest, texts))
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    return replace(manifest, tfds_files=digests), files


# ------------------------------------------------------------------ checking

@dataclass(frozen=True)
class Mismatch:
    """A TFDS file (or the manifest's list of them) that is not what it must be."""

    file: str
    what: str


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _difference(expected: Any, found: Any, where: str = "") -> str | None:
    """Where two JSON values first differ (`splits[0].shardLengths[1]: ...`)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found)):
            here = f"{where}.{key}" if where else key
            if key not in found or key not in expected:
                return f"{here} {'missing' if key not in found else 'not expected'}"
            diff = _difference(expected[key], found[key], here)
            if diff:
                return diff
        return None
    if isinstance(expected, list) and isinstance(found, list) and len(expected) == len(found):
        return next((d for i, (a, b) in enumerate(zip(expected, found))
                     if (d := _difference(a, b, f"{where}[{i}]"))), None)
    if expected != found:
        return f"{where or 'the file'}: {_short(found)}, expected {_short(expected)}"
    return None


def _describe_difference(name: str, expected: bytes, found: bytes) -> str:
    if name.endswith(".json"):
        try:
            return _difference(json.loads(expected), json.loads(found)) or "layout"
        except ValueError:
            return "not valid JSON"
    want = expected.decode("utf-8").split("\n")
    got = found.decode("utf-8", "replace").split("\n")
    return next((f"line {i + 1}: {_short(b)}, expected {_short(a)}"
                 for i, (a, b) in enumerate(zip(want, got)) if a != b),
                f"{len(got) - 1} lines, expected {len(want) - 1}")


def mismatches(manifest: Manifest, label_map: LabelMap | None,
               found: Mapping[str, bytes]) -> list[Mismatch]:
    """What differs between the TFDS files `found` (name -> bytes, those there)
    and the ones `manifest` and `label_map` give: a file the manifest should list
    and does not (or lists and should not), and any file whose bytes differ."""
    expected = tfds_files(manifest, label_map)
    out = []
    for name in sorted(set(expected) ^ set(manifest.tfds_files)):
        what = "not listed" if name in expected else "listed but not a TFDS file of this output"
        out.append(Mismatch(MANIFEST_NAME, f"tfds_files: {name} {what}"))
    for name, data in expected.items():
        if name in found and found[name] != data:
            out.append(Mismatch(name, "does not match the shards and manifest.json ("
                                f"{_describe_difference(name, data, found[name])})"))
    return out
