"""Ctrl-C and SIGTERM: one exception, one line, and one short step never cut in half.

The command line runs every command inside `signals_raise()`: the first SIGINT or
SIGTERM raises `Interrupted` in the main thread (wherever it waits: the writer's
parent loop polls its workers, so it is never stuck in an uninterruptible wait); the
writer's clean-up then terminates its workers and removes its staging folder, and
the command line prints one line and exits 128 + the signal number (130 for SIGINT,
143 for SIGTERM). Later signals are ignored while that clean-up runs, so a second
Ctrl-C cannot cut it short.

`deferred()` covers the one step that must not stop halfway: the swap of finished
files into OUT. A signal inside it is held and raised right after it, when OUT
holds the complete new output (`out_changed()` then says so).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_FORWARD_AFTER_S = 0.05
_stopping = False
_out_changed = False
_seen = 0  # signals the main thread has handled
_ON_SIGNAL: list[Callable[[], None]] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; a KeyboardInterrupt, so nothing catches it by accident."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise(signum, frame) -> None:
    global _stopping, _seen
    _seen += 1
    if _stopping:  # the first signal's clean-up is running: let it finish
        return
    _stopping = True
    for callback in reversed(_ON_SIGNAL):
        callback()
    raise Interrupted(signum)


@contextmanager
def on_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` inside the signal handler, before `Interrupted` is raised: for
    work that must stop before any clean-up code runs (e.g. a library whose own
    clean-up would first wait for its workers to finish)."""
    _ON_SIGNAL.append(callback)
    try:
        yield
    finally:
        _ON_SIGNAL.remove(callback)


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` inside the block (main thread only)."""
    global _stopping, _out_changed
    if not _main_thread():
        yield
        return
    _stopping, _out_changed = False, False
    old = {s: signal.signal(s, _raise) for s in _SIGNALS}
    try:
        with _main_thread_woken():
            yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def _main_thread_woken() -> Iterator[None]:
    """Make sure the main thread sees a signal even when the OS delivers it to
    another thread.

    Python runs handlers in the main thread only, and a main thread blocked in an
    untimed wait (a lock, a future's result: Beam's DirectRunner waits so) wakes up
    only for a signal delivered to itself. The kernel picks any thread; with Beam's
    dozens of threads, Ctrl-C was then lost until the wait ended, or forever if the
    workers it waited for had died of the same signal. A watcher thread learns of
    every signal through the wakeup fd and, when the main thread has not handled it
    shortly after, sends it to the main thread itself.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:
        os.close(read_fd)
        os.close(write_fd)
        yield
        return
    stop = threading.Event()
    watcher = threading.Thread(target=_forward, args=(read_fd, stop), daemon=True,
                               name="cocoprep-signals")
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        stop.set()
        os.write(write_fd, b"\0")
        watcher.join()
        os.close(read_fd)
        os.close(write_fd)


def _forward(read_fd: int, stop: threading.Event) -> None:
    main = threading.main_thread().ident
    while True:
        data = os.read(read_fd, 64)
        if stop.is_set() or not data:
            return
        for signum in set(data) & set(_SIGNALS):
            before = _seen
            time.sleep(_FORWARD_AFTER_S)
            if _seen == before and not stop.is_set():
                signal.pthread_kill(main, signum)


@dataclass
class Held:
    """The first signal that arrived during a `deferred()` block, if any."""

    signum: int | None = None


@contextmanager
def deferred() -> Iterator[Held]:
    """Hold SIGINT and SIGTERM until the block ends; the caller raises them after.

    Python runs signal handlers in the main thread only, and this handler just
    records the signal: whichever thread the OS delivers it to, the block runs to
    its end.
    """
    held = Held()
    if not _main_thread():
        yield held
        return

    def hold(signum, frame):
        global _seen
        _seen += 1
        held.signum = held.signum or signum

    old = {s: signal.signal(s, hold) for s in _SIGNALS}
    try:
        yield held
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def raise_held(held: Held) -> None:
    """Raise the signal a `deferred()` block held, if any (later ones are ignored)."""
    global _stopping
    if held.signum is not None:
        _stopping = True
        raise Interrupted(held.signum)


def mark_out_changed() -> None:
    """Called once the new output is in OUT: an interrupt after this point must not
    claim that OUT was left as it was."""
    global _out_changed
    _out_changed = True


def out_changed() -> bool:
    return _out_changed


def message(writes_out: bool) -> str:
    """The one line printed for an interrupted command."""
    if not writes_out:
        return "Interrupted"
    if _out_changed:
        return "Interrupted after the new output was complete: OUT holds it"
    return "Interrupted: OUT was not changed"


class Stopped(Exception):
    """Raised in a worker thread at its next item once the run is stopping."""


class StopGate:
    """How worker threads stop after Ctrl-C/SIGTERM: a thread cannot be killed, so
    each stops itself at its next item (Beam's DirectRunner in its in-process modes
    runs the shard writers as threads).

    A worker is *outside* while it does a file step (writes records, renames, writes
    a result) and *inside* while it builds one item, which may block for ever (a named
    pipe, a hung mount). Once `stop()` is called (from the signal handler), a worker
    raises `Stopped` when it enters or leaves a build; so once no worker is outside,
    none will change a file again, and the caller may remove what they wrote."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outside = 0
        self.stopping = False
        self.interrupt: KeyboardInterrupt | None = None  # one raised inside a worker

    def stop(self) -> None:  # runs in a signal handler: no lock
        self.stopping = True

    def _count(self, n: int) -> None:
        with self._lock:
            self._outside += n

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a worker's whole task: it is outside except inside `build`."""
        self._count(+1)
        try:
            yield
        finally:
            self._count(-1)

    def build(self, builder, split: str, item):
        """`builder.build(split, item)`, unless the run is stopping."""
        if self.stopping:
            raise Stopped("stopped")
        self._count(-1)
        try:
            built = builder.build(split, item)
        except BaseException:
            self._count(+1)
            raise
        self._count(+1)
        if self.stopping:  # built as the signal came: not handed on to be written
            raise Stopped("stopped")
        return built

    def wait_quiet(self, timeout: float) -> bool:
        """Wait until no worker is outside a build: True then, False after `timeout`
        seconds (a file step that hangs)."""
        deadline = time.monotonic() + timeout
        while self._outside > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True
