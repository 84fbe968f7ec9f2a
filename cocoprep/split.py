"""`split_folder`: a class-per-folder image tree -> stratified, seeded train/val[/test]
TFRecords (task `classification`).

The parent lists the tree, hashes every file (the leakage guard needs the bytes'
sha256 before splitting), decides the split and hands each split's items, in their
final seeded order, to the shared writer; workers read, check and encode images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cocoprep import __version__, fsio
from cocoprep.errors import InputError, ItemSkipped, StrictModeError, UsageError
from cocoprep.images import (
    ENCODINGS, IMAGE_EXTENSIONS, JPEG_QUALITY, check_resize_options, prepare_image, read_bytes,
)
from cocoprep.labelmap import LABELS_TXT_NAME, PBTXT_NAME, LabelMap
from cocoprep.losses import check_losses
from cocoprep.manifest import SKIPPED_NAME, Manifest
from cocoprep.parallel import progress_bar
from cocoprep.ratio import parse_ratio
from cocoprep.records import BuildResult, ClassificationExample, SkippedItem
from cocoprep.schema import SCHEMA_VERSION, encode_classification
from cocoprep.sources import folder
from cocoprep.writer import SplitPlan, check_runner, parse_size, plan_num_shards, write_dataset

TASK = "classification"

# Counter names, the same as `convert` uses.
IMAGES_CONVERTED = "images_converted"  # not stored byte for byte (format/mode conversion)
IMAGES_ROTATED = "images_rotated"  # EXIF orientation applied (pixels stored upright)
IMAGES_RESIZED = "images_resized"  # longer side over --max-side: resized


@dataclass(frozen=True)
class FolderItem:
    """One image to write: `path` relative to SRC, the stored `label` (offset
    applied) and the class name."""

    path: str
    label: int
    class_name: str


@dataclass(frozen=True)
class ClassificationBuilder:
    """Reads, checks and encodes one image of the tree (runs in the workers).

    EXIF orientation is always applied: a classifier should see pixels upright.
    """

    root: str
    encode: str = "jpeg"
    max_side: int | None = None
    jpeg_quality: int = JPEG_QUALITY

    def build(self, split: str, item: FolderItem) -> BuildResult:
        try:
            data = read_bytes(os.path.join(self.root, item.path))
            image = prepare_image(data, encode=self.encode, orientation="always",
                                  max_side=self.max_side, jpeg_quality=self.jpeg_quality)
        except ItemSkipped as e:
            return BuildResult(
                example=None,
                skipped=(SkippedItem(split, None, None, item.path, e.reason, e.detail),),
            )
        counters = {IMAGES_CONVERTED: 1} if image.converted_from else {}
        if image.orientation_applied:
            counters[IMAGES_ROTATED] = 1
        if image.resized:
            counters[IMAGES_RESIZED] = 1
        example = ClassificationExample(
            image=image, filename=item.path, label=item.label, text=item.class_name,
            with_original_size=self.max_side is not None,
        )
        return BuildResult(
            example=encode_classification(example),
            class_counts={item.class_name: 1},
            counters=counters,
            listing=f"{item.path} {item.label}",
        )


def _is_inside(path: Path, root: Path) -> bool:
    p, r = os.path.realpath(path), os.path.realpath(root)
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def _hash_all(root: Path, files: Sequence[folder.ImageFile], quiet: bool):
    with progress_bar(len(files), "hashing", "img", quiet) as bar:
        return folder.hash_files(root, [f.path for f in files], progress=bar.update)


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
        beam_options: Beam pipeline flags (default: the DirectRunner,
            multi_processing, `workers` processes).

    Returns:
        The manifest written to `out`.

    Raises:
        UsageError, InputError: bad options or an unusable tree; nothing is written.
        StrictModeError: `strict` and something was skipped (output is written).
    """
    check_runner(runner, out, beam_options=beam_options, workers=workers)
    if fsio.is_remote(str(src)):
        raise UsageError("SRC", "a local folder (split reads and hashes every file in the "
                         "driver; a remote OUT is fine)", str(src))
    src = Path(src)
    out = str(out) if fsio.is_remote(str(out)) else Path(out)
    ratios = parse_ratio(ratio, default=folder.DEFAULT_RATIO)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError("--seed", "an integer", seed)
    if isinstance(label_offset, bool) or not isinstance(label_offset, int) or label_offset < 0:
        raise UsageError("--label-offset", "an integer >= 0", label_offset)
    if encode not in ENCODINGS:
        raise UsageError("--encode", f"one of {', '.join(ENCODINGS)}", encode)
    check_resize_options(max_side, jpeg_quality)
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise UsageError("--workers", "an integer >= 1", workers)
    if num_shards is not None and num_shards < 1:
        raise UsageError("--num-shards", "an integer >= 1", num_shards)
    size = parse_size(shard_size) if shard_size is not None else None

    if src.is_dir() and not fsio.is_remote(str(out)) and _is_inside(out, src):
        raise UsageError("-o/--out", f"a directory outside SRC ({src})", str(out))
    listing = folder.list_tree(src)
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
    class_order = folder.select_classes(listing.classes, classes)
    if len(class_order) < 2:
        raise InputError(
            src, "at least 2 class folders",
            f"{len(class_order)} ({', '.join(class_order) or 'none'})",
        )
    unusable = [c for c in class_order if not folder.usable_name(c)]
    if unusable:
        raise InputError(src, "class folder names that are valid UTF-8 on one line",
                         ", ".join(map(ascii, unusable)))
    last_id = 2**31 - 1  # label_map.pbtxt ids are int32 (labels past int64 even wrapped)
    if label_offset + len(class_order) - 1 > last_id:
        raise UsageError("--label-offset", f"an integer from 0 to {last_id - len(class_order) + 1} "
                         f"(with {len(class_order)} classes; label_map.pbtxt ids are 32-bit)",
                         label_offset)
    labels = LabelMap.from_names(class_order, start=label_offset)
    extra = {LABELS_TXT_NAME: labels.to_labels_txt()}  # fails early on unwritable names
    if label_offset >= 1:
        extra[PBTXT_NAME] = labels.to_pbtxt()
    wanted = set(class_order)
    files = [f for f in listing.files if f.class_name in wanted]
    counters = dict(listing.ignored)
    unselected = len(listing.files) - len(files)
    if unselected:
        counters[folder.IGNORED_UNSELECTED] = unselected

    rejected: list[folder.Rejected] = [
        folder.Rejected(f, folder.BAD_FILE_NAME, "the path holds a line break or bytes that are "
                        "not UTF-8, so it cannot be written to the split listing")
        for f in listing.bad_names if f.class_name in wanted
    ]
    digests = _hash_all(src, files, quiet)
    readable, hashes = [], []
    for f, h in zip(files, digests):
        if isinstance(h, ItemSkipped):
            rejected.append(folder.Rejected(f, h.reason, h.detail))
        else:
            readable.append(f)
            hashes.append(h)
    keep, conflicts = folder.find_conflicts(readable, hashes, class_order,
                                            keep_conflicts=keep_conflicts)
    rejected.extend(conflicts)
    kept = [readable[i] for i in keep]
    kept_hashes = [hashes[i] for i in keep]
    if listing.layout == folder.LAYOUT_SPLITS:
        assignment = folder.assign_given(kept, kept_hashes, listing.splits, class_order, seed=seed)
    else:
        assignment = folder.assign_by_ratio(kept, kept_hashes, class_order, ratios, seed=seed)
    rejected.extend(assignment.rejected)
    if assignment.duplicates:
        counters["duplicate_files"] = assignment.duplicates
    if assignment.small_classes:
        counters["small_classes"] = len(assignment.small_classes)

    plans = []
    for split, items in assignment.splits.items():
        total_bytes = 0
        for f in items:
            try:
                total_bytes += os.path.getsize(src / f.path)
            except OSError:
                pass
        plans.append(SplitPlan(
            name=split,
            items=[FolderItem(f.path, labels.id_of(f.class_name), f.class_name) for f in items],
            num_shards=plan_num_shards(len(items), total_bytes, num_shards=num_shards,
                                       shard_size=size),
            listing_name=f"{split}.txt",
        ))
    options = {
        "ratio": ([float(r) for r in ratios] if listing.layout == folder.LAYOUT_CLASSES else None),
        "seed": seed,
        "classes": list(class_order) if classes is not None else None,
        "keep_conflicts": keep_conflicts,
        "encode": encode,
        "max_side": max_side,
        "jpeg_quality": jpeg_quality,
        "num_shards": num_shards,
        "shard_size": size,
        "warnings": list(assignment.warnings),
    }
    template = Manifest(
        task=TASK,
        schema_version=SCHEMA_VERSION,
        splits={},
        label_map=PBTXT_NAME if label_offset >= 1 else None,
        labels_txt=LABELS_TXT_NAME,
        label_offset=label_offset,
        sources={"images": str(src), "layout": listing.layout},
        options=options,
        counters=dict(sorted(counters.items())),
        created_by=f"cocoprep {__version__}",
    )
    pre_skipped = [
        SkippedItem(r.file.split, None, None, r.file.path, r.reason, r.detail)
        for r in sorted(rejected, key=lambda r: r.file.path)
    ]
    manifest, skipped = write_dataset(
        out, plans, ClassificationBuilder(str(src), encode, max_side=max_side,
                                          jpeg_quality=jpeg_quality),
        manifest=template, class_order=class_order, extra_files=extra,
        workers=workers, quiet=quiet, pre_skipped=pre_skipped,
        runner=runner, beam_options=beam_options,
    )
    check_losses(manifest, skipped, out=out, allow_partial=allow_partial)
    if strict and skipped:
        raise StrictModeError(len(skipped), fsio.join(str(out), SKIPPED_NAME))
    return manifest
