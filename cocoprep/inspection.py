"""`inspect`: what the records of an output hold, split by split.

Records are read in batches and parsed with the schema's spec (only the features
counted here); images are not decoded. Keys are never spelled here: values are
looked up by feature name through `schema.keys_of`. (Named `inspection`, not
`inspect`, so it never shadows the standard library's module.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocoprep import schema
from cocoprep.errors import InputError, UsageError
from cocoprep.shards import Shards, resolve, task_of
from cocoprep.splitnames import default_split
from cocoprep.tfimport import error_text

_PARSE_BATCH = 256
_NAMES = {
    "detection": ("height", "width", "class_text", "is_crowd", "difficult", "mask",
                  "keypoint_visibility", "caption"),
    "classification": ("height", "width", "label_text"),
    "segmentation": ("height", "width", "class_mask"),
}


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _parsed_batches(files: tuple[str, ...], spec: dict):
    """Parsed batches of every file in turn; a damaged file is an error naming it."""
    import tensorflow as tf

    for f in files:
        ds = tf.data.TFRecordDataset(f).batch(_PARSE_BATCH).map(
            lambda s: tf.io.parse_example(s, spec))
        try:
            yield from ds
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise InputError(f, "readable cocoprep records", f"{error_text(e)} (run "
                             "`cocoprep verify` for the record index)") from None


def _rows(sparse, n: int):
    """Values per record of a batched sparse tensor."""
    import numpy as np

    ids = sparse.indices.numpy()[:, 0]
    return np.bincount(ids, minlength=n) if ids.size else np.zeros(n, np.int64)


def _span(pair: tuple[int | None, int | None], values) -> tuple[int, int]:
    lo, hi = int(values.min()), int(values.max())
    return (lo if pair[0] is None else min(pair[0], lo),
            hi if pair[1] is None else max(pair[1], hi))


@dataclass
class Tally:
    """Counts over the records of one split, batch by batch (`report` adds up one
    per shard with `merge`)."""

    task: str
    keys: dict[str, str]  # feature name -> key
    examples: int = 0
    objects: int = 0
    max_objects: int = 0
    without_objects: int = 0
    crowd: int = 0
    difficult: int = 0  # Pascal VOC's flag (0 where the records carry none)
    masks: int = 0
    keypoints: int = 0
    captions: int = 0
    captioned: int = 0
    width: tuple[int | None, int | None] = (None, None)
    height: tuple[int | None, int | None] = (None, None)
    classes: dict[str, int] = field(default_factory=dict)
    pixels: Any = None  # segmentation: pixels per mask value (256 counts)

    def count_names(self, names) -> None:
        for t in names:
            name = _text(t)
            self.classes[name] = self.classes.get(name, 0) + 1

    def add(self, batch: dict) -> None:
        height = batch[self.keys["height"]].numpy()
        self.examples += len(height)
        self.height = _span(self.height, height)
        self.width = _span(self.width, batch[self.keys["width"]].numpy())
        if self.task == "classification":
            self.count_names(batch[self.keys["label_text"]].numpy().tolist())
        elif self.task == "detection":
            self._add_objects(batch, len(height))
        elif self.task == "segmentation":
            self._add_masks(batch[self.keys["class_mask"]].numpy().tolist())

    def _add_masks(self, masks: list) -> None:
        import numpy as np

        from cocoprep.errors import ItemSkipped
        from cocoprep.segmasks import mask_ids

        if self.pixels is None:
            self.pixels = np.zeros(256, np.int64)
        for png in masks:
            try:
                self.pixels += np.bincount(mask_ids(png).ravel(), minlength=256)
            except ItemSkipped as e:
                raise InputError(self.task, "masks that decode", f"{e.detail} (run "
                                 "`cocoprep verify` for the record)") from None

    def merge(self, other: "Tally") -> None:
        """Add the counts of `other` (another shard of the same split)."""
        import numpy as np

        for name in ("examples", "objects", "without_objects", "crowd", "difficult", "masks",
                     "keypoints", "captions", "captioned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_objects = max(self.max_objects, other.max_objects)
        for side in ("width", "height"):
            lo, hi = getattr(other, side)
            if lo is not None:
                setattr(self, side, _span(getattr(self, side), np.array([lo, hi])))
        for name, count in other.classes.items():
            self.classes[name] = self.classes.get(name, 0) + count
        if other.pixels is not None:
            self.pixels = other.pixels.copy() if self.pixels is None else self.pixels + other.pixels

    def _add_objects(self, batch: dict, n: int) -> None:
        import numpy as np

        texts = batch[self.keys["class_text"]]
        per_image = _rows(texts, n)
        self.objects += int(per_image.sum())
        self.max_objects = max(self.max_objects, int(per_image.max(initial=0)))
        self.without_objects += int((per_image == 0).sum())
        self.count_names(texts.values.numpy().tolist())
        self.crowd += int(batch[self.keys["is_crowd"]].values.numpy().sum())
        self.difficult += int(batch[self.keys["difficult"]].values.numpy().sum())
        self.masks += int(_rows(batch[self.keys["mask"]], n).sum())
        vis = batch[self.keys["keypoint_visibility"]]
        vis_rows = np.split(vis.values.numpy(), np.cumsum(_rows(vis, n))[:-1])
        for objects, v in zip(per_image.tolist(), vis_rows):
            if objects and v.size and v.size % objects == 0:
                # K keypoints per object; an object counts when any is labelled (v > 0)
                self.keypoints += int((v.reshape(objects, -1) > 0).any(axis=1).sum())
        captions = _rows(batch[self.keys["caption"]], n)
        self.captions += int(captions.sum())
        self.captioned += int((captions > 0).sum())


def new_tally(task: str) -> tuple[Tally, dict]:
    """An empty `Tally` of `task` and the parse spec of the features it counts."""
    task_schema = schema.schema_for(task)
    keys = schema.keys_of(task_schema, _NAMES[task])
    full = schema.parse_spec(task_schema)
    return Tally(task, keys), {key: full[key] for key in keys.values()}


def _tally(files: tuple[str, ...], task: str) -> Tally:
    """Counts over every record of `files` (read in batches; images not decoded)."""
    tally, spec = new_tally(task)
    for batch in _parsed_batches(files, spec):
        tally.add(batch)
    return tally


def _ranked_classes(tally: Tally, listed: dict[str, int]) -> dict[str, int]:
    """Class counts, largest first; classes the manifest lists count even at 0,
    and ties keep the manifest's (label) order."""
    counts = dict(tally.classes)
    for name in listed:
        counts.setdefault(name, 0)
    order = {name: i for i, name in enumerate(listed)}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)),
                                                       kv[0])))


