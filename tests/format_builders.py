"""KITTI, LabelMe, CVAT for images and Open Images trees shaped like the tools write
them, made in tmp_path, and the helpers their tests share.

Field sets and quirks, from the formats' own documents and writers:

* KITTI object devkit: `training/image_2/000000.png` + `training/label_2/000000.txt`
  (`testing/image_2` without labels); lines `type truncated occluded alpha left top
  right bottom height width length x y z rotation_y`, two decimals for the 2D box,
  `DontCare` lines with -1/-10/-1000 fillers. Datumaro writes `<subset>/image_2` +
  `<subset>/label_2` with the same lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cocoprep.manifest import Manifest
from conftest import invoke
from test_voc import examples  # the records of a split by file name, {key: values}
from voc_builders import photo

__all__ = ["photo", "KittiObj", "kitti_line", "kitti_tree", "examples", "skipped_lines",
           "convert", "tree_bytes", "error_lines"]


def convert(src, out, *args):
    """`cocoprep convert SRC -o OUT --workers 1 ARGS` -> (exit code, output)."""
    result = invoke("convert", src, "-o", out, "--workers", "1", *args)
    return result.exit_code, result.output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def errors_of(src, out, *args) -> tuple[int, list[str]]:
    """`convert`'s exit code and its `Error:` lines."""
    code, output = convert(src, out, *args)
    return code, error_lines(output)


def boxes_px(ex: dict) -> list[tuple[float, float, float, float]]:
    """The record's boxes as pixel corners (x1, y1, x2, y2)."""
    w, h = ex["image/width"][0], ex["image/height"][0]
    return [(a * w, b * h, c * w, d * h) for a, b, c, d in zip(
        ex.get("image/object/bbox/xmin", []), ex.get("image/object/bbox/ymin", []),
        ex.get("image/object/bbox/xmax", []), ex.get("image/object/bbox/ymax", []))]


def texts(ex: dict, key: str = "image/object/class/text") -> list[str]:
    return [t.decode() for t in ex.get(key, [])]


def skipped_lines(out: Path) -> list[tuple]:
    """(reason, image_id, annotation_id, file, detail) of each skipped.jsonl line."""
    items = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    return [(i["reason"], i["image_id"], i["annotation_id"], i["file"], i["detail"])
            for i in items]


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


# ================================================================== KITTI

@dataclass(frozen=True)
class KittiObj:
    name: str
    box: tuple[float, float, float, float]          # left top right bottom
    truncated: float = 0.0
    occluded: int = 0
    alpha: float = -1.58
    dims: tuple[float, float, float] = (1.48, 1.60, 3.90)    # height width length
    loc: tuple[float, float, float] = (-2.70, 1.74, 13.41)
    rot_y: float = -1.77


def kitti_line(o: KittiObj) -> str:
    if o.name == "DontCare":   # as the devkit writes them
        return (f"DontCare -1 -1 -10 {o.box[0]:.2f} {o.box[1]:.2f} {o.box[2]:.2f} "
                f"{o.box[3]:.2f} -1 -1 -1 -1000 -1000 -1000 -10")
    return (f"{o.name} {o.truncated:.2f} {o.occluded} {o.alpha:.2f} "
            + " ".join(f"{v:.2f}" for v in o.box) + " "
            + " ".join(f"{v:.2f}" for v in o.dims + o.loc) + f" {o.rot_y:.2f}")


@dataclass
class KittiImg:
    stem: str
    objects: list[KittiObj] = field(default_factory=list)
    width: int = 124
    height: int = 40


def default_kitti() -> list[KittiImg]:
    return [
        KittiImg("000000", [KittiObj("Car", (10.5, 5.25, 60.75, 30.0), 0.12, 1, -1.2,
                                      (1.5, 1.6, 3.9), (1.0, 1.7, 20.5), -1.3),
                            KittiObj("DontCare", (100.0, 2.0, 120.0, 12.0))]),
        KittiImg("000001", [KittiObj("Pedestrian", (2.0, 3.0, 12.0, 38.0), 0.0, 2, 0.21),
                            KittiObj("Person_sitting", (40.0, 10.0, 52.5, 33.0))]),
        KittiImg("000002", [KittiObj("Car", (0.0, 0.0, 124.0, 40.0), 0.88, 3)]),
    ]


