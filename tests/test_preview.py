"""cocoprep preview: a PNG of the expected size, boxes drawn where the reader puts them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cocoprep.preview import MASK_ALPHA, class_color, render
from conftest import read_records, run_cli
from verify_builders import DetItem, write_classification, write_detection

GRAY = (120, 120, 120)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """val holds one 64x32 grey image with one `car` box (label-map index 1) at
    x 0.25..0.75, y 0.25..0.75; train holds the same with a mask."""
    out = tmp_path_factory.mktemp("prev") / "out"
    obj = ((0.25, 0.25, 0.75, 0.75, 3, False),)
    write_detection(out, train=(DetItem(101, 64, 32, obj, masks=True, color=GRAY),),
                    val=(DetItem(201, 64, 32, obj, color=GRAY),), train_shards=1)
    return out


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def near(pixel, color, tol=3) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, color))


def test_box_edges_have_the_class_colour_at_the_expected_pixels(known, tmp_path):
    out = tmp_path / "p.png"
    code, text = run_cli("preview", str(known), "--split", "val", "-n", "1", "--tile", "256",
                         "-o", str(out))
    assert code == 0, text
    assert f"Wrote {out}" in text
    arr = png(out)
    # one tile of 256 + 8 px padding around, + a 22 px caption strip
    assert arr.shape == (8 + 256 + 22 + 8, 8 + 256 + 8, 3)
    # 64x32 scaled x4 -> 256x128, centred across (x 8), resting on the caption (y 8+256-128)
    ox, oy = 8, 136
    car = class_color(1)
    assert car != class_color(0)
    x0, x1 = ox + 64, ox + 192 - 1
    y0, y1 = oy + 32, oy + 96 - 1
    mid_y, mid_x = (y0 + y1) // 2, (x0 + x1) // 2
    assert near(arr[mid_y, x0], car) and near(arr[mid_y, x0 + 1], car)  # left edge, 2 px
    assert near(arr[mid_y, x1], car)  # right edge
    assert near(arr[y1, mid_x], car)  # bottom edge
    assert near(arr[y0, mid_x + 40], car)  # top edge, right of the label
    assert near(arr[mid_y, mid_x], GRAY)  # inside: the image (no mask here)
    assert near(arr[mid_y, x0 - 1], GRAY) and near(arr[mid_y, x1 + 1], GRAY)  # 1 px out
    assert near(arr[mid_y, x1 + 3], GRAY)
    # the label sits on the box's top-left corner, above it, in the class colour
    assert near(arr[y0 - 2, x0 + 1], car)
    assert near(arr[4, 4], (32, 32, 32))  # background


def test_masks_are_translucent_in_the_class_colour(known, tmp_path):
    out = tmp_path / "m.png"
    code, text = run_cli("preview", str(known), "-n", "1", "-o", str(out))
    assert code == 0, text
    arr = png(out)
    inside = arr[136 + 64, 8 + 128]
    expected = [g * (1 - MASK_ALPHA) + c * MASK_ALPHA for g, c in zip(GRAY, class_color(1))]
    assert near(inside, expected, tol=4)
    assert near(arr[136 + 5, 8 + 5], GRAY)  # outside the mask: untouched


def test_grid_size_and_classification_labels(tmp_path):
    write_classification(tmp_path / "cls", offset=1)
    out = tmp_path / "c.png"
    code, text = run_cli("preview", str(tmp_path / "cls"), "-n", "4", "--tile", "64",
                         "-o", str(out))
    assert code == 0, text
    arr = png(out)
    # 2x2 grid of 64 px tiles
    assert arr.shape == (8 + 2 * (64 + 22 + 8), 8 + 2 * (64 + 8), 3)
    # the swatch under the first tile has the colour of its 0-based label
    from cocoprep import load

    first = next(iter(load(tmp_path / "cls", "train", shuffle=False)))
    label = int(first["label"])
    assert near(arr[8 + 64 + 8, 8 + 5], class_color(label))


def test_labels_are_not_clipped_at_the_tile_edge():
    img = np.full((40, 40, 3), 200, np.uint8)
    ex = {"image": img, "boxes": np.array([[0.0, 0.9, 1.0, 1.0]], np.float32),
          "classes": np.array([0]), "label_ids": np.array([1]), "is_crowd": np.array([False]),
          "image_id": b"1"}
    canvas, placements = render([ex], task="detection", class_names=["a-rather-long-name"],
                                tile=128)
    arr = np.asarray(canvas).astype(int)
    p = placements[0]
    assert (p.x, p.y, p.width, p.height, p.scale) == (8, 8, 128, 128, 3.2)
    # the box hugs the right edge: its label is shifted left to stay inside the tile
    row = arr[p.y + 3]
    label_px = [x for x in range(arr.shape[1]) if near(row[x], class_color(0))]
    assert label_px and min(label_px) < p.x + 128 * 0.9 and max(label_px) <= p.x + 127


@pytest.mark.slow
def test_augment_is_seeded(known, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        code, text = run_cli("preview", str(known), "--augment", "--seed", "5", "-n", "1",
                             "-o", str(out))
        assert code == 0, text
    assert a.read_bytes() == b.read_bytes()


def test_bad_split_and_bad_n(known, tmp_path):
    code, text = run_cli("preview", str(known), "--split", "test", "-o", str(tmp_path / "x.png"))
    assert code == 2
    assert "Error:" in text and "no split 'test'" in text and "train" in text
    assert not (tmp_path / "x.png").exists()
    code, text = run_cli("preview", str(known), "-n", "0")
    assert code == 2 and "-n" in text


def test_keypoints_are_drawn_where_labelled():
    img = np.full((50, 100, 3), 200, np.uint8)
    ex = {"image": img, "boxes": np.array([[0.1, 0.1, 0.9, 0.9]], np.float32),
          "classes": np.array([2]), "label_ids": np.array([18]), "is_crowd": np.array([False]),
          "keypoints": np.array([[[0.5, 0.5], [0.8, 0.2]]], np.float32),
          "keypoint_visibility": np.array([[2, 0]]), "image_id": b"9"}
    canvas, (p,) = render([ex], task="detection", class_names=["a", "b", "c"], tile=200)
    arr = np.asarray(canvas).astype(int)
    assert (p.width, p.height, p.scale) == (200, 100, 2.0)
    assert near(arr[p.y + 50, p.x + 100], class_color(2))  # visible keypoint at (0.5, 0.5)
    assert near(arr[p.y + 80, p.x + 40], (200, 200, 200))  # visibility 0: not drawn


def test_output_that_cannot_be_written_is_an_error(known, tmp_path):
    code, text = run_cli("preview", str(known), "-n", "1", "-o", str(tmp_path))
    assert code == 2, text
    assert "Error:" in text and str(tmp_path) in text and "Traceback" not in text


def test_damaged_record_after_the_first_names_the_split_and_verify(tmp_path):
    out = tmp_path / "out"
    write_detection(out, train_shards=1)
    shard = out / "train.tfrecord-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the last record's data: its checksum no longer fits
    shard.write_bytes(bytes(data))
    code, text = run_cli("preview", str(out), "-n", "4", "-o", str(tmp_path / "p.png"))
    assert code == 2, text
    assert "Error:" in text and "train" in text and "cocoprep verify" in text
    assert not (tmp_path / "p.png").exists()


def test_empty_split_is_named_not_blamed_on_n(tmp_path):
    out = tmp_path / "out"
    write_detection(out, val=())
    code, text = run_cli("preview", str(out), "--split", "val", "-o", str(tmp_path / "p.png"))
    assert code == 2, text
    assert "Error:" in text and "split 'val'" in text and "-n" not in text
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("train, val", [("train2017", "val2017"), ("default", None)])
def test_preview_without_split_picks_the_train_like_or_only_split(tmp_path, train, val):
    """COCO 2017 names and single-split outputs (CVAT's `default`) need no --split."""
    obj = ((0.25, 0.25, 0.75, 0.75, 3, False),)
    write_detection(tmp_path / "out", train=(DetItem(101, 64, 32, obj, color=GRAY),),
                    val=(DetItem(201, 32, 32, (), color=GRAY),) if val else None,
                    names=(train, val), train_shards=1)
    out = tmp_path / "p.png"
    code, text = run_cli("preview", str(tmp_path / "out"), "-n", "1", "-o", str(out))
    assert code == 0, text
    assert out.is_file()


def test_a_yolo_image_is_captioned_by_its_file_name(tmp_path, monkeypatch):
    """YOLO's source ids are row numbers ("3"): the caption is the file name."""
    from PIL import ImageDraw

    from cocoprep.preview import preview
    from conftest import FIXTURES, invoke

    out = tmp_path / "yolo"
    assert invoke("convert", FIXTURES / "yolo", "-o", out, "-q").exit_code == 0
    drawn = []
    real = ImageDraw.ImageDraw.text

    def text(self, xy, value, *args, **kwargs):
        drawn.append(value)
        return real(self, xy, value, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    preview(out, split="train", n=2, output=tmp_path / "p.png")
    names = [r["filename"] for r in read_records(out, "train")][:2]
    assert all(any(name in d for d in drawn) for name in names), (names, drawn)
    assert not any(d.startswith("image ") for d in drawn)
