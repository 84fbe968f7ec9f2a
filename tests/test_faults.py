"""Faults users meet every day, in real processes: Ctrl-C and SIGTERM to the process
group while shards are written, a worker killed by the OS, a file-size limit and a
full disk, read-only and unreadable paths, two runs into one OUT.

Each test checks the exit code, the one line printed, and that OUT is exactly as it
was (byte for byte, hidden files included: no staging folder, no lock left behind).
A run is held "while it writes" by a named pipe in place of one image: the worker
that reaches it blocks in open() until the test acts, so nothing depends on timing.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from cocoprep import framing, fsio, interrupt, outdir, outlock
from cocoprep.manifest import Manifest
from conftest import FIXTURES, REPO, run_cli

FIFO_IMAGE = "000000000105.jpg"  # 5th of 7 train images: shard 1 of 2 with --no-shuffle
FIFO_SHARD = "train.tfrecord-00001-of-00002"
HANG_GUARD_S = 120  # only so that a broken build fails instead of hanging
# Beam's DirectRunner with worker processes (`--runner beam --workers 2` alone runs
# its workers as threads of the cocoprep process)
BEAM_PROCESSES = "--direct_running_mode=multi_processing --direct_num_workers=2"


def tree_bytes(out: Path) -> dict[str, bytes]:
    """Every file under OUT, hidden ones included."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


@pytest.fixture
def old_out(tmp_path) -> Path:
    """An OUT holding a finished earlier run."""
    out = tmp_path / "out"
    code, output = run_cli("convert", FIXTURES / "coco", "-o", out, "-q", "--workers", "1")
    assert code == 0, output
    return out


@pytest.fixture
def fifo_src(tmp_path) -> Path:
    """fixtures/coco with one train image replaced by a named pipe."""
    src = tmp_path / "coco"
    shutil.copytree(FIXTURES / "coco", src)
    (src / "train" / FIFO_IMAGE).unlink()
    os.mkfifo(src / "train" / FIFO_IMAGE)
    return src


def start(*args, limit_file_size: int | None = None,
          unprivileged: bool = False) -> subprocess.Popen:
    """`cocoprep ARGS` in a process group of its own, as a terminal starts it. With
    `unprivileged`, as a process that file modes stop: as root (CI), root without
    the capabilities that override them (`drop_file_privileges`)."""
    drop = unprivileged and os.geteuid() == 0

    def preexec():
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))
        if drop:
            drop_file_privileges()

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "cocoprep", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True, preexec_fn=preexec)


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root past file modes
_MODE_OVERRIDING_CAPS = (1, 2, 3)


def drop_file_privileges() -> None:
    """In a child about to exec (root): take the capabilities that override file
    modes out of its bounding set, so the program it runs, still uid 0, is refused
    by modes as any user is. (Not `setuid(nobody)`: the interpreter may live where
    only root can reach it, as under /root/.pyenv.)"""
    for cap in _MODE_OVERRIDING_CAPS:
        if _LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap})")


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the process did not end")
    return proc.returncode, err.decode("utf-8", "replace")


