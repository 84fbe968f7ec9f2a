"""`verify`: are the records of an output intact and right?

Every shard is read with `framing.read_shard` (tf.data at disk speed; on damage,
a Python reader of the framing that names the record), every record parsed with
the schema's spec and checked (images and masks decode at the stored size, boxes
in [0, 1] with min <= max, labels in the label map), and an output directory's
counts compared with its manifest.json.

Keys are never spelled here: records are parsed with `schema.parse_spec` and
values are looked up by feature name through `schema.keys_of`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cocoprep import schema, tfdsmeta
from cocoprep.errors import LabelMapError, ManifestError
from cocoprep.framing import BATCH, read_shard
from cocoprep.fsio import file_sha256
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import MANIFEST_NAME, Manifest, SplitInfo
from cocoprep.parallel import map_tasks
from cocoprep.progress import progress_bar, report_progress
from cocoprep.recordcheck import check_record, check_segmentation, text_of
from cocoprep.shards import SHARD_PATTERN, Shards, infer_task_of, resolve, split_of, task_of
from cocoprep.tfimport import import_tensorflow

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
    """What `verify` found. `splits` maps split name -> examples read; `warnings`
    are worth a look but fail nothing (a detection split without any object)."""

    num_examples: int
    num_shards: int
    splits: dict[str, int]
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...] = ()

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
                return [f"does not parse with the {task_schema.task} schema: "
                        f"{str(getattr(e, 'message', e)).strip().splitlines()[0]}"]
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


def _image_id(task: str, values: dict) -> str:
    if task != "classification":
        return text_of(values.get("source_id", b"")) or text_of(values.get("filename", b""))
    return text_of(values.get("filename", b""))


@dataclass
class ShardCheck:
    """What checking one shard found (the writer's `ShardResult` is what writing made)."""

    display: str
    split: str
    num_examples: int = 0
    num_objects: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    damaged: bool = False  # some records could not be read at all

    def count_pixels(self, counts, labels: dict[int, str] | None) -> None:
        """Segmentation: pixels per class name (void not counted), as the manifest's
        class_counts hold them."""
        if counts is None:
            return
        for v in counts[:255].nonzero()[0].tolist():
            name = labels.get(v, str(v)) if labels is not None else str(v)
            self.class_counts[name] = self.class_counts.get(name, 0) + int(counts[v])

    def count(self, task: str, values: dict) -> None:
        names = values["class_text"] if task == "detection" else [values["label_text"]]
        if task == "detection":
            self.num_objects += len(names)
        for t in names:
            name = text_of(t)
            self.class_counts[name] = self.class_counts.get(name, 0) + 1


def _check_batch(ctx: _Context, task: str, result: ShardCheck,
                 pending: list[tuple[int, bytes]]) -> None:
    """Parse, check and count a batch of (index, record) pairs, then empty it."""
    parsed = parse_records(schema.schema_for(task), [d for _, d in pending])
    for (index, _), values in zip(pending, parsed):
        result.num_examples += 1
        if isinstance(values, str):
            result.problems.append(Problem(ctx.display, values, index))
            continue
        image_id = _image_id(task, values)
        if task == "segmentation":
            problems, counts = check_segmentation(values, ctx.labels, ctx.label_source)
            result.count_pixels(counts, ctx.labels)
        else:
            problems = check_record(task, values, ctx.labels, label_source=ctx.label_source)
            result.count(task, values)
        for what in problems:
            result.problems.append(Problem(ctx.display, what, index, image_id))
    report_progress(len(pending))
    pending.clear()


def check_shard(ctx: _Context) -> ShardCheck:
    """Read, parse and check every record of one shard."""
    result = ShardCheck(ctx.display, ctx.split)
    task = ctx.task or infer_task_of(ctx.path)
    if task is None:
        result.problems.append(Problem(ctx.display, "no record with the keys of a known task "
                                       "(detection, segmentation or classification)"))
        return result
    pending: list[tuple[int, bytes]] = []
    try:
        for framed in read_shard(ctx.path):
            if framed.data is None:
                _check_batch(ctx, task, result, pending)
                result.problems.append(Problem(ctx.display, framed.problem, framed.index))
                result.damaged = True
                if not framed.fatal:
                    result.num_examples += 1
                continue
            pending.append((framed.index, framed.data))
            if len(pending) >= BATCH:
                _check_batch(ctx, task, result, pending)
        _check_batch(ctx, task, result, pending)
    except OSError as e:
        result.problems.append(Problem(ctx.display, f"cannot read ({e})"))
    return result


# ------------------------------------------------------------------ whole output



def _load_label_map(root: Path, manifest: Manifest) -> tuple[LabelMap | None, str,
                                                             list[Problem]]:
    """The label map that names the stored ids (`tfdsmeta.labels_file`)."""
    name = tfdsmeta.labels_file(manifest)
    if not name:
        return None, "", []
    path = root / name
    if not path.is_file():
        return None, name, [Problem(name, "missing (named in manifest.json); labels not checked")]
    try:
        text = path.read_text(encoding="utf-8")
        return tfdsmeta.parse_label_map(manifest, name, text, path=path), name, []
    except (OSError, UnicodeDecodeError) as e:
        what = f"cannot read: {e}"
    except LabelMapError as e:
        what = e.what
    return None, name, [Problem(name, f"unreadable label map ({what}); labels not checked")]


def _load_labels(root: Path, manifest: Manifest) -> tuple[dict[int, str] | None, str,
                                                          list[Problem]]:
    """stored label -> name, from the label map the manifest names."""
    lm, name, problems = _load_label_map(root, manifest)
    return (None if lm is None else {item.id: item.name for item in lm}), name, problems


def _glob_contexts(shards: Shards) -> list[_Context]:
    task = task_of(shards)
    return [_Context(f, f, split_of(f), task) for f in shards.files]


def _manifest_contexts(shards: Shards, problems: list[Problem]) -> list[_Context]:
    """A context per listed shard that is there; missing, resized, changed and
    extra shard files go to `problems`."""
    root, manifest = shards.directory, shards.manifest
    if manifest.task not in schema.SCHEMAS:
        raise ManifestError(root / MANIFEST_NAME, f"unknown task {manifest.task!r}")
    labels, label_source, label_problems = _load_labels(root, manifest)
    problems.extend(label_problems)
    contexts = []
    for split, info in manifest.splits.items():
        for shard in info.shards:
            path = str(root / shard.file)
            if not os.path.isfile(path):
                problems.append(Problem(shard.file, "missing (listed in manifest.json)"))
                continue
            size = os.path.getsize(path)
            if size != shard.size_bytes:
                problems.append(Problem(shard.file, f"size {size} bytes != manifest's "
                                        f"{shard.size_bytes}"))
            if file_sha256(path) != shard.sha256:
                problems.append(Problem(shard.file, "sha256 differs from manifest.json"))
            contexts.append(_Context(path, shard.file, split, manifest.task, labels,
                                     label_source))
    listed = {shard.file for info in manifest.splits.values() for shard in info.shards}
    for p in sorted(root.glob(SHARD_PATTERN)):
        if p.name not in listed:
            problems.append(Problem(p.name, "extra shard file, not listed in manifest.json"))
    return contexts


def _check_all(contexts: list[_Context], *, workers: int | None, total: int | None,
               quiet: bool) -> list[ShardCheck]:
    if workers is None:
        # A worker process pays a TensorFlow import (seconds): worth it only for big outputs.
        total_bytes = sum(os.path.getsize(c.path) for c in contexts)
        workers = min(os.cpu_count() or 1, max(1, total_bytes // _BYTES_PER_WORKER))
    with progress_bar(total, "verifying", "rec", quiet) as bar:
        # Workers import TensorFlow quietly: its C++ start-up lines stay off the terminal.
        return map_tasks(check_shard, contexts, workers=max(1, int(workers)), bar=bar,
                         init=import_tensorflow)


def _split_against_manifest(split: str, info: SplitInfo, got: list[ShardCheck],
                            task: str) -> list[Problem]:
    """A whole split's counts against the manifest's."""
    where = f"split {split}"
    problems = []
    examples = sum(r.num_examples for r in got)
    if examples != info.num_examples:
        problems.append(f"{where}: {examples} examples read, manifest says {info.num_examples}")
    objects = sum(r.num_objects for r in got)
    if task == "detection" and objects != info.num_objects:
        problems.append(f"{where}: {objects} objects read, manifest says {info.num_objects}")
    counts: dict[str, int] = {}
    for r in got:
        for k, v in r.class_counts.items():
            counts[k] = counts.get(k, 0) + v
    for name in sorted(set(counts) | set(info.class_counts)):
        a, b = counts.get(name, 0), info.class_counts.get(name, 0)
        if a != b:
            problems.append(f"{where}: class {name!r}: {a} read, manifest says {b}")
    return [Problem(MANIFEST_NAME, p) for p in problems]


def _against_manifest(manifest: Manifest, results: list[ShardCheck]) -> list[Problem]:
    """Per-shard and per-split counts against the manifest's."""
    problems = []
    by_file = {r.display: r for r in results}
    for split, info in manifest.splits.items():
        for shard in info.shards:
            r = by_file.get(shard.file)
            if r is not None and r.num_examples != shard.num_examples:
                problems.append(Problem(shard.file, f"{r.num_examples} records, manifest "
                                        f"says {shard.num_examples}"))
        got = [r for r in results if r.split == split]
        if len(got) == len(info.shards) and not any(r.damaged for r in got):
            # (a missing or damaged shard is already reported; totals would only repeat it)
            problems += _split_against_manifest(split, info, got, manifest.task)
    return problems


def _empty_splits(manifest: Manifest, results: list[ShardCheck]
                  ) -> tuple[list[Problem], list[str]]:
    """A split without examples is a problem; a detection split without objects, a
    warning. (A split with a missing or damaged shard is already reported. A
    glob's file names only hint at splits, and a glob without any record is
    already an error.)"""
    problems, warnings = [], []
    for split, info in manifest.splits.items():
        got = [r for r in results if r.split == split]
        if len(got) != len(info.shards) or any(r.damaged for r in got):
            continue
        examples = sum(r.num_examples for r in got)
        if examples == 0:
            problems.append(Problem(f"split {split}", "no examples"))
        elif manifest.task == "detection" and not any(r.num_objects for r in got):
            warnings.append(f"split {split}: {examples} examples but no objects "
                            "(no boxes to learn from)")
    return problems, warnings


def _tfds_problems(root: Path, manifest: Manifest) -> tuple[list[Problem], list[str]]:
    """The TFDS metadata against manifest.json: each listed file there with its
    sha256, and its contents what the manifest and label map say they must be
    (`tfdsmeta`), so a file edited together with its listed digest is caught too."""
    if not manifest.tfds_files:
        return [], ["no TensorFlow Datasets metadata (written by an older cocoprep): "
                    "convert again to open it with tfds.builder_from_directory"]
    problems: list[Problem] = []
    present: dict[str, bytes] = {}
    for name, digest in manifest.tfds_files.items():
        path = root / name
        if not path.is_file():
            problems.append(Problem(name, "missing (listed in manifest.json)"))
            continue
        present[name] = path.read_bytes()
        if hashlib.sha256(present[name]).hexdigest() != digest:
            problems.append(Problem(name, "sha256 differs from manifest.json"))
    label_map, _, label_problems = _load_label_map(root, manifest)
    if label_problems:  # already reported with the labels
        return problems, []
    for m in tfdsmeta.mismatches(manifest, label_map, present):
        problems.append(Problem(m.file, m.what))
    return problems, []


def verify(path: str | Path, *, workers: int | None = None, quiet: bool = False) -> VerifyReport:
    """Check an output directory (through its manifest.json) or a shard glob.

    With a manifest: shard files present (none missing, none extra), each shard's
    sha256 and size, every record readable, parsable and right (images and masks
    decode at their stored size, boxes in [0, 1] with min <= max, labels in the
    label map), and the per-shard, per-split and per-class counts equal to the
    manifest's, and every split holding an example (a detection split without
    any object gets a warning), and the TFDS metadata (dataset_info.json,
    features.json, class names) listed with its sha256 and matching the manifest
    and label map. A glob gets the checks that need no manifest.
    """
    shards = resolve(path)
    manifest = shards.manifest
    problems: list[Problem] = []
    if manifest is None:
        contexts = _glob_contexts(shards)
    else:
        contexts = _manifest_contexts(shards, problems)
    results = _check_all(contexts, workers=workers, quiet=quiet,
                         total=manifest.num_examples if manifest else None)
    splits: dict[str, int] = {s: 0 for s in (manifest.splits if manifest else ())}
    for r in results:
        splits[r.split] = splits.get(r.split, 0) + r.num_examples
        problems.extend(r.problems)
    warnings: list[str] = []
    if manifest is not None:
        problems += _against_manifest(manifest, results)
        empty, warnings = _empty_splits(manifest, results)
        problems += empty
        tfds_problems, tfds_warnings = _tfds_problems(shards.directory, manifest)
        problems += tfds_problems
        warnings += tfds_warnings
    return VerifyReport(
        num_examples=sum(r.num_examples for r in results),
        num_shards=len(results),
        splits=splits,
        # grouped by file; within a file, file-level problems first, then by record
        problems=tuple(sorted(problems, key=lambda p: (p.file, -1 if p.index is None
                                                       else p.index))),
        warnings=tuple(warnings),
    )
