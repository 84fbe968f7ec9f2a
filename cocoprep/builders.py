"""One record per item, for each task: what a worker runs for every image.

`DetectionBuilder` turns one image row of a `DetectionSplit` (any source format)
into a serialized detection record: read and check the image, apply the box rules
(clip, count, skip with a reason), draw masks, keep keypoints, captions and VOC's
flags. `ClassificationBuilder` does the same for one file of a class-folder tree,
`SegmentationBuilder` for one image and its semantic mask. All are picklable:
they are sent once to each worker.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cocoprep.errors import (
    CLASS_NOT_SELECTED, CORRUPT_MASK, CROWD_DROPPED, DIFFICULT_DROPPED, EMPTY_IMAGE,
    IMAGE_SKIPPED, MALFORMED_BBOX, MASK_SIZE_MISMATCH, MISSING_BBOX, MISSING_FILE, MISSING_MASK,
    NO_MASK, SIZE_MISMATCH, UNKNOWN_CATEGORY, UNKNOWN_MASK_VALUE, ZERO_AREA_BOX, ItemSkipped,
    image_skipped_detail,
)
from cocoprep.images import loader_for, prepare_image, read_bytes
from cocoprep.options import JPEG_QUALITY
from cocoprep.records import (
    BuildResult, ClassificationExample, DetectionExample, EncodedImage, Keypoint,
    ObjectAnnotation, SegmentationExample, SkippedItem,
)
from cocoprep.schema import VOID_ID, encode_classification, encode_detection, encode_segmentation
from cocoprep.segmasks import (
    DecodedMask, decode_mask, draw_semantic, encode_instances, encode_mask, nearest_resize,
    panoptic_mask,
)
from cocoprep.sources.coco import BboxStatus, KeypointsMark
from cocoprep.sources.detection import DetectionSplit, subset
from cocoprep.sources.segstore import MaskFile
from cocoprep.sources.segmentation import MaskCodec, SegItem, SegmentationSplit

# Manifest counters (the same names for both tasks).
BOXES_CLIPPED = "boxes_clipped"        # overshoot of more than CLIP_TOLERANCE px, clipped
IMAGES_CONVERTED = "images_converted"  # not stored byte for byte (format/mode conversion)
IMAGES_ROTATED = "images_rotated"      # EXIF orientation applied
IMAGES_RESIZED = "images_resized"      # longer side over --max-side: resized
KEYPOINTS_MALFORMED = "keypoints_malformed"  # object written without its keypoints
MASKS_FROM_BOXES = "masks_from_boxes"  # --masks: object without a usable segmentation,
                                       # written with a mask filled from its box

CLIP_TOLERANCE = 1.0  # pixels: float error in exported boxes, clipped silently
BOX_CLIPPED = "box_clipped"  # the reason of a fixed.jsonl line: a box clipped to its image


def _box_text(src: DetectionSplit, x1: float, y1: float, x2: float, y2: float) -> str:
    """A box in pixels as its source writes boxes: VOC's corners, else COCO's x, y, w, h."""
    if src.corner_boxes:
        return f"box xmin {x1:g}, ymin {y1:g}, xmax {x2:g}, ymax {y2:g}"
    return f"bbox [{x1:g}, {y1:g}, {x2 - x1:g}, {y2 - y1:g}]"
CROWD_MODES = ("keep", "drop")
# --masks, an object without a usable segmentation: a mask filled from its box, or
# the whole image skipped. Never the object dropped alone (it would become background).
MISSING_MASK_MODES = ("box", "skip-image")


def _count(counters: dict[str, int], name: str, n: int = 1) -> None:
    counters[name] = counters.get(name, 0) + n


def image_counters(image: EncodedImage) -> dict[str, int]:
    """The per-image counters: converted, rotated, resized."""
    counters: dict[str, int] = {}
    if image.converted_from is not None:
        counters[IMAGES_CONVERTED] = 1
    if image.orientation_applied:
        counters[IMAGES_ROTATED] = 1
    if image.resized:
        counters[IMAGES_RESIZED] = 1
    return counters


# plain ints: comparing to an IntEnum member looks it up on the class every time
_BBOX_MISSING, _BBOX_MALFORMED = int(BboxStatus.MISSING), int(BboxStatus.MALFORMED)


@dataclass(frozen=True)
class _Columns:
    """One image's annotation columns as Python lists (one conversion per image
    instead of a numpy scalar per field and annotation)."""

    rows: range
    ids: list
    categories: list
    status: list
    crowd: list
    bbox: list
    area: list
    difficult: list | None
    truncated: list | None

    @classmethod
    def of(cls, src: DetectionSplit, row: int) -> "_Columns":
        lo, hi = int(src.ann_start[row]), int(src.ann_start[row + 1])

        def column(values):
            return None if values is None else values[lo:hi].tolist()

        return cls(range(lo, hi), column(src.ann_ids), column(src.ann_category_ids),
                   column(src.bbox_status), column(src.iscrowd), column(src.bbox),
                   column(src.area), column(src.difficult), column(src.truncated))


@dataclass
class _Row:
    """One image row being built: where it is and what it has produced so far."""

    split: str
    src: DetectionSplit
    row: int
    image: EncodedImage
    counters: dict[str, int]
    objects: list[ObjectAnnotation] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    no_mask: list[SkippedItem] = field(default_factory=list)
    fixed: list[SkippedItem] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, detail: str, ann: int | None = None) -> SkippedItem:
        return SkippedItem(self.split, int(self.src.image_ids[self.row]), ann,
                           self.src.file_names[self.row], reason, detail)

    @property
    def size(self) -> tuple[int, int]:
        """The width, height annotations refer to (before any --max-side resize)."""
        return self.image.source_width, self.image.source_height


@dataclass
class DetectionBuilder:
    """Builds one detection record per image row (picklable: sent once per worker).

    `sources` maps each output split to the `DetectionSplit` its rows index (with
    `--ratio` several output splits share one). `labels` maps a source category id
    to (label-map id, name); `unselected` holds the category ids `--classes` left out.
    """

    sources: dict[str, DetectionSplit]
    labels: dict[int, tuple[int, str]]
    unselected: dict[int, str] = field(default_factory=dict)
    masks: bool = False
    crowd: str = "keep"
    skip_empty: bool = False
    skip_difficult: bool = False
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
        sub = subset(self.sources[split_name], rows)
        root = self.roots.get(split_name, str(self.sources[split_name].image_dir))
        return (replace(self, sources={split_name: sub}, roots={split_name: root}),
                list(range(len(rows))))

    def _loader(self, split_name: str):
        loaders = self.__dict__.setdefault("_loaders", {})
        root = self.roots.get(split_name) or str(self.sources[split_name].image_dir)
        if root not in loaders:
            loaders[root] = loader_for(root, orientation="mismatch", encode=self.encode,
                                       max_side=self.max_side, jpeg_quality=self.jpeg_quality)
        return loaders[root]

    def build(self, split_name: str, row: Any) -> BuildResult:
        src, row = self.sources[split_name], int(row)
        loaded = self._load_image(split_name, src, row)
        if isinstance(loaded, BuildResult):
            return loaded
        state = _Row(split_name, src, row, loaded, image_counters(loaded))
        cols = _Columns.of(src, row)
        for k in range(len(cols.rows)):
            self._add_object(state, cols, k)
        if state.no_mask:
            return self._skip_for_masks(state)
        if self.skip_empty and src.has_objects and not state.objects:
            state.skipped.append(state.skip(EMPTY_IMAGE,
                                            "no object written for this image (--skip-empty)"))
            return BuildResult(example=None, skipped=tuple(state.skipped),
                               counters=state.counters)
        example = DetectionExample(
            image=state.image, filename=src.file_names[row], source_id=src.source_id(row),
            objects=tuple(state.objects), with_masks=self.masks,
            num_keypoints=src.num_keypoints if src.keypoints is not None else 0,
            captions=src.captions[row] if src.captions is not None else None,
            with_original_size=self.max_side is not None,
            with_voc_flags=src.difficult is not None,
            with_extras=tuple(src.extras) if src.extras else (),
            image_extras=(tuple((k, tuple(v[row])) for k, v in src.image_extras.items())
                          if src.image_extras else ()),
        )
        return BuildResult(example=encode_detection(example), num_objects=len(state.objects),
                           class_counts=state.class_counts, skipped=tuple(state.skipped),
                           counters=state.counters, fixed=tuple(state.fixed))

    def _load_image(self, split_name: str, src: DetectionSplit,
                    row: int) -> EncodedImage | BuildResult:
        """The checked image, or the result that skips it with every annotation."""
        width, height = int(src.widths[row]), int(src.heights[row])
        expected = (width, height) if width > 0 and height > 0 else None
        try:
            if src.embedded is not None and src.embedded[row] is not None:
                from cocoprep.sources.labelme import embedded_image

                return prepare_image(embedded_image(src.embedded[row]), expected_size=expected,
                                     **self._loader(split_name).options)
            return self._loader(split_name).load(src.file_names[row], expected_size=expected)
        except ItemSkipped as e:
            image_id, file_name = int(src.image_ids[row]), src.file_names[row]
            items = [SkippedItem(split_name, image_id, None, file_name, e.reason, e.detail)]
            items += [SkippedItem(split_name, image_id, int(src.ann_ids[r]), file_name,
                                  IMAGE_SKIPPED, image_skipped_detail(e.reason))
                      for r in src.annotation_rows(row)]
            return BuildResult(example=None, skipped=tuple(items))

    def _refusal(self, cols: _Columns, k: int, state: _Row) -> SkippedItem | None:
        """Why annotation `k` of the image is not written before its box is looked
        at, or None."""
        ann_id, cat = cols.ids[k], cols.categories[k]
        if cat in self.unselected:
            return state.skip(CLASS_NOT_SELECTED,
                              f"class {self.unselected[cat]!r} is not in --classes", ann_id)
        if cat not in self.labels:
            return state.skip(UNKNOWN_CATEGORY, f"category id {cat} is not in the file's "
                              "categories", ann_id)
        if cols.crowd[k] and self.crowd == "drop":
            return state.skip(CROWD_DROPPED, "crowd annotation dropped (--crowd drop)", ann_id)
        if self.skip_difficult and cols.difficult is not None and cols.difficult[k]:
            return state.skip(DIFFICULT_DROPPED, "difficult object dropped (--skip-difficult)",
                              ann_id)
        status = cols.status[k]
        if status == _BBOX_MISSING:
            return state.skip(MISSING_BBOX, "the annotation has no bbox", ann_id)
        if status == _BBOX_MALFORMED:
            return state.skip(MALFORMED_BBOX, "bbox is not [x, y, width, height] with finite "
                              "numbers and width, height >= 0", ann_id)
        return None

    def _add_object(self, state: _Row, cols: _Columns, k: int) -> None:
        refusal = self._refusal(cols, k, state)
        if refusal is not None:
            state.skipped.append(refusal)
            return
        src, r, ann_id = state.src, cols.rows[k], cols.ids[k]
        width, height = state.size
        x, y, w, h = cols.bbox[k]
        if src.normalized:
            x, y, w, h = x * width, y * height, w * width, h * height
        x2, y2 = x + w, y + h
        overshoot = max(-x, -y, x2 - width, y2 - height)
        cx1, cy1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
        cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
        files = src.annotation_files
        where = f"{files[state.row]}: " if files and files[state.row] else ""
        if cx2 <= cx1 or cy2 <= cy1:
            state.skipped.append(state.skip(
                ZERO_AREA_BOX, f"{where}{_box_text(src, x, y, x2, y2)} has no area inside "
                f"the {width}x{height} image", ann_id))
            return
        mask = None
        if self.masks:
            mask = self._mask(state, r, (cx1, cy1, cx2, cy2))
            if isinstance(mask, ItemSkipped):
                # a mask file that is missing or broken loses its object (reported);
                # no segmentation at all follows --missing-masks
                lost = state.skipped if mask.reason in _MASK_REASONS else state.no_mask
                lost.append(state.skip(mask.reason, mask.detail, ann_id))
                return
        if overshoot > CLIP_TOLERANCE:
            _count(state.counters, BOXES_CLIPPED)
            state.fixed.append(state.skip(
                BOX_CLIPPED, f"{where}{_box_text(src, x, y, x2, y2)} overshoots the "
                f"{width}x{height} image by {overshoot:.4g} px: clipped to "
                f"{_box_text(src, cx1, cy1, cx2, cy2)}", ann_id))
        area = cols.area[k]
        if math.isnan(area):
            area = (cx2 - cx1) * (cy2 - cy1)
        label_id, text = self.labels[cols.categories[k]]
        state.objects.append(ObjectAnnotation(
            xmin=cx1 / width, ymin=cy1 / height, xmax=cx2 / width, ymax=cy2 / height,
            label=label_id, text=text, is_crowd=bool(cols.crowd[k]), area=area,
            annotation_id=ann_id, mask_png=mask, keypoints=self._keypoints(state, r),
            difficult=bool(cols.difficult[k]) if cols.difficult is not None else False,
            truncated=bool(cols.truncated[k]) if cols.truncated is not None else False,
            view=src.views[r] if src.views is not None else "",
            extras=tuple((k, v[r]) for k, v in src.extras.items()) if src.extras else (),
        ))
        state.class_counts[text] = state.class_counts.get(text, 0) + 1

    def _mask(self, state: _Row, r: int,
              box: tuple[float, float, float, float]) -> bytes | ItemSkipped:
        """The object's mask PNG at the stored size of its image (smaller than the
        annotated size after --max-side); without a usable segmentation, one filled
        from its box (counted), or the reason (`--missing-masks skip-image`)."""
        from cocoprep.masks import box_mask_png, mask_png

        src, (width, height) = state.src, state.size
        stored = (state.image.height, state.image.width)
        seg = src.segmentations[r] if src.segmentations is not None else None
        if isinstance(seg, MaskFile):
            from cocoprep.masks import mask_file_png

            return mask_file_png(seg, *stored)
        if src.normalized and isinstance(seg, list):
            seg = [[v * (width if i % 2 == 0 else height) for i, v in enumerate(poly)]
                   if isinstance(poly, list) else poly for poly in seg]
        try:
            return mask_png(seg, height, width, out_height=stored[0], out_width=stored[1])
        except ItemSkipped as e:
            if self.missing_masks != "box":
                return e
        _count(state.counters, MASKS_FROM_BOXES)
        sy, sx = stored[0] / height, stored[1] / width
        x1, y1, x2, y2 = box
        return box_mask_png((x1 * sx, y1 * sy, x2 * sx, y2 * sy), *stored)

    @staticmethod
    def _skip_for_masks(state: _Row) -> BuildResult:
        """--missing-masks skip-image: the whole image goes, each annotation listed."""
        items = [state.skip(NO_MASK, f"{len(state.no_mask)} object(s) have no usable "
                            "segmentation (--missing-masks skip-image)")]
        items += state.no_mask
        items += [state.skip(IMAGE_SKIPPED, image_skipped_detail(NO_MASK),
                             o.annotation_id) for o in state.objects]
        return BuildResult(example=None, skipped=tuple(items + state.skipped),
                           counters=state.counters)

    @staticmethod
    def _keypoints(state: _Row, r: int) -> tuple[Keypoint, ...]:
        src = state.src
        if src.keypoints is None:
            return ()
        raw, k = src.keypoints[r], src.num_keypoints
        if raw is KeypointsMark.ABSENT:
            return ()
        if raw is KeypointsMark.MALFORMED or len(raw) != 3 * k:
            _count(state.counters, KEYPOINTS_MALFORMED)
            return ()
        width, height = state.size
        out = []
        for i in range(k):
            x, y, v = raw[3 * i], raw[3 * i + 1], int(raw[3 * i + 2])
            if v <= 0:
                out.append(Keypoint(0.0, 0.0, 0))
            else:
                out.append(Keypoint(min(max(x / width, 0.0), 1.0),
                                    min(max(y / height, 0.0), 1.0), min(v, 2)))
        return tuple(out)


@dataclass(frozen=True)
class FolderItem:
    """One image of a class-folder tree to write: `path` relative to the root, the
    stored `label` (offset applied) and the class name."""

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
        example = ClassificationExample(
            image=image, filename=item.path, label=item.label, text=item.class_name,
            with_original_size=self.max_side is not None,
        )
        return BuildResult(example=encode_classification(example),
                           class_counts={item.class_name: 1}, counters=image_counters(image),
                           listing=f"{item.path} {item.label}")


VOID_PIXELS = "void_pixels"  # segmentation: pixels of the void value, over the split
# skips whose skipped.jsonl line names the mask file (the others name the image)
_MASK_REASONS = (MISSING_MASK, CORRUPT_MASK, UNKNOWN_MASK_VALUE, MASK_SIZE_MISMATCH)


@dataclass
class SegmentationBuilder:
    """Builds one segmentation record per item of a `SegmentationSplit` (picklable).

    The mask is read first (`segmasks.decode_mask`: decodes, ids in the label map or
    void), then the image through the image checks with the mask's size as the
    expected one (an EXIF orientation that explains a swapped size is applied, as
    for detection). A mask whose size differs is a skip, never resized; with
    `--max-side` the mask follows its image by nearest neighbour. `class_counts`
    are pixels per class name; void pixels are the `void_pixels` counter.
    """

    splits: dict[str, SegmentationSplit]
    codec: MaskCodec
    names: tuple[str, ...]  # by id
    encode: str = "jpeg"
    max_side: int | None = None
    jpeg_quality: int = JPEG_QUALITY
    instance_bits: int | None = None  # --panoptic: write the panoptic masks, at these bits

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_loaders", None)
        return state

    def for_shard(self, split_name: str, rows: Any) -> tuple["SegmentationBuilder", list[int]]:
        """A builder holding only `rows` of `split_name` (renumbered 0..n-1): what one
        worker needs for one shard, not every item's segments."""
        split = self.splits[split_name]
        rows = np.asarray(rows, dtype=np.int64)
        cut = replace(split, items=tuple(split.items[int(r)] for r in rows))
        if split.instances is not None:
            cut = replace(cut, instances=subset(split.instances, rows))
        return replace(self, splits={split_name: cut}), list(range(len(rows)))

    def _loader(self, image_dir: str):
        loaders = self.__dict__.setdefault("_loaders", {})
        if image_dir not in loaders:
            loaders[image_dir] = loader_for(image_dir, orientation="mismatch",
                                            encode=self.encode, max_side=self.max_side,
                                            jpeg_quality=self.jpeg_quality)
        return loaders[image_dir]

    def build(self, split_name: str, row: Any) -> BuildResult:
        split = self.splits[split_name]
        item = split.items[int(row)]
        try:
            mask, image = self._read(split, item, int(row))
        except ItemSkipped as e:
            file = item.mask if e.reason in _MASK_REASONS else item.image
            return BuildResult(example=None, skipped=(
                SkippedItem(split_name, item.source_id, None, file, e.reason, e.detail),))
        ids, png, numbers, counts = mask.ids, mask.png, mask.instances, mask.counts
        if image.resized:
            ids, png, counts = nearest_resize(ids, image.height, image.width), None, None
            if numbers is not None:
                numbers = nearest_resize(numbers, image.height, image.width)
        if png is None:
            png = encode_mask(ids)
        panoptic = self.instance_bits is not None and numbers is not None
        example = SegmentationExample(
            image=image, filename=item.image.rsplit("/", 1)[-1], source_id=item.source_id,
            mask_png=png, category_mask_png=png if panoptic else None,
            instance_mask_png=encode_instances(numbers, self.instance_bits) if panoptic else None,
            with_original_size=self.max_side is not None)
        if counts is None:
            counts = np.bincount(ids.ravel(), minlength=256)
        counters = image_counters(image)
        if counts[VOID_ID]:
            counters[VOID_PIXELS] = int(counts[VOID_ID])
        classes = {self.names[i]: int(counts[i]) for i in np.flatnonzero(counts[:len(self.names)])}
        return BuildResult(example=encode_segmentation(example), class_counts=classes,
                           counters=counters)

    def _drawn(self, split: SegmentationSplit, row: int) -> DecodedMask:
        """COCO instances: the image's mask drawn from its annotations."""
        src = split.instances
        rows = src.annotation_rows(row)
        unknown = sorted({int(src.ann_category_ids[r]) for r in rows} - set(split.labels))
        if unknown:  # its pixels would silently become background
            raise ItemSkipped(UNKNOWN_CATEGORY, f"{split.items[row].mask}: category id(s) "
                              f"{', '.join(map(str, unknown))} not in the file's categories")
        objects = [(split.labels[int(src.ann_category_ids[r])], bool(src.iscrowd[r]),
                    src.segmentations[r]) for r in rows]
        return draw_semantic(objects, int(src.heights[row]), int(src.widths[row]),
                             split.items[row].mask)

    def _read(self, split: SegmentationSplit, item: SegItem, row: int):
        if split.instances is not None:
            mask = self._drawn(split, row)
            return mask, self._image(split, item, mask)
        mask_path = os.path.join(split.mask_dir, item.mask)
        try:
            data = read_bytes(mask_path)
        except ItemSkipped as e:
            raise ItemSkipped(MISSING_MASK if e.reason == MISSING_FILE else e.reason,
                              e.detail) from None
        if item.segments is not None:
            mask = panoptic_mask(data, item.segments, name=item.mask)
        else:
            mask = decode_mask(data, self.codec, name=item.mask)
        return mask, self._image(split, item, mask)

    def _image(self, split: SegmentationSplit, item: SegItem, mask: DecodedMask) -> EncodedImage:
        try:
            return self._loader(str(split.image_dir)).load(
                item.image, expected_size=(mask.width, mask.height))
        except ItemSkipped as e:
            if e.reason != SIZE_MISMATCH:
                raise
            found = e.detail.split(",")[0].replace("stored image is ", "")
            raise ItemSkipped(MASK_SIZE_MISMATCH, f"mask {item.mask} is {mask.width}x"
                              f"{mask.height}, image {item.image} is {found} (masks are never "
                              "resized to fit)") from None
