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


_PROBE = '''
import sys
from cocoprep import parallel

class Bar:
    def update(self, n):
        pass

def loaded(name):
    return name in sys.modules

if __name__ == "__main__":
    import probe
    if sys.argv[1] == "warm":
        parallel.warm_up(2)
    print(parallel.map_tasks(probe.loaded, ["cocoprep.builders"] * 2, workers=2, bar=Bar()))
'''


@pytest.mark.parametrize("warm", [True, False])
def test_warm_up_loads_the_writer_modules_before_any_task(tmp_path, warm):
    """After `warm_up`, a pool worker starts with the shard writer's modules already
    imported (the fork server loaded them while the parent read the source); without
    it, a worker imports only what its task needs."""
    import subprocess
    import sys

    (tmp_path / "probe.py").write_text(_PROBE)
    root = os.path.dirname(os.path.dirname(os.path.abspath(parallel.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    done = subprocess.run([sys.executable, str(tmp_path / "probe.py"),
                           "warm" if warm else "cold"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([warm, warm])
