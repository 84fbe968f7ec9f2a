"""Benchmark `cocoprep split` on a generated class-per-folder tree.

Prints, in one run on the same files:

* the JPEG decode ceiling: every image read and fully decoded with Pillow by one
  process per core (the most any converter that checks every image can reach);
* the cost of the leakage guard's pass in the parent (`folder.content_keys`), next to
  hashing every file whole (what it did before);
* `split_folder` images/s end to end (listing, hashing, worker start-up, checks,
  records, shards, manifest) and as a share of the ceiling;
* the fixed start-up cost (a split of a tiny tree), to tell it from per-image work.

The tree (default 4000 photo-like JPEGs in 10 classes) is generated once under
benchmarks/data/ (git-ignored) and reused while its parameters stay the same.

    python benchmarks/bench_split.py                    # the recorded configuration
    python benchmarks/bench_split.py --images 2000 --workers 4
    python benchmarks/bench_split.py --images 200 --size 320x240   # a quick check
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing


def _photo(rng: np.random.Generator, width: int, height: int, hue: int) -> Image.Image:
    """Smooth colour fields, a few shapes and sensor-like noise: compresses like a photo."""
    coarse = rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8)
    base = Image.fromarray(coarse, "RGB").resize((width, height), Image.BICUBIC)
    arr = np.asarray(base, dtype=np.int16)
    arr[..., hue % 3] = np.clip(arr[..., hue % 3] + 60, 0, 255)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(3):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(min(width, height) // 10, min(width, height) // 3)
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        arr[inside] = rng.integers(0, 256, 3)
    arr += rng.normal(0, 6, arr.shape).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _make_class(args: tuple[Path, str, int, int, int, int, int]) -> int:
    root, name, start, count, width, height, seed = args
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(start, start + count):
        index = int(name.rsplit("_", 1)[1])
        rng = np.random.default_rng([seed, index, i])
        buf = io.BytesIO()
        _photo(rng, width, height, index).save(buf, "JPEG", quality=90)
        (d / f"{name}_{i:05d}.jpg").write_bytes(buf.getvalue())
        total += len(buf.getvalue())
    return total


def make_tree(root: Path, images: int, classes: int, width: int, height: int,
              seed: int = 0) -> Path:
    params = {"images": images, "classes": classes, "size": [width, height], "seed": seed,
              "version": 2}
    stamp = root / ".params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    jobs = []
    for c in range(classes):
        per = images // classes + (1 if c < images % classes else 0)
        name = f"class_{c:02d}"
        for start in range(0, per, 100):
            jobs.append((root, name, start, min(100, per - start), width, height, seed))
    with mp.get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_make_class, jobs)
    stamp.write_text(json.dumps(params))  # a hidden file: split ignores it
    return root


def _decode_chunk(job: tuple[list[str], bool]) -> int:
    paths, scaled = job
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        im = Image.open(io.BytesIO(data))
        if scaled:  # what the pass-through check does (cocoprep.images._decode_fully)
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
    return len(paths)


def decode_ceiling(paths: list[str], processes: int, *, scaled: bool = False) -> float:
    """Seconds to read and decode every file, one process per core."""
    chunks = [(paths[i::processes * 8], scaled) for i in range(processes * 8)]
    with mp.get_context("fork").Pool(processes) as pool:
        pool.map(_decode_chunk, [(paths[:processes], scaled)] * processes)  # warm up
        t0 = time.perf_counter()
        assert sum(pool.map(_decode_chunk, chunks, chunksize=1)) == len(paths)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", default="500x375", help="WxH of the generated images")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--data", type=Path, default=HERE / "data" / "split_tree")
    ap.add_argument("--keep", action="store_true", help="keep the output (benchmarks/out/)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="best of this many runs for every timing (short runs are noisy)")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from cocoprep.sources import folder
    from cocoprep.split import split_folder

    t0 = time.perf_counter()
    src = make_tree(args.data, args.images, args.classes, width, height)
    made = time.perf_counter() - t0
    listing = folder.list_tree(src)
    paths = [str(src / f.path) for f in listing.files]
    mb = sum(os.path.getsize(p) for p in paths) / 1e6
    cores = os.cpu_count() or 1
    print(f"tree: {src}  {len(paths)} images, {len(listing.classes)} classes, "
          f"{width}x{height} JPEG q90, {mb:.1f} MB (ready in {made:.1f} s)")
    print(f"machine: {cores} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    rounds = max(1, args.rounds)
    print(f"every timing below is the best of {rounds} runs")
    ceiling_s = min(decode_ceiling(paths, cores) for _ in range(rounds))
    ceiling = len(paths) / ceiling_s
    print(f"JPEG decode ceiling (read + full Pillow decode, {cores} processes): "
          f"{ceiling_s:.2f} s = {ceiling:.0f} img/s")
    check_s = min(decode_ceiling(paths, cores, scaled=True) for _ in range(rounds))
    check = len(paths) / check_s
    print(f"  for reference, read + DCT-scaled check decode (what a pass-through JPEG "
          f"costs): {check_s:.2f} s = {check:.0f} img/s")

    def best_of(fn):
        best, value = float("inf"), None
        for _ in range(rounds):
            t0 = time.perf_counter()
            value = fn([f.path for f in listing.files])
            best = min(best, time.perf_counter() - t0)
        return best, value

    hash_s, digests = best_of(lambda names: folder.hash_files(src, names))
    assert all(isinstance(d, str) for d in digests)
    print(f"sha256 of every file in the parent, threads (the leakage guard before "
          f"2026-12-08): {hash_s:.2f} s = {len(paths) / hash_s:.0f} img/s, {mb / hash_s:.0f} MB/s")
    hash_s, keys = best_of(lambda names: folder.content_keys(src, names))
    whole = sum(len(k) == 64 for k in keys if isinstance(k, str))
    print(f"leakage guard now (folder.content_keys: size and last 4 KiB of every file, sha256 "
          f"of the {whole} that could be copies): {hash_s:.2f} s = {len(paths) / hash_s:.0f} img/s")

    out_root = HERE / "out" if args.keep else Path(tempfile.mkdtemp(prefix="bench-split-"))
    try:
        tiny = out_root / "tiny_tree"
        for c in listing.classes[:2]:
            (tiny / c).mkdir(parents=True, exist_ok=True)
            for f in [f for f in listing.files if f.class_name == c][:4]:
                shutil.copy(src / f.path, tiny / c / Path(f.path).name)
        fixed_s = split_s = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            split_folder(tiny, out_root / "tiny_out", workers=args.workers, quiet=True)
            fixed_s = min(fixed_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            m = split_folder(src, out_root / "split_out", ratio="0.8,0.1,0.1",
                             workers=args.workers, quiet=True)
            split_s = min(split_s, time.perf_counter() - t0)
    finally:
        if not args.keep:
            shutil.rmtree(out_root, ignore_errors=True)
    rate = m.num_examples / split_s
    shards = m.num_shards
    print(f"split (workers {args.workers}, {shards} shards): {m.num_examples} img in "
          f"{split_s:.2f} s = {rate:.0f} img/s = {100 * rate / ceiling:.0f}% of the ceiling, "
          f"{100 * rate / check:.0f}% of the check-decode rate")
    print(f"  hashing is {100 * hash_s / split_s:.1f}% of the split time; fixed start-up "
          f"(split of 8 images: worker start, TensorFlow import) {fixed_s:.2f} s")
    if split_s > fixed_s:
        steady = m.num_examples / (split_s - fixed_s)
        print(f"  without the fixed start-up: {steady:.0f} img/s = "
              f"{100 * steady / ceiling:.0f}% of the ceiling, {100 * steady / check:.0f}% of "
              "the check-decode rate (pass-through JPEGs are checked with libjpeg's "
              "DCT-scaled decode, which reads every byte but skips most of the full decode)")


if __name__ == "__main__":
    main()
