"""`verify` (are the records intact and right?) and `inspect` (what do they hold?).

Reading strategy for verify: every shard is first read with `tf.data.TFRecordDataset`,
which checks both CRC32C checksums of every record in C++ at disk speed and is
exactly what training will use. TensorFlow's error ("corrupted record at 12") names
neither the file nor the record, and it stops the shard; so on the first
`DataLossError` the shard is re-read from that record on by a small Python reader
of the TFRecord framing (uint64 length, masked CRC32C of the length, data, masked
CRC32C of the data). It names the exact record and whether the length, the data or
the end of the file is at fault, and continues past a record whose data is bad
(its length is still trustworthy). Only damaged shards pay for the slow
pure-Python CRC.

Keys are never spelled here: records are parsed with `schema.parse_spec` and
values are looked up by feature name through `schema.keys_of`.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cocoprep import schema
from cocoprep.errors import InputError, LabelMapError, ManifestError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import MANIFEST_NAME, Manifest
from cocoprep.parallel import map_tasks, progress_bar, report_progress
from cocoprep.tfimport import import_tensorflow

SHARD_PATTERN = "*.tfrecord-?????-of-?????"
_BATCH = 64
_BYTES_PER_WORKER = 256 * 2**20


# ------------------------------------------------------------------ results

@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file, record index, image id) and what."""

    file: str
    what: str
    index: int | None = None
    image_id: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.index is not None:
            where += f": record {self.index}"
            if self.image_id:
                where += f" (image {self.image_id})"
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found. `splits` maps split name -> examples read."""

    num_examples: int
    num_shards: int
    splits: dict[str, int]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        splits = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        shards = f"{self.num_shards} shard{'s' if self.num_shards != 1 else ''}"
        if self.ok:
            return f"OK: {self.num_examples} examples in {shards} (splits {splits})"
        return (f"FAILED: {len(self.problems)} problem(s); {self.num_examples} examples read "
                f"in {shards} (splits {splits})")


# ------------------------------------------------------------------ TFRecord framing

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), pure Python: used only on damaged shards."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@dataclass(frozen=True)
class _Framed:
    index: int
    data: bytes | None  # None: this record cannot be used
    problem: str | None = None
    fatal: bool = False  # nothing after this point can be read


def scan_records(path: str | Path, *, check_from: int = 0) -> Iterator[_Framed]:
    """Read a TFRecord file's framing record by record.

    Records before `check_from` are skipped without reading their data (they were
    already checked); from `check_from` on, both checksums are verified. A bad data
    checksum is reported and reading goes on; a bad length checksum or a file that
    ends inside a record is reported and ends the scan.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        index, offset = 0, 0
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                yield _Framed(index, None, f"truncated: the file ends inside the header of "
                              f"this record (offset {offset}, {len(header)} of 12 bytes)", True)
                return
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != length_crc:
                yield _Framed(index, None, f"corrupted length header at offset {offset} "
                              f"(CRC mismatch); the rest of the file ({size - offset} bytes) "
                              "cannot be read", True)
                return
            end = offset + 12 + length + 4
            if end > size:
                yield _Framed(index, None, f"truncated: record of {length} bytes at offset "
                              f"{offset} needs {end - size} more bytes than the file holds",
                              True)
                return
            if index < check_from:
                f.seek(length + 4, os.SEEK_CUR)
            else:
                data = f.read(length)
                (data_crc,) = struct.unpack("<I", f.read(4))
                if masked_crc32c(data) != data_crc:
                    yield _Framed(index, None, f"corrupted record data at offset {offset} "
                                  "(CRC mismatch)")
                else:
                    yield _Framed(index, data)
            index += 1
            offset = end


def _read_shard(path: str) -> Iterator[_Framed]:
    """Every record of a shard: fast path through tf.data (in batches), Python
    framing from the first record of the batch that failed."""
    import tensorflow as tf

    index = 0
    it = iter(tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(_BATCH))
    while True:
        try:
            batch = next(it)
        except StopIteration:
            break
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.UnknownError):
            break
        for record in batch.numpy().tolist():
            yield _Framed(index, record)
            index += 1
    # Also after a clean end: tf.data takes a few stray bytes after the last record
    # (a cut inside a header) for the end of the file. Walking the headers is cheap.
    yield from scan_records(path, check_from=index)


