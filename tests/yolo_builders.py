"""YOLO data sets shaped like the tools write them (layouts and field sets from their
docs: Ultralytics, Roboflow "YOLOv8", CVAT "YOLO 1.1" and "Ultralytics YOLO",
Label Studio "YOLO", plain darknet), made in tmp_path with small photo-like images.

Each builder returns what the files say, per split: every image (its name relative
to the split's image folder, its size) and its objects as class index and pixel
box computed from the label line exactly as written, so tests compare records with
the files and not with the numbers the builder started from.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

NAMES = ("person", "car", "dog")


@dataclass
class Obj:
    cls: int
    box: tuple[float, float, float, float]        # x, y, w, h in pixels, from the line
    polygon: tuple[float, ...] | None = None      # x1, y1, ... in pixels


@dataclass
class Img:
    name: str            # relative to the split's image folder
    width: int
    height: int
    objects: list[Obj] = field(default_factory=list)


Expected = dict[str, list[Img]]


def photo(width: int, height: int, *, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A smooth gradient with a little noise, like a photo to a codec."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    arr = np.stack([xx * 255 // width, yy * 255 // height,
                    (xx + yy + 40 * seed) % 256], -1).astype(np.int16)
    arr = np.clip(arr + rng.integers(-8, 9, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def put_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(photo(width, height, seed=seed,
                           fmt="PNG" if path.suffix.lower() == ".png" else "JPEG"))


def box_line(cls: int, x: float, y: float, w: float, h: float, width: int,
             height: int) -> tuple[str, Obj]:
    """A `class cx cy w h` line (6 decimals, as exporters write) and what it says."""
    vals = [float(f"{v:.6f}") for v in ((x + w / 2) / width, (y + h / 2) / height,
                                         w / width, h / height)]
    cx, cy, nw, nh = vals
    obj = Obj(cls, ((cx - nw / 2) * width, (cy - nh / 2) * height, nw * width, nh * height))
    return f"{cls} " + " ".join(f"{v:.6f}" for v in vals), obj


def polygon_line(cls: int, points: list[tuple[float, float]], width: int,
                 height: int) -> tuple[str, Obj]:
    """A segmentation line `class x1 y1 x2 y2 ...` and what it says."""
    vals = []
    for x, y in points:
        vals += [float(f"{x / width:.6f}"), float(f"{y / height:.6f}")]
    px = [v * (width if i % 2 == 0 else height) for i, v in enumerate(vals)]
    xs, ys = px[0::2], px[1::2]
    obj = Obj(cls, (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)), tuple(px))
    return f"{cls} " + " ".join(f"{v:.6f}" for v in vals), obj


# The objects of image k: (class, x, y, w, h) in pixels of a W x H image.
def _boxes(k: int, width: int, height: int) -> list[tuple[int, float, float, float, float]]:
    out = [(k % 3, 0.1 * width, 0.15 * height, 0.35 * width, 0.4 * height)]
    if k % 2:
        out.append(((k + 1) % 3, 0.5 * width + 1.5, 0.45 * height, 0.3 * width, 0.5 * height))
    return out


SIZES = ((64, 48), (48, 64), (80, 60), (56, 56))


def write_pair(image: Path, label: Path | None, k: int, *, name: str,
               lines: list[str] | None = None) -> Img:
    """An image and (unless `label` is None) its label file with `_boxes(k)`, or
    with `lines` as given (their objects are then not expected)."""
    w, h = SIZES[k % len(SIZES)]
    put_image(image, w, h, seed=k)
    img = Img(name, w, h)
    if label is None:
        return img
    label.parent.mkdir(parents=True, exist_ok=True)
    if lines is None:
        lines = []
        for c, x, y, bw, bh in _boxes(k, w, h):
            text, obj = box_line(c, x, y, bw, bh, w, h)
            lines.append(text)
            img.objects.append(obj)
    label.write_text("".join(line + "\n" for line in lines))
    return img


# ------------------------------------------------------------------ Ultralytics

def ultralytics_tree(root: Path, *, names_as_map: bool = True) -> Expected:
    """`data.yaml` (`path: .`, names as `{0: person}` map) + `images/<split>` and
    `labels/<split>`; a negative without a label file, one with an empty file,
    and a PNG image."""
    names = ("names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
             if names_as_map else f"names: {list(NAMES)}\n")
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        "# Ultralytics YOLO dataset\npath: .  # dataset root dir\ntrain: images/train\n"
        "val: images/val\ntest:  # test images (optional)\n\n" + names)
    out: Expected = {"train": [], "val": []}
    k = 0
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            ext = ".png" if (split, i) == ("train", 1) else ".jpg"
            stem = f"{split}_{i:03d}"
            label = root / "labels" / split / f"{stem}.txt"
            if (split, i) == ("train", 3):
                label = None                          # a negative: no label file
            img = write_pair(root / "images" / split / f"{stem}{ext}", label, k,
                             name=f"{stem}{ext}", lines=[] if (split, i) == ("val", 1)
                             else None)
            out[split].append(img)
            k += 1
    return out


def segmentation_tree(root: Path) -> Expected:
    """Ultralytics segmentation labels: polygons, one box line mixed in."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nnames: {list(NAMES)}\n")
    w, h = 80, 60
    put_image(root / "images" / "train" / "seg_0.jpg", w, h, seed=3)
    img = Img("seg_0.jpg", w, h)
    lines = []
    for cls, pts in ((0, [(10, 8), (40, 10), (30, 40), (12, 30)]),
                     (2, [(50, 20), (75, 25), (60, 55)])):
        text, obj = polygon_line(cls, pts, w, h)
        lines.append(text)
        img.objects.append(obj)
    text, obj = box_line(1, 44, 2, 20, 12, w, h)
    lines.append(text)
    img.objects.append(obj)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "seg_0.txt").write_text("\n".join(lines) + "\n")
    return {"train": [img]}


