"""Segmentation reader at equal work: `cocoprep.load` against the Model Garden's
segmentation `Decoder` + `Parser`, in the same process, interleaved.

Both sides read the same records (photo-like 640x480 JPEGs, benchmarks/photos.py, with
one-channel PNG masks of a few shapes and a void border, written by cocoprep's writer)
and do the same work per image: parse, decode image and mask, random horizontal flip,
scale jitter 0.8-1.2 with a random crop (or void padding) to 512 x 512, the mask
resized nearest-neighbour, batches of 8:

* cocoprep: ``load(split, batch_size=8, image_size=512,
  augment=[RandomFlip(), ScaleJitter(512, (0.8, 1.2))], seed=0)``;
* the Model Garden: ``segmentation_input.Decoder()`` + ``Parser(output_size=[512, 512],
  aug_rand_hflip=True, aug_scale_min=0.8, aug_scale_max=1.2)`` in training mode (it
  also normalises the image by the ImageNet mean and std, which cocoprep leaves to the
  model: a few % of the work), the same shuffle buffer, batch 8. It runs when the
  interpreter can import `official`: use the Model Garden venv (see
  bench_reader_mg.py for how it is built; it shares this venv's TensorFlow).

Each pipeline makes `--rounds` full passes, interleaved, after 2 warm-up batches (fewer
on tiny data); the
best pass is reported with CPU ms per image beside it, and the load average before
and after every pass (a figure taken under load is not a result). On a quiet machine:

    /work/venv-mg/bin/python benchmarks/bench_reader_seg.py --images 2000 --rounds 5

Proof that it runs (tiny data, figures meaningless):

    /work/venv-mg/bin/python benchmarks/bench_reader_seg.py --images 16 --rounds 1 \
        --data /tmp/seg_bench_tiny
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SIZE, BATCH, SCALE = 512, 8, (0.8, 1.2)
CLASSES = ("background", "person", "car", "dog")


@dataclass(frozen=True)
class PhotoItem:
    index: int
    width: int = 640
    height: int = 480


class PhotoMaskBuilder:
    """A writer Builder: a photo-like JPEG and a mask of 1-4 shapes, a 3-pixel void
    border around each (as VOC draws it)."""

    def build(self, split, item):
        import numpy as np
        from PIL import Image, ImageDraw

        from cocoprep import schema
        from cocoprep.records import BuildResult, EncodedImage, SegmentationExample
        from photos import photo_jpeg

        data = photo_jpeg(item.width, item.height, seed=item.index)
        rng = np.random.default_rng(item.index)
        mask = Image.new("L", (item.width, item.height), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 5))):
            x0, y0 = rng.integers(0, item.width - 80), rng.integers(0, item.height - 80)
            x1, y1 = x0 + rng.integers(40, 300), y0 + rng.integers(40, 250)
            box = [int(x0), int(y0), int(min(x1, item.width - 1)), int(min(y1, item.height - 1))]
            draw.ellipse(box, fill=int(rng.integers(1, len(CLASSES))),
                         outline=schema.VOID_ID, width=3)
        buf = io.BytesIO()
        mask.save(buf, format="PNG")
        image = EncodedImage(data, "jpeg", item.width, item.height,
                             hashlib.sha256(data).hexdigest())
        ex = SegmentationExample(image, f"{item.index:06d}.jpg", str(item.index), buf.getvalue())
        return BuildResult(schema.encode_segmentation(ex), 0, {})


def records(out: Path, images: int) -> Path:
    """The benchmark's records (written once, reused)."""
    if (out / "manifest.json").is_file():
        return out
    from cocoprep import schema
    from cocoprep.labelmap import LabelMap
    from cocoprep.manifest import Manifest
    from cocoprep.options import WriteOptions
    from cocoprep.writer import SplitPlan, plan_num_shards, write_dataset

    lm = LabelMap.from_names(CLASSES, start=0)
    items = [PhotoItem(i) for i in range(images)]
    write_dataset(out, [SplitPlan("train", items, plan_num_shards(images, 0))],
                  PhotoMaskBuilder(),
                  manifest=Manifest(task="segmentation", schema_version=schema.SCHEMA_VERSION,
                                    splits={}),
                  class_order=lm.names,
                  extra_files={"labels.txt": lm.to_labels_txt(),
                               "label_map.pbtxt": lm.to_pbtxt()},
                  # one worker: the builder lives in __main__, which a worker process
                  # started by the pool cannot import (written once, then reused)
                  options=WriteOptions(workers=1, quiet=True))
    return out


