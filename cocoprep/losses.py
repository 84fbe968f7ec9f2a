"""The never-silent rule: a run that lost most of a split is an error.

One home for convert and split. After the output is written (so it can still be
inspected and verified, as with `--strict`), a split with no image written, or
one that lost more than half of its images or of its objects, fails the run with
one message: what was lost, the reasons, and the most likely fix, computed from the
skip reasons. `--allow-partial` accepts such a run deliberately.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from cocoprep.errors import (
    DELIBERATE, IMAGE_SKIPPED, MISSING_FILE, DataLossError, image_skipped_cause,
)
from cocoprep.manifest import SKIPPED_NAME, Manifest
from cocoprep.records import SkippedItem

_SEARCH_DEPTH = 4
_SEARCH_DIRS = 2000

# A short fix per reason, for the reasons that have one.
_FIXES = {
    "corrupt_image": "the files do not decode: are they complete (a finished download, "
                     "unzipped)?",
    "size_mismatch": "the files' sizes differ from the JSON's width/height: are these the "
                     "images the JSON was exported with (not resized copies)?",
    "unsafe_path": "the file names point outside the image folder; pass --images DIR",
    "unknown_category": "annotations use category ids the file's categories do not list",
    "missing_bbox": "the annotations have no bbox",
    "malformed_bbox": "the bboxes are not [x, y, width, height]",
    "zero_area_box": "the boxes lie outside their images: are they [x, y, width, height] in "
                     "pixels (not normalized, not x1, y1, x2, y2)?",
    "missing_segmentation": "--missing-masks box keeps such objects with box-filled masks",
    "malformed_segmentation": "--missing-masks box keeps such objects with box-filled masks",
    "class_conflict": "identical files sit in two class folders; --keep-conflicts keeps "
                      "the first class's copy",
}

Hint = Callable[["SplitLoss", Sequence[SkippedItem]], "str | None"]


@dataclass(frozen=True)
class SplitLoss:
    """What one split lost (deliberate skips, e.g. --crowd drop, not counted)."""

    split: str
    images_written: int
    images_lost: int
    objects_written: int
    objects_lost: int
    image_reasons: Counter
    object_reasons: Counter

    def problem(self) -> tuple[str, Counter] | None:
        """Why this split fails the run and the reasons behind it, or None."""
        total = self.images_written + self.images_lost
        if self.images_written == 0:
            return (f"split {self.split!r}: no image written"
                    + (f" ({self.images_lost} of {total} skipped)" if total else
                       " (the split lists no images)"), self.image_reasons)
        if 2 * self.images_lost > total:
            return (f"split {self.split!r}: {self.images_lost} of {total} images skipped",
                    self.image_reasons)
        objects = self.objects_written + self.objects_lost
        if 2 * self.objects_lost > objects:
            return (f"split {self.split!r}: {self.objects_lost} of {objects} objects skipped",
                    self.object_reasons)
        return None


def _is_image_item(item: SkippedItem) -> bool:
    return item.annotation_id is None


def split_losses(manifest: Manifest, skipped: Sequence[SkippedItem]) -> list[SplitLoss]:
    by_split: dict[str, list[SkippedItem]] = {}
    for item in skipped:
        if item.reason not in DELIBERATE:
            by_split.setdefault(item.split, []).append(item)
    out = []
    for name, info in manifest.splits.items():
        items = by_split.get(name, [])
        images = Counter(i.reason for i in items if _is_image_item(i))
        objects = Counter(_object_reason(i) for i in items if not _is_image_item(i))
        out.append(SplitLoss(name, info.num_examples, sum(images.values()), info.num_objects,
                             sum(objects.values()), images, objects))
    return out


def _object_reason(item: SkippedItem) -> str:
    """An object's reason, naming its image's cause when the image was skipped
    (`image_skipped (corrupt_image)`): the count alone hides why."""
    cause = image_skipped_cause(item.detail) if item.reason == IMAGE_SKIPPED else None
    return f"{IMAGE_SKIPPED} ({cause})" if cause else item.reason


def _reasons(counts: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(),
                                                            key=lambda kv: (-kv[1], kv[0])))


def _fix(loss: SplitLoss, reasons: Counter, items: Sequence[SkippedItem],
         hint: Hint | None, fixes: dict[str, str]) -> str:
    """The most likely fix: the source's own hint first, then one per top reason (the
    source's `fixes` before the general ones)."""
    if hint is not None:
        text = hint(loss, items)
        if text:
            return text
    for reason, _ in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        of_image = reason.startswith(IMAGE_SKIPPED)
        if of_image:
            reason = reason[len(IMAGE_SKIPPED) + 2:-1]  # the image's cause, if named
        if reason in fixes or reason in _FIXES:
            return fixes.get(reason) or _FIXES[reason]
        if not of_image:
            break
    return ""