# ------------------------------------------------------------------ Roboflow

def roboflow_tree(root: Path, sizes=(3, 2, 1)) -> Expected:
    """A Roboflow "YOLOv8" export: `data.yaml` with `../train/images` entries, `nc`,
    `names` as a flow list and a `roboflow:` block; `train/ valid/ test/`, each with
    `images/` and `labels/`; Roboflow's `<name>_jpg.rf.<hash>.jpg` file names and
    README files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
        f"nc: {len(NAMES)}\nnames: {list(NAMES)}\n\nroboflow:\n  workspace: acme\n"
        "  project: street-scenes\n  version: 2\n  license: CC BY 4.0\n"
        "  url: https://universe.roboflow.com/acme/street-scenes/dataset/2\n")
    (root / "README.dataset.txt").write_text("# street-scenes > 2024-01-10\n")
    (root / "README.roboflow.txt").write_text("This dataset was exported via roboflow.com\n")
    out: Expected = {}
    k = 0
    for key, folder, n in zip(("train", "val", "test"), ("train", "valid", "test"), sizes):
        out[key] = []
        for i in range(n):
            stem = f"IMG_{1000 + k}_jpg.rf.{k:032x}"
            out[key].append(write_pair(root / folder / "images" / f"{stem}.jpg",
                                       root / folder / "labels" / f"{stem}.txt", k,
                                       name=f"{stem}.jpg"))
            k += 1
    return out


# ------------------------------------------------------------------ CVAT

def cvat_yolo11(root: Path, *, data_prefix: bool = True) -> Expected:
    """CVAT "YOLO 1.1": `obj.data`, `obj.names`, `train.txt` listing
    `data/obj_train_data/<image>` (older CVAT/datumaro; `data_prefix=False`: the
    newer `obj_train_data/<image>`), images and labels side by side."""
    root.mkdir(parents=True, exist_ok=True)
    pre = "data/" if data_prefix else ""
    (root / "obj.data").write_text(f"classes = {len(NAMES)}\ntrain = {pre}train.txt\n"
                                   f"names = {pre}obj.names\nbackup = backup/\n")
    (root / "obj.names").write_text("".join(n + "\n" for n in NAMES))
    imgs = []
    for i in range(3):
        name = f"frame_{i:06d}.jpg"
        imgs.append(write_pair(root / "obj_train_data" / name,
                               root / "obj_train_data" / f"frame_{i:06d}.txt", i,
                               name=name))
    (root / "train.txt").write_text("".join(f"{pre}obj_train_data/{im.name}\n" for im in imgs))
    return {"train": imgs}


def cvat_ultralytics(root: Path) -> Expected:
    """CVAT "Ultralytics YOLO Detection": `data.yaml` with `path: ./` and
    `train: train.txt`, the list naming `images/train/<image>`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("path: ./\ntrain: train.txt\n\nnames:\n"
                                    + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES)))
    imgs = []
    for i in range(3):
        name = f"frame_{i:06d}.jpg"
        imgs.append(write_pair(root / "images" / "train" / name,
                               root / "labels" / "train" / f"frame_{i:06d}.txt", i,
                               name=name))
    (root / "train.txt").write_text("".join(f"images/train/{im.name}\n" for im in imgs))
    return {"train": imgs}


# ------------------------------------------------------------------ Label Studio, darknet

def label_studio_tree(root: Path) -> Expected:
    """Label Studio "YOLO": `classes.txt` (sorted names), `notes.json`, `images/`,
    `labels/`; uploads are named `<8 hex>-<original name>`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(n + "\n" for n in NAMES))
    (root / "notes.json").write_text('{"categories": [{"id": 0, "name": "person"}, '
                                     '{"id": 1, "name": "car"}, {"id": 2, "name": "dog"}], '
                                     '"info": {"year": 2024, "version": "1.0", '
                                     '"contributor": "Label Studio"}}')
    imgs = []
    for i in range(3):
        stem = f"{i * 0x1f3a5b7:08x}-street_{i}"
        imgs.append(write_pair(root / "images" / f"{stem}.jpg",
                               root / "labels" / f"{stem}.txt", i, name=f"{stem}.jpg"))
    return {root.name: imgs}


def darknet_folder(root: Path) -> Expected:
    """Images and `.txt` labels side by side with a `classes.txt`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    imgs = [write_pair(root / f"img{i}.jpg", root / f"img{i}.txt", i, name=f"img{i}.jpg")
            for i in range(3)]
    return {root.name: imgs}