def _detection_entry(t: Tally) -> dict[str, Any]:
    return {
        "objects": t.objects,
        "objects_per_image": {"mean": round(t.objects / t.examples, 3) if t.examples else 0.0,
                              "max": t.max_objects},
        "images_without_objects": t.without_objects,
        "crowd": t.crowd,
        "difficult": t.difficult,
        "objects_with_masks": t.masks,
        "objects_with_keypoints": t.keypoints,
        "images_with_captions": t.captioned,
        "captions": t.captions,
    }


def _id_names(shards: Shards) -> dict[int, str]:
    """Stored id -> class name, from the output's label file (none for a glob)."""
    from cocoprep import tfdsmeta
    from cocoprep.errors import LabelMapError

    manifest = shards.manifest
    name = tfdsmeta.labels_file(manifest) if manifest is not None else None
    if name is None or not (shards.directory / name).is_file():
        return {}
    try:
        label_map = tfdsmeta.parse_label_map(manifest, name,
                                             (shards.directory / name).read_text("utf-8"))
    except (LabelMapError, OSError, UnicodeDecodeError):
        return {}
    return {item.id: item.name for item in label_map}


def _segmentation_entry(t: Tally, names: dict[int, str]) -> dict[str, Any]:
    """Pixels per class (by name; ids the label map lacks by number) and each
    class's share of all pixels of the split, void apart."""
    from cocoprep.schema import VOID_ID

    pixels = t.pixels if t.pixels is not None else [0] * 256
    total = int(sum(pixels))
    counts = {names.get(v, str(v)): int(pixels[v]) for v in range(256)
              if v != VOID_ID and (pixels[v] or v in names)}
    t.classes = counts
    share = {k: round(v / total, 4) if total else 0.0 for k, v in counts.items()}
    return {"pixels": total, "void_pixels": int(pixels[VOID_ID]),
            "void_share": round(int(pixels[VOID_ID]) / total, 4) if total else 0.0,
            "class_share": dict(sorted(share.items(), key=lambda kv: -kv[1]))}


def split_entry(shards: Shards, split: str, task: str, tally: Tally) -> dict[str, Any]:
    """`inspect`'s statistics of one split, from the tally of its records."""
    files = shards.splits[split]
    info = shards.manifest.splits[split] if shards.manifest is not None else None
    sizes = [os.path.getsize(f) for f in files]
    entry: dict[str, Any] = {"examples": tally.examples}
    if task == "detection":
        entry.update(_detection_entry(tally))
    if task == "segmentation":
        entry.update(_segmentation_entry(tally, _id_names(shards)))
    entry.update({
        "image_width": {"min": tally.width[0], "max": tally.width[1]},
        "image_height": {"min": tally.height[0], "max": tally.height[1]},
        "shards": {"count": len(files), "total_bytes": sum(sizes),
                   "min_bytes": min(sizes, default=0), "max_bytes": max(sizes, default=0)},
        "classes": _ranked_classes(tally, info.class_counts if info else {}),
        "skipped": dict(info.skipped) if info else None,
    })
    return entry


