"""cocoprep: correct, fast, deterministic TFRecords from COCO JSON and image folders.

The package imports nothing heavy at start-up; TensorFlow is loaded only by the
functions that need it, so the command line starts fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "CocoprepError", "LabelMap"]

from cocoprep.errors import CocoprepError
from cocoprep.labelmap import LabelMap
