"""smoketrain on segmentation records: the pixel loss and its pixel-blind reference,
mean IoU against the majority baseline, the verdict rule, and whole CPU runs that
PASS on right masks and FAIL on masks mirrored or shifted against their pictures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import conftest
from cocoprep import train
from cocoprep.train import heads, metrics, verdict
from seg_records import SegItem, write_scenes, write_segmentation

VOID = 255
# The calibrated setting (docs/readme-seg-read.md): 48 + 16 scenes, 128 px, batch 8.
RUN = ["--weights", "none", "--image-size", "128", "--batch-size", "8", "--steps", "60"]


def run_cli(*args: str):
    return conftest.run_cli(*args, catch_exceptions=False)


# ------------------------------------------------------------------ losses

def _probs(p: np.ndarray) -> np.ndarray:
    return np.asarray(p, np.float32)


def test_seg_loss_averages_cross_entropy_over_pixels_that_are_not_void():
    y = np.array([[[0, 1], [VOID, 2]], [[VOID, VOID], [VOID, VOID]]], np.int32)
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 1.0, (2, 2, 2, 3))
    p /= p.sum(-1, keepdims=True)
    got = np.asarray(heads.seg_loss(y, _probs(p)))
    want0 = -np.mean([np.log(p[0, 0, 0, 0]), np.log(p[0, 0, 1, 1]), np.log(p[0, 1, 1, 2])])
    assert got[0] == pytest.approx(want0, rel=1e-5)
    assert got[1] == 0.0  # an all-void image adds nothing


def test_excess_is_zero_for_the_batch_frequencies_and_negative_for_the_truth():
    y = np.array([[[0, 0, 1, VOID], [0, 2, 2, 0]]], np.int32)
    freq = np.array([4, 1, 2], np.float64) / 7
    blind = np.broadcast_to(freq, y.shape + (3,))
    assert float(heads.excess_loss(y, _probs(blind))) == pytest.approx(0.0, abs=1e-5)
    entropy = -np.sum(freq * np.log(freq))
    assert float(heads.blind_loss(y, _probs(blind))) == pytest.approx(entropy, rel=1e-5)
    truth = np.eye(3)[np.where(y == VOID, 0, y)] * 0.999 + 0.001 / 3
    assert float(heads.excess_loss(y, _probs(truth))) == pytest.approx(
        -entropy + -np.log(0.999 + 0.001 / 3), abs=1e-4)
    # Any pixel-blind prediction is at least the batch entropy: excess >= 0.
    other = np.broadcast_to(np.array([0.2, 0.5, 0.3]), y.shape + (3,))
    assert float(heads.excess_loss(y, _probs(other))) > 0.0


# ------------------------------------------------------------------ mIoU

def test_mean_iou_and_the_majority_baseline():
    truth = np.array([[0, 0, 0, 1], [0, 2, 2, VOID]])
    pred = np.array([[0, 0, 1, 1], [0, 2, 0, 1]])
    m = metrics.confusion(truth, pred, 3)
    assert m.sum() == 7  # the void pixel is left out
    # IoU: class 0: 3 / 5, class 1: 1 / 2, class 2: 1 / 2.
    assert metrics.mean_iou(m) == pytest.approx((3 / 5 + 1 / 2 + 1 / 2) / 3)
    top, base = metrics.majority_baseline(m)
    # Everything predicted 0: IoU of 0 = 4 / 7, of 1 and 2 = 0.
    assert top == 0 and base == pytest.approx((4 / 7) / 3)


# ------------------------------------------------------------------ verdict

def test_beats_prior_needs_a_share_of_the_blind_loss_and_more_than_noise():
    rng = np.random.default_rng(1)
    steps = np.arange(120)
    blind = np.full(120, 0.8) + rng.normal(0, 0.02, 120)
    good = 1.0 - 1.6 * (1 - np.exp(-steps / 20)) + rng.normal(0, 0.03, 120)  # ends -0.6
    check = verdict.judge_beats_prior(good, blind)
    assert check.passed and check.last_mean < -0.5, check.reason
    # Ends at -0.3: below 0 by 10 noise SE, but only 38% of the blind loss removed.
    part = 1.0 * np.exp(-steps / 20) - 0.3 + rng.normal(0, 0.03, 120)
    check = verdict.judge_beats_prior(part, blind)
    assert not check.passed
    assert "the model removed 3" in check.reason and "needed below -0.36" in check.reason
    assert "(the larger of 45% of it and 4 x noise SE " in check.reason
    noisy = -0.5 + rng.normal(0, 1.5, 120)  # 62% on average, but only noise says so
    assert not verdict.judge_beats_prior(noisy, blind).passed
    assert not verdict.judge_beats_prior([0.1, math.nan, -1.0] * 10, [0.8] * 30).passed
    assert not verdict.judge_beats_prior(good, blind[:-1]).passed


# ------------------------------------------------------------------ options

@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    out = tmp_path_factory.mktemp("blocks") / "out"
    write_segmentation(out, {"train": [SegItem(i) for i in range(4)]})
    return out


def test_head_option_is_refused_for_segmentation_records(blocks, tmp_path):
    code, text = run_cli("smoketrain", str(blocks), "-o", str(tmp_path / "run"),
                         "--weights", "none", "--head", "multilabel")
    assert code == 2, text
    assert text.strip() == ("Error: --head: expected no --head for segmentation records "
                            "(they get the segmentation head), found 'multilabel'")


class _OneClass:
    def build(self, split, item):
        from cocoprep import schema
        from cocoprep.records import BuildResult, SegmentationExample
        from seg_records import encoded, png

        mask = np.zeros((item.height, item.width), np.uint8)
        ex = SegmentationExample(encoded(item.pixels(), "png"), "a.png", str(item.index),
                                 png(mask, "L"))
        return BuildResult(schema.encode_segmentation(ex), 0, {"background": 1})


def test_a_split_of_one_class_proves_nothing(tmp_path):
    out = tmp_path / "out"
    write_segmentation(out, {"train": [SegItem(i) for i in range(3)]}, builder=_OneClass())
    code, text = run_cli("smoketrain", str(out), "-o", str(tmp_path / "run"),
                         "--weights", "none")
    assert code == 1, text
    assert text.strip() == (f"Error: {out}: split 'train' holds a single class ('background') "
                            "in its masks: every pixel has the same label, so nothing shows "
                            "masks and pictures line up; a smoke-train on it could prove "
                            "nothing, so none was run")


# ------------------------------------------------------------------ whole runs

@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for corrupt in ("right", "mirror", "shift"):
        write_scenes(root / corrupt, corrupt="" if corrupt == "right" else corrupt)
    return root


@pytest.mark.slow
def test_right_masks_pass(scenes, tmp_path):
    code, text = run_cli("smoketrain", str(scenes / "right"), "-o", str(tmp_path / "run"), *RUN)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[1] == (f"data: {scenes / 'right'} (segmentation, 4 classes), train split "
                        "'train' (48 images), validation split 'val'")
    assert lines[2] == ("model: inception_v3, weights none, 128x128 px, batch 8, segmentation "
                        "head (pixel softmax) on mixed2 (13x13 cells)")
    assert ", excess " in lines[3]
    assert lines[5].startswith("val: num_examples 16, num_pixels ")
    assert lines[-2].startswith("PASS: loss fell ") and "; excess ended -" in lines[-2]
    assert " of the best pixel-blind loss " in lines[-2] and "removed (needed 45%)" in lines[-2]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (m["head"], m["grid"], m["task"]) == ("segmentation", 13, "segmentation")
    assert [c["term"] for c in m["judgement"]["checks"]] == ["loss", "excess"]
    assert (m["judgement"]["excess_sigmas"], m["judgement"]["min_blind_share"]) == (4.0, 0.45)
    assert len(m["term_losses"]["blind"]) == len(m["losses"]) == 120
    assert m["val"]["miou"] > m["val"]["majority_miou"] + 0.2


@pytest.mark.slow
@pytest.mark.parametrize("corrupt", ["mirror", "shift"])
def test_masks_mirrored_or_shifted_against_their_pictures_fail(scenes, tmp_path, corrupt):
    code, text = run_cli("smoketrain", str(scenes / corrupt), "-o", str(tmp_path / "run"), *RUN)
    assert code == 1, text
    assert text.splitlines()[-2].startswith("FAIL: excess: over the last 12 step(s) the model "
                                            "removed ")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    loss, excess = m["judgement"]["checks"]
    assert loss["passed"]  # the loss still falls: learning the class frequencies
    assert not excess["passed"]