# ------------------------------------------------------------------ parsing

def _split_rows(sparse, batch: int):
    import numpy as np

    values = sparse.values.numpy()
    rows = sparse.indices.numpy()[:, 0] if values.size else np.zeros(0, dtype=np.int64)
    counts = np.bincount(rows, minlength=batch)
    return np.split(values, np.cumsum(counts)[:-1])


def parse_records(task_schema: schema.TaskSchema, records: list[bytes]) -> list[dict | str]:
    """Parse serialized records with the schema's spec. Each entry is a dict by
    feature name (scalars as Python values, lists as numpy arrays) or, for a
    record that does not fit the schema, a message saying why."""
    import tensorflow as tf

    if not records:
        return []
    spec = schema.parse_spec(task_schema)
    try:
        parsed = tf.io.parse_example(tf.constant(records), spec)
    except (tf.errors.InvalidArgumentError, ValueError):
        if len(records) == 1:
            try:
                tf.io.parse_single_example(records[0], spec)
            except (tf.errors.InvalidArgumentError, ValueError) as e:
                msg = str(getattr(e, "message", e)).strip().splitlines()[0]
                return [f"does not parse with the {task_schema.task} schema: {msg}"]
        return [r for rec in records for r in parse_records(task_schema, [rec])]
    out: list[dict] = [{} for _ in records]
    for name, key in schema.keys_of(task_schema).items():
        value = parsed[key]
        if isinstance(value, tf.sparse.SparseTensor):
            for row, part in zip(out, _split_rows(value, len(records))):
                row[name] = part
        else:
            for row, v in zip(out, value.numpy().tolist()):
                row[name] = v
    return out


# ------------------------------------------------------------------ per-record checks

@dataclass(frozen=True)
class _Context:
    """What a worker needs to check one shard (picklable)."""

    path: str
    display: str
    split: str
    task: str | None
    labels: dict[int, str] | None = None  # stored label -> name
    label_source: str = ""


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _image_id(task: str, values: dict) -> str:
    if task == "detection":
        return _text(values.get("source_id", b"")) or _text(values.get("filename", b""))
    return _text(values.get("filename", b""))


def _decode_check(data: bytes, what: str, *, fmt: str | None,
                  size: tuple[int, int]) -> str | None:
    """None if `data` fully decodes to an image of `size` (width, height)."""
    from cocoprep.errors import ItemSkipped
    from cocoprep.images import check_image

    try:
        check = check_image(data)
    except ItemSkipped as e:
        return f"{what}: {e.detail}"
    if fmt is not None and check.format != fmt:
        return f"{what}: format says {fmt!r} but the bytes are {check.format or 'unknown'}"
    if (check.width, check.height) != size:
        return (f"{what}: decoded size {check.width}x{check.height} != stored "
                f"width x height {size[0]}x{size[1]}")
    return None


