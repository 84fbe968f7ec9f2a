"""OUT's commit protocol: the space check, the lock, the run's staging folder, and
the short swap of finished files into OUT.

Everything a run writes goes into a hidden staging folder inside OUT named by its
run id; only when every file is finished are the old outputs in OUT replaced
(manifest.json last), in one short step that signals cannot cut in half
(`interrupt.deferred`). A failed, interrupted or killed run never leaves a file that
looks finished, and leaves the previous outputs as they were.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cocoprep import fsio, interrupt, outlock, tfdsmeta
from cocoprep.errors import CocoprepError, InputError, OutputWriteError
from cocoprep.manifest import FIXED_NAME, MANIFEST_NAME, REPORT_NAME, SKIPPED_NAME, Manifest

STAGING_PREFIX = ".cocoprep-staging-"
# Remote OUT has no lock: a staging folder nobody has written to for this long
# belongs to a dead run (killed, or its machine gone); a live run writes at least a
# shard in that time. A local OUT's lock says it at once.
STALE_AFTER_S = 6 * 3600
_OUTPUT_PATTERNS = ("*.tfrecord-?????-of-?????", MANIFEST_NAME, SKIPPED_NAME, FIXED_NAME,
                    REPORT_NAME, "label_map.pbtxt", "labels.txt") + tfdsmeta.FILE_PATTERNS


class NotEnoughSpace(CocoprepError):
    """The run's estimated output does not fit on OUT's disk; nothing was written."""

    def __init__(self, out: str, needed: int, free: int):
        self.out, self.needed, self.free = out, needed, free
        super().__init__(f"OUT needs about {human_bytes(needed)} (estimated from the source "
                         f"images' size); {human_bytes(free)} free on the disk holding {out}")


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Staging:
    """This run's staging folder in OUT, and what to undo if the run fails."""

    out: str
    path: str
    created_out: bool  # OUT did not exist before this run
    lock: outlock.LockInfo | None  # None for a remote OUT


def new_run_id() -> str:
    """`<unix seconds>-<random>`: unique across machines, and says when it started."""
    return f"{int(time.time())}-{uuid.uuid4().hex[:12]}"


def check_space(out: str, needed: int) -> None:
    """Refuse a run whose estimated output clearly cannot fit on OUT's disk."""
    probe = Path(out).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: the write itself will say if the disk fills
    if needed > free:
        raise NotEnoughSpace(out, needed, free)


def open_staging(out: str, run_id: str, *, needed_bytes: int | None = None) -> Staging:
    """Check space, make OUT, take its lock and make this run's staging folder."""
    if fsio.is_remote(out):
        _clean_stale_staging(out, run_id)
        return Staging(out, fsio.join(out, STAGING_PREFIX + run_id), False, None)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(out, "an output directory", "a file")
    if needed_bytes:
        check_space(out, needed_bytes)
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        found = e.strerror or str(e)
        parent = _nearest_existing(out)
        if (e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and parent is not None
                and os.path.isdir(parent) and os.path.abspath(parent) != os.path.abspath(out)):
            found += f" in {parent} (where OUT would be made)"
        raise InputError(out, "a writable output directory", found) from None
    staging = Staging(out, os.path.join(out, STAGING_PREFIX + run_id), created, None)
    try:
        staging = Staging(out, staging.path, created, outlock.acquire(out, run_id))
        for old in Path(out).glob(STAGING_PREFIX + "*"):  # the lock says their runs are gone
            shutil.rmtree(old, ignore_errors=True)
        os.mkdir(staging.path)
    except OSError as e:
        discard(staging)
        raise InputError(out, "a writable output directory", e.strerror or str(e)) from None
    except BaseException:
        discard(staging)
        raise
    return staging


def _nearest_existing(path: str) -> str | None:
    """The closest folder above `path` that exists (where a missing OUT is made)."""
    here = os.path.abspath(path)
    while not os.path.exists(here):
        up = os.path.dirname(here)
        if up == here:
            return None
        here = up
    return here


def discard(staging: Staging) -> None:
    """Undo a run that did not finish: its staging folder, its lock, and OUT itself
    when the run created it."""
    fsio.remove_tree(staging.path)
    if staging.lock is not None:
        outlock.release(staging.out, staging.lock)
    if staging.created_out:
        try:
            os.rmdir(staging.out)
        except OSError:
            pass


def commit(staging: Staging) -> interrupt.Held:
    """Swap the finished files into OUT and give the lock back. Returns the signal
    held during the swap, for the caller to raise once OUT is complete."""
    with interrupt.deferred() as held:
        try:
            _swap_in(staging.out, staging.path)
        except OSError as e:
            raise OutputWriteError(staging.out, e) from None
        interrupt.mark_out_changed()
        fsio.remove_tree(staging.path)
        if staging.lock is not None:
            outlock.release(staging.out, staging.lock)
    return held


def _old_outputs(out: str) -> list[str]:
    old: set[str] = set()
    for pattern in _OUTPUT_PATTERNS:
        old.update(p for p, _, _ in fsio.list_files(fsio.join(out, pattern)))
    try:
        previous = Manifest.from_json(fsio.read_all(fsio.join(out, MANIFEST_NAME)).decode("utf-8"))
        for split in previous.splits:
            old.update(p for p, _, _ in fsio.list_files(fsio.join(out, f"{split}.txt")))
    except Exception:
        pass
    return sorted(old)


def _swap_in(out: str, staging: str) -> None:
    """Replace the old outputs with the finished new ones; manifest.json goes last
    so that a manifest on disk always describes complete shards."""
    staged = sorted(p for p, _, _ in fsio.list_files(fsio.join(staging, "*")))
    names = [p[len(staging):].lstrip("/" + os.sep) for p in staged]
    fsio.delete(_old_outputs(out))
    for name in names:
        if name != MANIFEST_NAME:
            fsio.rename(fsio.join(staging, name), fsio.join(out, name))
    fsio.rename(fsio.join(staging, MANIFEST_NAME), fsio.join(out, MANIFEST_NAME))


def _run_started(name: str) -> float | None:
    head = name[len(STAGING_PREFIX):].split("-", 1)[0]
    return float(head) if head.isdigit() else None


def _clean_stale_staging(out: str, run_id: str, now: float | None = None) -> None:
    """Remove staging folders of other runs in a remote OUT that nothing has written
    to for STALE_AFTER_S (age of their newest file, else of their run id)."""
    now = time.time() if now is None else now
    found: dict[str, list[float]] = {}
    for path, _, mtime in fsio.list_files(fsio.join(out, STAGING_PREFIX + "*", "**")):
        rel = path[len(out):].lstrip("/" + os.sep)
        found.setdefault(rel.replace(os.sep, "/").split("/", 1)[0], []).append(mtime or 0.0)
    if not fsio.is_remote(out):
        for p in Path(out).glob(STAGING_PREFIX + "*"):
            found.setdefault(p.name, []).append(p.stat().st_mtime)
    for name, times in sorted(found.items()):
        if name == STAGING_PREFIX + run_id:
            continue
        started = _run_started(name)
        last = max(times + ([started] if started is not None else []))
        if now - last > STALE_AFTER_S:
            fsio.remove_tree(fsio.join(out, name))
