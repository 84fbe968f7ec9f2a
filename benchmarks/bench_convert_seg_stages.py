"""Where a segmentation worker's time goes, per image, next to the decode floors.

One process, CPU time (`time.process_time`), best of --rounds, on the image/mask
folder pairs `bench_convert_seg.py` generates (palette or grey masks). Each row is
one stage of what `SegmentationBuilder` does for an item, timed alone over the same
items:

* floors: the JPEG decoded fully (what `bench_convert_seg.py`'s bare decode does)
  or at 1/8 scale (libjpeg's DCT scaling still entropy-decodes every byte: what the
  converter's image check does), each plus the mask decoded to its array;
* the mask's stages: its PNG check (`pngcheck`: chunk walk, CRCs, one inflate), the
  Pillow decode, the value check (label-map lookup of every pixel), the grey PNG
  re-encode, and the whole `decode_mask`;
* the image's: the check (`prepare_image`, 1/8-scale decode, end marker) and sha256;
* the pixel counting, the record encoding, `builder.build` and the whole `write_shard`.

Usage:
    python benchmarks/bench_convert_seg_stages.py [--masks palette|grey] [--images 500]
        [--src DIR]   # default: benchmarks/data/seg_bench_2000_<masks> (made if missing)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.bench_convert_stages import _cpu_ms  # noqa: E402


def _decode(image: bytes, mask: bytes, eighth: bool) -> None:
    with Image.open(io.BytesIO(image)) as im:
        if eighth:
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
    with Image.open(io.BytesIO(mask)) as m:
        np.asarray(m)


def _builder(src: str):
    from cocoprep.options import WriteOptions
    from cocoprep.segconvert import segmentation_job
    from cocoprep.sources import load_segmentation
    from cocoprep.sources.detection import SourceRequest

    request = SourceRequest(quiet=True)
    source = load_segmentation(src, request)
    job = segmentation_job(source, options=WriteOptions.build(shuffle=False), src=src,
                           request=request)
    return job.plans[0].name, job.builder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--masks", choices=("palette", "grey"), default="palette")
    p.add_argument("--src", default=None)
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from benchmarks.bench_convert_seg import DATA, generate
    from cocoprep import segmasks
    from cocoprep.images import prepare_image
    from cocoprep.pngcheck import check_png
    from cocoprep.schema import encode_segmentation
    from cocoprep.shardwrite import ShardTask, write_shard

    src = args.src or str(generate(DATA / f"seg_bench_2000_{args.masks}", 2000, args.masks,
                                   os.cpu_count() or 1))
    split, builder = _builder(src)
    items = builder.splits[split].items[: args.images]
    n = len(items)
    rows = list(range(n))
    sp = builder.splits[split]
    images = [Path(sp.image_dir, i.image).read_bytes() for i in items]
    masks = [Path(sp.mask_dir, i.mask).read_bytes() for i in items]
    codec, loader = builder.codec, builder._loader(str(sp.image_dir))
    decoded = [segmasks.decode_mask(m, codec, name="m") for m in masks]
    raws = [np.asarray(Image.open(io.BytesIO(m))) for m in masks]
    examples = []
    import cocoprep.builders as builders_module

    builders_module.encode_segmentation = lambda ex: (examples.append(ex),
                                                      encode_segmentation(ex))[1]
    for r in rows:
        builder.build(split, r)
    builders_module.encode_segmentation = encode_segmentation

    def value_check():
        for raw in raws:
            segmasks._by_values("m", raw, codec)

    with tempfile.TemporaryDirectory() as staging:
        task = ShardTask(split, 0, 1, rows, staging)
        stages = [
            ("floor: full decode + mask", lambda: [_decode(i, m, False)
                                                  for i, m in zip(images, masks)]),
            ("floor: 1/8-scale decode + mask", lambda: [_decode(i, m, True)
                                                       for i, m in zip(images, masks)]),
            ("mask: PNG check (pngcheck)", lambda: [check_png(m) for m in masks]),
            ("mask: Pillow decode to array", lambda: [np.asarray(Image.open(io.BytesIO(m)))
                                                      for m in masks]),
            ("mask: value check + counts (_by_values)", value_check),
            ("mask: grey PNG encode", lambda: [segmasks.encode_mask(d.ids) for d in decoded]),
            ("mask: decode_mask (whole)", lambda: [segmasks.decode_mask(m, codec, name="m")
                                                   for m in masks]),
            ("image: check (prepare_image)", lambda: [prepare_image(d, **loader.options)
                                                      for d in images]),
            ("image: sha256", lambda: [hashlib.sha256(d).hexdigest() for d in images]),
            ("pixel counts (bincount; before)", lambda: [np.bincount(d.ids.ravel(), minlength=256)
                                                        for d in decoded]),
            ("record encoding", lambda: [encode_segmentation(e) for e in examples]),
            ("builder.build (everything per item)", lambda: [builder.build(split, r)
                                                             for r in rows]),
            ("write_shard (everything)", lambda: write_shard(task, builder)),
        ]
        ms = {}
        print(f"{n} items of {src} ({args.masks} masks), CPU ms per image, one process, "
              f"best of {args.rounds} (load {os.getloadavg()[0]:.2f})")
        for label, fn in stages:
            ms[label] = _cpu_ms(fn, n, args.rounds)
            print(f"  {label:<40} {ms[label]:7.3f}")
    whole = ms["write_shard (everything)"]
    for floor in ("floor: full decode + mask", "floor: 1/8-scale decode + mask"):
        print(f"  {floor[7:]:<32} / write_shard = {ms[floor] / whole:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
