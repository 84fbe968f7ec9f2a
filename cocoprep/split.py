"""`split_folder`: a class-per-folder image tree -> stratified, seeded train/val[/test]
TFRecords (task `classification`).

The parent lists the tree, checks it as a whole, finds identical files (the leakage
guard: `folder.content_keys` reads each file's size and tail, and hashes whole only
the files that could be copies), decides the split and hands each split's
items, in their final seeded order, to the shared pipeline; workers read, check and
encode images (`builders.ClassificationBuilder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cocoprep import __version__, fsio
from cocoprep.builders import ClassificationBuilder, FolderItem
from cocoprep.errors import InputError, ItemSkipped, UsageError
from cocoprep.images import IMAGE_EXTENSIONS
from cocoprep.labelmap import LABELS_TXT_NAME, PBTXT_NAME, LabelMap
from cocoprep.manifest import Manifest
from cocoprep.options import JPEG_QUALITY, WriteOptions
from cocoprep.pipeline import WriteJob, plan_split, run_job, source_bytes
from cocoprep.progress import progress_bar
from cocoprep.ratio import parse_ratio
from cocoprep.records import SkippedItem
from cocoprep.schema import SCHEMA_VERSION
from cocoprep.sources import folder, source_title
from cocoprep.writer import check_runner, start_runner

TASK = "classification"
_LAST_LABEL_ID = 2**31 - 1  # label_map.pbtxt ids are int32 (labels past int64 even wrapped)


def _is_inside(path: Path, root: Path) -> bool:
    p, r = os.path.realpath(path), os.path.realpath(root)
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def _refuse_annotated_source(src: Path) -> None:
    """A detection or segmentation data set is not a class-per-folder tree: its
    folders (annotations/, JPEGImages/, labels/...) would become classes."""
    if not src.is_dir():
        return
    found = source_title(src)
    if found is not None:
        raise InputError(src, "a class-per-folder tree (SRC/<class>/*.jpg) for `cocoprep split`",
                         f"{found}; convert it with `cocoprep convert {src}`")


def _check_tree(src: Path, listing: folder.FolderListing, *, ratio, classes) -> None:
    """Whole-tree errors: a mix of split and class folders, a ratio for a split tree,
    no images in class folders."""
    if listing.mixed and classes is None:
        others = [c for c in listing.classes if c not in listing.mixed]
        raise InputError(
            src, "SRC/<class>/... or SRC/<split>/<class>/... (every top-level folder a "
            f"split: {', '.join(folder.SPLIT_ORDER)})",
            f"a mix: {', '.join(listing.mixed)} look(s) like split folders holding class "
            f"folders, {', '.join(others)} do(es) not; point SRC at the split folder, or "
            "pass --classes to use the top-level folders as classes",
        )
    if listing.layout == folder.LAYOUT_SPLITS and ratio is not None:
        raise UsageError(
            "--ratio", "no ratio: the tree is already split into "
            f"{', '.join(listing.splits)} folders, which are kept", ratio,
        )
    if not listing.files and not listing.bad_names:
        ignored = sum(listing.ignored.values())
        found = f"no images in class folders ({ignored} other file(s) or folder(s) ignored)"
        if listing.loose_images:
            found = (f"{listing.loose_images} image(s) outside any class folder and none "
                     "inside one (SRC must hold one folder per class)")
        raise InputError(
            src, f"image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in class "
            "folders such as SRC/cat/1.jpg", found,
        )


def _labels(src: Path, listing: folder.FolderListing, classes, label_offset: int) -> LabelMap:
    """The label map of the selected classes (at least two, usable names, int32 ids)."""
    class_order = folder.select_classes(listing.classes, classes)
    if classes is None:
        with_images = {f.class_name for f in listing.files + listing.bad_names}
        empty = [c for c in class_order if c not in with_images]
        if empty:
            raise InputError(
                src, "an image in every class folder (an empty class would be listed in "
                "labels.txt and never seen in training)",
                f"no images in {', '.join(empty)}; add images, remove the folder(s), or "
                "pick the classes with --classes")
    if len(class_order) < 2:
        raise InputError(src, "at least 2 class folders",
                         f"{len(class_order)} ({', '.join(class_order) or 'none'})")
    unusable = [c for c in class_order if not folder.usable_name(c)]
    if unusable:
        raise InputError(src, "class folder names that are valid UTF-8 on one line",
                         ", ".join(map(ascii, unusable)))
    if label_offset + len(class_order) - 1 > _LAST_LABEL_ID:
        raise UsageError("--label-offset", f"an integer from 0 to "
                         f"{_LAST_LABEL_ID - len(class_order) + 1} (with {len(class_order)} "
                         "classes; label_map.pbtxt ids are 32-bit)", label_offset)
    return LabelMap.from_names(class_order, start=label_offset)


@dataclass(frozen=True)
class _Assigned:
    """The tree dealt into splits: what goes where, what stays out, and the counters."""

    splits: dict[str, list[folder.ImageFile]]
    rejected: tuple[folder.Rejected, ...]
    counters: dict[str, int]
    warnings: tuple[str, ...]


def _assign(src: Path, listing: folder.FolderListing, labels: LabelMap, *, ratios,
            seed: int, keep_conflicts: bool, quiet: bool) -> _Assigned:
    """Hash the selected files, drop unreadable ones and conflicts, deal the rest."""
    wanted = set(labels.names)
    files = [f for f in listing.files if f.class_name in wanted]
    counters = dict(listing.ignored)
    if len(listing.files) - len(files):
        counters[folder.IGNORED_UNSELECTED] = len(listing.files) - len(files)
    rejected = [folder.Rejected(f, folder.BAD_FILE_NAME, "the path holds a line break or bytes "
                                "that are not UTF-8, so it cannot be written to the split "
                                "listing") for f in listing.bad_names if f.class_name in wanted]
    with progress_bar(len(files), "hashing", "img", quiet) as bar:
        digests = folder.content_keys(src, [f.path for f in files], progress=bar.update)
    readable, hashes = [], []
    for f, h in zip(files, digests):
        if isinstance(h, ItemSkipped):
            rejected.append(folder.Rejected(f, h.reason, h.detail))
        else:
            readable.append(f)
            hashes.append(h)
    keep, conflicts = folder.find_conflicts(readable, hashes, labels.names,
                                            keep_conflicts=keep_conflicts)
    rejected.extend(conflicts)
    kept, kept_hashes = [readable[i] for i in keep], [hashes[i] for i in keep]
    if listing.layout == folder.LAYOUT_SPLITS:
        assignment = folder.assign_given(kept, kept_hashes, listing.splits, labels.names,
                                         seed=seed)
    else:
        assignment = folder.assign_by_ratio(kept, kept_hashes, labels.names, ratios, seed=seed)
    rejected.extend(assignment.rejected)
    if assignment.duplicates:
        counters["duplicate_files"] = assignment.duplicates
    if assignment.small_classes:
        counters["small_classes"] = len(assignment.small_classes)
    return _Assigned(dict(assignment.splits), tuple(rejected), counters,
                     tuple(assignment.warnings))


def _job(src: Path, listing: folder.FolderListing, labels: LabelMap, assigned: _Assigned, *,
         ratios, classes, keep_conflicts: bool, label_offset: int,
         options: WriteOptions) -> WriteJob:
    plans = tuple(
        plan_split(split, [FolderItem(f.path, labels.id_of(f.class_name), f.class_name)
                           for f in items],
                   total_bytes=source_bytes(src, [f.path for f in items]), options=options,
                   listing_name=f"{split}.txt")
        for split, items in assigned.splits.items())
    extra = {LABELS_TXT_NAME: labels.to_labels_txt()}
    if label_offset >= 1:
        extra[PBTXT_NAME] = labels.to_pbtxt()
    manifest_options = options.manifest_options()
    for unused in ("shuffle", "strict", "allow_partial"):  # split always shuffles
        manifest_options.pop(unused)
    template = Manifest(
        task=TASK, schema_version=SCHEMA_VERSION, splits={},
        label_map=PBTXT_NAME if label_offset >= 1 else None, labels_txt=LABELS_TXT_NAME,
        label_offset=label_offset, sources={"images": str(src), "layout": listing.layout},
        options={
            "ratio": ([float(r) for r in ratios] if listing.layout == folder.LAYOUT_CLASSES
                      else None),
            "classes": list(labels.names) if classes is not None else None,
            "keep_conflicts": keep_conflicts, **manifest_options,
            "warnings": list(assigned.warnings),
        },
        counters=dict(sorted(assigned.counters.items())),
        created_by=f"cocoprep {__version__}",
    )
    pre_skipped = tuple(SkippedItem(r.file.split, None, None, r.file.path, r.reason, r.detail)
                        for r in sorted(assigned.rejected, key=lambda r: r.file.path))
    builder = ClassificationBuilder(str(src), options.encode, max_side=options.max_side,
                                    jpeg_quality=options.jpeg_quality)
    return WriteJob(plans=plans, builder=builder, manifest=template,
                    class_order=tuple(labels.names), extra_files=extra, pre_skipped=pre_skipped)


def split_folder(
    src: str | Path,
    out: str | Path = "tfrecords",
    *,
    ratio: str | Sequence[float] | None = None,
    seed: int = 0,
    classes: str | Iterable[str] | None = None,
    label_offset: int = 0,
    keep_conflicts: bool = False,
    num_shards: int | None = None,
    shard_size: str | int | None = None,
    encode: str = "jpeg",
    max_side: int | None = None,
    jpeg_quality: int = JPEG_QUALITY,
    strict: bool = False,
    allow_partial: bool = False,
    workers: int | None = None,
    quiet: bool = False,
    runner: str = "local",
    beam_options: str | Sequence[str] | None = None,
) -> Manifest:
    """Write a class-per-folder image tree as classification TFRecords.

    Args:
        src: `SRC/<class>/...` (split by `ratio`) or `SRC/<split>/<class>/...`
            (splits kept).
        out: output directory (shards, manifest.json, labels.txt, `{split}.txt`
            listings, skipped.jsonl, and label_map.pbtxt when labels start at >= 1).
        ratio: train,val[,test] fractions, e.g. "0.8,0.1,0.1" (default 0.8,0.2).
        seed: seeds the split and the order of records in each split.
        classes: pick and order classes (default: all folders, sorted by name).
        label_offset: the stored label of the first class (1: Inception/Slim style).
        keep_conflicts: keep the first class's copy of identical files found under
            two classes (default: keep every copy out).
        num_shards: shards per split (default: by shard_size and image count).
        shard_size: aimed shard size, e.g. "200MB".
        encode: `jpeg` or `png`, for images that must be converted.
        max_side: resize images whose longer side is over this many pixels (aspect
            kept, after EXIF orientation; stored in their own format); every record
            then gets `image/original_height`/`_width`. Smaller images pass through.
        jpeg_quality: quality of the JPEGs cocoprep encodes (resized, converted, rotated).
        strict: fail (exit 1, after writing the report) when any image was skipped.
        allow_partial: accept a split written empty or that lost more than half of its
            images (otherwise `DataLossError`, after writing).
        workers: processes (default: CPU count). Output does not depend on it.
        quiet: no progress bars.
        runner: `local` (a process pool) or `beam` (Apache Beam; same bytes). With
            `beam`, `out` may be a `gs://`, `s3://`, ... path.
        beam_options: Beam pipeline flags (default: the DirectRunner in the mode
            `beam_runner.default_mode` picks).

    Returns:
        The manifest written to `out`.

    Raises:
        UsageError, InputError: bad options or an unusable tree; nothing is written.
        StrictModeError: `strict` and something was skipped (output is written).
    """
    options = WriteOptions.build(
        num_shards=num_shards, shard_size=shard_size, encode=encode, max_side=max_side,
        jpeg_quality=jpeg_quality, strict=strict, allow_partial=allow_partial, workers=workers,
        quiet=quiet, runner=runner, beam_options=beam_options, seed=seed)
    check_runner(options, out)
    start_runner(options)
    if fsio.is_remote(str(src)):
        raise UsageError("SRC", "a local folder (split reads and hashes every file in the "
                         "driver; a remote OUT is fine)", str(src))
    if isinstance(label_offset, bool) or not isinstance(label_offset, int) or label_offset < 0:
        raise UsageError("--label-offset", "an integer >= 0", label_offset)
    src = Path(src)
    out = str(out) if fsio.is_remote(str(out)) else Path(out)
    ratios = parse_ratio(ratio, default=folder.DEFAULT_RATIO)
    if src.is_dir() and not fsio.is_remote(str(out)) and _is_inside(out, src):
        raise UsageError("-o/--out", f"a directory outside SRC ({src})", str(out))
    _refuse_annotated_source(src)
    listing = folder.list_tree(src)
    _check_tree(src, listing, ratio=ratio, classes=classes)
    labels = _labels(src, listing, classes, label_offset)
    labels.to_labels_txt()  # fails early on unwritable names
    assigned = _assign(src, listing, labels, ratios=ratios, seed=seed,
                       keep_conflicts=keep_conflicts, quiet=quiet)
    job = _job(src, listing, labels, assigned, ratios=ratios, classes=classes,
               keep_conflicts=keep_conflicts, label_offset=label_offset, options=options)
    return run_job(out, job, options)
