"""Benchmark `cocoprep convert` of the same images from COCO JSON, Pascal VOC, YOLO,
KITTI, LabelMe, CVAT for images and Open Images.

Takes bench_convert.py's generated set (photo-like 640x480 JPEGs, 1-12 objects
each, under benchmarks/data/) and rewrites its annotations, once, as

* Pascal VOC: `Annotations/<id>.xml` (size, one `<object>` per COCO annotation with
  its box as xmin/ymin/xmax/ymax, pose Unspecified, difficult 0) + `JPEGImages/`;
* YOLO (Ultralytics): `data.yaml` (`path`, `train: images/train`, `names` list) +
  `images/train/` + `labels/train/<id>.txt` lines `class cx cy w h` (normalised);
* KITTI: `training/image_2/` + `training/label_2/<id>.txt` (2D box, fixed 3D values);
* LabelMe: `train/` of image + JSON (one `rectangle` per annotation, no imageData);
* CVAT for images 1.1: `annotations.xml` (one `<box>` per annotation) + `images/`;
* Open Images: class descriptions, `train-annotations-bbox.csv` (normalised) +
  `train/<id>.jpg`;

the images are hard links to the COCO set's files (the same bytes on disk). Then
times whole `cocoprep convert` processes (boxes only) of all of them, interleaved
rounds, best of --rounds, and prints images/s, each format's throughput relative to
COCO, the load average before and after, and whether all of them wrote the same
number of images and objects. A figure taken on a loaded machine is not a result.

Usage:
    python benchmarks/bench_formats.py [--images 2000] [--workers N] [--rounds 3]
                                       [--formats coco,kitti,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_convert import CATEGORIES, DATA, HEIGHT, WIDTH, generate_set  # noqa: E402

FORMATS = ("coco", "voc", "yolo", "kitti", "labelme", "cvat", "openimages")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations" / "instances_train.json").read_text())


def _by_image(coco: dict) -> dict[int, list[dict]]:
    anns: dict[int, list[dict]] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        anns[a["image_id"]].append(a)
    return anns


def _voc_xml(image: dict, anns: list[dict], names: dict[int, str]) -> str:
    objects = []
    for a in anns:
        x, y, w, h = a["bbox"]
        objects.append(
            f"<object><name>{escape(names[a['category_id']])}</name><pose>Unspecified</pose>"
            f"<truncated>0</truncated><difficult>0</difficult><bndbox><xmin>{x:g}</xmin>"
            f"<ymin>{y:g}</ymin><xmax>{x + w:g}</xmax><ymax>{y + h:g}</ymax></bndbox></object>")
    return (f"<annotation><folder>JPEGImages</folder><filename>{image['file_name']}</filename>"
            f"<source><database>cocoprep benchmark</database></source><size><width>"
            f"{image['width']}</width><height>{image['height']}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{''.join(objects)}</annotation>\n")


def write_voc(coco_root: Path, root: Path) -> Path:
    """The COCO set as a VOCdevkit-style folder (cached)."""
    stamp = root / ".complete"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    coco = _coco(coco_root)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = _by_image(coco)
    (root / "Annotations").mkdir(parents=True)
    for im in coco["images"]:
        _link(coco_root / "train" / im["file_name"], root / "JPEGImages" / im["file_name"])
        stem = Path(im["file_name"]).stem
        (root / "Annotations" / f"{stem}.xml").write_text(_voc_xml(im, anns[im["id"]], names))
    stamp.write_text("")
    return root


def write_yolo(coco_root: Path, root: Path) -> Path:
    """The COCO set as an Ultralytics YOLO folder (cached)."""
    stamp = root / ".complete"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    coco = _coco(coco_root)
    index = {c["id"]: i for i, c in enumerate(coco["categories"])}
    anns = _by_image(coco)
    (root / "labels" / "train").mkdir(parents=True)
    for im in coco["images"]:
        _link(coco_root / "train" / im["file_name"], root / "images" / "train" / im["file_name"])
        w, h = im["width"], im["height"]
        lines = []
        for a in anns[im["id"]]:
            x, y, bw, bh = a["bbox"]
            lines.append(f"{index[a['category_id']]} {(x + bw / 2) / w:.6f} "
                         f"{(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
        (root / "labels" / "train" / f"{Path(im['file_name']).stem}.txt").write_text("".join(lines))
    names = "\n".join(f"  - {c['name']}" for c in coco["categories"])
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nnames:\n{names}\n")
    stamp.write_text("")
    return root


def _fresh(root: Path) -> bool:
    """True when `root` must be written (no completion stamp): then it is emptied."""
    if (root / ".complete").exists():
        return False
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return True


def write_kitti(coco_root: Path, root: Path) -> Path:
    """The COCO set as KITTI training/image_2 + label_2 (cached)."""
    if not _fresh(root):
        return root
    coco = _coco(coco_root)
    names, anns = {c["id"]: c["name"] for c in coco["categories"]}, _by_image(coco)
    (root / "training" / "label_2").mkdir(parents=True)
    for im in coco["images"]:
        _link(coco_root / "train" / im["file_name"],
              root / "training" / "image_2" / im["file_name"])
        lines = [f"{names[a['category_id']]} 0.00 0 -1.57 {a['bbox'][0]:.2f} {a['bbox'][1]:.2f} "
                 f"{a['bbox'][0] + a['bbox'][2]:.2f} {a['bbox'][1] + a['bbox'][3]:.2f} "
                 "1.50 1.60 3.90 1.00 1.70 20.00 -1.50\n" for a in anns[im["id"]]]
        (root / "training" / "label_2" / f"{Path(im['file_name']).stem}.txt").write_text(
            "".join(lines))
    (root / ".complete").write_text("")
    return root


def write_labelme(coco_root: Path, root: Path) -> Path:
    """The COCO set as LabelMe JSONs beside their images (cached)."""
    if not _fresh(root):
        return root
    coco = _coco(coco_root)
    names, anns = {c["id"]: c["name"] for c in coco["categories"]}, _by_image(coco)
    for im in coco["images"]:
        _link(coco_root / "train" / im["file_name"], root / "train" / im["file_name"])
        shapes = [{"label": names[a["category_id"]], "points": [
            [a["bbox"][0], a["bbox"][1]],
            [a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]], "group_id": None,
            "description": "", "shape_type": "rectangle", "flags": {}, "mask": None}
            for a in anns[im["id"]]]
        doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": im["file_name"],
               "imageData": None, "imageHeight": im["height"], "imageWidth": im["width"]}
        (root / "train" / f"{Path(im['file_name']).stem}.json").write_text(json.dumps(doc))
    (root / ".complete").write_text("")
    return root


def write_cvat(coco_root: Path, root: Path) -> Path:
    """The COCO set as a CVAT for images 1.1 task export (cached)."""
    if not _fresh(root):
        return root
    coco = _coco(coco_root)
    names, anns = {c["id"]: c["name"] for c in coco["categories"]}, _by_image(coco)
    labels = "".join(f"<label><name>{escape(c['name'])}</name></label>" for c in coco["categories"])
    out = [f"<?xml version='1.0' encoding='utf-8'?>\n<annotations><version>1.1</version>"
           f"<meta><task><labels>{labels}</labels></task></meta>"]
    for i, im in enumerate(coco["images"]):
        _link(coco_root / "train" / im["file_name"], root / "images" / im["file_name"])
        boxes = "".join(
            f'<box label="{escape(names[a["category_id"]])}" occluded="0" xtl="{a["bbox"][0]:.2f}"'
            f' ytl="{a["bbox"][1]:.2f}" xbr="{a["bbox"][0] + a["bbox"][2]:.2f}" '
            f'ybr="{a["bbox"][1] + a["bbox"][3]:.2f}" z_order="0"></box>' for a in anns[im["id"]])
        out.append(f'<image id="{i}" name="{im["file_name"]}" width="{im["width"]}" '
                   f'height="{im["height"]}">{boxes}</image>')
    (root / "annotations.xml").write_text("\n".join(out) + "</annotations>\n")
    (root / ".complete").write_text("")
    return root


def write_openimages(coco_root: Path, root: Path) -> Path:
    """The COCO set as Open Images CSVs + train/<ImageID>.jpg (cached)."""
    if not _fresh(root):
        return root
    coco = _coco(coco_root)
    anns = _by_image(coco)
    (root / "class-descriptions-boxable.csv").write_text(
        "".join(f"/m/{c['id']},{c['name']}\n" for c in coco["categories"]))
    rows = ["ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,"
            "IsGroupOf,IsDepiction,IsInside"]
    for im in coco["images"]:
        stem, w, h = Path(im["file_name"]).stem, im["width"], im["height"]
        _link(coco_root / "train" / im["file_name"], root / "train" / f"{stem}.jpg")
        for a in anns[im["id"]]:
            x, y, bw, bh = a["bbox"]
            rows.append(f"{stem},xclick,/m/{a['category_id']},1,{x / w:.6f},{(x + bw) / w:.6f},"
                        f"{y / h:.6f},{(y + bh) / h:.6f},0,0,0,0,0")
    (root / "train-annotations-bbox.csv").write_text("\n".join(rows) + "\n")
    (root / ".complete").write_text("")
    return root


def _convert(src: Path, out: Path, workers: int) -> float | str:
    """Wall seconds of one whole `cocoprep convert` process, or its error line."""
    cmd = [sys.executable, "-m", "cocoprep", "convert", str(src), "-o", str(out), "--quiet",
           "--workers", str(workers)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return wall


def _counts(out: Path) -> tuple[int, int]:
    splits = json.loads((out / "manifest.json").read_text())["splits"]
    return (sum(s["num_examples"] for s in splits.values()),
            sum(s["num_objects"] for s in splits.values()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000, help="size of the generated set")
    p.add_argument("--workers", type=int, default=None, help="default: CPU count")
    p.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help="comma-separated subset of " + ",".join(FORMATS))
    args = p.parse_args()
    formats = tuple(f for f in FORMATS if f in args.formats.split(","))
    workers = args.workers or os.cpu_count() or 1
    coco_root = generate_set(DATA / f"coco_bench_{args.images}", args.images, workers)
    writers = {"voc": write_voc, "yolo": write_yolo, "kitti": write_kitti,
               "labelme": write_labelme, "cvat": write_cvat, "openimages": write_openimages}
    sources = {f: coco_root if f == "coco" else
               writers[f](coco_root, DATA / f"{f}_bench_{args.images}") for f in formats}
    outs = {f: DATA / f"out_{f}" for f in formats}
    print(f"set: {args.images} images {WIDTH}x{HEIGHT}, {len(CATEGORIES)} classes, "
          f"{workers} worker processes; load average before: {os.getloadavg()[0]:.1f}")
    best: dict[str, float] = {f: float("inf") for f in formats}
    failed: dict[str, str] = {}
    loads = []
    for _ in range(max(1, args.rounds)):  # interleaved: each format sees the same load
        for f in formats:
            if f in failed:
                continue
            loads.append(os.getloadavg()[0])
            wall = _convert(sources[f], outs[f], workers)
            if isinstance(wall, str):
                failed[f] = wall
            else:
                best[f] = min(best[f], wall)
    counts = {f: _counts(outs[f]) for f in formats if f not in failed}
    for f in formats:
        if f in failed:
            print(f"  {f:<10}: failed: {failed[f]}")
            continue
        rel = (f" ({best['coco'] / best[f]:.0%} of COCO's throughput)"
               if f != "coco" and "coco" not in failed else "")
        print(f"  {f:<10}: best wall {best[f]:6.2f} s = {args.images / best[f]:6.0f} images/s "
              f"(whole process, best of {max(1, args.rounds)}){rel}; wrote {counts[f][0]} "
              f"images, {counts[f][1]} objects")
    print(f"  same images and objects written by {', '.join(counts)}: "
          f"{len(set(counts.values())) == 1}")
    print(f"load average during the runs: {min(loads):.1f}-{max(loads):.1f}; "
          f"after: {os.getloadavg()[0]:.1f}")
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
