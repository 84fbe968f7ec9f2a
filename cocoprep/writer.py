"""The shard plan, the per-shard write, and manifest assembly, shared by `convert`
and `split` and by both runners.

Each split's items (already in their final, seeded order) are cut into contiguous
shards by `plan_shards`, once, in the driver (`plan_num_shards` is the one rule for
how many). A worker owns a whole shard (`ShardTask`): it reads and checks the images,
builds and serializes the records and writes the shard itself, so image bytes never
travel between processes. Shard contents depend only on the item order, never on the
runner or the number of workers, so output is byte-identical whatever they are.

Commit protocol: everything is written into a hidden staging folder inside OUT named
by a run id; each shard under a temporary name unique to the attempt, renamed when
complete; only when every file is finished are the old outputs in OUT replaced
(manifest.json last, by the driver). A failed or killed run never leaves a file that
looks finished, and leaves the previous outputs in place.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

from cocoprep import fsio
from cocoprep.errors import InputError, UsageError
from cocoprep.manifest import (
    MANIFEST_NAME, SKIPPED_NAME, Manifest, ShardInfo, SplitInfo, shard_name,
)
from cocoprep.parallel import in_worker_process, map_tasks, progress_bar, report_progress
from cocoprep.records import BuildResult, SkippedItem
from cocoprep.tfimport import import_tensorflow, stderr_silenced

DEFAULT_SHARD_SIZE = 200 * 1024 * 1024
# Without --num-shards/--shard-size, a split also gets about one shard per this many
# items (at most AUTO_SHARDS_MAX), so small sets still keep several workers busy (a
# worker owns a whole shard). Never depends on the machine.
AUTO_SHARD_IMAGES = 128
AUTO_SHARDS_MAX = 16
RUNNERS = ("local", "beam")
STAGING_PREFIX = ".cocoprep-staging-"
# A staging folder nobody has written to for this long belongs to a dead run
# (killed, or its machine gone); a live run writes at least a shard in that time.
STALE_AFTER_S = 6 * 3600
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
                    shard_size: int | None = None) -> int:
    """The one rule for how many shards a split gets.

    `num_shards` if given; else shards of about `shard_size` bytes; with neither,
    shards of about DEFAULT_SHARD_SIZE but also about one per AUTO_SHARD_IMAGES items
    (at most AUTO_SHARDS_MAX). Never more shards than items, at least one.
    """
    if num_shards is not None:
        if isinstance(num_shards, bool) or num_shards < 1:
            raise UsageError("--num-shards", "an integer >= 1", num_shards)
        return max(1, min(int(num_shards), num_items))
    size = shard_size if shard_size is not None else DEFAULT_SHARD_SIZE
    by_size = math.ceil(total_bytes / size) if size > 0 else 1
    if shard_size is None:
        by_size = max(by_size, min(AUTO_SHARDS_MAX, math.ceil(num_items / AUTO_SHARD_IMAGES)))
    return max(1, min(by_size, num_items))


@dataclass(frozen=True)
class ShardTask:
    """One shard to write: its split, place, items (in final order) and the staging
    folder (local or remote) it goes to. The only thing a worker is handed."""

    split: str
    index: int
    num_shards: int
    items: Sequence[Any]
    staging: str

    @property
    def file(self) -> str:
        return shard_name(self.split, self.index, self.num_shards)


def plan_shards(plans: Sequence[SplitPlan], staging: str) -> list[ShardTask]:
    """Cut every split into contiguous shards. Decided once, in the driver: shard
    contents depend only on the item order, never on the runner or worker count."""
    tasks = []
    for plan in plans:
        n = len(plan.items)
        for i in range(plan.num_shards):
            lo, hi = (n * i) // plan.num_shards, (n * (i + 1)) // plan.num_shards
            tasks.append(ShardTask(plan.name, i, plan.num_shards, plan.items[lo:hi], staging))
    return tasks


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


def write_shard(task: ShardTask, builder: Builder | None = None) -> ShardResult:
    """Build and write one whole shard: a temp name unique to this attempt (a runner
    may retry a task while an earlier attempt still runs), then a rename."""
    builder = builder if builder is not None else _BUILDER
    result = ShardResult(split=task.split, index=task.index, file=task.file)
    final = fsio.join(task.staging, task.file)
    attempt = uuid.uuid4().hex
    remote = fsio.is_remote(task.staging)
    if remote:  # TensorFlow's writer needs a local file; it is copied up once complete
        fd, tmp = tempfile.mkstemp(prefix="cocoprep-shard-", suffix=".tmp")
        os.close(fd)
    else:
        tmp = f"{final}.tmp-{attempt}"
    try:
        _write_records(tmp, task, builder, result)
        result.sha256 = fsio.file_sha256(tmp)
        result.size_bytes = os.path.getsize(tmp)
        if remote:
            upload = f"{final}.tmp-{attempt}"
            fsio.copy_from_local(tmp, upload)
            fsio.rename(upload, final)
        else:
            os.replace(tmp, final)
    finally:
        if remote or os.path.exists(tmp):
            fsio.delete([tmp])
    return result


def _write_records(path: str, task: ShardTask, builder: Builder, result: ShardResult) -> None:
    pending = 0
    with _record_writer_class()(path) as writer:
        for item in task.items:
            built = builder.build(task.split, item)
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


# ------------------------------------------------------------------ parent side

def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def new_run_id() -> str:
    """`<unix seconds>-<random>`: unique across machines, and says when it started."""
    return f"{int(time.time())}-{uuid.uuid4().hex[:12]}"


def _run_started(name: str) -> float | None:
    head = name[len(STAGING_PREFIX):].split("-", 1)[0]
    return float(head) if head.isdigit() else None


def _clean_stale_staging(out: str, run_id: str, now: float | None = None) -> None:
    """Remove staging folders of other runs that nothing has written to for
    STALE_AFTER_S (age of their newest file, else of their run id). A PID means
    nothing across machines, so none is used."""
    now = time.time() if now is None else now
    found: dict[str, list[float]] = {}
    for path, _, mtime in fsio.list_files(fsio.join(out, STAGING_PREFIX + "*", "**")):
        rel = path[len(out):].lstrip("/" + os.sep)
        found.setdefault(rel.replace(os.sep, "/").split("/", 1)[0], []).append(mtime or 0.0)
    if not fsio.is_remote(out):
        for p in Path(out).glob(STAGING_PREFIX + "*"):
            found.setdefault(p.name, []).append(p.stat().st_mtime)
    for name, times in sorted(found.items()):
        if name == STAGING_PREFIX + run_id:
            continue
        started = _run_started(name)
        last = max(times + ([started] if started is not None else []))
        if now - last > STALE_AFTER_S:
            fsio.remove_tree(fsio.join(out, name))


def _prepare_out(out: str, run_id: str) -> tuple[str, bool]:
    """Make OUT and this run's staging folder; returns (staging, OUT was created)."""
    if fsio.is_remote(out):
        staging = fsio.join(out, STAGING_PREFIX + run_id)
        _clean_stale_staging(out, run_id)
        return staging, False
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(out, "an output directory", "a file")
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
        _clean_stale_staging(out, run_id)
        staging = os.path.join(out, STAGING_PREFIX + run_id)
        os.mkdir(staging)
    except OSError as e:
        raise InputError(out, "a writable output directory", e.strerror or str(e)) from None
    return staging, created


