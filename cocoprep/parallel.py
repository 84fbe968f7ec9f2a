"""Run one function over a list of tasks in worker processes, with one progress bar.

Used by the local runner (one task = one shard to write) and by verify (one task =
one shard to check). Workers report progress through `progress.report_progress(n)`,
which goes straight to the bar in-process and through the result queue from a pool.

The pool is small and kept in the parent's hands: the parent hands each worker one
task at a time, so it always knows which task a worker holds. A worker that dies
(killed by the OS, a crash in a native library) is named with its signal and its
task as soon as it is seen gone (looked for every `_POLL_S`, however busy the result
queue is: never after a timeout); on any error or interrupt in the parent (Ctrl-C,
SIGTERM) every worker is terminated and waited for before the exception goes on, so
the caller can remove what they wrote. Workers ignore SIGINT (the terminal sends it
to the whole process group; the parent decides) and end themselves when the parent
is gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections import abc, deque
from contextlib import contextmanager
from typing import Any, Callable, Sequence

from cocoprep.errors import CocoprepError
from cocoprep.progress import mark_worker_process, set_reporter

_POLL_S = 0.1  # how often the parent looks for dead workers while it waits
_STOP_GRACE_S = 1.0  # SIGTERM, then SIGKILL after this long


class WorkerDied(CocoprepError):
    """A worker process ended without finishing its task."""

    exit_code = 1

    def __init__(self, exitcode: int | None, doing: str | None = None):
        self.exitcode, self.doing = exitcode, doing
        if exitcode is not None and exitcode < 0:
            try:
                name = signal.Signals(-exitcode).name
            except ValueError:
                name = f"signal {-exitcode}"
            how = f"was killed by {name}"
            why = {"SIGKILL": " (often the system running out of memory)",
                   "SIGSEGV": " (a crash in a native library)",
                   "SIGABRT": " (a crash in a native library)",
                   "SIGBUS": " (a crash in a native library, or a file cut short "
                             "while mapped)"}.get(name, "")
        else:
            how, why = f"exited with status {exitcode}", ""
        where = f" while {doing}" if doing else ""
        super().__init__(
            f"a worker process {how}{where}{why}; nothing was replaced in the output. "
            "Re-run with --workers 1 to see where it happens"
        )


@contextmanager
def _main_module_hidden():
    """Start workers without re-running the user's `__main__` script in them.

    Workers run cocoprep's own functions only, so they never need `__main__`; left
    visible, a script that calls `convert_coco(...)` without an
    `if __name__ == "__main__":` guard would be re-run in every worker and fail
    there. (A custom writer Builder must therefore live in an importable module.)
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


# ------------------------------------------------------------------ worker side

def _portable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a RuntimeError saying it."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _end_with_parent() -> None:
    parent = mp.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)


def _worker_main(wid: int, func, init, init_args, tasks, results) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with_parent, daemon=True).start()
    set_reporter(lambda n: results.put(("progress", wid, None, n)))
    mark_worker_process()
    try:
        if init is not None:
            init(*init_args)
        while (item := tasks.get()) is not None:
            index, task = item
            results.put(("done", wid, index, func(task)))
    except BaseException as e:  # sent to the parent, which raises it
        results.put(("error", wid, None, _portable(e)))
    finally:
        results.close()
        results.join_thread()


# ------------------------------------------------------------------ parent side

# What every worker needs, imported once by the fork server, so that each worker it
# forks starts with them (numpy, Pillow and the writer: about 0.3 s of CPU a worker).
# None of them starts a thread or imports TensorFlow.
_PRELOAD = ["cocoprep.builders", "cocoprep.shardwrite"]


def _context():
    # forkserver: workers start from a clean interpreter, never from a parent that
    # may already have TensorFlow's runtime threads running.
    if sys.platform == "win32":
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def start_workers_early() -> None:
    """Start the fork server now, in the background: it imports what workers need
    while this process reads its source (a COCO file takes seconds), so the pool
    starts at once when the shards are planned. Does nothing where there is none."""
    if sys.platform == "win32":
        return
    from multiprocessing import forkserver

    _context()
    with _main_module_hidden():
        forkserver.ensure_running()


