"""`smoketrain`: data -> model -> two phases -> verdict -> metrics.json + model.keras."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cocoprep.errors import InputError, UsageError
from cocoprep.train import verdict as _verdict
from cocoprep.train.backbones import (DEFAULT_BACKBONE, Backbone, backbone_layer, backbone_of,
                                      build_backbone, feature_backbone, resolve_weights,
                                      unfreeze_top)
from cocoprep.train.data import make_dataset
from cocoprep.train.device import DevicePlan, choose_device, detect_gpus, dtype_policy, make_strategy
from cocoprep.train.heads import TERMS, build_model, compile_model, inference_model
from cocoprep.train.find import TrainData, find_data
from cocoprep.train.loop import PhaseResult, json_number, train_phase
from cocoprep.train.metrics import evaluate
from cocoprep.train.verdict import MIN_TOTAL_STEPS, RunVerdict

DEFAULT_DATA = "tfrecords"
DEFAULT_RUN_DIR = "smoketrain"
DEFAULT_STEPS = 50
DEFAULT_BATCH_SIZE = 16
DEFAULT_LR = 1e-3
DEFAULT_FINE_TUNE_LAYERS = 30
PHASE2_LR_FACTOR = 0.1
METRICS_NAME = "metrics.json"
MODEL_NAME = "model.keras"
DETECTION_HEADS = ("detection", "multilabel")
# The head layer whose output has the feature map's grid (the report names it).
GRID_LAYERS = {"detection": "box", "segmentation": "logits"}
HEAD_WORDS = {"softmax": "softmax head", "multilabel": "sigmoid multi-label head",
              "detection": "CenterNet detection head",
              "segmentation": "segmentation head (pixel softmax)"}


@dataclass(frozen=True)
class SmokeTrainResult:
    passed: bool
    verdict: RunVerdict
    metrics: dict[str, Any]
    run_dir: Path
    metrics_path: Path
    model_path: Path
    phases: tuple[PhaseResult, ...] = field(default=())
    model: Any = field(default=None, repr=False)


def _validate_options(*, bb: Backbone, steps: int, batch_size: int, image_size: int,
                      fine_tune_layers: int, lr: float) -> None:
    if steps < 1:
        raise UsageError("--steps", "a positive number of steps per phase", steps)
    phases = 2 if fine_tune_layers > 0 else 1
    if steps * phases < MIN_TOTAL_STEPS:
        # Name --fine-tune-layers only when the user set it to 0 (the default is 30).
        how = (f"--steps {-(-MIN_TOTAL_STEPS // 2)} or more (each of the 2 phases runs "
               "--steps steps)" if phases == 2 else
               f"--steps {MIN_TOTAL_STEPS} or more (--fine-tune-layers 0 leaves one phase)")
        raise UsageError("--steps", f"at least {MIN_TOTAL_STEPS} steps in all to judge the "
                                    f"loss trend: {how}", steps)
    if batch_size < 1:
        raise UsageError("--batch-size", "a positive batch size", batch_size)
    if image_size < bb.min_size:
        raise UsageError("--image-size", f"at least {bb.min_size} px for {bb.name}", image_size)
    if fine_tune_layers < 0:
        raise UsageError("--fine-tune-layers", "0 (no phase 2) or a positive layer count",
                         fine_tune_layers)
    if not (math.isfinite(lr) and lr >= 0):
        raise UsageError("--lr", "a finite learning rate >= 0", lr)


def _choose_head(task: str, head: str | None) -> str:
    if task == "segmentation":
        if head is not None:
            raise UsageError("--head", "no --head for segmentation records (they get the "
                                       "segmentation head)", head)
        return "segmentation"
    if task == "classification":
        if head is not None:
            raise UsageError("--head", "no --head for classification records (they get the "
                                       "softmax head)", head)
        return "softmax"
    head = head or "detection"
    if head not in DETECTION_HEADS:
        raise UsageError("--head", " or ".join(DETECTION_HEADS), head)
    return head


def _build(bb: Backbone, d: TrainData, head: str, *, size: int, weights, lr: float, xla: bool):
    if head in ("detection", "segmentation"):
        base = feature_backbone(bb, image_size=size, weights=weights)
    else:
        base = build_backbone(bb, image_size=size, weights=weights)
    model = build_model(base, num_classes=d.num_classes, head=head)
    compile_model(model, head=head, learning_rate=lr, xla=xla)
    return model


def _judge(head: str, phases: list[PhaseResult]) -> RunVerdict:
    """Every head: the total loss over the whole run. Detection also: the box term
    and the heatmap term over the whole run. Loss falling is no proof that boxes
    are right (size and offset regress towards the mean even on boxes moved at
    random); the heatmap learning where the centres are is what needs the boxes to
    match the pixels. (Phase 1's heatmap alone, on frozen features, separates right
    from wrong boxes more sharply, but on the 7-image fixture with random weights
    it falls too slowly in 50 steps to clear 6 SE; its z is in metrics.json.)"""
    def series(term: str) -> list[float]:
        return [v for p in phases for v in (p.terms[term] if term != "loss" else p.losses)]

    checks = [_verdict.judge(series("loss"), term="loss")]
    if head == "segmentation":
        checks.append(_verdict.judge_beats_prior(series("excess"), series("blind")))
    if head == "detection":
        checks.append(_verdict.judge(series("box"), term="box"))
        checks.append(_verdict.judge(series("heatmap"), term="heatmap"))
    return _verdict.combine(checks)


def _throughput(phases: list[PhaseResult], batch_size: int) -> float | None:
    """Steady-state images/s over the phases, first (tracing) step of each excluded."""
    steady = [p for p in phases if p.images_per_s]
    if not steady:
        return None
    if all(p.steps > 1 for p in steady):
        return (sum((p.steps - 1) * batch_size for p in steady)
                / sum((p.steps - 1) * batch_size / p.images_per_s for p in steady))
    return steady[0].images_per_s


def _phase_line(p: PhaseResult, what: str) -> str:
    ips = f"{p.images_per_s:.1f} images/s" if p.images_per_s else "images/s n/a"
    terms = "".join(f", {t} {v[0]:.4f} -> {v[-1]:.4f}" for t, v in p.terms.items())
    return (f"{p.name} ({what}, lr {p.learning_rate:g}): {p.steps} steps, "
            f"loss {p.initial_loss:.4f} -> {p.final_loss:.4f}{terms}, {ips}")


def _val_line(val: dict) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else f"{v}"

    return "val: " + ", ".join(f"{k} {fmt(v)}" for k, v in val.items() if k != "split")


def _run_phases(model, dataset, *, head: str, steps: int, lr: float, fine_tune_layers: int,
                xla: bool, batch_size: int, progress: bool, data: str, say) -> list[PhaseResult]:
    terms = TERMS.get(head, ())
    common = dict(steps=steps, global_batch=batch_size, progress=progress, data=data,
                  terms=terms)
    phases = [train_phase(model, dataset(0), name="phase 1", learning_rate=lr, unfrozen=0,
                          **common)]
    say(_phase_line(phases[0], "head only"))
    if fine_tune_layers > 0:
        unfrozen = unfreeze_top(backbone_layer(model), fine_tune_layers)
        lr2 = lr * PHASE2_LR_FACTOR
        compile_model(model, head=head, learning_rate=lr2, xla=xla)
        phases.append(train_phase(model, dataset(1), name="phase 2", learning_rate=lr2,
                                  unfrozen=unfrozen, **common))
        say(_phase_line(phases[1], f"top {fine_tune_layers} backbone layers, "
                                   f"{unfrozen} with weights"))
    return phases


def _say_setup(say, plan: DevicePlan, d: TrainData) -> None:
    say(f"device: {plan.describe()}, precision {plan.precision}, "
        f"XLA {'on' if plan.xla else 'off'}")
    n_train = f"{d.num_examples} images" if d.num_examples is not None else "a glob"
    say(f"data: {d.path} ({d.task}, {d.num_classes} classes), train split {d.train!r} "
        f"({n_train}), validation split "
        + (repr(d.val) if d.val else "none (no validation split: no validation figures)"))


def _say_throughput(say, images_per_s: float | None, num_phases: int) -> None:
    if images_per_s is None:
        return
    say(f"throughput: {images_per_s:.1f} images/s over both phases "
        f"(first step of each phase, which traces the graph, not counted)"
        if num_phases > 1 else
        f"throughput: {images_per_s:.1f} images/s (first, tracing step not counted)")


def smoketrain(
    data: str | os.PathLike = DEFAULT_DATA,
    run_dir: str | os.PathLike = DEFAULT_RUN_DIR,
    *,
    backbone: str = DEFAULT_BACKBONE,
    weights: str = "imagenet",
    head: str | None = None,
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
        data: a cocoprep output directory (splits picked by
            `cocoprep.splitnames.pick_splits`: the only split, or the train-like
            one and the val-like one) or a shard glob.
        run_dir: where `metrics.json` and `model.keras` are written (created).
        backbone: a key of `BACKBONES`.
        weights: ``imagenet``, ``none`` (random init) or a path to a weights file.
        head: detection records: ``detection`` (default, a CenterNet-style box
            detector) or ``multilabel`` (image-level sigmoid per class);
            classification records always get ``softmax`` (leave it None).
        steps: training steps in each phase.
        batch_size: the global batch size (split over the replicas).
        image_size: square input size; default the backbone's native size.
        fine_tune_layers: top backbone layers unfrozen in phase 2 (0: no phase 2).
        lr: phase-1 learning rate (Adam); phase 2 uses a tenth of it.
        seed: weight init, data order and augmentation.
        plan: override the device plan (tests); default `choose_device(detect_gpus())`.
        log: called with each line of the report (device, precision, losses...).
        progress: show a progress bar per phase.

    Raises `NothingToProve` (exit 1) before training when the train split holds no
    objects (detection) or a single class (classification). The saved model takes
    images already passed through the backbone's
    ``keras.applications.<module>.preprocess_input`` (named in metrics.json); turn
    the detection model's output into boxes with `cocoprep.train.decode`.
    """
    say = log or (lambda _line: None)
    setup = _prepare(data, run_dir, backbone=backbone, weights=weights, head=head, steps=steps,
                     batch_size=batch_size, image_size=image_size,
                     fine_tune_layers=fine_tune_layers, lr=lr, train_split=train_split,
                     val_split=val_split)
    plan = plan or choose_device(detect_gpus())
    _say_setup(say, plan, setup.d)
    trained = _train(setup, plan, steps=steps, batch_size=batch_size,
                     fine_tune_layers=fine_tune_layers, lr=lr, seed=seed, progress=progress,
                     say=say)
    verdict = _judge(setup.head, trained.phases)
    images_per_s = _throughput(trained.phases, batch_size)
    _say_throughput(say, images_per_s, len(trained.phases))
    metrics = _metrics(verdict, setup, trained, plan=plan, batch_size=batch_size, seed=seed,
                       steps=steps, fine_tune_layers=fine_tune_layers,
                       images_per_s=images_per_s)
    out = Path(run_dir)
    metrics_path, model_path = _write(out, metrics, trained.model)
    say(f"{metrics['result']}: {verdict.reason}")
    return SmokeTrainResult(verdict.passed, verdict, metrics, out, metrics_path, model_path,
                            tuple(trained.phases), trained.model)


