"""Beam's portable path, as on Flink or Spark: a job service and an external SDK
worker pool, both Beam's own (`local_job_service_main`, `worker_pool_main`) on
loopback, so DoFns are pickled and run in worker processes the pool starts with
the `python` on its PATH. A worker environment is broken by a `python` shim on
that PATH. Nothing is downloaded: PortableRunner is pointed at the job service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cocoprep import beam_portable
from cocoprep.cli import cli
from conftest import FIXTURES, REPO
from test_beam import tree_bytes

START_S = 60  # only so that a broken service fails the test instead of hanging it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}: {log.read_text()}")


def _python_shim(folder: Path, body: str) -> Path:
    """A folder whose `python` runs `body` (bash), for the worker pool's PATH."""
    folder.mkdir()
    shim = folder / "python"
    shim.write_text(f"#!/bin/bash\n{body}\n")
    shim.chmod(0o755)
    return folder


@pytest.fixture
def portable(tmp_path):
    """Start a job service and a worker pool whose workers run with `path_front`
    first on PATH; returns the Beam flags that reach them."""
    procs: list[subprocess.Popen] = []

    def start(path_front: Path | None = None, timeout_s: int = 300) -> str:
        if path_front is None:  # workers run this interpreter, whatever `python` is here
            path_front = _python_shim(tmp_path / "this-python", f'exec {sys.executable} "$@"')
        job_port, pool_port = _free_port(), _free_port()
        env = dict(os.environ)
        pool_env = dict(env, PATH=f"{path_front}{os.pathsep}{env['PATH']}")
        for name, module, flag, port, run_env in (
                ("job", "apache_beam.runners.portability.local_job_service_main", "--port",
                 job_port, env),
                ("pool", "apache_beam.runners.worker.worker_pool_main", "--service_port",
                 pool_port, pool_env)):
            log = tmp_path / f"{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", module, f"{flag}={port}"],
                                        stdout=out, stderr=subprocess.STDOUT, env=run_env)
            procs.append(proc)
            _wait_listening(port, proc, log)
        return (f"--runner=PortableRunner --job_endpoint=localhost:{job_port} "
                f"--environment_type=EXTERNAL --environment_config=localhost:{pool_port} "
                f"--job_server_timeout={timeout_s}")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _convert(out: Path, flags: str):
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["convert", str(FIXTURES / "coco"), "-o", str(out),
                                      "--runner", "beam", "--beam-options", flags])
    return result, time.monotonic() - started


def _convert_process(out: Path, flags: str):
    """`cocoprep convert` as its own process: all it prints, from every thread."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cocoprep", "convert", str(FIXTURES / "coco"),
                           "-o", str(out), "--runner", "beam", "--beam-options", flags],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    return done, time.monotonic() - started


@pytest.mark.slow
def test_portable_runner_writes_the_local_runners_bytes(tmp_path, portable):
    result, _ = _convert(tmp_path / "far", portable())
    assert result.exit_code == 0, result.output
    assert "runner PortableRunner" in result.output
    local = CliRunner().invoke(cli, ["convert", str(FIXTURES / "coco"), "-q",
                                     "-o", str(tmp_path / "local"), "--workers", "1"])
    assert local.exit_code == 0, local.output
    assert tree_bytes(tmp_path / "far") == tree_bytes(tmp_path / "local")


@pytest.mark.slow
def test_workers_that_cannot_import_beam_fail_in_one_line(tmp_path, portable):
    """Such a worker dies before it connects and sends nothing: the driver learns
    it only when Beam's deadline on the job's state passes (300 s by default;
    here 8 s), and says what that means instead of gRPC's closing `>`."""
    shim = _python_shim(tmp_path / "no-beam", f'exec {sys.executable} -S "$@"')  # no site-packages
    done, seconds = _convert_process(tmp_path / "out", portable(shim, timeout_s=8))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1:] == [
        "Error: Beam pipeline failed at stage 'WriteShards': no SDK worker wrote a shard "
        "within --job_server_timeout=8 s (Beam's deadline for the job's state): the workers "
        f"most likely cannot start; {beam_portable.WORKER_CHECK_HINT}; nothing was replaced in "
        "the output"], done.stderr
    assert "Traceback" not in done.stderr and ">;" not in done.stderr
    assert 8 <= seconds < 8 + START_S
    assert "No module named 'apache_beam'" in (tmp_path / "pool.log").read_text()
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.slow
def test_workers_without_cocoprep_name_their_own_error(tmp_path, portable):
    """A worker that runs Beam but cannot import cocoprep reports its error through
    Beam: the one line names it."""
    hide = "import sys; sys.modules['cocoprep'] = None"  # as if not installed
    shim = _python_shim(tmp_path / "no-cocoprep",
                        f'if [ "$1" = "-c" ]; then exec {sys.executable} -c "{hide}\n$2"; fi\n'
                        f'exec {sys.executable} "$@"')
    result, _ = _convert(tmp_path / "out", portable(shim, timeout_s=60))
    assert result.exit_code == 1, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith("Error: Beam pipeline failed at stage 'WriteShards': "
                                "ModuleNotFoundError: No module named 'cocoprep")
    assert "Traceback" not in result.output


