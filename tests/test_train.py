"""smoketrain: device plan, PASS/FAIL rule, targets, model building, full CPU runs."""

from __future__ import annotations

import json
import math
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import conftest
from cocoprep import train
from cocoprep.errors import CocoprepError, InputError, UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# Few steps and a tiny InceptionV3 input (75 px is its minimum): a CPU run is seconds.
SMALL = ["--weights", "none", "--image-size", "75", "--steps", "30", "--batch-size", "16"]


def run_cli(*args: str):
    return conftest.run_cli(*args, catch_exceptions=False)  # a traceback fails the test


def _quiet_tree(tmp: Path, command: str, src: Path, out: str | None) -> Path:
    args = [command, str(src), "--quiet", "--workers", "1"]
    if out is not None:
        args += ["-o", out]
    code, text = run_cli(*args)
    assert code == 0, text
    return tmp / "tfrecords" if out is None else Path(out)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split") / "tfrecords"
    return _quiet_tree(out.parent, "split", FIXTURES / "imgs", str(out))


@pytest.fixture(scope="module")
def convert_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("convert") / "tfrecords"
    return _quiet_tree(out.parent, "convert", FIXTURES / "coco", str(out))


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    """The bare command (DATA defaults to ./tfrecords) right after `cocoprep split`."""
    work = tmp_path_factory.mktemp("bare_split")
    before = os.getcwd()
    os.chdir(work)
    try:
        _quiet_tree(work, "split", FIXTURES / "imgs", None)
        code, text = run_cli("smoketrain", *SMALL)
    finally:
        os.chdir(before)
    return code, text, work / "smoketrain"


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    """Right after `cocoprep convert`: the image-level head (--head multilabel), one phase."""
    work = tmp_path_factory.mktemp("bare_convert")
    before = os.getcwd()
    os.chdir(work)
    try:
        _quiet_tree(work, "convert", FIXTURES / "coco", None)
        # One phase (phase 2 is covered by the split run): one graph trace less.
        code, text = run_cli("smoketrain", "--weights", "none", "--image-size", "75",
                             "--steps", "40", "--batch-size", "16", "--fine-tune-layers", "0",
                             "--head", "multilabel")
    finally:
        os.chdir(before)
    return code, text, work / "smoketrain"


# ------------------------------------------------------------------ device plan

def test_device_plan_cpu_only():
    plan = train.choose_device([])
    assert (plan.device, plan.strategy, plan.precision, plan.xla) == ("CPU", "default",
                                                                       "float32", False)
    assert plan.devices == () and plan.num_replicas == 1


def test_device_plan_one_gpu():
    plan = train.choose_device(["/device:GPU:0"])
    assert (plan.device, plan.strategy, plan.precision, plan.xla) == ("GPU", "mirrored",
                                                                       "mixed_float16", True)
    assert plan.devices == ("/device:GPU:0",) and plan.num_replicas == 1


def test_device_plan_several_gpus_mirror_over_all():
    gpus = [f"/device:GPU:{i}" for i in range(4)]
    plan = train.choose_device(gpus)
    assert plan.strategy == "mirrored" and plan.devices == tuple(gpus)
    assert plan.num_replicas == 4
    assert plan.precision == "mixed_float16" and plan.xla
    assert "4 x GPU" in plan.describe()


def test_make_strategy_follows_the_plan():
    import tensorflow as tf

    mirrored = train.make_strategy(train.DevicePlan("CPU", ("/cpu:0",), "mirrored",
                                                    "mixed_float16", True))
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 1
    default = train.make_strategy(train.choose_device([]))
    assert not isinstance(default, tf.distribute.MirroredStrategy)


def test_dtype_policy_is_restored():
    import keras

    before = keras.mixed_precision.global_policy().name
    with train.dtype_policy("mixed_float16"):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == before


# ------------------------------------------------------------------ PASS / FAIL rule

def test_judge_passes_a_clear_decrease():
    losses = [2.0 - 1.5 * i / 39 + 0.05 * (-1) ** i for i in range(40)]
    v = train.judge(losses)
    assert v.passed, v.reason
    assert v.window == 4
    assert v.first_mean > v.last_mean + v.required_drop


def test_judge_fails_on_a_non_finite_loss():
    losses = [2.0 - 0.05 * i for i in range(30)]
    losses[17] = float("nan")
    v = train.judge(losses)
    assert not v.passed
    assert "not finite at step 18" in v.reason
    v = train.judge([1.0] * 10 + [float("inf")])
    assert not v.passed and "not finite" in v.reason


def test_judge_fails_without_change():
    # lr 0 on identical batches: no noise at all, so the relative floor decides.
    v = train.judge([1.386] * 20)
    assert not v.passed and v.noise == 0.0
    assert "needed >" in v.reason


def test_judge_fails_a_drop_that_is_only_noise():
    # A small real drop buried in noise: 0.1 over the run with noise 0.3.
    rng = np.random.default_rng(3)
    losses = 1.4 - np.linspace(0, 0.1, 60) + 0.3 * rng.standard_normal(60)
    assert not train.judge(losses).passed


@pytest.mark.parametrize("n", [20, 60, 200])
@pytest.mark.parametrize("kind", ["normal", "exponential", "student_t3"])
def test_noise_alone_never_passes(n, kind):
    rng = np.random.default_rng(n)
    draws = {
        "normal": lambda: 1.4 + 0.3 * rng.standard_normal(n),
        "exponential": lambda: rng.exponential(1.0, n),
        "student_t3": lambda: 1.4 + 0.3 * rng.standard_t(3, n),
    }[kind]
    passed = sum(train.judge(draws()).passed for _ in range(2000))
    assert passed == 0


