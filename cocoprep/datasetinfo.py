"""`describe(...)`: what a split of cocoprep records holds (shards, task, label map,
optional features, and the rule by which `load` decodes its JPEGs), found before any
`tf.data` pipeline is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cocoprep import schema
from cocoprep.errors import InputError, ManifestError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import MANIFEST_NAME, Manifest
from cocoprep.shards import resolve
from cocoprep.tfimport import error_text

__all__ = ["DatasetInfo", "describe", "DECODE_SCALES", "DECODE_RULES"]

# load(decode_scale=...): "auto" follows DECODE_RULES; "full" always decodes at full scale.
DECODE_SCALES = ("auto", "full")
DECODE_RULES = {
    "no_masks": "auto: a JPEG that the resize shrinks 2x or more is decoded at reduced DCT "
                "scale (1/2, 1/4 or 1/8, never below the size); decode_scale='full' "
                "decodes at full scale",
    "masks": "auto: full scale (the records hold masks, decoded at the stored size, so the "
             "image is too); pixels can differ from the same JPEG without masks",
    "segmentation": "full scale (the mask is stored at the image's size and moves with its "
                    "pixels)",
}
# How `load` treats a segmentation mask (DatasetInfo.mask_rule).
SEGMENTATION_MASK_RULE = (
    f"mask: uint8 [H, W] of stored class ids, {schema.VOID_ID} = void; moves with the pixels "
    f"through flip, crop, scale jitter and letterbox; resized nearest-neighbour only (no id "
    f"is invented); padding is void ({schema.VOID_ID})")

@dataclass(frozen=True)
class DatasetInfo:
    """What `load` found out about a split before building the pipeline.

    Attributes:
        task: ``detection``, ``segmentation`` or ``classification``.
        files: shard paths in stored order.
        num_examples: examples in those shards (None when read from a glob
            without a manifest).
        label_map: the label map (label-map ids for detection, stored labels for
            classification, mask ids for segmentation, background included), or
            None when none was found.
        label_offset: subtracted from stored classification labels.
        has_masks / num_keypoints / has_captions: optional features present.
        split: the split name (None for a glob).
        decode_rule: how `load(decode_scale="auto")` decodes these records' JPEGs
            before a resize (see `DECODE_RULES`); `decode_scale="full"` always
            decodes at full scale.
        void_id: the mask value meaning "no label" (segmentation; else None).
        mask_rule: how `load` resizes, pads and moves the segmentation mask ("" for
            other tasks).
    """

    task: str
    files: tuple[str, ...]
    num_examples: int | None
    label_map: LabelMap | None
    label_offset: int = 0
    has_masks: bool = False
    has_keypoints: bool = False
    num_keypoints: int = 0
    has_captions: bool = False
    split: str | None = None
    manifest: Manifest | None = field(default=None, repr=False)
    decode_rule: str = ""
    void_id: int | None = None
    mask_rule: str = ""

    @property
    def num_classes(self) -> int | None:
        return len(self.label_map) if self.label_map is not None else None

    @property
    def class_names(self) -> list[str] | None:
        return self.label_map.names if self.label_map is not None else None


def _read_label_map(directory: Path, manifest: Manifest | None, task: str) -> LabelMap | None:
    if task == "detection":
        name = manifest.label_map if manifest is not None else "label_map.pbtxt"
        if name and (directory / name).is_file():
            return LabelMap.read_pbtxt(directory / name)
        return None
    name = manifest.labels_txt if manifest is not None else "labels.txt"
    start = manifest.label_offset if manifest is not None else 0
    if name and (directory / name).is_file():
        return LabelMap.read_labels_txt(directory / name, start=start)
    return None


def _peek(files: Sequence[str], scan: int = 1000) -> tuple[set[str] | None, int]:
    """The feature keys of the first record in `files` (None if all are empty) and
    the keypoints per object (0 if none among the first `scan` records with objects)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    keys = None
    kx = schema.DETECTION.feature("keypoint_x").key
    labels = schema.DETECTION.feature("class_label").key
    seen = 0
    for f in files:
        try:
            for raw in tf.data.TFRecordDataset(f).take(scan - seen):
                try:
                    feature = tf.train.Example.FromString(raw.numpy()).features.feature
                except DecodeError:
                    raise InputError(f, "cocoprep records", "a record that is not a "
                                     "tf.train.Example") from None
                if keys is None:
                    keys = set(feature.keys())
                    if kx not in keys:
                        return keys, 0
                n = len(feature[labels].int64_list.value)
                if n:
                    return keys, len(feature[kx].float_list.value) // n
                seen += 1
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
            # TensorFlow's message ("corrupted record at 0") names no file.
            raise InputError(f, "readable TFRecord shards",
                             f"{error_text(e)} (run `cocoprep verify` to list every damaged "
                             "record)") from None
        if seen >= scan:
            break
    return keys, 0


def describe(path: str | os.PathLike, split: str = "train") -> DatasetInfo:
    """Find the shards, task, label map and optional features of `path`/`split`.

    `path` is an output directory of `cocoprep convert`/`split` (read through its
    manifest.json) or a glob of shard files (task inferred from the record keys;
    a manifest or label map beside the shards is used when present).
    """
    shards = resolve(path)
    directory, manifest = shards.directory, shards.manifest
    if manifest is None and (directory / MANIFEST_NAME).is_file():
        try:  # a manifest beside the shards of a glob gives the label map
            manifest = Manifest.read(directory)
        except ManifestError:
            manifest = None
    files = list(shards.split_files(split))
    if not shards.from_glob:
        missing = shards.missing(split)
        if missing:
            raise ManifestError(directory / MANIFEST_NAME,
                                f"split {split!r} lists {len(missing)} shard(s) that do not "
                                f"exist, e.g. {Path(missing[0]).name}")
    split_name = None if shards.from_glob else split
    num_examples = None if shards.from_glob else manifest.splits[split].num_examples

    keys, num_keypoints = _peek(files)
    known_task = manifest is not None and manifest.task in schema.SCHEMAS
    if known_task and (keys is None or not shards.from_glob):
        task = manifest.task
    elif keys is not None:
        task = schema.infer_task(keys)
        if task is None:
            raise InputError(files[0], "cocoprep detection, segmentation or classification "
                             "records",
                             "records with other feature keys")
    else:
        raise InputError(shards.path, "shards with at least one record", "only empty shards")
    task_schema = schema.schema_for(task)
    present = set(keys or ())
    has = {f.name: f.key in present for f in task_schema.features}
    label_map = _read_label_map(directory, manifest, task)
    segmentation = task == "segmentation"
    rule = "segmentation" if segmentation else "masks" if has.get("mask") else "no_masks"
    return DatasetInfo(
        task=task,
        files=tuple(files),
        num_examples=num_examples,
        label_map=label_map,
        label_offset=manifest.label_offset if manifest is not None else 0,
        has_masks=has.get("mask", False),
        has_keypoints=has.get("keypoint_x", False),
        num_keypoints=num_keypoints,
        has_captions=has.get("caption", False),
        split=split_name,
        manifest=manifest,
        decode_rule=DECODE_RULES[rule],
        void_id=schema.VOID_ID if segmentation else None,
        mask_rule=SEGMENTATION_MASK_RULE if segmentation else "",
    )