def _old_outputs(out: str) -> list[str]:
    old: set[str] = set()
    for pattern in _OUTPUT_PATTERNS:
        old.update(p for p, _, _ in fsio.list_files(fsio.join(out, pattern)))
    try:
        previous = Manifest.from_json(fsio.read_all(fsio.join(out, MANIFEST_NAME)).decode("utf-8"))
        for split in previous.splits:
            old.update(p for p, _, _ in fsio.list_files(fsio.join(out, f"{split}.txt")))
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
    runner: str = "local",
    beam_options: Sequence[str] | str | None = None,
) -> tuple[Manifest, list[SkippedItem]]:
    """Write every split of `plans` into `out` and return the final manifest.

    Args:
        out: a local folder, or any `scheme://` path Beam's FileSystems knows.
        manifest: everything but `splits`, `skipped` and `counters`, which are filled in.
        class_order: class names in label order, for the manifest's histograms.
        extra_files: name -> text written beside the shards (label maps, ...).
        workers: processes (default: CPU count); 1 runs in this process.
        pre_skipped: items the caller kept out before writing (e.g. while listing the
            source); written first to skipped.jsonl and counted in `manifest.skipped`.
        runner: `local` (a process pool) or `beam` (an Apache Beam pipeline);
            the bytes written are the same.
        beam_options: Beam pipeline flags (default: the DirectRunner in
            multi_processing mode with `workers` processes).
    """
    runner = check_runner(runner, out)
    out = str(out)
    workers = default_workers() if workers is None else max(1, int(workers))
    if runner == "beam":
        from cocoprep import beam_runner

        options = beam_runner.pipeline_options(beam_options, workers)  # checked before OUT
    run_id = new_run_id()
    staging, created = _prepare_out(out, run_id)
    try:
        tasks = plan_shards(plans, staging)
        if runner == "beam":
            results = beam_runner.run_shards(tasks, builder, options=options, quiet=quiet)
        else:
            total = sum(len(p.items) for p in plans)
            with progress_bar(total, "writing", "img", quiet) as bar:
                try:
                    results = map_tasks(write_shard, tasks, workers=workers, bar=bar,
                                        init=_init_worker, init_args=(builder,))
                finally:
                    _init_worker(None)
        final, skipped = _assemble(plans, results, manifest, class_order)
        final, skipped = _with_pre_skipped(final, skipped, pre_skipped)
        _write_reports(staging, plans, results, final, skipped, extra_files or {})
        _swap_in(out, staging)
    except BaseException:
        fsio.remove_tree(staging)
        if created:
            try:
                os.rmdir(out)
            except OSError:
                pass
        raise
    return final, skipped


