"""Heads on a backbone, their losses, and `decode` for the detection head.

Four heads:

* ``softmax`` (classification records): global average pooling, a parameter-free
  LayerNormalization, ``Dense(C, softmax)``;
* ``multilabel`` (detection records, `--head multilabel`): the same with one
  sigmoid per class; an image's targets are its non-crowd objects' classes;
* ``detection`` (detection records, the default): a CenterNet-style head
  (Zhou et al. 2019, "Objects as Points") on the backbone's stride-8 feature map:
  a 3x3 conv (64 channels, ReLU), then 1x1 convs to a per-class centre heatmap
  (sigmoid) and to 4 box channels per cell (height and width in feature-map cells,
  and the centre's sub-cell offset y, x). Losses: the penalty-reduced focal loss
  on the heatmap and L1 on the box channels at object centres.
* ``segmentation`` (segmentation records): on the same stride-8 feature map, a
  3x3 conv (64 channels, ReLU) and a 1x1 conv to per-class logits, bilinearly
  upsampled to the input size, softmax. Loss: pixel cross-entropy over the pixels
  that are not void (`seg_loss`). Logged beside it: `blind_loss`, the loss of the
  best prediction that ignores the pixels (each batch's own class frequencies),
  and `excess_loss`, the model's loss minus that one, which only falls well below
  0 when masks match their pictures.

Outputs are float32 under mixed precision, so the losses are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HEADS = ("detection", "multilabel", "segmentation", "softmax")
HEAD_CHANNELS = 64
# L1 on sizes (in cells, up to the grid size) is weighted down against the offsets
# (0..1), as in CenterNet.
SIZE_WEIGHT = 0.1
# Initial heatmap bias: sigmoid(-2.19) = 0.1, CenterNet's prior, keeps the focal
# loss of the first steps from being dominated by the many empty cells.
HEATMAP_PRIOR_BIAS = -math.log((1 - 0.1) / 0.1)
TERMS = {"detection": ("heatmap", "box"), "segmentation": ("excess", "blind")}


def _feature_norm():
    import keras

    # No learned scale/offset: a fixed per-image rescaling. The tiny epsilon matters
    # for randomly initialised backbones, whose pooled features are ~1e-4.
    return keras.layers.LayerNormalization(epsilon=1e-12, center=False, scale=False,
                                           dtype="float32", name="head_layer_norm")


def build_model(base, *, num_classes: int, head: str):
    """The frozen backbone `base` + a new head, under the current dtype policy.

    `base` is a full backbone without its top (``softmax``/``multilabel``: its
    pooled output is used if it has one) or a `feature_backbone` (``detection``).
    Image heads: a parameter-free LayerNormalization, then a float32 Dense. The
    normalization makes the head's input scale-free: the pooled features of a
    randomly initialised backbone (BatchNorm in inference mode) are ~1e-4 and a
    plain Dense head cannot learn from them in a few hundred steps; for pretrained
    features it is a harmless rescaling. The backbone is called with
    `training=False`, so its BatchNormalization layers stay in inference mode even
    when unfrozen in phase 2. The detection model's outputs are a dict
    ``{"heatmap": [B, H, W, C], "box": [B, H, W, 4]}``.
    """
    import keras

    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    base.trainable = False
    inputs = keras.Input(tuple(base.input_shape[1:]), name="image")
    x = base(inputs, training=False)
    if head == "detection":
        x = keras.layers.Conv2D(HEAD_CHANNELS, 3, padding="same", activation="relu",
                                name="head_conv")(x)
        heatmap = keras.layers.Conv2D(
            num_classes, 1, activation="sigmoid", dtype="float32", name="heatmap",
            bias_initializer=keras.initializers.Constant(HEATMAP_PRIOR_BIAS))(x)
        box = keras.layers.Conv2D(4, 1, dtype="float32", name="box")(x)
        outputs: Any = {"heatmap": heatmap, "box": box}
    elif head == "segmentation":
        # Per-pixel normalization over channels: random-init features are ~1e-2.
        x = _feature_norm()(x)
        x = keras.layers.Conv2D(HEAD_CHANNELS, 3, padding="same", activation="relu",
                                name="head_conv")(x)
        x = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
        size = tuple(base.input_shape[1:3])
        x = keras.layers.Resizing(*size, interpolation="bilinear", dtype="float32",
                                  name="upsample")(x)
        outputs = keras.layers.Softmax(dtype="float32", name="mask")(x)
    else:
        if len(x.shape) == 4:
            x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
        x = _feature_norm()(x)
        activation = "softmax" if head == "softmax" else "sigmoid"
        outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32",
                                     name="head")(x)
    return keras.Model(inputs, outputs, name=f"smoketrain_{base.name}")


def heatmap_focal_loss(y_true, y_pred):
    """CenterNet's penalty-reduced focal loss, per image ``[B]``.

    `y_true` ``[B, H, W, C]``: 1 at object centres, a Gaussian bump below 1 around
    them, 0 elsewhere, -1 where the loss ignores the cell (inside crowd boxes).
    The sum over cells is divided by the image's number of centres (at least 1).
    """
    import tensorflow as tf

    y = tf.cast(y_true, tf.float32)
    p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-4, 1.0 - 1e-4)
    pos = tf.cast(y >= 1.0, tf.float32)
    neg = tf.cast((y >= 0.0) & (y < 1.0), tf.float32)
    pos_loss = -tf.math.log(p) * tf.square(1.0 - p) * pos
    neg_loss = -tf.math.log(1.0 - p) * tf.square(p) * tf.pow(1.0 - tf.maximum(y, 0.0), 4) * neg
    n = tf.maximum(tf.reduce_sum(pos, axis=[1, 2, 3]), 1.0)
    return tf.reduce_sum(pos_loss + neg_loss, axis=[1, 2, 3]) / n


def box_l1_loss(y_true, y_pred):
    """L1 on (height, width) x SIZE_WEIGHT and on the (y, x) offset at object
    centres, per image ``[B]``, divided by the number of centres (at least 1).

    `y_true` ``[B, H, W, 5]``: height, width (cells), offset y, x, and a 0/1 mask
    of the centre cells.
    """
    import tensorflow as tf

    y = tf.cast(y_true, tf.float32)
    p = tf.cast(y_pred, tf.float32)
    mask = y[..., 4:5]
    weights = tf.constant([SIZE_WEIGHT, SIZE_WEIGHT, 1.0, 1.0], tf.float32)
    l1 = tf.reduce_sum(tf.abs(y[..., :4] - p) * weights * mask, axis=[1, 2, 3])
    return l1 / tf.maximum(tf.reduce_sum(mask, axis=[1, 2, 3]), 1.0)


def _pixel_terms(y_true, y_pred):
    """Per image ``[B]``: the cross-entropy summed over the pixels that are not void,
    and their count; and the batch's class histogram ``[C]`` over those pixels."""
    import tensorflow as tf

    from cocoprep.schema import VOID_ID

    labels = tf.cast(y_true, tf.int32)
    valid = labels != VOID_ID
    num_classes = tf.shape(y_pred)[-1]
    safe = tf.where(valid & (labels < num_classes), labels, 0)
    p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0)
    picked = tf.gather(p, safe, batch_dims=3)
    weight = tf.cast(valid, tf.float32)
    ce = tf.reduce_sum(-tf.math.log(picked) * weight, axis=[1, 2])
    counts = tf.reduce_sum(weight, axis=[1, 2])
    # A one-hot sum, not bincount: it compiles under XLA.
    hist = tf.reduce_sum(tf.one_hot(safe, num_classes) * weight[..., None], axis=[0, 1, 2])
    return ce, counts, hist