def kitti_tree(root: Path, images: list[KittiImg] | None = None, *, subset: str = "training",
               testing: int = 0) -> list[KittiImg]:
    """`root/<subset>/image_2` + `label_2` (subset "" puts them in root itself)."""
    images = default_kitti() if images is None else images
    folder = root / subset if subset else root
    (folder / "label_2").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        photo(folder / "image_2" / f"{img.stem}.png", img.width, img.height, seed=i)
        (folder / "label_2" / f"{img.stem}.txt").write_text(
            "".join(kitti_line(o) + "\n" for o in img.objects))
    for i in range(testing):
        photo(root / "testing" / "image_2" / f"{i:06d}.png", 124, 40, seed=50 + i)
    return images


# ================================================================== LabelMe
# LabelMe 5.x writes `version`, `flags` ({name: bool} from --flags), `shapes` (label,
# points [[x, y], ...], group_id (null), description "", shape_type, flags {}, mask
# null), `imagePath` (relative to the JSON; `..\\images\\a.jpg` on Windows),
# `imageData` (base64 of the image file, unless --nodata), imageHeight, imageWidth.

def lm_shape(label: str, kind: str, points, *, group=None, description: str = "",
             mask: str | None = None, flags: dict | None = None) -> dict:
    return {"label": label, "points": [list(p) for p in points], "group_id": group,
            "description": description, "shape_type": kind, "flags": flags or {},
            "mask": mask}


def lm_mask(bitmap) -> str:
    """A LabelMe mask: base64 of a 1-bit PNG of the crop."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(bitmap, bool)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def lm_json(path: Path, shapes: list[dict], *, image_path: str | None, size=(80, 60),
            flags: dict | None = None, image_data: bytes | None = None) -> Path:
    import base64

    doc = {"version": "5.4.1", "flags": flags or {}, "shapes": shapes,
           "imagePath": image_path,
           "imageData": base64.b64encode(image_data).decode() if image_data else None,
           "imageHeight": size[1], "imageWidth": size[0]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def default_labelme_shapes() -> list[dict]:
    return [
        lm_shape("cat", "rectangle", [(50.5, 40), (10, 5.25)]),       # dragged up-left
        lm_shape("dog", "polygon", [(20, 20), (30, 20), (25, 35)], group=1,
                 description="left"),
        lm_shape("dog", "circle", [(40, 30), (45, 30)], group=1),      # r = 5
        lm_shape("cat", "mask", [(60, 50), (65, 54)],
                 mask=lm_mask([[0, 0, 0, 0, 0, 0]] + [[0, 0, 1, 1, 1, 0]] * 3
                              + [[0, 0, 0, 0, 0, 0]])),
        lm_shape("tail", "line", [(1, 1), (5, 5)]),
        lm_shape("nose", "point", [(3, 3)]),
    ]


# (label, x1, y1, x2, y2) of default_labelme_shapes' objects, in file order
DEFAULT_LABELME_BOXES = [("cat", 10, 5.25, 50.5, 40), ("dog", 20, 20, 45, 35),
                         ("cat", 62, 51, 65, 54)]


def labelme_tree(root: Path, *, windows: bool = True) -> Path:
    """`root/images/a.jpg` + `root/annotations/a.json` (imagePath `..\\images\\a.jpg`,
    as LabelMe on Windows writes it), and `b.json` whose image exists only as
    imageData."""
    import io

    from PIL import Image

    photo(root / "images" / "a.jpg", 80, 60, seed=1)
    sep = "\\" if windows else "/"
    lm_json(root / "annotations" / "a.json", default_labelme_shapes(),
            image_path=f"..{sep}images{sep}a.jpg", flags={"indoor": True, "night": False})
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (90, 20, 30)).save(buf, "JPEG")
    lm_json(root / "annotations" / "b.json",
            [lm_shape("dog", "rectangle", [(1, 2), (11, 12)])], image_path="b.jpg",
            image_data=buf.getvalue())
    return root


# ================================================================== CVAT for images 1.1
# CVAT writes `<annotations><version>1.1</version><meta><task>` (id, name, size, mode,
# overlap, created, updated, subset, start/stop_frame, segments, owner, labels with
# name/color/type/attributes) `<dumped>`, then `<image id name width height>` (a
# project's with `subset="Train"`), each shape with label, source="manual",
# occluded, coordinates as "%.2f", z_order, and optional group_id, rotation and
# `<attribute name="...">` children; `<tag label source>` for image tags.

def cvat_meta(labels: list[str], *, owner: str = "task") -> str:
    items = "".join(f"<label><name>{n}</name><color>#fa3253</color><type>any</type>"
                    "<attributes><attribute><name>color</name><mutable>False</mutable>"
                    "<input_type>select</input_type><default_value>red</default_value>"
                    "<values>red\nblue</values></attribute></attributes></label>"
                    for n in labels)
    return (f"<meta><{owner}><id>1</id><name>demo</name><size>2</size><mode>annotation</mode>"
            "<overlap>0</overlap><created>2024-05-06 07:08:09.000000+00:00</created>"
            "<subset>default</subset><start_frame>0</start_frame><stop_frame>1</stop_frame>"
            "<segments><segment><id>1</id><start>0</start><stop>1</stop></segment></segments>"
            f"<owner><username>admin</username><email></email></owner><labels>{items}</labels>"
            f"</{owner}><dumped>2024-05-06 07:09:10.000000+00:00</dumped></meta>")


def cvat_image(i: int, name: str, shapes: list[str], size=(80, 60), subset: str | None = None
               ) -> str:
    sub = f' subset="{subset}"' if subset else ""
    return (f'<image id="{i}" name="{name}"{sub} width="{size[0]}" height="{size[1]}">'
            + "".join(shapes) + "</image>")


def cvat_box(label: str, box, *, rotation: float | None = None, occluded: int = 0,
             z: int = 0, group: int | None = None, attrs: dict | None = None) -> str:
    extra = f' rotation="{rotation:.2f}"' if rotation is not None else ""
    extra += f' group_id="{group}"' if group is not None else ""
    inner = "".join(f'<attribute name="{k}">{v}</attribute>' for k, v in (attrs or {}).items())
    return (f'<box label="{label}" source="manual" occluded="{occluded}" xtl="{box[0]:.2f}" '
            f'ytl="{box[1]:.2f}" xbr="{box[2]:.2f}" ybr="{box[3]:.2f}" z_order="{z}"{extra}>'
            f"{inner}</box>")


def cvat_poly(label: str, points, tag: str = "polygon") -> str:
    pts = ";".join(f"{x:.2f},{y:.2f}" for x, y in points)
    return (f'<{tag} label="{label}" source="manual" occluded="0" points="{pts}" '
            f'z_order="1"></{tag}>')


def cvat_ellipse(label: str, cx, cy, rx, ry) -> str:
    return (f'<ellipse label="{label}" source="manual" occluded="1" cx="{cx:.2f}" cy="{cy:.2f}" '
            f'rx="{rx:.2f}" ry="{ry:.2f}" z_order="0"></ellipse>')


def cvat_mask(label: str, bitmap, left: int, top: int) -> str:
    """CVAT's mask: row-major runs over the crop, background first."""
    import numpy as np

    flat = np.asarray(bitmap, np.uint8).ravel()
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    h, w = np.asarray(bitmap).shape
    return (f'<mask label="{label}" source="manual" occluded="0" rle="{", ".join(map(str, runs))}"'
            f' left="{left}" top="{top}" width="{w}" height="{h}" z_order="0"></mask>')


