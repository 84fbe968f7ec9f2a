"""Smoke-train: prove that records decode, labels line up and a real backbone learns.

`smoketrain(...)` follows the usual Keras transfer-learning recipe on the records
that `cocoprep convert` / `cocoprep split` wrote:

* a `keras.applications` backbone (InceptionV3 by default) without its top, global
  average pooling, and a new head: softmax over the classes for classification
  records, one sigmoid per label-map class for detection records (an image's
  targets are the classes of its non-crowd objects);
* phase 1 trains the head with the backbone frozen; phase 2 unfreezes the top K
  backbone layers (BatchNormalization layers stay frozen and in inference mode)
  at a 10x lower learning rate;
* input comes from `cocoprep.load` with the task's default augmentation, then the
  backbone's own `preprocess_input`;
* GPUs: `MirroredStrategy` over all of them, `mixed_float16` (with loss scaling)
  and XLA; CPU: float32.

The run PASSes when every step's loss is finite and the mean loss of the last
10% of steps is clearly below that of the first 10% (see `judge`). TensorFlow
and Keras are imported inside the functions that need them, so importing this
module (and starting the CLI) stays fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from cocoprep.errors import CocoprepError, InputError, UsageError

DEFAULT_DATA = "tfrecords"
DEFAULT_RUN_DIR = "smoketrain"
DEFAULT_BACKBONE = "inception_v3"
DEFAULT_STEPS = 50
DEFAULT_BATCH_SIZE = 16
DEFAULT_LR = 1e-3
DEFAULT_FINE_TUNE_LAYERS = 30
PHASE2_LR_FACTOR = 0.1
METRICS_NAME = "metrics.json"
MODEL_NAME = "model.keras"

# The PASS rule (see `judge`).
WINDOW_FRACTION = 0.1
NOISE_SIGMAS = 6.0
MIN_RELATIVE_DROP = 0.1
MIN_TOTAL_STEPS = 20  # windows of at least 2 steps



# ------------------------------------------------------------------ backbones

@dataclass(frozen=True)
class Backbone:
    """A `keras.applications` backbone.

    Attributes:
        name: the CLI name (`--backbone`).
        constructor: the class name in `keras.applications`.
        module: the `keras.applications` submodule holding `preprocess_input`.
        native_size: the input size its ImageNet weights were trained at.
        min_size: the smallest input size the architecture accepts.
    """

    name: str
    constructor: str
    module: str
    native_size: int
    min_size: int


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("inception_v3", "InceptionV3", "inception_v3", 299, 75),
        Backbone("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", 299, 75),
        Backbone("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, 32),
        Backbone("resnet50", "ResNet50", "resnet50", 224, 32),
        Backbone("efficientnet_b0", "EfficientNetB0", "efficientnet", 224, 32),
    )
}


def backbone_of(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UsageError("--backbone", f"one of {', '.join(BACKBONES)}", name) from None


# ------------------------------------------------------------------ device plan

@dataclass(frozen=True)
class DevicePlan:
    """How to place the training: strategy, precision and compilation.

    Attributes:
        device: ``"GPU"`` or ``"CPU"``.
        devices: the device names the strategy mirrors over (empty: the default
            strategy on the default device).
        strategy: ``"mirrored"`` or ``"default"``.
        precision: the Keras dtype policy, ``"mixed_float16"`` or ``"float32"``.
        xla: compile the train step with XLA (`jit_compile=True`).
    """

    device: str
    devices: tuple[str, ...]
    strategy: str
    precision: str
    xla: bool

    @property
    def num_replicas(self) -> int:
        return max(1, len(self.devices)) if self.strategy == "mirrored" else 1

    def describe(self) -> str:
        if self.strategy == "mirrored":
            where = f"{len(self.devices)} x {self.device} (MirroredStrategy)"
        else:
            where = f"{self.device} (default strategy)"
        return where


def choose_device(gpus: Sequence[str]) -> DevicePlan:
    """The device plan for the given GPU device names (a pure function).

    With any GPU: `MirroredStrategy` over all of them, `mixed_float16` and XLA
    (GPUs have fast float16 units; XLA fuses the many small ops of these
    backbones). Without: the default strategy on the CPU in float32 (CPUs gain
    nothing from float16, and XLA's compile time outweighs a short run there).
    """
    gpus = tuple(gpus)
    if gpus:
        return DevicePlan("GPU", gpus, "mirrored", "mixed_float16", True)
    return DevicePlan("CPU", (), "default", "float32", False)


def detect_gpus() -> list[str]:
    """Logical GPU device names TensorFlow sees (e.g. ``/device:GPU:0``)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")]


def make_strategy(plan: DevicePlan):
    import tensorflow as tf

    if plan.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(list(plan.devices))
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set the global Keras dtype policy for the block, then restore it."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


# ------------------------------------------------------------------ PASS / FAIL

@dataclass(frozen=True)
class Verdict:
    """The result of `judge`. `reason` is one sentence for the user."""

    passed: bool
    reason: str
    window: int = 0
    first_mean: float | None = None
    last_mean: float | None = None
    noise: float | None = None
    required_drop: float | None = None


def judge(losses: Sequence[float]) -> Verdict:
    """PASS when every loss is finite and the loss clearly went down.

    `losses` are the per-step training losses of the whole run (both phases in
    order). With k = ceil(10% of the steps), the mean of the first k losses must
    exceed the mean of the last k by more than

        max(NOISE_SIGMAS * sigma * sqrt(2 / k), MIN_RELATIVE_DROP * first mean)

    sigma is the step-to-step noise of the loss, estimated from the whole run by
    von Neumann's successive-difference estimator, sigma^2 = sum((l[i+1] - l[i])^2)
    / (2 (n - 1)): for independent noise E[(l[i+1] - l[i])^2] = 2 sigma^2 whatever
    its distribution, and a downward trend only adds to it (the rule gets stricter,
    never looser). sigma * sqrt(2 / k) is the standard error of the difference of
    two k-step means, and the margin is 6 of them (NOISE_SIGMAS). Why 6: in
    100,000 simulated runs per case of a loss that only fluctuates (Gaussian,
    exponential, log-normal, Student-t with 2 and 3 degrees of freedom; 20 and 60
    steps) at most 2 passed, where 4 standard errors let up to 0.1% through and
    the median-based estimate up to 1.2% (skewed noise, few steps). Runs need at
    least MIN_TOTAL_STEPS = 20 steps: with 1-step windows a noisy but sorted-looking
    sequence passes about once in 2,000. Learning
    runs on the fixtures clear it 8-15 times over (see tests). The relative floor
    asks for a drop that matters (10% of the starting loss) and covers noise-free
    runs (identical batches), where sigma is 0.
    """
    values = [float(v) for v in losses]
    n = len(values)
    if n < 2:
        return Verdict(False, f"only {n} step(s): too few to judge")
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        return Verdict(False, f"loss is not finite at step {bad[0] + 1} of {n} "
                              f"({values[bad[0]]}); {len(bad)} non-finite step(s)")
    k = max(1, math.ceil(WINDOW_FRACTION * n))
    k = min(k, n // 2)
    first = sum(values[:k]) / k
    last = sum(values[-k:]) / k
    sigma = math.sqrt(sum((b - a) ** 2 for a, b in zip(values, values[1:])) / (2 * (n - 1)))
    se = sigma * math.sqrt(2 / k)
    required = max(NOISE_SIGMAS * se, MIN_RELATIVE_DROP * abs(first))
    drop = first - last
    what = (f"mean loss of the last {k} step(s) {last:.4g} vs the first {k} {first:.4g}: "
            f"drop {drop:.4g}, needed > {required:.4g} "
            f"(the larger of {NOISE_SIGMAS:g} x noise SE {se:.3g} and "
            f"{MIN_RELATIVE_DROP:.0%} of the first)")
    return Verdict(drop > required, what, k, first, last, sigma, required)


# ------------------------------------------------------------------ targets

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


# ------------------------------------------------------------------ model

def _keras_cache_dir() -> str:
    """Where Keras caches downloaded weights (`$KERAS_HOME/models`, default ~/.keras/models)."""
    try:
        from keras.src.backend import config as _config

        home = _config.keras_home()
    except Exception:  # private API moved: fall back to its documented rule
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def resolve_weights(weights: str) -> str | None:
    """`imagenet` -> "imagenet", `none` -> None, anything else must be a file."""
    if weights.lower() == "imagenet":
        return "imagenet"
    if weights.lower() == "none":
        return None
    path = Path(weights)
    if not path.is_file():
        raise InputError(weights, "--weights imagenet, none, or a Keras weights file",
                         "no such file" if not path.exists() else "not a file")
    return str(path)


def build_backbone(backbone: Backbone | str, *, image_size: int, weights: str | None):
    """`keras.applications.<Backbone>(include_top=False, pooling="avg")`.

    A failed ImageNet download becomes a `CocoprepError` that names
    `--weights none` and the Keras cache directory; a weights file that does not
    fit becomes an `InputError`.
    """
    import keras

    bb = backbone_of(backbone) if isinstance(backbone, str) else backbone
    constructor = getattr(keras.applications, bb.constructor)
    try:
        return constructor(include_top=False, weights=weights, pooling="avg",
                           input_shape=(image_size, image_size, 3))
    except CocoprepError:
        raise
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        # Keras turns a failed download into a bare Exception("URL fetch failure ...").
        download_failed = (isinstance(e, (OSError, urllib.error.URLError))
                           or "URL fetch failure" in str(e))
        if weights == "imagenet" and download_failed:
            cache = _keras_cache_dir()
            m = re.search(r"https?://\S+?/([^/\s:]+\.h5)", str(e))
            file_hint = f" ({m.group(1)})" if m else ""
            raise CocoprepError(
                f"cannot get the ImageNet weights for {bb.name}: {first_line}. "
                f"Offline? Copy the weights file{file_hint} into the Keras cache "
                f"{cache}, pass a local file with --weights PATH, "
                f"or train from scratch with --weights none"
            ) from None
        if weights == "imagenet":
            raise CocoprepError(f"cannot build {bb.name} with ImageNet weights at "
                                f"{image_size} px: {first_line}") from None
        if weights is not None:
            raise InputError(
                weights, f"a Keras weights file for {bb.name} without its top "
                         f"(e.g. *_notop.h5, *.weights.h5) at {image_size} px", first_line
            ) from None
        raise


def _feature_norm():
    import keras

    # No learned scale/offset: a fixed per-image rescaling. The tiny epsilon matters
    # for randomly initialised backbones, whose pooled features are ~1e-4.
    return keras.layers.LayerNormalization(epsilon=1e-12, center=False, scale=False,
                                           dtype="float32", name="head_layer_norm")


def build_model(base, *, num_classes: int, task: str):
    """The frozen backbone `base` + a new head, under the current dtype policy.

    Head: a parameter-free LayerNormalization, then a float32
    `Dense(num_classes)`: softmax for classification, sigmoid for detection's
    multi-label targets. The normalization makes the head's input scale-free: the
    pooled features of a randomly initialised backbone (`--weights none`, BatchNorm
    in inference mode) are ~1e-4 and a plain Dense head cannot learn from them in a
    few hundred steps; for pretrained features it is a harmless rescaling. Keeping
    the head float32 keeps the loss exact under mixed precision. The backbone is
    called with `training=False`, so its BatchNormalization layers stay in
    inference mode even when unfrozen in phase 2.
    """
    import keras

    base.trainable = False
    size = tuple(base.input_shape[1:])
    inputs = keras.Input(size, name="image")
    x = base(inputs, training=False)
    x = _feature_norm()(x)
    activation = "softmax" if task == "classification" else "sigmoid"
    outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32",
                                 name="head")(x)
    return keras.Model(inputs, outputs, name=f"smoketrain_{base.name}")


def backbone_layer(model):
    """The backbone sub-model inside a `build_model` model."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError("no backbone sub-model found")


def unfreeze_top(base, k: int) -> int:
    """Make the top `k` layers of `base` trainable, except BatchNormalization.

    Returns how many of the unfrozen layers hold trainable weights.
    """
    import keras

    base.trainable = True
    layers = base.layers
    cut = max(0, len(layers) - k)
    unfrozen = 0
    for i, layer in enumerate(layers):
        trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        if trainable and layer.weights:
            unfrozen += 1
    return unfrozen


def _loss_for(task: str):
    import keras

    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy()
    return keras.losses.BinaryCrossentropy()


def compile_model(model, *, task: str, learning_rate: float, xla: bool) -> None:
    """Adam + the task's loss. Under `mixed_float16` Keras wraps the optimizer in a
    `LossScaleOptimizer` (dynamic loss scaling) by itself."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=_loss_for(task),
                  jit_compile=bool(xla))


