"""cocoprep.load on segmentation records: the mask comes back as stored and keeps
agreeing with the picture through every augmentation (nearest-neighbour only, void
padding, seeded)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import cocoprep
from cocoprep import schema
from cocoprep.augment import (ColorJitter, Letterbox, RandomCrop, RandomFlip, RandomResizedCrop,
                              Resize, ScaleJitter, resize_class_mask)
from cocoprep.errors import UsageError
from cocoprep.records import BuildResult, SegmentationExample
from seg_records import (COLOURS, SEG_CLASSES, VOID_COLOUR, SegBuilder, SegItem, encoded, png,
                         write_segmentation)

TRAIN = [SegItem(i, 64 + 8 * (i % 3), 48 + 8 * (i % 2), block=16) for i in range(6)]
VAL = [SegItem(100, 40, 56)]
STORED = {str(item.index): item for item in TRAIN + VAL}
VOID = schema.VOID_ID


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "out"
    write_segmentation(out, {"train": TRAIN, "val": VAL})
    return out


def elements(ds) -> list[dict]:
    return [{k: v.numpy() for k, v in e.items()} for e in ds]


def uniform_near(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """True where every mask pixel within `radius` (a square) has the same id: there
    the bilinear picture cannot blend two classes at scales up to `radius`."""
    h, w = mask.shape
    padded = np.pad(mask.astype(np.int32), radius, constant_values=-1)
    same = np.ones((h, w), bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            same &= padded[dy:dy + h, dx:dx + w] == mask
    return same


def check_agreement(image: np.ndarray, mask: np.ndarray, *, tol: float = 3.0) -> dict:
    """Mask and picture tell the same story: a class pixel has its class's colour,
    a void pixel is white (void drawn in the picture) or black (padding), and every
    black pixel is void. Returns how many pixels each rule checked."""
    assert mask.dtype == np.uint8 and image.shape[:2] == mask.shape
    assert set(np.unique(mask)) <= set(range(len(SEG_CLASSES))) | {VOID}
    inner = uniform_near(mask)
    image = image.astype(np.float32)
    known = inner & (mask != VOID)
    colour = COLOURS[np.where(known, mask, 0)].astype(np.float32)
    bad = known & (np.abs(image - colour).max(axis=-1) > tol)
    assert not bad.any(), f"{bad.sum()} class pixels of the wrong colour"
    black = np.abs(image).max(axis=-1) <= tol
    white = np.abs(image - np.array(VOID_COLOUR, np.float32)).max(axis=-1) <= tol
    void = inner & (mask == VOID)
    assert not (void & ~(black | white)).any(), "void pixels that are neither drawn void nor padding"
    assert not (black & (mask != VOID)).any(), "padding with a class id"
    return {"class": int(known.sum()), "padding": int((black & (mask == VOID)).sum())}


# ------------------------------------------------------------------ round trip

def test_round_trip_gives_the_stored_mask_and_pixels(seg):
    got = elements(cocoprep.load(seg, "train", shuffle=False))
    assert len(got) == len(TRAIN)
    for e in got:
        item = STORED[e["image_id"].decode()]
        assert e["filename"].decode() == f"{item.index:06d}.png"
        assert e["mask"].dtype == np.uint8
        np.testing.assert_array_equal(e["mask"], item.mask())
        np.testing.assert_array_equal(e["image"], item.pixels())
    assert sorted(e["image_id"].decode() for e in got) == sorted(str(i.index) for i in TRAIN)


def test_describe_says_how_masks_are_read(seg):
    info = cocoprep.describe(seg, "val")
    assert info.task == "segmentation"
    assert info.class_names == list(SEG_CLASSES)
    assert info.label_map.ids == [0, 1, 2, 3]
    assert info.void_id == VOID == 255
    assert "nearest-neighbour only" in info.mask_rule and "padding is void (255)" in info.mask_rule
    assert info.decode_rule.startswith("full scale")
    assert cocoprep.describe(seg, "train").num_examples == len(TRAIN)


def test_glob_infers_segmentation(seg):
    info = cocoprep.describe(str(seg / "train.tfrecord-*"))
    assert info.task == "segmentation" and info.void_id == VOID
    masks = [e["mask"] for e in elements(cocoprep.load(str(seg / "val.tfrecord-*")))]
    np.testing.assert_array_equal(masks[0], VAL[0].mask())


def test_batches_stack_images_and_masks(seg):
    batch = next(iter(cocoprep.load(seg, "train", batch_size=4, image_size=(32, 40),
                                    augment="default", seed=0)))
    assert batch["image"].shape == (4, 32, 40, 3) and batch["image"].dtype == tf.float32
    assert batch["mask"].shape == (4, 32, 40) and batch["mask"].dtype == tf.uint8
    image, mask = next(iter(cocoprep.load(seg, "train", batch_size=3, image_size=24,
                                          as_supervised=True)))
    assert image.shape == (3, 24, 24, 3) and mask.shape == (3, 24, 24)


# ------------------------------------------------------------------ augmentation

OPS = {
    "flip": lambda: [RandomFlip(p=1.0)],
    "crop": lambda: [RandomCrop(p=1.0)],
    "scale_jitter": lambda: [ScaleJitter((40, 48), (0.5, 2.0))],
    "letterbox": lambda: [Letterbox(72)],
    "resize": lambda: [Resize((80, 96))],
    "colour": lambda: [ColorJitter(0.0, 0.0, saturation=0.0, hue=0.0)],
    "all": lambda: [RandomFlip(), RandomCrop(p=1.0), ScaleJitter(48, (0.5, 2.0))],
    "default": lambda: "default",
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_mask_and_picture_agree_after_every_augmentation(seg, name):
    checked = {"class": 0, "padding": 0, "all": 0}
    for seed in range(3):
        size = 48 if name in ("default", "crop", "flip") else None
        for e in elements(cocoprep.load(seg, "train", augment=OPS[name](), image_size=size,
                                        seed=seed)):
            for key, n in check_agreement(e["image"], e["mask"]).items():
                checked[key] += n
            checked["all"] += e["mask"].size
    # A good share of the pixels is checked (the rules cannot pass on nothing).
    assert checked["class"] > 0.2 * checked["all"]
    if name in ("letterbox", "scale_jitter", "all", "default"):
        assert checked["padding"] > 0


def test_flip_mirrors_the_mask_exactly(seg):
    plain = elements(cocoprep.load(seg, "val"))[0]
    flipped = elements(cocoprep.load(seg, "val", augment=[RandomFlip(p=1.0)]))[0]
    np.testing.assert_array_equal(flipped["mask"], plain["mask"][:, ::-1])
    np.testing.assert_array_equal(flipped["image"], plain["image"][:, ::-1])


def test_the_checker_catches_a_mirrored_mask(seg):
    e = elements(cocoprep.load(seg, "val"))[0]
    with pytest.raises(AssertionError, match="wrong colour"):
        check_agreement(e["image"], e["mask"][:, ::-1])


def test_letterbox_pads_the_mask_with_void_and_the_picture_with_zero(seg):
    # VAL[0] is 40 wide, 56 high: letterboxed into 56 x 56, 16 columns of padding.
    e = elements(cocoprep.load(seg, "val", image_size=56))[0]
    np.testing.assert_array_equal(e["mask"][:, 40:], VOID)
    np.testing.assert_array_equal(e["image"][:, 40:], 0.0)
    np.testing.assert_array_equal(e["mask"][:, :40], VAL[0].mask())


def test_scale_jitter_below_the_size_pads_with_void(seg):
    op = ScaleJitter(56, (0.5, 0.5))
    e = elements(cocoprep.load(seg, "val", augment=[op]))[0]
    # 40 x 56 at half the letterbox scale: 20 x 28 of picture, the rest void.
    assert (e["mask"][:28, :20] != VOID).any()
    np.testing.assert_array_equal(e["mask"][28:], VOID)
    np.testing.assert_array_equal(e["mask"][:, 20:], VOID)
    check_agreement(e["image"], e["mask"])


def test_masks_are_resized_nearest_neighbour_only():
    # Only ids 0, 3 and void: any blend (bilinear, area) would invent 1, 2 or 129.
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, VOID], np.uint8), size=(37, 53))
    for size in ((16, 20), (75, 101), (37, 53), (5, 200)):
        out = resize_class_mask(tf.constant(mask), size).numpy()
        assert out.shape == size and out.dtype == np.uint8
        assert set(np.unique(out)) <= {0, 3, VOID}
    element = {"image": tf.zeros([37, 53, 3], tf.uint8), "mask": tf.constant(mask)}
    for op in (ScaleJitter(24, (0.5, 2.0)), Letterbox(90), Resize(64), RandomCrop()):
        for seed in range(4):
            assert set(np.unique(op(element, seed)["mask"].numpy())) <= {0, 3, VOID}


def test_same_seed_same_output_and_seeds_differ(seg):
    def run(seed):
        ds = cocoprep.load(seg, "train", batch_size=3, image_size=40, augment="default",
                           seed=seed)
        return elements(ds)

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["mask"], b["mask"])
        np.testing.assert_array_equal(a["image"], b["image"])
    assert any(not np.array_equal(a["mask"], b["mask"]) for a, b in zip(first, other))


def test_classification_only_ops_refuse_a_segmentation_element():
    element = {"image": tf.zeros([8, 8, 3], tf.uint8), "mask": tf.zeros([8, 8], tf.uint8)}
    with pytest.raises(UsageError, match="segmentation mask"):
        RandomResizedCrop(4)(element, 0)


class _SmallMask(SegBuilder):
    """A record whose mask is smaller than its picture (what verify reports)."""

    def build(self, split, item):
        ex = SegmentationExample(encoded(item.pixels(), "png"), "bad.png", str(item.index),
                                 png(item.mask()[:-1], "L"))
        return BuildResult(schema.encode_segmentation(ex), 0, {})


def test_a_mask_of_another_size_stops_the_reader_with_a_reason(tmp_path):
    out = tmp_path / "out"
    write_segmentation(out, {"train": [SegItem(1)]}, builder=_SmallMask())
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask size differs from its image"):
        elements(cocoprep.load(out, "train"))


def test_default_set_is_flip_then_scale_jitter_and_apply_moves_masks():
    from cocoprep.augment import apply, default_ops

    ops = default_ops("segmentation", (48, 64))
    assert [type(op).__name__ for op in ops] == ["RandomFlip", "ScaleJitter"]
    assert ops[1].output_size == (48, 64) and ops[1].scale_range == (0.5, 2.0)
    assert [type(op).__name__ for op in default_ops("segmentation")] == ["RandomFlip"]
    item = TRAIN[0]
    ds = tf.data.Dataset.from_tensors({"image": tf.constant(item.pixels()),
                                       "mask": tf.constant(item.mask())}).repeat(3)
    for e in elements(apply(ds, "default", 0, task="segmentation")):
        check_agreement(e["image"], e["mask"])
        assert e["mask"].shape == item.mask().shape  # without a size: flip only