def check_record(task: str, values: dict, labels: dict[int, str] | None = None,
                 *, label_source: str = "label map") -> list[str]:
    """Everything wrong with one parsed record (empty when it is fine)."""
    problems: list[str] = []
    width, height = int(values["width"]), int(values["height"])
    if width <= 0 or height <= 0:
        problems.append(f"stored size {width}x{height} is not positive")
    fmt = _text(values["format"]).lower()
    if fmt not in ("jpeg", "png"):
        problems.append(f"format {fmt!r} is not jpeg or png")
    err = _decode_check(values["encoded"], "image", fmt=fmt, size=(width, height))
    if err:
        problems.append(err)
    digest = _text(values.get("sha256", b""))
    if digest and hashlib.sha256(values["encoded"]).hexdigest() != digest:
        problems.append("image sha256 differs from the stored sha256")
    if task == "classification":
        label, text = int(values["label"]), _text(values["label_text"])
        if labels is not None:
            if label not in labels:
                problems.append(f"label {label} is not in {label_source}")
            elif labels[label] != text:
                problems.append(f"label {label} is {labels[label]!r} in {label_source} "
                                f"but the record says {text!r}")
        return problems

    boxes = [values[n] for n in ("xmin", "ymin", "xmax", "ymax")]
    n = len(boxes[0])
    group = {name: len(values[name]) for name in
             ("xmin", "ymin", "xmax", "ymax", "class_text", "class_label", "is_crowd", "area")}
    masks = values.get("mask")
    if masks is not None and len(masks):
        group["mask"] = len(masks)
    if len(set(group.values())) > 1:
        problems.append(f"per-object lists differ in length: {group}")
        return problems
    for i in range(n):
        xmin, ymin, xmax, ymax = (float(b[i]) for b in boxes)
        coords = {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}
        bad = [f"{k} {v:g}" for k, v in coords.items() if not (0.0 <= v <= 1.0)]
        if bad:
            problems.append(f"object {i}: box outside [0, 1] ({', '.join(bad)})")
        if xmin > xmax or ymin > ymax:
            problems.append(f"object {i}: box min > max (xmin {xmin:g}, xmax {xmax:g}, "
                            f"ymin {ymin:g}, ymax {ymax:g})")
        label = int(values["class_label"][i])
        text = _text(values["class_text"][i])
        if labels is not None:
            if label not in labels:
                problems.append(f"object {i}: class label {label} is not in {label_source}")
            elif labels[label] != text:
                problems.append(f"object {i}: class label {label} is {labels[label]!r} in "
                                f"{label_source} but the record says {text!r}")
        if int(values["is_crowd"][i]) not in (0, 1):
            problems.append(f"object {i}: is_crowd {int(values['is_crowd'][i])} is not 0 or 1")
    if masks is not None and len(masks):
        for i, m in enumerate(masks):
            err = _decode_check(bytes(m), f"object {i}: mask", fmt="png", size=(width, height))
            if err:
                problems.append(err)
    kx = values.get("keypoint_x")
    if kx is not None and len(kx):
        lens = {len(values[k]) for k in ("keypoint_x", "keypoint_y", "keypoint_visibility")}
        if len(lens) > 1 or (n and len(kx) % n):
            problems.append(f"keypoint lists do not hold the same number per object "
                            f"({len(kx)} values for {n} objects)")
        else:
            for k in ("keypoint_x", "keypoint_y"):
                vals = [float(v) for v in values[k]]
                if any(not (0.0 <= v <= 1.0) or math.isnan(v) for v in vals):
                    problems.append(f"{k} outside [0, 1]")
    return problems


# ------------------------------------------------------------------ one shard

@dataclass
class ShardResult:
    display: str
    split: str
    num_examples: int = 0
    num_objects: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    damaged: bool = False  # some records could not be read at all


def infer_task_of(path: str) -> str | None:
    """The task of the first readable record of `path` (None if it has none)."""
    import tensorflow as tf

    for framed in _read_shard(path):
        if framed.data is not None:
            try:
                keys = tf.train.Example.FromString(framed.data).features.feature.keys()
            except Exception:
                return None
            return schema.infer_task(keys)
    return None