def fifo_readers(fifo: Path) -> list[int]:
    """Processes other than this one that have the named pipe open."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(fifo):
                    found.append(int(pid))
            except OSError:
                continue
    return found


@contextmanager
def held_while_writing(proc: subprocess.Popen, fifo: Path):
    """Wait until a process of the run opens the named pipe (a worker mid-shard), and
    hold it there, blocked in read(), for the block; yields its pid."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"ended before writing: {proc.communicate()[1].decode()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("never started writing")
        try:  # succeeds once a reader is waiting; keeping it open keeps it waiting
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            time.sleep(0.05)
    try:
        while not fifo_readers(fifo) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield fifo_readers(fifo)[0]
    finally:
        os.close(fd)


def convert_args(src: Path, out: Path, *extra) -> list:
    return ["convert", src, "-o", out, "--no-shuffle", "--num-shards", "2", *extra]


# ------------------------------------------------------------------ interruption

@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("runner", [["--workers", "1"], ["--workers", "2"],
                                    ["--workers", "1", "--runner", "beam"],
                                    ["--workers", "2", "--runner", "beam"],
                                    ["--workers", "2", "--runner", "beam", "--beam-options",
                                     BEAM_PROCESSES]],
                         ids=["local-1", "local-2", "beam-in-memory", "beam-threads",
                              "beam-processes"])
def test_signal_to_the_group_stops_convert_and_leaves_out_as_it_was(
        old_out, fifo_src, sig, code, runner):
    before = tree_bytes(old_out)
    proc = start(*convert_args(fifo_src, old_out, *runner))
    with held_while_writing(proc, fifo_src / "train" / FIFO_IMAGE):
        os.killpg(proc.pid, sig)
        rc, err = finish(proc)
    lines = [ln for ln in error_lines(err) if not ln.startswith("beam: ")]
    assert (rc, lines) == (code, ["Interrupted: OUT was not changed"])
    assert tree_bytes(old_out) == before
    assert not fifo_readers(fifo_src / "train" / FIFO_IMAGE)  # no worker left behind


def test_sigterm_stops_convert_with_143_and_leaves_out_as_it_was(old_out, fifo_src):
    """The default run's (not `slow`) check of SIGTERM: the slow test above covers
    every runner."""
    before = tree_bytes(old_out)
    proc = start(*convert_args(fifo_src, old_out, "--workers", "1"))
    with held_while_writing(proc, fifo_src / "train" / FIFO_IMAGE):
        os.killpg(proc.pid, signal.SIGTERM)
        rc, err = finish(proc)
    assert (rc, error_lines(err)) == (143, ["Interrupted: OUT was not changed"])
    assert tree_bytes(old_out) == before


def test_a_new_out_is_removed_when_interrupted(tmp_path, fifo_src):
    out = tmp_path / "new"
    proc = start(*convert_args(fifo_src, out, "--workers", "2"))
    with held_while_writing(proc, fifo_src / "train" / FIFO_IMAGE):
        os.killpg(proc.pid, signal.SIGINT)
        assert finish(proc)[0] == 130
    assert not out.exists()


def test_a_signal_during_the_swap_waits_for_its_end(old_out, monkeypatch):
    """The second Ctrl-C case: the swap of finished files is never cut halfway."""
    into_out = []
    real_rename = outdir.fsio.rename

    def rename(src, dest):
        if Path(dest).parent == old_out:
            into_out.append(Path(dest).name)
            if len(into_out) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # arrives between two renames
        real_rename(src, dest)

    monkeypatch.setattr(outdir.fsio, "rename", rename)
    code, output = run_cli("convert", FIXTURES / "coco", "-o", old_out, "-q", "--workers",
                           "1", "--num-shards", "3", catch_exceptions=False)
    assert (code, output.strip()) == (
        130, "Interrupted after the new output was complete: OUT holds it")
    assert into_out[-1] == "manifest.json"  # the swap ran to its last step
    assert not [p for p in old_out.iterdir() if p.name.startswith(".")]
    assert len(list(old_out.glob("train.tfrecord-*-of-00003"))) == 3
    code, output = run_cli("verify", old_out)
    assert code == 0, output


@pytest.mark.parametrize("command,where", [
    (["verify"], "cocoprep.verify.verify"),
    (["inspect"], "cocoprep.inspection.inspect"),
    (["preview", "-n", "4"], "cocoprep.preview.preview"),
])
def test_reading_commands_stop_with_one_line(old_out, tmp_path, monkeypatch, command, where):
    module, name = where.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler raises here
        return real(*args, **kwargs)

    monkeypatch.setattr(where, interrupted)
    code, output = run_cli(*command, old_out, *(["-o", tmp_path / "p.png"]
                                              if command[0] == "preview" else []),
                           catch_exceptions=False)
    assert (code, output.strip()) == (130, "Interrupted")


# ------------------------------------------------------------------ dead workers

def test_a_killed_worker_is_named_with_its_signal_and_shard(old_out, fifo_src):
    before = tree_bytes(old_out)
    proc = start(*convert_args(fifo_src, old_out, "--workers", "2"))
    with held_while_writing(proc, fifo_src / "train" / FIFO_IMAGE) as worker:
        assert worker != proc.pid
        os.kill(worker, signal.SIGKILL)
        rc, err = finish(proc)
    assert rc == 1
    assert error_lines(err) == [
        f"Error: a worker process was killed by SIGKILL while writing {FIFO_SHARD} (often "
        "the system running out of memory); nothing was replaced in the output. Re-run "
        "with --workers 1 to see where it happens"]
    assert tree_bytes(old_out) == before


# ------------------------------------------------------------------ space

@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["convert", FIXTURES / "coco", "--workers", "1"],
    ["convert", FIXTURES / "coco", "--workers", "2"],
    ["convert", FIXTURES / "coco", "--workers", "2", "--runner", "beam"],
    ["convert", FIXTURES / "coco", "--runner", "beam", "--beam-options", BEAM_PROCESSES],
    ["split", FIXTURES / "imgs", "--workers", "2"],
], ids=["convert-1", "convert-2", "convert-beam-threads", "convert-beam-processes", "split-2"])
def test_a_file_size_limit_mid_run_is_one_line(tmp_path, args):
    out = tmp_path / "out"
    shutil.copytree(FIXTURES / "coco" / "annotations", out / "keep")  # an OUT in use
    before = tree_bytes(out)
    proc = start(*args, "-o", out, "-q", limit_file_size=6000)
    rc, err = finish(proc)
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1, err
    assert lines[0].startswith("Error: a file grew past the size limit of the device holding "
                               "OUT or of `ulimit -f` (while writing "), err
    assert tree_bytes(out) == before


