"""Peak memory of reading an Open Images box CSV of N rows (default 1,000,000).

Writes a synthetic `train-annotations-bbox.csv` (the real V7 columns, 7 boxes per
image as in the real train set, 600 classes with their descriptions) under
benchmarks/data/, then, in a fresh process, runs the Open Images source's `load`
(discovery, the streamed CSV, the label plan, the finished split: everything a
conversion holds before the first image is read) and prints that process's peak
resident memory (ru_maxrss) and the wall time. The issue's bound: at most 1 GB at
1M rows. Images are not needed (none is opened by the source).

Usage:
    python benchmarks/bench_openimages_memory.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
HEADER = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,"
          "IsGroupOf,IsDepiction,IsInside,XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,"
          "XClick2Y,XClick3Y,XClick4Y")

_CHILD = """
import resource, sys, time
from pathlib import Path
from cocoprep.sources import openimages
from cocoprep.sources.detection import SourceRequest
t = time.perf_counter()
source = openimages.load(Path(sys.argv[1]), SourceRequest())
wall = time.perf_counter() - t
split = source.splits[0].source
print(f"{split.num_images} images, {len(split.ann_ids)} boxes read in {wall:.1f} s; "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
"""


def write_set(root: Path, rows: int) -> Path:
    stamp = root / f".complete-{rows}"
    if stamp.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / "oidv7-class-descriptions-boxable.csv").write_text(
        "LabelName,DisplayName\n" + "".join(f"/m/{k:05x},Class {k}\n" for k in range(600)))
    with open(root / "train-annotations-bbox.csv", "w") as f:
        f.write(HEADER + "\n")
        for i in range(rows):
            a = (i * 7919) % 1000 / 2000
            f.write(f"{i // 7:016x},xclick,/m/{(i * 31) % 600:05x},1,{a:.6f},{a + 0.4:.6f},"
                    f"{a / 2:.6f},{a + 0.3:.6f},{i % 2},0,{int(i % 50 == 0)},0,0,"
                    "-1,-1,-1,-1,-1,-1,-1,-1\n")
    stamp.write_text("")
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    root = write_set(DATA / f"oid_memory_{args.rows}", args.rows)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    print(f"{args.rows} CSV rows ({(root / 'train-annotations-bbox.csv').stat().st_size >> 20}"
          f" MiB); load average before: {os.getloadavg()[0]:.1f}")
    subprocess.run([sys.executable, "-c", _CHILD, str(root)], env=env, check=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