@dataclass(frozen=True)
class _Setup:
    """Everything decided before Keras is imported: options checked, data found."""

    bb: Backbone
    size: int
    weights: str | None  # for keras.applications: "imagenet", None or a file
    weights_label: str  # as metrics.json and the report name them
    d: TrainData
    head: str


@dataclass(frozen=True)
class _Trained:
    model: Any
    phases: list[PhaseResult]
    val: dict | None
    grid: int | None


def _prepare(data, run_dir, *, backbone: str, weights: str, head: str | None, steps: int,
             batch_size: int, image_size: int | None, fine_tune_layers: int, lr: float,
             train_split: str | None, val_split: str | None) -> _Setup:
    """Check the options, the run directory and the data, cheapest first."""
    bb = backbone_of(backbone)
    size = int(image_size) if image_size is not None else bb.native_size
    _validate_options(bb=bb, steps=steps, batch_size=batch_size, image_size=size,
                      fine_tune_layers=fine_tune_layers, lr=lr)
    weights_arg = resolve_weights(weights)
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        # Found now, not after the training when model.keras is saved.
        raise InputError(run_dir, "a run directory for metrics.json and model.keras",
                         "a file")
    if head is not None and head not in DETECTION_HEADS:
        raise UsageError("--head", " or ".join(DETECTION_HEADS), head)
    d = find_data(os.fspath(data), train_split, val_split)
    label = weights if weights_arg is None or weights_arg == "imagenet" else weights_arg
    return _Setup(bb, size, weights_arg, label, d, _choose_head(d.task, head))


