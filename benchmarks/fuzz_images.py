"""Does cocoprep's image check agree with `tf.io.decode_image`? A larger fuzz run.

Builds the seeded corpus of `tests/image_fuzz.py` (good and damaged JPEGs and PNGs:
byte flips anywhere and inside compressed data with CRCs recomputed, truncation,
zeroed tails, duplicated, removed, moved and inserted segments or chunks) and, for
every file, compares cocoprep's verdict (`prepare_image` as `convert` calls it) with
"TensorFlow decodes it at the annotated size"; every written image is decoded by
TensorFlow too. Prints the counts per format and damage, both directions of
disagreement, and the first few disagreeing files (rebuildable from name and seed).

Usage:
    python benchmarks/fuzz_images.py [--count 4000] [--seed 0] [--max-side 64]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from image_fuzz import corpus, tf_decodes  # noqa: E402

from cocoprep import images  # noqa: E402
from cocoprep.errors import ItemSkipped  # noqa: E402


def run(count: int, seed: int, max_side: int) -> int:
    t = time.perf_counter()
    samples = corpus(count, seed=seed, max_side=max_side)
    print(f"corpus: {len(samples)} files (seed {seed}, sides 1-{max_side}) built in "
          f"{time.perf_counter() - t:.1f} s")
    table = collections.Counter()
    missed, extra, unreadable = [], [], []
    check_time = 0.0
    for sample in samples:
        fmt, damage = sample.format, sample.damage
        theirs = tf_decodes(sample.data, sample.size)
        t = time.perf_counter()
        try:
            out = images.prepare_image(sample.data, orientation="mismatch",
                                       expected_size=sample.size)
            ours, why = True, ""
        except ItemSkipped as e:
            out, ours, why = None, False, f"{e.reason}: {e.detail}"
        check_time += time.perf_counter() - t
        table[(fmt, damage, theirs, ours)] += 1
        if theirs and not ours:
            extra.append(f"{sample.name}: TensorFlow decodes it, cocoprep skips it ({why})")
        elif ours and not theirs:
            missed.append(f"{sample.name}: TensorFlow fails, cocoprep writes it")
        if out is not None and not tf_decodes(out.data, (out.width, out.height)):
            unreadable.append(sample.name)
    _print_table(table)
    agree = sum(v for (_, _, a, b), v in table.items() if a == b)
    print(f"\nagreement: {agree}/{len(samples)} = {agree / len(samples):.2%}")
    print(f"written although TensorFlow fails (cocoprep too lenient): {len(missed)}")
    print(f"skipped although TensorFlow decodes (cocoprep too strict): {len(extra)}")
    print(f"written images TensorFlow cannot decode: {len(unreadable)}")
    print(f"check time: {check_time / len(samples) * 1e3:.2f} ms per file (small files; "
          f"load {os.getloadavg()[0]:.1f})")
    for line in (missed + extra)[:20]:
        print("  " + line)
    return 1 if missed or extra or unreadable else 0


def _print_table(table: collections.Counter) -> None:
    print(f"\n{'format':<6} {'damage':<10} {'files':>6} {'TF decodes':>11} "
          f"{'cocoprep writes':>16} {'disagree':>9}")
    keys = sorted({(f, d) for f, d, _, _ in table})
    for fmt, damage in keys:
        rows = {(a, b): v for (f, d, a, b), v in table.items() if (f, d) == (fmt, damage)}
        total = sum(rows.values())
        tf_yes = sum(v for (a, _), v in rows.items() if a)
        ours = sum(v for (_, b), v in rows.items() if b)
        bad = sum(v for (a, b), v in rows.items() if a != b)
        print(f"{fmt:<6} {damage:<10} {total:>6} {tf_yes:>11} {ours:>16} {bad:>9}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=4000, help="files in the corpus")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-side", type=int, default=64, help="largest width or height")
    args = p.parse_args()
    return run(args.count, args.seed, args.max_side)


if __name__ == "__main__":
    sys.exit(main())
