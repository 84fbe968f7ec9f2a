"""Which JSON files and image folders make up which split, and which tool wrote them.

Knows the layouts people actually have:

* COCO 2017 (`annotations/instances_<split>.json`, images in `<split>/`,
  `images/<split>/` or flat `images/`), with `person_keypoints_`, `captions_` and
  `image_info_` files; one file without a split in its name
  (`annotations/instances.json`) is split `train`, the whole set;
* CVAT "COCO 1.0" (`annotations/instances_default.json`, images in
  `images/default/` or flat in `images/`);
* Roboflow (`<split>/_annotations.coco.json` beside its images);
* Label Studio (`result.json` with `images/` beside it);
* FiftyOne COCODetectionDataset (`labels.json` with `data/` beside it);
* any single COCO JSON file (images beside it, or `--images DIR`; a file with no
  image beside it is refused before anything is written, naming `--images`).

Only names and folders are looked at here; nothing is parsed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cocoprep.errors import InputError, UsageError
from cocoprep.images import IMAGE_EXTENSIONS

INSTANCES, KEYPOINTS, CAPTIONS, IMAGE_INFO, GENERIC = (
    "instances", "keypoints", "captions", "image_info", "generic",
)
_PREFIXES = (
    ("person_keypoints_", KEYPOINTS), ("instances_", INSTANCES),
    ("captions_", CAPTIONS), ("image_info_", IMAGE_INFO),
)
ROBOFLOW_NAME = "_annotations.coco.json"
LABEL_STUDIO_NAME = "result.json"
FIFTYONE_NAME = "labels.json"
FIFTYONE_DATA = "data"
CVAT_SPLIT = "default"
# The split of a file named only by its kind (`instances.json`): the whole set, as
# TFDS names the one split of a dataset that has one.
WHOLE_SET_SPLIT = "train"

# Layout names, as the summary shows them.
COCO_LAYOUT = "COCO layout"
CVAT_LAYOUT = "CVAT COCO 1.0 export"
ROBOFLOW_LAYOUT = "Roboflow export"
LABEL_STUDIO_LAYOUT = "Label Studio export"
FIFTYONE_LAYOUT = "FiftyOne export"
JSON_FILE_LAYOUT = "COCO JSON file"


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split: its JSON files (any may be None) and image directory."""

    name: str
    image_dir: Path
    instances: Path | None = None
    keypoints: Path | None = None
    captions: Path | None = None
    image_info: Path | None = None

    @property
    def main(self) -> Path | None:
        """The file whose images define the split."""
        return self.instances or self.keypoints or self.image_info or self.captions

    @property
    def main_kind(self) -> str:
        return (INSTANCES if self.instances else KEYPOINTS if self.keypoints
                else IMAGE_INFO if self.image_info else CAPTIONS)

    def paths(self) -> dict[str, str]:
        out = {"images": str(self.image_dir)}
        for kind in (INSTANCES, KEYPOINTS, CAPTIONS, IMAGE_INFO):
            p = getattr(self, kind)
            if p is not None:
                out[kind] = str(p)
        return out


@dataclass(frozen=True)
class Layout:
    """What `discover` understood: the tool or convention (`kind`) and the splits."""

    kind: str
    splits: tuple[SplitFiles, ...]

    def describe(self) -> str:
        """E.g. `Roboflow export (3 splits)`."""
        n = len(self.splits)
        return f"{self.kind} ({n} split{'s' if n != 1 else ''})"


def kind_and_split(path: Path) -> tuple[str, str]:
    """The kind of a COCO JSON file and the split it names, from its file name."""
    name = path.name
    if name == ROBOFLOW_NAME:
        return INSTANCES, path.parent.name
    stem = name[:-5] if name.lower().endswith(".json") else name
    for prefix, kind in _PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return kind, stem[len(prefix):]
        if stem == prefix[:-1]:
            return kind, WHOLE_SET_SPLIT
    return GENERIC, stem


def _group(files: Iterable[Path]) -> dict[str, dict[str, Path]]:
    groups: dict[str, dict[str, Path]] = {}
    for f in sorted(files):
        kind, split = kind_and_split(f)
        if kind == GENERIC:
            continue
        groups.setdefault(split, {})[kind] = f
    return groups