def check_losses(manifest: Manifest, skipped: Sequence[SkippedItem], *, out: str | Path,
                 allow_partial: bool = False, hint: Hint | None = None,
                 fixes: dict[str, str] | None = None) -> None:
    """Raise `DataLossError` when a split is empty or mostly lost (unless `allow_partial`).

    `hint(split_loss, skipped_items_of_that_split)` may return a source-specific fix
    (e.g. where the missing images are)."""
    if allow_partial:
        return
    split_list = split_losses(manifest, skipped)
    losses = [loss for loss in split_list if loss.problem()]
    if not losses:
        _check_unassigned(manifest, skipped, split_list, out)
        return
    first = losses[0]
    problem, reasons = first.problem()
    items = [i for i in skipped if i.split == first.split and i.reason not in DELIBERATE]
    parts = [problem + (f" ({_reasons(reasons)})" if reasons else "")]
    fix = _fix(first, reasons, items, hint, fixes or {})
    if fix:
        parts.append(fix)
    if len(losses) > 1:
        parts.append(f"also {', '.join(repr(loss.split) for loss in losses[1:])}")
    tail = (f"output written to {out} (reasons in {Path(out) / SKIPPED_NAME}); "
            "--allow-partial accepts such a run")
    err = DataLossError("; ".join(parts) + f" [{tail}]")
    err.manifest = manifest
    raise err


def _check_unassigned(manifest: Manifest, skipped: Sequence[SkippedItem],
                      splits: Sequence[SplitLoss], out: str | Path) -> None:
    """Images kept out before they had a split (e.g. unreadable while hashing a class
    tree) count against the whole run: more than half of all images lost fails it."""
    early = Counter(i.reason for i in skipped if i.split not in manifest.splits
                    and _is_image_item(i) and i.reason not in DELIBERATE)
    if not early:
        return
    lost = sum(early.values()) + sum(s.images_lost for s in splits)
    total = lost + sum(s.images_written for s in splits)
    if 2 * lost > total:
        fix = _fix(splits[0], early, (), None, {}) if splits else ""
        err = DataLossError(f"{lost} of {total} images skipped ({_reasons(early)} before "
                            "splitting)" + (f"; {fix}" if fix else "")
                            + f" [output written to {out} (reasons in "
                            f"{Path(out) / SKIPPED_NAME}); --allow-partial accepts such a run]")
        err.manifest = manifest
        raise err


# ------------------------------------------------------------------ missing files

def find_folder_with(start: Path, names: Sequence[str], *, skip: Path | None = None) -> Path | None:
    """The folder at or below `start` (a few levels, sorted walk) holding most of the
    base names `names` (at least one), other than `skip`; None when there is none."""
    wanted = {n.replace("\\", "/").rsplit("/", 1)[-1] for n in names}
    best, best_count, seen = None, 0, 0
    start = Path(start)
    skip_real = os.path.realpath(skip) if skip is not None else None
    for root, dirs, files in os.walk(start):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        depth = len(Path(root).relative_to(start).parts)
        if depth >= _SEARCH_DEPTH:
            dirs[:] = []
        seen += 1
        if seen > _SEARCH_DIRS:
            break
        if skip_real is not None and os.path.realpath(root) == skip_real:
            continue
        count = len(wanted.intersection(files))
        if count > best_count:
            best, best_count = Path(root), count
    return best


def split_missing_hint(outputs: Sequence, search_from: Path,
                       tail: Callable[[str], str] | None = None):
    """A source's `missing_hint` for formats whose splits each read one image folder
    (`outputs`: its `OutputSplit`s): for a lost split, `missing_files_hint` over that
    folder, searching from `search_from`; `tail` may add to a hint found."""
    image_dirs = {o.name: o.source.image_dir for o in outputs}

    def hint(loss, items: Sequence[SkippedItem]) -> str | None:
        if loss.split not in image_dirs:
            return None
        text = missing_files_hint(image_dirs[loss.split], items,
                                  images_written=loss.images_written, search_from=search_from)
        return tail(text) if text and tail is not None else text

    return hint


def missing_files_hint(image_dir: Path, items: Sequence[SkippedItem], *, images_written: int,
                       renamed_example: str | None = None, search_from: Path | None = None,
                       ) -> str | None:
    """A fix for images not found: where they are, if a nearby folder holds them; or
    `--images` when none of the split's images was found."""
    missing = [i.file for i in items if i.reason == MISSING_FILE and i.file]
    if not missing:
        return None
    text = f"{len(missing)} image(s) not found under {image_dir}"
    if renamed_example and "/upload/" in renamed_example.replace("\\", "/"):
        text += (f"; their file names look like Label Studio upload paths "
                 f"({renamed_example!r}): export 'COCO with images', or point --images "
                 "at the folder holding the uploaded files (Label Studio's media/upload/<id>)")
    elif renamed_example:
        text += (f"; their file names were absolute or outside the folder "
                 f"({renamed_example!r}) and were looked up by file name")
    sample = sorted(missing)[:20]
    base = search_from if search_from is not None else image_dir.parent
    found = find_folder_with(base, sample, skip=image_dir)
    if found is not None:
        text += f"; {found} holds such files: --images {found}?"
    elif images_written == 0:
        text += "; --images DIR names the folder that holds them"
    else:
        text += " (the split's other images are there: missing from the export?)"
    return text
