"""Exports shaped like the labelling tools write them (field sets and quirks from
their docs and issue trackers), made in tmp_path with small Pillow images."""

from __future__ import annotations

from pathlib import Path

from conftest import write_image, write_json

W, H = 64, 48


def _box_ann(aid, image_id, cat, box, **extra) -> dict:
    x, y, w, h = box
    a = {"id": aid, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h],
         "area": w * h, "iscrowd": 0}
    a.update(extra)
    return a


# ------------------------------------------------------------------ Roboflow

ROBOFLOW_CATEGORIES = [
    {"id": 0, "name": "cells", "supercategory": "none"},   # the dataset superclass
    {"id": 1, "name": "Platelets", "supercategory": "cells"},
    {"id": 2, "name": "RBC", "supercategory": "cells"},
    {"id": 3, "name": "WBC", "supercategory": "cells"},
]


def roboflow_export(root: Path, images_per_split=(3, 2, 1)) -> dict[str, int]:
    """`train/ valid/ test/`, each `_annotations.coco.json` beside its images; image
    and annotation ids from 0; `segmentation: []`. Returns objects per split."""
    objects = {}
    for split, n in zip(("train", "valid", "test"), images_per_split):
        images, anns = [], []
        for i in range(n):
            name = f"BloodImage_{i:05d}_jpg.rf.{split}{i:04d}abcdef.jpg"
            write_image(root / split / name, W, H, seed=i)
            images.append({"id": i, "license": 1, "file_name": name, "height": H, "width": W,
                           "date_captured": "2024-01-10T12:00:00+00:00"})
            for k, cat in enumerate((1, 2, 3)[: 1 + i % 3]):
                anns.append(_box_ann(len(anns), i, cat, (2 + 10 * k, 3, 9.5, 12),
                                     segmentation=[]))
        write_json(root / split / "_annotations.coco.json", {
            "info": {"year": "2024", "version": "2", "description": "Exported from roboflow.com",
                     "contributor": "", "url": "https://public.roboflow.com/object-detection/x",
                     "date_created": "2024-01-10T12:00:00+00:00"},
            "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/",
                          "name": "CC BY 4.0"}],
            "categories": ROBOFLOW_CATEGORIES, "images": images, "annotations": anns})
        objects[split] = len(anns)
    return objects


def roboflow_keypoint_export(root: Path) -> int:
    """One split of a Roboflow keypoint project: categories name their keypoints and
    annotations carry `keypoints` and `num_keypoints` (not a person_keypoints_ file)."""
    cats = [{"id": 0, "name": "hands", "supercategory": "none"},
            {"id": 1, "name": "hand", "supercategory": "hands",
             "keypoints": ["wrist", "thumb", "index"], "skeleton": [[1, 2], [1, 3]]}]
    images, anns = [], []
    for i in range(2):
        name = f"hand_{i}_jpg.rf.{i:032d}.jpg"
        write_image(root / "train" / name, W, H, seed=i)
        images.append({"id": i, "license": 1, "file_name": name, "height": H, "width": W})
        anns.append(_box_ann(i, i, 1, (4, 4, 30, 30), segmentation=[], num_keypoints=2,
                             keypoints=[8, 8, 2, 16, 12, 2, 0, 0, 0]))
    write_json(root / "train" / "_annotations.coco.json",
               {"info": {}, "licenses": [], "categories": cats, "images": images,
                "annotations": anns})
    return len(anns)


# ------------------------------------------------------------------ CVAT

