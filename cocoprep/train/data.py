"""Data and targets: `cocoprep.load` batches -> (images, targets) for each head.

Targets are built in tf.data from `load`'s padded per-object tensors, after the
default augmentation (so flips and crops that move boxes are exercised).
"""

from __future__ import annotations

import os

from cocoprep.train.backbones import Backbone, backbone_of

# Gaussian around each centre: sigma = the box side in cells / 6 (a box's side is
# about 6 sigma), at least half a cell.
GAUSSIAN_SIDE_FRACTION = 1 / 6
MIN_SIGMA = 0.5


def multi_hot(classes, is_crowd, num_boxes, num_classes: int):
    """Image-level multi-label targets from (padded) detection objects.

    Args:
        classes: int ``[..., N]`` contiguous class indices (padding and unknown
            ids may be -1).
        is_crowd: bool ``[..., N]``.
        num_boxes: int ``[...]``, how many of the N rows are real.
        num_classes: C.

    Returns:
        float32 ``[..., C]``: 1 where a real, non-crowd object of that class is in
        the image.
    """
    import tensorflow as tf

    classes = tf.cast(classes, tf.int32)
    n = tf.shape(classes)[-1]
    real = tf.range(n) < tf.expand_dims(tf.cast(num_boxes, tf.int32), -1)
    keep = tf.logical_and(real, tf.logical_not(tf.cast(is_crowd, tf.bool)))
    hot = tf.one_hot(classes, num_classes, dtype=tf.float32)  # -1 -> all zeros
    hot = hot * tf.cast(tf.expand_dims(keep, -1), tf.float32)
    return tf.reduce_max(hot, axis=-2)


def _per_class_max(values, classes, keep, num_classes: int):
    """max over objects of `values` ``[B, N, G, G]`` by class -> ``[B, G, G, C]``
    (0 where a class has no kept object)."""
    import tensorflow as tf

    b, n = tf.shape(values)[0], tf.shape(values)[1]
    g = tf.shape(values)[2]
    dump = b * num_classes  # objects not kept go to one extra segment, dropped below
    seg = tf.where(keep, tf.range(b)[:, None] * num_classes + classes, dump)
    flat = tf.reshape(values, [b * n, g * g])
    out = tf.math.unsorted_segment_max(flat, tf.reshape(seg, [-1]), dump + 1)[:dump]
    out = tf.maximum(out, 0.0)  # empty segments hold the lowest float
    return tf.transpose(tf.reshape(out, [b, num_classes, g, g]), [0, 2, 3, 1])


