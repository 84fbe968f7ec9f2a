"""Where a conversion worker's time goes, per image, next to the 1/8-scale decode floor.

One process, CPU time (`time.process_time`), best of --rounds, on the images of a
COCO set (default: the 2000-image set `bench_convert.py` generates). Each row is one
stage of what a worker does for an image, timed alone over the same images:

* floor: Pillow opens the file and decodes it at 1/8 scale (libjpeg's DCT scaling):
  the per-image work of `bench_convert.py`'s floor, the figure convert is held to;
* the stages of `convert`: the path check, the read, the image check (`prepare_image`:
  the same 1/8-scale decode of every byte, the end-marker check, the image's sha256),
  the annotations and the record encoding (`builder.build`), the TFRecord framing
  with the shard's sha256, and the whole `write_shard`;
* the bound: the floor's share of (floor + the work the output format requires on top
  of it: the image's `image/key/sha256`, the shard's sha256 in the manifest, the
  framing's CRC-32C and the copy into the file). No converter that writes what cocoprep
  writes can beat it on these files, however little Python it runs.

Usage:
    python benchmarks/bench_convert_stages.py [--src benchmarks/data/coco_bench_2000] [--images 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent


def _job(src: str):
    from cocoprep.convert import DetectionOptions, detection_job
    from cocoprep.options import WriteOptions
    from cocoprep.sources import load_detection
    from cocoprep.sources.detection import SourceRequest

    request = SourceRequest(quiet=True)
    source = load_detection(src, request)
    roots = {s.name: str(s.source.image_dir) for s in source.splits}
    return detection_job(source, detection=DetectionOptions(), options=WriteOptions.build(),
                         roots=roots, src=src, request=request)


def _eighth(path: str) -> None:
    with Image.open(path) as im:
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()


def _cpu_ms(fn, n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best / n * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=str(HERE / "data" / "coco_bench_2000"))
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cocoprep.framing import RecordWriter
    from cocoprep.images import prepare_image, read_bytes, resolve_image_path
    from cocoprep.schema import encode_detection
    from cocoprep.shardwrite import ShardTask, write_shard

    job = _job(args.src)
    plan, builder = job.plans[0], job.builder
    rows = list(plan.items)[: args.images]
    n = len(rows)
    src = builder.sources[plan.name]
    loader = builder._loader(plan.name)
    root = os.path.realpath(loader.root)
    names = [src.file_names[int(r)] for r in rows]
    paths = [str(resolve_image_path(loader.root, name, root_real=root)) for name in names]
    datas = [read_bytes(path) for path in paths]
    examples = []
    import cocoprep.builders as builders_module

    builders_module.encode_detection = lambda ex: (examples.append(ex), encode_detection(ex))[1]
    records = [builder.build(plan.name, r).example for r in rows]
    builders_module.encode_detection = encode_detection

    def framing():
        writer = RecordWriter(io.BytesIO())
        for record in records:
            writer.write(record)
        writer.sha256()

    with tempfile.TemporaryDirectory() as staging:
        task = ShardTask(plan.name, 0, 1, rows, staging)
        stages = [
            ("floor: open + 1/8-scale decode", lambda: [_eighth(x) for x in paths]),
            ("path check", lambda: [resolve_image_path(loader.root, x, root_real=root)
                                    for x in names]),
            ("read", lambda: [read_bytes(x) for x in paths]),
            ("image sha256", lambda: [hashlib.sha256(d).hexdigest() for d in datas]),
            ("image check (prepare_image)", lambda: [prepare_image(d, **loader.options)
                                                     for d in datas]),
            ("record encoding", lambda: [encode_detection(e) for e in examples]),
            ("framing + shard sha256", framing),
            ("builder.build (load + objects + encode)",
             lambda: [builder.build(plan.name, r) for r in rows]),
            ("write_shard (everything)", lambda: write_shard(task, builder)),
        ]
        ms = {}
        print(f"{n} images of {args.src} ({sum(map(len, datas)) / n / 1e3:.0f} KB each on "
              f"average), CPU ms per image, one process, best of {args.rounds} "
              f"(load {os.getloadavg()[0]:.2f})")
        for label, fn in stages:
            ms[label] = _cpu_ms(fn, n, args.rounds)
            print(f"  {label:<42} {ms[label]:7.3f}")
    floor = ms["floor: open + 1/8-scale decode"]
    required = ms["image sha256"] + ms["framing + shard sha256"]
    print(f"  bound: floor / (floor + image sha256 + framing and shard sha256) = "
          f"{floor / (floor + required):.2f}x")
    print(f"  cocoprep's write_shard: floor / write_shard = "
          f"{floor / ms['write_shard (everything)']:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