@pytest.mark.parametrize("runner", [["--workers", "1"], ["--workers", "2", "--runner", "beam"]],
                         ids=["local-1", "beam-threads"])
def test_no_space_left_is_one_line_naming_the_shard(old_out, monkeypatch, runner):
    """In this process: the local runner's own loop, or Beam's worker threads."""
    before = tree_bytes(old_out)

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(framing.RecordWriter, "write", full)
    code, output = run_cli("convert", FIXTURES / "coco", "-o", old_out, "-q", *runner,
                           "--num-shards", "1", catch_exceptions=False)
    assert (code, output.strip()) == (1, "Error: no space left on the device holding OUT "
                                         "(while writing train.tfrecord-00000-of-00001)")
    assert tree_bytes(old_out) == before


class _FillsUp:
    """A file whose disk fills halfway through its first write."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


_REPORT_RUNS = {"convert": ["convert", FIXTURES / "coco"], "split": ["split", FIXTURES / "imgs"]}


@pytest.mark.parametrize("run,name", [
    ("convert", "manifest.json"), ("convert", "features.json"),
    ("convert", "dataset_info.json"), ("convert", "skipped.jsonl"),
    ("convert", "label_map.pbtxt"), ("convert", "labels.txt"),
    ("convert", "image.object.class.label.labels.txt"),
    ("split", "labels.txt"), ("split", "train.txt"), ("split", "image.class.label.labels.txt"),
])
def test_no_space_left_for_a_report_file_is_one_line_and_out_is_kept(tmp_path, monkeypatch,
                                                                      run, name):
    """The files beside the shards, written through `fsio.open_write`. OUT holds the
    other command's output, so every file a leak could touch differs."""
    out = tmp_path / "out"
    other = "split" if run == "convert" else "convert"
    code, output = run_cli(*_REPORT_RUNS[other], "-o", out, "-q", "--workers", "1")
    assert code == 0, output
    before = tree_bytes(out)
    real, reached = fsio.open_write, []

    def open_write(path):
        if os.path.basename(path) != name:
            return real(path)
        reached.append(path)
        return _FillsUp(real(path))

    monkeypatch.setattr(fsio, "open_write", open_write)
    code, output = run_cli(*_REPORT_RUNS[run], "-o", out, "-q", "--workers", "1",
                           catch_exceptions=False)
    assert (code, output.strip()) == (
        1, f"Error: no space left on the device holding OUT (while writing {name})")
    assert len(reached) == 1
    assert tree_bytes(out) == before


