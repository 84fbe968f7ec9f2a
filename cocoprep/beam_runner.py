"""Run the writer's shard tasks as an Apache Beam pipeline (`--runner beam`).

The driver has already planned every shard (`writer.plan_shards`). Here it writes one
task file per shard into the run's staging folder under OUT, holding that shard's
items and a builder cut down to them (`Builder.for_shard`, when it has one): no
worker is sent the whole annotation index. The pipeline is only
`Create(task files) -> write each shard` (Create reshuffles the task files over the
workers): a worker reads its own task file, writes the whole shard (temp name unique
to the attempt, then a rename, as the local runner does) and a result file beside it.
The driver then reads the result files by shard name, so nothing depends on the
order Beam delivers anything in, and assembles the manifest exactly as for the
local runner.

Apache Beam is imported only here and only when this runner is asked for
(`pip install ".[beam]"` from a checkout, or `pip install "apache-beam>=2.60"`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import logging
import os
import pickle
import shlex
import signal
import sys
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from cocoprep import beam_portable, fsio, interrupt
from cocoprep.errors import CocoprepError, OutputWriteError, UsageError
from cocoprep.shardwrite import shard_job

TASKS_DIR = "tasks"
RESULTS_DIR = "results"
DEFAULT_RUNNER = "DirectRunner"
MAX_THREAD_WORKERS = 2  # above this, the default DirectRunner mode is multi_processing
MAX_THREAD_ITEMS = 5000  # and above this many items (see `default_mode`)

_DEFAULTED: "weakref.WeakSet[Any]" = weakref.WeakSet()  # options cocoprep chose
_IN_DRIVER = False  # True while shards are written in this process (in_memory, multi_threading)
_QUIET_TIMEOUT_S = 5.0  # the longest an interrupt waits for writer threads to stop


class BeamPipelineFailed(CocoprepError):
    """The pipeline failed (a worker crashed, the runner gave up); OUT is untouched."""

    exit_code = 1

    def __init__(self, stage: str, detail: str):
        self.stage, self.detail = stage, detail
        super().__init__(f"Beam pipeline failed at stage {stage!r}: {detail}; nothing was "
                         "replaced in the output")


# Loaded by `import apache_beam` only for type conversions cocoprep never uses (pandas
# DataFrames, Arrow tables): a third of its import time. Hidden from that import only:
# a later `import pandas` works as usual (Beam's DataFrame API registers its own).
_NOT_FOR_BEAM_IMPORT = ("pandas", "pyarrow")
# Set by the `cocoprep` command: the process is cocoprep's own, so Beam is imported
# without them. A program that calls the API keeps Beam's full import (its own Beam
# pipelines may batch pandas or Arrow values).
LEAN_IMPORT = False


def import_beam():
    if "apache_beam" in sys.modules and sys.modules["apache_beam"] is not None:
        return sys.modules["apache_beam"]
    hidden = [m for m in _NOT_FOR_BEAM_IMPORT if LEAN_IMPORT and m not in sys.modules]
    try:
        # Beam's optional cloud modules log warnings about missing client libraries
        # on import; they say nothing about this run.
        logging.disable(logging.WARNING)
        sys.modules.update(dict.fromkeys(hidden))  # None: `import pandas` fails at once
        import apache_beam
    except ImportError:
        raise fsio.BeamMissing("--runner beam") from None
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
        logging.disable(logging.NOTSET)
    # Beam's modules hold so many objects that the garbage collector's passes while
    # Python shuts down take about 0.25 s; frozen first (the process is ending: no
    # cycle left uncollected can matter), they are skipped.
    atexit.register(gc.freeze)
    return apache_beam


def default_mode(workers: int, items: int = 0) -> str:
    """The DirectRunner mode cocoprep picks for `items` items and `workers` workers.

    Threads skip the 1-2 s `multi_processing` spends starting SDK worker processes
    (fresh interpreters importing Beam) and run libjpeg's decode, zlib, hashing and
    file I/O side by side (the GIL released); the rest queues for the GIL: a third
    of a 640x480 photo's work, more for small images and with --masks. So threads
    win where start-up dominates (small jobs, two workers at most); processes win
    on big jobs (118k 320x240 images, 2 workers: threads 47.5 s, processes 27.2 s)
    and where more than two threads would queue for the GIL."""
    if workers <= 1:
        return "in_memory"  # the driver's own thread: no gRPC between two threads
    if workers <= MAX_THREAD_WORKERS and items <= MAX_THREAD_ITEMS:
        return "multi_threading"
    return "multi_processing"


def default_flags(workers: int, items: int = 0) -> list[str]:
    """The pipeline flags cocoprep uses when `--beam-options` is not given."""
    workers = max(1, workers)
    return [f"--runner={DEFAULT_RUNNER}",
            f"--direct_running_mode={default_mode(workers, items)}",
            f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=ERROR"]


def options_for_job(options, items: int):
    """`options` as given, or cocoprep's defaults (made before the job's size was
    known) with the DirectRunner mode for `items` items."""
    if options not in _DEFAULTED:
        return options
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    workers = options.view_as(DirectOptions).direct_num_workers or 1
    return PipelineOptions(default_flags(workers, items))


def _flags(beam_options: Sequence[str] | str | None, workers: int) -> list[str]:
    if beam_options is None or (isinstance(beam_options, str) and not beam_options.strip()):
        return default_flags(workers)
    try:
        flags = shlex.split(beam_options) if isinstance(beam_options, str) else list(beam_options)
    except ValueError as e:
        raise UsageError("--beam-options", "Beam pipeline flags such as --runner=DirectRunner",
                         f"{beam_options} ({e})") from None
    previous = None
    for token in flags:
        takes_value = previous is not None and previous.startswith("--") and "=" not in previous
        if not token.startswith("--") and not takes_value:
            raise UsageError("--beam-options", "pipeline flags of the form --name=value",
                             f"{token} (not a flag)")
        previous = token if token.startswith("--") else None
    if not any(f == "--runner" or f.startswith("--runner=") for f in flags):
        # Beam's default may fetch the Prism runner binary from the network first.
        flags.insert(0, f"--runner={DEFAULT_RUNNER}")
    return flags


def pipeline_options(beam_options: Sequence[str] | str | None, workers: int):
    """Beam `PipelineOptions` from the user's flags; an unknown flag or a bad value is
    a `UsageError` naming it. Without flags: the DirectRunner, in the mode
    `options_for_job` settles once the job's size is known."""
    import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = _flags(beam_options, workers)
    options = PipelineOptions(flags)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), _logging_off():
            known = options.get_all_options()
            everything = options.get_all_options(retain_unknown_options=True)
    except SystemExit:  # argparse rejected a value
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        detail = lines[-1].split("error: ", 1)[-1] if lines else " ".join(flags)
        raise UsageError("--beam-options", "valid Beam pipeline flags", detail) from None
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise UsageError("--beam-options", "flags Beam knows (see `python -m apache_beam."
                         "options.pipeline_options`)", "unknown flag " +
                         ", ".join(f"--{name}" for name in unknown))
    if flags == default_flags(workers):
        _DEFAULTED.add(options)  # the mode is settled once the job's size is known
    # The driver's own reads, listings and writes of remote paths (the annotation
    # files, the shard plan's listing, the task files, manifest.json) go through
    # `FileSystems` too: without the options, S3's endpoint, keys and region never
    # reach it. Set before anything is read.
    from apache_beam.io.filesystems import FileSystems

    FileSystems.set_options(options)
    return options


