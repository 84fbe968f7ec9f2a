"""Benchmark `cocoprep convert --task segmentation` against a bare decode of the
same images and masks, in the same run.

Generates (once, under benchmarks/data/) N photo-like JPEGs (benchmarks/photos.py)
with one mask each, as image/mask folder pairs (`images/` + `masks/` +
`classes.txt`): VOC-style palette PNGs (`--masks palette`, the default: cocoprep
re-encodes them as grey PNGs) or grey PNGs of ids (`--masks grey`: stored byte for
byte). Each mask holds a few ellipses of classes 1..20 with a void (255) border.

Prints, best of --rounds, interleaved:

* bare decode: every JPEG fully decoded by Pillow and every mask decoded to its
  array, in --workers processes (the floor the issue measures against);
* convert: `convert_segmentation` with --workers, images/s with the fixed start-up
  (a one-image-per-worker run just before) subtracted, and its ratio to the bare
  decode (the issue asks for at least 0.8x at 2000 images).

Usage:
    python benchmarks/bench_convert_seg.py [--images 2000] [--workers N] [--rounds 3]
    python benchmarks/bench_convert_seg.py --images 8 --rounds 1   # does it run?
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.photos import photo_jpeg  # noqa: E402

DATA = HERE / "data"
WIDTH, HEIGHT = 512, 384
CLASSES = 21
VERSION = 1


def _palette() -> list[int]:
    from cocoprep.sources.segmentation import voc_colour

    return [v for i in range(256) for v in
            ((voc_colour(i) >> 16), (voc_colour(i) >> 8) & 255, voc_colour(i) & 255)]


def mask_png(seed: int, mode: str) -> bytes:
    """A few ellipses of classes 1..20, each ringed with void, on background 0."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 6))):
        x, y = int(rng.integers(0, WIDTH - 60)), int(rng.integers(0, HEIGHT - 60))
        w, h = int(rng.integers(30, 200)), int(rng.integers(30, 160))
        draw.ellipse((x - 3, y - 3, x + w + 3, y + h + 3), fill=255)
        draw.ellipse((x, y, x + w, y + h), fill=int(rng.integers(1, CLASSES)))
    if mode == "palette":
        im = Image.frombytes("P", im.size, im.tobytes())
        im.putpalette(_palette())
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _write(job: tuple[str, int, str]) -> None:
    root, i, mode = job
    (Path(root) / "images" / f"{i:06d}.jpg").write_bytes(
        photo_jpeg(WIDTH, HEIGHT, seed=(7, i), quality=90))
    (Path(root) / "masks" / f"{i:06d}.png").write_bytes(mask_png(i, mode))


def generate(root: Path, n: int, mode: str, workers: int) -> Path:
    params = {"version": VERSION, "n": n, "mode": mode, "size": [WIDTH, HEIGHT]}
    marker = root / ".params.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("".join(f"class{k}\n" for k in range(CLASSES)))
    t = time.perf_counter()
    with mp.get_context("forkserver").Pool(workers) as pool:
        pool.map(_write, [(str(root), i, mode) for i in range(n)], chunksize=16)
    marker.write_text(json.dumps(params))
    print(f"generated {n} images + {mode} masks in {time.perf_counter() - t:.1f} s")
    return root


def _decode_pair(paths: tuple[str, str]) -> int:
    with Image.open(paths[0]) as im:
        im.load()
    with Image.open(paths[1]) as m:
        return int(np.asarray(m).shape[0])


def bare_decode(pairs: list[tuple[str, str]], workers: int) -> float:
    """Images/s of decoding every image and mask once, in `workers` processes."""
    with mp.get_context("forkserver").Pool(workers) as pool:
        pool.map(_decode_pair, pairs[:workers * 2])  # start the workers
        t = time.perf_counter()
        pool.map(_decode_pair, pairs, chunksize=32)
        return len(pairs) / (time.perf_counter() - t)


def timed_convert(src: Path, out: Path, workers: int) -> float:
    from cocoprep.segconvert import convert_segmentation

    t = time.perf_counter()
    convert_segmentation(src, out, workers=workers, quiet=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--masks", choices=("palette", "grey"), default="palette")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    root = generate(DATA / f"seg_bench_{args.images}_{args.masks}", args.images, args.masks,
                    workers)
    tiny = generate(DATA / f"seg_bench_{workers}_{args.masks}", workers, args.masks, workers)
    pairs = [(str(p), str(root / "masks" / (p.stem + ".png")))
             for p in sorted((root / "images").glob("*.jpg"))]
    out = DATA / "seg_out"
    print(f"set: {len(pairs)} images {WIDTH}x{HEIGHT} + {args.masks} masks, workers {workers}, "
          f"load {os.getloadavg()[0]:.1f}")
    bare, rates, walls = [], [], []
    for _ in range(max(1, args.rounds)):  # interleaved: bare, start-up, convert
        bare.append(bare_decode(pairs, workers))
        startup = timed_convert(tiny, out, workers)
        wall = timed_convert(root, out, workers)
        walls.append(wall)
        rates.append(len(pairs) / max(wall - startup, 1e-9))
    best_bare, best = max(bare), max(rates)
    print(f"bare decode (image + mask): {best_bare:8.0f} images/s  [best of {len(bare)}]")
    print(f"convert --task segmentation: {best:8.0f} images/s = {best / best_bare:.2f}x the "
          f"bare decode  [best wall {min(walls):.2f} s; fixed start-up subtracted]")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
