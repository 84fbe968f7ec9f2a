"""Benchmark `cocoprep convert` on a generated COCO-like set.

Default mode generates (once, under benchmarks/data/) a set of photo-like 640x480
JPEGs with 1-12 polygon annotations each (about 1% crowd RLE) and prints:

* the machine's JPEG-decode ceiling: every image fully decoded once, on all cores;
* `convert`, boxes only (full validation on), images/s;
* `convert --masks`, images/s.

Convert throughput excludes the fixed start-up cost (worker start, loading
TensorFlow's record writer), measured on a one-image-per-worker run just before.

`--runner beam` compares whole `cocoprep convert` processes on the same set: the
local runner, `--runner beam` as users run it (no --beam-options: the DirectRunner
mode cocoprep picks) and each DirectRunner mode in --beam-modes, interleaved, best of
--rounds, and checks that all wrote the same bytes.

`--coco-scale` instead generates a COCO-train-sized annotation file (118k images,
860k polygon annotations, about 450 MB) over as many distinct small JPEGs (320x240:
real datasets have no repeated files; --scale-wh 640x480 for COCO's own size, photo-like
q90 files, about 8 GB and 20 minutes to generate once), runs `cocoprep convert` on it (boxes only) in
a subprocess and prints the wall time and the peak RSS of the parent, of the largest
child, and of the whole process tree.

Usage:
    python benchmarks/bench_convert.py [--images 2000] [--workers N]
    python benchmarks/bench_convert.py --runner beam [--images 2000] [--workers 2]
    python benchmarks/bench_convert.py --coco-scale [--masks] [--scale-images 118000 --scale-annotations 860000]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
WIDTH, HEIGHT = 640, 480
SCALE_WIDTH, SCALE_HEIGHT = 320, 240  # --coco-scale: distinct files, kept small on disk

CATEGORIES = [{"id": i, "name": n, "supercategory": "thing"} for i, n in [
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (6, "bus"), (8, "truck"),
    (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (44, "bottle"), (62, "chair"),
]]


# ---------------------------------------------------------------- generation

def photo_like(seed: int, quality: int = 90) -> bytes:
    """A 640x480 JPEG with smooth gradients, blobs and fine noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    img = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-0.5, 0.5, 3)
        img[..., c] = 128 + 60 * np.sin(xx / WIDTH * 6 * a + yy / HEIGHT * 6 * b + p * 6)
    low = rng.normal(0, 25, (HEIGHT // 16 + 1, WIDTH // 16 + 1, 3)).astype(np.float32)
    img += np.kron(low, np.ones((16, 16, 1), np.float32))[:HEIGHT, :WIDTH]
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        rx, ry = rng.uniform(20, 120, 2)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        img[inside] = img[inside] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _write_image(args) -> None:
    path, seed, quality = args
    Path(path).write_bytes(photo_like(seed, quality))


def _polygon(rng, w: int, h: int):
    cx, cy = rng.uniform(30, w - 30), rng.uniform(30, h - 30)
    rx, ry = rng.uniform(8, min(cx, w - cx, 120)), rng.uniform(8, min(cy, h - cy, 120))
    n = int(rng.integers(10, 24))
    t = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = rng.uniform(0.7, 1.0, n)
    xs = np.round(cx + rx * r * np.cos(t), 2)
    ys = np.round(cy + ry * r * np.sin(t), 2)
    poly = np.stack([xs, ys], 1).reshape(-1)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
    return poly.tolist(), [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
                           round(float(y1 - y0), 2)], round(float(area), 2)


def _crowd_rle(rng, w: int, h: int):
    """Uncompressed RLE of a few rectangles (column-major counts, starting with zeros)."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        m[y:y + int(rng.integers(10, 40)), x:x + int(rng.integers(10, 40))] = 1
    flat = m.flatten(order="F")
    change = np.nonzero(np.diff(flat))[0] + 1
    bounds = np.concatenate([[0], change, [len(flat)]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    ys, xs = np.nonzero(m)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return {"counts": counts, "size": [h, w]}, bbox, float(m.sum())


def annotations_for(image_id: int, rng, ann_id: int, max_objects: int = 12):
    out = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cat = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]["id"]
        if rng.random() < 0.01:
            seg, bbox, area = _crowd_rle(rng, WIDTH, HEIGHT)
            crowd = 1
        else:
            poly, bbox, area = _polygon(rng, WIDTH, HEIGHT)
            seg, crowd = [poly], 0
        out.append({"id": ann_id, "image_id": image_id, "category_id": cat, "segmentation": seg,
                    "area": area, "bbox": bbox, "iscrowd": crowd})
        ann_id += 1
    return out, ann_id


def generate_set(root: Path, num_images: int, workers: int) -> Path:
    """COCO root with `train/` images and `annotations/instances_train.json` (cached)."""
    ann_file = root / "annotations" / "instances_train.json"
    stamp = root / f".complete-{num_images}"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    names = [f"{i:012d}.jpg" for i in range(1, num_images + 1)]
    t = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_write_image, [(str(root / "train" / n), i, 90)
                                for i, n in enumerate(names, 1)], chunksize=16)
    rng = np.random.default_rng(0)
    images, anns, ann_id = [], [], 1
    for i, n in enumerate(names, 1):
        images.append({"id": i, "file_name": n, "width": WIDTH, "height": HEIGHT})
        new, ann_id = annotations_for(i, rng, ann_id)
        anns.extend(new)
    ann_file.write_text(json.dumps({"info": {"description": "cocoprep benchmark"},
                                    "images": images, "annotations": anns,
                                    "categories": CATEGORIES}))
    stamp.write_text("")
    print(f"generated {num_images} images, {len(anns)} annotations "
          f"({sum(a['iscrowd'] for a in anns)} crowd) in {time.perf_counter() - t:.1f} s")
    return root


# ---------------------------------------------------------------- measurements

def _decode(path: str) -> int:
    with Image.open(path) as im:
        im.load()
        return im.width


def _decode_eighth(path: str) -> int:
    """libjpeg's 1/8-scale decode of one file (every byte entropy-decoded): the work
    cocoprep's image check cannot avoid."""
    with Image.open(path) as im:
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
        return im.width


def eighth_scale_floor(files: list[str], workers: int) -> float:
    """Images/s of a bare 1/8-scale decode of `files` from disk (page cache warm), in
    `workers` processes: the floor a checking converter is measured against."""
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_decode_eighth, files[:workers * 64])  # start-up out of the timing
        t = time.perf_counter()
        for _ in pool.imap_unordered(_decode_eighth, files, chunksize=256):
            pass
        return len(files) / (time.perf_counter() - t)


def decode_ceiling(files: list[str], workers: int) -> float:
    with mp.get_context("forkserver").Pool(workers) as pool:
        pool.map(_decode, files[:workers * 2])  # start the workers
        t = time.perf_counter()
        pool.map(_decode, files, chunksize=32)
        return len(files) / (time.perf_counter() - t)


def timed_convert(src: Path, out: Path, **kwargs) -> float:
    from cocoprep.convert import convert_coco

    t = time.perf_counter()
    convert_coco(src, out, quiet=True, **kwargs)
    return time.perf_counter() - t


def bench(args) -> None:
    workers = args.workers or os.cpu_count() or 1
    root = generate_set(DATA / f"coco_bench_{args.images}", args.images, workers)
    files = sorted(str(p) for p in (root / "train").glob("*.jpg"))
    tiny = generate_set(DATA / f"coco_bench_{workers}", workers, workers)
    out = DATA / "out"
    print(f"set: {len(files)} images 640x480, workers {workers}, load {os.getloadavg()[0]:.1f}")
    # Runs of a few seconds are noisy on a small machine: every figure is the best
    # of --rounds runs.
    rounds = max(1, args.rounds)
    ceiling = max(decode_ceiling(files, workers) for _ in range(rounds))
    print(f"JPEG decode ceiling (all cores): {ceiling:8.0f} images/s  [best of {rounds}]")
    for label, opts in (("boxes only", {}), ("--masks", {"masks": True})):
        startup = min(timed_convert(tiny, out, workers=workers, num_shards=workers, **opts)
                      for _ in range(rounds))
        wall = min(timed_convert(root, out, workers=workers, **opts) for _ in range(rounds))
        rate = len(files) / max(wall - startup, 1e-9)
        extra = f" ({rate / ceiling:.0%} of the decode ceiling)" if not opts else ""
        print(f"convert {label:<11}: {rate:8.0f} images/s{extra}  [best wall {wall:.2f} s "
              f"= {len(files) / wall:.0f} images/s end to end; fixed start-up "
              f"{startup:.2f} s subtracted]")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


# ---------------------------------------------------------------- runners

def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _process_wall(cmd: list[str]) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        print(done.stderr[-2000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall


def bench_runners(args) -> None:
    """Whole `cocoprep convert` processes: the local runner, `--runner beam` as users
    run it (no --beam-options: cocoprep's default DirectRunner mode), and `--runner
    beam` with each DirectRunner mode in --beam-modes; interleaved, best of --rounds;
    every output must be byte-identical to the local runner's."""
    import hashlib

    from cocoprep.beam_runner import default_mode

    workers = args.workers or os.cpu_count() or 1
    root = generate_set(DATA / f"coco_bench_{args.images}", args.images, workers)
    n = len(list((root / "train").glob("*.jpg")))
    base = [sys.executable, "-m", "cocoprep", "convert", str(root), "--quiet",
            "--workers", str(workers)] + (["--masks"] if args.masks else [])
    runs = {"local": base,
            f"beam (default: {default_mode(workers, n)})": base + ["--runner", "beam"]}
    for mode in filter(None, args.beam_modes.split(",")):
        count = 1 if mode == "in_memory" else workers
        runs[f"beam {mode}"] = base + [
            "--runner", "beam", "--beam-options", f"--runner=DirectRunner --direct_running_mode="
            f"{mode} --direct_num_workers={count} --default_sdk_harness_log_level=ERROR"]
    outs = {name: DATA / f"out_runners_{i}" for i, name in enumerate(runs)}

    def digest(out: Path) -> dict[str, str]:
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file()}

    best = {name: float("inf") for name in runs}
    load_before = os.getloadavg()[0]
    for _ in range(max(1, args.rounds)):  # interleaved: all see the same background load
        for name, cmd in runs.items():
            shutil.rmtree(outs[name], ignore_errors=True)
            best[name] = min(best[name], _process_wall(cmd + ["-o", str(outs[name])]))
    load_after = os.getloadavg()[0]
    local = digest(outs["local"])
    print(f"set: {n} images 640x480{' --masks' if args.masks else ''}, --workers {workers}; "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    for name in runs:
        same = "" if name == "local" else f"; same bytes as local: {digest(outs[name]) == local}"
        print(f"  {name:<32} best wall {best[name]:6.2f} s = {n / best[name]:6.0f} images/s, "
              f"{best['local'] / best[name]:.2f}x local (whole process, best of "
              f"{max(1, args.rounds)}){same}")
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------- COCO scale

def small_jpeg(seed: int) -> bytes:
    """A distinct SCALE_WIDTH x SCALE_HEIGHT JPEG (blocky noise over a gradient)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (SCALE_HEIGHT // 8, SCALE_WIDTH // 8, 3)).astype(np.float32)
    img = np.kron(low, np.ones((8, 8, 1), np.float32))
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=75)
    return buf.getvalue()


def photo_like_sized(seed: int, width: int, height: int, quality: int = 90) -> bytes:
    """A distinct photo-like JPEG of any size, made the way `photo_like` makes its
    640x480 ones (smooth colour waves, blotches, ellipses, fine noise) at a fraction of
    the cost: waves from outer products, blobs drawn within their own boxes."""
    rng = np.random.default_rng(seed)
    x = np.arange(width, dtype=np.float32) / width
    y = np.arange(height, dtype=np.float32) / height
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-0.5, 0.5, 3) * 6
        # sin(ax + by + p) = sin(ax) cos(by + p) + cos(ax) sin(by + p)
        img[..., c] = 128 + 60 * (np.outer(np.cos(b * y + p), np.sin(a * x))
                                  + np.outer(np.sin(b * y + p), np.cos(a * x)))
    low = rng.normal(0, 25, (height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    img += low.repeat(16, 0).repeat(16, 1)[:height, :width]
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(20, 120, 2) * width / 640
        x0, x1 = int(max(cx - rx, 0)), int(min(cx + rx + 1, width))
        y0, y1 = int(max(cy - ry, 0)), int(min(cy + ry + 1, height))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        patch = img[y0:y1, x0:x1]
        patch[inside] = patch[inside] * 0.4 + rng.uniform(0, 255, 3).astype(np.float32) * 0.6
    img += rng.standard_normal(img.shape, dtype=np.float32) * 6
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _write_small(args) -> None:
    path, seed, size = args
    if size == (SCALE_WIDTH, SCALE_HEIGHT):
        Path(path).write_bytes(small_jpeg(seed))
    else:
        Path(path).write_bytes(photo_like_sized(seed, *size))


def generate_scale(root: Path, num_images: int, num_anns: int, workers: int,
                   size: tuple[int, int] = (SCALE_WIDTH, SCALE_HEIGHT)) -> Path:
    ann_file = root / "annotations" / "instances_train2017.json"
    stamp = root / f".complete-{num_images}-{num_anns}"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    img_dir = root / "train2017"
    img_dir.mkdir(parents=True)
    (root / "annotations").mkdir()
    t = time.perf_counter()
    names = [f"{i:012d}.jpg" for i in range(1, num_images + 1)]
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_write_small, [(str(img_dir / n), 10_000 + i, size)
                                for i, n in enumerate(names)], chunksize=256)
    rng = np.random.default_rng(0)
    per_image = np.full(num_images, num_anns // num_images)
    per_image[: num_anns - per_image.sum()] += 1
    rng.shuffle(per_image)
    with open(ann_file, "w") as f:
        f.write('{"info": {"description": "cocoprep COCO-scale benchmark"}, "licenses": [], ')
        f.write('"images": [')
        f.write(",".join(json.dumps({"license": 1, "file_name": n, "height": size[1],
                                     "width": size[0], "date_captured": "2013-11-14 17:02:52",
                                     "id": i}) for i, n in enumerate(names, 1)))
        f.write('], "annotations": [')
        ann_id, first = 1, True
        for i in range(1, num_images + 1):
            for _ in range(int(per_image[i - 1])):
                poly, bbox, area = _polygon(rng, *size)
                poly = poly + poly[: 2 * int(rng.integers(4, 12))]  # COCO-like vertex counts
                a = {"segmentation": [poly], "area": area, "iscrowd": 0, "image_id": i,
                     "bbox": bbox, "category_id": CATEGORIES[ann_id % len(CATEGORIES)]["id"],
                     "id": ann_id}
                f.write(("" if first else ",") + json.dumps(a))
                first = False
                ann_id += 1
        f.write('], "categories": ' + json.dumps(CATEGORIES) + "}")
    stamp.write_text("")
    print(f"generated {num_images} distinct {size[0]}x{size[1]} images, {num_anns} "
          f"annotations, {ann_file.stat().st_size / 1e6:.0f} MB JSON in "
          f"{time.perf_counter() - t:.0f} s")
    return root


def _pss(pid: int) -> int:
    """Proportional set size in bytes (shared library pages split between sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_rss(pid: int) -> dict[int, int]:
    """RSS in bytes of `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        ppid = int(status.split("PPid:")[1].split()[0])
        children.setdefault(ppid, []).append(int(entry))
        if "VmRSS:" in status:
            rss[int(entry)] = int(status.split("VmRSS:")[1].split()[0]) * 1024
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        out[p] = rss.get(p, 0)
        todo.extend(children.get(p, []))
    return out


def scale_set(images: int, annotations: int, wh: str, workers: int) -> Path:
    """The --coco-scale set of `images` distinct `wh` JPEGs (generated once)."""
    size = tuple(int(v) for v in wh.lower().split("x"))
    name = f"coco_scale_distinct_{images}"
    if size != (SCALE_WIDTH, SCALE_HEIGHT):
        name += f"_{size[0]}x{size[1]}"
    return generate_scale(DATA / name, images, annotations, workers, size)


def bench_scale(args) -> None:
    root = (Path(args.scale_src) if args.scale_src else
            scale_set(args.scale_images, args.scale_annotations, args.scale_wh,
                      args.workers or os.cpu_count() or 1))
    out = DATA / "out_scale"
    shutil.rmtree(out, ignore_errors=True)
    files = sorted(str(p) for p in (root / "train2017").iterdir())
    floor = eighth_scale_floor(files, args.workers or os.cpu_count() or 1)
    print(f"floor: 1/8-scale decode of the {len(files)} files, {floor:.0f} images/s "
          f"(load {os.getloadavg()[0]:.1f})")
    cmd = [sys.executable, "-m", "cocoprep", "convert", str(root), "-o", str(out), "--quiet"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.masks:
        cmd += ["--masks"]
    print("running:", " ".join(cmd), f"(load {os.getloadavg()[0]:.1f})")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    peaks = {"parent": 0, "child": 0, "tree": 0, "pss": 0}
    cpu_seen: dict[int, float] = {}
    sys_seen: dict[int, float] = {}  # the kernel's share (system time) of cpu_seen
    timeline: list[tuple[float, float, float]] = []  # (wall, parent CPU, workers' CPU)
    tick = os.sysconf("SC_CLK_TCK")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            tree = _tree_rss(proc.pid)
            peaks["parent"] = max(peaks["parent"], tree.get(proc.pid, 0))
            kids = [v for p, v in tree.items() if p != proc.pid]
            peaks["child"] = max([peaks["child"], *kids])
            peaks["tree"] = max(peaks["tree"], sum(tree.values()))
            peaks["pss"] = max(peaks["pss"], sum(_pss(p) for p in tree))
            for p in tree:
                try:
                    with open(f"/proc/{p}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    cpu_seen[p] = (int(fields[11]) + int(fields[12])) / tick
                    sys_seen[p] = int(fields[12]) / tick
                except (OSError, IndexError, ValueError):
                    pass
            parent_cpu = cpu_seen.get(proc.pid, 0.0)
            timeline.append((time.perf_counter() - t, parent_cpu,
                             sum(v for p, v in cpu_seen.items() if p != proc.pid)))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    cpu = sum(cpu_seen.values())
    worker_sys = sum(v for q, v in sys_seen.items() if q != proc.pid)
    worker_cpu = sum(v for q, v in cpu_seen.items() if q != proc.pid)
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    if proc.returncode != 0:
        print(err[-2000:])
        raise SystemExit(f"convert failed with exit code {proc.returncode}")
    from cocoprep.manifest import Manifest

    m = Manifest.read(out)
    s = m.splits["train2017"]
    print(f"COCO scale: {s.num_examples} images, {s.num_objects} objects, "
          f"{len(s.shards)} shards, skipped {sum(m.skipped.values())} {errors or ''}")
    print(f"  wall {wall:.1f} s ({s.num_examples / wall:.0f} images/s end to end, "
          f"{s.num_examples / wall / floor:.2f}x the 1/8-scale decode floor); CPU time "
          f"of its processes about {cpu:.0f} s (sampled; {os.cpu_count()} cores)")
    print(f"  peak RSS: parent {peaks['parent'] / 2**20:.0f} MiB, largest child "
          f"{peaks['child'] / 2**20:.0f} MiB; whole tree: RSS sum {peaks['tree'] / 2**20:.0f} "
          f"MiB, PSS sum {peaks['pss'] / 2**20:.0f} MiB (shared pages counted once; sampled "
          "every 0.1 s)")
    print(f"  workers: {worker_cpu:.0f} s of CPU, {worker_sys:.0f} s of it in the kernel "
          f"(system time: reads, writes, page reclaim); "
          f"{1e3 * worker_cpu / max(s.num_examples, 1):.2f} ms per image")
    print_timeline(timeline, wall)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def print_timeline(timeline: list[tuple[float, float, float]], wall: float,
                   buckets: int = 20) -> None:
    """Where the wall time went: per slice of the run, the cores the parent and the
    workers kept busy (from the sampled CPU times; 1.0 = one core all the time)."""
    if len(timeline) < 2:
        return
    print("  timeline (cores busy per slice: parent / workers):")
    step = wall / buckets
    j = 0
    prev = (0.0, 0.0, 0.0)
    for b in range(buckets):
        end = (b + 1) * step
        while j < len(timeline) - 1 and timeline[j][0] < end:
            j += 1
        cur = timeline[j]
        span = max(cur[0] - prev[0], 1e-9)
        print(f"    {prev[0]:6.1f}-{cur[0]:6.1f} s: parent {(cur[1] - prev[1]) / span:4.2f}, "
              f"workers {(cur[2] - prev[2]) / span:4.2f}")
        prev = cur


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000, help="size of the generated set")
    p.add_argument("--workers", type=int, default=None, help="default: CPU count")
    p.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    p.add_argument("--coco-scale", action="store_true", help="the 118k/860k run instead")
    p.add_argument("--scale-images", type=int, default=118_000)
    p.add_argument("--scale-annotations", type=int, default=860_000)
    p.add_argument("--scale-wh", default=f"{SCALE_WIDTH}x{SCALE_HEIGHT}",
                   help="--coco-scale image size, e.g. 640x480 (COCO's typical size: "
                        "photo-like JPEGs q90, as the 2000-image set; generated once, ~8 GB)")
    p.add_argument("--scale-src", default=None,
                   help="--coco-scale on this COCO root (annotations/ + train2017/) instead")
    p.add_argument("--keep", action="store_true", help="keep the output of --coco-scale")
    p.add_argument("--runner", choices=["local", "beam"], default="local",
                   help="beam: whole-process local vs Beam DirectRunner comparison")
    p.add_argument("--masks", action="store_true",
                   help="with --runner beam or --coco-scale: convert --masks")
    p.add_argument("--beam-modes", default="multi_threading,multi_processing",
                   help="with --runner beam: DirectRunner modes to run beside cocoprep's "
                        "default (comma-separated; in_memory runs 1 worker)")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.coco_scale:
        bench_scale(args)
    elif args.runner == "beam":
        bench_runners(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
