"""`smoketrain`: data -> model -> two phases -> verdict -> metrics.json + model.keras."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cocoprep.errors import InputError, NothingToProve, UsageError
from cocoprep.train import verdict as _verdict
from cocoprep.train.backbones import (DEFAULT_BACKBONE, Backbone, backbone_layer, backbone_of,
                                      build_backbone, feature_backbone, resolve_weights,
                                      unfreeze_top)
from cocoprep.train.data import make_dataset
from cocoprep.train.device import DevicePlan, choose_device, detect_gpus, dtype_policy, make_strategy
from cocoprep.train.heads import TERMS, build_model, compile_model, inference_model
from cocoprep.train.loop import PhaseResult, _num, train_phase
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
HEAD_WORDS = {"softmax": "softmax head", "multilabel": "sigmoid multi-label head",
              "detection": "CenterNet detection head"}


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


@dataclass(frozen=True)
class _Data:
    """What the run trains on, found before anything is built."""

    path: str
    train: str
    val: str | None
    task: str
    num_classes: int
    class_names: list[str] | None
    num_examples: int | None


def _pick_splits(data: str, train_split: str | None, val_split: str | None):
    """The train and validation split names of DATA (the shared rule of
    `cocoprep.splitnames.pick_splits`) and its manifest (None for a shard glob,
    whose split is `train_split` or `train`)."""
    from cocoprep.shards import resolve
    from cocoprep.splitnames import pick_splits

    shards = resolve(data)
    manifest = shards.manifest
    if manifest is None:
        return train_split or "train", None, None
    counts = {n: s.num_examples for n, s in manifest.splits.items()}
    choice = pick_splits(list(manifest.splits), counts=counts, train=train_split,
                         val=val_split, where=str(data))
    return choice.train, choice.val, manifest


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


def _choose_head(task: str, head: str | None) -> str:
    if task == "classification":
        if head is not None:
            raise UsageError("--head", "no --head for classification records (they get the "
                                       "softmax head)", head)
        return "softmax"
    head = head or "detection"
    if head not in DETECTION_HEADS:
        raise UsageError("--head", " or ".join(DETECTION_HEADS), head)
    return head


def _find_data(data: str, train_split: str | None, val_split: str | None) -> _Data:
    from cocoprep import reader

    from cocoprep.shards import is_glob

    if not Path(data).exists() and not is_glob(data):
        raise InputError(data, "a directory written by `cocoprep convert` or `cocoprep split` "
                               "(run one of them first, or pass DATA)", "nothing at that path")
    train_name, val_name, manifest = _pick_splits(data, train_split, val_split)
    info = reader.describe(data, train_name)
    if info.num_classes is None:
        raise InputError(data, "a label map (label_map.pbtxt or labels.txt) beside the shards",
                         "none")
    if info.num_examples == 0:
        raise InputError(data, f"examples in split {train_name!r}", "0")
    if manifest is not None:
        _check_provable(data, train_name, manifest.splits[train_name], info)
    return _Data(data, train_name, val_name, info.task, info.num_classes, info.class_names,
                 info.num_examples)


def _check_provable(data: str, split: str, stats, info) -> None:
    """Refuse data on which no training could show the records are right."""
    if info.task == "detection" and stats.num_objects == 0:
        raise NothingToProve(data, split, f"holds no objects (0 boxes in "
                                          f"{stats.num_examples} images): a detector has "
                                          "nothing to learn and its loss falls to 0 anyway")
    if info.task == "classification":
        present = [c for c, n in stats.class_counts.items() if n > 0]
        if (len(present) if stats.class_counts else info.num_classes) < 2:
            only = f" ({present[0]!r})" if present else ""
            raise NothingToProve(data, split, f"holds a single class{only}: every label is "
                                              "the same, so nothing shows they line up")


def _build(bb: Backbone, d: _Data, head: str, *, size: int, weights, lr: float, xla: bool):
    if head == "detection":
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


def _say_setup(say, plan: DevicePlan, d: _Data) -> None:
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
    if head is not None and head not in DETECTION_HEADS:
        raise UsageError("--head", " or ".join(DETECTION_HEADS), head)
    d = _find_data(data, train_split, val_split)
    head = _choose_head(d.task, head)
    import keras

    plan = plan or choose_device(detect_gpus())
    _say_setup(say, plan, d)
    weights_label = weights if weights_arg is None or weights_arg == "imagenet" else weights_arg
    keras.utils.set_random_seed(seed)
    with dtype_policy(plan.precision), make_strategy(plan).scope():
        model = _build(bb, d, head, size=size, weights=weights_arg, lr=lr, xla=plan.xla)
        grid = int(model.get_layer("box").output.shape[1]) if head == "detection" else None
        where = f" on {bb.feature_layer} ({grid}x{grid} cells)" if grid else ""
        say(f"model: {bb.name}, weights {weights_label}, {size}x{size} px, batch {batch_size}, "
            f"{HEAD_WORDS[head]}{where}")

        def dataset(split: str, *, train: bool, seed_: int, with_objects: bool = False):
            return make_dataset(data, split, head=head, num_classes=d.num_classes, backbone=bb,
                                batch_size=batch_size, image_size=size, train=train,
                                seed=seed_, grid=grid, with_objects=with_objects)

        phases = _run_phases(
            model, lambda i: dataset(d.train, train=True, seed_=seed + i), head=head,
            steps=steps, lr=lr, fine_tune_layers=fine_tune_layers, xla=plan.xla,
            batch_size=batch_size, progress=progress, data=data, say=say)
        val = None
        if d.val is not None:
            val = evaluate(model, dataset(d.val, train=False, seed_=seed,
                                          with_objects=head == "detection"),
                           head=head, num_classes=d.num_classes, image_size=size)
            val["split"] = d.val
            say(_val_line(val))
    verdict = _judge(head, phases)
    images_per_s = _throughput(phases, batch_size)
    _say_throughput(say, images_per_s, len(phases))
    metrics = _metrics(verdict, plan=plan, bb=bb, d=d, head=head, weights=weights_label,
                       size=size, batch_size=batch_size, seed=seed, steps=steps,
                       fine_tune_layers=fine_tune_layers, phases=phases, val=val,
                       images_per_s=images_per_s, grid=grid)
    out = Path(run_dir)
    metrics_path, model_path = _write(out, metrics, model)
    return SmokeTrainResult(verdict.passed, verdict, metrics, out, metrics_path, model_path,
                            tuple(phases), model)


def _metrics(verdict: RunVerdict, *, plan: DevicePlan, bb: Backbone, d: _Data, head: str,
             weights: str, size: int, batch_size: int, seed: int, steps: int,
             fine_tune_layers: int, phases: list[PhaseResult], val: dict | None,
             images_per_s: float | None, grid: int | None) -> dict:
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
        "weights": weights,
        "head": head,
        "feature_layer": bb.feature_layer if head == "detection" else None,
        "grid": grid,
        "preprocess_input": f"keras.applications.{bb.module}.preprocess_input",
        "image_size": size,
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
                        "first_mean": _num(c.first_mean), "last_mean": _num(c.last_mean),
                        "noise_sigma": _num(c.noise), "required_drop": _num(c.required_drop),
                        "z": _num(c.z)} for c in verdict.checks],
            "phase1_heatmap_z": (_num(_verdict.judge(phases[0].terms["heatmap"]).z)
                                 if head == "detection" else None),
            "noise_sigmas": _verdict.NOISE_SIGMAS,
            "min_relative_drop": _verdict.MIN_RELATIVE_DROP,
        },
        "val": val,
        "losses": [_num(v) for v in losses],
        "term_losses": {t: [_num(v) for p in phases for v in p.terms[t]]
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