class _Pool:
    def __init__(self, ctx, size: int, func, init, init_args):
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(size)]
        self.procs = [ctx.Process(target=_worker_main, daemon=True,
                                  args=(wid, func, init, init_args, inbox, self.results))
                      for wid, inbox in enumerate(self.inboxes)]
        with _main_module_hidden():
            for p in self.procs:
                p.start()

    def run(self, tasks: Sequence, bar, describe: Callable[[Any], str] | None) -> list:
        out: list = [None] * len(tasks)
        todo = deque(range(len(tasks)))
        busy: dict[int, int] = {}
        for wid in range(len(self.procs)):
            self._feed(wid, todo, busy, tasks)
        remaining = len(tasks)
        next_check = time.monotonic() + _POLL_S
        while remaining:
            # Dead workers are looked for at least every _POLL_S, also while others
            # keep the queue busy: a death never waits for the queue to go quiet.
            try:
                message = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                message = None
            if message is not None:
                remaining -= self._handle(message, out, todo, busy, tasks, bar)
            if message is None or time.monotonic() >= next_check:
                remaining -= self._check_alive(out, todo, busy, tasks, bar, describe)
                next_check = time.monotonic() + _POLL_S
        return out

    def _handle(self, message: tuple, out: list, todo: deque, busy: dict, tasks: Sequence,
                bar) -> int:
        """Act on one worker message; 1 when it finished a task."""
        kind, wid, index, value = message
        if kind == "progress":
            bar.update(value)
            return 0
        if kind == "error":
            raise value
        out[index] = value
        self._feed(wid, todo, busy, tasks)
        return 1

    def _feed(self, wid: int, todo: deque, busy: dict, tasks: Sequence) -> None:
        busy.pop(wid, None)
        if todo:
            busy[wid] = todo.popleft()
            self.inboxes[wid].put((busy[wid], tasks[busy[wid]]))
        else:
            self.inboxes[wid].put(None)

    def _check_alive(self, out: list, todo: deque, busy: dict, tasks: Sequence, bar,
                     describe) -> int:
        """Raise `WorkerDied` for a worker that ended (killed by a signal or exited,
        whatever its status) while holding a task. What it sent before it ended is
        read first (a worker flushes its messages before it exits), so its own error
        or finished task wins. Returns the tasks finished meanwhile."""
        dead = [wid for wid, p in enumerate(self.procs)
                if p.exitcode is not None and wid in busy]
        if not dead:
            return 0
        finished = 0
        while True:
            try:
                message = self.results.get_nowait()
            except queue.Empty:
                break
            finished += self._handle(message, out, todo, busy, tasks, bar)
        for wid in dead:
            if wid in busy:
                task = tasks[busy[wid]]
                raise WorkerDied(self.procs[wid].exitcode, describe(task) if describe else None)
        return finished

    def stop(self) -> None:
        """Terminate and wait for every worker still running (SIGKILL if needed)."""
        for p in self.procs:
            if p.exitcode is None:
                p.terminate()
        for p in self.procs:
            p.join(_STOP_GRACE_S)
            if p.exitcode is None:
                p.kill()
                p.join()
        for q in (self.results, *self.inboxes):
            q.cancel_join_thread()
            q.close()


def map_tasks(func: Callable, tasks: Sequence, *, workers: int, bar,
              init: Callable | None = None, init_args: tuple = (),
              describe: Callable[[Any], str] | None = None) -> list:
    """`[func(t) for t in tasks]`, in `workers` processes when more than one.

    `init(*init_args)` runs once in each worker (and once here when in-process);
    results come back in task order. `describe(task)` says what a worker was doing
    ("writing train.tfrecord-00003-of-00016") when it dies.
    """
    if workers <= 1 or len(tasks) <= 1:
        set_reporter(bar.update)
        try:
            if init is not None:
                init(*init_args)
            return [func(t) for t in tasks]
        finally:
            set_reporter(None)
    pool = _Pool(_context(), min(workers, len(tasks)), func, init, init_args)
    try:
        return pool.run(tasks, bar, describe)
    finally:
        pool.stop()


class _Jobs(abc.Sequence):
    """Each shard task with the builder cut down to its items, made when a worker
    asks for it (never all at once)."""

    def __init__(self, tasks: Sequence, builder):
        self.tasks, self.builder = tasks, builder

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i):
        from cocoprep.shardwrite import shard_job

        return shard_job(self.tasks[i], self.builder)


def run_local(tasks: Sequence, builder, *, workers: int, quiet: bool) -> list:
    """The local runner: every shard task written by `workers` processes (1: here).
    A worker gets each shard's own slice of the source with the task, so no process
    but this one holds the whole of it."""
    from cocoprep.progress import progress_bar
    from cocoprep.shardwrite import write_shard_job

    total = sum(len(t.items) for t in tasks)
    with progress_bar(total, "writing", "img", quiet) as bar:
        return map_tasks(write_shard_job, _Jobs(tasks, builder), workers=workers, bar=bar,
                         describe=lambda job: f"writing {job.task.file}")