def cvat_xml(labels: list[str], images: list[str], *, owner: str = "task") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
            + cvat_meta(labels, owner=owner) + "\n" + "\n".join(images) + "\n</annotations>\n")


def default_cvat_images() -> tuple[list[str], list[tuple]]:
    """Image a.jpg's shapes and the (label, x1, y1, x2, y2) each area shape gives."""
    shapes = [
        cvat_box("car", (10, 5.5, 50, 40), occluded=1, z=2, group=3, attrs={"color": "blue"}),
        cvat_box("car", (20, 20, 40, 30), rotation=90.0),     # turned: 10 x 20 about (30, 25)
        cvat_poly("person", [(5, 6), (15, 6), (10, 26.5)]),
        cvat_ellipse("person", 60, 30, 8, 4),
        cvat_mask("person", [[0, 1, 1], [0, 1, 0]], 70, 50),
        cvat_poly("lane", [(0, 59), (79, 50)], tag="polyline"),
        cvat_poly("person", [(1, 1)], tag="points"),
        '<tag label="outdoor" source="manual"></tag>',
    ]
    boxes = [("car", 10, 5.5, 50, 40), ("car", 25, 15, 35, 35), ("person", 5, 6, 15, 26.5),
             ("person", 52, 26, 68, 34), ("person", 71, 50, 73, 52)]
    return shapes, boxes


