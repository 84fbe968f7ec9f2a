"""The shard-writing step: the one thing a worker does, whatever the runner.

A `ShardTask` names one whole shard (its split, place and items in final order,
and the staging folder); `write_shard` builds every record with the task's
`Builder`, writes the shard (TFRecord framing from `framing.RecordWriter`: no
TensorFlow in workers) under a temporary name unique to the attempt and renames it
when complete, returning a `ShardResult`. An OSError while writing (a full disk, a
quota, a file-size limit) is one `OutputWriteError` naming the shard, in any process. The runners (`parallel.py`'s
local pool, `beam_runner.py`) import this module; neither imports the writer.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Protocol, Sequence

from cocoprep import fsio
from cocoprep.errors import OutputWriteError
from cocoprep.framing import RecordWriter
from cocoprep.manifest import shard_name
from cocoprep.progress import report_progress
from cocoprep.records import BuildResult, SkippedItem


class Builder(Protocol):
    """Turns one item into a serialized record. Must be picklable (it is sent to
    each worker once) and do its own I/O."""

    def build(self, split: str, item: Any) -> BuildResult: ...


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
    fixed: list[SkippedItem] = field(default_factory=list)


@dataclass(frozen=True)
class ShardJob:
    """A shard task with the builder that holds just its items: what a worker is
    handed, so no worker holds the whole source (COCO's polygons are gigabytes)."""

    task: ShardTask
    builder: Builder


def shard_job(task: ShardTask, builder: Builder) -> ShardJob:
    """`task` paired with `builder.for_shard(...)` (items renumbered to match) when the
    builder can cut itself down, else with `builder` itself."""
    if not hasattr(builder, "for_shard"):
        return ShardJob(task, builder)
    sub, items = builder.for_shard(task.split, task.items)
    return ShardJob(replace(task, items=items), sub)


def write_shard_job(job: ShardJob) -> ShardResult:
    return write_shard(job.task, job.builder)


@contextlib.contextmanager
def _writing(what: str) -> Iterator[None]:
    """An OSError while writing `what` (a full disk, a quota, a file-size limit) is
    one typed error naming it, in any process."""
    try:
        yield
    except OSError as e:
        raise OutputWriteError(what, e) from None


def write_shard(task: ShardTask, builder: Builder) -> ShardResult:
    """Build and write one whole shard: a temp name unique to this attempt (a runner
    may retry a task while an earlier attempt still runs), then a rename."""
    result = ShardResult(split=task.split, index=task.index, file=task.file)
    final = fsio.join(task.staging, task.file)
    tmp = f"{final}.tmp-{uuid.uuid4().hex}"
    try:
        with _writing(task.file):
            f = fsio.open_write(tmp)
        try:
            writer = RecordWriter(f)
            _write_records(writer, task, builder, result)
        finally:
            with _writing(task.file):
                f.close()
        result.sha256, result.size_bytes = writer.sha256(), writer.size_bytes
        with _writing(task.file):
            fsio.rename(tmp, final)
    except BaseException:
        with contextlib.suppress(Exception):
            fsio.delete([tmp])
        raise
    return result


def _write_records(writer: RecordWriter, task: ShardTask, builder: Builder,
                   result: ShardResult) -> None:
    pending = 0
    for item in task.items:
        built = builder.build(task.split, item)
        result.skipped.extend(built.skipped)
        result.fixed.extend(built.fixed)
        for k, v in built.counters.items():
            result.counters[k] = result.counters.get(k, 0) + v
        if built.example is not None:
            with _writing(task.file):
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
