"""Benchmark `cocoprep report`: wall time and peak memory of the whole command.

Default: the 2000-image photo-like set of `bench_convert.py` (640x480 JPEGs, 1-12
objects each, about 1% crowd; generated once under benchmarks/data/), converted
once (cached), then `cocoprep report` run in a subprocess --rounds times. Prints the
wall time of each run, the peak RSS of its largest process, parent or worker (the
issue's bound: under 1 GB), and the page's size.

`--coco-scale` uses the 118k-image / 860k-annotation set of `bench_convert.py
--coco-scale` instead (generated once, about 20 minutes; its conversion is cached
too). The issue's target there: under a minute.

Usage:
    python benchmarks/bench_report.py [--images 2000] [--rounds 3] [--workers N]
    python benchmarks/bench_report.py --coco-scale [--scale-images 118000] [--scale-wh 640x480]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_convert import DATA, SCALE_HEIGHT, SCALE_WIDTH, generate_set, scale_set  # noqa: E402


def converted(src: Path, out: Path) -> Path:
    """`cocoprep convert SRC -o OUT` once; reused while its manifest is there."""
    if (out / "manifest.json").is_file():
        return out
    cmd = [sys.executable, "-m", "cocoprep", "convert", str(src), "-o", str(out), "--quiet"]
    print("converting:", " ".join(cmd))
    subprocess.run(cmd, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return out


# A fresh wrapper per run: its RUSAGE_CHILDREN peak is that of the largest process the
# report started (the command or one of its workers), measured exactly by the kernel.
_WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - t
print(json.dumps({"rc": rc, "wall": wall,
                  "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def timed_report(out: Path, page: Path, workers: int | None) -> tuple[float, int]:
    """Wall seconds of `cocoprep report`, and the peak RSS of its largest process (bytes)."""
    cmd = [sys.executable, "-m", "cocoprep", "report", str(out), "-o", str(page), "--quiet"]
    if workers:
        cmd += ["--workers", str(workers)]
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"report failed with exit code {result['rc']}: {done.stderr[-2000:]}")
    return result["wall"], result["peak"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000, help="size of the generated set")
    p.add_argument("--rounds", type=int, default=3, help="runs of the report")
    p.add_argument("--workers", type=int, default=None, help="report --workers (default: its own)")
    p.add_argument("--coco-scale", action="store_true", help="the 118k/860k set instead")
    p.add_argument("--scale-images", type=int, default=118_000)
    p.add_argument("--scale-annotations", type=int, default=860_000)
    p.add_argument("--scale-wh", default=f"{SCALE_WIDTH}x{SCALE_HEIGHT}",
                   help="image size of the --coco-scale set (bench_convert.py's; 640x480: "
                   "COCO's own size)")
    args = p.parse_args()
    cpus = os.cpu_count() or 1
    if args.coco_scale:
        src = scale_set(args.scale_images, args.scale_annotations, args.scale_wh, cpus)
        out = converted(src, DATA / f"report_{src.name}")
    else:
        src = generate_set(DATA / f"coco_bench_{args.images}", args.images, cpus)
        out = converted(src, DATA / f"report_photos_{args.images}")
    from cocoprep.manifest import Manifest

    m = Manifest.read(out)
    size = sum(s.size_bytes for info in m.splits.values() for s in info.shards)
    print(f"{out}: {m.num_examples} images, {sum(i.num_objects for i in m.splits.values())} "
          f"objects, {m.num_shards} shards, {size / 1e6:.0f} MB; {cpus} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    page = DATA / "report_bench.html"
    for r in range(args.rounds):
        wall, peak = timed_report(out, page, args.workers)
        print(f"round {r + 1}: wall {wall:.1f} s ({m.num_examples / wall:.0f} images/s), peak RSS "
              f"of the largest process {peak / 2**20:.0f} MiB; page "
              f"{page.stat().st_size / 1e3:.0f} KB")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