def check_shard(ctx: _Context) -> ShardResult:
    """Read, parse and check every record of one shard."""
    result = ShardResult(ctx.display, ctx.split)
    task = ctx.task or infer_task_of(ctx.path)
    if task is None:
        result.problems.append(Problem(ctx.display, "no record with the keys of a known task "
                                       "(detection or classification)"))
        return result
    task_schema = schema.schema_for(task)
    pending: list[tuple[int, bytes]] = []

    def flush():
        parsed = parse_records(task_schema, [d for _, d in pending])
        for (index, _), values in zip(pending, parsed):
            result.num_examples += 1
            if isinstance(values, str):
                result.problems.append(Problem(ctx.display, values, index))
                continue
            image_id = _image_id(task, values)
            for what in check_record(task, values, ctx.labels, label_source=ctx.label_source):
                result.problems.append(Problem(ctx.display, what, index, image_id))
            if task == "detection":
                result.num_objects += len(values["class_text"])
                for t in values["class_text"]:
                    name = _text(t)
                    result.class_counts[name] = result.class_counts.get(name, 0) + 1
            else:
                name = _text(values["label_text"])
                result.class_counts[name] = result.class_counts.get(name, 0) + 1
        report_progress(len(pending))
        pending.clear()

    try:
        for framed in _read_shard(ctx.path):
            if framed.data is None:
                flush()
                result.problems.append(Problem(ctx.display, framed.problem, framed.index))
                result.damaged = True
                if not framed.fatal:
                    result.num_examples += 1
                continue
            pending.append((framed.index, framed.data))
            if len(pending) >= _BATCH:
                flush()
        flush()
    except OSError as e:
        result.problems.append(Problem(ctx.display, f"cannot read ({e})"))
    return result


# ------------------------------------------------------------------ whole output

def _task_of_files(files: list[str]) -> str:
    """The task of the first file that holds a readable record."""
    for f in files:
        task = infer_task_of(f)
        if task is not None:
            return task
    raise InputError(files[0] if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)",
                     "cocoprep records (detection or classification keys)",
                     "no readable record with those keys")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _split_of(name: str) -> str:
    return name.split(".tfrecord", 1)[0] if ".tfrecord" in name else name


def _load_labels(root: Path, manifest: Manifest) -> tuple[dict[int, str] | None, str,
                                                          list[Problem]]:
    """stored label -> name, from the label map the manifest names."""
    if manifest.task == "detection":
        name = manifest.label_map or manifest.labels_txt
    else:
        name = manifest.labels_txt or manifest.label_map
    if not name:
        return None, "", []
    path = root / name
    if not path.is_file():
        return None, name, [Problem(name, "missing (named in manifest.json); labels not checked")]
    try:
        if name.endswith(".pbtxt"):
            lm = LabelMap.read_pbtxt(path)
        else:
            lm = LabelMap.read_labels_txt(path, start=manifest.label_offset)
    except LabelMapError as e:
        return None, name, [Problem(name, f"unreadable label map ({e.what}); labels not checked")]
    return {item.id: item.name for item in lm}, name, []


