"""Parallel sharded writing, shared by `convert` and `split`.

Each split's items (already in their final, seeded order) are cut into contiguous
shards; a worker process owns a whole shard: it reads and checks the images, builds
and serializes the records and writes the shard itself, so image bytes never travel
between processes and the parent never holds serialized examples. Shard contents
depend only on the item order, never on the number of workers, so output is
byte-identical whatever `workers` is.

Everything is written into a hidden staging directory inside OUT, each shard under a
temporary name renamed when complete; only when every file is finished are the old
outputs in OUT replaced (manifest.json last). A killed run never leaves a file that
looks finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

from cocoprep.errors import InputError, UsageError
from cocoprep.manifest import (
    MANIFEST_NAME, SKIPPED_NAME, Manifest, ShardInfo, SplitInfo, shard_name,
)
from cocoprep.parallel import in_worker_process, map_tasks, progress_bar, report_progress
from cocoprep.records import BuildResult, SkippedItem
from cocoprep.tfimport import import_tensorflow, stderr_silenced

DEFAULT_SHARD_SIZE = 200 * 1024 * 1024
STAGING_PREFIX = ".cocoprep-staging-"
_OUTPUT_PATTERNS = ("*.tfrecord-?????-of-?????", MANIFEST_NAME, SKIPPED_NAME,
                    "label_map.pbtxt", "labels.txt")


class Builder(Protocol):
    """Turns one item into a serialized record. Must be picklable (it is sent to
    each worker once) and do its own I/O."""

    def build(self, split: str, item: Any) -> BuildResult: ...


@dataclass(frozen=True)
class SplitPlan:
    """One split to write: its items in final order, and how many shards."""

    name: str
    items: Sequence[Any]
    num_shards: int
    listing_name: str | None = None  # e.g. "train.txt": one line per written example


@dataclass
class ShardResult:
    split: str
    index: int
    file: str
    num_examples: int = 0
    num_objects: int = 0
    sha256: str = ""
    size_bytes: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedItem] = field(default_factory=list)
    listing: list[str] = field(default_factory=list)


def parse_size(text: str | int) -> int:
    """`200MB`, `1.5GiB`, `500k` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().replace(" ", "")
    units = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1024, "M": 10**6, "MB": 10**6,
             "MIB": 2**20, "G": 10**9, "GB": 10**9, "GIB": 2**30}
    num = s.rstrip("KMGIB")
    unit = s[len(num):]
    try:
        value = float(num) * units[unit]
    except (ValueError, KeyError):
        raise UsageError("--shard-size", "a size such as 200MB or 1GiB", text) from None
    if not math.isfinite(value) or value < 1:  # nan/inf would crash int(); < 1 byte is 0
        raise UsageError("--shard-size", "a positive size", text)
    return int(value)


def plan_num_shards(num_items: int, total_bytes: int, *, num_shards: int | None = None,
                    shard_size: int = DEFAULT_SHARD_SIZE) -> int:
    """`num_shards` if given, else enough shards of about `shard_size`; never more
    shards than items, at least one."""
    if num_shards is not None:
        if num_shards < 1:
            raise UsageError("--num-shards", "an integer >= 1", num_shards)
        wanted = num_shards
    else:
        wanted = math.ceil(total_bytes / shard_size) if shard_size > 0 else 1
    return max(1, min(wanted, num_items))


def _shard_bounds(num_items: int, num_shards: int, index: int) -> tuple[int, int]:
    return (num_items * index) // num_shards, (num_items * (index + 1)) // num_shards


# ------------------------------------------------------------------ worker side

_BUILDER: Builder | None = None


def _init_worker(builder: Builder | None) -> None:
    global _BUILDER
    _BUILDER = builder


