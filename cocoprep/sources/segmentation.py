"""The one contract every segmentation source meets: finished splits.

A format module (`sources.vocseg`, `sources.maskpairs`) exposes `FORMAT`, `EXPECTED`,
`detect(src, *, forced=False) -> bool` and `load(src, request) -> SegmentationSource`.
What it returns is the same value whatever the format: per split, the image and
mask file of every item (`SegmentationSplit`), the label map (ids 0..N-1 in mask
order, background included where the format has one), how the format's mask pixels
become those ids (`MaskCodec`), the items it already had to skip, and what it
understood. The builder, the writer and the runners never learn which format it was.

`detect(src)` claims a tree only when it holds masks and no detection annotations
(a VOCdevkit with Annotations/ stays a detection source); `forced=True` (the user
gave `--task segmentation`) drops that condition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cocoprep.errors import MISSING_FILE, MISSING_MASK, InputError, UsageError
from cocoprep.images import IMAGE_EXTENSIONS
from cocoprep.labelmap import LabelMap
from cocoprep.ratio import allocate
from cocoprep.records import SkippedItem
from cocoprep.schema import VOID_ID

UNKNOWN = -1            # a mask value (or colour) the label map does not name
NAME_FILES = ("classes.txt", "labels.txt")
MASK_EXTENSIONS = (".png",)
RATIO_SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class MaskCodec:
    """How a format's mask pixels become label-map ids (0..254) or the void id.

    `values[v]` is the id of index/grey value `v` (0..255; `UNKNOWN` when the label
    map does not name it); None: the format's masks are colour masks only (a palette
    or grey mask is read by its colours). `colours` maps 0xRRGGBB to an id, for RGB
    masks (and palette masks of a colour-only format).
    """

    values: tuple[int, ...] | None
    colours: tuple[tuple[int, int], ...] = ()

    @classmethod
    def identity(cls, num_classes: int, *, colours: Sequence[tuple[int, int]] = ()) -> "MaskCodec":
        """Values 0..num_classes-1 are the ids themselves, VOID_ID is void."""
        values = [v if v < num_classes else UNKNOWN for v in range(256)]
        values[VOID_ID] = VOID_ID
        return cls(tuple(values), tuple(sorted(colours)))

    @cached_property
    def lut(self) -> np.ndarray:
        """`values` as a 65536-entry table (16-bit masks: values over 255 are unknown)."""
        table = np.full(65536, UNKNOWN, np.int16)
        if self.values is not None:
            table[:256] = self.values
        return table

    @cached_property
    def colour_ids(self) -> dict[int, int]:
        return dict(self.colours)

    def __getstate__(self):  # the tables are rebuilt in each worker, not pickled
        return {k: v for k, v in self.__dict__.items() if k in ("values", "colours")}


def voc_colour(index: int) -> int:
    """The Pascal VOC colormap's colour of `index` as 0xRRGGBB: the index's bits
    spread over R, G and B (bit 0 -> R, 1 -> G, 2 -> B), from the high bit down."""
    r = g = b = 0
    c = index
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return (r << 16) | (g << 8) | b


def rgb_text(colour: int) -> str:
    return f"({colour >> 16}, {(colour >> 8) & 255}, {colour & 255})"


@dataclass(frozen=True)
class SegItem:
    """One image and its mask, relative to the split's folders. A panoptic mask
    (COCO panoptic: segment id = R + 256 G + 256^2 B) comes with `segments`, one row
    per segment: segment id, label-map id, is-thing, is-crowd (int64, shape (k, 4))."""

    image: str
    mask: str
    source_id: str
    segments: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SegmentationSplit:
    """A split ready to write. COCO instances (`--task segmentation`) draw their masks:
    `instances` is then a `sources.detection.DetectionSplit` whose image row i is
    item i, and `labels` maps its category ids to label-map ids."""

    name: str
    image_dir: Path
    mask_dir: Path
    items: tuple[SegItem, ...]
    instances: Any = field(default=None, compare=False, repr=False)
    labels: dict[int, int] | None = None

    def paths(self) -> dict[str, str]:
        return {"images": str(self.image_dir), "masks": str(self.mask_dir)}


@dataclass(frozen=True)
class SegmentationSource:
    """What `convert --task segmentation` writes: finished splits, the label map
    (ids in mask order), the mask codec, skips found while reading, and what was
    understood (`layout`: the summary's first line)."""

    format: str
    layout: str
    splits: tuple[SegmentationSplit, ...]
    label_map: LabelMap
    codec: MaskCodec
    skipped: tuple[SkippedItem, ...] = ()
    notes: tuple[str, ...] = ()
    fixes: dict[str, str] = field(default_factory=dict)
    # panoptic sources: the bits of every instance mask (16 when an image has more
    # than 255 instances: one depth for the whole output, so readers decode it one way)
    instance_bits: int | None = None

    @property
    def source_paths(self) -> dict[str, dict[str, str]]:
        return {s.name: s.paths() for s in self.splits}


# ------------------------------------------------------------------ shared helpers

def list_files(folder: Path, extensions: Sequence[str]) -> list[str]:
    """Files under `folder` (recursive, "/" separators, sorted) with one of `extensions`."""
    out = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        out += [f if rel == "." else f"{rel}/{f}" for f in files
                if f.lower().endswith(tuple(extensions)) and not f.startswith(".")]
    return sorted(out)


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name


def _by_stem(names: Sequence[str], suffix: str) -> dict[str, str]:
    """Files by path without extension, less `suffix`; with a suffix, only the files
    that carry it (Cityscapes keeps _color.png beside _labelIds.png)."""
    out = {}
    for n in names:
        stem = _stem(n)
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[:-len(suffix)]
        out[stem] = n
    return out


def pair_items(split: str, image_dir: Path, mask_dir: Path, *, mask_suffix: str = "",
               image_suffix: str = "") -> tuple[tuple[SegItem, ...], tuple[SkippedItem, ...]]:
    """Images and masks matched by their path without extension (and without
    `image_suffix` / `mask_suffix`, e.g. Cityscapes' `_leftImg8bit` and
    `_gtFine_labelIds`): an image without a mask and a mask without an image are
    skips naming the file."""
    images = _by_stem(list_files(image_dir, IMAGE_EXTENSIONS), image_suffix)
    masks = _by_stem(list_files(mask_dir, MASK_EXTENSIONS), mask_suffix)
    if mask_suffix and image_dir == mask_dir:  # masks beside their images (Roboflow)
        images = {k: v for k, v in images.items() if not _stem(v).endswith(mask_suffix)}
    items, skipped = [], []
    for stem in sorted(set(images) | set(masks)):
        if stem in images and stem in masks:
            items.append(SegItem(images[stem], masks[stem], stem))
        elif stem in images:
            skipped.append(SkippedItem(split, stem, None, images[stem], MISSING_MASK,
                                       f"no mask {stem}{mask_suffix}.png in {mask_dir}"))
        else:
            skipped.append(SkippedItem(split, stem, None, masks[stem], MISSING_FILE,
                                       f"mask {masks[stem]} has no image {stem}{image_suffix}.* "
                                       f"in {image_dir}"))
    return tuple(items), tuple(skipped)


def read_names(path: Path) -> tuple[str, ...]:
    """Class names, one per line, in id order (blank lines at the end ignored)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, "a readable UTF-8 file of class names", str(e)) from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines or any(not n for n in lines):
        raise InputError(path, "one class name per line, none blank",
                         "a blank line" if lines else "no names")
    if len(set(lines)) != len(lines):
        dup = next(n for n in lines if lines.count(n) > 1)
        raise InputError(path, "each class name once", f"{dup!r} twice")
    return tuple(lines)


def find_names(folders: Sequence[Path]) -> Path | None:
    """The first classes.txt / labels.txt in `folders`."""
    for folder in folders:
        for name in NAME_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def check_num_classes(names: Sequence[str], where: str) -> None:
    if len(names) > VOID_ID:
        raise InputError(where, f"at most {VOID_ID} classes (ids 0..{VOID_ID - 1}; "
                         f"{VOID_ID} is void in an 8-bit mask)", f"{len(names)}")


def label_map_of(names: Sequence[str]) -> LabelMap:
    """Ids 0..N-1 in mask order (0 is whatever class the format puts there)."""
    return LabelMap.from_names(names, start=0)


def select(splits: Sequence[SegmentationSplit], wanted: Sequence[str] | None
           ) -> tuple[SegmentationSplit, ...]:
    if not wanted:
        return tuple(splits)
    by_name = {s.name: s for s in splits}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise UsageError("--splits", f"names from {sorted(by_name)}", ",".join(missing))
    return tuple(by_name[w] for w in wanted)


def ratio_splits(splits: Sequence[SegmentationSplit], ratio: Sequence[float] | None,
                 seed: int, skipped: Sequence[SkippedItem] = ()
                 ) -> tuple[tuple[SegmentationSplit, ...], tuple[SkippedItem, ...]]:
    """With `ratio`, the one split dealt out into train/val(/test): a seeded shuffle
    cut at the ratio's boundaries (its skips then count against train)."""
    if ratio is None:
        return tuple(splits), tuple(skipped)
    if len(splits) != 1:
        raise UsageError("--ratio", "exactly one split to deal out (pick one with --splits)",
                         ",".join(s.name for s in splits))
    source = splits[0]
    order = np.random.default_rng(seed).permutation(len(source.items)).tolist()
    names = RATIO_SPLIT_NAMES[:len(ratio)]
    out, lo = [], 0
    for name, count in zip(names, allocate(len(order), [Fraction(r) for r in ratio])):
        rows = sorted(order[lo:lo + count])
        out.append(replace(source, name=name, items=tuple(source.items[r] for r in rows)))
        lo += count
    return tuple(out), tuple(replace(s, split=names[0]) for s in skipped)
