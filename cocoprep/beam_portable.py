"""Beam's portable path (a job service and SDK workers of their own, as on Flink and
Spark): waiting for the job, and one line for a job that failed.

Beam hands the driver a worker's own exception text when an SDK worker ran and
failed (a shard's crash, `No module named 'cocoprep'` on the workers): its last
line names the error. A worker whose Python cannot import Beam never connects and
sends nothing: its error stays in the worker pool's or task manager's log, and the
job service waits. The driver then gives up when
the PortableRunner's deadline on the job's state stream (`--job_server_timeout`,
300 s by default) passes, with a gRPC error whose text ends in `>`. That deadline
also ends the wait for a healthy job that runs longer: once a shard is written the
workers are known to run, and the job's state is then asked for every few seconds
until it ends, as long as a new shard appears within each such period. Whether any
shard was written tells the two apart.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

WORKER_CHECK_HINT = ("convert a few images first with the same --beam-options; the "
                     "workers' own error, e.g. \"No module named 'apache_beam'\", is in "
                     "the worker pool's or task manager's log")


def grpc_status(e: BaseException) -> tuple[str, str] | None:
    """(status name, details) of a gRPC error, else None (no import of grpc)."""
    code, details = getattr(e, "code", None), getattr(e, "details", None)
    if not callable(code) or not callable(details):
        return None
    try:
        status, text = code(), details()
    except Exception:
        return None
    return getattr(status, "name", str(status)), str(text or "").strip()


POLL_S = 5.0  # how often the job's state is asked for past the deadline
_ENDED = ("DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED")


def wait_for_job(result: Any, *, shards_written: Callable[[], int], stall_s: float,
                 poll_s: float = POLL_S):
    """`result.wait_until_finish()`; past Beam's deadline on the job's state stream,
    while the job is seen working (a shard written, and another within every
    `stall_s` seconds), the job's state every `poll_s` seconds until it ends. The
    job's final state; else the deadline's error (no shard written, no new shard
    for `stall_s`, or the job service no longer answers)."""
    try:
        return result.wait_until_finish()
    except Exception as e:
        status = grpc_status(e)
        if status is None or status[0] != "DEADLINE_EXCEEDED":
            raise
        written = shards_written()
        if written == 0:
            raise
        deadline = e
    last_change = time.monotonic()
    while True:
        try:
            state = result.state  # one request to the job service, without a deadline
        except Exception:
            raise deadline from None
        if str(state).split(".")[-1] in _ENDED:
            return state
        now, count = time.monotonic(), shards_written()
        if count != written:
            written, last_change = count, now
        elif now - last_change > stall_s:
            raise deadline
        time.sleep(poll_s)


def last_line(e: BaseException) -> str:
    """The last non-empty line of an exception's text (Beam wraps the worker's
    exception; its last line names the original error)."""
    text = str(e).strip() or type(e).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def failure_reason(e: BaseException, *, written: int, total: int,
                   job_server_timeout: int | None) -> str:
    """What to print after `Beam pipeline failed at stage 'WriteShards': `.
    `written`: shards whose result the workers had written when it failed."""
    status = grpc_status(e)
    if status is None:
        return last_line(e)
    name, details = status
    if name != "DEADLINE_EXCEEDED" or job_server_timeout is None:
        return f"the job service answered {name}" + (f" ({details})" if details else "")
    limit = f"--job_server_timeout={job_server_timeout}"
    if written == 0:
        return (f"no SDK worker wrote a shard within {limit} s (Beam's deadline for the "
                f"job's state): the workers most likely cannot start; {WORKER_CHECK_HINT}")
    return (f"the job ran past {limit} s (Beam's deadline for the job's state) with "
            f"{written} of {total} shard(s) written: raise it above the job's length")


_READER_THREAD = "wait_until_finish_read"  # PortableRunner's reader of job messages


def hush_message_reader() -> None:
    """PortableRunner reads the job's messages in a thread of its own, which dies with
    a traceback when the job service's deadline passes, often after the run's one
    `Error:` line (which already says what happened): that thread's end is silent."""
    previous = threading.excepthook
    if getattr(previous, "cocoprep_hush", False):
        return

    def hook(args) -> None:
        if args.thread is None or args.thread.name != _READER_THREAD:
            previous(args)

    hook.cocoprep_hush = True  # type: ignore[attr-defined]
    threading.excepthook = hook
