"""`convert_detection`: a detection dataset (COCO JSON, Pascal VOC, YOLO) + images ->
sharded detection TFRecords.

The source (`sources.load_detection`, whichever format it finds) hands over finished
splits: layout found, every annotation file read and validated (any whole-input
error is raised before OUT is touched), label map decided. Here the rows are put in
their seeded order and the job handed to the pipeline; workers read and check each
image, apply the box rules, draw masks and serialize the records
(`builders.DetectionBuilder`). Afterwards the never-silent rule fails a run that
lost most of a split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from cocoprep import __version__, fsio
from cocoprep.builders import CROWD_MODES, MISSING_MASK_MODES, DetectionBuilder
from cocoprep.errors import UsageError
from cocoprep.fsio import remote_view
from cocoprep.labelmap import LABELS_TXT_NAME, PBTXT_NAME
from cocoprep.manifest import Manifest
from cocoprep.options import JPEG_QUALITY, WriteOptions
from cocoprep.pipeline import WriteJob, plan_split, run_job, source_bytes
from cocoprep.ratio import parse_ratio
from cocoprep.schema import SCHEMA_VERSION
from cocoprep.sources import load_detection
from cocoprep.sources.detection import DetectionSource, SourceRequest
from cocoprep.writer import check_runner, start_runner


def _names(option: str, value: str | Sequence[str] | None, example: str,
           what: str = "name") -> tuple[str, ...] | None:
    """A comma-separated list (or a sequence) of distinct, non-empty names."""
    if value is None:
        return None
    names = [s.strip() for s in (value.split(",") if isinstance(value, str) else value)]
    if not names or any(not n for n in names):
        raise UsageError(option, f"comma-separated {what} names such as {example}", value)
    if len(set(names)) != len(names):
        raise UsageError(option, f"each {what} once",
                         value if isinstance(value, str) else ",".join(names))
    return tuple(names)


@dataclass(frozen=True)
class DetectionOptions:
    """The detection-only options (the write options are `WriteOptions`)."""

    masks: bool = False
    missing_masks: str = "box"
    contiguous_ids: bool = False
    skip_empty: bool = False
    skip_difficult: bool = False
    crowd: str = "keep"

    def __post_init__(self):
        if self.crowd not in CROWD_MODES:
            raise UsageError("--crowd", f"one of {', '.join(CROWD_MODES)}", self.crowd)
        if self.missing_masks not in MISSING_MASK_MODES:
            raise UsageError("--missing-masks", f"one of {', '.join(MISSING_MASK_MODES)}",
                             self.missing_masks)


def _plans(source: DetectionSource, roots: dict[str, str], options: WriteOptions):
    """Each output split's rows in their seeded order, cut by the shard-count rule."""
    plans = []
    for out_split in source.splits:
        rows = out_split.rows
        if options.shuffle and len(rows) > 1:
            rows = rows[np.random.default_rng(options.seed).permutation(len(rows))]
        total = 0
        root = roots[out_split.name]
        if options.num_shards is None or not fsio.is_remote(root):  # also the space check
            names = [out_split.source.file_names[r] for r in rows.tolist()]
            total = source_bytes(root, names)
        plans.append(plan_split(out_split.name, rows.astype(np.int32), total_bytes=total,
                                options=options))
    return tuple(plans)


def detection_job(source: DetectionSource, *, detection: DetectionOptions,
                  options: WriteOptions, roots: dict[str, str], src: str,
                  request: SourceRequest) -> WriteJob:
    """The write job for a detection source: plans, builder, manifest template."""
    builder = DetectionBuilder(
        sources={s.name: s.source for s in source.splits}, labels=source.labels.labels,
        unselected=source.labels.unselected,
        masks=detection.masks, crowd=detection.crowd, skip_empty=detection.skip_empty,
        skip_difficult=detection.skip_difficult, encode=options.encode,
        missing_masks=detection.missing_masks, max_side=options.max_side,
        jpeg_quality=options.jpeg_quality, roots=roots)
    label_map = source.labels.label_map
    template = Manifest(
        task="detection", schema_version=SCHEMA_VERSION, splits={},
        sources={"src": src, "format": source.format, "layout": source.layout,
                 "notes": list(source.notes), "splits": source.source_paths},
        options={
            "images": request.images, "splits": list(request.splits) if request.splits else None,
            "ratio": list(request.ratio) if request.ratio else None,
            "classes": list(request.classes) if request.classes else None,
            **options.manifest_options(), "masks": detection.masks,
            "missing_masks": detection.missing_masks if detection.masks else None,
            "contiguous_ids": source.labels.contiguous, "skip_empty": detection.skip_empty,
            "skip_difficult": detection.skip_difficult, "crowd": detection.crowd,
        },
        created_by=f"cocoprep {__version__} convert",
    )
    return WriteJob(
        plans=_plans(source, roots, options), builder=builder, manifest=template,
        class_order=tuple(label_map.names),
        extra_files={PBTXT_NAME: label_map.to_pbtxt(), LABELS_TXT_NAME: label_map.to_labels_txt()},
        pre_skipped=tuple(source.skipped), missing_hint=source.missing_hint,
        fixes=dict(source.fixes),
    )