# ------------------------------------------------------------------ training

def step_recorder(total: int = 0, desc: str = "", progress: bool = False):
    """A Keras callback recording every step's own loss (`.losses`) and end time
    (`.times`), with an optional tqdm bar.

    Keras logs the running mean since the epoch began; resetting the metrics
    before each step makes the logged value that step's loss.
    """
    import keras

    class StepRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses: list[float] = []
            self.times: list[float] = []
            self._bar = None
            if progress:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="step", leave=False)

        def on_train_batch_begin(self, batch, logs=None):
            self.model.reset_metrics()

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float((logs or {})["loss"]))
            self.times.append(time.perf_counter())
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(loss=f"{self.losses[-1]:.4f}")

        def on_train_end(self, logs=None):
            if self._bar is not None:
                self._bar.close()

    return StepRecorder()


@dataclass(frozen=True)
class PhaseResult:
    name: str
    steps: int
    learning_rate: float
    unfrozen_layers: int
    losses: tuple[float, ...]
    seconds: float
    images_per_s: float | None

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    def to_json(self) -> dict:
        return {
            "name": self.name, "steps": self.steps, "learning_rate": self.learning_rate,
            "unfrozen_backbone_layers": self.unfrozen_layers,
            "initial_loss": _num(self.initial_loss), "final_loss": _num(self.final_loss),
            "seconds": round(self.seconds, 3),
            "images_per_s": None if self.images_per_s is None else round(self.images_per_s, 2),
        }


