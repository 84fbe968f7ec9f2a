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
import multiprocessing as mp
import os
import struct
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cocoprep import schema
from cocoprep.errors import InputError, LabelMapError, ManifestError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import MANIFEST_NAME, Manifest

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
        if self.ok:
            return (f"OK: {self.num_examples} examples in {self.num_shards} shards "
                    f"(splits {splits})")
        return (f"FAILED: {len(self.problems)} problem(s); {self.num_examples} examples read "
                f"in {self.num_shards} shards (splits {splits})")


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
    """Every record of a shard, fast path through tf.data, Python framing after
    the first error."""
    import tensorflow as tf

    index = 0
    it = iter(tf.data.TFRecordDataset(path, buffer_size=1 << 20))
    while True:
        try:
            record = next(it)
        except StopIteration:
            break
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.UnknownError):
            break
        yield _Framed(index, record.numpy())
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
    from cocoprep import images
    from cocoprep.errors import ItemSkipped

    try:
        im = images._open(data)
        found = (im.format or "").lower()
        if fmt is not None and found.replace("jpg", "jpeg") != fmt:
            return f"{what}: format says {fmt!r} but the bytes are {found or 'unknown'}"
        if im.size != size:
            return (f"{what}: decoded size {im.width}x{im.height} != stored "
                    f"width x height {size[0]}x{size[1]}")
        images._decode_fully(im, fast_jpeg=True)
    except ItemSkipped as e:
        return f"{what}: {e.detail}"
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


_PROGRESS: Any = None


def _init_worker(progress) -> None:
    global _PROGRESS
    _PROGRESS = progress


def _report(n: int) -> None:
    if _PROGRESS is not None and n:
        _PROGRESS(n) if callable(_PROGRESS) else _PROGRESS.put(n)


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
        _report(len(pending))
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


def _run(contexts: list[_Context], workers: int, bar) -> list[ShardResult]:
    if workers <= 1 or len(contexts) <= 1:
        _init_worker(bar.update)
        try:
            return [check_shard(c) for c in contexts]
        finally:
            _init_worker(None)
    ctx = mp.get_context("forkserver" if sys.platform != "win32" else "spawn")
    queue = ctx.Queue()
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            try:
                bar.update(queue.get(timeout=0.1))
            except Exception:
                continue

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        with ctx.Pool(min(workers, len(contexts)), initializer=_init_worker,
                      initargs=(queue,)) as pool:
            results = pool.map(check_shard, contexts, chunksize=1)
    finally:
        stop.set()
        thread.join()
    while not queue.empty():
        bar.update(queue.get())
    return results


def _progress_bar(total: int | None, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="verifying", unit="rec", smoothing=0.1,
                disable=quiet or not sys.stderr.isatty())


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
        for f in files:
            contexts.append(_Context(f, f, _split_of(os.path.basename(f)), None))
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
    with _progress_bar(total, quiet) as bar:
        results = _run(contexts, workers, bar)

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
        problems=tuple(problems),
    )