@pytest.mark.parametrize("existing", [False, True], ids=["new-out", "existing-out"])
def test_an_output_that_cannot_fit_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, existing):
    """The disk's free space is faked (a few kB), never read to size a file: a test
    that wrote "free space + 1 GB" would fill, or try to, a bigger disk."""
    out = tmp_path / "out"
    if existing:
        code, output = run_cli("convert", FIXTURES / "coco", "-o", out, "-q", "--workers", "1")
        assert code == 0, output
    before = tree_bytes(out) if existing else None
    probed = []

    def disk_usage(path):
        probed.append(Path(path))
        return SimpleNamespace(total=10**9, used=10**9 - 4096, free=4096)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    code, output = run_cli("convert", FIXTURES / "coco", "-o", out, "-q", "--workers", "1",
                           catch_exceptions=False)
    assert code == 2
    line = output.strip()
    assert line.startswith("Error: OUT needs about ") and "(estimated from the source " in line
    assert line.endswith(f"); 4.1 kB free on the disk holding {out}")
    assert probed == [out if existing else tmp_path]
    if existing:
        assert tree_bytes(out) == before
    else:
        assert not out.exists()


# ------------------------------------------------------------------ permissions
# Root reads and writes whatever the modes say, so these run `cocoprep` in a process
# that modes stop (`start(..., unprivileged=True)`): under CI's root too.

def run_unprivileged(*args) -> tuple[int, list[str]]:
    """`cocoprep ARGS` in a process file modes stop: (exit code, lines on stderr)."""
    rc, err = finish(start(*args, unprivileged=True))
    return rc, error_lines(err)


@contextmanager
def read_only(folder: Path):
    """`folder` read-only by its mode for the block."""
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


def _not_writable(out: Path, where: str = "") -> list[str]:
    return [f"Error: {out}: expected a writable output directory, found Permission "
            f"denied{where}"]


def test_a_read_only_out_is_one_line_and_left_alone(old_out):
    before = tree_bytes(old_out)
    with read_only(old_out):
        code, lines = run_unprivileged("convert", FIXTURES / "coco", "-o", old_out, "-q",
                                       "--workers", "1")
    assert (code, lines) == (2, _not_writable(old_out))
    assert tree_bytes(old_out) == before