def _train(s: _Setup, plan: DevicePlan, *, steps: int, batch_size: int,
           fine_tune_layers: int, lr: float, seed: int, progress: bool, say) -> _Trained:
    """Build the model, run the phases, evaluate on the validation split."""
    import keras

    keras.utils.set_random_seed(seed)
    with dtype_policy(plan.precision), make_strategy(plan).scope():
        model = _build(s.bb, s.d, s.head, size=s.size, weights=s.weights, lr=lr, xla=plan.xla)
        grid = (int(model.get_layer(GRID_LAYERS[s.head]).output.shape[1])
                if s.head in GRID_LAYERS else None)
        where = f" on {s.bb.feature_layer} ({grid}x{grid} cells)" if grid else ""
        say(f"model: {s.bb.name}, weights {s.weights_label}, {s.size}x{s.size} px, "
            f"batch {batch_size}, {HEAD_WORDS[s.head]}{where}")

        def dataset(split: str, *, train: bool, seed_: int, with_objects: bool = False):
            return make_dataset(s.d.path, split, head=s.head, num_classes=s.d.num_classes,
                                backbone=s.bb, batch_size=batch_size, image_size=s.size,
                                train=train, seed=seed_, grid=grid, with_objects=with_objects)

        phases = _run_phases(
            model, lambda i: dataset(s.d.train, train=True, seed_=seed + i), head=s.head,
            steps=steps, lr=lr, fine_tune_layers=fine_tune_layers, xla=plan.xla,
            batch_size=batch_size, progress=progress, data=s.d.path, say=say)
        val = None
        if s.d.val is not None:
            val = evaluate(model, dataset(s.d.val, train=False, seed_=seed,
                                          with_objects=s.head == "detection"),
                           head=s.head, num_classes=s.d.num_classes, image_size=s.size)
            val["split"] = s.d.val
            say(_val_line(val))
    return _Trained(model, phases, val, grid)


