"""Input formats. Each detection format is one module meeting `sources.detection`'s
contract (`FORMAT`, `EXPECTED`, `detect(src)`, `load(src, request)`); `load_detection` picks the
first whose `detect` says yes. Adding a format adds a module and one entry in
`_FORMAT_MODULES`, nothing in `convert`, the writer or the runners.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from cocoprep.errors import InputError

# Tried in this order: COCO (JSON files), then folder formats.
_FORMAT_MODULES = ("cocoprep.sources.cocosplits", "cocoprep.sources.voc", "cocoprep.sources.yolo")


def formats() -> list:
    """The format modules, in the order they are tried."""
    return [importlib.import_module(name) for name in _FORMAT_MODULES]


def load_detection(src, request):
    """Finished splits (`sources.detection.DetectionSource`) of the detection
    dataset at `src`, whatever its format; an `InputError` naming every format
    known when none matches."""
    path = Path(src)
    if not path.exists():
        raise InputError(path, "a dataset folder (COCO, Pascal VOC or YOLO) or a COCO JSON file",
                         "nothing at that path")
    for module in formats():
        if module.detect(path):
            return module.load(path, request)
    raise InputError(path, "; or ".join(m.EXPECTED for m in formats()), "none of these")


# Segmentation formats (`sources.segmentation`'s contract), tried in this order.
_SEGMENTATION_MODULES = ("cocoprep.sources.vocseg", "cocoprep.sources.cityscapes",
                         "cocoprep.sources.cocopanoptic", "cocoprep.sources.roboflowseg",
                         "cocoprep.sources.maskpairs", "cocoprep.sources.cocoinstances")
TASKS = ("detection", "segmentation")


def segmentation_formats() -> list:
    return [importlib.import_module(name) for name in _SEGMENTATION_MODULES]


def find_task(src) -> str:
    """The task of the dataset at `src` when the user names none: segmentation when
    a segmentation format claims it (a tree of masks without detection annotations:
    a VOCdevkit with Annotations/ stays detection), else detection."""
    path = Path(src)
    if path.is_dir() and any(m.detect(path) for m in segmentation_formats()):
        return "segmentation"
    return "detection"


def load_segmentation(src, request):
    """Finished splits (`sources.segmentation.SegmentationSource`) of the
    segmentation dataset at `src`, whatever its format; an `InputError` naming
    every format known when none matches."""
    path = Path(src)
    if not path.is_dir():
        raise InputError(path, "a segmentation dataset folder", "no such directory"
                         if not path.exists() else "a file")
    modules = segmentation_formats()
    for module in modules:
        if module.detect(path, forced=True):
            return module.load(path, request)
    raise InputError(path, "; or ".join(m.EXPECTED for m in modules), "none of these")
