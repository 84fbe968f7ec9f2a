"""Shared builders: tiny images and datasets made in tmp_path."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from cocoprep import schema
from cocoprep.cli import cli
from cocoprep.manifest import Manifest

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


def photo_jpeg(h: int, w: int) -> bytes:
    """An h x w JPEG (q90) of smooth gradients, like a photo to a DCT-scaled decode."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w)], -1)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, "JPEG", quality=90)
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


# ------------------------------------------------------------------ the CLI in-process

def invoke(*args, catch_exceptions: bool = True) -> Result:
    """Run `cocoprep ARGS...` in-process (arguments str()'d). With
    `catch_exceptions=False` a traceback fails the test instead of becoming exit 1."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch_exceptions)


def run_cli(*args, catch_exceptions: bool = True) -> tuple[int, str]:
    """`invoke`, as (exit code, stdout and stderr)."""
    result = invoke(*args, catch_exceptions=catch_exceptions)
    return result.exit_code, result.output


# ------------------------------------------------------------------ reading records back

def raw_records(path) -> list[bytes]:
    """The serialized records of one shard file."""
    import tensorflow as tf

    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def parse_record(task_schema: schema.TaskSchema, serialized) -> dict:
    """Parse serialized records (a scalar or a batch) into a dict keyed by feature
    name; lists come back dense (padded with the dtype's zero in a batch)."""
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, schema.parse_spec(task_schema))
    out = {}
    for f in task_schema.features:
        value = parsed[f.key]
        if isinstance(value, tf.sparse.SparseTensor):
            value = tf.sparse.to_dense(value)
        out[f.name] = value.numpy()
    return out


def read_records(out: Path, split: str) -> list[dict]:
    """Every record of `split` in an output directory, by feature name; text
    scalars as str (the image bytes stay bytes), lists as numpy arrays."""
    manifest = Manifest.read(out)
    task_schema = schema.schema_for(manifest.task)
    records = []
    for path in manifest.shard_paths(out, split):
        for raw in raw_records(path):
            parsed = parse_record(task_schema, raw)
            records.append({k: v.decode() if isinstance(v, bytes) and k != "encoded" else v
                            for k, v in parsed.items()})
    return records