def test_judge_with_a_four_sigma_margin_would_let_noise_through():
    # The same noise with the margin lowered: shows the test above can fail.
    rng = np.random.default_rng(20)
    runs = [rng.exponential(1.0, 20) for _ in range(2000)]
    from cocoprep.train import verdict

    old = verdict.NOISE_SIGMAS
    try:
        verdict.NOISE_SIGMAS = 4.0  # 3 of these 2000 runs pass at 4 SE, none at 5 or 6
        assert sum(train.judge(r).passed for r in runs) > 0
    finally:
        verdict.NOISE_SIGMAS = old


def test_judge_window_is_ten_percent_rounded_up():
    assert train.judge([1.0] * 10).window == 1
    assert train.judge([1.0] * 11).window == 2
    assert train.judge([1.0] * 60).window == 6


# ------------------------------------------------------------------ targets, AUC

def test_multi_hot_ignores_crowd_and_padding():
    classes = np.array([[0, 2, 2, 1, -1], [3, 1, 0, 0, 0]], np.int32)
    crowd = np.array([[False, False, False, True, False], [False, True, False, False, False]])
    num_boxes = np.array([4, 1], np.int32)  # second image: only its first row is real
    got = train.multi_hot(classes, crowd, num_boxes, 4).numpy()
    np.testing.assert_array_equal(got, [[1, 0, 1, 0], [0, 0, 0, 1]])
    assert got.dtype == np.float32


def test_multi_hot_of_an_image_without_objects_is_zero():
    got = train.multi_hot(np.full((1, 3), -1), np.zeros((1, 3), bool), np.array([0]), 2).numpy()
    np.testing.assert_array_equal(got, [[0, 0]])


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (12, 3))
    s = np.round(rng.random((12, 3)), 1)  # ties on purpose
    pos, neg = s.ravel()[y.ravel() == 1], s.ravel()[y.ravel() == 0]
    expected = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert train.auc(y, s) == pytest.approx(expected)
    assert train.auc(np.ones((2, 2)), np.zeros((2, 2))) is None


# ------------------------------------------------------------------ backbones, weights

def test_backbone_table_and_unknown_name():
    assert train.DEFAULT_BACKBONE == "inception_v3"
    assert {"inception_v3", "inception_resnet_v2", "mobilenet_v2", "resnet50",
            "efficientnet_b0"} <= set(train.BACKBONES)
    assert train.BACKBONES["inception_v3"].native_size == 299
    assert train.BACKBONES["inception_v3"].min_size == 75
    with pytest.raises(UsageError, match="--backbone: expected one of inception_v3"):
        train.backbone_of("vgg99")


def test_resolve_weights(tmp_path):
    assert train.resolve_weights("imagenet") == "imagenet"
    assert train.resolve_weights("none") is None
    f = tmp_path / "w.weights.h5"
    f.write_bytes(b"x")
    assert train.resolve_weights(str(f)) == str(f)
    with pytest.raises(InputError, match="no such file"):
        train.resolve_weights(str(tmp_path / "missing.h5"))


def test_keras_cache_dir_is_keras_home_models():
    from keras.src.backend import config

    assert train.keras_cache_dir() == os.path.join(config.keras_home(), "models")
    if "KERAS_HOME" not in os.environ and os.access(os.path.expanduser("~"), os.W_OK):
        assert train.keras_cache_dir() == os.path.join(os.path.expanduser("~"), ".keras",
                                                        "models")