def check_runner(runner: str, out: object = None, *, beam_options=None,
                 workers: int | None = None) -> str:
    """Refuse an unknown runner, a remote OUT without Beam, a missing Beam install and
    malformed Beam flags: called by `convert`/`split` before any input is read."""
    if runner not in RUNNERS:
        raise UsageError("--runner", " or ".join(RUNNERS), runner)
    if runner == "local" and fsio.is_remote(str(out)):
        raise UsageError("--runner", f"beam for a remote output ({out})", runner)
    if runner == "beam":
        from cocoprep import beam_runner

        beam_runner.pipeline_options(beam_options, workers or default_workers())
    return runner


def _with_pre_skipped(final: Manifest, skipped: list[SkippedItem],
                      pre_skipped: Sequence[SkippedItem]) -> tuple[Manifest, list[SkippedItem]]:
    if not pre_skipped:
        return final, skipped
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
    return final, list(pre_skipped) + skipped


def _write_reports(staging: str, plans: Sequence[SplitPlan], results: list[ShardResult],
                   final: Manifest, skipped: list[SkippedItem], extra: dict[str, str]) -> None:
    """Label maps, split listings, skipped.jsonl and manifest.json into staging."""
    files = {name: text.encode("utf-8") for name, text in extra.items()}
    for plan in plans:
        if plan.listing_name:
            lines = [line for r in results if r.split == plan.name for line in r.listing]
            files[plan.listing_name] = "".join(line + "\n" for line in lines).encode("utf-8")
    # backslashreplace: a file name with undecodable bytes (a lone surrogate) becomes
    # a JSON \udcXX escape, which reads back as the same name.
    files[SKIPPED_NAME] = "".join(
        json.dumps(item.to_json_dict(), ensure_ascii=False, sort_keys=False) + "\n"
        for item in skipped).encode("utf-8", errors="backslashreplace")
    files[MANIFEST_NAME] = final.to_json().encode("utf-8")
    for name, data in files.items():
        fsio.write_all(fsio.join(staging, name), data)


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


def _swap_in(out: str, staging: str) -> None:
    """Replace the old outputs with the finished new ones; manifest.json goes last
    so that a manifest on disk always describes complete shards."""
    staged = sorted(p for p, _, _ in fsio.list_files(fsio.join(staging, "*")))
    names = [p[len(staging):].lstrip("/" + os.sep) for p in staged]
    fsio.delete(_old_outputs(out))
    for name in names:
        if name != MANIFEST_NAME:
            fsio.rename(fsio.join(staging, name), fsio.join(out, name))
    fsio.rename(fsio.join(staging, MANIFEST_NAME), fsio.join(out, MANIFEST_NAME))
    fsio.remove_tree(staging)
