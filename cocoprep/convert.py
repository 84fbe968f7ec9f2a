"""`convert_coco`: COCO JSON + images -> sharded detection TFRecords.

The parent process discovers the layout, streams and validates every JSON file into
compact arrays (any whole-input error is raised before OUT is touched), plans the
splits and shards, and hands image row numbers to the writer. Workers read and
check each image, apply the box rules, draw masks, and serialize the records.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cocoprep import __version__, fsio
from cocoprep.errors import InputError, ItemSkipped, StrictModeError, UsageError
from cocoprep.fsio import RemoteImageLoader, RemoteView, remote_view
from cocoprep.images import ENCODINGS, ImageLoader
from cocoprep.labelmap import LABELS_TXT_NAME, PBTXT_NAME, LabelMap
from cocoprep.manifest import SKIPPED_NAME, Manifest
from cocoprep.parallel import progress_bar
from cocoprep.records import (
    BuildResult, DetectionExample, Keypoint, ObjectAnnotation, SkippedItem,
)
from cocoprep.schema import SCHEMA_VERSION, encode_detection
from cocoprep.sources import coco
from cocoprep.sources.coco import BBOX_MALFORMED, BBOX_MISSING, CocoSplit
from cocoprep.writer import SplitPlan, check_runner, parse_size, plan_num_shards, write_dataset

# Reasons for skipped annotations (image reasons come from images.py).
MISSING_BBOX = "missing_bbox"
MALFORMED_BBOX = "malformed_bbox"
ZERO_AREA_BOX = "zero_area_box"
UNKNOWN_CATEGORY = "unknown_category"
CROWD_DROPPED = "crowd_dropped"
IMAGE_SKIPPED = "image_skipped"        # an annotation whose image was skipped
EMPTY_IMAGE = "empty_image"            # --skip-empty: an image with no object written
UNKNOWN_IMAGE = coco.UNKNOWN_IMAGE
UNMATCHED_KEYPOINTS = coco.UNMATCHED_KEYPOINTS

# Manifest counters.
BOXES_CLIPPED = "boxes_clipped"        # overshoot of more than CLIP_TOLERANCE px, clipped
IMAGES_CONVERTED = "images_converted"  # not stored byte for byte (format/mode conversion)
IMAGES_ROTATED = "images_rotated"      # EXIF orientation applied to match the JSON size
KEYPOINTS_MALFORMED = "keypoints_malformed"  # object written without its keypoints

CLIP_TOLERANCE = 1.0  # pixels: float error in exported boxes, clipped silently
CROWD_MODES = ("keep", "drop")
RATIO_SPLIT_NAMES = ("train", "val", "test")


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
            if fsio.is_remote(root):
                loaders[root] = RemoteImageLoader(root, orientation="mismatch", encode=self.encode)
            else:
                loaders[root] = ImageLoader(root, orientation="mismatch", encode=self.encode)
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

        width, height = image.width, image.height
        counters: dict[str, int] = {}
        if image.converted_from is not None:
            counters[IMAGES_CONVERTED] = 1
        if image.orientation_applied:
            counters[IMAGES_ROTATED] = 1
        skipped: list[SkippedItem] = []
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
            if status == BBOX_MISSING:
                skipped.append(skip(MISSING_BBOX, "the annotation has no bbox", ann_id))
                continue
            if status == BBOX_MALFORMED:
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
                from cocoprep.masks import mask_png

                seg = src.segmentations[r] if src.segmentations is not None else None
                try:
                    mask = mask_png(seg, height, width)
                except ItemSkipped as e:
                    skipped.append(skip(e.reason, e.detail, ann_id))
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
        if self.skip_empty and src.has_objects and not objects:
            skipped.append(skip(EMPTY_IMAGE, "no object written for this image (--skip-empty)"))
            return BuildResult(example=None, skipped=tuple(skipped), counters=counters)
        captions = src.captions[row] if src.captions is not None else None
        example = DetectionExample(
            image=image, filename=file_name, source_id=str(image_id), objects=tuple(objects),
            with_masks=self.masks, num_keypoints=src.num_keypoints if src.keypoints is not None
            else 0, captions=captions,
        )
        return BuildResult(example=encode_detection(example), num_objects=len(objects),
                           class_counts=class_counts, skipped=tuple(skipped), counters=counters)

    @staticmethod
    def _keypoints(src: CocoSplit, r: int, width: int, height: int,
                   counters: dict[str, int]) -> tuple[Keypoint, ...]:
        raw = src.keypoints[r]
        if raw is None:
            return ()
        k = src.num_keypoints
        if raw is False or len(raw) != 3 * k:
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


def parse_ratio(ratio: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """`0.8,0.2` or `0.8,0.1,0.1` -> fractions (2 or 3, each > 0, summing to 1)."""
    if ratio is None:
        return None
    try:
        parts = tuple(float(p) for p in (ratio.split(",") if isinstance(ratio, str) else ratio))
    except (TypeError, ValueError):
        raise UsageError("--ratio", "2 or 3 comma-separated fractions such as 0.8,0.2",
                         ratio) from None
    if len(parts) not in (2, 3) or any(not math.isfinite(p) or p <= 0 for p in parts):
        raise UsageError("--ratio", "2 or 3 positive fractions such as 0.8,0.2", ratio)
    if abs(sum(parts) - 1.0) > 1e-6:
        raise UsageError("--ratio", "fractions that add up to 1", ratio)
    return parts


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


def _read(path: Path, kind: str, *, masks: bool, quiet: bool) -> coco.CocoFile:
    size = path.stat().st_size if path.exists() else 0
    if size < 50_000_000:
        return coco.read_coco_file(path, kind, keep_segmentation=masks)
    with progress_bar(size, f"reading {path.name}", "B", quiet, unit_scale=True) as bar:
        return coco.read_coco_file(path, kind, keep_segmentation=masks, progress=bar.update)


def load_split(files: coco.SplitFiles, *, masks: bool = False,
               quiet: bool = True) -> tuple[CocoSplit, list[SkippedItem]]:
    """Read and validate the JSON files of one split into a `CocoSplit`."""
    main_kind = (coco.INSTANCES if files.instances else coco.KEYPOINTS if files.keypoints
                 else coco.IMAGE_INFO if files.image_info else coco.CAPTIONS)
    main = _read(files.main, main_kind, masks=masks, quiet=quiet)
    keypoints = captions = None
    if files.keypoints is not None and main_kind == coco.INSTANCES:
        keypoints = _read(files.keypoints, coco.KEYPOINTS, masks=False, quiet=quiet)
    if files.captions is not None and main_kind != coco.CAPTIONS:
        captions = _read(files.captions, coco.CAPTIONS, masks=False, quiet=quiet)
    return coco.assemble_split(files.name, files.image_dir, main, keypoints=keypoints,
                               captions=captions, files=files)


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
    strict: bool = False,
    workers: int | None = None,
    quiet: bool = False,
    runner: str = "local",
    beam_options: str | Sequence[str] | None = None,
) -> Manifest:
    """Convert a COCO dataset into sharded detection TFRecords in `out`.

    Args:
        src: a COCO root, a Roboflow-style root, or one COCO JSON file.
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
        contiguous_ids: label ids 1..N in category order instead of COCO's ids.
        skip_empty: drop images that end up with no objects.
        crowd: `keep` (is_crowd=1) or `drop`.
        encode: `jpeg` or `png`, for images that must be converted.
        strict: raise `StrictModeError` (after writing the report) if anything was skipped.
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
        StrictModeError: with `strict`, after everything was written.
    """
    if crowd not in CROWD_MODES:
        raise UsageError("--crowd", f"one of {', '.join(CROWD_MODES)}", crowd)
    if encode not in ENCODINGS:
        raise UsageError("--encode", f"one of {', '.join(ENCODINGS)}", encode)
    if workers is not None and int(workers) < 1:
        raise UsageError("--workers", "an integer >= 1", workers)
    if num_shards is not None and int(num_shards) < 1:
        raise UsageError("--num-shards", "an integer >= 1", num_shards)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError("--seed", "an integer >= 0", seed)  # numpy's generators need it
    shard_bytes = parse_size(shard_size) if shard_size is not None else None
    fractions = parse_ratio(ratio)
    wanted = _parse_splits(splits)

    check_runner(runner, out, beam_options=beam_options, workers=workers)
    remote = [str(p) for p in (src, images) if fsio.is_remote(str(p))]
    if remote and runner != "beam":
        raise UsageError("--runner", f"beam for a remote path ({remote[0]})", runner)
    with remote_view(src, images) as view:
        return _convert(view, src, out, images=images, wanted=wanted, fractions=fractions,
                        seed=seed, shuffle=shuffle, num_shards=num_shards,
                        shard_bytes=shard_bytes, masks=masks, contiguous_ids=contiguous_ids,
                        skip_empty=skip_empty, crowd=crowd, encode=encode, strict=strict,
                        workers=workers, quiet=quiet, runner=runner, beam_options=beam_options)


def _convert(view: "RemoteView", src, out, *, images, wanted, fractions, seed, shuffle,
             num_shards, shard_bytes, masks, contiguous_ids, skip_empty, crowd, encode,
             strict, workers, quiet, runner, beam_options) -> Manifest:
    found = coco.select_splits(coco.discover(view.src, images=view.images), wanted)
    if fractions is not None and len(found) != 1:
        raise UsageError("--ratio", "exactly one annotation file to split (pick one with "
                         "--splits or give the JSON file)", ",".join(s.name for s in found))

    loaded: list[CocoSplit] = []
    pre_skipped: list[SkippedItem] = []
    for files in found:
        split, skips = load_split(files, masks=masks, quiet=quiet)
        loaded.append(split)
        pre_skipped.extend(skips)

    categories = coco.merge_categories(loaded)
    if not contiguous_ids:
        for s in loaded:
            zero = next((c for c in s.categories if c.id == 0), None)
            if zero is not None:
                where = s.files.main if s.files is not None and s.files.main else s.name
                raise InputError(where, "category ids >= 1 (label_map.pbtxt keeps 0 for the "
                                 "background; --contiguous-ids renumbers them 1..N)",
                                 f"category id 0 ({zero.name!r})")
    if contiguous_ids:
        label_map = LabelMap.from_names(c.name for c in categories)
    else:
        label_map = LabelMap.from_pairs((c.id, c.name) for c in categories)
    labels = {c.id: (label_map.id_of(c.name), c.name) for c in categories}

    # Output splits: (name, source split, rows in final order).
    outputs: list[tuple[str, CocoSplit, np.ndarray]] = []
    if fractions is not None:
        source = loaded[0]
        names = RATIO_SPLIT_NAMES[:len(fractions)]
        parts = stratified_split(source, fractions, seed)
        outputs = [(name, source, rows) for name, rows in zip(names, parts)]
        pre_skipped = [SkippedItem(names[0], s.image_id, s.annotation_id, s.file, s.reason,
                                   s.detail) for s in pre_skipped]
    else:
        outputs = [(s.name, s, np.arange(s.num_images, dtype=np.int64)) for s in loaded]

    plans = []
    sources: dict[str, CocoSplit] = {}
    roots: dict[str, str] = {}
    for name, source, rows in outputs:
        roots[name] = root = view.to_remote(source.image_dir)
        if shuffle and len(rows) > 1:
            rows = rows[np.random.default_rng(seed).permutation(len(rows))]
        total = 0 if num_shards is not None else _file_sizes(source, rows, root)
        count = plan_num_shards(len(rows), total, num_shards=num_shards, shard_size=shard_bytes)
        plans.append(SplitPlan(name=name, items=rows.astype(np.int32), num_shards=count))
        sources[name] = source

    builder = DetectionBuilder(sources=sources, labels=labels, masks=masks, crowd=crowd,
                               skip_empty=skip_empty, encode=encode, roots=roots)
    template = Manifest(
        task="detection", schema_version=SCHEMA_VERSION, splits={},
        sources={"src": str(src), "splits": {
            s.name: {k: view.to_remote(v) for k, v in s.files.paths().items()}
            for s in loaded if s.files is not None}},
        options={
            "images": str(images) if images is not None else None,
            "splits": wanted, "ratio": list(fractions) if fractions else None, "seed": seed,
            "shuffle": shuffle, "num_shards": num_shards, "shard_size": shard_bytes,
            "masks": masks, "contiguous_ids": contiguous_ids, "skip_empty": skip_empty,
            "crowd": crowd, "encode": encode, "strict": strict,
        },
        created_by=f"cocoprep {__version__} convert",
    )
    extra = {PBTXT_NAME: label_map.to_pbtxt(), LABELS_TXT_NAME: label_map.to_labels_txt()}
    manifest, skipped = write_dataset(
        out, plans, builder, manifest=template, class_order=label_map.names,
        extra_files=extra, workers=workers, quiet=quiet, pre_skipped=pre_skipped,
        runner=runner, beam_options=beam_options,
    )
    if strict and skipped:
        err = StrictModeError(len(skipped), Path(out) / SKIPPED_NAME)
        err.manifest = manifest
        raise err
    return manifest