def inspect(path: str | Path) -> dict:
    """Per-split statistics of an output directory (or a shard glob), as a dict
    ready for JSON: examples, objects, per-class counts (sorted, largest first),
    crowd, masks/keypoints/captions, image size range, shards, skipped by reason;
    and `tfds`, the two lines that open the output with TensorFlow Datasets."""
    shards = resolve(path)
    task = task_of(shards)
    schema.schema_for(task)
    missing = shards.missing()
    if missing:
        raise InputError(missing[0], "a shard listed in manifest.json",
                         "no such file (run `cocoprep verify`)")
    return {"path": str(path), "task": task,
            "splits": {split: split_entry(shards, split, task, _tally(files, task))
                       for split, files in shards.splits.items()},
            "tfds": tfds_lines(shards)}


def tfds_lines(shards: Shards) -> list[str] | None:
    """The two lines that open an output with TensorFlow Datasets (None for a glob
    or an output written without the TFDS metadata)."""
    if shards.manifest is None or not shards.manifest.tfds_files or not shards.splits:
        return None
    try:
        split = default_split(list(shards.splits), counts=shards.counts)
    except UsageError:  # no train-like split among several
        split = next(iter(shards.splits))
    return [f"builder = tfds.builder_from_directory({str(shards.directory)!r})",
            f"ds = builder.as_dataset(split={split!r})"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _rows_of(task: str, s: dict) -> list[tuple[str, str]]:
    """(label, text) rows of one split's block."""
    n = s["examples"]
    rows = [("examples", str(n))]
    if task == "detection":
        per = s["objects_per_image"]
        rows += [
            ("objects", f"{s['objects']}  (per image: mean {per['mean']:.2f}, max "
                        f"{per['max']}; images without objects: "
                        f"{s['images_without_objects']})"),
            ("crowd", str(s["crowd"])),
            ("difficult", str(s["difficult"])),
            ("masks", f"{s['objects_with_masks']} of {s['objects']} objects"),
            ("keypoints", f"{s['objects_with_keypoints']} of {s['objects']} objects"),
            ("captions", f"{s['captions']} in {s['images_with_captions']} of {n} images"),
        ]
    if task == "segmentation":
        rows.append(("pixels", f"{s['pixels']}  (void {s['void_pixels']}, "
                               f"{100 * s['void_share']:.1f}%)"))
    w, h, sh = s["image_width"], s["image_height"], s["shards"]
    rows.append(("image size", f"width {w['min']}..{w['max']}, height {h['min']}..{h['max']}"
                 if n else "-"))
    rows.append(("shards", f"{sh['count']}, {human_bytes(sh['total_bytes'])} "
                 f"(each {human_bytes(sh['min_bytes'])}..{human_bytes(sh['max_bytes'])})"))
    skipped = s["skipped"]
    rows.append(("skipped", "unknown (no manifest)" if skipped is None
                 else ", ".join(f"{k} {v}" for k, v in skipped.items()) or "none"))
    return rows


def _class_lines(task: str, classes: dict[str, int], bar_width: int,
                 share: dict[str, float] | None = None) -> list[str]:
    unit = {"detection": "objects", "segmentation": "pixels and share of all pixels"}.get(
        task, "images")
    lines = [f"  classes     {len(classes)} ({unit} per class)"]
    if classes:
        top = max(classes.values()) or 1
        name_w = max(len(k) for k in classes)
        num_w = max(len(str(v)) for v in classes.values())
        for name, count in classes.items():
            if share is not None and not count:
                continue  # segmentation: named on one line below
            bar = "█" * round(bar_width * count / top)
            pct = f"  {100 * share[name]:5.1f}%" if share is not None else ""
            lines.append(f"    {name:<{name_w}}  {count:>{num_w}}{pct}  {bar}")
        empty = [name for name, count in classes.items() if not count]
        if share is not None and empty:
            lines.append(f"    no pixels: {', '.join(empty)}")
    return lines


def format_inspect(report: dict, *, bar_width: int = 30) -> str:
    """The `inspect` report as a text table, one block per split."""
    lines = [f"{report['path']}: {report['task']}"]
    for split, s in report["splits"].items():
        lines += ["", f"split {split}"]
        lines += [f"  {k:<11} {v}" for k, v in _rows_of(report["task"], s)]
        lines += _class_lines(report["task"], s["classes"], bar_width, s.get("class_share"))
    if report.get("tfds"):
        lines += ["", "TensorFlow Datasets (import tensorflow_datasets as tfds):"]
        lines += [f"  {line}" for line in report["tfds"]]
    return "\n".join(lines)
