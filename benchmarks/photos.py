"""Photo-like JPEG trees for the benchmarks (shared by bench_big_photos.py and the
reader benchmark).

A generated "photo" is a smooth two-colour gradient, a low-frequency texture at
several scales (clouds, foliage), a few filled shapes with soft edges, fine
texture and mild sensor noise. It compresses like a camera photo (a 4000x3000 JPEG
at q90 is a few MB), is distinct for every file (seeded by class and index) and is
neither noise nor flat colour, so decoders and resizers do representative work.

    from benchmarks.photos import make_photo_tree
    root = make_photo_tree(Path("benchmarks/data/big_photos"), images=100, classes=4)

The tree is `root/class_XX/class_XX_NNNNN.jpg`, written once and reused while its
parameters (recorded in `root/.params.json`, a hidden file that `split` ignores)
stay the same.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

VERSION = 1  # bump when the pictures change, so old trees are rebuilt


def _octaves(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-frequency texture: random grids at several scales, upsampled smoothly."""
    out = np.zeros((height, width), np.float32)
    for cell, weight in ((400, 40.0), (120, 22.0), (30, 10.0), (6, 5.0)):
        grid = rng.normal(0, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
        layer = Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC)
        out += weight * np.asarray(layer)
    return out


def photo(width: int, height: int, *, seed: int | tuple[int, ...] = 0) -> Image.Image:
    """One photo-like RGB image, the same for the same arguments."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(20, 200, 3)
    slant = rng.uniform(-0.4, 0.4)
    t = np.clip(yy + slant * (xx - 0.5), 0, 1)
    texture = _octaves(rng, width, height)
    arr = np.empty((height, width, 3), np.float32)
    for c in range(3):
        arr[..., c] = top[c] + (bottom[c] - top[c]) * t + texture * rng.uniform(0.6, 1.2)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    shapes = Image.new("L", (width, height), 0)
    fill = Image.new("RGB", (width, height))
    draw, paint = ImageDraw.Draw(shapes), ImageDraw.Draw(fill)
    side = min(width, height)
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(side / 20, side / 4)
        box = [cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r * rng.uniform(0.5, 1.5)]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=255)
            paint.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=255)
            paint.rectangle(box, fill=colour)
    shapes = shapes.filter(ImageFilter.GaussianBlur(max(1, side // 800)))
    im = Image.composite(fill, im, shapes)
    # fine texture on the shapes too, and mild sensor noise over everything
    arr = np.asarray(im, np.float32)
    fine = rng.normal(0, 1, (height // 2 + 1, width // 2 + 1)).astype(np.float32)
    fine = np.asarray(Image.fromarray(fine, "F").resize((width, height), Image.BILINEAR))
    arr += 6.0 * fine[..., None] + rng.normal(0, 2.0, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def photo_jpeg(width: int, height: int, *, seed: int | tuple[int, ...] = 0,
               quality: int = 90) -> bytes:
    buf = io.BytesIO()
    photo(width, height, seed=seed).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _make(job: tuple[str, str, int, int, int, int, int, int]) -> int:
    root, name, c, i, width, height, quality, seed = job
    data = photo_jpeg(width, height, seed=(seed, c, i), quality=quality)
    (Path(root) / name / f"{name}_{i:05d}.jpg").write_bytes(data)
    return len(data)


def make_photo_tree(root: Path, *, images: int = 100, classes: int = 4, width: int = 4000,
                    height: int = 3000, quality: int = 90, seed: int = 0,
                    processes: int | None = None) -> Path:
    """`root/class_XX/*.jpg`: `images` photo-like JPEGs spread over `classes` folders.

    Built once; a tree with the same parameters is reused as it is.
    """
    root = Path(root)
    params = {"images": images, "classes": classes, "size": [width, height],
              "quality": quality, "seed": seed, "version": VERSION}
    stamp = root / ".params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    jobs = []
    for c in range(classes):
        name = f"class_{c:02d}"
        (root / name).mkdir(parents=True, exist_ok=True)
        count = images // classes + (1 if c < images % classes else 0)
        jobs += [(str(root), name, c, i, width, height, quality, seed) for i in range(count)]
    with mp.get_context("fork").Pool(processes or os.cpu_count() or 1) as pool:
        pool.map(_make, jobs, chunksize=1)
    stamp.write_text(json.dumps(params))
    return root