@dataclass(frozen=True)
class SmokeTrainResult:
    passed: bool
    verdict: Verdict
    metrics: dict[str, Any]
    run_dir: Path
    metrics_path: Path
    model_path: Path
    phases: tuple[PhaseResult, ...] = field(default=())
    model: Any = field(default=None, repr=False)


def _num(v: float | None):
    """JSON-safe float (NaN/inf become strings, which json.dumps would reject strictly)."""
    if v is None:
        return None
    return v if math.isfinite(v) else str(v)


def _train_phase(model, dataset, *, name: str, steps: int, learning_rate: float,
                 unfrozen: int, global_batch: int, progress: bool,
                 data: str = "DATA") -> PhaseResult:
    import tensorflow as tf

    recorder = step_recorder(steps, name, progress)
    start = time.perf_counter()
    verify_hint = f"run `cocoprep verify {data}` to find the damaged file and record"
    try:
        # shuffle=False: the dataset is already shuffled (seeded) by cocoprep.load.
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[recorder],
                  shuffle=False)
    except tf.errors.DataLossError as e:
        # TensorFlow's message ("corrupted record at 12") names no file.
        text = str(getattr(e, "message", e))
        found = re.search(r"corrupted record at \d+|truncated record at \d+", text)
        what = found.group(0) if found else "a damaged record"
        raise InputError(data, "readable training records",
                         f"{what} in a shard ({verify_hint})") from None
    if not recorder.losses:
        raise InputError(data, "training records to read",
                         f"not one batch in {name} (the shards hold fewer records than "
                         f"manifest.json counts; {verify_hint})")
    seconds = time.perf_counter() - start
    times = recorder.times
    # The first step includes tracing/compilation; time the steady state after it.
    if len(times) >= 2 and times[-1] > times[0]:
        ips = (len(times) - 1) * global_batch / (times[-1] - times[0])
    else:
        ips = len(times) * global_batch / seconds if seconds > 0 else None
    return PhaseResult(name, steps, learning_rate, unfrozen, tuple(recorder.losses),
                       seconds, ips)


