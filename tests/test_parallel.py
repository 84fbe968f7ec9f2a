import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cocoprep import parallel, progress

HANG_GUARD_S = 120  # only so that a broken build fails instead of hanging
DETECTED_WITHIN_S = 5.0


class Bar:
    def __init__(self):
        self.n = 0

    def update(self, n):
        self.n += n


def _square_and_report(x):
    progress.report_progress(1)
    return x * x, progress.in_worker_process()


def _die_on_three(x):
    if x == 3:
        os._exit(7)  # a worker killed mid-task, as the OOM killer would
    return x


def _die_while_the_other_reports(task):
    """Task ("die", how, stamp): note the time, then end by `how` mid-task. Task
    ("report",): send progress every 10 ms for longer than the hang guard, so the
    parent never waits on an empty queue."""
    if task[0] == "die":
        time.sleep(0.5)  # the other worker is reporting by now
        Path(task[2]).write_text(repr(time.time()))
        if task[1] == "signal":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        progress.report_progress(1)
        time.sleep(0.01)
    return task


@pytest.mark.parametrize("workers", [1, 2])
def test_map_tasks_keeps_order_and_counts_progress(workers):
    bar = Bar()
    results = parallel.map_tasks(_square_and_report, list(range(6)), workers=workers, bar=bar)
    assert [r[0] for r in results] == [x * x for x in range(6)]
    assert all(r[1] == (workers > 1) for r in results)
    assert bar.n == 6


def test_a_dead_worker_fails_the_run_instead_of_hanging():
    with pytest.raises(parallel.WorkerDied, match="--workers 1"):
        parallel.map_tasks(_die_on_three, list(range(6)), workers=2, bar=Bar())


_WATCH = """
import sys, time
sys.path.insert(0, sys.argv[1])
from cocoprep import parallel
import test_parallel as t
try:
    parallel.map_tasks(t._die_while_the_other_reports, [("report",), ("die", sys.argv[2],
                       sys.argv[3])], workers=2, bar=t.Bar(), describe=lambda task: task[0])
except parallel.WorkerDied as e:
    print(repr(time.time()), e, sep="\\n")
"""


@pytest.mark.parametrize("how,said", [("signal", "was killed by SIGKILL"),
                                      ("status", "exited with status 3")])
def test_a_dead_worker_is_named_at_once_while_the_others_keep_reporting(tmp_path, how, said):
    """Death is seen within seconds of it, however busy the other workers keep the
    result queue: no timeout is involved (a separate process, so that a build that
    never notices cannot hang the test run)."""
    stamp = tmp_path / "died_at"
    try:  # on a timeout the child is killed; its workers end with it (they watch it)
        proc = subprocess.run([sys.executable, "-c", _WATCH, str(Path(__file__).parent), how,
                               str(stamp)], capture_output=True, text=True,
                              timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail("the dead worker was never noticed")
    assert proc.returncode == 0, proc.stderr
    noticed, message = proc.stdout.splitlines()
    assert message.startswith(f"a worker process {said} while die")
    assert float(noticed) - float(stamp.read_text()) < DETECTED_WITHIN_S