def cvat_tree(root: Path) -> list[tuple]:
    """CVAT's task export: annotations.xml + images/ (a name with a sub-folder); the
    label `bicycle` has no shape."""
    shapes, boxes = default_cvat_images()
    photo(root / "images" / "a.jpg", 80, 60, seed=2)
    photo(root / "images" / "sub" / "b.jpg", 80, 60, seed=3)
    (root / "annotations.xml").write_text(cvat_xml(
        ["car", "person", "lane", "bicycle"],
        [cvat_image(0, "a.jpg", shapes), cvat_image(1, "sub/b.jpg",
                                                     [cvat_box("car", (1, 2, 11, 12))])]))
    return boxes


# ================================================================== Open Images
# The official V7 files: `oidv7-class-descriptions-boxable.csv` (header LabelName,
# DisplayName; V6's class-descriptions-boxable.csv has none), `<split>-annotations-
# bbox.csv` (ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,
# IsTruncated,IsGroupOf,IsDepiction,IsInside; V6 adds XClick1X.. columns; train is
# `oidv6-train-annotations-bbox.csv`), `<split>-annotations-human-imagelabels-
# boxable.csv` (ImageID,Source,LabelName,Confidence), images `<split>/<ImageID>.jpg`.

OID_CLASSES = [("/m/01g317", "Person"), ("/m/0k4j", "Car"), ("/m/0199g", "Bicycle"),
               ("/m/0dzct", "Human face")]
OID_HEADER = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,"
              "IsTruncated,IsGroupOf,IsDepiction,IsInside")


@dataclass(frozen=True)
class OidRow:
    image: str
    mid: str
    box: tuple[float, float, float, float]     # XMin XMax YMin YMax
    flags: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    def line(self) -> str:
        return (f"{self.image},xclick,{self.mid},1,"
                + ",".join(f"{v:.6f}".rstrip("0").rstrip(".") if v else "0" for v in self.box)
                + "," + ",".join(map(str, self.flags)))


def default_oid_rows() -> list[OidRow]:
    return [
        OidRow("000002b66c9c498e", "/m/01g317", (0.0125, 0.195312, 0.148438, 0.587500),
               (0, 1, 0, 0, 0)),
        OidRow("000002b66c9c498e", "/m/0k4j", (0.5, 0.75, 0.25, 0.5), (1, 0, 1, 0, 0)),
        OidRow("000002b97e5471a0", "/m/0dzct", (0.1, 0.9, 0.2, 0.8), (0, 0, 0, 1, 1)),
        OidRow("000002b66c9c498e", "/m/01g317", (0.6, 0.7, 0.6, 0.9)),
    ]


def oid_tree(root: Path, rows: list[OidRow] | None = None, *, split: str = "validation",
             prefix: str = "", sizes: dict[str, tuple[int, int]] | None = None,
             datumaro: bool = False, image_labels: bool = True) -> list[OidRow]:
    rows = default_oid_rows() if rows is None else rows
    csvs = root / "annotations" if datumaro else root
    csvs.mkdir(parents=True, exist_ok=True)
    (csvs / "oidv7-class-descriptions-boxable.csv").write_text(
        "LabelName,DisplayName\n" + "".join(f"{m},{n}\n" for m, n in OID_CLASSES))
    (csvs / f"{prefix}{split}-annotations-bbox.csv").write_text(
        OID_HEADER + "\n" + "".join(r.line() + "\n" for r in rows))
    if image_labels:
        (csvs / f"{split}-annotations-human-imagelabels-boxable.csv").write_text(
            "ImageID,Source,LabelName,Confidence\n000002b66c9c498e,verification,/m/0k4j,1\n"
            "000002b66c9c498e,verification,/m/0199g,0\n000002b66c9c498e,crowdsource-verified"
            ",/m/01g317,1\n")
    folder = root / "images" / split if datumaro else root / split
    for i, image in enumerate(sorted({r.image for r in rows})):
        w, h = (sizes or {}).get(image, (160, 120))
        photo(folder / f"{image}.jpg", w, h, seed=i)
    return rows


def oid_fiftyone(root: Path) -> Path:
    """FiftyOne's download of one validation image (`abc`, 80x40, one Person box):
    `validation/data/`, `labels/detections.csv`, `metadata/classes.csv` (no header)."""
    fo = root / "validation"
    (fo / "labels").mkdir(parents=True)
    (fo / "metadata").mkdir()
    (fo / "metadata" / "classes.csv").write_text("/m/01g317,Person\n")
    (fo / "labels" / "detections.csv").write_text(
        OID_HEADER + "\n" + OidRow("abc", "/m/01g317", OID_FIFTYONE_BOX).line() + "\n")
    photo(fo / "data" / "abc.jpg", 80, 40)
    return fo


OID_FIFTYONE_BOX = (0.25, 0.5, 0.1, 0.6)


