"""`--runner beam` without `--beam-options`: which DirectRunner mode cocoprep picks,
and how shard writers running as threads of the cocoprep process stop on Ctrl-C
(a thread cannot be killed: each stops itself at its next item). The whole-process
signal, full-disk and failed-worker cases are in test_faults.py and test_beam.py."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from cocoprep import beam_runner
from cocoprep.interrupt import StopGate, Stopped
from cocoprep.cli import cli
from cocoprep.records import BuildResult
from conftest import FIXTURES, REPO

HANG_GUARD_S = 60  # only so that a broken build fails instead of hanging


# ------------------------------------------------------------------ the default mode

@pytest.mark.parametrize("workers,items,mode", [
    (1, 10, "in_memory"), (1, 10**6, "in_memory"),
    (2, 10, "multi_threading"), (2, 5000, "multi_threading"), (2, 5001, "multi_processing"),
    (3, 10, "multi_processing"), (8, 10, "multi_processing"),
])
def test_default_mode_follows_the_worker_count_and_the_job_size(workers, items, mode):
    options = beam_runner.pipeline_options(None, workers)  # before the size is known
    assert beam_runner._flags("  ", workers) == beam_runner._flags(None, workers)
    sized = beam_runner.options_for_job(options, items)
    assert sized.get_all_options()["direct_running_mode"] == mode
    assert sized.get_all_options()["direct_num_workers"] == workers


def test_flags_the_user_gives_are_kept_whatever_the_job_size():
    options = beam_runner.pipeline_options("--direct_running_mode=multi_threading "
                                           "--direct_num_workers=2", 2)
    assert beam_runner.options_for_job(options, 10**6) is options


def test_flags_the_user_gives_are_kept_as_given():
    given = "--direct_running_mode=multi_processing --direct_num_workers=2"
    assert beam_runner._flags(given, 2) == ["--runner=DirectRunner", *given.split()]


def _beam_line(out) -> str:
    """The `beam: planned ...` line of a 2-worker Beam convert of fixtures/coco."""
    result = CliRunner().invoke(cli, ["convert", str(FIXTURES / "coco"), "-o", str(out),
                                      "--runner", "beam", "--workers", "2"])
    assert result.exit_code == 0, result.output
    return next(line for line in result.output.splitlines() if "planned" in line)


def test_the_beam_line_names_the_mode_cocoprep_picked(tmp_path):
    assert _beam_line(tmp_path / "out") == ("beam: planned 2 shard(s), 10 item(s); runner "
                                            "DirectRunner (multi_threading, 2 worker(s))")


@pytest.mark.slow
def test_a_job_over_the_thread_limit_runs_in_worker_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(beam_runner, "MAX_THREAD_ITEMS", 5)  # fixtures/coco has 10 items
    assert _beam_line(tmp_path / "out") == ("beam: planned 2 shard(s), 10 item(s); runner "
                                            "DirectRunner (multi_processing, 2 worker(s))")


# ------------------------------------------------------------------ stopping threads

class Builds:
    """A builder that records each item it builds; `hold` blocks its build until
    released (a worker stuck reading an image), `entered` says it got there."""

    def __init__(self, hold=None):
        self.built: list = []
        self.hold = hold
        self.entered, self.release = threading.Event(), threading.Event()

    def build(self, split, item):
        if item == self.hold:
            self.entered.set()
            assert self.release.wait(HANG_GUARD_S)
        self.built.append(item)
        return BuildResult(example=str(item).encode(), class_counts={"a": 1})


def shard_loop(gate: StopGate, builder, items, outcome: list) -> None:
    """What a writer thread does: its file steps `outside` a build, each build
    through the gate."""
    with gate.writing():
        try:
            for item in items:
                outcome.append(gate.build(builder, "train", item).example)
        except Stopped:
            outcome.append("stopped")


def test_a_writer_stops_at_its_next_item_and_drops_the_one_in_progress():
    gate, builder, outcome = StopGate(), Builds(hold=2), []
    writer = threading.Thread(target=shard_loop, args=(gate, builder, range(5), outcome))
    writer.start()
    assert builder.entered.wait(HANG_GUARD_S)
    gate.stop()  # as the signal handler does, while item 2 is being built
    builder.release.set()
    writer.join(HANG_GUARD_S)
    assert outcome == [b"0", b"1", "stopped"]  # item 2's record is never handed on
    assert builder.built == [0, 1, 2]  # and nothing after it is built


def test_a_stopped_gate_builds_nothing():
    gate, builder, outcome = StopGate(), Builds(), []
    gate.stop()
    shard_loop(gate, builder, range(3), outcome)
    assert (outcome, builder.built) == (["stopped"], [])


def test_the_driver_waits_for_file_steps_but_not_for_a_build_that_hangs():
    gate = StopGate()
    stuck = Builds(hold=0)  # blocked inside a build for the whole test
    stuck_thread = threading.Thread(target=shard_loop, args=(gate, stuck, [0], []), daemon=True)
    stuck_thread.start()
    assert stuck.entered.wait(HANG_GUARD_S)
    gate.stop()
    assert gate.wait_quiet(HANG_GUARD_S)  # a build never returns: not waited for

    in_file_step, leave = threading.Event(), threading.Event()

    def file_step():
        with gate.writing():  # e.g. renaming a finished shard
            in_file_step.set()
            assert leave.wait(HANG_GUARD_S)

    step = threading.Thread(target=file_step)
    step.start()
    assert in_file_step.wait(HANG_GUARD_S)
    assert not gate.wait_quiet(0.05)  # the staging folder may not be removed yet
    leave.set()
    assert gate.wait_quiet(HANG_GUARD_S)
    step.join(HANG_GUARD_S)
    stuck.release.set()
    stuck_thread.join(HANG_GUARD_S)
    assert stuck.built == [0]


# ------------------------------------------------------------------ quiet after a signal

def test_after_a_signal_only_the_main_thread_writes_to_stderr():
    """Writer threads stopping after Ctrl-C print Beam's tracebacks; the CLI's one
    line comes from the main thread."""
    seen = io.StringIO()
    stream = beam_runner._MainThreadOnly(seen)
    other = threading.Thread(target=stream.write, args=("Traceback (most recent call...",))
    other.start()
    other.join(HANG_GUARD_S)
    stream.write("Interrupted: OUT was not changed\n")
    assert seen.getvalue() == "Interrupted: OUT was not changed\n"


def test_a_log_record_being_written_is_finished_before_stderr_comes_back():
    """A record that passed the level check before logging was turned off is
    written before file descriptor 2 is given back (not after, on the terminal)."""
    inside, leave = threading.Event(), threading.Event()

    class Slow(logging.Handler):
        def emit(self, record):
            inside.set()
            assert leave.wait(HANG_GUARD_S)

    handler = Slow()
    logger = logging.getLogger("cocoprep-test-slow-handler")
    logger.addHandler(handler)
    try:
        emitter = threading.Thread(target=logger.error, args=("formatting a traceback",))
        emitter.start()
        assert inside.wait(HANG_GUARD_S)
        settle = threading.Thread(target=beam_runner._settle_log_handlers)
        settle.start()
        settle.join(0.05)
        assert settle.is_alive()  # waits for the record in progress
        leave.set()
        settle.join(HANG_GUARD_S)
        emitter.join(HANG_GUARD_S)
        assert not settle.is_alive()
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------ Beam's fixed costs

def test_beam_is_imported_without_pandas_and_frozen_before_python_shuts_down():
    """pandas and pyarrow are a third of `import apache_beam` and unused here; the
    collector's passes over Beam's objects at shutdown are skipped (frozen first)."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
            "from cocoprep import beam_runner\n"
            "beam_runner.LEAN_IMPORT = True  # as the cocoprep command sets it\n"
            "beam_runner.import_beam()\n"
            "print('loaded:', [m for m in ('pandas', 'pyarrow') if m in sys.modules])\n"
            "import importlib.util\n"
            "if importlib.util.find_spec('pandas'):\n"
            "    import pandas  # still importable afterwards\n"
            "print('frozen now:', gc.get_freeze_count() > 0)\n")
    assert _python(code).splitlines() == ["loaded: []", "frozen now: False",
                                          "frozen at exit: True"]


def test_a_program_calling_the_api_keeps_beams_full_import():
    """Only the cocoprep command's own process imports Beam without pandas: in a
    program that calls the API, Beam registers its pandas conversions as usual."""
    code = ("import sys\n"
            "from cocoprep import beam_runner\n"
            "beam_runner.import_beam()\n"
            "print('pandas' in sys.modules)\n")
    assert _python(code).strip() == "True"


def _python(code: str) -> str:
    """What a fresh interpreter running `code` prints (it must succeed)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout
