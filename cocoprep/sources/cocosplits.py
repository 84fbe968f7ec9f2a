"""COCO files -> finished splits: what `convert` writes, decided here once.

`load_coco` reads every JSON file of the layout (`layout.discover`), groups
annotations by image, merges keypoint and caption files, maps file names to paths
inside the image folder, makes the label map (with the rule for category id 0) and,
with a ratio, deals one file's images out into train/val(/test). `convert` gets a
`CocoSource` and never comes back here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from cocoprep.errors import InputError, UsageError
from cocoprep.labelmap import LabelMap
from cocoprep.parallel import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources import coco
from cocoprep.sources.coco import Category, CocoFile, KeypointsMark
from cocoprep.sources.layout import (
    CAPTIONS, INSTANCES, KEYPOINTS, Layout, SplitFiles, discover, select_splits,
)

# skip reasons decided while assembling (the worker adds the per-image ones)
UNKNOWN_IMAGE = "unknown_image"
UNMATCHED_KEYPOINTS = "unmatched_keypoints"

RATIO_SPLIT_NAMES = ("train", "val", "test")
_BIG_FILE = 50_000_000  # bytes: a progress bar while reading a JSON file this big


@dataclass
class CocoSplit:
    """A split ready to write: images, and their annotations grouped by image.

    Annotation arrays are sorted by image (file order within an image);
    `ann_start[i]:ann_start[i + 1]` are image i's annotations.
    """

    name: str
    image_dir: Path
    image_ids: np.ndarray
    file_names: list[str]
    widths: np.ndarray
    heights: np.ndarray
    ann_start: np.ndarray
    ann_ids: np.ndarray
    ann_category_ids: np.ndarray
    bbox: np.ndarray
    bbox_status: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    segmentations: list | None = None
    keypoints: list | None = None      # per annotation: tuple of floats or a KeypointsMark
    num_keypoints: int = 0
    captions: list[tuple[str, ...]] | None = None  # per image
    has_objects: bool = True           # False for image_info splits
    categories: list[Category] = field(default_factory=list)
    files: SplitFiles | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def annotation_rows(self, image_row: int) -> range:
        return range(int(self.ann_start[image_row]), int(self.ann_start[image_row + 1]))


def _rows_of(image_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted id in `image_ids`, or -1."""
    if len(image_ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(image_ids, kind="stable")
    sorted_ids = image_ids[order]
    pos = np.searchsorted(sorted_ids, wanted)
    pos_c = np.minimum(pos, len(sorted_ids) - 1)
    found = sorted_ids[pos_c] == wanted
    return np.where(found, order[pos_c], -1)


def assemble_split(name: str, image_dir: Path, main: CocoFile, *,
                   keypoints: CocoFile | None = None, captions: CocoFile | None = None,
                   files: SplitFiles | None = None) -> tuple[CocoSplit, list[SkippedItem]]:
    """Group `main`'s annotations by image, merge keypoints (by annotation id) and
    captions (by image id). Returns the split and the skips found here (annotations
    of unknown images, keypoints without an instance annotation)."""
    skipped: list[SkippedItem] = []
    has_objects = main.kind in (INSTANCES, KEYPOINTS)
    if main.kind == CAPTIONS:
        captions, has_objects = main, False
    m = main.num_annotations if has_objects else 0
    rows = _rows_of(main.image_ids, main.ann_image_ids[:m]) if m else np.zeros(0, np.int64)
    unknown = np.nonzero(rows < 0)[0]
    for k in unknown:
        skipped.append(SkippedItem(name, int(main.ann_image_ids[k]), int(main.ann_ids[k]), None,
                                   UNKNOWN_IMAGE, f"annotation refers to image id "
                                   f"{int(main.ann_image_ids[k])}, which {main.path.name} "
                                   "does not list"))
    known = np.nonzero(rows >= 0)[0]
    order = known[np.argsort(rows[known], kind="stable")]
    counts = np.bincount(rows[known], minlength=main.num_images) if len(known) else \
        np.zeros(main.num_images, np.int64)
    ann_start = np.zeros(main.num_images + 1, np.int64)
    np.cumsum(counts, out=ann_start[1:])
    segs = [main.segmentations[k] for k in order] if main.segmentations is not None else None

    kp_list, num_kp = None, 0
    if keypoints is not None or main.keypoints is not None:
        kp_file = keypoints if keypoints is not None else main
        num_kp = max((len(c.keypoints) for c in kp_file.categories), default=0)
        if kp_file is main:
            kp_list = [main.keypoints[k] for k in order]
        else:
            pos = {int(a): j for j, a in enumerate(main.ann_ids[order])}
            kp_list = [KeypointsMark.ABSENT] * len(order)
            for j in range(kp_file.num_annotations):
                aid = int(kp_file.ann_ids[j])
                p = pos.get(aid)
                if p is None:
                    skipped.append(SkippedItem(
                        name, int(kp_file.ann_image_ids[j]), aid, None, UNMATCHED_KEYPOINTS,
                        f"{kp_file.path.name} has keypoints for annotation {aid}, which "
                        f"{main.path.name} does not list"))
                    continue
                kp_list[p] = kp_file.keypoints[j]
        if num_kp == 0:
            kp_list = None

    caps = None
    if captions is not None:
        cap_rows = _rows_of(main.image_ids, captions.ann_image_ids)
        per_image: list[list[str]] = [[] for _ in range(main.num_images)]
        for j, r in enumerate(cap_rows):
            if r < 0:
                skipped.append(SkippedItem(
                    name, int(captions.ann_image_ids[j]), int(captions.ann_ids[j]), None,
                    UNKNOWN_IMAGE, f"caption refers to image id {int(captions.ann_image_ids[j])}, "
                    f"which {main.path.name} does not list"))
                continue
            per_image[r].append(captions.captions[j])
        caps = [tuple(c) for c in per_image]

    split = CocoSplit(
        name=name, image_dir=Path(image_dir), image_ids=main.image_ids,
        file_names=main.file_names, widths=main.widths, heights=main.heights,
        ann_start=ann_start, ann_ids=main.ann_ids[:m][order],
        ann_category_ids=main.ann_category_ids[:m][order], bbox=main.bbox[:m][order],
        bbox_status=main.bbox_status[:m][order], iscrowd=main.iscrowd[:m][order],
        area=main.area[:m][order], segmentations=segs, keypoints=kp_list,
        num_keypoints=num_kp, captions=caps, has_objects=has_objects,
        categories=list(main.categories) if has_objects else [], files=files,
    )
    return split, skipped


def merge_categories(splits: Sequence[CocoSplit]) -> list[Category]:
    """One category list for all splits, in first-seen order; the same id must
    carry the same name everywhere."""
    merged: dict[int, Category] = {}
    origin: dict[int, str] = {}
    names: dict[str, int] = {}
    for s in splits:
        where = str(s.files.main) if s.files and s.files.main else s.name
        for c in s.categories:
            have = merged.get(c.id)
            if have is None:
                if c.name in names:
                    raise InputError(where, f"category name {c.name!r} to have one id",
                                     f"ids {names[c.name]} and {c.id}")
                merged[c.id] = c
                origin[c.id] = where
                names[c.name] = c.id
            elif have.name != c.name:
                raise InputError(where, f"category id {c.id} to be named {have.name!r} "
                                 f"(as in {origin[c.id]})", repr(c.name))
    return list(merged.values())


# ============================================================== file names

_DRIVE = re.compile(r"^[A-Za-z]:/")


@dataclass(frozen=True)
class NameMapping:
    """How a split's `file_name`s were turned into paths inside its image folder."""

    backslashes: int = 0     # names that used `\\` as separator (Windows exports)
    by_file_name: int = 0    # absolute, upload-style or escaping names, looked up by file name
    example: str | None = None


def _escapes(name: str) -> bool:
    return (name.startswith("/") or bool(_DRIVE.match(name))
            or os.path.normpath(name).split(os.sep, 1)[0] == "..")


def local_names(names: Sequence[str], image_dir: Path) -> tuple[list[str], NameMapping]:
    """File names as paths relative to `image_dir`.

    Backslashes are separators. A name that is absolute (`/data/upload/3/a.jpg`,
    `C:\\...`) or climbs out of the folder (`..\\..\\media\\upload\\4\\a.png`, as Label
    Studio writes them) is looked up by its file name: `<dir>/a.jpg`, else
    `<dir>/images/a.jpg`. Nothing outside `image_dir` is ever named, so the image
    reader's path-safety check still holds for every result.
    """
    out: list[str] = []
    slashes = moved = 0
    example = None
    for name in names:
        local = name
        if "\\" in local:
            local = local.replace("\\", "/")
            slashes += 1
        if _escapes(local):
            base = local.rsplit("/", 1)[-1]
            local = next((c for c in (base, f"images/{base}") if (image_dir / c).is_file()), base)
            moved += 1
            example = example or name
        out.append(local)
    return out, NameMapping(slashes, moved, example)


# ============================================================== reading one split

def _read(path: Path, kind: str, *, masks: bool, quiet: bool) -> CocoFile:
    size = path.stat().st_size if path.exists() else 0
    if size < _BIG_FILE:
        return coco.read_coco_file(path, kind, keep_segmentation=masks)
    with progress_bar(size, f"reading {path.name}", "B", quiet, unit_scale=True) as bar:
        return coco.read_coco_file(path, kind, keep_segmentation=masks, progress=bar.update)


def load_split(files: SplitFiles, *, masks: bool = False,
               quiet: bool = True) -> tuple[CocoSplit, list[SkippedItem], NameMapping]:
    """Read and validate the JSON files of one split into a `CocoSplit`."""
    main_kind = files.main_kind
    main = _read(files.main, main_kind, masks=masks, quiet=quiet)
    keypoints = captions = None
    if files.keypoints is not None and main_kind == INSTANCES:
        keypoints = _read(files.keypoints, KEYPOINTS, masks=False, quiet=quiet)
    if files.captions is not None and main_kind != CAPTIONS:
        captions = _read(files.captions, CAPTIONS, masks=False, quiet=quiet)
    split, skipped = assemble_split(files.name, files.image_dir, main, keypoints=keypoints,
                                    captions=captions, files=files)
    names, mapping = local_names(split.file_names, split.image_dir)
    return replace(split, file_names=names), skipped, mapping


def stratified_split(split: CocoSplit, ratio: Sequence[float], seed: int) -> list[np.ndarray]:
    """Image rows for each ratio part, stratified by category presence.

    Each image's stratum is the rarest category it contains (images without objects
    form their own stratum). Strata are shuffled with `seed` and dealt out in turn to
    the part furthest below its share, so every part gets its share of every
    stratum (within one image) and of the whole (within one image).
    """
    n = split.num_images
    rng = np.random.default_rng(seed)
    cats = split.ann_category_ids
    freq: dict[int, int] = {}
    if len(cats):
        uniq, counts = np.unique(cats, return_counts=True)
        freq = dict(zip(uniq.tolist(), counts.tolist()))
    strata: dict[tuple, list[int]] = {}
    for row in range(n):
        present = set(cats[split.ann_start[row]:split.ann_start[row + 1]].tolist())
        key = min(((freq[c], c) for c in present), default=(-1, -1))
        strata.setdefault(key, []).append(row)
    assigned = [0] * len(ratio)
    parts: list[list[int]] = [[] for _ in ratio]
    total = 0
    for key in sorted(strata):
        rows = np.array(strata[key], dtype=np.int64)
        rows = rows[rng.permutation(len(rows))]
        for r in rows.tolist():
            total += 1
            j = max(range(len(ratio)), key=lambda i: (ratio[i] * total - assigned[i], -i))
            assigned[j] += 1
            parts[j].append(r)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


# ============================================================== labels

@dataclass(frozen=True)
class LabelPlan:
    """The label map and, per COCO category id, its (label-map id, name)."""

    label_map: LabelMap
    labels: dict[int, tuple[int, str]]
    notes: tuple[str, ...] = ()
    contiguous: bool = False


def plan_labels(splits: Sequence[CocoSplit], *, contiguous_ids: bool = False) -> LabelPlan:
    """The label map of all splits. label_map.pbtxt keeps id 0 for the background, so
    a category 0 needs a rule, and takes no option:

    * owning no annotation (Roboflow's dataset superclass, supercategory "none"):
      left out of the label map; the other ids keep their numbers;
    * owning annotations (Label Studio numbers categories from 0): ids become 1..N
      in category order, as `--contiguous-ids` makes them (one renumbering rule,
      and the same label map whatever ids the tool happened to start from).
    """
    categories = merge_categories(splits)
    notes: list[str] = []
    zero = next((c for c in categories if c.id == 0), None)
    if zero is not None:
        used = any((s.ann_category_ids == 0).any() for s in splits)
        if not used:
            categories = [c for c in categories if c.id != 0]
            notes.append(f"category 0 ({zero.name!r}) has no annotations (a dataset "
                         "superclass, as Roboflow adds): left out of the label map; "
                         "the other categories keep their ids")
        elif not contiguous_ids:
            contiguous_ids = True
            notes.append(f"category ids start at 0 ({zero.name!r}), which label maps keep "
                         "for the background: ids renumbered 1..N in category order")
    if contiguous_ids:
        label_map = LabelMap.from_names(c.name for c in categories)
    else:
        label_map = LabelMap.from_pairs((c.id, c.name) for c in categories)
    labels = {c.id: (label_map.id_of(c.name), c.name) for c in categories}
    return LabelPlan(label_map, labels, tuple(notes), contiguous_ids)


# ============================================================== the whole source

@dataclass(frozen=True)
class OutputSplit:
    """One split to write: the `CocoSplit` its rows index, and the rows (JSON order)."""

    name: str
    source: CocoSplit
    rows: np.ndarray


@dataclass(frozen=True)
class CocoSource:
    """What `convert` writes: finished splits, their labels, the skips found while
    reading, and what was understood (layout, notes for the summary)."""

    layout: Layout
    splits: tuple[OutputSplit, ...]
    labels: LabelPlan
    skipped: tuple[SkippedItem, ...]
    notes: tuple[str, ...]
    read: tuple[CocoSplit, ...] = ()  # the splits as read, before --ratio
    mappings: dict[str, NameMapping] = field(default_factory=dict)  # by read split name

    def source_paths(self) -> dict[str, dict[str, str]]:
        return {s.name: s.files.paths() for s in self.read if s.files is not None}


def _name_notes(mappings: Sequence[tuple[CocoSplit, NameMapping]]) -> list[str]:
    notes = []
    for split, m in mappings:
        if m.by_file_name:
            notes.append(f"{split.name}: {m.by_file_name} file name(s) were absolute or "
                         f"outside the image folder (e.g. {m.example!r}); each was looked "
                         f"up by its file name in {split.image_dir}")
        if m.backslashes:
            notes.append(f"{split.name}: {m.backslashes} file name(s) use \\ as separator "
                         "(Windows); read as /")
    return notes


def load_coco(src: str | Path, *, images: str | Path | None = None,
              splits: Sequence[str] | None = None, ratio: Sequence[float] | None = None,
              seed: int = 0, masks: bool = False, contiguous_ids: bool = False,
              quiet: bool = True) -> CocoSource:
    """Discover, read and validate a COCO source into finished splits (all whole-input
    errors are raised here, before anything is written)."""
    layout = select_splits(discover(src, images=images), splits)
    if ratio is not None and len(layout.splits) != 1:
        raise UsageError("--ratio", "exactly one annotation file to split (pick one with "
                         "--splits or give the JSON file)",
                         ",".join(s.name for s in layout.splits))
    loaded: list[CocoSplit] = []
    skipped: list[SkippedItem] = []
    mappings = []
    for files in layout.splits:
        split, skips, mapping = load_split(files, masks=masks, quiet=quiet)
        loaded.append(split)
        skipped.extend(skips)
        mappings.append((split, mapping))
    labels = plan_labels(loaded, contiguous_ids=contiguous_ids)
    if ratio is not None:
        source = loaded[0]
        names = RATIO_SPLIT_NAMES[:len(ratio)]
        parts = stratified_split(source, ratio, seed)
        outputs = tuple(OutputSplit(n, source, rows) for n, rows in zip(names, parts))
        skipped = [replace(s, split=names[0]) for s in skipped]
    else:
        outputs = tuple(OutputSplit(s.name, s, np.arange(s.num_images, dtype=np.int64))
                        for s in loaded)
    notes = tuple(_name_notes(mappings)) + labels.notes
    return CocoSource(layout, outputs, labels, tuple(skipped), notes, tuple(loaded),
                      {split.name: m for split, m in mappings})
