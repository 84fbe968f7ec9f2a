"""Benchmark `cocoprep.load` against Keras and against a bare decode+resize loop.

On the same images, in the same run, each pipeline yielding float32 batches of
`--batch` images of `--size` x `--size`:

* `load(out, "train", batch_size, image_size, augment="default")`: TFRecords ->
  shuffle -> parse -> decode only the random resized crop's window of each JPEG (at
  reduced DCT scale when the window is 2x or more larger than the output) -> resize
  -> flip -> batch;
* the same plus brightness/contrast jitter (what colour costs);
* the same without augmentation (`augment=None`: full decode + resize);
* `tf.keras.utils.image_dataset_from_directory` on the same JPEG files;
* a bare loop: the same JPEG bytes held in memory, `decode_jpeg` + `resize` in a
  parallel `map`, `batch`, `prefetch` (no reading, parsing or shuffling): the
  physical ceiling of a pipeline whose work is decoding and resizing.

The class tree (default 4000 photo-like 500x375 JPEGs in 10 classes) is the one
`bench_split.py` generates under benchmarks/data/ (git-ignored, reused while its
parameters stay the same); it is written with `cocoprep split` (ratio 0.9,0.1) and
the train split is measured. Each pipeline runs `--rounds` full passes, interleaved
with the others; the best pass of each is reported (the machine may be shared).

    python benchmarks/bench_reader.py                       # the recorded configuration
    python benchmarks/bench_reader.py --images 400 --rounds 1   # a quick check
    python benchmarks/bench_reader.py --detection --images 1000    # detection mode
    python benchmarks/bench_reader.py --image-wh 4000x3000 --images 100 --classes 4  # photos
    python benchmarks/bench_reader.py --images 2000 --image-wh 640x480 --autotune-check 16

The detection mode (batch 8, 640 px, an equal-work reference, per-op costs, mask
memory) lives in bench_reader_detection.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _train_files(out: Path) -> list[tuple[str, int]]:
    """(relative path, stored label) of the train split, from split's listing."""
    rows = []
    for line in (out / "train.txt").read_text(encoding="utf-8").splitlines():
        path, label = line.rsplit(" ", 1)
        rows.append((path, int(label)))
    return rows


def _link_tree(src: Path, rows, dest: Path) -> Path:
    """A class-per-folder tree of symlinks holding exactly the train images."""
    stamp = dest / ".count"
    if stamp.exists() and stamp.read_text() == str(len(rows)):
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    for rel, _ in rows:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src / rel, target)
    stamp.write_text(str(len(rows)))
    return dest


