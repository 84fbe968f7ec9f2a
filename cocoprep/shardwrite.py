"""The shard-writing step: the one thing a worker does, whatever the runner.

A `ShardTask` names one whole shard (its split, place and items in final order,
and the staging folder); `write_shard` builds every record with the task's
`Builder`, writes the shard under a temporary name unique to the attempt and
renames it when complete, returning a `ShardResult`. The runners (`parallel.py`'s
local pool, `beam_runner.py`) import this module; neither imports the writer.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from cocoprep import fsio
from cocoprep.manifest import shard_name
from cocoprep.progress import in_worker_process, report_progress
from cocoprep.records import BuildResult, SkippedItem
from cocoprep.tfimport import import_tensorflow, stderr_silenced


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


_BUILDER: Builder | None = None


def init_worker(builder: Builder | None) -> None:
    """Set the builder `write_shard` uses when it is given none (once per worker)."""
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
