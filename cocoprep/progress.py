"""Progress bars and progress reports: part of the ground, used by sources, the
writer, the runners and verify alike.

A worker advances its parent's bar with `report_progress(n)`; the runner decides
where that goes (straight to the bar in-process, through a queue from a pool) by
calling `set_reporter`.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

_REPORT: Callable[[int], Any] | None = None
_IN_WORKER = False


def progress_bar(total: int | None, desc: str, unit: str, quiet: bool, **kwargs):
    """The project's tqdm bar: silent with `quiet` or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, smoothing=0.1,
                disable=quiet or not sys.stderr.isatty(), **kwargs)


def set_reporter(report: Callable[[int], Any] | None) -> None:
    """Where `report_progress` sends its counts in this process (None: nowhere)."""
    global _REPORT
    _REPORT = report


def report_progress(n: int) -> None:
    """Advance the parent's progress bar by `n` (a no-op when there is none)."""
    if _REPORT is not None and n:
        _REPORT(n)


def in_worker_process() -> bool:
    """True inside a pool worker (or a Beam worker process) that runs only cocoprep tasks."""
    return _IN_WORKER


def mark_worker_process() -> None:
    """Called by a runner in a process of its own that runs only cocoprep tasks."""
    global _IN_WORKER
    _IN_WORKER = True
