"""Pascal VOC trees shaped like the tools write them, made in tmp_path.

Field sets and quirks, from the tools' own writers and docs:

* VOCdevkit (VOC2007/VOC2012): `<folder>VOC2007</folder>`, `<source>` (database,
  annotation, image, flickrid), `<owner>`, `<size>` with `<depth>3</depth>`,
  `<segmented>`, objects with `<pose>` (Left, Frontal, Unspecified...),
  `<truncated>`, `<difficult>`; VOC2012 persons carry `<part>`s (head, hand, foot:
  each with its own `<name>` and `<bndbox>`) and `<actions>`, some objects
  `<occluded>`, and a few boxes are floats (2011_003353.xml: ymin 45.70000076293945).
  `ImageSets/Main/{train,val,trainval,test}.txt` plus `<class>_<split>.txt` lists
  (`000005 -1`).
* CVAT "PASCAL VOC 1.1" (Datumaro's writer): `JPEGImages/`, `Annotations/`,
  `ImageSets/Main/default.txt`, `labelmap.txt`; `<folder></folder>`, `<source>` of
  three `Unknown`s, `<depth></depth>` empty, no `<pose>` unless set, `<occluded>`,
  boxes as Python floats (`5.0`), extra attributes under `<attributes>`.
* Label Studio: `Annotations/` + `images/`, upload names with a hash prefix,
  `<filename>` WITHOUT extension (its converter writes the image's stem), `<source>`
  MyDatabase/COCO2017/flickr/NULL/annotator, `<owner>` Label Studio, integer boxes.
* Roboflow "Pascal VOC": `train/ valid/ test/` of image + XML pairs, README.roboflow.txt;
  `<folder></folder>`, `<path>`, `<source><database>roboflow.ai</database>`,
  `<occluded>`, `<pose>Unspecified</pose>`.
* LabelImg: XML beside its image, `<annotation verified="yes">`, absolute `<path>`,
  `<source><database>Unknown</database>`.
* flat exports (labelformat and most converters): `images/` + `annotations/`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

W, H = 64, 48


@dataclass(frozen=True)
class Obj:
    """An object as the XML states it: class and corners (x1, y1, x2, y2) in pixels."""

    name: str
    box: tuple[float, float, float, float]
    difficult: int = 0
    truncated: int = 0
    pose: str | None = "Unspecified"


@dataclass
class Img:
    """An image as the test expects it written: its file, real size and objects."""

    file: str
    width: int
    height: int
    objects: list[Obj] = field(default_factory=list)
    xml: str = ""          # the XML file, relative to the tree root
    filename: str = ""     # what the XML's <filename> says (the OD API's source_id)


Expected = dict[str, list[Img]]   # split -> images in listing order


def photo(path: Path, width: int = W, height: int = H, seed: int = 0) -> Path:
    """A photo-like image (smooth gradients plus a little noise): JPEG, or PNG by suffix."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    arr = np.stack([xx * 255 // max(width, 1), yy * 255 // max(height, 1),
                    (xx + yy + seed * 17) % 256], -1).astype(np.int16)
    arr = np.clip(arr + rng.integers(-8, 9, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.fromarray(arr).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def _num(v: float, style: str) -> str:
    if style == "cvat":
        return str(float(v))               # Datumaro: str() of a float, "5.0"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _object_xml(o: Obj, style: str) -> str:
    parts = [f"<name>{escape(o.name)}</name>"]
    if o.pose is not None:
        parts.append(f"<pose>{escape(o.pose)}</pose>")
    parts.append(f"<truncated>{o.truncated}</truncated>")
    if style in ("cvat", "roboflow", "voc2012"):
        parts.append("<occluded>0</occluded>")
    parts.append(f"<difficult>{o.difficult}</difficult>")
    x1, y1, x2, y2 = (_num(v, style) for v in o.box)
    parts.append(f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
                 f"<ymax>{y2}</ymax></bndbox>")
    if style == "voc2012" and o.name == "person":   # layout parts: not objects
        parts.append("<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                     "<xmax>5</xmax><ymax>5</ymax></bndbox></part>")
        parts.append("<actions><jumping>0</jumping><other>1</other></actions>")
    if style == "cvat":
        parts.append("<attributes><attribute><name>rotation</name><value>0.0</value>"
                     "</attribute></attributes>")
    return "<object>" + "".join(parts) + "</object>"


_HEADS = {
    "vocdevkit": ("<folder>VOC2007</folder>", "<source><database>The VOC2007 Database</database>"
                  "<annotation>PASCAL VOC2007</annotation><image>flickr</image>"
                  "<flickrid>341012865</flickrid></source><owner><flickrid>Fried Camels"
                  "</flickrid><name>Jinky the Fruit Bat</name></owner>"),
    "voc2012": ("<folder>VOC2012</folder>", "<source><database>The VOC2008 Database"
                "</database><annotation>PASCAL VOC2008</annotation><image>flickr</image>"
                "</source>"),
    "cvat": ("<folder></folder>", "<source><database>Unknown</database><annotation>Unknown"
             "</annotation><image>Unknown</image></source>"),
    "labelstudio": ("<folder>images</folder>", "<source><database>MyDatabase</database>"
                    "<annotation>COCO2017</annotation><image>flickr</image><flickrid>NULL"
                    "</flickrid><annotator>1</annotator></source><owner><flickrid>NULL"
                    "</flickrid><name>Label Studio</name></owner>"),
    "roboflow": ("<folder></folder>", "<source><database>roboflow.ai</database></source>"),
    "labelimg": ("<folder>images</folder>", "<source><database>Unknown</database></source>"),
}


def voc_xml(filename: str | None, size: tuple[int, int] | None, objects: list[Obj], *,
            style: str = "vocdevkit", path: str | None = None) -> bytes:
    """One annotation XML in a tool's style; `size` None leaves `<size>` out."""
    folder, source = _HEADS[style]
    out = ['<?xml version="1.0" encoding="utf-8"?>' if style in ("labelstudio", "cvat") else "",
           '<annotation verified="yes">' if style == "labelimg" else "<annotation>", folder]
    if filename is not None:
        out.append(f"<filename>{escape(filename)}</filename>")
    if path is not None:
        out.append(f"<path>{escape(path)}</path>")
    out.append(source)
    if size is not None:
        depth = "" if style == "cvat" else "3"
        out.append(f"<size><width>{size[0]}</width><height>{size[1]}</height>"
                   f"<depth>{depth}</depth></size>")
    out.append("<segmented>0</segmented>")
    out += [_object_xml(o, style) for o in objects]
    out.append("</annotation>")
    return "\n".join(s for s in out if s).encode("utf-8")


def _sample_objects(i: int, names=("car", "dog", "person")) -> list[Obj]:
    """Objects for image i: 0-2 of them (every third image a negative)."""
    objs = []
    for k in range(i % 3):
        x, y = 2 + 20 * k + (i % 5), 3 + (i % 7)
        objs.append(Obj(names[(i + k) % len(names)], (x, y, x + 15, y + 20 + k),
                        difficult=int(i % 4 == 1 and k == 0), truncated=int(k == 1),
                        pose=("Left", "Frontal", "Unspecified")[(i + k) % 3]))
    return objs


def _write(root: Path, xml_rel: str, image_rel: str, img: Img, *, style: str,
           filename: str | None, size: tuple[int, int] | None = None, seed: int = 0,
           path: str | None = None) -> Img:
    photo(root / image_rel, img.width, img.height, seed=seed)
    size = (img.width, img.height) if size is None else size
    (root / xml_rel).parent.mkdir(parents=True, exist_ok=True)
    (root / xml_rel).write_bytes(voc_xml(filename, size, img.objects, style=style, path=path))
    img.xml, img.filename = xml_rel, filename or img.file
    return img


# ------------------------------------------------------------------ VOCdevkit

def vocdevkit(root: Path, *, year: str = "VOC2007", splits=(("train", 4), ("val", 3),
              ("test", 2)), trainval: bool = True, style: str = "vocdevkit",
              class_lists: bool = True, start: int = 0) -> Expected:
    """`root/VOCdevkit/<year>/`: Annotations, JPEGImages, ImageSets/Main split lists
    (and trainval = train + val, and `<class>_<split>.txt` lists)."""
    base = root / "VOCdevkit" / year
    main = base / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    expected: Expected = {}
    i = start
    for split, n in splits:
        ids = []
        for _ in range(n):
            stem = f"{2007 + i // 1000:04d}_{i:06d}" if year == "VOC2012" else f"{i:06d}"
            img = Img(f"{stem}.jpg", W + i % 3, H, _sample_objects(i))
            _write(base, f"Annotations/{stem}.xml", f"JPEGImages/{stem}.jpg", img, style=style,
                   filename=img.file, seed=i)
            expected.setdefault(split, []).append(img)
            ids.append(stem)
            i += 1
        (main / f"{split}.txt").write_text("".join(f"{s}\n" for s in ids))
        if class_lists:
            (main / f"car_{split}.txt").write_text("".join(f"{s} -1\n" for s in ids))
    if trainval and {"train", "val"} <= {s for s, _ in splits}:
        (main / "trainval.txt").write_text(
            (main / "train.txt").read_text() + (main / "val.txt").read_text())
    return expected


# ------------------------------------------------------------------ CVAT

def cvat_voc(root: Path, n: int = 4) -> Expected:
    """CVAT "PASCAL VOC 1.1": one split `default`, float boxes, empty depth, no pose."""
    imgs = []
    for i in range(n):
        objs = [Obj(o.name, tuple(v + 0.25 for v in o.box), o.difficult, o.truncated, None)
                for o in _sample_objects(i + 1, ("car", "person"))]
        img = Img(f"frame_{i:06d}.jpg", W, H, objs)
        imgs.append(_write(root, f"Annotations/frame_{i:06d}.xml", f"JPEGImages/{img.file}",
                           img, style="cvat", filename=img.file, seed=i))
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    (main / "default.txt").write_text("".join(f"frame_{i:06d}\n" for i in range(n)))
    (main / "car_default.txt").write_text("".join(f"frame_{i:06d} 1\n" for i in range(n)))
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                       "car:250,50,83::\nperson:61,61,245::\n")
    return {"default": imgs}


# ------------------------------------------------------------------ Label Studio

def label_studio_voc(root: Path, n: int = 3) -> Expected:
    """`Annotations/` + `images/`; `<filename>` is the upload name without extension."""
    imgs = []
    for i in range(n):
        file = f"{i:x}d7d4d71-IMG_2023110{i}.jpg"
        img = Img(file, W, H, _sample_objects(i + 2, ("Cat", "Dog")))
        stem = file[:-4]
        imgs.append(_write(root, f"Annotations/{stem}.xml", f"images/{file}", img,
                           style="labelstudio", filename=stem, seed=i))
    return {"train": imgs}


# ------------------------------------------------------------------ flat exports

def flat_voc(root: Path, *, ann_dir: str = "annotations", n: int = 4) -> Expected:
    """`images/` + `annotations/` (or `labels/`), one PNG among the JPEGs, one XML
    without `<filename>` and one with `<size>` 0 x 0."""
    imgs = []
    for i in range(n):
        ext = ".png" if i == 1 else ".jpg"
        img = Img(f"img{i}{ext}", W + i, H, _sample_objects(i + 1))
        filename = None if i == 2 else img.file
        size = (0, 0) if i == 3 else None
        imgs.append(_write(root, f"{ann_dir}/img{i}.xml", f"images/{img.file}", img,
                           style="labelimg", filename=filename, size=size, seed=i))
    return {"train": imgs}


def labelimg_pairs(root: Path, n: int = 3) -> Expected:
    """One folder of image + XML pairs, as LabelImg saves them."""
    imgs = []
    for i in range(n):
        ext = ".png" if i == 0 else ".jpg"
        img = Img(f"shot_{i}{ext}", W, H - i, _sample_objects(i + 1, ("bolt", "nut")))
        imgs.append(_write(root, f"shot_{i}.xml", img.file, img, style="labelimg",
                           filename=img.file, seed=i, path=f"/home/me/data/{img.file}"))
    return {"train": imgs}


def roboflow_voc(root: Path, sizes=(("train", 3), ("valid", 2), ("test", 1))) -> Expected:
    """Roboflow "Pascal VOC": `<split>/` folders of pairs, hashed names, float boxes."""
    expected: Expected = {}
    for split, n in sizes:
        for i in range(n):
            file = f"cells_{i:03d}_jpg.rf.{split}{i:04d}abcdef.jpg"
            objs = [Obj(o.name, (o.box[0] + 0.5, o.box[1], o.box[2] + 0.5, o.box[3] + 0.75),
                        o.difficult, o.truncated, "Unspecified")
                    for o in _sample_objects(i + 1, ("RBC", "WBC", "Platelets"))]
            img = Img(file, W, H, objs)
            expected.setdefault(split, []).append(_write(
                root, f"{split}/{file[:-4]}.xml", f"{split}/{file}", img, style="roboflow",
                filename=file, seed=i, path=file))
    (root / "README.roboflow.txt").write_text("Exported via roboflow.com\n")
    (root / "README.dataset.txt").write_text("# cells\n")
    return expected


def all_objects(expected: Expected) -> int:
    return sum(len(img.objects) for imgs in expected.values() for img in imgs)
