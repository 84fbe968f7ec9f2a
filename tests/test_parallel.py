import os

import pytest

from cocoprep import parallel, progress


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

