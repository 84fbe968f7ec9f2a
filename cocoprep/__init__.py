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


def __getattr__(name: str):
    # Lazy: `import cocoprep` (and the CLI) must not import TensorFlow.
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
