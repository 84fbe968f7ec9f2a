"""Validation figures: loss, accuracy, ROC AUC, COCO mAP@0.5 of decoded boxes, and
mean IoU of masks against the predict-the-majority-class baseline."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Sequence


def auc(y_true, scores) -> float | None:
    """ROC AUC (micro: every image x class pair), by the rank-sum formula with
    average ranks for ties; None when only one kind of target is present."""
    import numpy as np

    y = np.asarray(y_true, dtype=np.float64).ravel() > 0.5
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _xywh(box, size: int) -> list[float]:
    ymin, xmin, ymax, xmax = (float(v) * size for v in box)
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def map50(truth: Sequence[dict], detections, *, num_classes: int, image_size: int
          ) -> float | None:
    """COCO mAP at IoU 0.5 (pycocotools' COCOeval, `stats[1]`).

    Args:
        truth: one dict per image with ``boxes`` ``[N, 4]`` (normalized ymin, xmin,
            ymax, xmax), ``classes`` ``[N]``, ``is_crowd`` ``[N]`` (real objects
            only). Crowd objects are COCO's ``iscrowd`` regions: matching them is
            neither a hit nor a false positive.
        detections: a `heads.Detections` with one row per image of `truth`.

    Boxes are compared in the model's input frame (`image_size` pixels). None when
    the images hold no (non-crowd) object of a known class.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    for i, t in enumerate(truth):
        images.append({"id": i + 1, "width": image_size, "height": image_size})
        for box, cls, crowd in zip(t["boxes"], t["classes"], t["is_crowd"]):
            if not 0 <= int(cls) < num_classes:
                continue
            xywh = _xywh(box, image_size)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(cls) + 1,
                         "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": int(bool(crowd))})
        for box, score, cls in zip(detections.boxes[i], detections.scores[i],
                                   detections.classes[i]):
            if score > 0:
                results.append({"image_id": i + 1, "category_id": int(cls) + 1,
                                "bbox": _xywh(box, image_size), "score": float(score)})
    if not any(a["iscrowd"] == 0 for a in anns):
        return None
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its tables
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(0.0, float(ev.stats[1]))  # -1 when nothing could be matched


def evaluate(model, dataset, *, head: str, num_classes: int, image_size: int) -> dict:
    """Validation loss(es), and accuracy (softmax), micro ROC AUC (multilabel),
    mAP@0.5 (detection; `dataset` made `with_objects`) or mean IoU beside the
    predict-the-majority-class baseline's (segmentation)."""
    if head == "detection":
        return _evaluate_detection(model, dataset, num_classes=num_classes,
                                   image_size=image_size)
    if head == "segmentation":
        return _evaluate_segmentation(model, dataset, num_classes=num_classes)
    import numpy as np

    ys, ps = [], []
    for x, y in dataset:
        ps.append(np.asarray(model.predict_on_batch(x), dtype=np.float64))
        ys.append(y.numpy())
    if not ys:
        return {"num_examples": 0}
    y = np.concatenate(ys)
    p = np.clip(np.concatenate(ps), 1e-7, 1 - 1e-7)
    out: dict[str, Any] = {"num_examples": int(len(y))}
    if head == "softmax":
        out["loss"] = float(-np.mean(np.log(p[np.arange(len(y)), y.astype(int)])))
        out["accuracy"] = float(np.mean(np.argmax(p, axis=-1) == y))
    else:
        out["loss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        out["auc"] = auc(y, p)
    return out


def _evaluate_detection(model, dataset, *, num_classes: int, image_size: int) -> dict:
    import numpy as np

    from cocoprep.train.heads import Detections, box_l1_loss, decode, heatmap_focal_loss

    heat_l, box_l, truth, dets = [], [], [], []
    for x, y, objects in dataset:
        out = model.predict_on_batch(x)
        heat_l.append(np.asarray(heatmap_focal_loss(y["heatmap"], out["heatmap"])))
        box_l.append(np.asarray(box_l1_loss(y["box"], out["box"])))
        dets.append(decode(out))
        for i, n in enumerate(objects["num_boxes"].numpy()):
            truth.append({k: objects[k][i][:n].numpy()
                          for k in ("boxes", "classes", "is_crowd")})
    if not truth:
        return {"num_examples": 0}
    heat = float(np.mean(np.concatenate(heat_l)))
    box = float(np.mean(np.concatenate(box_l)))
    joined = Detections(np.concatenate([d.boxes for d in dets]),
                        np.concatenate([d.scores for d in dets]),
                        np.concatenate([d.classes for d in dets]))
    score = map50(truth, joined, num_classes=num_classes, image_size=image_size)
    return {"num_examples": len(truth),
            "num_objects": int(sum(int(np.sum(~t["is_crowd"])) for t in truth)),
            "loss": heat + box, "heatmap_loss": heat, "box_loss": box, "map50": score}


def confusion(y_true, y_pred, num_classes: int):
    """``[C, C]`` pixel counts (rows: truth, columns: prediction) over the pixels
    whose truth is a class id (void and ids >= C left out)."""
    import numpy as np

    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred).astype(np.int64).ravel()
    keep = t < num_classes
    return np.bincount(t[keep] * num_classes + p[keep],
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_iou(matrix) -> float | None:
    """Mean IoU over the classes present in the truth or the prediction (DeepLab's
    and the Model Garden's rule: a class absent from both is left out)."""
    import numpy as np

    m = np.asarray(matrix, dtype=np.float64)
    inter = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - inter
    present = union > 0
    return float(np.mean(inter[present] / union[present])) if present.any() else None


def majority_baseline(matrix) -> tuple[int, float | None]:
    """The class most frequent in the truth, and the mean IoU of predicting it
    everywhere (the same pixels counted as `mean_iou` counts them)."""
    import numpy as np

    m = np.asarray(matrix, dtype=np.float64)
    truth = m.sum(axis=1)
    top = int(np.argmax(truth))
    constant = np.zeros_like(m)
    constant[:, top] = truth
    return top, mean_iou(constant)


def _evaluate_segmentation(model, dataset, *, num_classes: int) -> dict:
    import numpy as np

    from cocoprep.train.heads import seg_loss

    matrix = np.zeros((num_classes, num_classes), np.int64)
    losses = []
    for x, y in dataset:
        out = np.asarray(model.predict_on_batch(x), dtype=np.float32)
        losses.append(np.asarray(seg_loss(y, out)))
        matrix += confusion(y.numpy(), np.argmax(out, axis=-1), num_classes)
    if not losses:
        return {"num_examples": 0}
    top, baseline = majority_baseline(matrix)
    miou = mean_iou(matrix)
    pixels = int(matrix.sum())
    return {"num_examples": int(sum(len(v) for v in losses)), "num_pixels": pixels,
            "loss": float(np.mean(np.concatenate(losses))),
            "pixel_accuracy": float(np.trace(matrix) / pixels) if pixels else None,
            "miou": miou, "majority_class": top, "majority_miou": baseline,
            "miou_over_majority": (None if miou is None or baseline is None
                                   else miou - baseline)}
