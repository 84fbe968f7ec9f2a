"""Plain frozen dataclasses that flow between the stages. No TensorFlow here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EncodedImage:
    """Image bytes exactly as they will be stored, and what they hold.

    `width`/`height` are those of the stored pixels; `format` is `jpeg` or `png`
    and always tells the truth about `data`.
    """

    data: bytes
    format: str
    width: int
    height: int
    sha256: str
    converted_from: str | None = None  # e.g. "cmyk jpeg", "bmp"; None = bytes passed through
    orientation_applied: bool = False
    # The upright size before a --max-side resize; None when the image was not resized.
    original_width: int | None = None
    original_height: int | None = None

    @property
    def resized(self) -> bool:
        return self.original_width is not None

    @property
    def source_width(self) -> int:
        """The width annotations refer to (the size before any resize)."""
        return self.width if self.original_width is None else self.original_width

    @property
    def source_height(self) -> int:
        return self.height if self.original_height is None else self.original_height


@dataclass(frozen=True)
class Keypoint:
    """One keypoint, normalized to [0, 1]; visibility follows COCO (0 absent, 1 hidden, 2 visible)."""

    x: float
    y: float
    visibility: int


@dataclass(frozen=True)
class ObjectAnnotation:
    """One object of a detection example.

    The box is normalized to [0, 1] by the stored image size; `label` is the
    label-map id (never 0) and `text` its name.
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: int
    text: str
    is_crowd: bool = False
    area: float = 0.0
    annotation_id: int | None = None
    mask_png: bytes | None = None
    keypoints: tuple[Keypoint, ...] = ()
    difficult: bool = False   # Pascal VOC's flags (written with `with_voc_flags`)
    truncated: bool = False
    view: str = ""
    # optional per-object features by schema name (KITTI, CVAT, LabelMe, Open Images),
    # written with `DetectionExample.with_extras`
    extras: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class DetectionExample:
    """One image and its objects, ready to encode.

    `with_masks`, `num_keypoints` and `with_original_size` decide whether the
    optional features are written, so every record of a split carries the same keys; `captions` is None
    when the source has no captions.
    """

    image: EncodedImage
    filename: str
    source_id: str
    objects: tuple[ObjectAnnotation, ...] = ()
    with_masks: bool = False
    num_keypoints: int = 0
    captions: tuple[str, ...] | None = None
    with_original_size: bool = False  # --max-side: image/original_height and _width
    with_voc_flags: bool = False  # image/object/difficult, truncated, view (Pascal VOC)
    with_extras: tuple[str, ...] = ()  # the per-object extras every object carries
    image_extras: tuple[tuple[str, tuple], ...] = ()  # image-level values by schema name


@dataclass(frozen=True)
class ClassificationExample:
    """One image and its class. `label` is the stored label (offset already applied)."""

    image: EncodedImage
    filename: str
    label: int
    text: str
    with_original_size: bool = False  # --max-side: image/original_height and _width


@dataclass(frozen=True)
class SegmentationExample:
    """One image and its semantic mask: `mask_png` is a one-channel PNG of class ids
    (the output's label-map ids, void included) the size of the stored image. The
    panoptic masks are set only when the source has them and they were asked for."""

    image: EncodedImage
    filename: str
    source_id: str
    mask_png: bytes
    category_mask_png: bytes | None = None
    instance_mask_png: bytes | None = None
    with_original_size: bool = False  # --max-side: image/original_height and _width


@dataclass(frozen=True)
class SkippedItem:
    """One image or annotation that was not written, and why (a line of skipped.jsonl)."""

    split: str
    image_id: str | int | None
    annotation_id: int | None
    file: str | None
    reason: str
    detail: str = ""

    def to_json_dict(self) -> dict:
        return {
            "split": self.split,
            "image_id": self.image_id,
            "annotation_id": self.annotation_id,
            "file": self.file,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class BuildResult:
    """What building one example produced: the serialized record (or None when the
    whole image was skipped), the skips, and counters for the manifest.
    `class_counts` is keyed by class name."""

    example: bytes | None
    num_objects: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    skipped: tuple[SkippedItem, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)
    listing: str | None = None  # a line for OUT/{split}.txt, when the task keeps one
    # objects written with a change (a box clipped to its image): lines of fixed.jsonl,
    # shaped as skipped.jsonl's (the reason names the change)
    fixed: tuple[SkippedItem, ...] = ()
