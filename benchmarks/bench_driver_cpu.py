"""The parent's (driver's) CPU time per source format: what competes with the workers.

Two figures per format, both CPU seconds of one process (they hold up under load,
wall time does not):

* driver path: `load_detection(src, SourceRequest(quiet=True))` plus the job building
  (`bench_convert_stages._job`: the shard plan and builder, nothing written), best of
  --rounds, in this process (`time.process_time`);
* whole convert: a `cocoprep convert` run in a child process with --workers, its own
  user + system CPU at exit (`resource.getrusage(RUSAGE_SELF)`: the parent alone, its
  workers excluded), best of --rounds.

--profile FORMAT prints cProfile's top functions (cumulative) of one driver path.

Usage:
    python benchmarks/bench_driver_cpu.py [--formats coco,labelme,cvat] [--data DIR]
        [--rounds 5] [--workers 2] [--no-convert] [--profile labelme]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_convert_stages import _job  # noqa: E402  (the same job the stages time)

# run in the child: convert, then print this process's own CPU (children excluded)
_CHILD = """
import resource, sys
from cocoprep.cli import main
try:
    main(sys.argv[1:])
finally:
    u = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU {u.ru_utime:.4f} {u.ru_stime:.4f}", file=sys.stderr)
"""


def _driver_cpu(src: str, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        _job(src)
        best = min(best, time.process_time() - t)
    return best


def _convert_cpu(src: str, workers: int, rounds: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the convert process itself, best total of rounds."""
    best = (float("inf"), 0.0)
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            # run in `tmp`: `python -c` puts its working folder first on sys.path, which
            # would pick the cocoprep of a checkout run from over the one on PYTHONPATH
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, "convert", str(Path(src).resolve()), "--out",
                 f"{tmp}/out", "--workers", str(workers), "--quiet"],
                capture_output=True, text=True, check=False, cwd=tmp)
        line = [x for x in done.stderr.splitlines() if x.startswith("CPU ")]
        if done.returncode != 0 or not line:
            raise SystemExit(f"convert {src} failed ({done.returncode}): {done.stderr[-800:]}")
        user, system = (float(v) for v in line[-1].split()[1:])
        if user + system < sum(best):
            best = (user, system)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--formats", default="coco,labelme,cvat")
    p.add_argument("--data", default=str(HERE / "data"),
                   help="folder holding <format>_bench_<images> (bench_formats.py's data)")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-convert", action="store_true", help="the driver path alone")
    p.add_argument("--profile", default="", help="cProfile one format's driver path")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    srcs = {f: str(Path(args.data) / f"{f}_bench_{args.images}")
            for f in args.formats.split(",") if f}
    if args.profile:
        src = str(Path(args.data) / f"{args.profile}_bench_{args.images}")
        _job(src)  # imports and caches out of the profile
        prof = cProfile.Profile()
        prof.runcall(_job, src)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        return
    for f, src in srcs.items():
        _job(src)  # warm: imports, file cache
    print(f"parent CPU seconds, best of {args.rounds} (load {os.getloadavg()[0]:.2f})")
    for f, src in srcs.items():
        row = f"  {f:<10} driver path {_driver_cpu(src, args.rounds):6.3f} s"
        if not args.no_convert:
            user, system = _convert_cpu(src, args.workers, args.rounds)
            row += (f"   convert --workers {args.workers}: user {user:6.3f} s"
                    f"  sys {system:6.3f} s")
        print(row, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