@contextlib.contextmanager
def _logging_off():
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"beam: {text}", file=sys.stderr, flush=True)


def _task_path(staging: str, task) -> str:
    return fsio.join(staging, TASKS_DIR, task.file + ".task")


def _result_path(staging: str, file: str) -> str:
    return fsio.join(staging, RESULTS_DIR, file + ".result")


def write_task_files(tasks: Sequence[Any], builder: Any) -> list[str]:
    """One pickled (task, builder) per shard, holding only that shard's rows."""
    paths = []
    for task in tasks:
        job = shard_job(task, builder)
        task, shard_builder = job.task, job.builder
        fsio.makedirs(fsio.join(task.staging, TASKS_DIR))
        fsio.makedirs(fsio.join(task.staging, RESULTS_DIR))
        path = _task_path(task.staging, task)
        fsio.write_all(path, pickle.dumps((task, shard_builder), protocol=4))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class _Gated:
    """A builder whose every build passes through the run's stop gate."""

    builder: Any
    gate: interrupt.StopGate

    def build(self, split: str, item: Any) -> Any:
        return self.gate.build(self.builder, split, item)


_GATE = interrupt.StopGate()


def run_task_file(path: str) -> str:
    """The worker's whole job: read its own task file, write its shard and a result
    file (temp name unique to the attempt, then a rename)."""
    from cocoprep.progress import mark_worker_process

    if not _IN_DRIVER:
        mark_worker_process()
    gate = _GATE
    try:
        return _write_task(path, gate)
    except KeyboardInterrupt as e:  # in_memory: Beam would turn it into a RuntimeError
        gate.interrupt = e
        raise


