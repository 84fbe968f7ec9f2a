"""Run one function over a list of tasks in worker processes, with one progress bar.

Used by the local runner (one task = one shard to write) and by verify (one task =
one shard to check). Workers report progress through `progress.report_progress(n)`,
which goes straight to the bar in-process and through a queue from a pool.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Callable, Sequence

from cocoprep.errors import CocoprepError
from cocoprep.progress import mark_worker_process, set_reporter


class WorkerDied(CocoprepError):
    """A worker process ended without finishing its task."""

    exit_code = 1

    def __init__(self):
        super().__init__(
            "a worker process died before finishing (killed, e.g. for lack of memory, or "
            "a crash in a native library); nothing was replaced in the output. Re-run "
            "with --workers 1 to see where it happens"
        )


def _pool_init(queue, init, init_args) -> None:
    set_reporter(queue.put)
    mark_worker_process()
    if init is not None:
        init(*init_args)


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


def map_tasks(func: Callable, tasks: Sequence, *, workers: int, bar,
              init: Callable | None = None, init_args: tuple = ()) -> list:
    """`[func(t) for t in tasks]`, in `workers` processes when more than one.

    `init(*init_args)` runs once in each worker (and once here when in-process);
    results come back in task order.
    """
    if workers <= 1 or len(tasks) <= 1:
        set_reporter(bar.update)
        try:
            if init is not None:
                init(*init_args)
            return [func(t) for t in tasks]
        finally:
            set_reporter(None)
    # forkserver: workers start from a clean interpreter, never from a parent that
    # may already have TensorFlow's runtime threads running.
    ctx = mp.get_context("forkserver" if sys.platform != "win32" else "spawn")
    queue = ctx.Queue()
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            try:
                n = queue.get(timeout=0.1)
            except Exception:
                continue
            bar.update(n)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        # An executor, not a Pool: when a worker dies (killed for memory, a crash in
        # a native library) a Pool waits forever for its task; an executor fails.
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx,
                                 initializer=_pool_init,
                                 initargs=(queue, init, init_args)) as executor:
            with _main_module_hidden():  # workers are started while tasks are submitted
                futures = [executor.submit(func, t) for t in tasks]
            results = [f.result() for f in futures]
    except BrokenProcessPool:
        raise WorkerDied() from None
    finally:
        stop.set()
        thread.join()
    while not queue.empty():
        bar.update(queue.get())
    return results


def run_local(tasks: Sequence, builder, *, workers: int, quiet: bool) -> list:
    """The local runner: every shard task written by `workers` processes (1: here)."""
    from cocoprep.progress import progress_bar
    from cocoprep.shardwrite import init_worker, write_shard

    total = sum(len(t.items) for t in tasks)
    with progress_bar(total, "writing", "img", quiet) as bar:
        try:
            return map_tasks(write_shard, tasks, workers=workers, bar=bar,
                             init=init_worker, init_args=(builder,))
        finally:
            init_worker(None)