def _pick_splits(data: str, train_split: str | None, val_split: str | None
                 ) -> tuple[str, str | None, Any]:
    """The train and validation split names of a cocoprep output directory
    (the shared rule of `cocoprep.splitnames.pick_splits`)."""
    from cocoprep.manifest import Manifest
    from cocoprep.splitnames import pick_splits

    manifest = Manifest.read(data)
    counts = {n: s.num_examples for n, s in manifest.splits.items()}
    choice = pick_splits(list(manifest.splits), counts=counts, train=train_split,
                         val=val_split, where=str(data))
    return choice.train, choice.val, manifest


def _auc(y_true, scores) -> float | None:
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


def _validate_options(*, bb: Backbone, steps: int, batch_size: int, image_size: int,
                      fine_tune_layers: int, lr: float) -> None:
    if steps < 1:
        raise UsageError("--steps", "a positive number of steps per phase", steps)
    total = steps * (2 if fine_tune_layers > 0 else 1)
    if total < MIN_TOTAL_STEPS:
        raise UsageError(
            "--steps", f"at least {MIN_TOTAL_STEPS} steps in all to judge the loss trend "
                       f"(with --fine-tune-layers 0 there is one phase)", steps)
    if batch_size < 1:
        raise UsageError("--batch-size", "a positive batch size", batch_size)
    if image_size < bb.min_size:
        raise UsageError("--image-size", f"at least {bb.min_size} px for {bb.name}", image_size)
    if fine_tune_layers < 0:
        raise UsageError("--fine-tune-layers", "0 (no phase 2) or a positive layer count",
                         fine_tune_layers)
    if not (math.isfinite(lr) and lr >= 0):
        raise UsageError("--lr", "a finite learning rate >= 0", lr)