def _fail_download(monkeypatch, tmp_path):
    """No network: Keras's own download fails as it does offline; an empty cache."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    return str(tmp_path / "keras_home" / "models")


def test_offline_imagenet_download_gives_a_clear_error(monkeypatch, tmp_path):
    cache = _fail_download(monkeypatch, tmp_path)
    with pytest.raises(CocoprepError) as e:
        train.build_backbone("mobilenet_v2", image_size=32, weights="imagenet")
    msg = str(e.value)
    assert "cannot get the ImageNet weights for mobilenet_v2" in msg
    assert "--weights none" in msg and cache in msg
    assert "Name resolution" in msg or "name resolution" in msg


def test_cli_offline_imagenet_exit_code_and_message(monkeypatch, tmp_path, split_dir):
    cache = _fail_download(monkeypatch, tmp_path)
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(tmp_path / "run"),
                         "--image-size", "75", "--steps", "10")
    assert code == 2
    assert "Error: cannot get the ImageNet weights for inception_v3" in text
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in text
    assert "--weights none" in text and cache in text
    assert "Traceback" not in text
    assert not (tmp_path / "run" / "model.keras").exists()


def test_weights_from_a_local_file(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    source = train.build_backbone("mobilenet_v2", image_size=32, weights=None)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(2)
    loaded = train.build_backbone("mobilenet_v2", image_size=32, weights=str(path))
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_weights_file_that_does_not_fit(tmp_path):
    bad = tmp_path / "notes.weights.h5"
    bad.write_text("not hdf5")
    with pytest.raises(InputError, match="expected a Keras weights file for mobilenet_v2"):
        train.build_backbone("mobilenet_v2", image_size=32, weights=str(bad))


# ------------------------------------------------------------------ model, phases

def test_mixed_precision_model_on_cpu_has_float32_head_and_loss_scaling():
    """The GPU code path's model, built and run on the CPU."""
    import keras

    with train.dtype_policy("mixed_float16"):
        base = train.build_backbone("inception_v3", image_size=75, weights=None)
        model = train.build_model(base, num_classes=3, head="multilabel")
        train.compile_model(model, head="multilabel", learning_rate=1e-3, xla=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    conv = next(layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == "float16" and conv.variable_dtype == "float32"
    assert model.get_layer("head").compute_dtype == "float32"
    assert model.output.dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    out = model(np.zeros((2, 75, 75, 3), np.float32))
    assert np.asarray(out).dtype == np.float32
    assert out.shape == (2, 3) and np.all((np.asarray(out) >= 0) & (np.asarray(out) <= 1))


def test_float32_model_heads():
    import keras

    base = train.build_backbone("mobilenet_v2", image_size=32, weights=None)
    cls_model = train.build_model(base, num_classes=4, head="softmax")
    train.compile_model(cls_model, head="softmax", learning_rate=1e-3, xla=False)
    assert not isinstance(cls_model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert cls_model.get_layer("head").activation.__name__ == "softmax"
    probs = np.asarray(cls_model(np.random.default_rng(0).random((3, 32, 32, 3), np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    base2 = train.build_backbone("mobilenet_v2", image_size=32, weights=None)
    det_model = train.build_model(base2, num_classes=4, head="multilabel")
    assert det_model.get_layer("head").activation.__name__ == "sigmoid"
    assert not base.trainable


def test_unfreeze_top_keeps_batchnorm_frozen():
    import keras

    base = train.build_backbone("mobilenet_v2", image_size=32, weights=None)
    base.trainable = False
    k = 20
    with_weights = train.unfreeze_top(base, k)
    top = base.layers[-k:]
    for layer in base.layers[:-k]:
        assert not layer.trainable, layer.name
    for layer in top:
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (not is_bn), layer.name
    assert with_weights == sum(1 for layer in top if layer.trainable and layer.weights)
    assert with_weights > 0
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in top)


def test_step_recorder_logs_each_steps_own_loss():
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((16, 3), np.float32)
    y = rng.integers(0, 2, 16)
    recorder = train.step_recorder()
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0,
              callbacks=[recorder], shuffle=False)
    expected = [float(np.mean(keras.losses.sparse_categorical_crossentropy(
        y[i:i + 4], model.predict(x[i:i + 4], verbose=0)))) for i in range(0, 16, 4)]
    np.testing.assert_allclose(recorder.losses, expected, rtol=1e-5)
    assert len(set(np.round(expected, 5))) > 1  # not a running mean of equal values
    assert len(recorder.times) == 4


# ------------------------------------------------------------------ bad options

@pytest.mark.parametrize("args, message", [
    (["--image-size", "60"], "--image-size: expected at least 75 px for inception_v3, found 60"),
    (["--steps", "9"], "--steps: expected at least 20 steps in all to judge the loss trend: "
                       "--steps 10 or more (each of the 2 phases runs --steps steps), found 9"),
    (["--steps", "19", "--fine-tune-layers", "0"], "--steps: expected at least 20 steps in all "
     "to judge the loss trend: --steps 20 or more (--fine-tune-layers 0 leaves one phase)"),
    (["--steps", "0"], "--steps: expected a positive number of steps per phase, found 0"),
    (["--batch-size", "0"], "--batch-size: expected a positive batch size, found 0"),
    (["--lr", "-1"], "--lr: expected a finite learning rate >= 0, found -1.0"),
    (["--lr", "nan"], "--lr: expected a finite learning rate >= 0, found nan"),
    (["--fine-tune-layers", "-2"], "--fine-tune-layers: expected 0 (no phase 2)"),
    (["--train-split", "nope"], "--train-split: expected a split in"),
    (["--val-split", "nope"], "--val-split: expected a split in"),
])
def test_bad_options(split_dir, tmp_path, args, message):
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(tmp_path / "run"),
                         "--weights", "none", *args)
    assert code == 2, text
    assert f"Error: {message}" in text
    assert not (tmp_path / "run").exists()


def test_unknown_backbone(split_dir):
    code, text = run_cli("smoketrain", str(split_dir), "--backbone", "vgg99")
    assert code == 2 and "Invalid value for '--backbone'" in text


def test_missing_weights_file(split_dir, tmp_path):
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(tmp_path / "run"),
                         "--weights", str(tmp_path / "nope.h5"))
    assert code == 2
    assert f"Error: {tmp_path / 'nope.h5'}: expected --weights imagenet, none, or a Keras " \
           "weights file, found no such file" in text


def test_missing_data_directory(tmp_path):
    code, text = run_cli("smoketrain", str(tmp_path / "tfrecords"), "--weights", "none")
    assert code == 2
    assert "Error: " in text and "expected a directory written by `cocoprep convert` or " \
                                 "`cocoprep split`" in text


def test_directory_without_manifest(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    code, text = run_cli("smoketrain", str(tmp_path), "--weights", "none")
    assert code == 2
    assert "manifest.json: no manifest here" in text


def test_few_steps_do_not_mention_an_option_the_user_did_not_pass(split_dir, tmp_path):
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(tmp_path / "run"),
                         "--steps", "5")
    assert code == 2
    assert text.strip() == ("Error: --steps: expected at least 20 steps in all to judge the "
                            "loss trend: --steps 10 or more (each of the 2 phases runs --steps "
                            "steps), found 5")


def test_class_folder_tree_says_to_run_split_first(tmp_path):
    code, text = run_cli("smoketrain", str(FIXTURES / "imgs"), "-o", str(tmp_path / "run"),
                         "--weights", "none")
    assert code == 2
    imgs = FIXTURES / "imgs"
    assert text.strip() == (
        f"Error: {imgs}: expected a directory written by `cocoprep convert` or `cocoprep "
        "split`, found a tree of image folders (circle/, square/, stripes/, triangle/), not "
        f"records: run `cocoprep split {imgs} -o tfrecords` first, then `cocoprep smoketrain "
        "tfrecords`")
    assert not (tmp_path / "run").exists()


def test_split_folder_tree_named_tfrecords_gets_another_output_name(tmp_path):
    """A tree of images that is itself ./tfrecords: the command must not write into it."""
    (tmp_path / "tfrecords" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "tfrecords" / "train" / "cat" / "a.jpg").write_bytes(b"")
    before = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, text = run_cli("smoketrain", "--weights", "none")
    finally:
        os.chdir(before)
    assert code == 2
    assert "run `cocoprep split tfrecords -o tfrecords-records` first, then `cocoprep " \
           "smoketrain tfrecords-records`" in text


@pytest.mark.parametrize("name", ["coco", "voc", "yolo", "kitti", "seg"])
def test_detection_dataset_says_to_run_convert_first(tmp_path, name):
    coco = FIXTURES / name
    code, text = run_cli("smoketrain", str(coco), "--weights", "none")
    assert code == 2
    assert text.strip() == (
        f"Error: {coco}: expected a directory written by `cocoprep convert` or `cocoprep "
        f"split`, found annotations, not records: run `cocoprep convert {coco} -o tfrecords` "
        "first, then `cocoprep smoketrain tfrecords`")


def test_empty_directory_names_the_fix(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, text = run_cli("smoketrain", str(empty), "--weights", "none")
    assert code == 2
    assert text.strip() == (
        f"Error: {empty}: expected a directory written by `cocoprep convert` or `cocoprep "
        f"split`, found an empty directory: write records with `cocoprep convert SRC -o "
        f"{empty}` (COCO, Pascal VOC, YOLO) or `cocoprep split SRC -o {empty}` (a folder per class), or pass "
        "the directory they went to")


def test_pick_splits_coco2017_names(tmp_path):
    from cocoprep.manifest import Manifest, SplitInfo

    def info(n):
        return SplitInfo(num_examples=n, num_objects=0, shards=())

    Manifest(task="detection", schema_version="1.0",
             splits={"train2017": info(5), "val2017": info(2)}).write(tmp_path)
    assert train.pick_train_val(str(tmp_path), None, None)[:2] == ("train2017", "val2017")
    Manifest(task="detection", schema_version="1.0",
             splits={"a": info(5), "b": info(2)}).write(tmp_path)
    with pytest.raises(UsageError, match=r"--train-split: expected one of the splits in .*"
                                         r"a \(5 examples\), b \(2 examples\)"):
        train.pick_train_val(str(tmp_path), None, None)
    assert train.pick_train_val(str(tmp_path), "a", None)[:2] == ("a", None)


# ------------------------------------------------------------------ full CPU runs

@pytest.mark.slow
def test_bare_command_after_split_passes(cls_run):
    code, text, run_dir = cls_run
    assert code == 0, text
    assert "device: CPU (default strategy), precision float32, XLA off" in text
    assert "data: tfrecords (classification, 4 classes)" in text
    assert "phase 1 (head only, lr 0.001): 30 steps, loss " in text
    assert "phase 2 (top 30 backbone layers" in text and "lr 0.0001" in text
    assert "images/s" in text
    assert "PASS: loss: mean of the last 6 step(s)" in text
    assert (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()


@pytest.mark.slow
def test_metrics_json_after_split(cls_run):
    _, _, run_dir = cls_run
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["result"] == "PASS"
    assert (m["device"], m["precision"], m["xla"]) == ("CPU (default strategy)", "float32", False)
    assert (m["backbone"], m["weights"], m["image_size"]) == ("inception_v3", "none", 75)
    assert m["task"] == "classification" and m["num_classes"] == 4
    assert m["steps"] == 60 and len(m["losses"]) == 60
    assert [p["name"] for p in m["phases"]] == ["phase 1", "phase 2"]
    p1, p2 = m["phases"]
    assert p1["initial_loss"] == m["losses"][0] and p1["final_loss"] == m["losses"][29]
    assert p2["initial_loss"] == m["losses"][30] and p2["final_loss"] == m["losses"][59]
    assert p2["learning_rate"] == pytest.approx(p1["learning_rate"] / 10)
    assert p1["images_per_s"] > 0 and p2["images_per_s"] > 0 and m["images_per_s"] > 0
    assert m["val"]["split"] == "val" and m["val"]["num_examples"] == 8
    assert 0.0 <= m["val"]["accuracy"] <= 1.0
    # The verdict follows from the recorded losses by the documented rule.
    assert train.judge(m["losses"]).passed
    assert m["head"] == "softmax"
    (j,) = m["judgement"]["checks"]
    assert j["term"] == "loss" and j["first_mean"] - j["last_mean"] > j["required_drop"]


@pytest.mark.slow
def test_model_keras_reloads_to_the_same_predictions(cls_run):
    """The reloaded model reproduces the validation figures computed in the run."""
    import keras

    _, _, run_dir = cls_run
    m = json.loads((run_dir / "metrics.json").read_text())
    model = keras.models.load_model(run_dir / "model.keras")
    data = run_dir.parent / m["data"]
    ds = train.make_dataset(data, "val", head="softmax", num_classes=4,
                            backbone=m["backbone"], batch_size=m["batch_size"],
                            image_size=m["image_size"], train=False)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    p = np.clip(model.predict(np.concatenate(xs), verbose=0).astype(np.float64), 1e-7, 1 - 1e-7)
    y = np.concatenate(ys)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    assert loss == pytest.approx(m["val"]["loss"], rel=1e-5)
    assert np.mean(p.argmax(axis=1) == y) == pytest.approx(m["val"]["accuracy"])

    # Phase 2 kept BatchNorm in inference mode: randomly initialised moving
    # statistics (0 and 1) are untouched after 60 steps.
    base = train.backbone_layer(model)
    bns = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns
    for bn in bns:
        np.testing.assert_array_equal(np.asarray(bn.moving_mean), 0.0)
        np.testing.assert_array_equal(np.asarray(bn.moving_variance), 1.0)
    # Phase 1 froze the backbone, phase 2 trained only its top layers: compare with
    # the same seeded initialisation.
    keras.utils.set_random_seed(m["seed"])
    init = train.build_backbone(m["backbone"], image_size=m["image_size"], weights=None)
    convs = [i for i, layer in enumerate(base.layers) if isinstance(layer, keras.layers.Conv2D)]
    bottom, top = convs[0], convs[-1]
    assert top >= len(base.layers) - m["fine_tune_layers"]
    np.testing.assert_array_equal(base.layers[bottom].kernel, init.layers[bottom].kernel)
    assert not np.allclose(base.layers[top].kernel, init.layers[top].kernel)


@pytest.fixture(scope="module")
def det_default_run(tmp_path_factory):
    """The README's main example: `cocoprep convert fixtures/coco`, then the default
    detector (no --head) on ./tfrecords; smaller and shorter (96 px, 2 x 30 steps at
    --lr 3e-3) to stay fast on a CPU."""
    work = tmp_path_factory.mktemp("default_detector")
    before = os.getcwd()
    os.chdir(work)
    try:
        _quiet_tree(work, "convert", FIXTURES / "coco", None)
        code, text = run_cli("smoketrain", "--weights", "none", "--image-size", "96",
                             "--steps", "30", "--lr", "3e-3")
    finally:
        os.chdir(before)
    return code, text, work / "smoketrain"


@pytest.mark.slow
def test_default_detector_after_convert_passes(det_default_run):
    code, text, run_dir = det_default_run
    assert code == 0, text
    lines = text.splitlines()
    assert lines[1] == ("data: tfrecords (detection, 4 classes), train split 'train' "
                        "(7 images), validation split 'val'")
    assert lines[2] == ("model: inception_v3, weights none, 96x96 px, batch 16, CenterNet "
                        "detection head on mixed2 (9x9 cells)")
    assert lines[3].startswith("phase 1 (head only, lr 0.003): 30 steps, loss ")
    assert ", heatmap " in lines[3] and ", box " in lines[3]
    assert lines[4].startswith("phase 2 (top 30 backbone layers, 7 with weights, lr 0.0003)")
    assert lines[5].startswith("val: num_examples 3, num_objects 6, loss ")
    assert lines[-2].startswith("PASS: loss fell ") and "; box fell " in lines[-2] \
        and "; heatmap fell " in lines[-2]
    m = json.loads((run_dir / "metrics.json").read_text())
    assert (m["head"], m["grid"], m["steps"]) == ("detection", 9, 60)
    assert [c["term"] for c in m["judgement"]["checks"]] == ["loss", "box", "heatmap"]
    assert 0.0 <= m["val"]["map50"] <= 1.0


@pytest.mark.slow
def test_multilabel_head_after_convert_passes(det_run):
    code, text, run_dir = det_run
    assert code == 0, text
    assert "data: tfrecords (detection, 4 classes)" in text
    assert "sigmoid multi-label head" in text
    assert "PASS" in text
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["task"] == "detection" and m["num_classes"] == 4 and m["head"] == "multilabel"
    assert m["class_names"] == ["person", "car", "dog", "kite"]
    assert m["val"]["num_examples"] == 3 and 0.0 <= m["val"]["auc"] <= 1.0
    assert (run_dir / "model.keras").is_file()


def test_detection_targets_match_the_coco_json(convert_dir):
    """Image-level targets = the label-map indices of each image's non-crowd objects."""
    import cocoprep
    from cocoprep.labelmap import LabelMap

    coco = json.loads((FIXTURES / "coco" / "annotations" / "instances_train.json").read_text())
    labels = LabelMap.read_pbtxt(convert_dir / "label_map.pbtxt")
    expected = {img["id"]: np.zeros(4, np.float32) for img in coco["images"]}
    for ann in coco["annotations"]:
        if not ann["iscrowd"]:
            expected[ann["image_id"]][labels.index_of(ann["category_id"])] = 1.0
    batch = next(iter(cocoprep.load(convert_dir, "train", batch_size=7, image_size=75,
                                    shuffle=False)))
    got = train.multi_hot(batch["classes"], batch["is_crowd"], batch["num_boxes"], 4).numpy()
    ids = [int(i) for i in batch["image_id"].numpy()]
    assert sorted(ids) == sorted(expected)
    for image_id, row in zip(ids, got):
        np.testing.assert_array_equal(row, expected[image_id], err_msg=str(image_id))
    # The crowd-only class of image 107 is really dropped somewhere (the rule is tested).
    assert any(batch["is_crowd"].numpy().ravel())

    # make_dataset (stored order too) feeds the same targets, after preprocess_input.
    ds = train.make_dataset(convert_dir, "train", head="multilabel", num_classes=4,
                            backbone="inception_v3", batch_size=7, image_size=75, train=False)
    images, targets = next(iter(ds))
    assert images.shape == (7, 75, 75, 3)
    assert -1.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
    np.testing.assert_array_equal(targets.numpy(), got)


@pytest.mark.slow
def test_lr_zero_cannot_learn_and_fails(split_dir, tmp_path):
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(tmp_path / "run"),
                         "--weights", "none", "--image-size", "75", "--steps", "20",
                         "--batch-size", "16", "--fine-tune-layers", "0", "--lr", "0")
    assert code == 1, text
    assert "FAIL: loss: mean of the last 2 step(s)" in text and "needed >" in text
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["result"] == "FAIL" and len(m["phases"]) == 1 and m["steps"] == 20
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_gpu_code_path_runs_on_cpu(split_dir, tmp_path):
    """MirroredStrategy + mixed_float16 + XLA + loss scaling, as on GPUs, over the CPU."""
    import keras

    plan = train.DevicePlan("CPU", ("/cpu:0",), "mirrored", "mixed_float16", True)
    lines: list[str] = []
    result = train.smoketrain(split_dir, tmp_path / "run", backbone="mobilenet_v2",
                              weights="none", image_size=32, steps=10, batch_size=8,
                              fine_tune_layers=10, plan=plan, log=lines.append)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "device: 1 x CPU (MirroredStrategy), precision mixed_float16, XLA on" in lines
    m = result.metrics
    # `log` gets the verdict line too (the API logs what the command prints)
    assert lines[-1] == f"{m['result']}: {result.verdict.reason}"
    assert (m["precision"], m["xla"], m["devices"], m["num_replicas"]) == (
        "mixed_float16", True, ["/cpu:0"], 1)
    assert len(m["losses"]) == 20 and all(math.isfinite(v) for v in m["losses"])
    model = result.model
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert train.backbone_layer(model).compute_dtype == "float16"
    assert model.output.dtype == "float32"
    x = next(iter(train.make_dataset(split_dir, "val", head="softmax", num_classes=4,
                                     backbone="mobilenet_v2", batch_size=8, image_size=32,
                                     train=False)))[0]
    reloaded = keras.models.load_model(result.model_path)
    # The run's model predicts through XLA (jit_compile), the reloaded, uncompiled one
    # without: equal up to float rounding.
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def _damaged_copy(split_dir: Path, tmp_path: Path, how: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for f in split_dir.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    shard = next(data.glob("train.tfrecord-*"))
    raw = bytearray(shard.read_bytes())
    if how == "empty":
        raw = bytearray()
    else:  # a byte inside a record in the middle: its checksum no longer fits
        raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    return data


@pytest.mark.parametrize("how", ["empty", "corrupted"])
def test_unreadable_training_records_are_an_error_not_a_traceback(split_dir, tmp_path, how):
    """A train shard emptied or damaged after writing (the manifest still counts its
    records): a clear `Error:` that points to `cocoprep verify`, no traceback."""
    data = _damaged_copy(split_dir, tmp_path, how)
    code, text = run_cli("smoketrain", str(data), "-o", str(tmp_path / "run"),
                         "--backbone", "mobilenet_v2", "--weights", "none",
                         "--image-size", "32", "--steps", "20", "--batch-size", "4",
                         "--fine-tune-layers", "0", "--quiet")
    assert code == 2, text
    assert "Error:" in text and str(data) in text and "cocoprep verify" in text
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_run_dir_that_is_a_file_is_refused_before_training(split_dir, tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("not a directory")
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(blocker), "--weights", "none",
                         "--image-size", "75")
    assert code == 2, text
    assert f"Error: {blocker}: expected a run directory" in text
    assert "phase 1" not in text  # refused before any training
    assert blocker.read_text() == "not a directory"


# ------------------------------------------------------------------ verdict (detrended noise)

def _von_neumann_passes(losses) -> bool:
    """The rule before the detrended noise estimate (successive differences)."""
    v = np.asarray(losses, float)
    k = max(1, math.ceil(0.1 * len(v)))
    sigma = math.sqrt(np.sum(np.diff(v) ** 2) / (2 * (len(v) - 1)))
    drop = v[:k].mean() - v[-k:].mean()
    return drop > max(6 * sigma * math.sqrt(2 / k), 0.1 * v[:k].mean())


def test_steep_twenty_step_curve_passes():
    # A loss that falls by more than half in the first steps, then levels off: the
    # trend is not noise. The successive-difference rule counted it as noise and failed.
    rng = np.random.default_rng(0)
    losses = np.array([2.0, 0.9, 0.6, 0.5] + [0.45] * 16) + 0.05 * rng.standard_normal(20)
    assert losses[-1] < losses[0] / 2
    v = train.judge(losses)
    assert v.passed, v.reason
    assert v.z > 6
    assert not _von_neumann_passes(losses)


def test_detrended_noise_ignores_a_straight_trend():
    rng = np.random.default_rng(1)
    noise = 0.1 * rng.standard_normal(200)
    flat = train.detrended_noise(1.0 + noise)
    sloped = train.detrended_noise(3.0 - 0.01 * np.arange(200) + noise)
    assert sloped == pytest.approx(flat, rel=1e-9)
    assert 0.08 < flat < 0.12


def test_combine_names_the_failed_check():
    good = train.judge(np.linspace(2, 1, 40))
    bad = train.judge(np.ones(40), term="box")
    v = train.combine([good, bad])
    assert not v.passed and v.reason.startswith("box:")
    assert train.combine([good, good]).passed


# ------------------------------------------------------------------ detection targets, decode, mAP

def _one_image(boxes, classes, crowd=None, pad=3):
    n = len(boxes)
    b = np.zeros((1, n + pad, 4), np.float32)
    b[0, :n] = boxes
    c = np.full((1, n + pad), -1, np.int32)
    c[0, :n] = classes
    k = np.zeros((1, n + pad), bool)
    if crowd is not None:
        k[0, :n] = crowd
    return b, c, k, np.array([n], np.int32)


def test_detection_targets_centre_size_offset_and_padding():
    # grid 8: box y 0.25..0.75 (4 cells, centre 4.0), x 0.1..0.3 (1.6 cells, centre 1.6)
    b, c, k, n = _one_image([[0.25, 0.1, 0.75, 0.3]], [2])
    t = train.detection_targets(b, c, k, n, grid=8, num_classes=3)
    heat, box = t["heatmap"].numpy(), t["box"].numpy()
    assert heat.shape == (1, 8, 8, 3) and box.shape == (1, 8, 8, 5)
    assert heat[0, 4, 1, 2] == 1.0 and np.sum(heat == 1.0) == 1
    assert np.all(heat[..., :2] == 0) and 0 < heat[0, 4, 2, 2] < 1
    np.testing.assert_allclose(box[0, 4, 1], [4.0, 1.6, 0.0, 0.6, 1.0], atol=1e-5)
    assert box[..., 4].sum() == 1  # padding rows (class -1) add nothing


def test_detection_targets_ignore_crowd_regions():
    b, c, k, n = _one_image([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], [0, 0],
                            crowd=[False, True])
    heat = train.detection_targets(b, c, k, n, grid=4, num_classes=1)["heatmap"].numpy()
    box = train.detection_targets(b, c, k, n, grid=4, num_classes=1)["box"].numpy()
    assert np.all(heat[0, 2:, 2:, 0] == -1)  # inside the crowd box: ignored
    assert heat[0, 1, 1, 0] == 1.0
    assert box[..., 4].sum() == 1  # the crowd object is no centre


def test_decode_recovers_target_boxes():
    boxes = [[0.1, 0.2, 0.4, 0.5], [0.55, 0.6, 0.95, 0.9]]
    b, c, k, n = _one_image(boxes, [1, 0])
    t = train.detection_targets(b, c, k, n, grid=16, num_classes=2)
    out = {"heatmap": np.maximum(t["heatmap"].numpy(), 0), "box": t["box"].numpy()[..., :4]}
    d = train.decode(out, max_detections=5)
    assert d.boxes.shape == (1, 5, 4) and d.scores.shape == (1, 5) and d.classes.shape == (1, 5)
    assert list(d.scores[0, :2]) == [1.0, 1.0] and np.all(d.scores[0, 2:] < 1)
    got = sorted(zip(d.classes[0, :2].tolist(), d.boxes[0, :2].tolist()))
    np.testing.assert_allclose([g[1] for g in got], [boxes[1], boxes[0]], atol=1e-5)
    assert [g[0] for g in got] == [0, 1]


def test_map50_perfect_and_wrong_detections():
    truth = [{"boxes": np.array([[0.1, 0.1, 0.5, 0.5]]), "classes": np.array([0]),
              "is_crowd": np.array([False])}]
    right = train.Detections(np.array([[[0.1, 0.1, 0.5, 0.5]]]), np.array([[0.9]]),
                             np.array([[0]]))
    wrong = train.Detections(np.array([[[0.6, 0.6, 0.9, 0.9]]]), np.array([[0.9]]),
                             np.array([[0]]))
    assert train.map50(truth, right, num_classes=2, image_size=100) == pytest.approx(1.0)
    assert train.map50(truth, wrong, num_classes=2, image_size=100) == 0.0
    empty = [{"boxes": np.zeros((0, 4)), "classes": np.zeros(0), "is_crowd": np.zeros(0, bool)}]
    assert train.map50(empty, right, num_classes=2, image_size=100) is None


def test_detection_model_mixed_precision_on_cpu():
    """The detector as the GPU path builds it: float16 compute, float32 outputs,
    loss scaling, XLA; the stride-8 feature map of each backbone."""
    import keras

    with train.dtype_policy("mixed_float16"):
        base = train.feature_backbone("inception_v3", image_size=96, weights=None)
        model = train.build_model(base, num_classes=3, head="detection")
        train.compile_model(model, head="detection", learning_rate=1e-3, xla=True)
    assert base.layers[-1].name == "mixed2" and base.compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    out = model(np.zeros((2, 96, 96, 3), np.float32))
    assert out["heatmap"].dtype == "float32" and out["box"].dtype == "float32"
    assert tuple(out["heatmap"].shape) == (2, 9, 9, 3) and tuple(out["box"].shape) == (2, 9, 9, 4)
    for name in train.BACKBONES:
        if name in ("inception_v3", "inception_resnet_v2"):
            continue  # the big ones: the table's layer names are checked on the small ones
        fb = train.feature_backbone(name, image_size=64, weights=None)
        assert fb.output.shape[1] == 8, name  # stride 8


# ------------------------------------------------------------------ data that proves nothing

COLOURS = ((220, 30, 30), (30, 200, 30), (30, 30, 220))


def _rect_coco(root: Path, counts: dict, *, size: int = 128, seed: int = 0,
               objects: bool = True, wrong_boxes: bool = False) -> Path:
    """COCO JSON + PNGs of 1-3 coloured rectangles on grey, with exact boxes (or,
    with `wrong_boxes`, each box of the right size moved to a random place)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(("red", "green", "blue"))]
    (root / "annotations").mkdir(parents=True)
    for split, n in counts.items():
        (root / split).mkdir()
        images, anns = [], []
        for k in range(n):
            pixels = np.full((size, size, 3), 128, np.uint8)
            for _ in range(int(rng.integers(1, 4)) if objects else 0):
                c = int(rng.integers(0, 3))
                h, w = (int(v) for v in rng.integers(size // 6, size // 2, 2))
                y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
                pixels[y:y + h, x:x + w] = COLOURS[c]
                if wrong_boxes:
                    y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
                anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": c + 1,
                             "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            name = f"{split}_{k:03d}.png"
            Image.fromarray(pixels).save(root / split / name)
            images.append({"id": k + 1, "file_name": name, "width": size, "height": size})
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def test_detection_records_without_objects_fail_before_training(tmp_path):
    src = _rect_coco(tmp_path / "src", {"train": 4}, size=64, objects=False)
    out = _quiet_tree(tmp_path, "convert", src, str(tmp_path / "tf"))
    code, text = run_cli("smoketrain", str(out), "-o", str(tmp_path / "run"), "--weights",
                         "none", "--image-size", "75")
    assert code == 1, text
    assert (f"Error: {out}: split 'train' holds no objects (0 boxes in 4 images)" in text
            and "could prove nothing, so none was run" in text)
    assert "phase 1" not in text and not (tmp_path / "run").exists()


def test_classification_split_of_one_class_is_refused(tmp_path):
    """`cocoprep split` itself needs 2 class folders, but a train split can still hold
    one class (a --ratio that sends a class wholly to val, a glob of shards)."""
    from types import SimpleNamespace

    from cocoprep.errors import NothingToProve
    from cocoprep.manifest import SplitInfo
    from cocoprep.train.find import check_provable

    info = SimpleNamespace(task="classification", num_classes=2)
    one = SplitInfo(num_examples=3, num_objects=0, shards=(), class_counts={"cat": 3, "dog": 0})
    with pytest.raises(NothingToProve) as e:
        check_provable("tf", "train", one, info)
    assert e.value.exit_code == 1
    assert str(e.value) == ("tf: split 'train' holds a single class ('cat'): every label is "
                            "the same, so nothing shows they line up; a smoke-train on it "
                            "could prove nothing, so none was run")
    two = SplitInfo(num_examples=4, num_objects=0, shards=(), class_counts={"cat": 3, "dog": 1})
    check_provable("tf", "train", two, info)  # no error


def test_head_option_for_classification_records_is_refused(split_dir, tmp_path):
    code, text = run_cli("smoketrain", str(split_dir), "-o", str(tmp_path / "run"),
                         "--weights", "none", "--head", "detection")
    assert code == 2
    assert "Error: --head: expected no --head for classification records" in text


# ------------------------------------------------------------------ the detector, end to end

RECT_RUN = ["--weights", "none", "--image-size", "128", "--steps", "30", "--batch-size", "8",
            "--lr", "3e-3"]


@pytest.fixture(scope="module")
def rect_run(tmp_path_factory):
    """Coloured rectangles with exact boxes, random weights, 128 px, two phases."""
    work = tmp_path_factory.mktemp("rects")
    src = _rect_coco(work / "src", {"train": 32, "val": 8})
    data = _quiet_tree(work, "convert", src, str(work / "tf"))
    code, text = run_cli("smoketrain", str(data), "-o", str(work / "run"), *RECT_RUN)
    return code, text, work / "run", data


@pytest.mark.slow
def test_detector_learns_rectangles_and_passes(rect_run):
    code, text, run_dir, _ = rect_run
    assert code == 0, text
    assert "CenterNet detection head on mixed2 (13x13 cells)" in text
    assert "PASS: loss fell" in text and "box fell" in text and "heatmap fell" in text
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["head"] == "detection" and m["feature_layer"] == "mixed2" and m["grid"] == 13
    assert [c["term"] for c in m["judgement"]["checks"]] == ["loss", "box", "heatmap"]
    for p in m["phases"]:
        assert set(p["terms"]) == {"heatmap", "box"}
        for term in p["terms"].values():
            assert math.isfinite(term["initial"]) and math.isfinite(term["final"])
    # The total is the sum of the terms, step by step.
    np.testing.assert_allclose(m["losses"], np.add(m["term_losses"]["heatmap"],
                                                   m["term_losses"]["box"]), rtol=1e-4)
    val = m["val"]
    assert val["num_examples"] == 8 and val["num_objects"] > 8
    assert 0.0 <= val["map50"] <= 1.0
    assert val["heatmap_loss"] < m["phases"][0]["terms"]["heatmap"]["initial"]


@pytest.mark.slow
def test_decode_on_the_reloaded_detector(rect_run):
    import keras

    _, _, run_dir, data = rect_run
    model = keras.models.load_model(run_dir / "model.keras")
    images, _, objects = next(iter(train.make_dataset(
        data, "val", head="detection", num_classes=3, backbone="inception_v3", batch_size=8,
        image_size=128, train=False, grid=13, with_objects=True)))
    d = train.decode(model.predict(images, verbose=0), max_detections=20)
    assert d.boxes.shape == (8, 20, 4) and d.scores.shape == (8, 20)
    assert d.classes.shape == (8, 20) and d.classes.dtype == np.int32
    assert np.all((d.boxes >= 0) & (d.boxes <= 1))
    assert np.all(d.boxes[..., 2] >= d.boxes[..., 0]) and np.all(d.boxes[..., 3] >= d.boxes[..., 1])
    assert np.all((d.scores >= 0) & (d.scores <= 1)) and np.all(np.diff(d.scores, axis=1) <= 0)
    assert set(np.unique(d.classes)) <= {0, 1, 2}
    # The best detection of each image overlaps one of its true boxes more often than not.
    hits = 0
    for i, n in enumerate(objects["num_boxes"].numpy()):
        truth = objects["boxes"][i][:n].numpy()
        b = d.boxes[i, 0]
        inter = (np.clip(np.minimum(truth[:, 2], b[2]) - np.maximum(truth[:, 0], b[0]), 0, None)
                 * np.clip(np.minimum(truth[:, 3], b[3]) - np.maximum(truth[:, 1], b[1]), 0, None))
        hits += bool(np.any(inter > 0))
    assert hits >= 5


@pytest.mark.slow
def test_boxes_that_miss_the_objects_fail(tmp_path):
    """The same pictures with every box moved to a random place: the box term still
    falls (sizes regress towards their mean), the heatmap cannot learn the centres,
    so the run FAILs where the right boxes PASS."""
    src = _rect_coco(tmp_path / "src", {"train": 32}, wrong_boxes=True)
    data = _quiet_tree(tmp_path, "convert", src, str(tmp_path / "tf"))
    code, text = run_cli("smoketrain", str(data), "-o", str(tmp_path / "run"), *RECT_RUN)
    assert code == 1, text
    assert "no validation split" in text
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    checks = {c["term"]: c for c in m["judgement"]["checks"]}
    assert not checks["heatmap"]["passed"] and checks["heatmap"]["z"] < 6
    assert m["val"] is None
