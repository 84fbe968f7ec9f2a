"""Backbones: the `keras.applications` table, weights, feature maps, unfreezing."""

from __future__ import annotations

import os
import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from cocoprep.errors import CocoprepError, InputError, UsageError

DEFAULT_BACKBONE = "inception_v3"


@dataclass(frozen=True)
class Backbone:
    """A `keras.applications` backbone.

    Attributes:
        name: the CLI name (`--backbone`).
        constructor: the class name in `keras.applications`.
        module: the `keras.applications` submodule holding `preprocess_input`.
        native_size: the input size its ImageNet weights were trained at.
        min_size: the smallest input size the architecture accepts.
        feature_layer: the layer whose output (stride about 8) the detection
            head reads.
    """

    name: str
    constructor: str
    module: str
    native_size: int
    min_size: int
    feature_layer: str


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("inception_v3", "InceptionV3", "inception_v3", 299, 75, "mixed2"),
        Backbone("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", 299, 75,
                 "block35_10_ac"),
        Backbone("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, 32, "block_5_add"),
        Backbone("resnet50", "ResNet50", "resnet50", 224, 32, "conv3_block4_out"),
        Backbone("efficientnet_b0", "EfficientNetB0", "efficientnet", 224, 32, "block3b_add"),
    )
}


def backbone_of(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UsageError("--backbone", f"one of {', '.join(BACKBONES)}", name) from None


def keras_cache_dir() -> str:
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


def build_backbone(backbone: Backbone | str, *, image_size: int, weights: str | None,
                   pooling: str | None = "avg"):
    """`keras.applications.<Backbone>(include_top=False, pooling=pooling)`.

    A failed ImageNet download becomes a `CocoprepError` that names
    `--weights none` and the Keras cache directory; a weights file that does not
    fit becomes an `InputError`.
    """
    import keras

    bb = backbone_of(backbone) if isinstance(backbone, str) else backbone
    constructor = getattr(keras.applications, bb.constructor)
    try:
        return constructor(include_top=False, weights=weights, pooling=pooling,
                           input_shape=(image_size, image_size, 3))
    except CocoprepError:
        raise
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        # Keras turns a failed download into a bare Exception("URL fetch failure ...").
        download_failed = (isinstance(e, (OSError, urllib.error.URLError))
                           or "URL fetch failure" in str(e))
        if weights == "imagenet" and download_failed:
            cache = keras_cache_dir()
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


def feature_backbone(backbone: Backbone | str, *, image_size: int, weights: str | None):
    """The backbone cut at its `feature_layer` (stride about 8): a `keras.Model`
    from the image to that layer's feature map, named like the full backbone.

    The full network is built first (so ImageNet weights load as published),
    then cut; only the layers below the cut remain in the model.
    """
    import keras

    bb = backbone_of(backbone) if isinstance(backbone, str) else backbone
    full = build_backbone(bb, image_size=image_size, weights=weights, pooling=None)
    out = full.get_layer(bb.feature_layer).output
    return keras.Model(full.input, out, name=full.name)


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
