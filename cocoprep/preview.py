"""`preview`: a grid picture of what the model will get.

Examples are read through `cocoprep.load` (optionally with the default
augmentation), so boxes, masks and labels are drawn exactly where the reader puts
them. Each image is scaled to fit a square tile (kept aspect ratio, centred across and
resting on the caption strip);
boxes, class names, keypoints and translucent masks are drawn in one colour per
class;
classification examples get their label under the tile; segmentation masks are
blended over their pictures in one colour per class (a class named ``background``
left untinted, void in VOC's cream), with a legend of the ids shown under the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cocoprep.errors import InputError, UsageError
from cocoprep.tfimport import error_text

PAD = 8  # pixels between tiles and around the grid
CAPTION_HEIGHT = 22  # the strip under each tile (image id, or the class label)
MASK_ALPHA = 0.45
BACKGROUND = (32, 32, 32)
TEXT_COLOR = (235, 235, 235)

# Kelly's colours of maximum contrast (minus white, black and near-greys), which stay
# tellable apart for most colour-blind readers too; later classes get spread hues.
_PALETTE = (
    (255, 179, 0), (128, 62, 117), (255, 104, 0), (166, 189, 215), (193, 0, 32),
    (206, 162, 98), (0, 125, 52), (246, 118, 142), (0, 83, 138), (255, 122, 92),
    (83, 55, 122), (255, 142, 0), (179, 40, 81), (244, 200, 0), (127, 24, 13),
    (147, 170, 0), (89, 51, 21), (241, 58, 19), (35, 44, 22),
)
UNKNOWN_COLOR = (160, 160, 160)
VOID_COLOR = (224, 224, 192)  # the colour VOC's palette gives the void id
LEGEND_ROW = 20  # the height of one row of the segmentation legend


def class_color(index: int) -> tuple[int, int, int]:
    """The colour of class `index` (0-based); -1 (not in the label map) is grey."""
    if index < 0:
        return UNKNOWN_COLOR
    if index < len(_PALETTE):
        return _PALETTE[index]
    import colorsys

    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = fill
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@dataclass(frozen=True)
class Placement:
    """Where one example's image landed in the grid: top-left corner of the scaled
    image, its scaled size, and the scale factor."""

    x: int
    y: int
    width: int
    height: int
    scale: float


def grid_size(n: int, *, tile: int, columns: int) -> tuple[int, int]:
    """(width, height) of the PNG for `n` examples."""
    rows = math.ceil(n / columns)
    return (PAD + columns * (tile + PAD), PAD + rows * (tile + CAPTION_HEIGHT + PAD))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, max_width: int) -> str:
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "…", font=font) > max_width:
        text = text[:-1]
    return text + "…"


def _as_uint8(image) -> Any:
    import numpy as np

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32)), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr


def _label(draw, x: float, y_top: float, y_bottom: float, text: str, color, font,
           cell: tuple[int, int, int, int]) -> None:
    """A filled label at the box's top-left: above the box when there is room in the
    tile, else just inside it; shifted left so it never leaves the tile."""
    cx0, cy0, cx1, cy1 = cell
    text = _fit(draw, text, font, cx1 - cx0 - 4)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 2
    lx = min(max(x, cx0), cx1 - w)
    ly = y_top - h if y_top - h >= cy0 else min(y_top, cy1 - h)
    draw.rectangle([lx, ly, lx + w - 1, ly + h - 1], fill=color)
    draw.text((lx + 2 - left, ly + 1 - top), text, fill=_text_color(color), font=font)


@dataclass(frozen=True)
class _Style:
    """Sizes that follow the tile size."""

    tile: int
    font: Any
    small: Any
    line: int


def render(examples: Sequence[dict], *, task: str, class_names: Sequence[str] | None = None,
           tile: int = 256, columns: int | None = None):
    """Draw `examples` (element dicts of `cocoprep.load`, as numpy values) into a grid.

    Returns (PIL image, placements), one `Placement` per example.
    """
    from PIL import Image, ImageDraw

    n = len(examples)
    if n == 0:
        raise UsageError("-n", "at least one example in the split", 0)
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    columns = min(columns, n)
    width, height = grid_size(n, tile=tile, columns=columns)
    style = _Style(tile, _font(max(10, tile // 20)), _font(max(10, tile // 22)),
                   max(2, tile // 128))
    legend = _legend_entries(examples, class_names) if task == "segmentation" else []
    legend_rows = _legend_layout(legend, width, style.small)
    canvas = Image.new("RGB", (width, height + LEGEND_ROW * len(legend_rows)), BACKGROUND)
    placements = []
    for i, ex in enumerate(examples):
        row, col = divmod(i, columns)
        cx, cy = PAD + col * (tile + PAD), PAD + row * (tile + CAPTION_HEIGHT + PAD)
        seg_names = list(class_names or []) if task == "segmentation" else None
        place, img = _picture(ex, cx, cy, tile, seg_names)
        placements.append(place)
        canvas.paste(img, (place.x, place.y))
        draw = ImageDraw.Draw(canvas)
        if task == "segmentation":
            caption = _text(ex.get("filename", b"")) or _text(ex.get("image_id", b""))
            caption_color = TEXT_COLOR
        elif task == "detection":
            caption, caption_color = _draw_objects(draw, ex, place, (cx, cy), style,
                                                   class_names or [])
        else:
            label = int(np.asarray(ex["label"]))
            caption = f"{_text(ex.get('label_text', b''))} ({label})"
            caption_color = class_color(label)
            draw.rectangle([cx, cy + tile + 3, cx + 10, cy + tile + 13], fill=caption_color)
        if caption:
            text = _fit(draw, caption, style.small, tile - 16)
            left, top, _, _ = draw.textbbox((0, 0), text, font=style.small)
            x = cx + (16 if task == "classification" else 0)
            draw.text((x - left, cy + tile + 3 - top), text,
                      fill=TEXT_COLOR if task == "classification" else caption_color,
                      font=style.small)
    _draw_legend(ImageDraw.Draw(canvas), legend_rows, height, style.small)
    return canvas, placements


def _seg_color(mask_id: int, names: Sequence[str]) -> tuple[int, int, int] | None:
    """The overlay colour of a mask id: its class's colour; None (untinted) for a
    class named background; VOC's cream for void; grey for an id with no name."""
    from cocoprep.schema import VOID_ID

    if mask_id == VOID_ID:
        return VOID_COLOR
    if mask_id >= len(names):
        return UNKNOWN_COLOR
    return None if names[mask_id].lower() == "background" else class_color(mask_id)


