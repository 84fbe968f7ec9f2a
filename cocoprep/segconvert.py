"""`convert_segmentation`: a semantic-segmentation dataset (Pascal VOC
SegmentationClass, image/mask folder pairs, ADE20K, ...) + images -> sharded
segmentation TFRecords (the keys DeepLab and the Model Garden read).

The source (`sources.load_segmentation`, whichever format it finds) hands over
finished splits: every image paired with its mask, the label map (ids in mask
order, background included) and how mask pixels become ids. Here the items are
put in their seeded order and the job handed to the pipeline; workers check each
mask and image (`builders.SegmentationBuilder`). The never-silent rule and
skipped.jsonl work as for detection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cocoprep import __version__, fsio
from cocoprep.builders import SegmentationBuilder
from cocoprep.convert import _names
from cocoprep.errors import UsageError
from cocoprep.labelmap import LABELS_TXT_NAME, PBTXT_NAME
from cocoprep.manifest import Manifest
from cocoprep.options import JPEG_QUALITY, WriteOptions
from cocoprep.pipeline import WriteJob, plan_split, run_job, source_bytes
from cocoprep.ratio import parse_ratio
from cocoprep.schema import SCHEMA_VERSION, VOID_ID
from cocoprep.sources import load_segmentation
from cocoprep.sources.detection import SourceRequest
from cocoprep.sources.segmentation import SegmentationSource
from cocoprep.writer import start_runner

TASK = "segmentation"
# The detection-only options of `convert` and their defaults: given with the
# segmentation task they would do nothing, so they are refused.
DETECTION_ONLY = {"masks": False, "missing_masks": "box", "contiguous_ids": False,
                  "skip_empty": False, "crowd": "keep", "skip_difficult": False}


# The likely fix per mask skip reason, for the never-silent rule's message.
FIXES = {
    "missing_mask": "images have no mask: is the mask folder the right one (same file "
                    "stems as the images)?",
    "corrupt_mask": "the masks do not decode: are they complete PNG files?",
    "mask_size_mismatch": "the masks' sizes differ from their images': are these the masks "
                          "of these images (not resized copies)?",
    "unknown_mask_value": "the masks hold values the label map does not name: are the class "
                          "names complete (classes.txt, --classes, the colour table)?",
}


def refuse_detection_options(**given: Any) -> None:
    """A `UsageError` for the first detection-only option given a non-default value."""
    for name, default in DETECTION_ONLY.items():
        if name in given and given[name] != default:
            flag = "--" + name.replace("_", "-")
            raise UsageError(flag, "no detection option with --task segmentation",
                             given[name])


def pbtxt_text(source: SegmentationSource) -> str:
    """label_map.pbtxt with a first line that says which mask value is void."""
    return (f"# Mask ids are the item ids below; {VOID_ID} is void (ignore), not a class.\n"
            + source.label_map.to_pbtxt())


def _plans(source: SegmentationSource, options: WriteOptions):
    plans = []
    for split in source.splits:
        rows = np.arange(len(split.items), dtype=np.int32)
        if options.shuffle and len(rows) > 1:
            rows = rows[np.random.default_rng(options.seed).permutation(len(rows))]
        total = (source_bytes(split.image_dir, [i.image for i in split.items])
                 + source_bytes(split.mask_dir, [i.mask for i in split.items]))
        plans.append(plan_split(split.name, rows, total_bytes=total, options=options))
    return tuple(plans)


def segmentation_job(source: SegmentationSource, *, options: WriteOptions, src: str,
                     request: SourceRequest, panoptic: bool = False) -> WriteJob:
    """The write job for a segmentation source: plans, builder, manifest template."""
    if panoptic and source.instance_bits is None:
        raise UsageError("--panoptic", "a COCO panoptic source (segments per image)",
                         f"{source.format} ({source.layout})")
    bits = source.instance_bits if panoptic else None
    label_map = source.label_map
    builder = SegmentationBuilder(
        splits={s.name: s for s in source.splits}, codec=source.codec,
        names=tuple(label_map.names), encode=options.encode, max_side=options.max_side,
        jpeg_quality=options.jpeg_quality, instance_bits=bits)
    template = Manifest(
        task=TASK, schema_version=SCHEMA_VERSION, splits={},
        sources={"src": src, "format": source.format, "layout": source.layout,
                 "notes": list(source.notes), "splits": source.source_paths},
        options={
            "images": request.images, "splits": list(request.splits) if request.splits else None,
            "ratio": list(request.ratio) if request.ratio else None,
            "classes": list(request.classes) if request.classes else None,
            **options.manifest_options(), "void_id": VOID_ID, "panoptic": panoptic,
            "instance_mask_bits": bits,
        },
        created_by=f"cocoprep {__version__} convert",
    )
    return WriteJob(
        plans=_plans(source, options), builder=builder, manifest=template,
        class_order=tuple(label_map.names),
        extra_files={PBTXT_NAME: pbtxt_text(source), LABELS_TXT_NAME: label_map.to_labels_txt()},
        pre_skipped=tuple(source.skipped), fixes={**FIXES, **source.fixes},
    )


def convert_segmentation(
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
    encode: str = "jpeg",
    max_side: int | None = None,
    jpeg_quality: int = JPEG_QUALITY,
    strict: bool = False,
    allow_partial: bool = False,
    workers: int | None = None,
    quiet: bool = False,
    runner: str = "local",
    beam_options: str | Sequence[str] | None = None,
    panoptic: bool = False,
) -> Manifest:
    """Convert a semantic-segmentation dataset into sharded segmentation TFRecords.

    Args:
        src: a Pascal VOC tree with SegmentationClass/ (VOCdevkit, CVAT or Datumaro
            export), Cityscapes, a Roboflow mask export, COCO panoptic, or image/mask
            folder pairs (images/ + masks/, annotations/ or labels/; split folders;
            ADE20K SceneParsing); the format is recognised by itself.
        images: image directory, overriding the one the layout names.
        splits, ratio, seed, shuffle: as for `convert_detection` (`ratio` deals one
            split out by a seeded shuffle).
        classes: class names in mask-id order (id 0 first), for a layout without a
            names file (classes.txt / labels.txt).
        max_side: resize images whose longer side is over this; their masks follow
            by nearest neighbour (never any other resize).
        panoptic: COCO panoptic: also write `image/panoptic/category_mask` (the class
            ids) and `image/panoptic/instance_mask` (1.. per non-crowd thing segment,
            0 elsewhere; 16-bit in every record when an image has more than 255).
        Every other option: as for `convert_detection`.

    Records hold `image/segmentation/class/encoded`: an 8-bit one-channel PNG of
    label-map ids (0..N-1) and 255 for void, the size of the stored image.

    Raises:
        InputError, UsageError: before anything is written to `out`.
        DataLossError, StrictModeError: after everything was written.
    """
    options = WriteOptions.build(
        num_shards=num_shards, shard_size=shard_size, encode=encode, max_side=max_side,
        jpeg_quality=jpeg_quality, strict=strict, allow_partial=allow_partial, workers=workers,
        quiet=quiet, runner=runner, beam_options=beam_options, seed=seed, shuffle=shuffle)
    ratios = parse_ratio(ratio)
    request = SourceRequest(
        images=str(images) if images is not None else None,
        splits=_names("--splits", splits, "train,val", "split"),
        ratio=tuple(float(r) for r in ratios) if ratios is not None else None,
        seed=seed, classes=_names("--classes", classes, "background,cat", "class"),
        quiet=quiet)
    remote = [str(p) for p in (src, images, out) if p is not None and fsio.is_remote(str(p))]
    if remote:
        raise UsageError("SRC/-o", "local paths for segmentation (remote ones are not "
                         "supported yet)", remote[0])
    start_runner(options)
    source = load_segmentation(src, request)
    job = segmentation_job(source, options=options, src=str(src), request=request,
                           panoptic=bool(panoptic))
    return run_job(out, job, options)


def convert_task(src: str | Path, out: str | Path = "tfrecords", *, task: str | None = None,
                 panoptic: bool = False, **options: Any) -> Manifest:
    """`convert_detection` or `convert_segmentation`, as `task` says (default: what
    `sources.find_task` finds at `src`): the `convert` command's one call. A
    detection-only option given for segmentation, or `panoptic` for detection, is
    a `UsageError`."""
    from cocoprep.convert import convert_detection
    from cocoprep.sources import find_task

    if (task or find_task(src)) == TASK:
        refuse_detection_options(**options)
        kept = {k: v for k, v in options.items() if k not in DETECTION_ONLY}
        return convert_segmentation(src, out, panoptic=panoptic, **kept)
    if panoptic:
        raise UsageError("--panoptic", "--task segmentation (a COCO panoptic source)", True)
    return convert_detection(src, out, **options)
