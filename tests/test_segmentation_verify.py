"""`verify` checks every segmentation mask (decodes as an 8-bit one-channel PNG,
the image's size, values in the label map or void); `inspect` shows each class's
share of pixels per split."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from cocoprep.framing import RecordWriter
from cocoprep.manifest import Manifest
from cocoprep.records import SegmentationExample
from cocoprep.schema import encode_segmentation
from cocoprep.segconvert import convert_segmentation
from conftest import image_bytes, run_cli
from seg_builders import H, VOID, W, pairs_tree, png_bytes, rgb_png


@pytest.fixture
def seg_out(tmp_path):
    expected = pairs_tree(tmp_path / "src", splits=("train", "val"), n=3)
    convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    return tmp_path / "out", expected


def test_intact_output_passes(seg_out):
    out, _ = seg_out
    code, output = run_cli("verify", out, "--workers", "1")
    assert code == 0, output
    assert output.strip() == "OK: 6 examples in 2 shards (splits train 3, val 3)"


def _replace_val_shard(out, mask: bytes) -> None:
    """The val shard rewritten as one record holding `mask`, the manifest updated to
    match (so only the mask itself is wrong)."""
    from cocoprep.images import prepare_image

    image = prepare_image(image_bytes(W, H))
    record = encode_segmentation(SegmentationExample(image, "x.jpg", "x", mask))
    manifest = Manifest.read(out)
    info = manifest.splits["val"]
    (shard,) = info.shards
    with open(out / shard.file, "wb") as f:
        writer = RecordWriter(f)
        writer.write(record)
    shard = replace(shard, num_examples=1, sha256=writer.sha256(), size_bytes=writer.size_bytes)
    data = json.loads(manifest.to_json())
    data["splits"]["val"].update(num_examples=1, shards=[shard.__dict__], class_counts={})
    (out / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("make, problem", [
    (lambda: png_bytes(np.full((H, W), 7, np.uint8)),
     "mask: value(s) 7 are not in labels.txt and not void (255)"),
    (lambda: png_bytes(np.zeros((H // 2, W), np.uint8)),
     f"mask: decoded size {W}x{H // 2} != stored width x height {W}x{H}"),
    (lambda: rgb_png(np.zeros((H, W), np.uint8), {0: 0x102030}),
     "mask: a RGB image, expected an 8-bit one-channel PNG (what "
     "tf.io.decode_image(channels=1) reads as ids)"),
    (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "mask: PNG data does not decode"),
])
def test_a_bad_mask_is_named_with_its_record(seg_out, make, problem):
    out, _ = seg_out
    _replace_val_shard(out, make())
    code, output = run_cli("verify", out, "--workers", "1")
    assert code == 1
    shard = Manifest.read(out).splits["val"].shards[0].file
    assert f"{shard}: record 0 (image x): {problem}" in output
    assert output.strip().splitlines()[-1].startswith("FAILED:")


def test_inspect_shows_pixel_shares_per_split(seg_out):
    out, expected = seg_out
    code, output = run_cli("inspect", out, "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["task"] == "segmentation"
    for split in ("train", "val"):
        masks = [m for k, m in expected.items() if k.startswith(split + "/")]
        total = sum(m.size for m in masks)
        entry = report["splits"][split]
        assert entry["pixels"] == total
        assert entry["void_pixels"] == sum(int((m == VOID).sum()) for m in masks)
        for k, name in enumerate(("background", "cat", "dog")):
            pixels = sum(int((m == k).sum()) for m in masks)
            assert entry["classes"][name] == pixels
            assert entry["class_share"][name] == round(pixels / total, 4)
    code, text = run_cli("inspect", out)
    assert code == 0
    share = json.loads(output)["splits"]["train"]["class_share"]["background"]
    assert f"{100 * share:5.1f}%" in text
    assert "(pixels and share of all pixels per class)" in text
