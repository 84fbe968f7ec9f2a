"""Segmentation trees shaped like the tools write them, made in tmp_path, each
with the label-map ids every pixel must end up as.

Quirks, from the tools' own writers and the data sets as shipped:

* Pascal VOC 2012 (`VOCdevkit/VOC2012`): `SegmentationClass/*.png` are palette
  ("P") PNGs with the VOC colormap as palette, indices = class ids, 255 on a
  void border around each object; `ImageSets/Segmentation/{train,val,trainval}.txt`
  (trainval = train + val); `JPEGImages/` holds every image, most without a mask;
  `Annotations/` holds the detection XMLs of every image.
* CVAT "Segmentation mask 1.1": the same folders with RGB masks and a
  `labelmap.txt` (`# label:color_rgb:parts:actions`, `background:0,0,0::`), one
  split list `ImageSets/Segmentation/default.txt`.
* Datumaro's VOC export: `labelmap.txt` lines with an empty colour (`cat:::`):
  the VOC colormap's colour at the label's index.
* Image/mask folder pairs: `images/` + `masks/` (grey PNGs of ids, 255 void) and
  `classes.txt`; split folders `images/train` + `masks/train`.
* ADE20K SceneParsing (`ADEChallengeData2016`): `images/{training,validation}/
  ADE_train_00000001.jpg`, `annotations/.../ADE_train_00000001.png` (8-bit, 0 =
  other), `objectInfo150.csv` (`Idx,Ratio,Train,Val,Name`, names with `;` synonyms).
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from cocoprep import schema
from cocoprep.sources.segmentation import voc_colour
from conftest import photo_jpeg

VOID = schema.VOID_ID
W, H = 40, 30


def voc_palette() -> list[int]:
    """The 256-entry VOC colormap as a flat Pillow palette."""
    out = []
    for i in range(256):
        c = voc_colour(i)
        out += [c >> 16, (c >> 8) & 255, c & 255]
    return out


def class_mask(seed: int, classes: int, *, width: int = W, height: int = H,
               border: bool = True) -> np.ndarray:
    """Ids of a mask: background 0, two rectangles of classes 1..classes-1 at
    places that depend on `seed`, each with a 1-pixel void border when `border`."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((height, width), np.uint8)
    for k in range(2):
        cls = int(rng.integers(1, classes))
        x0, y0 = int(rng.integers(1, width // 2)), int(rng.integers(1, height // 2))
        x1, y1 = x0 + int(rng.integers(4, width // 2)), y0 + int(rng.integers(4, height // 2))
        if border:
            ids[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = VOID
        ids[y0:y1, x0:x1] = cls
    return ids


def png_bytes(ids: np.ndarray, *, mode: str = "L", palette: list[int] | None = None) -> bytes:
    im = Image.fromarray(ids, "L")
    if mode == "P":
        im = Image.fromarray(ids, "P")
        im.putpalette(palette or voc_palette())
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def rgb_png(ids: np.ndarray, colours: dict[int, int]) -> bytes:
    """An RGB mask: each id painted in its colour (0xRRGGBB)."""
    rgb = np.zeros(ids.shape + (3,), np.uint8)
    for i, c in colours.items():
        rgb[ids == i] = (c >> 16, (c >> 8) & 255, c & 255)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ layouts

def voc_tree(root: Path, *, train=("2007_000032", "2007_000039"), val=("2007_000063",),
             extra_images=("2007_000001",), annotations: bool = True,
             year: str = "VOC2012") -> dict[str, np.ndarray]:
    """A VOCdevkit/VOC2012 segmentation tree; returns id -> expected ids."""
    base = root / "VOCdevkit" / year
    expected = {}
    for n, i in enumerate(list(train) + list(val) + list(extra_images)):
        write(base / "JPEGImages" / f"{i}.jpg", photo_jpeg(H, W))
        if annotations:
            write(base / "Annotations" / f"{i}.xml",
                  f"<annotation><filename>{i}.jpg</filename><size><width>{W}</width>"
                  f"<height>{H}</height><depth>3</depth></size><object><name>cat</name>"
                  "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
                  "</bndbox></object></annotation>".encode())
        if i in extra_images:
            continue
        ids = class_mask(n, 21)
        write(base / "SegmentationClass" / f"{i}.png", png_bytes(ids, mode="P"))
        expected[i] = ids
    lists = base / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (lists / "val.txt").write_text("".join(f"{i}\n" for i in val))
    (lists / "trainval.txt").write_text("".join(f"{i}\n" for i in list(train) + list(val)))
    return expected


CVAT_LABELS = (("background", 0x000000), ("cat", 0x40C080), ("road", 0xFA32FA))


def cvat_tree(root: Path, *, datumaro: bool = False, n: int = 3) -> dict[str, np.ndarray]:
    """A CVAT "Segmentation mask 1.1" export (Datumaro: empty colour fields)."""
    lines = ["# label:color_rgb:parts:actions"]
    colours = {}
    for k, (name, colour) in enumerate(CVAT_LABELS):
        if datumaro:
            colour = voc_colour(k)
            lines.append(f"{name}:::")
        else:
            lines.append(f"{name}:{colour >> 16},{(colour >> 8) & 255},{colour & 255}::")
        colours[k] = colour
    (root / "labelmap.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    colours[VOID] = voc_colour(VOID)
    expected = {}
    for i in range(n):
        name = f"frame_{i:06d}"
        ids = class_mask(i, len(CVAT_LABELS))
        write(root / "JPEGImages" / f"{name}.jpg", photo_jpeg(H, W))
        write(root / "SegmentationClass" / f"{name}.png", rgb_png(ids, colours))
        expected[name] = ids
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text(
        "".join(f"{k}\n" for k in expected))
    return expected


def pairs_tree(root: Path, *, splits: tuple[str, ...] = (), n: int = 3,
               names=("background", "cat", "dog"), mask_dir: str = "masks",
               mode: str = "L", names_file: bool = True) -> dict[str, np.ndarray]:
    """images/ + masks/ (split folders inside when `splits`) + classes.txt;
    returns "split/stem" (or "stem") -> expected ids."""
    expected = {}
    for split in splits or ("",):
        for i in range(n):
            stem = f"img_{split}{i}"
            ids = class_mask(zlib.crc32(stem.encode()) % 1000, len(names))
            sub = f"{split}/" if split else ""
            write(root / "images" / f"{sub}{stem}.jpg", photo_jpeg(H, W))
            write(root / mask_dir / f"{sub}{stem}.png", png_bytes(ids, mode=mode))
            expected[f"{sub}{stem}"] = ids
    if names_file:
        (root / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    return expected


def ade_tree(root: Path, *, n: int = 2, names_file: bool = True) -> dict[str, np.ndarray]:
    """ADEChallengeData2016 with 0 = other; returns stem -> expected ids
    (0 -> void, k -> k-1)."""
    base = root / "ADEChallengeData2016"
    expected = {}
    for split, tag in (("training", "train"), ("validation", "val")):
        for i in range(1, n + 1):
            stem = f"ADE_{tag}_{i:08d}"
            raw = class_mask(i + (10 if tag == "val" else 0), 151, border=False)
            raw[0, :] = 0  # "other" along the top
            write(base / "images" / split / f"{stem}.jpg", photo_jpeg(H, W))
            write(base / "annotations" / split / f"{stem}.png", png_bytes(raw))
            ids = np.where(raw == 0, VOID, raw.astype(np.int16) - 1).astype(np.uint8)
            expected[stem] = ids
    if names_file:
        rows = ["Idx,Ratio,Train,Val,Name"]
        rows += [f"{k},0.01,100,10,class{k};synonym{k}" for k in range(1, 151)]
        (base / "objectInfo150.csv").write_text("\n".join(rows) + "\n")
    return expected


# ------------------------------------------------------------------ reading back

def model_garden_records(out: Path, split: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """filename -> (image, mask) read exactly as the Model Garden's segmentation
    Decoder and Parser do: four FixedLenFeatures, the mask decoded with
    tf.io.decode_image(channels=1) and reshaped to (1, height, width)."""
    import tensorflow as tf

    from cocoprep.manifest import Manifest

    keys = schema.keys_of(schema.SEGMENTATION, ("encoded", "height", "width", "class_mask"))
    spec = {keys["encoded"]: tf.io.FixedLenFeature((), tf.string, default_value=""),
            keys["height"]: tf.io.FixedLenFeature((), tf.int64, default_value=0),
            keys["width"]: tf.io.FixedLenFeature((), tf.int64, default_value=0),
            keys["class_mask"]: tf.io.FixedLenFeature((), tf.string, default_value="")}
    name_key = schema.keys_of(schema.SEGMENTATION, ("filename",))["filename"]
    out_records = {}
    for path in Manifest.read(out).shard_paths(out, split):
        for raw in tf.data.TFRecordDataset(str(path)):
            parsed = tf.io.parse_single_example(raw, spec)
            name = tf.io.parse_single_example(
                raw, {name_key: tf.io.FixedLenFeature((), tf.string)})[name_key]
            image = tf.io.decode_image(parsed[keys["encoded"]], channels=3)
            mask = tf.io.decode_image(parsed[keys["class_mask"]], channels=1)
            mask = tf.reshape(mask, (1, parsed[keys["height"]], parsed[keys["width"]]))
            out_records[name.numpy().decode()] = (image.numpy(), mask.numpy()[0])
    return out_records


def skipped_lines(out: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


def cityscapes_tree(root: Path, *, splits=("train", "val", "test"), n: int = 2
                    ) -> dict[str, np.ndarray]:
    """leftImg8bit/ + gtFine/ with every label id 0..33 in the masks, and the
    _color/_instanceIds/_polygons files beside them; returns split/stem -> label ids."""
    expected = {}
    for split in splits:
        for i in range(n):
            city = "aachen" if i % 2 == 0 else "bochum"
            stem = f"{city}_{i:06d}_000019"
            ids = (np.arange(H * W).reshape(H, W) % 34).astype(np.uint8)
            ids = np.roll(ids, i + len(split), axis=1)
            base_img = root / "leftImg8bit" / split / city
            base_gt = root / "gtFine" / split / city
            write(base_img / f"{stem}_leftImg8bit.png", png_bytes(
                np.zeros((H, W), np.uint8)))
            write(base_gt / f"{stem}_gtFine_labelIds.png", png_bytes(ids))
            write(base_gt / f"{stem}_gtFine_color.png", rgb_png(ids, {1: 0x808080}))
            write(base_gt / f"{stem}_gtFine_instanceIds.png", png_bytes(ids))
            write(base_gt / f"{stem}_gtFine_polygons.json", b"{}")
            expected[f"{split}/{stem}"] = ids
    return expected


def roboflow_tree(root: Path, *, splits=("train", "valid"), n: int = 2,
                  classes=("background", "crack", "hole")) -> dict[str, np.ndarray]:
    """Roboflow "Semantic Segmentation Masks": <split>/<name>.jpg beside
    <name>_mask.png and _classes.csv (`Pixel Value, Class`); Roboflow's renamed
    files (`img1_jpg.rf.<hash>.jpg`). Returns image stem -> expected ids."""
    expected = {}
    for split in splits:
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "_classes.csv").write_text(
            "Pixel Value, Class\n" + "".join(f"{v}, {c}\n" for v, c in enumerate(classes)))
        for i in range(n):
            stem = f"img{i}_jpg.rf.{zlib.crc32(f'{split}{i}'.encode()):08x}"
            ids = class_mask(i + 3 * len(split), len(classes), border=False)
            write(root / split / f"{stem}.jpg", photo_jpeg(H, W))
            write(root / split / f"{stem}_mask.png", png_bytes(ids))
            expected[stem] = ids
    (root / "README.roboflow.txt").write_text("exported from roboflow.com\n")
    return expected


PANOPTIC_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person", "isthing": 1},
                       {"id": 3, "name": "car", "supercategory": "vehicle", "isthing": 1},
                       {"id": 184, "name": "sky-other-merged", "supercategory": "sky",
                        "isthing": 0, "color": [106, 154, 176]}]


def _segment_png(seg: np.ndarray) -> bytes:
    rgb = np.stack([seg % 256, (seg // 256) % 256, seg // 65536], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()


def panoptic_tree(root: Path, *, split: str = "val2017", many: int = 0
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """COCO panoptic: annotations/panoptic_<split>.json + annotations/panoptic_<split>/
    PNGs (segment id = R + 256 G + 256^2 B) + <split>/ images. Image 1: sky (stuff),
    two persons, a crowd of cars, unlabelled pixels; image 2: `many` small persons
    (past 255 the instance ids need 16 bits). Returns file stem -> (expected class
    ids, expected instance numbers)."""
    import json

    images, anns, expected = [], [], {}
    w, h = (W, H) if not many else (64, 64)
    for image_id in (1, 2):
        seg = np.zeros((h, w), np.int64)
        info = []
        ids = np.full((h, w), VOID, np.uint8)
        inst = np.zeros((h, w), np.int64)
        if image_id == 1:
            parts = [(3284, 184, 0, (slice(0, 8), slice(None))),
                     (70001, 1, 0, (slice(10, 20), slice(2, 8))),
                     (70002, 1, 0, (slice(10, 20), slice(12, 18))),
                     (5, 3, 1, (slice(22, 28), slice(20, 36)))]
        else:
            parts = [(1000 + k, 1, 0, (slice(2 * (k // 30), 2 * (k // 30) + 1),
                                       slice(2 * (k % 30), 2 * (k % 30) + 1)))
                     for k in range(many or 2)]
        number = 0
        for sid, cat, crowd, where in parts:
            seg[where] = sid
            info.append({"id": sid, "category_id": cat, "iscrowd": crowd,
                         "bbox": [0, 0, 1, 1], "area": 1})
            ids[where] = [c["id"] for c in PANOPTIC_CATEGORIES].index(cat)
            if cat != 184 and not crowd:
                number += 1
                inst[where] = number
        stem = f"{image_id:012d}"
        write(root / split / f"{stem}.jpg", photo_jpeg(h, w))
        write(root / "annotations" / f"panoptic_{split}" / f"{stem}.png", _segment_png(seg))
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": w, "height": h})
        anns.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": info})
        expected[stem] = (ids, inst)
    (root / "annotations" / f"panoptic_{split}.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": PANOPTIC_CATEGORIES}))
    return expected


def convert_found(src: Path, out: Path, layout: str, labels: str) -> str:
    """`cocoprep convert SRC` found as segmentation without a flag: exit 0, the
    summary naming `layout`, labels.txt holding `labels`; the summary."""
    from cocoprep.sources import find_task
    from conftest import run_cli

    assert find_task(src) == "segmentation"
    code, output = run_cli("convert", src, "-o", out, "--workers", "1")
    assert code == 0, output
    assert layout in output
    assert (out / "labels.txt").read_text() == labels
    return output
