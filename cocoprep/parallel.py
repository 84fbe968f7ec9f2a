"""Run one function over a list of tasks in worker processes, with one progress bar.

Used by the writer (one task = one shard to write) and by verify (one task = one
shard to check). Workers report progress through `report_progress(n)`, which goes
straight to the bar in-process and through a queue from a pool.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Callable, Sequence

from cocoprep.errors import CocoprepError

_REPORT: Callable[[int], Any] | None = None


class WorkerDied(CocoprepError):
    """A worker process ended without finishing its task."""

    exit_code = 1

    def __init__(self):
        super().__init__(
            "a worker process died before finishing (killed, e.g. for lack of memory, or "
            "a crash in a native library); nothing was replaced in the output. Re-run "
            "with --workers 1 to see where it happens"
        )
_IN_POOL = False


def report_progress(n: int) -> None:
    """Advance the parent's progress bar by `n` (a no-op when there is none)."""
    if _REPORT is not None and n:
        _REPORT(n)


def in_worker_process() -> bool:
    """True inside a pool worker started by `map_tasks` (or a Beam worker process)."""
    return _IN_POOL


def mark_worker_process() -> None:
    """Called by a runner in a process of its own that runs only cocoprep tasks."""
    global _IN_POOL
    _IN_POOL = True


def progress_bar(total: int | None, desc: str, unit: str, quiet: bool, **kwargs):
    """The project's tqdm bar: silent with `quiet` or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, smoothing=0.1,
                disable=quiet or not sys.stderr.isatty(), **kwargs)


def _pool_init(queue, init, init_args) -> None:
    global _REPORT, _IN_POOL
    _REPORT, _IN_POOL = queue.put, True
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
    global _REPORT
    if workers <= 1 or len(tasks) <= 1:
        _REPORT = bar.update
        try:
            if init is not None:
                init(*init_args)
            return [func(t) for t in tasks]
        finally:
            _REPORT = None
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
