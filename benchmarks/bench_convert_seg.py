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
* the same with each JPEG decoded at 1/8 scale (libjpeg's DCT scaling still reads
  every byte): the decode the converter's image check does, so the stricter floor;
* convert: `convert_segmentation` with --workers, images/s with the fixed start-up
  (a one-image-per-worker run just before) subtracted, and its ratio to the bare
  decode (the issue asks for at least 0.8x at 2000 images).

`--panoptic-scale N` instead generates a COCO panoptic set of N distinct 160x120
images (`annotations/panoptic_train2017.json`, one PNG of 4-12 segments per image,
things and stuff, some crowd), runs `cocoprep convert` on it (`--panoptic` with
`--with-instances`) in a subprocess and prints the wall time and the peak RSS of
the parent and of the largest worker (the issue's bound: 1 GB at 118k images).

Usage:
    python benchmarks/bench_convert_seg.py [--images 2000] [--workers N] [--rounds 3]
    python benchmarks/bench_convert_seg.py --images 8 --rounds 1   # does it run?
    python benchmarks/bench_convert_seg.py --panoptic-scale 118000 [--with-instances]
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


def _decode_pair(paths: tuple[str, str], eighth: bool = False) -> int:
    with Image.open(paths[0]) as im:
        if eighth:
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
    with Image.open(paths[1]) as m:
        return int(np.asarray(m).shape[0])


def _decode_pair_eighth(paths: tuple[str, str]) -> int:
    return _decode_pair(paths, eighth=True)


def bare_decode(pairs: list[tuple[str, str]], workers: int, eighth: bool = False) -> float:
    """Images/s of decoding every image (at 1/8 scale: `eighth`) and mask once, in
    `workers` processes."""
    decode = _decode_pair_eighth if eighth else _decode_pair
    with mp.get_context("forkserver").Pool(workers) as pool:
        pool.map(decode, pairs[:workers * 2])  # start the workers
        t = time.perf_counter()
        pool.map(decode, pairs, chunksize=32)
        return len(pairs) / (time.perf_counter() - t)


def timed_convert(src: Path, out: Path, workers: int) -> float:
    from cocoprep.segconvert import convert_segmentation

    t = time.perf_counter()
    convert_segmentation(src, out, workers=workers, quiet=True)
    return time.perf_counter() - t


# ---------------------------------------------------------------- panoptic scale

PAN_W, PAN_H = 160, 120
PAN_CATEGORIES = [{"id": i, "name": f"thing{i}", "isthing": 1} for i in range(1, 81)] + \
    [{"id": i, "name": f"stuff{i}", "isthing": 0} for i in range(92, 145)]


def _panoptic_item(job: tuple[str, int]) -> dict:
    root, i = job
    rng = np.random.default_rng((11, i))
    seg = np.zeros((PAN_H, PAN_W), np.int64)
    info = []
    for k in range(int(rng.integers(4, 13))):
        sid = int(rng.integers(1, 2**24))
        cat = PAN_CATEGORIES[int(rng.integers(0, len(PAN_CATEGORIES)))]
        x, y = int(rng.integers(0, PAN_W - 20)), int(rng.integers(0, PAN_H - 20))
        seg[y:y + int(rng.integers(8, 60)), x:x + int(rng.integers(8, 80))] = sid
        info.append({"id": sid, "category_id": cat["id"], "iscrowd": int(k == 0 and i % 50 == 0),
                     "bbox": [x, y, 8, 8], "area": 64})
    present = set(np.unique(seg).tolist())
    info = [s for s in info if s["id"] in present]
    rgb = np.stack([seg % 256, (seg >> 8) % 256, seg >> 16], -1).astype(np.uint8)
    name = f"{i:012d}"
    Image.fromarray(rgb, "RGB").save(Path(root) / "annotations" / "panoptic_train2017" /
                                     f"{name}.png")
    (Path(root) / "train2017" / f"{name}.jpg").write_bytes(
        photo_jpeg(PAN_W, PAN_H, seed=(13, i), quality=85))
    return {"image": {"id": i, "file_name": f"{name}.jpg", "width": PAN_W, "height": PAN_H},
            "annotation": {"image_id": i, "file_name": f"{name}.png", "segments_info": info}}


def generate_panoptic(root: Path, n: int, workers: int) -> Path:
    params = {"version": VERSION, "n": n, "kind": "panoptic", "size": [PAN_W, PAN_H]}
    marker = root / ".params.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "annotations" / "panoptic_train2017").mkdir(parents=True)
    (root / "train2017").mkdir()
    t = time.perf_counter()
    with mp.get_context("forkserver").Pool(workers) as pool:
        rows = pool.map(_panoptic_item, [(str(root), i) for i in range(1, n + 1)], chunksize=64)
    data = {"images": [r["image"] for r in rows], "annotations": [r["annotation"] for r in rows],
            "categories": PAN_CATEGORIES}
    (root / "annotations" / "panoptic_train2017.json").write_text(json.dumps(data))
    marker.write_text(json.dumps(params))
    print(f"generated {n} panoptic images in {time.perf_counter() - t:.1f} s")
    return root


def bench_panoptic(args, workers: int) -> None:
    import subprocess
    import threading

    from benchmarks.bench_convert import _tree_rss

    root = generate_panoptic(DATA / f"panoptic_{args.panoptic_scale}", args.panoptic_scale,
                             workers)
    out = DATA / "seg_out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "cocoprep", "convert", str(root), "-o", str(out), "--quiet",
           "--workers", str(workers)] + (["--panoptic"] if args.with_instances else [])
    print("running:", " ".join(cmd), f"(load {os.getloadavg()[0]:.1f})")
    peaks = {"parent": 0, "child": 0}
    done = threading.Event()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                            stderr=subprocess.PIPE, text=True)

    def sample():
        while not done.is_set():
            tree = _tree_rss(proc.pid)
            peaks["parent"] = max(peaks["parent"], tree.get(proc.pid, 0))
            peaks["child"] = max([peaks["child"], *(v for p, v in tree.items() if p != proc.pid)])
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"convert failed ({proc.returncode}): {err[-2000:]}")
    print(f"COCO panoptic, {args.panoptic_scale} images: wall {wall:.1f} s "
          f"({args.panoptic_scale / wall:.0f} images/s); peak RSS parent "
          f"{peaks['parent'] / 2**20:.0f} MiB, largest worker {peaks['child'] / 2**20:.0f} MiB")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--masks", choices=("palette", "grey"), default="palette")
    ap.add_argument("--panoptic-scale", type=int, default=None, metavar="N")
    ap.add_argument("--with-instances", action="store_true",
                    help="--panoptic-scale: convert with --panoptic")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    if args.panoptic_scale:
        bench_panoptic(args, workers)
        return
    root = generate(DATA / f"seg_bench_{args.images}_{args.masks}", args.images, args.masks,
                    workers)
    tiny = generate(DATA / f"seg_bench_{workers}_{args.masks}", workers, args.masks, workers)
    pairs = [(str(p), str(root / "masks" / (p.stem + ".png")))
             for p in sorted((root / "images").glob("*.jpg"))]
    out = DATA / "seg_out"
    print(f"set: {len(pairs)} images {WIDTH}x{HEIGHT} + {args.masks} masks, workers {workers}, "
          f"load {os.getloadavg()[0]:.1f}")
    bare, eighth, rates, walls = [], [], [], []
    for _ in range(max(1, args.rounds)):  # interleaved: bare, start-up, convert
        bare.append(bare_decode(pairs, workers))
        eighth.append(bare_decode(pairs, workers, eighth=True))
        startup = timed_convert(tiny, out, workers)
        wall = timed_convert(root, out, workers)
        walls.append(wall)
        rates.append(len(pairs) / max(wall - startup, 1e-9))
    best_bare, best = max(bare), max(rates)
    print(f"bare decode (image + mask): {best_bare:8.0f} images/s  [best of {len(bare)}]")
    print(f"bare decode, JPEG at 1/8 scale: {max(eighth):8.0f} images/s")
    print(f"convert --task segmentation: {best:8.0f} images/s = {best / best_bare:.2f}x the "
          f"bare decode, {best / max(eighth):.2f}x the 1/8-scale one  [best wall "
          f"{min(walls):.2f} s; fixed start-up subtracted]")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