def detection_targets(boxes, classes, is_crowd, num_boxes, *, grid: int, num_classes: int):
    """CenterNet targets on a `grid` x `grid` feature map from padded objects.

    Args:
        boxes: float ``[B, N, 4]`` (ymin, xmin, ymax, xmax) normalized to the image.
        classes: int ``[B, N]`` (-1: padding or an id outside the label map).
        is_crowd: bool ``[B, N]``; num_boxes: int ``[B]``.

    Returns:
        ``{"heatmap": [B, G, G, C], "box": [B, G, G, 5]}`` float32. Heatmap: 1 at
        each non-crowd object's centre cell, a Gaussian below 1 around it, -1
        (ignored by the loss) inside crowd boxes of that class except at real
        centres. Box: height, width (cells), centre offset y, x within the cell,
        and a 0/1 centre mask; where two centres share a cell, the first object
        (stored order) is kept.
    """
    import tensorflow as tf

    boxes = tf.cast(boxes, tf.float32)
    classes = tf.cast(classes, tf.int32)
    crowd = tf.cast(is_crowd, tf.bool)
    n = tf.shape(classes)[1]
    real = tf.range(n)[None, :] < tf.cast(num_boxes, tf.int32)[:, None]
    real &= (classes >= 0) & (classes < num_classes)
    g = float(grid)
    ymin, xmin, ymax, xmax = tf.unstack(boxes * g, axis=-1)
    hs, ws = ymax - ymin, xmax - xmin
    obj = real & ~crowd & (hs > 0) & (ws > 0)
    yc, xc = (ymin + ymax) / 2, (xmin + xmax) / 2
    cy = tf.clip_by_value(tf.floor(yc), 0.0, g - 1)
    cx = tf.clip_by_value(tf.floor(xc), 0.0, g - 1)
    cells = tf.range(grid, dtype=tf.float32)
    sy = tf.maximum(hs * GAUSSIAN_SIDE_FRACTION, MIN_SIGMA)[..., None]
    sx = tf.maximum(ws * GAUSSIAN_SIDE_FRACTION, MIN_SIGMA)[..., None]
    ey = tf.exp(-tf.square(cells - cy[..., None]) / (2 * tf.square(sy)))
    ex = tf.exp(-tf.square(cells - cx[..., None]) / (2 * tf.square(sx)))
    heat = _per_class_max(ey[..., :, None] * ex[..., None, :], classes, obj, num_classes)
    centres = cells + 0.5
    iny = tf.cast((centres >= ymin[..., None]) & (centres <= ymax[..., None]), tf.float32)
    inx = tf.cast((centres >= xmin[..., None]) & (centres <= xmax[..., None]), tf.float32)
    cover = _per_class_max(iny[..., :, None] * inx[..., None, :], classes, real & crowd,
                           num_classes)
    heat = tf.where((cover > 0) & (heat < 1.0), -1.0, heat)

    index = tf.cast(cy * g + cx, tf.int32)
    hot = tf.one_hot(index, grid * grid) * tf.cast(obj, tf.float32)[..., None]  # [B,N,GG]
    first = hot * tf.cast(tf.equal(tf.cumsum(hot, axis=1), 1.0), tf.float32)
    values = tf.stack([hs, ws, yc - cy, xc - cx], axis=-1)  # [B, N, 4]
    box = tf.einsum("bnk,bnd->bkd", first, values)
    mask = tf.reduce_sum(first, axis=1)[..., None]
    box = tf.reshape(tf.concat([box, mask], axis=-1), [-1, grid, grid, 5])
    return {"heatmap": heat, "box": box}


def make_dataset(data: str | os.PathLike, split: str, *, head: str, num_classes: int,
                 backbone: Backbone | str, batch_size: int, image_size: int, train: bool,
                 seed: int = 0, grid: int | None = None, with_objects: bool = False):
    """`(images, targets)` batches as the smoke-train feeds them to the model.

    `cocoprep.load` (train: shuffled, default augmentation, repeated; otherwise
    stored order, no augmentation, one pass), then the backbone's
    `preprocess_input`. Targets: the 0-based label (``softmax``), the mask's class
    ids, void 255 (``segmentation``, int32 ``[B, S, S]``), the multi-hot
    vector of non-crowd object classes (``multilabel``), or `detection_targets`
    on a `grid` x `grid` map (``detection``). With `with_objects`, a third item
    holds the batch's ``boxes``, ``classes``, ``is_crowd`` and ``num_boxes``
    (for mAP).
    """
    import keras
    import tensorflow as tf

    from cocoprep import reader

    if head == "detection" and not grid:
        raise ValueError("the detection head needs the feature map's grid size")
    bb = backbone_of(backbone) if isinstance(backbone, str) else backbone
    preprocess = getattr(keras.applications, bb.module).preprocess_input

    def prepare(element):
        image = preprocess(tf.cast(element["image"], tf.float32))
        if head == "softmax":
            target = element["label"]
        elif head == "segmentation":
            target = tf.cast(element["mask"], tf.int32)  # void stays 255
        elif head == "multilabel":
            target = multi_hot(element["classes"], element["is_crowd"], element["num_boxes"],
                               num_classes)
        else:
            target = detection_targets(element["boxes"], element["classes"],
                                       element["is_crowd"], element["num_boxes"],
                                       grid=grid, num_classes=num_classes)
        if with_objects:
            objects = {k: element[k] for k in ("boxes", "classes", "is_crowd", "num_boxes")}
            return image, target, objects
        return image, target

    ds = reader.load(os.fspath(data), split, batch_size=batch_size, image_size=image_size,
                     shuffle=train, augment="default" if train else None, seed=seed,
                     repeat=train)
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
