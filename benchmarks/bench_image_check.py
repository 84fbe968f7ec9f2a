"""Per-image cost of cocoprep's image check, in isolation (one process, no I/O).

Times `prepare_image(data, orientation="mismatch", expected_size=...)`, the call
`convert` makes for every image, on photo-like 640x480 files: baseline JPEG (passed
through), RGB PNG (passed through), RGBA and palette PNG (converted to JPEG). Each
figure is the best of --rounds passes over --images files, as wall time and as
this process's CPU time (steadier than wall time on a shared machine). Run it against another
tree with `PYTHONPATH=/that/tree python benchmarks/bench_image_check.py` to compare.

Usage:
    python benchmarks/bench_image_check.py [--images 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_convert import HEIGHT, WIDTH, photo_like  # noqa: E402


def files(count: int) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {"jpeg": [], "png rgb": [], "png rgba": [], "png palette": []}
    for seed in range(count):
        jpeg = photo_like(seed)
        out["jpeg"].append(jpeg)
        im = Image.open(io.BytesIO(jpeg)).convert("RGB")
        for key, variant in (("png rgb", im), ("png rgba", im.convert("RGBA")),
                             ("png palette", im.quantize(64))):
            buf = io.BytesIO()
            variant.save(buf, "PNG")
            out[key].append(buf.getvalue())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20, help="files of each kind")
    p.add_argument("--rounds", type=int, default=3, help="best of this many passes")
    args = p.parse_args()
    from cocoprep import images

    sets = files(args.images)
    print(f"cocoprep from {Path(images.__file__).resolve().parent.parent}, "
          f"{args.images} files of each kind, {WIDTH}x{HEIGHT}, best of {args.rounds}, "
          f"load {os.getloadavg()[0]:.1f}")
    for kind, datas in sets.items():
        best = cpu = float("inf")
        for _ in range(args.rounds):
            t, c = time.perf_counter(), time.process_time()
            for data in datas:
                images.prepare_image(data, orientation="mismatch", expected_size=(WIDTH, HEIGHT))
            best = min(best, (time.perf_counter() - t) / len(datas))
            cpu = min(cpu, (time.process_time() - c) / len(datas))
        size = sum(map(len, datas)) / len(datas) / 1024
        print(f"{kind:<12} {size:7.0f} KiB  {best * 1e3:7.2f} ms per image "
              f"({cpu * 1e3:.2f} ms CPU)")


if __name__ == "__main__":
    main()
