"""Which records a smoke-train uses: DATA -> splits, task and classes, found before
anything is built; data no training could prove is refused with the command that
fixes it (e.g. `cocoprep split` for a tree of images that is not records yet)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cocoprep.errors import InputError, NothingToProve

RECORDS_DIR = "tfrecords"  # where the suggested `cocoprep split/convert` command writes
_TOOLS = "a directory written by `cocoprep convert` or `cocoprep split`"


@dataclass(frozen=True)
class TrainData:
    """What the run trains on."""

    path: str
    train: str
    val: str | None
    task: str
    num_classes: int
    class_names: list[str] | None
    num_examples: int | None


def pick_train_val(data: str, train_split: str | None, val_split: str | None):
    """The train and validation split names of DATA (the shared rule of
    `cocoprep.splitnames.pick_splits`) and its manifest (None for a shard glob,
    whose split is `train_split` or `train`)."""
    from cocoprep.shards import resolve
    from cocoprep.splitnames import pick_splits

    shards = resolve(data)
    manifest = shards.manifest
    if manifest is None:
        return train_split or "train", None, None
    counts = {n: s.num_examples for n, s in manifest.splits.items()}
    choice = pick_splits(list(manifest.splits), counts=counts, train=train_split,
                         val=val_split, where=str(data))
    return choice.train, choice.val, manifest


def find_data(data: str, train_split: str | None, val_split: str | None) -> TrainData:
    """Resolve DATA and check that training on it can prove anything."""
    from cocoprep import reader
    from cocoprep.shards import is_glob

    if not Path(data).exists() and not is_glob(data):
        raise InputError(data, f"{_TOOLS} (run one of them first, or pass DATA)",
                         "nothing at that path")
    refuse_unwritten(data)
    train_name, val_name, manifest = pick_train_val(data, train_split, val_split)
    info = reader.describe(data, train_name)
    if info.num_classes is None:
        raise InputError(data, "a label map (label_map.pbtxt or labels.txt) beside the shards",
                         "none")
    if info.num_examples == 0:
        raise InputError(data, f"examples in split {train_name!r}", "0")
    if manifest is not None:
        check_provable(data, train_name, manifest.splits[train_name], info)
    return TrainData(data, train_name, val_name, info.task, info.num_classes,
                     info.class_names, info.num_examples)


def refuse_unwritten(data: str) -> None:
    """A directory that holds no records yet (empty, a class-folder tree of images, a
    detection dataset): say which command writes them, with DATA filled in."""
    from cocoprep.manifest import MANIFEST_NAME
    from cocoprep.sources import source_title
    from cocoprep.sources.folder import is_hidden

    path = Path(data)
    if not path.is_dir() or (path / MANIFEST_NAME).is_file():
        return
    entries = sorted(e for e in os.listdir(path) if not is_hidden(e))
    if any(".tfrecord" in e for e in entries):
        return  # shards without a manifest: `shards.resolve` suggests a glob
    out = RECORDS_DIR if path.resolve() != Path(RECORDS_DIR).resolve() else f"{data}-records"
    next_step = f"then `cocoprep smoketrain {out}`"
    if not entries:
        raise InputError(data, f"{_TOOLS}", "an empty directory: write records with "
                         f"`cocoprep convert SRC -o {data}` (COCO, Pascal VOC, YOLO) or `cocoprep split SRC -o "
                         f"{data}` (a folder per class), or pass the directory they went to")
    folders = [e for e in entries if (path / e).is_dir()]
    if source_title(path) is not None:  # a detection or segmentation data set
        raise InputError(data, _TOOLS, "annotations, not records: run "
                         f"`cocoprep convert {data} -o {out}` first, {next_step}")
    if folders and any(_holds_images(path / f) for f in folders):
        shown = ", ".join(f + "/" for f in folders[:4]) + (", ..." if len(folders) > 4 else "")
        raise InputError(data, _TOOLS, f"a tree of image folders ({shown}), not records: run "
                         f"`cocoprep split {data} -o {out}` first, {next_step}")


def _holds_images(folder: Path) -> bool:
    """Images in `folder` or one level below (class/ or split/class/)."""
    from cocoprep.sources.folder import is_image_name

    with os.scandir(folder) as entries:  # stops at the first image; order does not matter
        for entry in entries:
            if entry.is_file() and is_image_name(entry.name):
                return True
            if entry.is_dir() and any(is_image_name(n) for n in os.listdir(entry.path)):
                return True
    return False


def check_provable(data: str, split: str, stats, info) -> None:
    """Refuse data on which no training could show the records are right."""
    if info.task == "detection" and stats.num_objects == 0:
        raise NothingToProve(data, split, f"holds no objects (0 boxes in "
                                          f"{stats.num_examples} images): a detector has "
                                          "nothing to learn and its loss falls to 0 anyway")
    if info.task == "segmentation" and stats.class_counts:
        present = [c for c, n in stats.class_counts.items() if n > 0]
        if len(present) < 2:
            only = f" ({present[0]!r})" if present else ""
            raise NothingToProve(data, split, f"holds a single class{only} in its masks: "
                                              "every pixel has the same label, so nothing "
                                              "shows masks and pictures line up")
    if info.task == "classification":
        present = [c for c, n in stats.class_counts.items() if n > 0]
        if (len(present) if stats.class_counts else info.num_classes) < 2:
            only = f" ({present[0]!r})" if present else ""
            raise NothingToProve(data, split, f"holds a single class{only}: every label is "
                                              "the same, so nothing shows they line up")
