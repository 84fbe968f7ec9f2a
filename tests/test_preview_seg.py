"""cocoprep preview on segmentation outputs: masks blended over their pictures in the
class colours, at the pixels the reader gives them, with a legend under the grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from cocoprep.preview import (CAPTION_HEIGHT, LEGEND_ROW, MASK_ALPHA, PAD, VOID_COLOR,
                              class_color, grid_size)
from conftest import run_cli
from seg_records import write_segmentation

GREY = (120, 120, 120)


@dataclass(frozen=True)
class GreyItem:
    """A 32 x 16 grey picture: left half `cat` (id 1), top-right quarter background
    (id 0), bottom-right quarter void."""

    index: int
    fmt: str = "png"
    width: int = 32
    height: int = 16

    def mask(self) -> np.ndarray:
        mask = np.ones((16, 32), np.uint8)
        mask[:8, 16:] = 0
        mask[8:, 16:] = 255
        return mask

    stored_mask = mask

    def pixels(self) -> np.ndarray:
        out = np.empty((16, 32, 3), np.uint8)
        out[:] = GREY
        return out


@pytest.fixture(scope="module")
def grey(tmp_path_factory):
    out = tmp_path_factory.mktemp("segprev") / "out"
    write_segmentation(out, {"val": [GreyItem(7)]})
    return out


def blend(colour) -> np.ndarray:
    return np.asarray(GREY) * (1 - MASK_ALPHA) + np.asarray(colour) * MASK_ALPHA


def near(pixel, colour, tol=3) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, float) - np.asarray(colour, float)) <= tol))


def test_masks_are_blended_in_class_colours_with_a_legend(grey, tmp_path):
    out = tmp_path / "p.png"
    code, text = run_cli("preview", str(grey), "--split", "val", "-n", "1", "--tile", "256",
                         "-o", str(out))
    assert code == 0, text
    arr = np.asarray(Image.open(out).convert("RGB")).astype(int)
    width, height = grid_size(1, tile=256, columns=1)
    # Legend: `0 background (untinted)`, `1 cat`, `255 void` fit one row.
    assert arr.shape == (height + LEGEND_ROW, width, 3)
    # 32 x 16 scaled x8 -> 256 x 128, resting on the caption strip.
    ox, oy = PAD, PAD + 256 - 128
    assert near(arr[oy + 64, ox + 64], blend(class_color(1)))  # cat, tinted
    assert near(arr[oy + 32, ox + 192], GREY)  # background, untinted
    assert near(arr[oy + 96, ox + 192], blend(VOID_COLOR))  # void, cream
    # The legend's swatches carry the same colours, in id order, under the grid.
    legend = arr[height + 3:height + 15]
    colours = {tuple(c) for c in legend.reshape(-1, 3).tolist()}
    assert tuple(class_color(1)) in colours and VOID_COLOR in colours
    assert near(arr[height - PAD - CAPTION_HEIGHT // 2, 2], (32, 32, 32))


def test_flip_moves_the_overlay_with_the_picture(grey, tmp_path):
    out = tmp_path / "a.png"
    code, text = run_cli("preview", str(grey), "--split", "val", "-n", "1", "--tile", "256",
                         "--augment", "--seed", "0", "-o", str(out))
    assert code == 0, text
    arr = np.asarray(Image.open(out).convert("RGB")).astype(int)
    ox, oy = PAD, PAD + 256 - 128
    left, right = arr[oy + 64, ox + 64], arr[oy + 64, ox + 192]
    # Seeded: either as stored, or mirrored (cat on the right); never the cat tint on
    # both sides nor on neither.
    cat = blend(class_color(1))
    assert near(left, cat) != near(right, cat)