def _record_writer_class():
    """TensorFlow's TFRecord writer (the C++ framing with CRC32C).

    Pool workers need nothing else from TensorFlow, so they load just its record-I/O
    extension module, which takes a tenth of the time of `import tensorflow`
    (seconds per worker on a small machine). Anywhere else, or if that fails, the
    public `tf.io.TFRecordWriter` is used: the same C++ writer, the same bytes.
    """
    if in_worker_process() and "tensorflow" not in sys.modules:
        try:
            import importlib.util

            spec = importlib.util.find_spec("tensorflow")
            base = os.path.join(os.path.dirname(spec.origin), "python", "lib", "io")
            name = "tensorflow.python.lib.io._pywrap_record_io"
            module = sys.modules.get(name)
            if module is None:
                so = next(f for f in sorted(os.listdir(base))
                          if f.startswith("_pywrap_record_io") and f.endswith((".so", ".pyd")))
                so_spec = importlib.util.spec_from_file_location(name, os.path.join(base, so))
                # Loading TensorFlow's shared libraries (in module_from_spec) prints
                # start-up notices (oneDNN, CUDA drivers) straight to fd 2 in every
                # worker; a failure still raises.
                with stderr_silenced():
                    module = importlib.util.module_from_spec(so_spec)
                    so_spec.loader.exec_module(module)
                sys.modules[name] = module

            def fast_writer(path: str):
                return module.RecordWriter(path, module.RecordWriterOptions(""))

            return fast_writer
        except Exception:
            pass
    return import_tensorflow().io.TFRecordWriter


def _write_shard(task: tuple[str, int, int, Sequence[Any], str]) -> ShardResult:
    split, index, count, items, staging = task
    name = shard_name(split, index, count)
    final = os.path.join(staging, name)
    tmp = final + ".tmp"
    result = ShardResult(split=split, index=index, file=name)
    pending = 0
    with _record_writer_class()(tmp) as writer:
        for item in items:
            built = _BUILDER.build(split, item)
            result.skipped.extend(built.skipped)
            for k, v in built.counters.items():
                result.counters[k] = result.counters.get(k, 0) + v
            if built.example is not None:
                writer.write(built.example)
                result.num_examples += 1
                result.num_objects += built.num_objects
                for k, v in built.class_counts.items():
                    result.class_counts[k] = result.class_counts.get(k, 0) + v
                if built.listing is not None:
                    result.listing.append(built.listing)
            pending += 1
            if pending >= 8:
                report_progress(pending)
                pending = 0
    report_progress(pending)
    digest = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    result.sha256 = digest.hexdigest()
    result.size_bytes = os.path.getsize(tmp)
    os.replace(tmp, final)
    return result


# ------------------------------------------------------------------ parent side

def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _clean_stale_staging(out: Path) -> None:
    for p in out.glob(STAGING_PREFIX + "*"):
        pid = p.name[len(STAGING_PREFIX):]
        alive = False
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
                alive = int(pid) != os.getpid()
            except OSError:
                alive = False
        if not alive:
            shutil.rmtree(p, ignore_errors=True)


def _old_outputs(out: Path) -> list[Path]:
    old: set[Path] = set()
    for pattern in _OUTPUT_PATTERNS:
        old.update(p for p in out.glob(pattern) if p.is_file())
    try:
        previous = Manifest.read(out)
        for split in previous.splits:
            listing = out / f"{split}.txt"
            if listing.is_file():
                old.add(listing)
    except Exception:
        pass
    return sorted(old)


