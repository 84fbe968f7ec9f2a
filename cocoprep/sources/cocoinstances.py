"""COCO instances -> finished segmentation splits, with `--task segmentation` only:
each image's semantic mask is drawn from its polygons and RLEs, for users who have
instance labels and want to train a segmenter.

Decisions: the label map is `background` (0) and then the categories in
category-id order (1..N); crowd regions are void (255); objects are drawn largest
first, so a smaller object lying on a larger one stays visible; an annotation
whose segmentation is unusable skips its image (`malformed_segmentation` /
`missing_segmentation`), since its pixels would become background. Every COCO
layout `convert` reads for detection is read here the same way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cocoprep.sources import cocosplits, cocopanoptic
from cocoprep.sources.detection import SourceRequest, subset
from cocoprep.sources.segmentation import (
    MaskCodec, SegItem, SegmentationSource, SegmentationSplit, check_num_classes, label_map_of,
)

TITLE = "COCO instances"
FORMAT = "coco_instances"
EXPECTED = "COCO instances (any COCO layout; with --task segmentation)"
BACKGROUND = "background"


def detect(src: Path, *, forced: bool = False) -> bool:
    """Only when asked for (`--task segmentation`): instances are detection data."""
    return forced and cocosplits.detect(Path(src)) and not cocopanoptic.detect(Path(src))


def load(src: Path, request: SourceRequest) -> SegmentationSource:
    det = cocosplits.load(src, replace(request, masks=True, contiguous_ids=False))
    categories = sorted(det.labels.labels.items())  # COCO id -> (label id, name)
    names = (BACKGROUND,) + tuple(name for _, (_, name) in categories)
    if BACKGROUND in names[1:]:
        names = tuple(name for _, (_, name) in categories)
        labels = {cat: i for i, (cat, _) in enumerate(categories)}
    else:
        labels = {cat: i + 1 for i, (cat, _) in enumerate(categories)}
    check_num_classes(names, "the COCO categories")
    splits = []
    for out in det.splits:
        src_split = subset(out.source, out.rows)
        main = out.source.files.main if out.source.files else None
        json_path = main if main is not None else Path("annotations")
        items = tuple(SegItem(src_split.file_names[r], f"{json_path.name}#{src_split.source_id(r)}",
                              src_split.source_id(r)) for r in range(src_split.num_images))
        # mask_dir: the JSON the masks are drawn from (what the manifest records)
        splits.append(SegmentationSplit(out.name, out.source.image_dir, json_path, items,
                                        instances=src_split, labels=labels))
    notes = det.notes + (f"masks drawn from the instances: {BACKGROUND} 0, categories 1..N in "
                         "id order, crowd regions void (255)",)
    return SegmentationSource(FORMAT, det.layout, tuple(splits), label_map_of(names),
                              MaskCodec.identity(len(names)), det.skipped, notes)
