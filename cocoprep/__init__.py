"""cocoprep: correct, fast, deterministic TFRecords from COCO, Pascal VOC, YOLO and
image folders.

The package imports nothing heavy at start-up; TensorFlow is loaded only by the
functions that need it, so the command line starts fast. `convert_detection`,
`split_folder`, `load`, `describe` and the `augment` module are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "CocoprepError", "LabelMap", "convert_detection",
           "convert_segmentation", "split_folder", "load", "describe", "augment"]

from cocoprep.errors import CocoprepError
from cocoprep.labelmap import LabelMap


def _quiet_tensorflow() -> None:
    """TensorFlow for the Python API as quiet as the CLI's: its C++ start-up notices
    off the terminal, and its INFO lines (e.g. TFRecordDataset's buffer notes) off
    unless the user set `TF_CPP_MIN_LOG_LEVEL`; warnings and errors still show."""
    import os
    import sys

    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        from cocoprep.tfimport import import_tensorflow, stderr_silenced

        tf = import_tensorflow()
        with stderr_silenced():  # the device probe's "no CUDA driver" lines, once
            tf.config.list_physical_devices()


def __getattr__(name: str):
    # Lazy: `import cocoprep` (and the CLI) must not import TensorFlow.
    if name in ("load", "describe", "augment"):
        _quiet_tensorflow()
    if name in ("load", "describe"):
        from cocoprep import reader

        return getattr(reader, name)
    if name == "convert_detection":
        from cocoprep.convert import convert_detection

        return convert_detection
    if name == "convert_segmentation":
        from cocoprep.segconvert import convert_segmentation

        return convert_segmentation
    if name == "split_folder":
        from cocoprep.split import split_folder

        return split_folder
    if name == "augment":
        import importlib

        return importlib.import_module("cocoprep.augment")
    raise AttributeError(f"module 'cocoprep' has no attribute {name!r}")