def cvat_export(root: Path, *, flat: bool = False, masks: bool = True) -> dict[str, int]:
    """CVAT "COCO 1.0": `annotations/instances_default.json`, images in `images/default/`
    (newer) or `images/` (`flat`, older). Boxes have `segmentation: []`, polygons a
    list, brush masks an uncompressed RLE with `iscrowd: 1`; every annotation carries
    `attributes`. Returns counts of objects and of box-only objects."""
    image_dir = root / "images" if flat else root / "images" / "default"
    images, anns = [], []
    for i in range(1, 4):
        name = f"frame_{i - 1:06d}.jpg"
        write_image(image_dir / name, W, H, seed=i)
        images.append({"id": i, "width": W, "height": H, "file_name": name, "license": 0,
                       "flickr_url": "", "coco_url": "", "date_captured": 0})
        attrs = {"occluded": False, "rotation": 0.0}
        anns.append(_box_ann(len(anns) + 1, i, 1, (5.0, 6.0, 20.0, 10.0), segmentation=[],
                             attributes=dict(attrs, color="red")))
        anns.append(_box_ann(len(anns) + 1, i, 2, (30.0, 20.0, 10.0, 10.0),
                             segmentation=[[30.0, 20.0, 40.0, 20.0, 40.0, 30.0, 30.0, 30.0]],
                             attributes=attrs))
        if masks:  # a brush mask: a 4x3 block at x 10..13, y 30..32 (column-major RLE)
            counts = [10 * H + 30, 3] + [H - 3, 3] * 3 + [H * W - (13 * H + 33)]
            anns.append(_box_ann(len(anns) + 1, i, 2, (10.0, 30.0, 4.0, 3.0), iscrowd=1,
                                 segmentation={"counts": counts, "size": [H, W]},
                                 attributes=attrs))
    write_json(root / "annotations" / "instances_default.json", {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": 1, "name": "car", "supercategory": ""},
                       {"id": 2, "name": "person", "supercategory": ""}],
        "images": images, "annotations": anns})
    return {"objects": len(anns), "box_only": sum(1 for a in anns if a["segmentation"] == [])}


# ------------------------------------------------------------------ Label Studio

def label_studio_export(root: Path, *, names: str = "images", write_images: bool = True) -> int:
    """`result.json` with `images/` beside it; category, image and annotation ids from
    0. `names`: `images` (`images/<hash>-<name>`), `upload` (`/data/upload/3/...`),
    `windows` (`images\\\\...`) or `relative-upload` (`..\\\\..\\\\label-studio\\\\media\\\\
    upload\\\\4\\\\...`, Label Studio 1.16). Returns the number of objects."""
    images, anns = [], []
    for i in range(3):
        base = f"{i:x}a1b2c3d-photo_{i}.jpg"
        if write_images:
            write_image(root / "images" / base, W, H, seed=i)
        file_name = {"images": f"images/{base}", "upload": f"/data/upload/3/{base}",
                     "windows": f"images\\{base}",
                     "relative-upload": f"..\\..\\label-studio\\label-studio\\media\\upload\\4\\"
                                        f"{base}"}[names]
        images.append({"width": W, "height": H, "id": i, "file_name": file_name})
        for k in range(2):
            anns.append(_box_ann(len(anns), i, (i + k) % 2, (3.2 + 20 * k, 4.7, 15.1, 20.3),
                                 segmentation=[], ignore=0))
    write_json(root / "result.json", {
        "images": images,
        "categories": [{"id": 0, "name": "Cat"}, {"id": 1, "name": "Dog"}],
        "annotations": anns,
        "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio",
                 "url": "", "date_created": "2024-03-01 10:00:00.000000"}})
    return len(anns)


# ------------------------------------------------------------------ FiftyOne

def fiftyone_export(root: Path) -> int:
    """COCODetectionDataset: `labels.json` with `data/` beside it; `supercategory: null`,
    `license: null`, sizes written as floats (500.0). Returns the number of objects."""
    images, anns = [], []
    for i in range(1, 4):
        name = f"{i:06d}.jpg"
        write_image(root / "data" / name, W, H, seed=i)
        images.append({"id": i, "file_name": name, "height": float(H), "width": float(W),
                       "license": None, "coco_url": None})
        anns.append(_box_ann(i, i, 1 + i % 2, (1.5, 2.5, 30.25, 20.0)))
    write_json(root / "labels.json", {
        "info": {"year": "", "version": "", "description": "Exported from FiftyOne",
                 "contributor": "Voxel51", "url": "https://voxel51.com/fiftyone",
                 "date_created": "2024-05-01T10:00:00"},
        "licenses": [],
        "categories": [{"id": 1, "name": "airplane", "supercategory": None},
                       {"id": 2, "name": "bird", "supercategory": None}],
        "images": images, "annotations": anns})
    return len(anns)
