"""The one entry pipeline behind `convert` and `split`:

    source -> finished splits -> shard plan -> runner -> manifest -> never-silent check

`convert.py` and `split.py` each turn their source into a `WriteJob` (the plans,
the builder and the manifest template); `run_job` does the rest, the same way for
every task, format and runner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from cocoprep import fsio
from cocoprep.errors import StrictModeError
from cocoprep.losses import check_losses
from cocoprep.manifest import SKIPPED_NAME, Manifest
from cocoprep.options import WriteOptions
from cocoprep.records import SkippedItem
from cocoprep.shardwrite import Builder
from cocoprep.writer import SplitPlan, plan_num_shards, write_dataset


@dataclass(frozen=True)
class WriteJob:
    """Everything a task hands the writer: plans, builder, manifest template, the
    files beside the shards, what the source skipped and where missing files may be."""

    plans: tuple[SplitPlan, ...]
    builder: Builder
    manifest: Manifest
    class_order: tuple[str, ...] = ()
    extra_files: dict[str, str] = field(default_factory=dict)
    pre_skipped: tuple[SkippedItem, ...] = ()
    missing_hint: Callable[[Any, Sequence[SkippedItem]], str | None] | None = None
    fixes: dict[str, str] = field(default_factory=dict)  # per reason, over `losses`' own


def source_bytes(root: str | Path, names: Sequence[Any]) -> int:
    """Bytes of the files `names` under `root` (missing ones count 0): the shard-count
    and space-check input. A `scheme://` root is listed once instead of a stat per file."""
    if fsio.is_remote(str(root)):
        prefix = str(root).rstrip("/") + "/"
        listed = fsio.list_files(fsio.join(str(root), "**"))
        sizes = {p[len(prefix):]: size for p, size, _ in listed}
        return sum(sizes.get(n, 0) for n in names if isinstance(n, str))
    total = 0
    for name in names:
        try:
            total += os.stat(os.path.join(root, name)).st_size
        except (OSError, ValueError, TypeError):
            pass
    return total


def plan_split(name: str, items: Sequence[Any], *, total_bytes: int, options: WriteOptions,
               listing_name: str | None = None) -> SplitPlan:
    """A split's plan under the shard-count rule (`writer.plan_num_shards`)."""
    count = plan_num_shards(len(items), total_bytes, num_shards=options.num_shards,
                            shard_size=options.shard_size)
    return SplitPlan(name=name, items=items, num_shards=count, listing_name=listing_name,
                     source_bytes=total_bytes)


def run_job(out: str | Path, job: WriteJob, options: WriteOptions) -> Manifest:
    """Write `job` into `out`, then apply the never-silent rule and `--strict`."""
    manifest, skipped = write_dataset(
        out, job.plans, job.builder, manifest=job.manifest, options=options,
        class_order=job.class_order, extra_files=job.extra_files, pre_skipped=job.pre_skipped,
    )
    check_losses(manifest, skipped, out=out, allow_partial=options.allow_partial,
                 hint=job.missing_hint, fixes=job.fixes)
    if options.strict and skipped:
        err = StrictModeError(len(skipped), fsio.join(str(out), SKIPPED_NAME))
        err.manifest = manifest
        raise err
    return manifest
