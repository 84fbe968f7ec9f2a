"""Input formats. Each detection format is one module meeting `sources.detection`'s
contract (`FORMAT`, `EXPECTED`, `detect(src)`, `load(src, request)`); `load_detection` picks the
first whose `detect` says yes. Adding a format adds a module and one entry in
`_FORMAT_MODULES`, nothing in `convert`, the writer or the runners.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from cocoprep.errors import InputError

# Tried in this order: LabelMe (JSONs holding a "shapes" list: before COCO, whose
# detect takes any annotations/*.json), COCO (JSON files), CVAT XML (root
# <annotations>: before VOC, whose detect takes any XML), then folder formats.
_FORMAT_MODULES = ("cocoprep.sources.labelme", "cocoprep.sources.cocosplits",
                   "cocoprep.sources.cvat", "cocoprep.sources.voc", "cocoprep.sources.yolo",
                   "cocoprep.sources.kitti", "cocoprep.sources.openimages")


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
