"""Smoke-train throughput: the detection head next to the image-level heads.

Prints steady-state images/s (the first, tracing step of each phase excluded) of
`cocoprep.train.smoketrain` with random weights (no download) for:

* ``detection``: the CenterNet head on InceptionV3 ``mixed2``, on detection records
  of coloured rectangles (1-3 per image);
* ``multilabel``: the image-level sigmoid head on the same records;
* ``softmax``: the classification head on a class-folder tree of the same images.

Usage: python benchmarks/bench_smoketrain.py [--sizes 128,299] [--steps 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(__file__).resolve().parent / "data" / "smoketrain"
COLOURS = ((220, 30, 30), (30, 200, 30), (30, 30, 220))


def _make_sources(n: int = 64, size: int = 320) -> tuple[Path, Path]:
    """A COCO tree and a class-folder tree of the same rectangle images (once)."""
    from PIL import Image

    coco, folders = DATA / "coco", DATA / "folders"
    if (coco / "annotations" / "instances_train.json").is_file():
        return coco, folders
    rng = np.random.default_rng(0)
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(("red", "green", "blue"))]
    (coco / "train").mkdir(parents=True, exist_ok=True)
    (coco / "annotations").mkdir(exist_ok=True)
    images, anns = [], []
    for k in range(n):
        pixels = np.full((size, size, 3), 128, np.uint8)
        first = None
        for _ in range(int(rng.integers(1, 4))):
            c = int(rng.integers(0, 3))
            first = c if first is None else first
            h, w = (int(v) for v in rng.integers(size // 6, size // 2, 2))
            y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
            pixels[y:y + h, x:x + w] = COLOURS[c]
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": c + 1,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        name = f"{k:04d}.jpg"
        Image.fromarray(pixels).save(coco / "train" / name, quality=90)
        (folders / cats[first]["name"]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folders / cats[first]["name"] / name, quality=90)
        images.append({"id": k + 1, "file_name": name, "width": size, "height": size})
    (coco / "annotations" / "instances_train.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return coco, folders


def _records(coco: Path, folders: Path) -> tuple[Path, Path]:
    from cocoprep.cli import cli

    det, cls = DATA / "det_tf", DATA / "cls_tf"
    for src, out, cmd in ((coco, det, "convert"), (folders, cls, "split")):
        if not (out / "manifest.json").is_file():
            args = [cmd, str(src), "-o", str(out), "--quiet", "--workers", "1"]
            cli.main(args, standalone_mode=False)
    return det, cls


def _run(data: Path, head: str | None, size: int, steps: int) -> tuple[float, float]:
    from cocoprep.train import smoketrain

    with tempfile.TemporaryDirectory() as run:
        r = smoketrain(data, run, weights="none", head=head, image_size=size, steps=steps,
                       batch_size=16, fine_tune_layers=30)
    p1, p2 = r.phases
    return p1.images_per_s, p2.images_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,299")
    ap.add_argument("--steps", type=int, default=10, help="steps per phase (>= 10: the run needs 20)")
    ap.add_argument("--rounds", type=int, default=1, help="best of N, interleaved")
    args = ap.parse_args()
    from cocoprep.tfimport import import_tensorflow

    import_tensorflow()
    det, cls = _records(*_make_sources())
    cases = [(s, name, data, head) for s in map(int, args.sizes.split(","))
             for name, data, head in (("detection", det, "detection"),
                                      ("multilabel", det, "multilabel"),
                                      ("softmax", cls, None))]
    best: dict = {}
    for _ in range(args.rounds):
        for size, name, data, head in cases:
            t = time.perf_counter()
            ips = _run(data, head, size, args.steps)
            key = (size, name)
            best[key] = tuple(max(a, b) for a, b in zip(best.get(key, (0, 0)), ips))
            print(f"  {size} px {name}: {ips[0]:.1f} / {ips[1]:.1f} images/s "
                  f"({time.perf_counter() - t:.0f} s, load {os.getloadavg()[0]:.1f})",
                  flush=True)
    print(f"\nbest of {args.rounds}, batch 16, {args.steps} steps per phase, InceptionV3, "
          f"random weights, CPU float32; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("| size | head | phase 1 (frozen) images/s | phase 2 (top 30 layers) images/s |")
    print("|---|---|---|---|")
    for (size, name), (a, b) in best.items():
        print(f"| {size} | {name} | {a:.1f} | {b:.1f} |")


if __name__ == "__main__":
    main()