def convert_detection(
    src: str | Path,
    out: str | Path = "tfrecords",
    *,
    images: str | Path | None = None,
    splits: str | Sequence[str] | None = None,
    ratio: str | Sequence[float] | None = None,
    classes: str | Sequence[str] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    num_shards: int | None = None,
    shard_size: int | str | None = None,
    masks: bool = False,
    contiguous_ids: bool = False,
    skip_empty: bool = False,
    skip_difficult: bool = False,
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
    """Convert a detection dataset into sharded detection TFRecords in `out`.

    Args:
        src: a COCO root, a CVAT, Roboflow, Label Studio or FiftyOne COCO export, one
            COCO JSON file, a Pascal VOC folder (VOCdevkit or an export) or a YOLO
            dataset (data.yaml or darknet); the format is recognised by itself.
        out: output directory (created; old outputs are replaced only once the new
            ones are complete).
        images: image directory (for a single JSON file; overrides discovery).
        splits: split names to convert (`"train2017,val2017"` or a list).
        ratio: split one annotation set into train/val(/test) by image, stratified
            by category presence, e.g. `"0.8,0.2"`.
        classes: the classes to keep, in label order (ids 1..N), in every format;
            objects of other classes are dropped and reported (`class_not_selected`);
            a name the data set does not have is a `UsageError`. A YOLO folder without
            a names file takes its class names from here. Default: every class.
        seed: seed of the in-split shuffle and of `ratio`.
        shuffle: False keeps the source's image order.
        num_shards: shards per split (default: from `shard_size`).
        shard_size: target shard size, e.g. `"200MB"` (default: 200 MB, and about one
            shard per 128 images, at most 16).
        masks: write instance masks (PNG) from polygons / RLE.
        missing_masks: with `masks`, an object without a usable segmentation gets a
            mask filled from its box (`box`, counted as `masks_from_boxes`), or its
            whole image is skipped (`skip-image`).
        contiguous_ids: COCO: label ids 1..N in category order instead of COCO's ids
            (refused for other formats, whose ids are 1..N already).
        skip_empty: drop images that end up with no objects.
        skip_difficult: Pascal VOC: drop objects marked difficult (reported, never a loss;
            refused for formats without difficult flags).
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
            (default: the DirectRunner in the mode `beam_runner.default_mode` picks).

    Returns:
        The written manifest.

    Raises:
        InputError, UsageError: before anything is written to `out`.
        DataLossError: a split empty or mostly lost, after everything was written.
        StrictModeError: with `strict`, after everything was written.
    """
    options = WriteOptions.build(
        num_shards=num_shards, shard_size=shard_size, encode=encode, max_side=max_side,
        jpeg_quality=jpeg_quality, strict=strict, allow_partial=allow_partial, workers=workers,
        quiet=quiet, runner=runner, beam_options=beam_options, seed=seed, shuffle=shuffle)
    detection = DetectionOptions(masks=masks, missing_masks=missing_masks,
                                 contiguous_ids=contiguous_ids, skip_empty=skip_empty,
                                 skip_difficult=skip_difficult, crowd=crowd)
    ratios = parse_ratio(ratio)
    request = SourceRequest(
        images=str(images) if images is not None else None,
        splits=_names("--splits", splits, "train2017,val2017", "split"),
        ratio=tuple(float(r) for r in ratios) if ratios is not None else None,
        seed=seed, masks=masks, contiguous_ids=contiguous_ids,
        classes=_names("--classes", classes, "cat,dog", "class"),
        skip_difficult=skip_difficult, quiet=quiet)
    check_runner(options, out)
    start_runner(options)
    remote = [str(p) for p in (src, images) if p is not None and fsio.is_remote(str(p))]
    if remote and runner != "beam":
        raise UsageError("--runner", f"beam for a remote path ({remote[0]})", runner)
    with remote_view(src, images) as view:
        # A remote SRC is read through local copies of its annotation files; `roots`
        # and the recorded paths name the remote originals (what workers read).
        images_seen = str(view.images) if view.images is not None else None
        source = load_detection(view.src, replace(request, images=images_seen))
        roots = {s.name: view.to_remote(s.source.image_dir) for s in source.splits}
        source = _named_remote(source, view)
    job = detection_job(source, detection=detection, options=options, roots=roots,
                        src=str(src), request=request)
    return run_job(out, job, options)


def _named_remote(source: DetectionSource, view: fsio.RemoteView) -> DetectionSource:
    """`source` with its recorded paths, notes and skips naming the remote originals
    instead of their temp copies (a local SRC passes through unchanged)."""
    paths = {name: {k: view.to_remote(v) for k, v in p.items()}
             for name, p in source.source_paths.items()}
    skipped = tuple(replace(s, file=s.file and view.in_text(s.file), detail=view.in_text(s.detail))
                    for s in source.skipped)
    return replace(source, source_paths=paths, notes=tuple(map(view.in_text, source.notes)),
                   skipped=skipped)


# The name this function had when COCO was the only format (kept: users call it).
convert_coco = convert_detection
