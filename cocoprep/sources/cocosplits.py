"""COCO files -> finished splits (`sources.detection`'s contract).

`load` reads every JSON file of the layout (`layout.discover`), groups
annotations by image, merges keypoint and caption files, maps file names to paths
inside the image folder, makes the label map (with the rule for category id 0) and,
with a ratio, deals one file's images out into train/val(/test). `convert` gets a
`DetectionSource` and never comes back here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from cocoprep.errors import UNKNOWN_IMAGE, UNMATCHED_KEYPOINTS, InputError, UsageError
from cocoprep.labelmap import LabelMap
from cocoprep.losses import missing_files_hint
from cocoprep.progress import progress_bar
from cocoprep.records import SkippedItem
from cocoprep.sources import coco
from cocoprep.sources.coco import Category, CocoFile, KeypointsMark
from cocoprep.sources.segstore import take
from cocoprep.sources.detection import (
    DetectionSource, DetectionSplit, LabelPlan, OutputSplit, SourceRequest, output_splits,
    unlisted_images,
)
from cocoprep.sources.layout import (
    CAPTIONS, FIFTYONE_NAME, INSTANCES, KEYPOINTS, LABEL_STUDIO_NAME, ROBOFLOW_NAME,
    SplitFiles, discover, select_splits,
)

FORMAT = "coco"
TITLE = "COCO"
OPTIONS = ("--contiguous-ids",)  # what `sources._FORMAT_OPTIONS` lets through
EXPECTED = ("a COCO root (annotations/instances_<split>.json), a Roboflow, CVAT, Label Studio "
            "or FiftyOne COCO export, or a COCO JSON file")
_BIG_FILE = 50_000_000  # bytes: a progress bar while reading a JSON file this big


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


def _merged_keypoints(name: str, main: CocoFile, order: np.ndarray,
                      keypoints: CocoFile | None, skipped: list[SkippedItem]):
    """Per annotation (in `order`) its keypoints, from `main` or from a separate
    person_keypoints file matched by annotation id; and the keypoints per object."""
    if keypoints is None and main.keypoints is None:
        return None, 0
    kp_file = keypoints if keypoints is not None else main
    num_kp = max((len(c.keypoints) for c in kp_file.categories), default=0)
    if kp_file is main:
        return ([main.keypoints[k] for k in order] if num_kp else None), num_kp
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
    return (kp_list if num_kp else None), num_kp


def _merged_captions(name: str, main: CocoFile, captions: CocoFile | None,
                     skipped: list[SkippedItem]) -> list[tuple[str, ...]] | None:
    """Per image of `main` its captions (matched by image id)."""
    if captions is None:
        return None
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
    return [tuple(c) for c in per_image]


def assemble_split(name: str, image_dir: Path, main: CocoFile, *,
                   keypoints: CocoFile | None = None, captions: CocoFile | None = None,
                   files: SplitFiles | None = None) -> tuple[DetectionSplit, list[SkippedItem]]:
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
    segs = take(main.segmentations, order)

    kp_list, num_kp = _merged_keypoints(name, main, order, keypoints, skipped)
    caps = _merged_captions(name, main, captions, skipped)

    split = DetectionSplit(
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


def merge_categories(splits: Sequence[DetectionSplit]) -> list[Category]:
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
               quiet: bool = True) -> tuple[DetectionSplit, list[SkippedItem], NameMapping]:
    """Read and validate the JSON files of one split into a `DetectionSplit`."""
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


# ============================================================== labels

def plan_labels(splits: Sequence[DetectionSplit], *, contiguous_ids: bool = False) -> LabelPlan:
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

def _name_notes(mappings: Sequence[tuple[DetectionSplit, NameMapping]]) -> list[str]:
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


def detect(src: Path) -> bool:
    """A JSON file, or a folder in one of the COCO layouts `layout.discover` knows."""
    src = Path(src)
    if src.is_file():
        return src.suffix.lower() == ".json"
    if not src.is_dir():
        return False
    names = (ROBOFLOW_NAME, LABEL_STUDIO_NAME, FIFTYONE_NAME)
    return (any((src / "annotations").glob("*.json")) or any((src / n).is_file() for n in names)
            or any(src.glob(f"*/{ROBOFLOW_NAME}")))


def load(src: str | Path, request: SourceRequest) -> DetectionSource:
    """Discover, read and validate a COCO source into finished splits (all whole-input
    errors are raised here, before anything is written)."""
    layout = select_splits(discover(src, images=request.images), request.splits)
    if request.ratio is not None and len(layout.splits) != 1:
        raise UsageError("--ratio", "exactly one annotation file to split (pick one with "
                         "--splits or give the JSON file)",
                         ",".join(s.name for s in layout.splits))
    loaded: list[DetectionSplit] = []
    skipped: list[SkippedItem] = []
    mappings = []
    for files in layout.splits:
        split, skips, mapping = load_split(files, masks=request.masks, quiet=request.quiet)
        loaded.append(split)
        skipped.extend(skips)
        mappings.append((split, mapping))
    labels = plan_labels(loaded, contiguous_ids=request.contiguous_ids)
    skipped.extend(unlisted_images(loaded, listed_by="annotation file"))
    outputs, skipped = output_splits(loaded, ratio=request.ratio, seed=request.seed,
                                     skipped=skipped)
    return DetectionSource(
        format=FORMAT, layout=layout.describe(), splits=outputs, labels=labels,
        skipped=skipped, notes=tuple(_name_notes(mappings)) + labels.notes,
        source_paths={s.name: s.files.paths() for s in loaded if s.files is not None},
        missing_hint=_missing_files_hint(outputs, {s.name: m for s, m in mappings}),
    )


def _missing_files_hint(outputs: Sequence[OutputSplit], mappings: dict[str, NameMapping]):
    """Where the missing images of an output split might be (for the loss check)."""
    by_name = {s.name: s for s in outputs}

    def hint(loss, items) -> str | None:
        out_split = by_name.get(loss.split)
        if out_split is None:
            return None
        read = out_split.source
        mapping = mappings.get(read.name)
        json_dir = read.files.main.parent if read.files and read.files.main else None
        return missing_files_hint(read.image_dir, items, images_written=loss.images_written,
                                  renamed_example=mapping.example if mapping else None,
                                  search_from=json_dir.parent if json_dir else None)

    return hint