def seg_loss(y_true, y_pred):
    """Pixel cross-entropy per image ``[B]``, averaged over the image's pixels that
    are not void (an all-void image contributes 0). `y_true` ``[B, H, W]`` class
    ids with `schema.VOID_ID`; `y_pred` ``[B, H, W, C]`` probabilities."""
    import tensorflow as tf

    ce, counts, _ = _pixel_terms(y_true, y_pred)
    return ce / tf.maximum(counts, 1.0)


def _entropy(hist):
    import tensorflow as tf

    freq = hist / tf.maximum(tf.reduce_sum(hist), 1.0)
    return -tf.reduce_sum(tf.where(freq > 0, freq * tf.math.log(tf.maximum(freq, 1e-12)), 0.0))


def blind_loss(y_true, y_pred):
    """The entropy of the batch's class frequencies over its pixels that are not
    void: the pixel cross-entropy of the best prediction that ignores the pixels
    (a scalar, logged per step as a Keras metric)."""
    _, _, hist = _pixel_terms(y_true, y_pred)
    return _entropy(hist)


def excess_loss(y_true, y_pred):
    """The batch's pixel cross-entropy (over all its pixels that are not void)
    minus `blind_loss`: masks that do not match their pictures leave a model near
    or only a little below 0 (it can learn the class frequencies, and memorise
    some of a small set); well below 0 only when it reads the classes off the
    pixels. A scalar (logged per step as a Keras metric)."""
    import tensorflow as tf

    ce, counts, hist = _pixel_terms(y_true, y_pred)
    return tf.reduce_sum(ce) / tf.maximum(tf.reduce_sum(counts), 1.0) - _entropy(hist)