def _metrics(verdict: RunVerdict, s: _Setup, trained: _Trained, *, plan: DevicePlan,
             batch_size: int, seed: int, steps: int, fine_tune_layers: int,
             images_per_s: float | None) -> dict:
    phases, head, bb, d, num = trained.phases, s.head, s.bb, s.d, json_number
    losses = [v for p in phases for v in p.losses]
    return {
        "result": "PASS" if verdict.passed else "FAIL",
        "reason": verdict.reason,
        "device": plan.describe(),
        "devices": list(plan.devices),
        "num_replicas": plan.num_replicas,
        "precision": plan.precision,
        "xla": plan.xla,
        "backbone": bb.name,
        "weights": s.weights_label,
        "head": head,
        "feature_layer": bb.feature_layer if head in ("detection", "segmentation") else None,
        "grid": trained.grid,
        "preprocess_input": f"keras.applications.{bb.module}.preprocess_input",
        "image_size": s.size,
        "batch_size": batch_size,
        "task": d.task,
        "num_classes": d.num_classes,
        "class_names": d.class_names,
        "data": d.path,
        "train_split": d.train,
        "val_split": d.val,
        "seed": seed,
        "steps": len(losses),
        "steps_per_phase": steps,
        "fine_tune_layers": fine_tune_layers,
        "phases": [p.to_json() for p in phases],
        "images_per_s": None if images_per_s is None else round(images_per_s, 2),
        "images_seen": len(losses) * batch_size,
        "judgement": {
            "checks": [{"term": c.term, "passed": c.passed, "window_steps": c.window,
                        "first_mean": num(c.first_mean), "last_mean": num(c.last_mean),
                        "noise_sigma": num(c.noise), "required_drop": num(c.required_drop),
                        "z": num(c.z)} for c in verdict.checks],
            "phase1_heatmap_z": (num(_verdict.judge(phases[0].terms["heatmap"]).z)
                                 if head == "detection" else None),
            "noise_sigmas": _verdict.NOISE_SIGMAS,
            "min_relative_drop": _verdict.MIN_RELATIVE_DROP,
            **({"excess_sigmas": _verdict.EXCESS_SIGMAS,
                "min_blind_share": _verdict.MIN_BLIND_SHARE}
               if head == "segmentation" else {}),
        },
        "val": trained.val,
        "losses": [num(v) for v in losses],
        "term_losses": {t: [num(v) for p in phases for v in p.terms[t]]
                        for t in (phases[0].terms if phases else {})},
    }


def _write(out: Path, metrics: dict, model) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / METRICS_NAME
    model_path = out / MODEL_NAME
    inference_model(model).save(model_path)
    tmp = metrics_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, metrics_path)
    return metrics_path, model_path
