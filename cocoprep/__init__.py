"""cocoprep: correct, fast, deterministic TFRecords from COCO JSON and image folders.

The package imports nothing heavy at start-up; TensorFlow is loaded only by the
functions that need it, so the command line starts fast. `load`, `describe` and
the `augment` module are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "CocoprepError", "LabelMap", "load", "describe", "augment"]

from cocoprep.errors import CocoprepError
from cocoprep.labelmap import LabelMap


def __getattr__(name: str):
    # Lazy: `import cocoprep` (and the CLI) must not import TensorFlow.
    if name in ("load", "describe"):
        from cocoprep import reader

        return getattr(reader, name)
    if name == "augment":
        import importlib

        return importlib.import_module("cocoprep.augment")
    raise AttributeError(f"module 'cocoprep' has no attribute {name!r}")
