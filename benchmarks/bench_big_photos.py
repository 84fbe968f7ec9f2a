"""Benchmark `cocoprep split` on camera-sized photos, with and without `--max-side`.

Prints, for a class-folder tree of photo-like 4000x3000 JPEGs (q90, generated once
under benchmarks/data/ by `benchmarks.photos.make_photo_tree`):

* `split` wall time and total shard size without resizing and with each `--max-side`
  (runs interleaved, best of `--rounds`), with the load average before each run;
* the per-image cost of the resize step in one process (check only; resize with the
  JPEG DCT-scaled decode at >= 2x the target, as cocoprep does; resize from a full
  decode), and how far the draft-decoded result is from the full-decode one (PSNR).

    python benchmarks/bench_big_photos.py                     # 100 photos, --max-side 1024
    python benchmarks/bench_big_photos.py --images 400 --max-side 1024,512
"""

from __future__ import annotations

import argparse
import io
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

from benchmarks.photos import make_photo_tree  # noqa: E402


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _split(src: Path, out: Path, max_side: int | None, workers: int) -> tuple[float, int, int]:
    """Seconds, total shard bytes, images resized."""
    from cocoprep.split import split_folder

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    m = split_folder(src, out, ratio="0.8,0.2", workers=workers, quiet=True, max_side=max_side)
    seconds = time.perf_counter() - t0
    size = sum(sh.size_bytes for s in m.splits.values() for sh in s.shards)
    resized = m.counters.get("images_resized", 0)
    shutil.rmtree(out, ignore_errors=True)
    return seconds, size, resized


def _psnr(a: bytes, b: bytes) -> float:
    x = np.asarray(Image.open(io.BytesIO(a)), np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)), np.float64)
    mse = ((x - y) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def step_costs(paths: list[Path], max_sides: list[int], rounds: int) -> None:
    """The resize step alone, in this process (best of `rounds` per image)."""
    from cocoprep import images
    from cocoprep.images import prepare_image

    def best(fn) -> float:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    datas = [p.read_bytes() for p in paths]
    check = sum(best(lambda d=d: prepare_image(d)) for d in datas) / len(datas)
    print(f"  check only (pass-through): {1000 * check:.0f} ms/image")
    for side in max_sides:
        drafted = sum(best(lambda d=d: prepare_image(d, max_side=side)) for d in datas)
        full = sum(best(lambda d=d: prepare_image(d, max_side=side, fast_verify=False))
                   for d in datas)
        psnr = min(_psnr(prepare_image(d, max_side=side).data,
                         prepare_image(d, max_side=side, fast_verify=False).data) for d in datas)
        n = len(datas)
        print(f"  --max-side {side}: {1000 * drafted / n:.0f} ms/image as cocoprep does it "
              f"(JPEG decoded at the smallest DCT scale >= 2x the target), "
              f"{1000 * full / n:.0f} ms/image from a full-size decode; "
              f"worst PSNR between the two: {psnr:.1f} dB")
        margin = resize.DRAFT_MARGIN
        resize.DRAFT_MARGIN = 1  # what a decode at the smallest scale >= the target gives
        try:
            loose = sum(best(lambda d=d: prepare_image(d, max_side=side)) for d in datas)
            psnr = min(_psnr(prepare_image(d, max_side=side).data,
                             prepare_image(d, max_side=side, fast_verify=False).data)
                       for d in datas)
        finally:
            resize.DRAFT_MARGIN = margin
        print(f"    (for comparison, a DCT scale >= 1x the target: {1000 * loose / n:.0f} "
              f"ms/image, worst PSNR vs the full decode {psnr:.1f} dB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--size", default="4000x3000", help="WxH of the generated photos")
    ap.add_argument("--max-side", default="1024", help="comma-separated --max-side values")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    ap.add_argument("--step-images", type=int, default=6,
                    help="images timed for the per-image step costs (0: skip)")
    ap.add_argument("--step-max-side", default="1024,512",
                    help="--max-side values of the per-image step costs")
    ap.add_argument("--data", type=Path, default=HERE / "data" / "big_photos")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    sides = [int(v) for v in args.max_side.split(",") if v]

    t0 = time.perf_counter()
    src = make_photo_tree(args.data, images=args.images, classes=args.classes, width=width,
                          height=height)
    paths = sorted(src.glob("*/*.jpg"))
    mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"tree: {src}  {len(paths)} photo-like {width}x{height} JPEGs (q90) in "
          f"{args.classes} classes, {mb:.1f} MB (ready in {time.perf_counter() - t0:.0f} s)")
    print(f"machine: {os.cpu_count()} cores, split --workers {args.workers}, "
          f"load average {_load()}")

    configs: list[int | None] = [None, *sides]
    best: dict[int | None, tuple[float, int, int]] = {}
    out = Path(tempfile.mkdtemp(prefix="bench-big-photos-"))
    try:
        for r in range(max(1, args.rounds)):
            for side in configs:  # interleaved: a load spike hits every configuration
                load = _load()
                seconds, size, resized = _split(src, out / "o", side, args.workers)
                label = "no resize" if side is None else f"--max-side {side}"
                print(f"  round {r + 1}: {label:<16} {seconds:7.1f} s  shards "
                      f"{size / 1e6:7.1f} MB  resized {resized:4d}  (load before: {load})")
                if side not in best or seconds < best[side][0]:
                    best[side] = (seconds, size, resized)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    base_s, base_size, _ = best[None]
    print(f"best of {args.rounds}:")
    for side in configs:
        seconds, size, resized = best[side]
        label = "no resize" if side is None else f"--max-side {side}"
        print(f"  {label:<16} {seconds:7.1f} s = {len(paths) / seconds:5.1f} img/s "
              f"({seconds / base_s:.2f}x the time), shards {size / 1e6:7.1f} MB "
              f"({size / base_size:.3f}x), {size / max(1, len(paths)) / 1e3:6.0f} KB/image")
    if args.step_images:
        print(f"resize step alone, one process, {args.step_images} images, best of "
              f"{args.rounds} each (load {_load()}):")
        step_costs(paths[:args.step_images],
                   [int(v) for v in args.step_max_side.split(",") if v], args.rounds)


if __name__ == "__main__":
    main()