def losses_for(head: str):
    import keras

    if head == "segmentation":
        return seg_loss
    if head == "softmax":
        return keras.losses.SparseCategoricalCrossentropy()
    if head == "multilabel":
        return keras.losses.BinaryCrossentropy()
    return {"heatmap": heatmap_focal_loss, "box": box_l1_loss}


def compile_model(model, *, head: str, learning_rate: float, xla: bool) -> None:
    """Adam + the head's loss(es). Under `mixed_float16` Keras wraps the optimizer in
    a `LossScaleOptimizer` (dynamic loss scaling) by itself."""
    import keras

    metrics = [excess_loss, blind_loss] if head == "segmentation" else None
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses_for(head),
                  metrics=metrics, jit_compile=bool(xla))


def inference_model(model):
    """The same layers and weights without the compiled losses and optimizer: what is
    saved as model.keras, so plain `keras.models.load_model` reloads it."""
    import keras

    names = [layer.name for layer in model.layers]
    if "heatmap" in names and "box" in names:  # keep the dict (`outputs` is a sorted list)
        outputs = {k: model.get_layer(k).output for k in ("heatmap", "box")}
    else:
        outputs = model.outputs[0]
    return keras.Model(model.inputs, outputs, name=model.name)


@dataclass(frozen=True)
class Detections:
    """Decoded detections, best first.

    Attributes:
        boxes: float32 ``[B, K, 4]`` (ymin, xmin, ymax, xmax), normalized to the
            model's input image (0..1), like `cocoprep.load`'s boxes.
        scores: float32 ``[B, K]`` in 0..1.
        classes: int32 ``[B, K]``, 0-based label-map indices (as `load`'s
            ``classes``).
    """

    boxes: Any
    scores: Any
    classes: Any


def decode(outputs, *, max_detections: int = 100) -> Detections:
    """Turn the detection model's output into boxes, scores and classes.

    `outputs` is what the model returns (``model.predict(images)`` of a
    smoke-trained or reloaded model.keras): a dict with ``heatmap``
    ``[B, H, W, C]`` and ``box`` ``[B, H, W, 4]``, or the pair (heatmap, box).
    A cell is a detection of class c when its heatmap score is the largest in its
    3x3 neighbourhood (CenterNet's peak picking instead of NMS); the `max_detections`
    best are kept per image, sorted by score. Its box is centred at (cell + offset)
    with the predicted height and width (cells), scaled to 0..1 and clipped.
    """
    import numpy as np

    if isinstance(outputs, dict):
        heat, box = outputs["heatmap"], outputs["box"]
    else:
        heat, box = outputs
    heat = np.asarray(heat, dtype=np.float32)
    box = np.asarray(box, dtype=np.float32)
    b, h, w, c = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    pooled = np.max([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)],
                    axis=0)
    peaks = np.where(heat >= pooled, heat, 0.0).reshape(b, -1)
    k = min(max_detections, peaks.shape[1])
    order = np.argsort(-peaks, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(peaks, order, axis=1)
    cell, classes = np.divmod(order, c)
    cy, cx = np.divmod(cell, w)
    flat = box.reshape(b, h * w, 4)
    reg = np.take_along_axis(flat, cell[..., None], axis=1)
    y = (cy + reg[..., 2]) / h
    x = (cx + reg[..., 3]) / w
    half_h = np.maximum(reg[..., 0], 0.0) / (2 * h)
    half_w = np.maximum(reg[..., 1], 0.0) / (2 * w)
    boxes = np.clip(np.stack([y - half_h, x - half_w, y + half_h, x + half_w], axis=-1), 0, 1)
    return Detections(boxes.astype(np.float32), scores.astype(np.float32),
                      classes.astype(np.int32))