def _write_task(path: str, gate: interrupt.StopGate) -> str:
    from cocoprep.shardwrite import write_shard

    with gate.writing():
        task, builder = pickle.loads(fsio.read_all(path))
        try:
            result = write_shard(task, _Gated(builder, gate))
        except CocoprepError as e:  # Beam passes on only its text: the driver reads it
            with contextlib.suppress(Exception):
                fsio.write_all(_result_path(task.staging, task.file) + ".error",
                               pickle.dumps(e, protocol=4))
            raise
        final = _result_path(task.staging, task.file)
        tmp = f"{final}.tmp-{uuid.uuid4().hex}"
        fsio.write_all(tmp, pickle.dumps(result, protocol=4))
        fsio.rename(tmp, final)
    return task.file


@contextlib.contextmanager
def _output_captured():
    """Beam's own logging (INFO/WARNING lines from the driver and from every SDK
    worker process, which inherit file descriptor 2) stays off the terminal while the
    pipeline runs: cocoprep says what happens in its own `beam:` lines, and a failure
    is one `Error:` line. A pipe drained by a thread, not a file: a file-size limit
    (`ulimit -f`) or a full disk must not stop Beam's logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    drain = threading.Thread(target=_drain, args=(read_fd,), daemon=True)
    drain.start()
    # Beam also prints a failed bundle's traceback to `sys.stderr`: replaced
    # in-process (a notebook, a test runner), that is not file descriptor 2.
    stream, sys.stderr = sys.stderr, _Discard()
    try:
        with _logging_off():
            os.dup2(write_fd, 2)
            yield
    except KeyboardInterrupt:
        # Ctrl-C/SIGTERM abandons the pipeline and the process is about to exit:
        # Beam's gRPC server threads, and writer threads stopping at their next
        # item, then end with exceptions and tracebacks of their own after fd 2 is
        # back. They say nothing about the run, whose one line the CLI prints (from
        # the main thread).
        sys.stderr = _MainThreadOnly(stream)
        threading.excepthook = _silent
        logging.disable(logging.CRITICAL)
        _settle_log_handlers()
        raise
    finally:
        if isinstance(sys.stderr, _Discard):
            sys.stderr = stream
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_fd)  # the drain ends once no process holds the write end


class _Discard(io.TextIOBase):
    """A text stream that drops what is written to it."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def _settle_log_handlers() -> None:
    """Return once no thread is inside a logging handler: a record that passed the
    level check just before logging was turned off (formatting a traceback takes a
    while) is then written while file descriptor 2 is still the drained pipe."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            handler.acquire()
            handler.release()


class _MainThreadOnly:
    """`stream`, for the main thread only: what other threads write is dropped."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if threading.current_thread() is threading.main_thread():
            return self._stream.write(text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _silent(args) -> None:
    """A `threading.excepthook` that prints nothing."""


def _drain(read_fd: int) -> None:
    try:
        while os.read(read_fd, 1 << 16):
            pass
    finally:
        os.close(read_fd)


def _stop_local_workers() -> None:
    """SIGKILL to this process's Beam SDK worker processes (DirectRunner's
    multi_processing mode starts them through `sh -c`, so they are grandchildren).
    Linux only: elsewhere Beam's own clean-up stops them, more slowly."""
    parents: dict[int, list[tuple[int, bytes]]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                parents.setdefault(ppid, []).append((pid, f.read()))
        except (OSError, IndexError, ValueError):
            continue
    todo = [os.getpid()]
    while todo:
        for pid, cmdline in parents.get(todo.pop(), []):
            if b"apache_beam" in cmdline:
                todo.append(pid)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _worker_error(tasks: Sequence[Any]) -> CocoprepError | None:
    """The typed error a worker left beside its shard's result (the first, in shard
    order), so that a full disk reads the same with either runner."""
    for task in tasks:
        try:
            return pickle.loads(fsio.read_all(_result_path(task.staging, task.file) + ".error"))
        except Exception:
            continue
    return None


def _describe(options) -> str:
    """The runner, and for the DirectRunner its mode and number of workers."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    if runner.split(".")[-1] != "DirectRunner":
        return runner
    direct = options.view_as(DirectOptions)
    workers = direct.direct_num_workers
    workers = (os.cpu_count() or 1) if workers == 0 else (workers or 1)  # Beam's rule
    return f"{runner} ({direct.direct_running_mode or 'in_memory'}, {workers} worker(s))"


def _pipeline_failed(e: BaseException, tasks: Sequence[Any], options) -> CocoprepError:
    """The worker's own typed error if it left one, else the runner's failure in one
    line (see `beam_portable`)."""
    from apache_beam.options.pipeline_options import PortableOptions

    typed = _worker_error(tasks)
    if typed is not None:
        return typed
    written = _shards_written(tasks[0].staging) if tasks else 0
    timeout = options.view_as(PortableOptions).job_server_timeout
    return BeamPipelineFailed("WriteShards", beam_portable.failure_reason(
        e, written=written, total=len(tasks), job_server_timeout=timeout))


def _shards_written(staging: str) -> int:
    """How many shards' result files the workers have written so far."""
    try:
        return len(fsio.list_files(fsio.join(staging, RESULTS_DIR, "*.result")))
    except Exception:
        return 0


def run_shards(tasks: Sequence[Any], builder: Any, *, options, quiet: bool = False) -> list:
    """Write every task's shard with Beam; the `ShardResult`s in task order."""
    global _IN_DRIVER
    beam = import_beam()
    from apache_beam.io.filesystems import FileSystems

    total = sum(len(t.items) for t in tasks)
    options = options_for_job(options, total)
    FileSystems.set_options(options)
    _say(quiet, f"planned {len(tasks)} shard(s), {total} item(s); runner {_describe(options)}")
    try:
        paths = write_task_files(tasks, builder)
    except CocoprepError:
        raise
    except OSError as e:
        raise OutputWriteError(f"the task files in {fsio.join(tasks[0].staging, TASKS_DIR)}",
                               e) from None
    except Exception as e:
        raise BeamPipelineFailed("stage task files", beam_portable.last_line(e)) from None
    _say(quiet, f"staged {len(paths)} task file(s); writing shards")
    _IN_DRIVER = True
    # Every object alive now (Beam's modules, the driver's annotation index) outlives
    # the pipeline: kept out of the collector's full passes while it runs.
    gc.freeze()
    try:
        state = _run_pipeline(beam, options, paths, tasks[0].staging if tasks else "")
    except CocoprepError:
        raise
    except Exception as e:
        raise _pipeline_failed(e, tasks, options) from None
    finally:
        gc.unfreeze()
        _IN_DRIVER = False
    if state is not None and str(state).split(".")[-1] not in ("DONE", "UNKNOWN"):
        raise _worker_error(tasks) or BeamPipelineFailed(
            "WriteShards", f"the runner ended in state {state}")
    results = _collect(tasks)
    written = sum(r.num_examples for r in results)
    skipped = sum(len(r.skipped) for r in results)
    _say(quiet, f"wrote {len(results)} shard(s): {written} record(s), {skipped} skipped item(s)")
    return results


def _run_pipeline(beam, options, paths: list[str], staging: str):
    """`Create(task files) -> write each shard`, run to its end (Create reshuffles
    its elements: the shards spread over the workers); the runner's final state."""
    from apache_beam.options.pipeline_options import PortableOptions

    global _GATE
    _GATE = gate = interrupt.StopGate()

    def on_signal() -> None:
        # Shard writers in this process stop at their next item; local SDK worker
        # processes are stopped at once (Beam's own clean-up would first wait for
        # their bundles to finish).
        gate.stop()
        _stop_local_workers()

    beam_portable.hush_message_reader()
    try:
        with _output_captured(), interrupt.on_signal(on_signal):
            pipeline = beam.Pipeline(options=options)
            _ = (pipeline
                 | "ShardTasks" >> beam.Create(paths)  # reshuffled: spread over workers
                 | "WriteShards" >> beam.Map(run_task_file))
            try:
                result = pipeline.run()
            except Exception:
                if gate.interrupt is not None:  # the signal arrived inside a shard write
                    raise gate.interrupt from None
                raise
            try:
                return beam_portable.wait_for_job(
                    result, shards_written=lambda: _shards_written(staging),
                    stall_s=options.view_as(PortableOptions).job_server_timeout or 300)
            except KeyboardInterrupt:  # a runner that returned early: cancel the job
                with contextlib.suppress(Exception):
                    result.cancel()
                raise
            except Exception as e:
                if beam_portable.grpc_status(e) is not None:  # the job may still run
                    with contextlib.suppress(Exception):
                        result.cancel()
                raise
    except KeyboardInterrupt:
        # The caller removes the staging folder next: first let every writer thread
        # finish the file step it is in (a build blocked for ever is not waited for).
        gate.wait_quiet(_QUIET_TIMEOUT_S)
        raise


def _collect(tasks: Sequence[Any]) -> list:
    results = []
    for task in tasks:
        path = _result_path(task.staging, task.file)
        try:
            results.append(pickle.loads(fsio.read_all(path)))
        except Exception:
            raise BeamPipelineFailed("collect results", f"no result for shard {task.file} "
                                     "(the pipeline finished without writing it)") from None
    for task in tasks:  # task and result files are not part of the output
        fsio.delete([_task_path(task.staging, task), _result_path(task.staging, task.file)])
    if tasks and not fsio.is_remote(tasks[0].staging):
        for sub in (TASKS_DIR, RESULTS_DIR):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(tasks[0].staging, sub))
    return results
