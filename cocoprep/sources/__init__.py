"""Input formats. Each detection format is one module meeting `sources.detection`'s
contract (`FORMAT`, `EXPECTED`, `detect(src)`, `load(src, request)`); `load_detection` picks the
first whose `detect` says yes. Adding a format adds a module and one entry in
`_FORMAT_MODULES`, nothing in `convert`, the writer or the runners.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

from cocoprep.errors import InputError, UsageError
from cocoprep.sources.detection import select_classes

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
            _refuse_options(module, request)
            source = module.load(path, request)
            if not getattr(module, "SELECTS_CLASSES", False):
                source = select_classes(source, request.classes,
                                        title=getattr(module, "TITLE", module.FORMAT))
            if request.ratio is not None:  # the layout line names the splits written
                names = ", ".join(s.name for s in source.splits)
                source = replace(source, layout=f"{source.layout}, dealt into {names} "
                                 "by --ratio")
            return source
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
    a VOCdevkit with Annotations/ stays detection; a detection format whose
    `OWNS_MASK_FOLDERS` is set keeps its instance masks' folders, e.g. Open Images'
    masks/<split>/ beside images/<split>/), else detection."""
    path = Path(src)
    if path.is_dir() and any(getattr(m, "OWNS_MASK_FOLDERS", False) and m.detect(path)
                             for m in formats()):
        return "detection"
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


# Options that mean something for some formats only: (option, request field). A format
# module lists those it takes in `OPTIONS`; any other one given is refused, so an
# option is never accepted and then ignored.
_FORMAT_OPTIONS = (("--contiguous-ids", "contiguous_ids"), ("--skip-difficult", "skip_difficult"))


def _refuse_options(module, request) -> None:
    taken = getattr(module, "OPTIONS", ())
    for option, field in _FORMAT_OPTIONS:
        if getattr(request, field) and option not in taken:
            title = getattr(module, "TITLE", module.FORMAT)
            users = [getattr(m, "TITLE", m.FORMAT) for m in formats()
                     if option in getattr(m, "OPTIONS", ())]
            raise UsageError(option, f"a {' or '.join(users)} data set (it does nothing for "
                             f"{title}: leave it out)", f"a {title} data set")


def _title(module) -> str:
    return getattr(module, "TITLE", module.FORMAT)


def source_title(src) -> str | None:
    """What annotated data set is at `src` ("a COCO detection data set", "a Pascal VOC
    segmentation data set"), or None (unreadable: the caller's own check says so).
    For commands that take records or class folders, to point at `convert`
    instead; detection first, as `find_task` decides."""
    path = Path(src)
    try:
        for module in formats():
            if module.detect(path):
                return f"a {_title(module)} detection data set"
        if path.is_dir():
            for module in segmentation_formats():
                if module.detect(path):
                    return f"a {_title(module)} segmentation data set"
    except OSError:
        return None
    return None
