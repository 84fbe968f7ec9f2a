"""The lock that keeps two runs out of one OUT folder.

A run takes `OUT/.cocoprep.lock` before it writes anything into OUT and gives it
back after its last step, so OUT always holds exactly one run's output. The lock
file says who holds it (run id, host, process id, start time) and is created
whole in one step (a hard link of a finished temporary file, which fails if the
lock exists), so a reader never sees half of one.

A second run refuses at once and names the holder. A lock left by a process that
is gone on this host (killed, machine rebooted) is taken over with a note; a lock
from another host cannot be checked from here, so the message gives the command
that clears it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from cocoprep.errors import CocoprepError, InputError

LOCK_NAME = ".cocoprep.lock"
_TAKEOVER_TRIES = 3


@dataclass(frozen=True)
class LockInfo:
    run_id: str
    host: str
    pid: int
    started: str  # UTC, "2026-12-07 13:40:01 UTC"

    @classmethod
    def mine(cls, run_id: str) -> LockInfo:
        return cls(run_id, socket.gethostname(), os.getpid(),
                   time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))

    def describe(self) -> str:
        return f"process {self.pid} on host {self.host}, run {self.run_id}, started {self.started}"


class OutputLocked(CocoprepError):
    """Another run holds OUT's lock; nothing was written."""

    def __init__(self, out: str, holder: LockInfo | None, *, same_host: bool):
        self.out, self.holder = out, holder
        lock = os.path.join(out, LOCK_NAME)
        if holder is not None and same_host:
            msg = (f"{out} is being written by another cocoprep run ({holder.describe()}); "
                   "wait for it to finish, or write somewhere else with -o")
        else:
            who = holder.describe() if holder else "an unreadable lock file"
            msg = (f"{out} is locked by another cocoprep run ({who}); this host cannot tell "
                   f"whether it still runs. If it does not, remove the lock: rm '{lock}'")
        super().__init__(msg)


def _read(path: str) -> LockInfo | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return LockInfo(str(data["run_id"]), str(data["host"]), int(data["pid"]),
                        str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _create(path: str, info: LockInfo) -> bool:
    """Create the lock whole; False if it already exists."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(asdict(info), f)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create instead
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(info), f)
        return True
    finally:
        os.unlink(tmp)


def acquire(out: str, run_id: str) -> LockInfo:
    """Take OUT's lock (OUT exists) or raise `OutputLocked`."""
    path = os.path.join(out, LOCK_NAME)
    mine = LockInfo.mine(run_id)
    try:
        for _ in range(_TAKEOVER_TRIES):
            if _create(path, mine):
                return mine
            holder = _read(path)
            if holder is None or holder.host != mine.host or _alive(holder.pid):
                if holder is None and not os.path.exists(path):
                    continue  # released between our two looks
                raise OutputLocked(out, holder, same_host=holder is not None
                                   and holder.host == mine.host)
            # Gone on this host: move it aside (only one run can) and try again.
            aside = f"{path}.stale-{run_id}"
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue
            if _read(aside) != holder:  # another run took it over first: put theirs back
                try:
                    os.link(aside, path)
                except FileExistsError:
                    pass
                os.unlink(aside)
                continue
            os.unlink(aside)
            print(f"note: took over {path} from a run whose process is gone "
                  f"({holder.describe()})", file=sys.stderr, flush=True)
    except OSError as e:
        raise InputError(out, "a writable output directory", e.strerror or str(e)) from None
    raise OutputLocked(out, _read(path), same_host=True)


def release(out: str, info: LockInfo) -> None:
    """Give the lock back, if it is still ours."""
    path = os.path.join(out, LOCK_NAME)
    if _read(path) == info:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
