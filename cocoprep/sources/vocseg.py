"""Pascal VOC segmentation -> finished segmentation splits (`sources.segmentation`).

Layouts: a VOCdevkit year folder (`VOC2012/`, or several under `VOCdevkit/`: split
names then carry the year) or any folder with `SegmentationClass/` (masks, one PNG
per id), `JPEGImages/` (images) and `ImageSets/Segmentation/<split>.txt` (ids per
split; `trainval` is left out when `train` and `val` exist, so nothing is written
twice; without lists every mask is one split, `train`).

Masks:
* VOC's own: palette PNGs whose indices are the class ids (never read as colours),
  255 the void border; the 21 VOC classes (`background` = 0).
* CVAT "Segmentation mask 1.1" and Datumaro: the same layout with RGB masks and
  `labelmap.txt` (`name:r,g,b:parts:actions`) giving the classes in id order and
  their colours; an empty colour field is the VOC colormap's colour at that
  label's index. A colour not in the table is a skip naming the file and colour.
  The VOC void colour (224, 224, 192) is void unless a label uses it.

A devkit that also has detection XMLs in `Annotations/` stays a detection source
unless `--task segmentation` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cocoprep.errors import MISSING_FILE, MISSING_MASK, InputError
from cocoprep.records import SkippedItem
from cocoprep.schema import VOID_ID
from cocoprep.sources import voclayout
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.layout import list_images
from cocoprep.sources.segmentation import (
    MaskCodec, SegItem, SegmentationSource, SegmentationSplit, check_num_classes, find_names,
    label_map_of, list_files, ratio_splits, read_names, select, voc_colour,
)

TITLE = "Pascal VOC"
FORMAT = "voc_segmentation"
EXPECTED = ("Pascal VOC segmentation (SegmentationClass/ + JPEGImages/ + "
            "ImageSets/Segmentation/, VOCdevkit or a CVAT/Datumaro export)")
MASK_DIR = "SegmentationClass"
IMAGE_DIR = "JPEGImages"
LISTS = ("ImageSets", "Segmentation")
LABELMAP = "labelmap.txt"
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
_YEAR = re.compile(r"VOC(\d{4})", re.IGNORECASE)
_ORDER = {"train": 0, "trainval": 1, "val": 2, "test": 3, "default": 4}


@dataclass(frozen=True)
class _Folder:
    """One folder of the layout (a devkit year or an export) and its split prefix."""

    path: Path
    year: str = ""


def _is_seg_folder(folder: Path) -> bool:
    masks = folder / MASK_DIR
    return masks.is_dir() and any(p.suffix.lower() == ".png" for p in masks.iterdir())


def _folders(src: Path) -> list[_Folder]:
    root = src / "VOCdevkit" if (src / "VOCdevkit").is_dir() else src
    if _is_seg_folder(root):
        return [_Folder(root)]
    years = sorted(p for p in root.iterdir() if p.is_dir() and _YEAR.fullmatch(p.name))
    found = [y for y in years if _is_seg_folder(y)]
    if len(found) == 1:
        return [_Folder(found[0])]
    return [_Folder(y, _YEAR.fullmatch(y.name).group(1)) for y in found]


def detect(src: Path, *, forced: bool = False) -> bool:
    src = Path(src)
    if not src.is_dir() or not _folders(src):
        return False
    return forced or not voclayout.detect(src)


def _lists(folder: Path) -> dict[str, list[str]]:
    """Ids per split from ImageSets/Segmentation (no trainval beside train + val)."""
    lists_dir = folder.joinpath(*LISTS)
    if not lists_dir.is_dir():
        return {}
    found = {p.stem: p for p in lists_dir.glob("*.txt") if p.is_file()}
    if "train" in found and "val" in found:
        found.pop("trainval", None)
    out = {}
    for name in sorted(found, key=lambda n: (_ORDER.get(n, len(_ORDER)), n)):
        ids: dict[str, None] = {}
        for line in found[name].read_text(encoding="utf-8", errors="replace").splitlines():
            if line.split():
                ids.setdefault(line.split()[0], None)
        out[name] = list(ids)
    return out


def _split(name: str, folder: Path, ids: list[str], images: dict[str, str],
           masks: set[str]) -> tuple[SegmentationSplit, list[SkippedItem]]:
    items, skipped = [], []
    for i in ids:
        if i not in images:
            skipped.append(SkippedItem(name, i, None, f"{i}.jpg", MISSING_FILE,
                                       f"no image {i}.* in {folder / IMAGE_DIR}"))
        elif f"{i}.png" not in masks:
            skipped.append(SkippedItem(name, i, None, images[i], MISSING_MASK,
                                       f"no mask {i}.png in {folder / MASK_DIR}"))
        else:
            items.append(SegItem(images[i], f"{i}.png", i))
    return SegmentationSplit(name, folder / IMAGE_DIR, folder / MASK_DIR, tuple(items)), skipped


def _read_folder(f: _Folder) -> tuple[list[SegmentationSplit], list[SkippedItem]]:
    if not (f.path / IMAGE_DIR).is_dir():
        raise InputError(f.path, f"an image folder {IMAGE_DIR}/ beside {MASK_DIR}/", "none")
    images = {}
    for n in list_images(f.path / IMAGE_DIR, recursive=False):
        images.setdefault(n.rsplit(".", 1)[0], n)
    masks = set(list_files(f.path / MASK_DIR, (".png",)))
    lists = _lists(f.path) or {voclayout.ONE_SPLIT: sorted(m[:-4] for m in masks)}
    splits, skipped = [], []
    for name, ids in lists.items():
        split, skips = _split(name + f.year, f.path, ids, images, masks)
        splits.append(split)
        skipped += skips
    return splits, skipped


def _labelmap(path: Path) -> tuple[tuple[str, ...], list[tuple[int, int]]]:
    """CVAT/Datumaro labelmap.txt: names in id order and (colour, id) pairs."""
    names, colours = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        colour = rest.split(":")[0].strip()
        index = len(names)
        names.append(name.strip())
        if not colour:
            colours.append((voc_colour(index), index))
            continue
        try:
            r, g, b = (int(v) for v in colour.split(","))
        except ValueError:
            raise InputError(f"{path}:{number}", "name:r,g,b:parts:actions (or an empty "
                             "colour)", repr(line)) from None
        colours.append(((r << 16) | (g << 8) | b, index))
    if not names:
        raise InputError(path, "labels, one per line (name:r,g,b::)", "none")
    return tuple(names), colours


def _classes(folders: list[_Folder], request: SourceRequest
             ) -> tuple[tuple[str, ...], MaskCodec, str]:
    """Names by id, the codec and where the names came from."""
    labelmap = next((f.path / LABELMAP for f in folders if (f.path / LABELMAP).is_file()), None)
    if labelmap is None and (folders[0].path.parent / LABELMAP).is_file():
        labelmap = folders[0].path.parent / LABELMAP
    if labelmap is not None and not request.classes:
        names, colours = _labelmap(labelmap)
        origin = str(labelmap)
    else:
        path = find_names([f.path for f in folders])
        names, origin = VOC_CLASSES, "the 21 Pascal VOC classes"
        if request.classes:
            names, origin = tuple(request.classes), "--classes"
        elif path is not None:
            names, origin = read_names(path), str(path)
        colours = [(voc_colour(i), i) for i in range(len(names))]
    check_num_classes(names, origin)
    void = voc_colour(VOID_ID)
    if void not in {c for c, _ in colours}:
        colours.append((void, VOID_ID))
    return names, MaskCodec.identity(len(names), colours=colours), origin


def load(src: Path, request: SourceRequest) -> SegmentationSource:
    folders = _folders(Path(src))
    if not folders:
        raise InputError(src, EXPECTED, "none of these")
    splits, skipped = [], []
    for f in folders:
        s, k = _read_folder(f)
        splits += s
        skipped += k
    splits = list(select(splits, request.splits))
    kept = {s.name for s in splits}
    skipped = [k for k in skipped if k.split in kept]
    if request.images is not None:
        splits = [SegmentationSplit(s.name, Path(request.images), s.mask_dir, s.items)
                  for s in splits]
    names, codec, origin = _classes(folders, request)
    out, skipped_out = ratio_splits(splits, request.ratio, request.seed, skipped)
    where = ", ".join(f.path.name for f in folders)
    kind = "CVAT/Datumaro export" if origin.endswith(LABELMAP) else "Pascal VOC"
    layout = (f"{kind} segmentation ({where}): split{'s' if len(out) != 1 else ''} "
              + ", ".join(s.name for s in out))
    notes = (f"class names from {origin}; palette masks read as indices, {VOID_ID} is void",)
    return SegmentationSource(FORMAT, layout, out, label_map_of(names), codec,
                              tuple(skipped_out), notes)
