"""Which folders of a Pascal VOC source hold which split's XMLs and images.

Knows the layouts people have:

* VOCdevkit: `Annotations/*.xml` + `JPEGImages/`, splits from
  `ImageSets/Main/<split>.txt` (class lists `<class>_<split>.txt` are not splits;
  `trainval` is left out when `train` and `val` exist); `VOC2007/`, `VOC2012/`
  under a `VOCdevkit/` root (split names then carry the year: `train2007`). CVAT's
  export is this layout with the one split `default`.
* `images/` + `annotations/` (or `Annotations/`, `labels/`): Label Studio and most
  converters; one split, `train`, unless `ImageSets/Main` names splits.
* a folder of image + XML pairs (LabelImg), and `<split>/` folders of such pairs or
  of the layout above (Roboflow: `train/ valid/ test/`).

Only names and folders are looked at here; nothing is parsed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from cocoprep.errors import InputError, UsageError

ANNOTATION_DIRS = ("Annotations", "annotations", "labels")
IMAGE_DIRS = ("JPEGImages", "images", "Images", "PNGImages")
SPLIT_LISTS = ("ImageSets", "Main")
ONE_SPLIT = "train"                  # the split of a layout that names none
CVAT_LABELMAP = "labelmap.txt"       # beside CVAT's VOC export
_ORDER = {"train": 0, "trainval": 1, "val": 2, "valid": 2, "test": 3}  # then by name
_YEAR = re.compile(r"VOC(\d{4})", re.IGNORECASE)


# ============================================================== layouts

@dataclass(frozen=True)
class VocSplitFiles:
    """One split: its XML files (relative to `ann_dir`, in listing order), the folder
    its images are in, and the ids its list names without an XML."""

    name: str
    ann_dir: Path
    image_dir: Path
    xml_names: tuple[str, ...]
    list_file: Path | None = None
    missing: tuple[str, ...] = ()
    recursive_images: bool = True   # False: images beside the XMLs, in that folder only

    def paths(self) -> dict[str, str]:
        out = {"annotations": str(self.ann_dir), "images": str(self.image_dir)}
        if self.list_file is not None:
            out["list"] = str(self.list_file)
        return out


@dataclass(frozen=True)
class VocLayout:
    """What `discover` understood: the layout in words and its splits."""

    kind: str
    splits: tuple[VocSplitFiles, ...]

    def describe(self) -> str:
        """E.g. `Pascal VOC (VOCdevkit: VOC2007): splits train, val, test`."""
        names = ", ".join(s.name for s in self.splits)
        return f"Pascal VOC ({self.kind}): split{'s' if len(self.splits) != 1 else ''} {names}"


def _has_xml(folder: Path, *, depth: int = 0) -> bool:
    """Whether `folder` holds an .xml file (or one in a subfolder, `depth` deep)."""
    if not folder.is_dir():
        return False
    subs = []
    for e in os.scandir(folder):
        if e.name.lower().endswith(".xml") and e.is_file():
            return True
        if depth and e.is_dir():
            subs.append(Path(e.path))
    return any(_has_xml(p, depth=depth - 1) for p in sorted(subs))


def _xml_names(folder: Path, *, recursive: bool) -> list[str]:
    if not recursive:
        return sorted(e.name for e in os.scandir(folder)
                      if e.name.lower().endswith(".xml") and e.is_file())
    out = []
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        out += [f if rel == "." else f"{rel}/{f}" for f in files if f.lower().endswith(".xml")]
    return sorted(out)


def _first_dir(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def _split_lists(folder: Path) -> dict[str, Path]:
    """`ImageSets/Main/<split>.txt` by split name: not the class lists
    (`<class>_<split>.txt`), and no `trainval` when `train` and `val` exist."""
    main = folder.joinpath(*SPLIT_LISTS)
    if not main.is_dir():
        return {}
    stems = {p.stem: p for p in main.glob("*.txt") if p.is_file()}
    lists = {s: p for s, p in stems.items() if not any(s.endswith("_" + t) for t in stems)}
    if "train" in lists and "val" in lists:
        lists.pop("trainval", None)
    return dict(sorted(lists.items(), key=lambda kv: _split_order(kv[0])))


def _split_order(name: str) -> tuple[int, str]:
    return _ORDER.get(name, len(_ORDER)), name


def _read_list(path: Path) -> list[str]:
    """The ids of a split list (first word of each line), each once, in file order."""
    ids: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split()
        if words:
            ids.setdefault(words[0], None)
    return list(ids)


def _annotated(folder: Path) -> tuple[VocSplitFiles, ...] | None:
    """`folder` with an annotation folder of XMLs beside an image folder (VOCdevkit
    year, CVAT, Label Studio, images/ + annotations/), or None."""
    ann_dir = next((folder / n for n in ANNOTATION_DIRS
                    if _has_xml(folder / n, depth=2)), None)
    if ann_dir is None:
        return None
    image_dir = _first_dir(folder, IMAGE_DIRS)
    if image_dir is None:
        raise InputError(folder, f"an image folder ({', '.join(IMAGE_DIRS)}) beside "
                         f"{ann_dir.name}/", "none")
    names = _xml_names(ann_dir, recursive=True)
    lists = _split_lists(folder)
    if not lists:
        return (VocSplitFiles(ONE_SPLIT, ann_dir, image_dir, tuple(names)),)
    have = set(names)
    splits = []
    for split, path in lists.items():
        ids = _read_list(path)
        splits.append(VocSplitFiles(
            split, ann_dir, image_dir, tuple(f"{i}.xml" for i in ids if f"{i}.xml" in have),
            path, tuple(i for i in ids if f"{i}.xml" not in have)))
    return tuple(splits)


def _pairs(folder: Path, name: str) -> VocSplitFiles | None:
    """`folder` holding images with their XMLs beside them (LabelImg, Roboflow)."""
    if not _has_xml(folder):
        return None
    return VocSplitFiles(name, folder, folder, tuple(_xml_names(folder, recursive=False)),
                         recursive_images=False)


def _devkit(root: Path) -> VocLayout | None:
    years = sorted(p for p in root.iterdir() if p.is_dir() and _YEAR.fullmatch(p.name))
    found = [(y, _annotated(y)) for y in years]
    found = [(y, s) for y, s in found if s]
    if not found:
        return None
    if len(found) == 1:
        return VocLayout(f"VOCdevkit: {found[0][0].name}", found[0][1])
    splits = tuple(replace(s, name=s.name + _YEAR.fullmatch(y.name).group(1))
                   for y, ss in found for s in ss)
    return VocLayout("VOCdevkit: " + ", ".join(y.name for y, _ in found), splits)


def _kind_of(folder: Path, split: VocSplitFiles) -> str:
    if _YEAR.fullmatch(folder.name) and split.image_dir.name == "JPEGImages":
        return f"VOCdevkit: {folder.name}"
    kind = f"{split.ann_dir.name}/ + {split.image_dir.name}/"
    return f"CVAT export: {kind}" if (folder / CVAT_LABELMAP).is_file() else kind


def _split_folders(root: Path) -> VocLayout | None:
    splits, kinds = [], set()
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for sub in sorted(subs, key=lambda p: _split_order(p.name)):
        found = _annotated(sub) or ((_pairs(sub, sub.name),) if _has_xml(sub) else None)
        if not found:
            continue
        for s in found:
            splits.append(replace(s, name=sub.name) if len(found) == 1 else
                          replace(s, name=f"{sub.name}_{s.name}"))
        kinds.add("image + XML pairs" if found[0].ann_dir == sub else
                  f"{found[0].ann_dir.name}/ + {found[0].image_dir.name}/")
    if not splits:
        return None
    tool = "Roboflow export, " if (root / "README.roboflow.txt").is_file() else ""
    return VocLayout(f"{tool}<split>/ folders of {', '.join(sorted(kinds))}", tuple(splits))


def _root(src: Path) -> Path:
    """A VOCdevkit/ inside SRC (as the VOC tarballs unpack) is the root."""
    return src / "VOCdevkit" if (src / "VOCdevkit").is_dir() else src


def detect(src: Path) -> bool:
    """Cheap: does SRC hold VOC XMLs in one of the layouts above?"""
    src = Path(src)
    if not src.is_dir():
        return False
    root = _root(src)
    candidates = [p for p in root.iterdir() if p.is_dir()]
    if _has_xml(root):
        return True
    for folder in [root] + candidates:
        if any(_has_xml(folder / n, depth=2) for n in ANNOTATION_DIRS):
            return True
    return any(_has_xml(p) for p in candidates)


def discover(src: str | Path, *, images: str | Path | None = None) -> VocLayout:
    """Find the splits under SRC and name the layout (see the module docstring)."""
    src = Path(src)
    if not src.is_dir():
        raise InputError(src, "a Pascal VOC folder", "no such directory")
    root = _root(src)
    layout = _devkit(root)
    if layout is None:
        found = _annotated(root)
        if found:
            layout = VocLayout(_kind_of(root, found[0]), found)
    layout = layout or _split_folders(root)
    if layout is None and _has_xml(root):
        layout = VocLayout("image + XML pairs", (_pairs(root, ONE_SPLIT),))
    if layout is None:
        raise InputError(src, "Pascal VOC XMLs: VOCdevkit (Annotations/ + JPEGImages/), "
                         "images/ + annotations/, image + XML pairs, or <split>/ folders "
                         "of these", "none of these")
    if images is not None:
        layout = replace(layout, splits=tuple(replace(s, image_dir=Path(images))
                                              for s in layout.splits))
    return layout


def select_splits(layout: VocLayout, wanted: Sequence[str] | None) -> VocLayout:
    """The layout with only the `wanted` splits, in the order given."""
    if not wanted:
        return layout
    by_name = {s.name: s for s in layout.splits}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise UsageError("--splits", f"names from {sorted(by_name)}", ",".join(missing))
    return replace(layout, splits=tuple(by_name[w] for w in wanted))
