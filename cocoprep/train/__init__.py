"""Smoke-train: prove that records decode, labels line up and a real backbone learns.

`smoketrain(...)` follows the usual Keras transfer-learning recipe on the records
that `cocoprep convert` / `cocoprep split` wrote:

* a `keras.applications` backbone (InceptionV3 by default) without its top and a
  new head (`heads`): for detection records a CenterNet-style detector on the
  backbone's stride-8 feature map (`--head detection`, the default; InceptionV3
  `mixed2`) or an image-level sigmoid per class (`--head multilabel`); softmax
  over the classes for classification records; for segmentation records a pixel
  softmax on the same feature map, upsampled to the input, void pixels left out;
* phase 1 trains the head with the backbone frozen; phase 2 unfreezes the top K
  backbone layers (BatchNormalization layers stay frozen and in inference mode)
  at a 10x lower learning rate (`loop`);
* input comes from `cocoprep.load` with the task's default augmentation, then the
  backbone's own `preprocess_input`; detection targets are built in tf.data
  (`data`);
* GPUs: `MirroredStrategy` over all of them, `mixed_float16` (with loss scaling)
  and XLA; CPU: float32 (`device`).

PASS or FAIL is decided by `verdict`; validation figures (mAP@0.5 for the
detector, mean IoU beside the majority-class baseline for the segmenter) by
`metrics`. TensorFlow and Keras are imported inside the functions
that need them, so importing this package (and starting the CLI) stays fast.

Modules: `find` (which records, or the command that writes them), `backbones`,
`heads`, `data`, `device`, `loop`, `verdict`, `metrics`, `run`.
"""

from __future__ import annotations

from cocoprep.train.backbones import (BACKBONES, DEFAULT_BACKBONE, Backbone,
                                      backbone_layer, backbone_of, build_backbone,
                                      feature_backbone, keras_cache_dir, resolve_weights,
                                      unfreeze_top)
from cocoprep.train.data import detection_targets, make_dataset, multi_hot
from cocoprep.train.device import DevicePlan, choose_device, detect_gpus, dtype_policy, make_strategy
from cocoprep.train.find import TrainData, find_data, pick_train_val
from cocoprep.train.heads import (HEADS, Detections, build_model, compile_model, decode,
                                  inference_model)
from cocoprep.train.loop import PhaseResult, json_number, step_recorder
from cocoprep.train.metrics import auc, map50, majority_baseline, mean_iou
from cocoprep.train.run import (DEFAULT_BATCH_SIZE, DEFAULT_DATA, DEFAULT_FINE_TUNE_LAYERS,
                                DEFAULT_LR, DEFAULT_RUN_DIR, DEFAULT_STEPS, DETECTION_HEADS,
                                METRICS_NAME, MODEL_NAME, PHASE2_LR_FACTOR, SmokeTrainResult,
                                smoketrain)
from cocoprep.train.verdict import (MIN_BLIND_SHARE, MIN_TOTAL_STEPS, NOISE_SIGMAS, RunVerdict,
                                    Verdict, combine, detrended_noise, judge, judge_beats_prior)

__all__ = [
    "BACKBONES", "DEFAULT_BACKBONE", "Backbone", "backbone_layer", "backbone_of",
    "build_backbone", "feature_backbone", "keras_cache_dir", "resolve_weights", "unfreeze_top",
    "detection_targets", "make_dataset", "multi_hot",
    "DevicePlan", "choose_device", "detect_gpus", "dtype_policy", "make_strategy",
    "HEADS", "Detections", "build_model", "compile_model", "decode", "inference_model",
    "TrainData", "find_data", "pick_train_val",
    "PhaseResult", "json_number", "step_recorder", "auc", "map50", "mean_iou",
    "majority_baseline",
    "DEFAULT_BATCH_SIZE", "DEFAULT_DATA", "DEFAULT_FINE_TUNE_LAYERS", "DEFAULT_LR",
    "DEFAULT_RUN_DIR", "DEFAULT_STEPS", "DETECTION_HEADS", "METRICS_NAME", "MODEL_NAME",
    "PHASE2_LR_FACTOR", "SmokeTrainResult", "smoketrain",
    "MIN_TOTAL_STEPS", "NOISE_SIGMAS", "RunVerdict", "Verdict", "combine", "detrended_noise",
    "judge", "judge_beats_prior", "MIN_BLIND_SHARE",
]
