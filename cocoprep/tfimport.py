"""Loading TensorFlow without its C++ start-up notices on the terminal.

`import tensorflow` prints oneDNN, CUDA-stub and CPU-feature lines straight to file
descriptor 2, before TensorFlow's own log level applies. Nobody running a data tool
can act on them, so the command line and the writer's workers keep them off the
terminal; Python exceptions still propagate.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


@contextmanager
def stderr_silenced():
    """Send file descriptor 2 to /dev/null for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """`import tensorflow`, quietly the first time."""
    if "tensorflow" not in sys.modules:
        with stderr_silenced():
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]


def error_text(error: BaseException) -> str:
    """The first line of a TensorFlow error in TensorFlow's own words ("corrupted
    record at 12"), without its op names and node dumps."""
    what = str(getattr(error, "message", error)).strip().splitlines()[0]
    return what.split("}}")[-1].split("[Op:")[0].strip()
