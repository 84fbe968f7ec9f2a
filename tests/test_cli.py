import subprocess
import sys

import pytest
from click.testing import CliRunner

from cocoprep import __version__
from cocoprep.cli import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_group_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.commands:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "cocoprep", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_import_does_not_load_tensorflow():
    code = "import sys, cocoprep.cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_tensorflow_start_up_notices_stay_off_the_terminal(tmp_path, fixtures_dir):
    """convert (in-process writer) and verify import TensorFlow; its C++ start-up
    lines (oneDNN, CUDA stubs) must not reach the user's terminal."""
    out = tmp_path / "out"
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    runs = [
        [sys.executable, "-m", "cocoprep", "convert", str(fixtures_dir / "coco"), "-o", str(out),
         "--workers", "1", "--quiet"],
        [sys.executable, "-m", "cocoprep", "verify", str(out)],
    ]
    for argv in runs:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        for noise in ("oneDNN", "I0000", "E0000", "cuda"):
            assert noise not in proc.stderr, (argv[3], proc.stderr)
    assert proc.stdout.startswith("OK: 10 examples")


def test_a_closed_stdout_pipe_is_no_error(tmp_path):
    """`cocoprep ... | head` where head has already left: no `Error:` line, no
    traceback, the shell's exit code for SIGPIPE."""
    import os
    import subprocess
    import sys

    from conftest import FIXTURES, REPO

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cocoprep", "convert", str(FIXTURES / "coco"), "-o",
             str(tmp_path / "out")], stdout=write_end, stderr=subprocess.PIPE, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr.decode() == ""