def cocoprep_pipeline(out: Path):
    import cocoprep
    from cocoprep.augment import RandomFlip, ScaleJitter

    return cocoprep.load(out, "train", batch_size=BATCH, image_size=SIZE, seed=0,
                         augment=[RandomFlip(), ScaleJitter(SIZE, SCALE)])


def model_garden_pipeline(out: Path):
    import tensorflow as tf
    from official.vision.dataloaders import segmentation_input

    from cocoprep.reader import DEFAULT_SHUFFLE_BUFFER

    files = sorted(glob.glob(str(out / "train.tfrecord-*")))
    decoder = segmentation_input.Decoder()
    parse = segmentation_input.Parser(output_size=[SIZE, SIZE], aug_rand_hflip=True,
                                      aug_scale_min=SCALE[0], aug_scale_max=SCALE[1]
                                      ).parse_fn(is_training=True)
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.shuffle(DEFAULT_SHUFFLE_BUFFER, seed=0)
    ds = ds.map(lambda raw: parse(decoder.decode(raw)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def have_model_garden() -> bool:
    try:
        import official.vision.dataloaders.segmentation_input  # noqa: F401
    except ImportError:
        return False
    return True


def one_pass(make, warmup: int) -> tuple[float, float, int]:
    """(images/s wall clock, CPU ms per image, images) over a whole pass after
    `warmup` batches."""
    it = iter(make())
    for _ in range(warmup):
        next(it)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    for batch in it:
        image = batch[0] if isinstance(batch, tuple) else batch["image"]
        n += int(image.shape[0])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return (n / wall if wall > 0 else float("nan")), (1000 * cpu / n if n else float("nan")), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=None,
                        help="where the records go [default: benchmarks/data/reader_seg_N]")
    args = parser.parse_args()
    out = records(args.data or HERE / "data" / f"reader_seg_{args.images}", args.images)
    import tensorflow as tf

    sides = {"cocoprep equal work": lambda: cocoprep_pipeline(out)}
    if have_model_garden():
        sides["Model Garden Parser"] = lambda: model_garden_pipeline(out)
    else:
        print("Model Garden: `official` not importable here; run with the Model Garden "
              "venv's python (see bench_reader_mg.py) to compare")
    print(f"{args.images} records in {out}, TF {tf.__version__}, batch {BATCH}, {SIZE} px, "
          f"load {os.getloadavg()[0]:.2f}")
    # 2 warm-up batches; fewer when the data is tiny (the proof that the script runs).
    warmup = min(2, max(0, args.images // BATCH - 1))
    best: dict[str, tuple[float, float]] = {}
    for r in range(args.rounds):
        for name, make in sides.items():
            ips, cpu, n = one_pass(make, warmup)
            print(f"  round {r + 1}: {name:22} {ips:7.1f} img/s, CPU {cpu:6.2f} ms/img, "
                  f"{n} images (load {os.getloadavg()[0]:.2f})", flush=True)
            if name not in best or ips > best[name][0]:
                best[name] = (ips, cpu)
    for name, (ips, cpu) in best.items():
        print(f"best {name:22} {ips:7.1f} img/s, CPU {cpu:6.2f} ms/img")
    if len(best) == 2 and best["Model Garden Parser"][0] > 0:
        ratio = best["cocoprep equal work"][0] / best["Model Garden Parser"][0]
        print(f"cocoprep / Model Garden, wall clock: {ratio:.2f}x (target >= 1.2x on a "
              f"quiet machine)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