class _Rendezvous(Exception):
    """As grpc's errors: a text that ends in ">", and code()/details()."""

    def __init__(self, name: str, details: str):
        super().__init__(f"<_Rendezvous of RPC that terminated with:\n\tstatus = {name}\n"
                         f'\tdetails = "{details}"\n>')
        self._name, self._details = name, details

    def code(self):
        return type("Status", (), {"name": self._name})()

    def details(self):
        return self._details


def test_a_grpc_failure_reads_as_its_status_not_its_closing_line():
    deadline = _Rendezvous("DEADLINE_EXCEEDED", "Deadline Exceeded")
    assert beam_portable.failure_reason(deadline, written=3, total=8, job_server_timeout=300) == (
        "the job ran past --job_server_timeout=300 s (Beam's deadline for the job's state) "
        "with 3 of 8 shard(s) written: raise it above the job's length")
    assert beam_portable.failure_reason(
        _Rendezvous("UNAVAILABLE", "failed to connect to all addresses"), written=0, total=2,
        job_server_timeout=300) == ("the job service answered UNAVAILABLE (failed to connect "
                                    "to all addresses)")
    assert beam_portable.failure_reason(RuntimeError("Traceback...\nValueError: bad row 7"),
                                       written=0, total=1, job_server_timeout=300) == (
        "ValueError: bad row 7")


class _Job:
    """A PortableRunner result whose wait meets Beam's deadline on the job's state
    stream; then the job service reports `states` one request at a time."""

    def __init__(self, states):
        self.states, self.asked = list(states), 0

    def wait_until_finish(self):
        raise _Rendezvous("DEADLINE_EXCEEDED", "Deadline Exceeded")

    @property
    def state(self):
        self.asked += 1
        state = self.states.pop(0)
        if isinstance(state, Exception):
            raise state
        return state


def test_past_the_deadline_a_working_job_is_waited_for_until_it_ends():
    job = _Job(["RUNNING", "RUNNING", "PipelineState.DONE"])
    assert beam_portable.wait_for_job(job, shards_written=iter([1, 2, 3, 4]).__next__,
                                      stall_s=60, poll_s=0) == "PipelineState.DONE"
    assert job.asked == 3
    job = _Job(["RUNNING", "FAILED"])
    assert beam_portable.wait_for_job(job, shards_written=lambda: 2, stall_s=60,
                                      poll_s=0) == "FAILED"


def test_past_the_deadline_a_job_without_a_shard_an_answer_or_progress_fails():
    jobs = [(_Job(["RUNNING"]), 0, 60, 0),                       # no shard: never asked
            (_Job([RuntimeError("job service gone")]), 3, 60, 1),  # no answer
            (_Job(["RUNNING"] * 50), 3, 0.05, None)]              # no new shard in stall_s
    for job, written, stall_s, asked in jobs:
        with pytest.raises(_Rendezvous) as info:
            beam_portable.wait_for_job(job, shards_written=lambda: written, stall_s=stall_s,
                                       poll_s=0.03)
        assert info.value.code().name == "DEADLINE_EXCEEDED"
        assert job.asked == asked or (asked is None and 1 < job.asked < 50)