def _legend_entries(examples: Sequence[dict], names: Sequence[str] | None) -> list:
    """(text, colour or None) for every mask id in `examples`, in id order."""
    from cocoprep.schema import VOID_ID

    names = list(names or [])
    ids = sorted(set().union(*(np.unique(np.asarray(ex["mask"])).tolist() for ex in examples)))
    entries = []
    for i in ids:
        name = "void" if i == VOID_ID else names[i] if i < len(names) else "no name"
        colour = _seg_color(i, names)
        entries.append((f"{i} {name}", colour))  # an empty swatch: untinted
    return entries


def _legend_layout(entries: list, width: int, font) -> list[list]:
    """The legend's entries cut into rows that fit `width`: [(x, text, colour), ...]."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows: list[list] = []
    x = width  # start a row at the first entry
    for text, colour in entries:
        w = 16 + int(draw.textlength(text, font=font)) + PAD * 2
        if x + w > width - PAD:
            rows.append([])
            x = PAD
        rows[-1].append((x, text, colour))
        x += w
    return rows


def _draw_legend(draw, rows: list[list], top: int, font) -> None:
    for r, row in enumerate(rows):
        y = top + r * LEGEND_ROW
        for x, text, colour in row:
            draw.rectangle([x, y + 3, x + 11, y + 14], fill=colour or BACKGROUND,
                           outline=TEXT_COLOR)
            left, t, _, _ = draw.textbbox((0, 0), text, font=font)
            draw.text((x + 16 - left, y + 3 - t), text, fill=TEXT_COLOR, font=font)


def _blend_class_mask(img, mask, names: Sequence[str]):
    """`img` (already scaled) with the class mask blended in, one colour per id."""
    from PIL import Image

    sw, sh = img.size
    scaled = np.asarray(Image.fromarray(np.asarray(mask, np.uint8), "L").resize(
        (sw, sh), Image.NEAREST))
    overlay = np.asarray(img, dtype=np.float32).copy()
    for i in np.unique(scaled).tolist():
        colour = _seg_color(i, names)
        if colour is not None:
            m = scaled == i
            overlay[m] = overlay[m] * (1 - MASK_ALPHA) + np.asarray(colour, np.float32) * MASK_ALPHA
    return Image.fromarray(np.clip(overlay, 0, 255).astype(np.uint8), "RGB")


def _picture(ex: dict, cx: int, cy: int, tile: int, seg_names: Sequence[str] | None = None):
    """The example's image scaled into its tile (masks blended in) and its placement:
    centred across, resting on the caption strip so the caption stays close.
    `seg_names`: the class names of a segmentation example's ``mask`` ids."""
    from PIL import Image

    pixels = _as_uint8(ex["image"])
    h, w = pixels.shape[:2]
    scale = min(tile / w, tile / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    place = Placement(cx + (tile - sw) // 2, cy + tile - sh, sw, sh, scale)
    img = Image.fromarray(pixels, "RGB").resize((sw, sh), Image.BILINEAR)
    if seg_names is not None:
        return place, _blend_class_mask(img, ex["mask"], seg_names)
    classes = [int(c) for c in np.asarray(ex.get("classes", []))]
    masks = ex.get("masks")
    if masks is None or not len(masks):
        return place, img
    overlay = np.asarray(img, dtype=np.float32)
    for k, mask in enumerate(np.asarray(masks)):
        if k >= len(classes):
            break
        m = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255, "L")
        m = np.asarray(m.resize((sw, sh), Image.NEAREST)) > 0
        color = np.asarray(class_color(classes[k]), np.float32)
        overlay[m] = overlay[m] * (1 - MASK_ALPHA) + color * MASK_ALPHA
    return place, Image.fromarray(np.clip(overlay, 0, 255).astype(np.uint8), "RGB")


def _draw_objects(draw, ex: dict, place: "Placement", corner: tuple[int, int], style: _Style,
                  names: Sequence[str]):
    """Boxes, keypoints and labels of one detection example; its caption and colour."""
    ox, oy, sw, sh = place.x, place.y, place.width, place.height
    cx, cy = corner
    classes = [int(c) for c in np.asarray(ex.get("classes", []))]
    boxes = np.asarray(ex.get("boxes", np.zeros((0, 4)))).reshape(-1, 4)
    crowd = np.asarray(ex.get("is_crowd", np.zeros(len(boxes), bool)))
    drawn = []
    for k, (ymin, xmin, ymax, xmax) in enumerate(boxes):
        c = classes[k] if k < len(classes) else -1
        color = class_color(c)
        x0, y0 = ox + xmin * sw, oy + ymin * sh
        x1, y1 = ox + xmax * sw - 1, oy + ymax * sh - 1
        draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=color, width=style.line)
        name = names[c] if 0 <= c < len(names) else f"id {int(ex['label_ids'][k])}"
        if k < len(crowd) and crowd[k]:
            name += " (crowd)"
        drawn.append((x0, y0, name, color))
    keypoints = ex.get("keypoints")
    if keypoints is not None:
        vis = np.asarray(ex.get("keypoint_visibility", np.ones(np.shape(keypoints)[:2])))
        r = max(2, style.tile // 96)
        for k, points in enumerate(np.asarray(keypoints)):
            color = class_color(classes[k] if k < len(classes) else -1)
            for (ky, kx), v in zip(points, vis[k]):
                if v > 0:  # 0: not labelled
                    px, py = ox + kx * sw, oy + ky * sh
                    draw.ellipse([px - r, py - r, px + r, py + r], fill=color,
                                 outline=(255, 255, 255))
    # labels after all boxes, so no box line runs over a label
    cell = (cx, cy, cx + style.tile, cy + style.tile)
    for x0, y0, name, color in drawn:
        _label(draw, x0, y0, y0, name, color, style.font, cell)
    # the file name is what a user can find (a YOLO or VOC source id is a row number)
    return _text(ex.get("filename", b"")) or _text(ex.get("image_id", b"")), TEXT_COLOR


def _text(value: Any) -> str:
    import numpy as np

    value = np.asarray(value).item() if hasattr(value, "shape") else value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _default_split(path: str | Path) -> str:
    """The split to show when none is named (`cocoprep.splitnames`)."""
    from cocoprep.shards import resolve
    from cocoprep.splitnames import default_split

    shards = resolve(path)
    if shards.from_glob:
        return "train"  # a glob has no split names: load reads every file
    return default_split(list(shards.splits), counts=shards.counts, where=str(path))


def preview(path: str | Path, *, split: str | None = None, n: int = 16, augment: bool = False,
            seed: int = 0, shuffle: bool = False, output: str | Path = "preview.png",
            tile: int = 256, columns: int | None = None) -> Path:
    """Write a PNG grid of the first `n` examples of `split` as `cocoprep.load`
    gives them (`shuffle`: a seeded random sample instead; `augment`: the default
    augmentation, seeded by `seed`). Without `split`, the one split there is or
    the train-like one (`cocoprep.splitnames`)."""
    import cocoprep
    from cocoprep.reader import describe

    if n < 1:
        raise UsageError("-n", "an integer >= 1", n)
    if tile < 32:
        raise UsageError("--tile", "an integer >= 32", tile)
    if split is None:
        split = _default_split(path)
    info = describe(path, split)
    ds = cocoprep.load(path, split, shuffle=shuffle, augment="default" if augment else None,
                       seed=seed)
    import tensorflow as tf

    try:
        examples = [{k: v.numpy() for k, v in el.items()} for el in ds.take(n)]
    except tf.errors.OpError as e:
        # TensorFlow's message ("corrupted record at 12") names no file.
        raise InputError(path, "readable records",
                         f"split {split!r}: {error_text(e)} (run `cocoprep verify {path}` to find "
                         "the file and record)") from None
    if not examples:
        raise InputError(path, f"examples to draw in split {split!r}", "none")
    image, _ = render(examples, task=info.task, class_names=info.class_names, tile=tile,
                      columns=columns)
    output = Path(output)
    try:
        if output.parent and not output.parent.exists():
            output.parent.mkdir(parents=True)
        image.save(output, format="PNG", optimize=True)
    except OSError as e:
        raise InputError(output, "a PNG file path that can be written",
                         (e.strerror or str(e)).lower()) from None
    return output