def _coco_image_dir(root: Path, split: str) -> Path:
    """`<split>/`, `images/<split>/` (COCO 2017, newer CVAT) or flat `images/` (older CVAT)."""
    candidates = [root / split, root / "images" / split, root / "images"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _single_file(src: Path, images: str | Path | None) -> Layout:
    kind, split = kind_and_split(src)
    found: dict[str, Path] = {}
    layout, image_dir = JSON_FILE_LAYOUT, src.parent
    if src.name == ROBOFLOW_NAME:
        layout = ROBOFLOW_LAYOUT
    elif kind == GENERIC:
        kind = INSTANCES
        if src.name == FIFTYONE_NAME and (src.parent / FIFTYONE_DATA).is_dir():
            layout, image_dir = FIFTYONE_LAYOUT, src.parent / FIFTYONE_DATA
        elif src.name == LABEL_STUDIO_NAME:
            layout = LABEL_STUDIO_LAYOUT  # file names are images/<name>, beside the JSON
    else:
        if kind == INSTANCES:
            siblings = _group(src.parent.glob("*.json")).get(split, {})
            found.update({k: p for k, p in siblings.items() if k in (KEYPOINTS, CAPTIONS)})
        if src.parent.name == "annotations":
            layout = CVAT_LAYOUT if split == CVAT_SPLIT else COCO_LAYOUT
            image_dir = _coco_image_dir(src.parent.parent, split)
    found[kind] = src
    if images is not None:
        image_dir = Path(images)
    elif layout == JSON_FILE_LAYOUT and not _holds_images(image_dir):
        # A plain JSON file whose own folder holds no image (tool exports and COCO
        # roots name their image folder, whose missing files are reported per image).
        raise _no_images_beside(src, image_dir)
    return Layout(layout, (_checked(SplitFiles(split, image_dir, **found), images),))


def _holds_images(folder: Path) -> bool:
    """An image file in `folder` or one folder below it (names like `train/x.jpg`)."""
    try:
        with os.scandir(folder) as entries:  # stops at the first image found
            for entry in entries:
                if entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file():
                    return True
                if entry.is_dir() and any(n.lower().endswith(IMAGE_EXTENSIONS)
                                          for n in os.listdir(entry.path)):
                    return True
    except OSError:
        return False
    return False


def _no_images_beside(src: Path, image_dir: Path) -> InputError:
    """A JSON file alone: say so before any shard is written, and point at a folder
    of images nearby when there is one."""
    near = [image_dir / "images", image_dir.parent / "images", image_dir.parent]
    guess = next((d for d in near if d != image_dir and d.is_dir() and _holds_images(d)), None)
    hint = f" (--images {guess}?)" if guess is not None else ""
    return InputError(src, "its images beside it, or their folder given with --images DIR",
                      f"no image file in {image_dir}{hint}")


def _coco_root(src: Path, images: str | Path | None) -> Layout | None:
    ann_dir = src / "annotations"
    if not ann_dir.is_dir():
        return None
    splits = []
    for split, found in sorted(_group(ann_dir.glob("*.json")).items()):
        image_dir = Path(images) if images is not None else _coco_image_dir(src, split)
        splits.append(SplitFiles(split, image_dir, **found))
    if not splits:
        return None
    kind = CVAT_LAYOUT if [s.name for s in splits] == [CVAT_SPLIT] else COCO_LAYOUT
    return Layout(kind, tuple(splits))


def _roboflow_root(src: Path, images: str | Path | None) -> Layout | None:
    splits = []
    for f in sorted(src.glob(f"*/{ROBOFLOW_NAME}")):
        image_dir = Path(images) / f.parent.name if images is not None else f.parent
        splits.append(SplitFiles(f.parent.name, image_dir, instances=f))
    if not splits and (src / ROBOFLOW_NAME).is_file():
        splits.append(SplitFiles(src.name, Path(images) if images else src,
                                 instances=src / ROBOFLOW_NAME))
    return Layout(ROBOFLOW_LAYOUT, tuple(splits)) if splits else None


def discover(src: str | Path, *, images: str | Path | None = None) -> Layout:
    """Find the splits under `src` (a directory of one of the layouts above, or one
    JSON file) and name the layout. Splits come back sorted by name."""
    src = Path(src)
    if not src.exists():
        raise InputError(src, "a COCO root directory or a COCO JSON file", "nothing at that path")
    if src.is_file():
        return _single_file(src, images)
    layout = _coco_root(src, images) or _roboflow_root(src, images)
    if layout is None:
        for name in (LABEL_STUDIO_NAME, FIFTYONE_NAME):
            if (src / name).is_file():
                return _single_file(src / name, images)
        raise InputError(
            src, "a COCO root (annotations/instances_<split>.json or annotations/"
            "instances.json), a Roboflow export "
            f"(<split>/{ROBOFLOW_NAME}), a Label Studio export ({LABEL_STUDIO_NAME}), a "
            f"FiftyOne export ({FIFTYONE_NAME}) or a JSON file", "none of these",
        )
    return Layout(layout.kind, tuple(_checked(s, images) for s in layout.splits))


def _checked(s: SplitFiles, images) -> SplitFiles:
    if not s.image_dir.is_dir():
        what = ("--images" if images is not None else
                f"the image directory of split {s.name!r}; or pass --images DIR")
        raise InputError(s.image_dir, f"a directory of images ({what})", "no such directory")
    return s


def select_splits(layout: Layout, wanted: Sequence[str] | None) -> Layout:
    """The layout with only the `wanted` splits, in the order given."""
    if not wanted:
        return layout
    by_name = {s.name: s for s in layout.splits}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise UsageError("--splits", f"names from {sorted(by_name)}", ",".join(missing))
    return Layout(layout.kind, tuple(by_name[w] for w in wanted))


def folder_split_name(folder: Path) -> str:
    """The split name a folder of annotations gives: its own name, also when it was
    named "." or ".." (`Path(".").name` is empty, and an empty split name wrote a
    hidden shard `.tfrecord-...`); "train" for the file system's root."""
    return folder.name or folder.resolve().name or "train"


def list_images(folder: Path, *, recursive: bool) -> list[str]:
    """Image file names under `folder` ("/" separators, sorted)."""
    if not folder.is_dir():
        return []
    if not recursive:
        return sorted(e.name for e in os.scandir(folder)
                      if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())
    out = []
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        out += [f if rel == "." else f"{rel}/{f}" for f in files
                if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(out)
