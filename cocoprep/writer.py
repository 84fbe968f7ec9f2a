"""The shard plan, the commit into OUT and manifest assembly, shared by `convert`
and `split` and by both runners (which sit below: the writer hands them shard
tasks by name, they import only `shardwrite`).

Each split's items (already in their final, seeded order) are cut into contiguous
shards by `plan_shards`, once, in the driver (`plan_num_shards` is the one rule for
how many). A worker owns a whole shard (`ShardTask`): it reads and checks the images,
builds and serializes the records and writes the shard itself, so image bytes never
travel between processes. Shard contents depend only on the item order, never on the
runner or the number of workers, so output is byte-identical whatever they are.

Commit protocol (`outdir`): OUT's lock is taken and everything is written into a
hidden staging folder inside OUT named by a run id; each shard under a temporary
name unique to the attempt, renamed when complete; only when every file is finished
are the old outputs in OUT replaced (manifest.json last, by the driver). A failed,
interrupted or killed run never leaves a file that looks finished, and leaves the
previous outputs in place.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from cocoprep import fsio, interrupt, outdir, tfdsmeta
from cocoprep.errors import OutputWriteError, UsageError
from cocoprep.manifest import (
    FIXED_NAME, MANIFEST_NAME, SKIPPED_NAME, Manifest, ShardInfo, SplitInfo,
)
from cocoprep.options import WriteOptions
from cocoprep.records import SkippedItem
from cocoprep.shardwrite import Builder, ShardResult, ShardTask

DEFAULT_SHARD_SIZE = 200 * 1024 * 1024
# Without --num-shards/--shard-size, a split also gets about one shard per this many
# items (at most AUTO_SHARDS_MAX), so small sets still keep several workers busy (a
# worker owns a whole shard). Never depends on the machine.
AUTO_SHARD_IMAGES = 128
AUTO_SHARDS_MAX = 16
# The space check's margin per item over the source image bytes (features, framing,
# reports); --max-side and transcoding make the estimate an overestimate instead.
ESTIMATE_ITEM_BYTES = 1024


@dataclass(frozen=True)
class SplitPlan:
    """One split to write: its items in final order, and how many shards."""

    name: str
    items: Sequence[Any]
    num_shards: int
    listing_name: str | None = None  # e.g. "train.txt": one line per written example
    source_bytes: int = 0  # the source images' total size (0: unknown): the space check


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


# ------------------------------------------------------------------ parent side

def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def write_dataset(
    out: str | Path,
    plans: Sequence[SplitPlan],
    builder: Builder,
    *,
    manifest: Manifest,
    options: WriteOptions = WriteOptions(),
    class_order: Sequence[str] = (),
    extra_files: dict[str, str] | None = None,
    pre_skipped: Sequence[SkippedItem] = (),
) -> tuple[Manifest, list[SkippedItem]]:
    """Write every split of `plans` into `out` and return the final manifest.

    Args:
        out: a local folder, or any `scheme://` path Beam's FileSystems knows.
        manifest: everything but `splits`, `skipped` and `counters`, which are filled in.
        options: the runner (`local`: a process pool of `workers`, 1 = this process;
            `beam`: an Apache Beam pipeline, same bytes), `quiet`, Beam's flags.
        class_order: class names in label order, for the manifest's histograms.
        extra_files: name -> text written beside the shards (label maps, ...).
        pre_skipped: items the caller kept out before writing (e.g. while listing the
            source); written first to skipped.jsonl and counted in `manifest.skipped`.
    """
    out = str(out)
    beam_flags = check_runner(options, out)  # checked before OUT is touched
    staging = outdir.open_staging(out, outdir.new_run_id(), needed_bytes=estimate_bytes(plans))
    try:
        tasks = plan_shards(plans, staging.path)
        results = _run(tasks, builder, options, beam_flags)
        final, skipped = _assemble(plans, results, manifest, class_order)
        final, skipped = _with_pre_skipped(final, skipped, pre_skipped)
        final = _write_reports(staging.path, plans, results, final, skipped, extra_files or {})
        held = outdir.commit(staging)
    except BaseException:
        outdir.discard(staging)
        raise
    interrupt.raise_held(held)
    return final, skipped


def estimate_bytes(plans: Sequence[SplitPlan]) -> int | None:
    """The output size the space check expects: the source images' bytes (most of
    them are stored as they are) plus a small margin per item; None when unknown."""
    if not all(p.source_bytes for p in plans if len(p.items)):
        return None
    return sum(p.source_bytes + ESTIMATE_ITEM_BYTES * len(p.items) for p in plans)


def _run(tasks: list[ShardTask], builder: Builder, options: WriteOptions,
         beam_flags) -> list[ShardResult]:
    """Hand the shard tasks to the runner `options.runner` names."""
    if options.runner == "beam":
        from cocoprep import beam_runner

        return beam_runner.run_shards(tasks, builder, options=beam_flags, quiet=options.quiet)
    from cocoprep.parallel import run_local

    return run_local(tasks, builder, workers=workers_of(options), quiet=options.quiet)


def start_runner(options: WriteOptions) -> None:
    """Called by `convert`/`split` before they read their source: the local runner's
    worker processes get ready in the background meanwhile (`parallel.start_workers_early`)."""
    if options.runner == "local" and workers_of(options) > 1:
        from cocoprep.parallel import start_workers_early

        start_workers_early()


def workers_of(options: WriteOptions) -> int:
    """The worker count a run uses: `--workers`, else the CPU count."""
    return options.workers if options.workers is not None else default_workers()


def check_runner(options: WriteOptions, out: object = None):
    """Refuse a remote OUT without Beam, a missing Beam install and malformed Beam
    flags: called by `convert`/`split` before any input is read. Returns Beam's
    `PipelineOptions` for the beam runner, else None."""
    if options.runner == "local" and fsio.is_remote(str(out)):
        raise UsageError("--runner", f"beam for a remote output ({out})", options.runner)
    if options.runner == "beam":
        from cocoprep import beam_runner

        return beam_runner.pipeline_options(options.beam_options, workers_of(options))
    return None


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
                   final: Manifest, skipped: list[SkippedItem], extra: dict[str, str]) -> Manifest:
    """Label maps, split listings, skipped.jsonl, the TFDS metadata and manifest.json
    (returned: it lists the TFDS files) into staging."""
    files = {name: text.encode("utf-8") for name, text in extra.items()}
    final, tfds_files = tfdsmeta.with_tfds_files(final, extra)
    files.update(tfds_files)
    for plan in plans:
        if plan.listing_name:
            lines = [line for r in results if r.split == plan.name for line in r.listing]
            files[plan.listing_name] = "".join(line + "\n" for line in lines).encode("utf-8")
    files[SKIPPED_NAME] = _jsonl(skipped)
    fixed = [item for r in results for item in r.fixed]
    if fixed:
        files[FIXED_NAME] = _jsonl(fixed)
    files[MANIFEST_NAME] = final.to_json().encode("utf-8")
    for name, data in files.items():
        try:
            fsio.write_all(fsio.join(staging, name), data)
        except OSError as e:
            raise OutputWriteError(name, e) from None
    return final


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


def _jsonl(items) -> bytes:
    """skipped.jsonl / fixed.jsonl: one JSON object a line. backslashreplace: a file
    name with undecodable bytes (a lone surrogate) becomes a JSON \\udcXX escape,
    which reads back as the same name."""
    return "".join(json.dumps(item.to_json_dict(), ensure_ascii=False, sort_keys=False) + "\n"
                   for item in items).encode("utf-8", errors="backslashreplace")
