"""How long Ctrl-C takes to stop `cocoprep convert`, and that OUT survives it.

Generates (once, under benchmarks/data/, shared with bench_convert.py) a COCO set of
N photo-like 640x480 JPEGs, converts it once into OUT, then for each round starts
`cocoprep convert` again into the same OUT in a process group of its own (as a
terminal does), waits until shards are being written (+ --after seconds), sends
SIGINT (or SIGTERM) to the whole group, and prints the time from the signal to the
process's exit, its exit code and last line, and whether OUT is byte-for-byte as it
was with no staging folder or lock left behind.

Usage:
    python benchmarks/bench_interrupt.py [--images 2000] [--workers 2] [--runner local|beam]
        [--signal INT|TERM] [--after 0.5] [--rounds 3] [--src COCO_ROOT]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_convert import DATA, generate_set  # noqa: E402


def tree_digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def command(src: Path, out: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "cocoprep", "convert", str(src), "-o", str(out), "-q",
           "--workers", str(args.workers)]
    return cmd + (["--runner", "beam"] if args.runner == "beam" else [])


def one_round(src: Path, out: Path, args, sig: int) -> tuple[float, int, str]:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(command(src, out, args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    while not glob.glob(str(out / ".cocoprep-staging-*" / "*.tmp-*")):
        if proc.poll() is not None:
            raise SystemExit("the run ended before writing: use more --images")
        time.sleep(0.005)
    time.sleep(args.after)
    t = time.perf_counter()
    os.killpg(proc.pid, sig)
    _, err = proc.communicate()
    lines = err.decode(errors="replace").strip().splitlines()
    return time.perf_counter() - t, proc.returncode, lines[-1] if lines else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runner", choices=["local", "beam"], default="local")
    ap.add_argument("--signal", choices=["INT", "TERM"], default="INT")
    ap.add_argument("--after", type=float, default=0.5,
                    help="seconds after the first shard file appears")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", type=Path, default=None,
                    help="an existing COCO root instead of generating --images photos (e.g. "
                         "benchmarks/data/coco_scale_distinct_118000 from bench_convert.py "
                         "--coco-scale)")
    args = ap.parse_args()
    src = args.src or generate_set(DATA / f"coco_bench_{args.images}", args.images,
                                   args.workers)
    out = DATA / "out_interrupt"
    env = dict(os.environ, PYTHONPATH=str(HERE.parent), TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(command(src, out, args), check=True, env=env)
    before = tree_digest(out)
    sig = getattr(signal, f"SIG{args.signal}")
    print(f"{src.name if args.src else args.images} images, runner {args.runner}, {args.workers} workers, "
          f"SIG{args.signal} {args.after} s into writing; load {os.getloadavg()[0]:.1f}")
    for i in range(args.rounds):
        took, code, last = one_round(src, out, args, sig)
        same = tree_digest(out) == before
        print(f"round {i + 1}: exit {code} after {took:.2f} s; OUT unchanged: {same}; "
              f"last line: {last}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
