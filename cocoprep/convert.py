"""`convert_coco`: COCO JSON + images -> sharded detection TFRecords.

The source (`sources.cocosplits.load_coco`) hands over finished splits: layout
found, every JSON file streamed and validated into compact arrays (any whole-input
error is raised before OUT is touched), label map decided. Here the shards are
planned and image row numbers handed to the writer; workers read and check each
image, apply the box rules, draw masks, and serialize the records. Afterwards the
never-silent rule (`losses.check_losses`) fails a run that lost most of a split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cocoprep import __version__, fsio
from cocoprep.errors import ItemSkipped, StrictModeError, UsageError
from cocoprep.fsio import RemoteImageLoader, remote_view
from cocoprep.images import ENCODINGS, JPEG_QUALITY, ImageLoader, check_resize_options
from cocoprep.labelmap import LABELS_TXT_NAME, PBTXT_NAME
from cocoprep.losses import check_losses, missing_files_hint
from cocoprep.manifest import SKIPPED_NAME, Manifest
from cocoprep.ratio import parse_ratio
from cocoprep.records import (
    BuildResult, DetectionExample, Keypoint, ObjectAnnotation, SkippedItem,
)
from cocoprep.schema import SCHEMA_VERSION, encode_detection
from cocoprep.sources import cocosplits
from cocoprep.sources.coco import BboxStatus, KeypointsMark
from cocoprep.sources.cocosplits import CocoSource, CocoSplit, load_coco
from cocoprep.writer import SplitPlan, check_runner, parse_size, plan_num_shards, write_dataset

# Reasons for skipped annotations (image reasons come from images.py).
MISSING_BBOX = "missing_bbox"
MALFORMED_BBOX = "malformed_bbox"
ZERO_AREA_BOX = "zero_area_box"
UNKNOWN_CATEGORY = "unknown_category"
CROWD_DROPPED = "crowd_dropped"
IMAGE_SKIPPED = "image_skipped"        # an annotation whose image was skipped
EMPTY_IMAGE = "empty_image"            # --skip-empty: an image with no object written
UNKNOWN_IMAGE = cocosplits.UNKNOWN_IMAGE
UNMATCHED_KEYPOINTS = cocosplits.UNMATCHED_KEYPOINTS
NO_MASK = "no_mask"                    # --missing-masks skip-image: an object had no mask

# Manifest counters.
BOXES_CLIPPED = "boxes_clipped"        # overshoot of more than CLIP_TOLERANCE px, clipped
IMAGES_CONVERTED = "images_converted"  # not stored byte for byte (format/mode conversion)
IMAGES_ROTATED = "images_rotated"      # EXIF orientation applied to match the JSON size
IMAGES_RESIZED = "images_resized"      # longer side over --max-side: resized
KEYPOINTS_MALFORMED = "keypoints_malformed"  # object written without its keypoints
MASKS_FROM_BOXES = "masks_from_boxes"  # --masks: object without a usable segmentation,
                                       # written with a mask filled from its box

CLIP_TOLERANCE = 1.0  # pixels: float error in exported boxes, clipped silently
CROWD_MODES = ("keep", "drop")
# --masks, an object without a usable segmentation: a mask filled from its box, or
# the whole image skipped. Never the object dropped alone (it would become background).
MISSING_MASK_MODES = ("box", "skip-image")


# ====================================================================== builder

@dataclass
class DetectionBuilder:
    """Builds one detection record per image row (picklable: sent once per worker).

    `sources` maps each output split to the `CocoSplit` its rows index (with
    `--ratio` several output splits share one source). `labels` maps a COCO
    category id to (label-map id, name).
    """

    sources: dict[str, CocoSplit]
    labels: dict[int, tuple[int, str]]
    masks: bool = False
    crowd: str = "keep"
    skip_empty: bool = False
    encode: str = "jpeg"
    missing_masks: str = "box"
    max_side: int | None = None
    jpeg_quality: int = JPEG_QUALITY
    # image root per output split when it is not the source's `image_dir` (a remote
    # root: `Path` would fold the `scheme://` double slash)
    roots: dict[str, str] = field(default_factory=dict)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_loaders", None)
        return state

    def for_shard(self, split_name: str, rows: Any) -> tuple["DetectionBuilder", list[int]]:
        """A builder holding only `rows` of `split_name` (renumbered 0..n-1): what one
        Beam worker needs for one shard, instead of the whole annotation index."""
        rows = np.asarray(rows, dtype=np.int64)
        sub = _subset(self.sources[split_name], rows)
        root = self.roots.get(split_name, str(self.sources[split_name].image_dir))
        return (replace(self, sources={split_name: sub}, roots={split_name: root}),
                list(range(len(rows))))

    def _loader(self, split_name: str):
        loaders = self.__dict__.setdefault("_loaders", {})
        root = self.roots.get(split_name) or str(self.sources[split_name].image_dir)
        if root not in loaders:
            loader = RemoteImageLoader if fsio.is_remote(root) else ImageLoader
            loaders[root] = loader(root, orientation="mismatch", encode=self.encode,
                                   max_side=self.max_side, jpeg_quality=self.jpeg_quality)
        return loaders[root]

    def build(self, split_name: str, row: Any) -> BuildResult:
        src = self.sources[split_name]
        row = int(row)
        image_id = int(src.image_ids[row])
        file_name = src.file_names[row]
        rows = src.annotation_rows(row)

        def skip(reason: str, detail: str, ann: int | None = None) -> SkippedItem:
            return SkippedItem(split_name, image_id, ann, file_name, reason, detail)

        expected = (int(src.widths[row]), int(src.heights[row]))
        try:
            image = self._loader(split_name).load(file_name, expected_size=expected)
        except ItemSkipped as e:
            items = [skip(e.reason, e.detail)]
            items += [skip(IMAGE_SKIPPED, f"its image was skipped ({e.reason})",
                           int(src.ann_ids[r])) for r in rows]
            return BuildResult(example=None, skipped=tuple(items))

        # Boxes, keypoints and areas are in the pixels the JSON refers to (the size
        # before any --max-side resize); masks are drawn at the stored size.
        width, height = image.source_width, image.source_height
        counters: dict[str, int] = {}
        if image.converted_from is not None:
            counters[IMAGES_CONVERTED] = 1
        if image.orientation_applied:
            counters[IMAGES_ROTATED] = 1
        if image.resized:
            counters[IMAGES_RESIZED] = 1
        skipped: list[SkippedItem] = []
        no_mask: list[SkippedItem] = []
        objects: list[ObjectAnnotation] = []
        class_counts: dict[str, int] = {}
        lo, hi = rows.start, rows.stop
        # one conversion per image instead of a numpy scalar per field and annotation
        columns = zip(rows, src.ann_ids[lo:hi].tolist(), src.bbox_status[lo:hi].tolist(),
                      src.ann_category_ids[lo:hi].tolist(), src.iscrowd[lo:hi].tolist(),
                      src.bbox[lo:hi].tolist(), src.area[lo:hi].tolist())
        for r, ann_id, status, cat, crowd, box, area in columns:
            label = self.labels.get(cat)
            if label is None:
                skipped.append(skip(UNKNOWN_CATEGORY, f"category id {cat} is not in "
                                    "the file's categories", ann_id))
                continue
            crowd = bool(crowd)
            if crowd and self.crowd == "drop":
                skipped.append(skip(CROWD_DROPPED, "crowd annotation dropped (--crowd drop)",
                                    ann_id))
                continue
            if status == BboxStatus.MISSING:
                skipped.append(skip(MISSING_BBOX, "the annotation has no bbox", ann_id))
                continue
            if status == BboxStatus.MALFORMED:
                skipped.append(skip(MALFORMED_BBOX, "bbox is not [x, y, width, height] with "
                                    "finite numbers and width, height >= 0", ann_id))
                continue
            x, y, w, h = box
            x1, y1, x2, y2 = x, y, x + w, y + h
            overshoot = max(-x1, -y1, x2 - width, y2 - height)
            cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
            cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
            if cx2 <= cx1 or cy2 <= cy1:
                skipped.append(skip(ZERO_AREA_BOX, f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] has no "
                                    f"area inside the {width}x{height} image", ann_id))
                continue
            mask = None
            if self.masks:
                mask = self._mask(src, r, (cx1, cy1, cx2, cy2), width, height, counters,
                                  stored=(image.height, image.width))
                if isinstance(mask, ItemSkipped):
                    no_mask.append(skip(mask.reason, mask.detail, ann_id))
                    continue
            if overshoot > CLIP_TOLERANCE:
                counters[BOXES_CLIPPED] = counters.get(BOXES_CLIPPED, 0) + 1
            if math.isnan(area):
                area = (cx2 - cx1) * (cy2 - cy1)
            kps: tuple[Keypoint, ...] = ()
            if src.keypoints is not None:
                kps = self._keypoints(src, r, width, height, counters)
            label_id, text = label
            objects.append(ObjectAnnotation(
                xmin=cx1 / width, ymin=cy1 / height, xmax=cx2 / width, ymax=cy2 / height,
                label=label_id, text=text, is_crowd=crowd, area=area, annotation_id=ann_id,
                mask_png=mask, keypoints=kps,
            ))
            class_counts[text] = class_counts.get(text, 0) + 1
        if no_mask:
            return self._skip_for_masks(skip, no_mask, skipped, objects, counters)
        if self.skip_empty and src.has_objects and not objects:
            skipped.append(skip(EMPTY_IMAGE, "no object written for this image (--skip-empty)"))
            return BuildResult(example=None, skipped=tuple(skipped), counters=counters)
        captions = src.captions[row] if src.captions is not None else None
        example = DetectionExample(
            image=image, filename=file_name, source_id=str(image_id), objects=tuple(objects),
            with_masks=self.masks, num_keypoints=src.num_keypoints if src.keypoints is not None
            else 0, captions=captions, with_original_size=self.max_side is not None,
        )
        return BuildResult(example=encode_detection(example), num_objects=len(objects),
                           class_counts=class_counts, skipped=tuple(skipped), counters=counters)

    def _mask(self, src: CocoSplit, r: int, box: tuple[float, float, float, float],
              width: int, height: int, counters: dict[str, int], *,
              stored: tuple[int, int]) -> bytes | ItemSkipped:
        """The object's mask PNG at the `stored` (height, width) of its image (smaller
        than `height` x `width` after --max-side); without a usable segmentation, one
        filled from its box (counted), or the reason (`--missing-masks skip-image`)."""
        from cocoprep.masks import box_mask_png, mask_png

        seg = src.segmentations[r] if src.segmentations is not None else None
        try:
            return mask_png(seg, height, width, out_height=stored[0], out_width=stored[1])
        except ItemSkipped as e:
            if self.missing_masks != "box":
                return e
        counters[MASKS_FROM_BOXES] = counters.get(MASKS_FROM_BOXES, 0) + 1
        sy, sx = stored[0] / height, stored[1] / width
        x1, y1, x2, y2 = box
        return box_mask_png((x1 * sx, y1 * sy, x2 * sx, y2 * sy), *stored)

    @staticmethod
    def _skip_for_masks(skip, no_mask: list[SkippedItem], skipped: list[SkippedItem],
                        objects: list[ObjectAnnotation],
                        counters: dict[str, int]) -> BuildResult:
        """--missing-masks skip-image: the whole image goes, each annotation listed."""
        items = [skip(NO_MASK, f"{len(no_mask)} object(s) have no usable segmentation "
                      "(--missing-masks skip-image)")]
        items += no_mask
        items += [skip(IMAGE_SKIPPED, f"its image was skipped ({NO_MASK})", o.annotation_id)
                  for o in objects]
        return BuildResult(example=None, skipped=tuple(items + skipped), counters=counters)

    @staticmethod
    def _keypoints(src: CocoSplit, r: int, width: int, height: int,
                   counters: dict[str, int]) -> tuple[Keypoint, ...]:
        raw = src.keypoints[r]
        if raw is KeypointsMark.ABSENT:
            return ()
        k = src.num_keypoints
        if raw is KeypointsMark.MALFORMED or len(raw) != 3 * k:
            counters[KEYPOINTS_MALFORMED] = counters.get(KEYPOINTS_MALFORMED, 0) + 1
            return ()
        out = []
        for i in range(k):
            x, y, v = raw[3 * i], raw[3 * i + 1], int(raw[3 * i + 2])
            if v <= 0:
                out.append(Keypoint(0.0, 0.0, 0))
            else:
                out.append(Keypoint(min(max(x / width, 0.0), 1.0),
                                    min(max(y / height, 0.0), 1.0), min(v, 2)))
        return tuple(out)


def _subset(split: CocoSplit, rows: np.ndarray) -> CocoSplit:
    """`split` holding only image `rows` (in that order) and their annotations."""
    starts, stops = split.ann_start[rows], split.ann_start[rows + 1]
    counts = stops - starts
    ann = (np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in zip(starts, stops)])
           if len(rows) else np.zeros(0, np.int64))
    ann_start = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=ann_start[1:])
    pick = ann.tolist()
    rows_list = rows.tolist()
    return replace(
        split, image_ids=split.image_ids[rows], file_names=[split.file_names[r] for r in rows_list],
        widths=split.widths[rows], heights=split.heights[rows], ann_start=ann_start,
        ann_ids=split.ann_ids[ann], ann_category_ids=split.ann_category_ids[ann],
        bbox=split.bbox[ann], bbox_status=split.bbox_status[ann], iscrowd=split.iscrowd[ann],
        area=split.area[ann],
        segmentations=None if split.segmentations is None else [split.segmentations[k] for k in pick],
        keypoints=None if split.keypoints is None else [split.keypoints[k] for k in pick],
        captions=None if split.captions is None else [split.captions[r] for r in rows_list],
    )


# ====================================================================== options

def _parse_splits(splits: str | Sequence[str] | None) -> list[str] | None:
    if splits is None:
        return None
    names = [s.strip() for s in (splits.split(",") if isinstance(splits, str) else splits)]
    if not names or any(not n for n in names):
        raise UsageError("--splits", "comma-separated split names such as train2017,val2017",
                         splits)
    if len(set(names)) != len(names):
        raise UsageError("--splits", "each split once",
                         splits if isinstance(splits, str) else ",".join(names))
    return names




def _file_sizes(split: CocoSplit, rows: np.ndarray, root: str) -> int:
    """Bytes of the images at `rows` (missing ones count 0): the shard-size input."""
    names = [split.file_names[r] for r in rows.tolist()]
    if fsio.is_remote(root):
        sizes = {p[len(root.rstrip("/")) + 1:]: size
                 for p, size, _ in fsio.list_files(fsio.join(root, "**"))}
        return sum(sizes.get(n, 0) for n in names if isinstance(n, str))
    total = 0
    for name in names:
        try:
            total += os.stat(os.path.join(root, name)).st_size
        except (OSError, ValueError, TypeError):
            pass
    return total


# ====================================================================== API

def convert_coco(
    src: str | Path,
    out: str | Path = "tfrecords",
    *,
    images: str | Path | None = None,
    splits: str | Sequence[str] | None = None,
    ratio: str | Sequence[float] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    num_shards: int | None = None,
    shard_size: int | str | None = None,
    masks: bool = False,
    contiguous_ids: bool = False,
    skip_empty: bool = False,
    crowd: str = "keep",
    encode: str = "jpeg",
    max_side: int | None = None,
    jpeg_quality: int = JPEG_QUALITY,
    strict: bool = False,
    allow_partial: bool = False,
    missing_masks: str = "box",
    workers: int | None = None,
    quiet: bool = False,
    runner: str = "local",
    beam_options: str | Sequence[str] | None = None,
) -> Manifest:
    """Convert a COCO dataset into sharded detection TFRecords in `out`.

    Args:
        src: a COCO root, a CVAT, Roboflow, Label Studio or FiftyOne export, or one
            COCO JSON file (see `sources.layout`).
        out: output directory (created; old outputs are replaced only once the new
            ones are complete).
        images: image directory (for a single JSON file; overrides discovery).
        splits: split names to convert (`"train2017,val2017"` or a list).
        ratio: split one annotation file into train/val(/test) by image, stratified
            by category presence, e.g. `"0.8,0.2"`.
        seed: seed of the in-split shuffle and of `ratio`.
        shuffle: False keeps the JSON's image order.
        num_shards: shards per split (default: from `shard_size`).
        shard_size: target shard size, e.g. `"200MB"` (default: 200 MB, and about one
            shard per 128 images, at most 16).
        masks: write instance masks (PNG) from polygons / RLE.
        missing_masks: with `masks`, an object without a usable segmentation gets a
            mask filled from its box (`box`, counted as `masks_from_boxes`), or its
            whole image is skipped (`skip-image`).
        contiguous_ids: label ids 1..N in category order instead of COCO's ids.
        skip_empty: drop images that end up with no objects.
        crowd: `keep` (is_crowd=1) or `drop`.
        encode: `jpeg` or `png`, for images that must be converted.
        max_side: resize images whose longer side is over this many pixels (aspect
            kept, after EXIF orientation; stored in their own format); boxes and
            keypoints stay normalized, masks are drawn at the stored size, `area`
            stays in original pixels, and every record gets
            `image/original_height`/`_width`.
        jpeg_quality: quality of the JPEGs cocoprep encodes (resized, converted, rotated).
        strict: raise `StrictModeError` (after writing the report) if anything was skipped.
        allow_partial: accept a split written empty or that lost more than half of its
            images or objects (otherwise `DataLossError`, after writing).
        workers: processes (default: CPU count).
        quiet: no progress bars.
        runner: `local` (a process pool) or `beam` (Apache Beam; same bytes).
            With `beam`, `src`, `images` and `out` may be `gs://`, `s3://`, ... paths.
        beam_options: Beam pipeline flags, e.g. `"--runner=DataflowRunner --project=P"`
            (default: the DirectRunner, multi_processing, `workers` processes).

    Returns:
        The written manifest.

    Raises:
        InputError, UsageError: before anything is written to `out`.
        DataLossError: a split empty or mostly lost, after everything was written.
        StrictModeError: with `strict`, after everything was written.
    """
    if crowd not in CROWD_MODES:
        raise UsageError("--crowd", f"one of {', '.join(CROWD_MODES)}", crowd)
    if missing_masks not in MISSING_MASK_MODES:
        raise UsageError("--missing-masks", f"one of {', '.join(MISSING_MASK_MODES)}",
                         missing_masks)
    if encode not in ENCODINGS:
        raise UsageError("--encode", f"one of {', '.join(ENCODINGS)}", encode)
    check_resize_options(max_side, jpeg_quality)
    if workers is not None and int(workers) < 1:
        raise UsageError("--workers", "an integer >= 1", workers)
    if num_shards is not None and int(num_shards) < 1:
        raise UsageError("--num-shards", "an integer >= 1", num_shards)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError("--seed", "an integer >= 0", seed)  # numpy's generators need it
    shard_bytes = parse_size(shard_size) if shard_size is not None else None
    ratios = parse_ratio(ratio)
    fractions = tuple(float(r) for r in ratios) if ratios is not None else None
    wanted = _parse_splits(splits)

    check_runner(runner, out, beam_options=beam_options, workers=workers)
    remote = [str(p) for p in (src, images) if p is not None and fsio.is_remote(str(p))]
    if remote and runner != "beam":
        raise UsageError("--runner", f"beam for a remote path ({remote[0]})", runner)
    with remote_view(src, images) as view:
        # A remote SRC is read through local copies of its JSON files; `roots` and
        # the recorded paths name the remote originals (what workers read).
        source = load_coco(view.src, images=view.images, splits=wanted, ratio=fractions,
                           seed=seed, masks=masks, contiguous_ids=contiguous_ids, quiet=quiet)
        roots = {s.name: view.to_remote(s.source.image_dir) for s in source.splits}
        source_paths = {name: {k: view.to_remote(v) for k, v in paths.items()}
                        for name, paths in source.source_paths().items()}
    label_map = source.labels.label_map

    plans = []
    sources: dict[str, CocoSplit] = {}
    for out_split in source.splits:
        rows = out_split.rows
        if shuffle and len(rows) > 1:
            rows = rows[np.random.default_rng(seed).permutation(len(rows))]
        total = (0 if num_shards is not None
                 else _file_sizes(out_split.source, rows, roots[out_split.name]))
        count = plan_num_shards(len(rows), total, num_shards=num_shards, shard_size=shard_bytes)
        plans.append(SplitPlan(name=out_split.name, items=rows.astype(np.int32),
                               num_shards=count))
        sources[out_split.name] = out_split.source

    builder = DetectionBuilder(sources=sources, labels=source.labels.labels, masks=masks,
                               crowd=crowd, skip_empty=skip_empty, encode=encode,
                               missing_masks=missing_masks, max_side=max_side,
                               jpeg_quality=jpeg_quality, roots=roots)
    template = Manifest(
        task="detection", schema_version=SCHEMA_VERSION, splits={},
        sources={"src": str(src), "layout": source.layout.describe(),
                 "notes": list(source.notes), "splits": source_paths},
        options={
            "images": str(images) if images is not None else None,
            "splits": wanted, "ratio": list(fractions) if fractions else None, "seed": seed,
            "shuffle": shuffle, "num_shards": num_shards, "shard_size": shard_bytes,
            "masks": masks, "missing_masks": missing_masks if masks else None,
            "contiguous_ids": source.labels.contiguous, "skip_empty": skip_empty,
            "crowd": crowd, "encode": encode, "max_side": max_side,
            "jpeg_quality": jpeg_quality, "strict": strict, "allow_partial": allow_partial,
        },
        created_by=f"cocoprep {__version__} convert",
    )
    extra = {PBTXT_NAME: label_map.to_pbtxt(), LABELS_TXT_NAME: label_map.to_labels_txt()}
    manifest, skipped = write_dataset(
        out, plans, builder, manifest=template, class_order=label_map.names,
        extra_files=extra, workers=workers, quiet=quiet, pre_skipped=list(source.skipped),
        runner=runner, beam_options=beam_options,
    )
    check_losses(manifest, skipped, out=out, allow_partial=allow_partial,
                 hint=_missing_files_hint(source))
    if strict and skipped:
        err = StrictModeError(len(skipped), Path(out) / SKIPPED_NAME)
        err.manifest = manifest
        raise err
    return manifest


def _missing_files_hint(source: CocoSource):
    """Where the missing images of an output split might be (for the loss check)."""
    by_name = {s.name: s for s in source.splits}

    def hint(loss, items) -> str | None:
        out_split = by_name.get(loss.split)
        if out_split is None:
            return None
        read = out_split.source
        mapping = source.mappings.get(read.name)
        json_dir = read.files.main.parent if read.files and read.files.main else None
        return missing_files_hint(read.image_dir, items, images_written=loss.images_written,
                                  renamed_example=mapping.example if mapping else None,
                                  search_from=json_dir.parent if json_dir else None)

    return hint