# Open Images masks: `<split>-annotations-object-segmentation.csv` (MaskPath,ImageID,
# LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks; Clicks is one
# field of `x y label` triples joined by `;`), the PNGs (`<ImageID>_<MID without
# slashes>_<BoxID>.png`, 0/255, not at the image's size) from `<split>-masks-<0-f>.zip`.

OID_SEG_HEADER = ("MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,"
                  "PredictedIoU,Clicks")


@dataclass(frozen=True)
class OidMask:
    image: str
    mid: str
    box: tuple[float, float, float, float]     # BoxXMin BoxXMax BoxYMin BoxYMax
    box_id: str
    size: tuple[int, int] = (40, 30)           # the PNG's width, height
    seed: int = 0
    bilevel: bool = False                      # a 1-bit PNG instead of 8-bit 0/255

    @property
    def name(self) -> str:
        return f"{self.image}_{self.mid.replace('/', '')}_{self.box_id}.png"

    def pixels(self):
        import numpy as np

        w, h = self.size  # the object's pixels lie in its box, as annotators drew them
        x1, x2, y1, y2 = self.box
        inside = np.zeros((h, w), bool)
        inside[int(y1 * h):int(np.ceil(y2 * h)), int(x1 * w):int(np.ceil(x2 * w))] = True
        return inside & (np.random.default_rng(self.seed).random((h, w)) < 0.6)

    def line(self) -> str:
        return (f"{self.name},{self.image},{self.mid},{self.box_id},"
                + ",".join(f"{v:.6f}" for v in self.box)
                + ',0.86069,"0.14312 0.40411 1;0.35102 0.52334 0;0.22771 0.61010 1"')

    def write(self, folder: Path) -> Path:
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        pixels = self.pixels()
        image = (Image.fromarray(pixels) if self.bilevel
                 else Image.fromarray(pixels.astype("uint8") * 255))
        image.save(folder / self.name)
        return folder / self.name


def oid_masks(root: Path, masks: list[OidMask], *, split: str = "validation",
              folder: str | None = None, write: bool = True) -> Path:
    """The segmentation CSV beside the box CSV (or in FiftyOne's labels/) and the
    PNGs in `folder` (default: `<split>-masks/<split>-masks-<h>/`, one folder per
    extracted zip, <h> the name's first character)."""
    fiftyone = (root / "labels" / "detections.csv").is_file()
    csvs = root / "labels" if fiftyone else (root / "annotations" if (root / "annotations")
                                              .is_dir() else root)
    name = "segmentations.csv" if fiftyone else f"{split}-annotations-object-segmentation.csv"
    (csvs / name).write_text(OID_SEG_HEADER + "\n" + "".join(m.line() + "\n" for m in masks))
    for m in masks if write else ():
        where = (root / folder if folder is not None
                 else root / f"{split}-masks" / f"{split}-masks-{m.name[0]}")
        m.write(where / m.name[0].upper() if fiftyone else where)
    return csvs / name


# ================================================================== shared checks

def fixture_counts(name: str, tmp_path: Path, *args) -> tuple[list[str], dict, dict]:
    """Convert fixtures/NAME: (output lines, {split: (images, objects)}, skip counts)."""
    from conftest import FIXTURES

    code, output = convert(FIXTURES / name, tmp_path / "out", *args)
    assert code == 0, output
    m = Manifest.read(tmp_path / "out")
    return (output.splitlines(),
            {s: (i.num_examples, i.num_objects) for s, i in m.splits.items()}, m.skipped)


def worker_counts_agree(src: Path, tmp_path: Path, *args) -> Path:
    """1 and 2 workers (2 shards) write the same bytes; returns the first output."""
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        code, output = convert(src, out, "--workers", workers, "--num-shards", "2", *args)
        assert code == 0, output
        outs.append(tree_bytes(out))
    assert outs[0] == outs[1]
    return tmp_path / "out1"


def beam_matches_local(src: Path, tmp_path: Path, **options) -> dict[str, bytes]:
    """The Beam DirectRunner writes the bytes the local runner writes; the local tree."""
    from cocoprep.convert import convert_detection

    common = dict(num_shards=2, quiet=True, **options)
    convert_detection(src, tmp_path / "local", workers=2, **common)
    convert_detection(src, tmp_path / "beam", runner="beam",
                      beam_options=["--runner=DirectRunner", "--direct_running_mode=in_memory"],
                      **common)
    local = tree_bytes(tmp_path / "local")
    assert tree_bytes(tmp_path / "beam") == local
    return local
