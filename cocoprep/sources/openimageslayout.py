"""Where an Open Images download keeps its files.

* The official V6/V7 CSVs: `<split>-annotations-bbox.csv` (also `oidv6-train-...`),
  `<split>-annotations-human-imagelabels[-boxable].csv`, the class descriptions
  (`oidv7-class-descriptions-boxable.csv`, `class-descriptions-boxable.csv`, the
  full `oidv7-class-descriptions.csv` for image labels), in SRC or its
  `annotations/` folder (Datumaro); images `ImageID.jpg` in `<split>/`,
  `images/<split>/` (Datumaro) or `images/`.
* FiftyOne's download: `<split>/data/` + `<split>/labels/detections.csv`
  (+ `classifications.csv`) + `<split>/metadata/classes.csv`; SRC is one split
  folder or holds several.
* Masks (`--masks`): `<split>-annotations-object-segmentation.csv` beside the box CSV
  and the PNGs of the `<split>-masks-<0-f>.zip` files in `masks/<split>/` (Datumaro)
  or `<split>-masks/`, each zip extracted flat or into its own subfolder; FiftyOne:
  `<split>/labels/segmentations.csv` + `<split>/labels/masks/<0-F>/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cocoprep.errors import InputError, UsageError

_BBOX = re.compile(r"^(?:oidv\d+-)?(?P<split>[a-z]+)-annotations-bbox\.csv$")
_LABELS = r"^(?:oidv\d+-)?{split}-annotations-human-imagelabels(?:-boxable)?\.csv$"
_BOXABLE = re.compile(r"^(?:oidv\d+-)?class-descriptions-boxable\.csv$")
_ALL_CLASSES = re.compile(r"^(?:oidv\d+-)?class-descriptions\.csv$")
FIFTYONE_BOXES = ("labels", "detections.csv")
FIFTYONE_LABELS = ("labels", "classifications.csv")
FIFTYONE_CLASSES = ("metadata", "classes.csv")
_SEGMENTATION = r"^(?:oidv\d+-)?{split}-annotations-object-segmentation\.csv$"
FIFTYONE_SEGMENTATION = ("labels", "segmentations.csv")
FIFTYONE_MASKS = ("labels", "masks")


@dataclass(frozen=True)
class OidSplitFiles:
    name: str
    boxes: Path
    image_dir: Path
    image_labels: Path | None = None
    segmentation: Path | None = None    # the object-segmentation CSV (--masks)
    mask_dirs: tuple[Path, ...] = ()    # the folders that may hold its mask PNGs


@dataclass(frozen=True)
class OidLayout:
    kind: str
    splits: tuple[OidSplitFiles, ...]
    classes: tuple[Path, ...]         # descriptions: boxable first, then the full list

    def describe(self) -> str:
        names = ", ".join(s.name for s in self.splits)
        return f"Open Images ({self.kind}): split{'s' if len(self.splits) != 1 else ''} {names}"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _csv_folder(src: Path) -> Path | None:
    for folder in (src, src / "annotations"):
        if any(_BBOX.match(p.name) for p in _files(folder)):
            return folder
    return None


def _fiftyone_splits(src: Path) -> list[Path]:
    if src.joinpath(*FIFTYONE_BOXES).is_file():
        return [src]
    return sorted(p for p in src.iterdir() if p.is_dir() and p.joinpath(*FIFTYONE_BOXES).is_file())


def detect(src: Path) -> bool:
    src = Path(src)
    return src.is_dir() and (_csv_folder(src) is not None or bool(_fiftyone_splits(src)))


def _image_dir(src: Path, split: str) -> Path:
    for folder in (src / split, src / "images" / split, src / "images"):
        if folder.is_dir():
            return folder
    return src / split


def _mask_dirs(candidates: Sequence[Path]) -> tuple[Path, ...]:
    """The existing mask folders and their subfolders (one per extracted zip)."""
    found: list[Path] = []
    for folder in candidates:
        if folder.is_dir():
            found += [folder] + sorted(p for p in folder.iterdir() if p.is_dir())
    return tuple(found)


def _official(src: Path, folder: Path) -> OidLayout:
    files = _files(folder)
    splits = []
    for p in files:
        m = _BBOX.match(p.name)
        if not m:
            continue
        name = m.group("split")
        pattern = re.compile(_LABELS.format(split=re.escape(name)))
        labels = next((f for f in files if pattern.match(f.name)), None)
        seg = re.compile(_SEGMENTATION.format(split=re.escape(name)))
        splits.append(OidSplitFiles(
            name, p, _image_dir(src, name), labels,
            next((f for f in files if seg.match(f.name)), None),
            _mask_dirs([src / "masks" / name, src / f"{name}-masks"])))
    classes = ([p for p in files if _BOXABLE.match(p.name)]
               + [p for p in files if _ALL_CLASSES.match(p.name)])
    kind = ("Datumaro: annotations/*.csv + images/<split>/" if folder != src
            else "<split>-annotations-bbox.csv + <split>/")
    return OidLayout(kind, tuple(splits), tuple(classes))


def _fiftyone(src: Path, folders: list[Path]) -> OidLayout:
    splits, classes = [], []
    for f in folders:
        labels = f.joinpath(*FIFTYONE_LABELS)
        seg = f.joinpath(*FIFTYONE_SEGMENTATION)
        splits.append(OidSplitFiles(f.name, f.joinpath(*FIFTYONE_BOXES), f / "data",
                                    labels if labels.is_file() else None,
                                    seg if seg.is_file() else None,
                                    _mask_dirs([f.joinpath(*FIFTYONE_MASKS)])))
        for candidate in (f.joinpath(*FIFTYONE_CLASSES), f.parent.joinpath(*FIFTYONE_CLASSES)):
            if candidate.is_file() and candidate not in classes:
                classes.append(candidate)
    return OidLayout("FiftyOne: data/ + labels/detections.csv", tuple(splits), tuple(classes))


def discover(src: Path, wanted: Sequence[str] | None) -> OidLayout:
    folder = _csv_folder(src)
    if folder is not None:
        layout = _official(src, folder)
    else:
        found = _fiftyone_splits(src)
        if not found:
            raise InputError(src, "Open Images CSVs (<split>-annotations-bbox.csv, or "
                             "FiftyOne's labels/detections.csv)", "none")
        layout = _fiftyone(src, found)
    if wanted:
        have = {s.name: s for s in layout.splits}
        for n in wanted:
            if n not in have:
                raise UsageError("--splits", f"splits of this Open Images folder "
                                 f"({', '.join(have)})", n)
        layout = OidLayout(layout.kind, tuple(have[n] for n in wanted), layout.classes)
    return layout