def make_big_photos(root: Path, images: int, classes: int, width: int, height: int) -> Path:
    """Class folders of big photo-like JPEGs (q90): bicubic-upscaled colour fields plus
    one shared sensor-noise field (bench_split's generator takes minutes per 12 MP image
    on a shared machine). Reused while the parameters stay the same."""
    import io
    import json

    import numpy as np
    from PIL import Image

    params = {"images": images, "classes": classes, "size": [width, height], "kind": "big"}
    stamp = root / ".params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    for i in range(images):
        c = i % classes
        coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
        coarse[..., c % 3] = np.clip(coarse[..., c % 3].astype(int) + 60, 0, 255)
        field = Image.fromarray(coarse, "RGB").resize((width, height), Image.BICUBIC)
        pixels = np.clip(np.asarray(field, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=90)
        path = root / f"class_{c:02d}" / f"class_{c:02d}_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
    stamp.write_text(json.dumps(params))  # a hidden file: split ignores it
    return root


def _run(ds, warmup: int = 2) -> tuple[int, float, float]:
    """Images in a full pass over `ds`, wall seconds and CPU seconds of this process
    (all its threads), after `warmup` batches (start-up, tracing and filling the
    buffers are not timed). CPU time per image is the steadier figure when other
    processes share the cores."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    for batch in it:
        images = batch["image"] if isinstance(batch, dict) else (
            batch[0] if isinstance(batch, tuple) else batch)
        n += int(images.shape[0])
    return n, time.perf_counter() - t0, time.process_time() - c0


def autotune_check(data: list[bytes], size: int, batch: int, passes: int) -> None:
    """The same bare decode+resize pipeline over bytes in memory, passes interleaved,
    with tf.data's autotuner on (AUTOTUNE everywhere, TensorFlow's default) and off
    (the map as wide as the cores, 2 batches prefetched: what `load` does). Prints
    every pass's images/s and how many ran under 0.75x the best one."""
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tensor = tf.constant(data)

    def decode(b):
        return tf.image.resize(tf.io.decode_jpeg(b, channels=3), (size, size))

    def make(autotune: bool):
        ds = tf.data.Dataset.from_tensor_slices(tensor)
        if autotune:
            return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(
                tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.autotune.enabled = False
        return ds.map(decode, num_parallel_calls=cores).batch(batch).prefetch(2).with_options(
            options)

    rates: dict[str, list[float]] = {"autotune on": [], "autotune off": []}
    for _ in range(passes):
        for name in rates:
            t = time.perf_counter()
            for _batch in make(name == "autotune on"):
                pass
            rates[name].append(len(data) / (time.perf_counter() - t))
    best = max(max(v) for v in rates.values())
    for name, seen in rates.items():
        slow = sum(r < 0.75 * best for r in seen)
        print(f"  {name:13s} {' '.join(f'{r:5.0f}' for r in seen)} img/s; {slow} of "
              f"{len(seen)} passes under 0.75x the best")
    print(f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--detection" in argv:
        from bench_reader_detection import main as detection

        return detection([a for a in argv if a != "--detection"])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--image-wh", default="500x375", help="WxH of the generated images")
    ap.add_argument("--size", type=int, default=299, help="output image size")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="timed passes per pipeline")
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--warmup", type=int, default=2, help="untimed batches per pass")
    ap.add_argument("--autotune-check", type=int, default=0, metavar="PASSES",
                    help="instead: a bare decode+resize pipeline with tf.data's autotuner "
                    "on and off, PASSES interleaved passes each")
    ap.add_argument("--only", default="", help="comma-separated name fragments: run only "
                    "the pipelines whose name holds one of them (keras,None,default,bare)")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.image_wh.lower().split("x"))

    from bench_split import make_tree

    tree_dir = (args.data / "split_tree" if args.images == 4000 and args.classes == 10
                else args.data / f"split_tree_{args.images}_{args.classes}")
    if width * height > 4_000_000:
        tree = make_big_photos(args.data / f"photo_tree_{args.images}_{args.classes}_"
                               f"{width}x{height}", args.images, args.classes, width, height)
    else:
        tree = make_tree(tree_dir, args.images, args.classes, width, height)
    out = args.data / f"reader_records_{tree.name}"
    if not (out / "manifest.json").is_file() or \
            (out / "manifest.json").stat().st_mtime < (tree / ".params.json").stat().st_mtime:
        from cocoprep.split import split_folder

        split_folder(tree, out, ratio="0.9,0.1", seed=0, quiet=True)

    import tensorflow as tf

    import cocoprep

    rows = _train_files(out)
    links = _link_tree(tree, rows, args.data / f"reader_keras_{tree.name}")
    data = [(tree / rel).read_bytes() for rel, _ in rows]
    mb = sum(map(len, data)) / 1e6
    size, batch = args.size, args.batch
    cores = os.cpu_count() or 1
    print(f"images: {len(rows)} train JPEGs of {tree} ({width}x{height} q90, {mb:.1f} MB), "
          f"output {batch} x {size}x{size}x3 float32")
    print(f"machine: {cores} cores, TensorFlow {tf.__version__}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.autotune_check:
        return autotune_check(data, size, batch, args.autotune_check)

    def bare():
        def decode(b):
            return tf.image.resize(tf.io.decode_jpeg(b, channels=3), (size, size))

        return (tf.data.Dataset.from_tensor_slices(tf.constant(data))
                .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
                .batch(batch).prefetch(tf.data.AUTOTUNE))

    def keras():
        return tf.keras.utils.image_dataset_from_directory(
            links, image_size=(size, size), batch_size=batch, shuffle=True, seed=0,
            verbose=False).prefetch(tf.data.AUTOTUNE)

    def load_aug():
        return cocoprep.load(out, "train", batch_size=batch, image_size=size,
                             augment="default", seed=0)

    def load_colour():
        ops = cocoprep.augment.default_ops("classification", (size, size))
        return cocoprep.load(out, "train", batch_size=batch, image_size=size,
                             augment=ops + [cocoprep.augment.ColorJitter(0.2, 0.2)],
                             seed=0)

    def load_plain():
        return cocoprep.load(out, "train", batch_size=batch, image_size=size, seed=0)

    pipelines = {
        "bare decode+resize (bytes in memory)": bare,
        "keras image_dataset_from_directory": keras,
        'cocoprep.load(augment="default")': load_aug,
        "cocoprep.load(default + ColorJitter)": load_colour,
        "cocoprep.load(augment=None)": load_plain,
    }
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        pipelines = {k: v for k, v in pipelines.items()
                     if any(w in k for w in wanted) or k.startswith(("bare", "keras"))}
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    rates: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name, make in pipelines.items():
            n, s, c = _run(make(), args.warmup)
            rate = n / s
            rates.setdefault(name, []).append(rate)
            best[name] = max(best.get(name, 0.0), rate)
            cpu[name] = min(cpu.get(name, float("inf")), 1000 * c / n)
            print(f"  round {r + 1}: {name:38s} {n} img in {s:6.2f} s = {rate:6.1f} img/s, "
                  f"CPU {1000 * c / n:5.2f} ms/img")
    ceiling = best["bare decode+resize (bytes in memory)"]
    keras_rate = best["keras image_dataset_from_directory"]
    ceiling_cpu = cpu["bare decode+resize (bytes in memory)"]
    print(f"best of {args.rounds} (load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}):")
    for name, rate in best.items():
        print(f"  {name:38s} {rate:6.1f} img/s = {100 * rate / ceiling:5.1f}% of bare, "
              f"{rate / keras_rate:4.2f}x keras; CPU {cpu[name]:5.2f} ms/img = "
              f"{100 * ceiling_cpu / cpu[name]:5.1f}% of bare's efficiency")
    print("spread over the rounds (img/s: worst / median / best; ratio to keras in the "
          "same round: worst / median / best):")
    keras_rounds = rates["keras image_dataset_from_directory"]
    for name, seen in rates.items():
        ratios = sorted(a / k for a, k in zip(seen, keras_rounds))
        ordered = sorted(seen)
        print(f"  {name:38s} {ordered[0]:6.1f} / {ordered[len(ordered) // 2]:6.1f} / "
              f"{ordered[-1]:6.1f}   {ratios[0]:4.2f}x / {ratios[len(ratios) // 2]:4.2f}x / "
              f"{ratios[-1]:4.2f}x")


if __name__ == "__main__":
    main()