def write_dataset(
    out: str | Path,
    plans: Sequence[SplitPlan],
    builder: Builder,
    *,
    manifest: Manifest,
    class_order: Sequence[str] = (),
    extra_files: dict[str, str] | None = None,
    workers: int | None = None,
    quiet: bool = False,
    pre_skipped: Sequence[SkippedItem] = (),
) -> tuple[Manifest, list[SkippedItem]]:
    """Write every split of `plans` into `out` and return the final manifest.

    Args:
        manifest: everything but `splits`, `skipped` and `counters`, which are filled in.
        class_order: class names in label order, for the manifest's histograms.
        extra_files: name -> text written beside the shards (label maps, ...).
        workers: processes (default: CPU count); 1 runs in this process.
        pre_skipped: items the caller kept out before writing (e.g. while listing the
            source); written first to skipped.jsonl and counted in `manifest.skipped`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "an output directory", "a file")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        _clean_stale_staging(out)
        staging = out / f"{STAGING_PREFIX}{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as e:
        raise InputError(out, "a writable output directory", e.strerror or str(e)) from None
    workers = default_workers() if workers is None else max(1, int(workers))
    try:
        tasks = []
        for plan in plans:
            for i in range(plan.num_shards):
                lo, hi = _shard_bounds(len(plan.items), plan.num_shards, i)
                tasks.append((plan.name, i, plan.num_shards, plan.items[lo:hi], str(staging)))
        total = sum(len(p.items) for p in plans)
        with progress_bar(total, "writing", "img", quiet) as bar:
            try:
                results = map_tasks(_write_shard, tasks, workers=workers, bar=bar,
                                    init=_init_worker, init_args=(builder,))
            finally:
                _init_worker(None)
        final, skipped = _assemble(plans, results, manifest, class_order)
        if pre_skipped:
            merged = dict(final.skipped)
            for item in pre_skipped:
                merged[item.reason] = merged.get(item.reason, 0) + 1
            splits = dict(final.splits)
            for name, info in final.splits.items():
                per_split = dict(info.skipped)
                for item in pre_skipped:
                    if item.split == name:
                        per_split[item.reason] = per_split.get(item.reason, 0) + 1
                splits[name] = replace(info, skipped=dict(sorted(per_split.items())))
            final = replace(final, skipped=dict(sorted(merged.items())), splits=splits)
            skipped = list(pre_skipped) + skipped
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
        for plan in plans:
            if plan.listing_name:
                lines = [line for r in results if r.split == plan.name for line in r.listing]
                (staging / plan.listing_name).write_text(
                    "".join(line + "\n" for line in lines), encoding="utf-8")
        # backslashreplace: a file name with undecodable bytes (a lone surrogate) becomes
        # a JSON \udcXX escape, which reads back as the same name.
        with open(staging / SKIPPED_NAME, "w", encoding="utf-8", errors="backslashreplace") as f:
            for item in skipped:
                f.write(json.dumps(item.to_json_dict(), ensure_ascii=False, sort_keys=False) + "\n")
        final.write(staging)
        _swap_in(out, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    return final, skipped


def _assemble(plans, results: list[ShardResult], manifest: Manifest,
              class_order: Sequence[str]) -> tuple[Manifest, list[SkippedItem]]:
    by_split: dict[str, list[ShardResult]] = {}
    for r in results:
        by_split.setdefault(r.split, []).append(r)
    splits: dict[str, SplitInfo] = {}
    all_skipped: list[SkippedItem] = []
    total_skipped: dict[str, int] = {}
    total_counters: dict[str, int] = {}
    for plan in plans:
        shards = sorted(by_split.get(plan.name, []), key=lambda r: r.index)
        classes: dict[str, int] = {name: 0 for name in class_order}
        skipped: dict[str, int] = {}
        counters: dict[str, int] = {}
        for r in shards:
            for k, v in r.class_counts.items():
                classes[k] = classes.get(k, 0) + v
            for k, v in r.counters.items():
                counters[k] = counters.get(k, 0) + v
            for s in r.skipped:
                skipped[s.reason] = skipped.get(s.reason, 0) + 1
                all_skipped.append(s)
        for k, v in skipped.items():
            total_skipped[k] = total_skipped.get(k, 0) + v
        for k, v in counters.items():
            total_counters[k] = total_counters.get(k, 0) + v
        splits[plan.name] = SplitInfo(
            num_examples=sum(r.num_examples for r in shards),
            num_objects=sum(r.num_objects for r in shards),
            shards=tuple(ShardInfo(r.file, r.num_examples, r.sha256, r.size_bytes) for r in shards),
            class_counts=classes,
            skipped=dict(sorted(skipped.items())),
            counters=dict(sorted(counters.items())),
        )
    merged_skipped = dict(manifest.skipped)
    for k, v in total_skipped.items():
        merged_skipped[k] = merged_skipped.get(k, 0) + v
    merged_counters = dict(manifest.counters)
    for k, v in total_counters.items():
        merged_counters[k] = merged_counters.get(k, 0) + v
    final = replace(manifest, splits=splits, skipped=dict(sorted(merged_skipped.items())),
                    counters=dict(sorted(merged_counters.items())))
    return final, all_skipped


def _swap_in(out: Path, staging: Path) -> None:
    """Replace the old outputs with the finished new ones; manifest.json goes last
    so that a manifest on disk always describes complete shards."""
    for old in _old_outputs(out):
        old.unlink()
    names = sorted(p.name for p in staging.iterdir() if p.name != MANIFEST_NAME)
    for name in names:
        os.replace(staging / name, out / name)
    os.replace(staging / MANIFEST_NAME, out / MANIFEST_NAME)
    staging.rmdir()