def verify(path: str | Path, *, workers: int | None = None, quiet: bool = False) -> VerifyReport:
    """Check an output directory (through its manifest.json) or a shard glob.

    With a manifest: shard files present (none missing, none extra), each shard's
    sha256 and size, every record readable, parsable and right (images and masks
    decode at their stored size, boxes in [0, 1] with min <= max, labels in the
    label map), and the per-shard, per-split and per-class counts equal to the
    manifest's. A glob gets the checks that need no manifest.
    """
    text = str(path)
    problems: list[Problem] = []
    contexts: list[_Context] = []
    manifest: Manifest | None = None
    root = Path(text)
    if _is_glob(text) or root.is_file():
        files = sorted(_glob.glob(text)) if _is_glob(text) else [text]
        files = [f for f in files if os.path.isfile(f)]
        if not files:
            raise InputError(text, "shard files (a directory with manifest.json or a glob)",
                             "no file matches")
        task = _task_of_files(files)
        for f in files:
            contexts.append(_Context(f, f, _split_of(os.path.basename(f)), task))
    else:
        if not root.is_dir():
            raise InputError(root, "an output directory or a shard glob", "nothing there")
        manifest = Manifest.read(root)
        try:
            schema.schema_for(manifest.task)
        except Exception:
            raise ManifestError(root / MANIFEST_NAME,
                                f"unknown task {manifest.task!r}") from None
        labels, label_source, label_problems = _load_labels(root, manifest)
        problems.extend(label_problems)
        listed = set()
        for split, info in manifest.splits.items():
            for shard in info.shards:
                listed.add(shard.file)
                p = root / shard.file
                if not p.is_file():
                    problems.append(Problem(shard.file, "missing (listed in manifest.json)"))
                    continue
                size = p.stat().st_size
                if size != shard.size_bytes:
                    problems.append(Problem(shard.file, f"size {size} bytes != manifest's "
                                            f"{shard.size_bytes}"))
                if _file_sha256(p) != shard.sha256:
                    problems.append(Problem(shard.file, "sha256 differs from manifest.json"))
                contexts.append(_Context(str(p), shard.file, split, manifest.task, labels,
                                         label_source))
        for p in sorted(root.glob(SHARD_PATTERN)):
            if p.name not in listed:
                problems.append(Problem(p.name, "extra shard file, not listed in manifest.json"))

    if workers is None:
        # A worker process pays a TensorFlow import (seconds): worth it only for big outputs.
        total_bytes = sum(os.path.getsize(c.path) for c in contexts)
        workers = min(os.cpu_count() or 1, max(1, total_bytes // _BYTES_PER_WORKER))
    workers = max(1, int(workers))
    total = manifest.num_examples if manifest else None
    with progress_bar(total, "verifying", "rec", quiet) as bar:
        # Workers import TensorFlow quietly: its C++ start-up lines stay off the terminal.
        results = map_tasks(check_shard, contexts, workers=workers, bar=bar,
                            init=import_tensorflow)

    splits: dict[str, int] = {}
    for r in results:
        splits[r.split] = splits.get(r.split, 0) + r.num_examples
        problems.extend(r.problems)
    if manifest is not None:
        by_file = {r.display: r for r in results}
        for split, info in manifest.splits.items():
            for shard in info.shards:
                r = by_file.get(shard.file)
                if r is not None and r.num_examples != shard.num_examples:
                    problems.append(Problem(shard.file, f"{r.num_examples} records, manifest "
                                            f"says {shard.num_examples}"))
            got = [r for r in results if r.split == split]
            if len(got) != len(info.shards) or any(r.damaged for r in got):
                continue  # already reported per shard; totals would only repeat it
            examples = sum(r.num_examples for r in got)
            if examples != info.num_examples:
                problems.append(Problem(MANIFEST_NAME, f"split {split}: {examples} examples "
                                        f"read, manifest says {info.num_examples}"))
            if manifest.task == "detection":
                objects = sum(r.num_objects for r in got)
                if objects != info.num_objects:
                    problems.append(Problem(MANIFEST_NAME, f"split {split}: {objects} objects "
                                            f"read, manifest says {info.num_objects}"))
            counts: dict[str, int] = {}
            for r in got:
                for k, v in r.class_counts.items():
                    counts[k] = counts.get(k, 0) + v
            for name in sorted(set(counts) | set(info.class_counts)):
                a, b = counts.get(name, 0), info.class_counts.get(name, 0)
                if a != b:
                    problems.append(Problem(MANIFEST_NAME, f"split {split}: class {name!r}: "
                                            f"{a} read, manifest says {b}"))
        splits = {s: splits.get(s, 0) for s in manifest.splits}
    return VerifyReport(
        num_examples=sum(r.num_examples for r in results),
        num_shards=len(results),
        splits=splits,
        # grouped by file; within a file, file-level problems first, then by record
        problems=tuple(sorted(problems, key=lambda p: (p.file, -1 if p.index is None
                                                       else p.index))),
    )


# ------------------------------------------------------------------ inspect

_INSPECT_NAMES = {
    "detection": ("height", "width", "class_text", "is_crowd", "mask", "keypoint_visibility",
                  "caption"),
    "classification": ("height", "width", "label_text"),
}


def _parsed_batches(files: list[str], spec: dict):
    """Parsed batches of every file in turn; a damaged file is an error naming it."""
    import tensorflow as tf

    for f in files:
        ds = tf.data.TFRecordDataset(f).batch(256).map(lambda s: tf.io.parse_example(s, spec))
        try:
            yield from ds
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            what = str(getattr(e, "message", e)).strip().splitlines()[0]
            # Keep TensorFlow's words ("corrupted record at 12"), not its op names.
            what = what.split("}}")[-1].split("[Op:")[0].strip()
            raise InputError(f, "readable cocoprep records", f"{what} (run `cocoprep verify` "
                             "for the record index)") from None


def _split_stats(files: list[str], task: str) -> dict:
    """Counts over every record of `files` (read in batches; images not decoded)."""
    import numpy as np

    task_schema = schema.schema_for(task)
    keys = schema.keys_of(task_schema, _INSPECT_NAMES[task])
    full = schema.parse_spec(task_schema)
    spec = {key: full[key] for key in keys.values()}
    stats = {"examples": 0, "objects": 0, "max_objects": 0, "without_objects": 0, "crowd": 0,
             "masks": 0, "keypoints": 0, "captions": 0, "captioned": 0,
             "width": [None, None], "height": [None, None], "classes": {}}

    def minmax(pair, values):
        lo, hi = int(values.min()), int(values.max())
        pair[0] = lo if pair[0] is None else min(pair[0], lo)
        pair[1] = hi if pair[1] is None else max(pair[1], hi)

    def rows(sparse, n):
        ids = sparse.indices.numpy()[:, 0]
        return np.bincount(ids, minlength=n) if ids.size else np.zeros(n, np.int64)

    classes = stats["classes"]
    for batch in _parsed_batches(files, spec):
        height = batch[keys["height"]].numpy()
        n = len(height)
        stats["examples"] += n
        minmax(stats["height"], height)
        minmax(stats["width"], batch[keys["width"]].numpy())
        if task == "classification":
            for t in batch[keys["label_text"]].numpy().tolist():
                name = _text(t)
                classes[name] = classes.get(name, 0) + 1
            continue
        texts = batch[keys["class_text"]]
        per_image = rows(texts, n)
        stats["objects"] += int(per_image.sum())
        stats["max_objects"] = max(stats["max_objects"], int(per_image.max(initial=0)))
        stats["without_objects"] += int((per_image == 0).sum())
        for t in texts.values.numpy().tolist():
            name = _text(t)
            classes[name] = classes.get(name, 0) + 1
        stats["crowd"] += int(batch[keys["is_crowd"]].values.numpy().sum())
        stats["masks"] += int(rows(batch[keys["mask"]], n).sum())
        vis = batch[keys["keypoint_visibility"]]
        vis_rows = np.split(vis.values.numpy(), np.cumsum(rows(vis, n))[:-1])
        for objects, v in zip(per_image.tolist(), vis_rows):
            if objects and v.size and v.size % objects == 0:
                # K keypoints per object; an object counts when any is labelled (v > 0)
                stats["keypoints"] += int((v.reshape(objects, -1) > 0).any(axis=1).sum())
        captions = rows(batch[keys["caption"]], n)
        stats["captions"] += int(captions.sum())
        stats["captioned"] += int((captions > 0).sum())
    return stats


def inspect(path: str | Path) -> dict:
    """Per-split statistics of an output directory (or a shard glob), as a dict
    ready for JSON: examples, objects, per-class counts (sorted, largest first),
    crowd, masks/keypoints/captions, image size range, shards, skipped by reason."""
    text = str(path)
    root = Path(text)
    manifest: Manifest | None = None
    groups: dict[str, list[str]] = {}
    if _is_glob(text) or root.is_file():
        files = sorted(f for f in (_glob.glob(text) if _is_glob(text) else [text])
                       if os.path.isfile(f))
        if not files:
            raise InputError(text, "shard files (a directory with manifest.json or a glob)",
                             "no file matches")
        for f in files:
            groups.setdefault(_split_of(os.path.basename(f)), []).append(f)
        task = _task_of_files(files)
    else:
        if not root.is_dir():
            raise InputError(root, "an output directory or a shard glob", "nothing there")
        manifest = Manifest.read(root)
        task = manifest.task
        schema.schema_for(task)
        for split, info in manifest.splits.items():
            missing = [s.file for s in info.shards if not (root / s.file).is_file()]
            if missing:
                raise InputError(root / missing[0], "a shard listed in manifest.json",
                                 "no such file (run `cocoprep verify`)")
            groups[split] = [str(root / s.file) for s in info.shards]

    out: dict[str, Any] = {"path": text, "task": task, "splits": {}}
    for split, files in groups.items():
        stats = _split_stats(files, task)
        sizes = [os.path.getsize(f) for f in files]
        info = manifest.splits[split] if manifest else None
        counts = dict(stats["classes"])
        for name in (info.class_counts if info else {}):
            counts.setdefault(name, 0)
        order = {name: i for i, name in enumerate(info.class_counts if info else ())}
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)),
                                                        kv[0]))
        n = stats["examples"]
        entry: dict[str, Any] = {"examples": n}
        if task == "detection":
            entry.update({
                "objects": stats["objects"],
                "objects_per_image": {"mean": round(stats["objects"] / n, 3) if n else 0.0,
                                      "max": stats["max_objects"]},
                "images_without_objects": stats["without_objects"],
                "crowd": stats["crowd"],
                "objects_with_masks": stats["masks"],
                "objects_with_keypoints": stats["keypoints"],
                "images_with_captions": stats["captioned"],
                "captions": stats["captions"],
            })
        entry.update({
            "image_width": {"min": stats["width"][0], "max": stats["width"][1]},
            "image_height": {"min": stats["height"][0], "max": stats["height"][1]},
            "shards": {"count": len(files), "total_bytes": sum(sizes),
                       "min_bytes": min(sizes), "max_bytes": max(sizes)},
            "classes": dict(ranked),
            "skipped": dict(info.skipped) if info else None,
        })
        out["splits"][split] = entry
    return out


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def format_inspect(report: dict, *, bar_width: int = 30) -> str:
    """The `inspect` report as a text table, one block per split."""
    lines = [f"{report['path']}: {report['task']}"]
    for split, s in report["splits"].items():
        sh = s["shards"]
        lines.append("")
        lines.append(f"split {split}")
        rows = [("examples", str(s["examples"]))]
        n = s["examples"]
        if report["task"] == "detection":
            per = s["objects_per_image"]
            rows += [
                ("objects", f"{s['objects']}  (per image: mean {per['mean']:.2f}, max "
                            f"{per['max']}; images without objects: "
                            f"{s['images_without_objects']})"),
                ("crowd", str(s["crowd"])),
                ("masks", f"{s['objects_with_masks']} of {s['objects']} objects"),
                ("keypoints", f"{s['objects_with_keypoints']} of {s['objects']} objects"),
                ("captions", f"{s['captions']} in {s['images_with_captions']} of {n} images"),
            ]
        w, h = s["image_width"], s["image_height"]
        rows.append(("image size", f"width {w['min']}..{w['max']}, height {h['min']}..{h['max']}"
                     if n else "-"))
        rows.append(("shards", f"{sh['count']}, {_human_bytes(sh['total_bytes'])} "
                     f"(each {_human_bytes(sh['min_bytes'])}..{_human_bytes(sh['max_bytes'])})"))
        skipped = s["skipped"]
        if skipped is None:
            rows.append(("skipped", "unknown (no manifest)"))
        else:
            rows.append(("skipped", ", ".join(f"{k} {v}" for k, v in skipped.items()) or "none"))
        lines += [f"  {k:<11} {v}" for k, v in rows]
        classes = s["classes"]
        unit = "objects" if report["task"] == "detection" else "images"
        lines.append(f"  classes     {len(classes)} ({unit} per class)")
        if classes:
            top = max(classes.values()) or 1
            name_w = max(len(k) for k in classes)
            num_w = max(len(str(v)) for v in classes.values())
            for name, count in classes.items():
                bar = "█" * round(bar_width * count / top)
                lines.append(f"    {name:<{name_w}}  {count:>{num_w}}  {bar}")
    return "\n".join(lines)
