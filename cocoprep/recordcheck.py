"""The checks of one parsed record (verify's per-record rules): images and masks
decode at the stored size, boxes lie in [0, 1] with min <= max, per-object lists
agree in length, labels are in the label map; a segmentation mask is an 8-bit
one-channel PNG of the image's size holding label-map ids or void.

Values are looked up by feature name (`schema`), never by key.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

_BOX = ("xmin", "ymin", "xmax", "ymax")
_PER_OBJECT = _BOX + ("class_text", "class_label", "is_crowd", "area")


def text_of(v: Any) -> str:
    """A bytes feature value as text (undecodable bytes replaced)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _decode_check(data: bytes, what: str, *, fmt: str | None,
                  size: tuple[int, int]) -> str | None:
    """None if `data` fully decodes to an image of `size` (width, height)."""
    from cocoprep.errors import ItemSkipped
    from cocoprep.images import check_image

    try:
        check = check_image(data)
    except ItemSkipped as e:
        return f"{what}: {e.detail}"
    if fmt is not None and check.format != fmt:
        return f"{what}: format says {fmt!r} but the bytes are {check.format or 'unknown'}"
    if (check.width, check.height) != size:
        return (f"{what}: decoded size {check.width}x{check.height} != stored "
                f"width x height {size[0]}x{size[1]}")
    return None


def _image_problems(values: dict) -> list[str]:
    problems: list[str] = []
    width, height = int(values["width"]), int(values["height"])
    if width <= 0 or height <= 0:
        problems.append(f"stored size {width}x{height} is not positive")
    fmt = text_of(values["format"]).lower()
    if fmt not in ("jpeg", "png"):
        problems.append(f"format {fmt!r} is not jpeg or png")
    err = _decode_check(values["encoded"], "image", fmt=fmt, size=(width, height))
    if err:
        problems.append(err)
    digest = text_of(values.get("sha256", b""))
    if digest and hashlib.sha256(values["encoded"]).hexdigest() != digest:
        problems.append("image sha256 differs from the stored sha256")
    return problems


def _label_problem(label: int, text: str, labels: dict[int, str] | None, source: str,
                   *, what: str = "label") -> str | None:
    """What is wrong with a stored (label, text) pair against the label map."""
    if labels is None:
        return None
    if label not in labels:
        return f"{what} {label} is not in {source}"
    if labels[label] != text:
        return f"{what} {label} is {labels[label]!r} in {source} but the record says {text!r}"
    return None


def _object_problems(i: int, values: dict, labels: dict[int, str] | None,
                     source: str) -> list[str]:
    problems: list[str] = []
    xmin, ymin, xmax, ymax = (float(values[k][i]) for k in _BOX)
    coords = {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}
    bad = [f"{k} {v:g}" for k, v in coords.items() if not (0.0 <= v <= 1.0)]
    if bad:
        problems.append(f"object {i}: box outside [0, 1] ({', '.join(bad)})")
    if xmin > xmax or ymin > ymax:
        problems.append(f"object {i}: box min > max (xmin {xmin:g}, xmax {xmax:g}, "
                        f"ymin {ymin:g}, ymax {ymax:g})")
    err = _label_problem(int(values["class_label"][i]), text_of(values["class_text"][i]), labels,
                         source, what="class label")
    if err:
        problems.append(f"object {i}: {err}")
    crowd = int(values["is_crowd"][i])
    if crowd not in (0, 1):
        problems.append(f"object {i}: is_crowd {crowd} is not 0 or 1")
    return problems


def _keypoint_problems(values: dict, n: int) -> list[str]:
    kx = values.get("keypoint_x")
    if kx is None or not len(kx):
        return []
    lens = {len(values[k]) for k in ("keypoint_x", "keypoint_y", "keypoint_visibility")}
    if len(lens) > 1 or (n and len(kx) % n):
        return [f"keypoint lists do not hold the same number per object "
                f"({len(kx)} values for {n} objects)"]
    return [f"{k} outside [0, 1]" for k in ("keypoint_x", "keypoint_y")
            if any(not (0.0 <= float(v) <= 1.0) or math.isnan(float(v)) for v in values[k])]


def _detection_problems(values: dict, labels: dict[int, str] | None, source: str) -> list[str]:
    group = {name: len(values[name]) for name in _PER_OBJECT}
    masks = values.get("mask")
    if masks is not None and len(masks):
        group["mask"] = len(masks)
    if len(set(group.values())) > 1:
        return [f"per-object lists differ in length: {group}"]
    n = group["xmin"]
    problems = [p for i in range(n) for p in _object_problems(i, values, labels, source)]
    size = (int(values["width"]), int(values["height"]))
    for i, m in enumerate(masks if masks is not None else ()):
        err = _decode_check(bytes(m), f"object {i}: mask", fmt="png", size=size)
        if err:
            problems.append(err)
    return problems + _keypoint_problems(values, n)


def check_segmentation(values: dict, labels: dict[int, str] | None,
                       source: str) -> tuple[list[str], Any]:
    """What is wrong with a segmentation record (its image as for every task, then
    its masks), and the pixels per mask value (a 256-entry count; None when the
    class mask does not decode): the class
    mask is an 8-bit one-channel PNG the image's size, holding label-map ids or void;
    the panoptic masks (when present) decode at that size."""
    import numpy as np

    from cocoprep.errors import ItemSkipped
    from cocoprep.schema import VOID_ID
    from cocoprep.segmasks import mask_ids

    width, height = int(values["width"]), int(values["height"])
    problems = []
    fmt = text_of(values.get("class_mask_format", b"")).lower()
    if fmt != "png":
        problems.append(f"mask format {fmt!r} is not png")
    for name in ("category_mask", "instance_mask"):
        m = values.get(name)
        if m:
            err = _decode_check(bytes(m), name.replace("_", " "), fmt="png",
                                size=(width, height))
            if err:
                problems.append(err)
    problems = _image_problems(values) + problems
    try:
        ids = mask_ids(bytes(values["class_mask"]))
    except ItemSkipped as e:
        return problems + [e.detail], None
    if ids.shape != (height, width):
        problems.append(f"mask: decoded size {ids.shape[1]}x{ids.shape[0]} != stored "
                        f"width x height {width}x{height}")
    counts = np.bincount(ids.ravel(), minlength=256)
    if labels is not None:
        bad = [v for v in np.flatnonzero(counts).tolist() if v != VOID_ID and v not in labels]
        if bad:
            problems.append(f"mask: value(s) {', '.join(map(str, bad))} are not in {source} "
                            f"and not void ({VOID_ID})")
    return problems, counts


def check_record(task: str, values: dict, labels: dict[int, str] | None = None,
                 *, label_source: str = "label map") -> list[str]:
    """Everything wrong with one parsed record (empty when it is fine)."""
    if task == "segmentation":
        return check_segmentation(values, labels, label_source)[0]
    problems = _image_problems(values)
    if task == "classification":
        err = _label_problem(int(values["label"]), text_of(values["label_text"]), labels,
                             label_source)
        return problems + ([err] if err else [])
    return problems + _detection_problems(values, labels, label_source)


# ------------------------------------------------------------------ one shard