def test_an_out_inside_a_folder_you_may_not_write(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    with read_only(parent):
        code, lines = run_unprivileged("convert", FIXTURES / "coco", "-o",
                                       parent / "out", "-q", "--workers", "1")
    # the line names the folder that cannot be written, not only OUT
    assert (code, lines) == (2, _not_writable(parent / "out",
                                              f" in {parent} (where OUT would be made)"))
    assert not (parent / "out").exists()


def test_an_unreadable_src_is_one_line_naming_it(tmp_path):
    src = tmp_path / "coco"
    shutil.copytree(FIXTURES / "coco", src)
    (src / "annotations" / "instances_train.json").chmod(0)
    code, lines = run_unprivileged("convert", src, "-o", tmp_path / "out", "--workers", "1")
    assert (code, lines) == (2, [f"Error: {src / 'annotations' / 'instances_train.json'}: "
                                 "expected a readable COCO JSON file, found Permission denied"])
    assert not (tmp_path / "out").exists()


def test_an_unreadable_labelme_json_is_a_skip_and_its_image_not_a_negative(tmp_path):
    src = tmp_path / "labelme"
    shutil.copytree(FIXTURES / "labelme", src)
    last = sorted((src / "train").glob("*.json"))[-1]
    last.chmod(0)
    out = tmp_path / "out"
    code, lines = run_unprivileged("convert", src, "-o", out, "-q", "--workers", "1")
    assert (code, lines) == (0, [])
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    (line,) = [s for s in skipped if s["reason"] == "malformed_json"]
    assert line["file"] == f"train/{last.name}"
    assert line["detail"] == f"train/{last.name}: unreadable: Permission denied"
    assert Manifest.read(out).splits["train"].num_examples == 6  # 7 images, 1 JSON unread


def test_a_folder_where_the_annotation_file_must_be_is_one_line(tmp_path):
    src = tmp_path / "coco"
    shutil.copytree(FIXTURES / "coco", src)
    ann = src / "annotations" / "instances_train.json"
    ann.unlink()
    ann.mkdir()
    code, output = run_cli("convert", src, "-o", tmp_path / "out", catch_exceptions=False)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Is a directory" in lines[0]
    assert str(src / "annotations") in lines[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the lock

def test_a_second_run_into_the_same_out_is_refused_at_once(old_out, fifo_src):
    before = tree_bytes(old_out)
    first = start(*convert_args(fifo_src, old_out, "--workers", "2"))
    with held_while_writing(first, fifo_src / "train" / FIFO_IMAGE):
        code, output = run_cli("convert", FIXTURES / "coco", "-o", old_out, "-q",
                               catch_exceptions=False)
        os.killpg(first.pid, signal.SIGINT)
        assert finish(first)[0] == 130
    assert code == 2
    line = output.strip()
    assert line.startswith(f"Error: {old_out} is being written by another cocoprep run "
                           f"(process {first.pid} on host {socket.gethostname()}, run ")
    assert line.endswith("; wait for it to finish, or write somewhere else with -o")
    assert tree_bytes(old_out) == before


def _lock(out: Path, *, host: str, pid: int) -> None:
    (out / outlock.LOCK_NAME).write_text(json.dumps(
        {"run_id": "1-dead", "host": host, "pid": pid, "started": "2026-01-01 00:00:00 UTC"}))


def _gone_pid() -> int:
    """The pid of a process that has ended, on this host."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_note(old_out):
    gone = _gone_pid()
    _lock(old_out, host=socket.gethostname(), pid=gone)
    code, output = run_cli("convert", FIXTURES / "coco", "-o", old_out, "-q",
                           catch_exceptions=False)
    assert code == 0, output
    assert output.strip() == (
        f"note: took over {old_out / outlock.LOCK_NAME} from a run whose process is gone "
        f"(process {gone} on host {socket.gethostname()}, run 1-dead, started "
        "2026-01-01 00:00:00 UTC)")
    assert not (old_out / outlock.LOCK_NAME).exists()


@pytest.mark.parametrize("pid", ["gone", "live"])
def test_a_lock_from_another_host_names_the_command_that_clears_it(old_out, pid):
    """Never taken over, whatever the pid means here: a pid that is gone on this
    host says nothing about a process on another one."""
    pid = _gone_pid() if pid == "gone" else os.getpid()
    _lock(old_out, host="elsewhere.example", pid=pid)
    before = tree_bytes(old_out)
    code, output = run_cli("convert", FIXTURES / "coco", "-o", old_out, "-q",
                           catch_exceptions=False)
    assert code == 2
    assert output.strip() == (
        f"Error: {old_out} is locked by another cocoprep run (process {pid} on host "
        "elsewhere.example, run 1-dead, started 2026-01-01 00:00:00 UTC); this host cannot "
        "tell whether it still runs. If it does not, remove the lock: "
        f"rm '{old_out / outlock.LOCK_NAME}'")
    assert tree_bytes(old_out) == before


# ------------------------------------------------------------------ Beam says three lines

@pytest.mark.slow
@pytest.mark.parametrize("beam", [[], ["--beam-options", BEAM_PROCESSES]],
                         ids=["threads", "processes"])
def test_beam_runner_prints_only_its_own_three_lines(tmp_path, beam):
    proc = start("convert", FIXTURES / "coco", "-o", tmp_path / "out", "--runner", "beam",
                 "--workers", "2", *beam)
    rc, err = finish(proc)
    assert rc == 0, err
    lines = error_lines(err)
    assert len(lines) == 3 and all(ln.startswith("beam: ") for ln in lines), err