def make_dataset(data: str | os.PathLike, split: str, *, task: str, num_classes: int,
                 backbone: Backbone | str, batch_size: int, image_size: int, train: bool,
                 seed: int = 0):
    """`(images, targets)` batches as the smoke-train feeds them to the model.

    `cocoprep.load` (train: shuffled, default augmentation, repeated; otherwise
    stored order, no augmentation, one pass), then the backbone's
    `preprocess_input`. Targets: the 0-based label (classification) or the
    multi-hot vector of non-crowd object classes (detection).
    """
    import keras
    import tensorflow as tf

    from cocoprep import reader

    bb = backbone_of(backbone) if isinstance(backbone, str) else backbone
    preprocess = getattr(keras.applications, bb.module).preprocess_input

    def prepare(element):
        image = preprocess(tf.cast(element["image"], tf.float32))
        if task == "classification":
            target = element["label"]
        else:
            target = multi_hot(element["classes"], element["is_crowd"], element["num_boxes"],
                               num_classes)
        return image, target

    ds = reader.load(os.fspath(data), split, batch_size=batch_size, image_size=image_size,
                     shuffle=train, augment="default" if train else None, seed=seed,
                     repeat=train)
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def smoketrain(
    data: str | os.PathLike = DEFAULT_DATA,
    run_dir: str | os.PathLike = DEFAULT_RUN_DIR,
    *,
    backbone: str = DEFAULT_BACKBONE,
    weights: str = "imagenet",
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    image_size: int | None = None,
    fine_tune_layers: int = DEFAULT_FINE_TUNE_LAYERS,
    lr: float = DEFAULT_LR,
    seed: int = 0,
    train_split: str | None = None,
    val_split: str | None = None,
    plan: DevicePlan | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> SmokeTrainResult:
    """Fine-tune a backbone on the records in `data` and judge whether it learns.

    Args:
        data: a cocoprep output directory (train split: ``train``, or the one
            split named ``train*``; validation: ``val``/``validation``/``dev`` or
            one ``val*`` split, when present).
        run_dir: where `metrics.json` and `model.keras` are written (created).
        backbone: a key of `BACKBONES`.
        weights: ``imagenet``, ``none`` (random init) or a path to a weights file.
        steps: training steps in each phase.
        batch_size: the global batch size (split over the replicas).
        image_size: square input size; default the backbone's native size.
        fine_tune_layers: top backbone layers unfrozen in phase 2 (0: no phase 2).
        lr: phase-1 learning rate (Adam); phase 2 uses a tenth of it.
        seed: weight init, data order and augmentation.
        plan: override the device plan (tests); default `choose_device(detect_gpus())`.
        log: called with each line of the report (device, precision, losses...).
        progress: show a progress bar per phase.

    The saved model takes images already passed through the backbone's
    ``keras.applications.<module>.preprocess_input`` (recorded in metrics.json).
    """
    say = log or (lambda _line: None)
    bb = backbone_of(backbone)
    size = int(image_size) if image_size is not None else bb.native_size
    _validate_options(bb=bb, steps=steps, batch_size=batch_size, image_size=size,
                      fine_tune_layers=fine_tune_layers, lr=lr)
    data = os.fspath(data)
    weights_arg = resolve_weights(weights)
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        # Found now, not after the training when model.keras is saved.
        raise InputError(run_dir, "a run directory for metrics.json and model.keras",
                         "a file")
    from cocoprep import reader

    if Path(data).is_dir():
        train_name, val_name, _ = _pick_splits(data, train_split, val_split)
    elif not Path(data).exists() and not any(c in data for c in "*?["):
        raise InputError(data, "a directory written by `cocoprep convert` or `cocoprep split` "
                               "(run one of them first, or pass DATA)", "nothing at that path")
    else:
        train_name, val_name = train_split or "train", None
    info = reader.describe(data, train_name)
    if info.num_classes is None:
        raise InputError(data, "a label map (label_map.pbtxt or labels.txt) beside the shards",
                         "none")
    if info.num_examples == 0:
        raise InputError(data, f"examples in split {train_name!r}", "0")
    num_classes = info.num_classes
    task = info.task

    import keras

    plan = plan or choose_device(detect_gpus())
    say(f"device: {plan.describe()}, precision {plan.precision}, "
        f"XLA {'on' if plan.xla else 'off'}")
    n_train = f"{info.num_examples} images" if info.num_examples is not None else "a glob"
    say(f"data: {data} ({task}, {num_classes} classes), train split {train_name!r} "
        f"({n_train}), validation split "
        + (repr(val_name) if val_name else "none"))
    weights_label = weights if weights_arg is None or weights_arg == "imagenet" else weights_arg
    say(f"model: {bb.name}, weights {weights_label}, {size}x{size} px, batch {batch_size}, "
        f"{'softmax' if task == 'classification' else 'sigmoid multi-label'} head")

    def dataset(split: str, *, train: bool, seed_: int):
        return make_dataset(data, split, task=task, num_classes=num_classes, backbone=bb,
                            batch_size=batch_size, image_size=size, train=train, seed=seed_)

    keras.utils.set_random_seed(seed)
    strategy = make_strategy(plan)
    phases: list[PhaseResult] = []
    with dtype_policy(plan.precision), strategy.scope():
        base = build_backbone(bb, image_size=size, weights=weights_arg)
        model = build_model(base, num_classes=num_classes, task=task)
        compile_model(model, task=task, learning_rate=lr, xla=plan.xla)
        phase1 = _train_phase(model, dataset(train_name, train=True, seed_=seed),
                              name="phase 1", steps=steps, learning_rate=lr, unfrozen=0,
                              global_batch=batch_size, progress=progress, data=data)
        phases.append(phase1)
        say(_phase_line(phase1, "head only"))
        if fine_tune_layers > 0:
            unfrozen = unfreeze_top(backbone_layer(model), fine_tune_layers)
            lr2 = lr * PHASE2_LR_FACTOR
            compile_model(model, task=task, learning_rate=lr2, xla=plan.xla)
            phase2 = _train_phase(model, dataset(train_name, train=True, seed_=seed + 1),
                                  name="phase 2", steps=steps, learning_rate=lr2,
                                  unfrozen=unfrozen, global_batch=batch_size,
                                  progress=progress, data=data)
            phases.append(phase2)
            say(_phase_line(phase2, f"top {fine_tune_layers} backbone layers, "
                                    f"{unfrozen} with weights"))

        val = None
        if val_name is not None:
            val = _evaluate(model, dataset(val_name, train=False, seed_=seed), task)
            val["split"] = val_name
            say("val: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in val.items() if k != "split"))

    losses = [v for p in phases for v in p.losses]
    verdict = judge(losses)
    total_images = sum(len(p.losses) for p in phases) * batch_size
    steady = [p for p in phases if p.images_per_s]
    # Overall steady-state throughput: images over time, first (tracing) step of each
    # phase excluded, as in the per-phase figures.
    images_per_s = (sum((p.steps - 1) * batch_size for p in steady)
                    / sum((p.steps - 1) * batch_size / p.images_per_s for p in steady)
                    if steady and all(p.steps > 1 for p in steady) else
                    (steady[0].images_per_s if steady else None))
    if images_per_s is not None:
        say(f"throughput: {images_per_s:.1f} images/s over both phases "
            f"(first step of each phase, which traces the graph, not counted)"
            if len(phases) > 1 else
            f"throughput: {images_per_s:.1f} images/s (first, tracing step not counted)")
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "result": "PASS" if verdict.passed else "FAIL",
        "reason": verdict.reason,
        "device": plan.describe(),
        "devices": list(plan.devices),
        "num_replicas": plan.num_replicas,
        "precision": plan.precision,
        "xla": plan.xla,
        "backbone": bb.name,
        "weights": weights_label,
        "preprocess_input": f"keras.applications.{bb.module}.preprocess_input",
        "image_size": size,
        "batch_size": batch_size,
        "task": task,
        "num_classes": num_classes,
        "class_names": info.class_names,
        "data": data,
        "train_split": train_name,
        "val_split": val_name,
        "seed": seed,
        "steps": len(losses),
        "steps_per_phase": steps,
        "fine_tune_layers": fine_tune_layers,
        "phases": [p.to_json() for p in phases],
        "images_per_s": None if images_per_s is None else round(images_per_s, 2),
        "images_seen": total_images,
        "judgement": {
            "window_steps": verdict.window,
            "first_mean_loss": _num(verdict.first_mean),
            "last_mean_loss": _num(verdict.last_mean),
            "noise_sigma": _num(verdict.noise),
            "required_drop": _num(verdict.required_drop),
            "noise_sigmas": NOISE_SIGMAS,
            "min_relative_drop": MIN_RELATIVE_DROP,
        },
        "val": val,
        "losses": [_num(v) for v in losses],
    }
    metrics_path = out / METRICS_NAME
    model_path = out / MODEL_NAME
    model.save(model_path)
    tmp = metrics_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, metrics_path)
    return SmokeTrainResult(verdict.passed, verdict, metrics, out, metrics_path, model_path,
                            tuple(phases), model)


def _phase_line(p: PhaseResult, what: str) -> str:
    ips = f"{p.images_per_s:.1f} images/s" if p.images_per_s else "images/s n/a"
    return (f"{p.name} ({what}, lr {p.learning_rate:g}): {p.steps} steps, "
            f"loss {p.initial_loss:.4f} -> {p.final_loss:.4f}, {ips}")


def _evaluate(model, dataset, task: str) -> dict:
    """Validation loss and accuracy (classification) or micro ROC AUC (detection)."""
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
    if task == "classification":
        out["loss"] = float(-np.mean(np.log(p[np.arange(len(y)), y.astype(int)])))
        out["accuracy"] = float(np.mean(np.argmax(p, axis=-1) == y))
    else:
        out["loss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        out["auc"] = _auc(y, p)
    return out
