"""Shared builders: tiny images and datasets made in tmp_path."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def image_bytes(width: int = 32, height: int = 24, *, fmt: str = "JPEG", mode: str = "RGB",
                seed: int = 0, **save_kwargs) -> bytes:
    """A small noisy image of the given mode, encoded as `fmt`."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def write_image(path: Path, width: int = 32, height: int = 24, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = kwargs.pop("fmt", None) or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    path.write_bytes(image_bytes(width, height, fmt=fmt, **kwargs))
    return path


def coco_dict(images, annotations, categories=None) -> dict:
    """A minimal COCO instances dict. `images` is a list of (id, file_name, w, h)."""
    if categories is None:
        categories = [{"id": 1, "name": "person", "supercategory": "p"},
                      {"id": 3, "name": "car", "supercategory": "v"}]
    return {
        "images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
        "annotations": annotations,
        "categories": categories,
    }


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
