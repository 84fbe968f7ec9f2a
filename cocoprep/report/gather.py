"""The statistics of a report, gathered shard by shard in worker processes.

One task per shard: its records are read with `framing.read_shard` (a damaged
record becomes a problem, not a crash), parsed in batches with the schema's spec
and counted into a `ShardStats` of fixed-size histograms and counters, so memory
does not grow with the shard. The parent adds the shards of a split together
(`SplitStats.merge`). `inspect`'s own `Tally` counts the numbers the two commands
share, so they cannot disagree.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from cocoprep import schema
from cocoprep.framing import BATCH, read_shard
from cocoprep.inspection import Tally, new_tally
from cocoprep.progress import report_progress

# Histogram layouts (shared with the plots, which label their axes from them).
REL_SIZE_BINS = np.linspace(0.0, 1.0, 41)        # sqrt(box area / image area)
ASPECT_BINS = np.linspace(-4.0, 4.0, 33)          # log2(box width / box height), pixels
CENTRE_BINS = 20                                  # a CENTRE_BINS x CENTRE_BINS grid
OBJECTS_CAP = 50                                  # objects per image; the last bin is ">= cap"
COCO_AREAS = (32 ** 2, 96 ** 2)                   # COCO's small / medium / large limits
_BYTES_PER_WORKER = 256 * 2 ** 20

_EXTRA = {
    "detection": ("xmin", "ymin", "xmax", "ymax", "is_crowd", "difficult", "class_text",
                  "original_width", "original_height"),
    "classification": (),
    "segmentation": ("class_mask",),
}
_COMMON = ("height", "width", "sha256", "filename", "format", "encoded")


@dataclass(frozen=True)
class ShardJob:
    """One shard to read (picklable)."""

    path: str
    display: str
    split: str
    task: str


@dataclass
class SplitStats:
    """What the records of one shard, or of a whole split, hold."""

    split: str
    tally: Tally
    images_per_class: Counter = field(default_factory=Counter)  # detection
    rel_size: np.ndarray = field(default_factory=lambda: np.zeros(len(REL_SIZE_BINS) - 1, np.int64))
    coco_sizes: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    aspect: np.ndarray = field(default_factory=lambda: np.zeros(len(ASPECT_BINS) - 1, np.int64))
    centres: np.ndarray = field(default_factory=lambda: np.zeros((CENTRE_BINS, CENTRE_BINS),
                                                                 np.int64))
    per_image: np.ndarray = field(default_factory=lambda: np.zeros(OBJECTS_CAP + 1, np.int64))
    difficult: int = 0
    sizes: Counter = field(default_factory=Counter)       # (width, height) -> images
    formats: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)     # Pillow mode -> images
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))  # class id
    hashes: list = field(default_factory=list)             # (sha256, filename) per image
    problems: list = field(default_factory=list)           # what could not be read

    def merge(self, other: "SplitStats") -> None:
        self.tally.merge(other.tally)
        for name in ("rel_size", "coco_sizes", "aspect", "centres", "per_image", "pixels"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("images_per_class", "sizes", "formats", "channels"):
            getattr(self, name).update(getattr(other, name))
        self.difficult += other.difficult
        self.hashes += other.hashes
        self.problems += other.problems


def empty_stats(split: str, task: str) -> SplitStats:
    return SplitStats(split, new_tally(task)[0])


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}  # IHDR colour type -> mode
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}                 # SOF components -> mode
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}    # frame headers (not DHT/JPG/DAC)


def channels(data: bytes) -> str:
    """The Pillow mode of an encoded JPEG or PNG, read from its header alone (a few
    microseconds; opening it with Pillow costs about 40 times that)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25:
        return _PNG_MODES.get(data[25], "unknown")
    if data[:2] != b"\xff\xd8":
        return "unknown"
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _SOF:
            return _JPEG_MODES.get(data[i + 9], "unknown")
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return "unknown"


def _values(sparse) -> np.ndarray:
    return sparse.values.numpy()


def _add_boxes(stats: SplitStats, batch: dict, keys: dict, n: int) -> None:
    """Box geometry of one parsed batch; crowd and difficult objects are counted apart."""
    texts = batch[keys["class_text"]]
    rows = texts.indices.numpy()[:, 0] if texts.values.shape[0] else np.zeros(0, np.int64)
    per_image = np.bincount(rows, minlength=n)
    stats.per_image += np.bincount(np.minimum(per_image, OBJECTS_CAP), minlength=OBJECTS_CAP + 1)
    names = [_text(t) for t in _values(texts).tolist()]
    stats.images_per_class.update(name for _, name in set(zip(rows.tolist(), names)))
    if not rows.size:
        return
    x0, y0, x1, y1 = (_values(batch[keys[k]]) for k in ("xmin", "ymin", "xmax", "ymax"))
    crowd = _values(batch[keys["is_crowd"]])
    difficult = _values(batch[keys["difficult"]])
    if difficult.shape != crowd.shape:  # not a VOC output: no flags written
        difficult = np.zeros_like(crowd)
    stats.difficult += int((difficult > 0).sum())
    keep = (crowd == 0) & (difficult == 0)
    width = batch[keys["width"]].numpy()
    height = batch[keys["height"]].numpy()
    # COCO's area limits are in the pixels the annotations were drawn on
    ow, oh = batch[keys["original_width"]].numpy(), batch[keys["original_height"]].numpy()
    width = np.where(ow > 0, ow, width)[rows].astype(np.float64)
    height = np.where(oh > 0, oh, height)[rows].astype(np.float64)
    bw, bh = (x1 - x0)[keep], (y1 - y0)[keep]
    width, height = width[keep], height[keep]
    stats.rel_size += np.histogram(np.sqrt(np.clip(bw * bh, 0, 1)), REL_SIZE_BINS)[0]
    area = bw * width * bh * height
    stats.coco_sizes += np.array([(area < COCO_AREAS[0]).sum(),
                                  ((area >= COCO_AREAS[0]) & (area < COCO_AREAS[1])).sum(),
                                  (area >= COCO_AREAS[1]).sum()])
    ok = (bw > 0) & (bh > 0)
    ratio = np.log2((bw[ok] * width[ok]) / (bh[ok] * height[ok]))
    stats.aspect += np.histogram(np.clip(ratio, -4, 4), ASPECT_BINS)[0]
    cx, cy = ((x0 + x1) / 2)[keep], ((y0 + y1) / 2)[keep]
    grid = np.linspace(0.0, 1.0, CENTRE_BINS + 1)
    stats.centres += np.histogram2d(np.clip(cy, 0, 1), np.clip(cx, 0, 1), [grid, grid])[0].astype(
        np.int64)


def _add_masks(stats: SplitStats, masks: list) -> None:
    """Pixels per class id of one batch of semantic masks."""
    from PIL import Image

    for data in masks:
        try:
            with Image.open(io.BytesIO(data)) as im:
                ids = np.asarray(im)
        except Exception:
            stats.channels["unreadable mask"] += 1
            continue
        if ids.ndim == 2 and ids.dtype == np.uint8:
            stats.pixels += np.bincount(ids.ravel(), minlength=256)


def _add_batch(stats: SplitStats, task: str, keys: dict, batch: dict) -> None:
    stats.tally.add(batch)
    n = len(batch[keys["height"]].numpy())
    width, height = batch[keys["width"]].numpy().tolist(), batch[keys["height"]].numpy().tolist()
    stats.sizes.update(zip(width, height))
    stats.formats.update(_text(f) for f in batch[keys["format"]].numpy().tolist())
    encoded = batch[keys["encoded"]].numpy().tolist()
    stats.channels.update(channels(data) for data in encoded)
    stats.hashes += zip((_text(s) for s in batch[keys["sha256"]].numpy().tolist()),
                        (_text(f) for f in batch[keys["filename"]].numpy().tolist()))
    if task == "detection":
        _add_boxes(stats, batch, keys, n)
    elif task == "segmentation":
        _add_masks(stats, batch[keys["class_mask"]].numpy().tolist())
    # (classification: the tally's class counts are the images per class)


def _parse(records: list[bytes], spec: dict):
    import tensorflow as tf

    try:
        return tf.io.parse_example(tf.constant(records), spec)
    except (tf.errors.InvalidArgumentError, ValueError):
        return None


def shard_stats(job: ShardJob) -> SplitStats:
    """The statistics of one shard (the worker's task)."""
    stats = empty_stats(job.split, job.task)
    task_schema = schema.schema_for(job.task)
    keys = schema.keys_of(task_schema, stats.tally.keys.keys() | set(_COMMON)
                          | set(_EXTRA[job.task]))
    full = schema.parse_spec(task_schema)
    spec = {key: full[key] for key in keys.values()}
    pending: list[bytes] = []
    first = 0

    def flush() -> None:
        nonlocal first
        if pending:
            batch = _parse(pending, spec)
            if batch is None:
                stats.problems.append(f"{job.display}: records {first}..{first + len(pending) - 1}"
                                      f": do not parse with the {job.task} schema (run "
                                      "`cocoprep verify` for the record)")
            else:
                _add_batch(stats, job.task, keys, batch)
            report_progress(len(pending))
            first += len(pending)
            pending.clear()

    try:
        for framed in read_shard(job.path):
            if framed.data is None:
                flush()
                stats.problems.append(f"{job.display}: record {framed.index}: {framed.problem}")
                first = framed.index + 1
                continue
            pending.append(framed.data)
            if len(pending) >= BATCH * 4:
                flush()
        flush()
    except OSError as e:
        stats.problems.append(f"{job.display}: cannot read ({e.strerror or e})")
    return stats


def gather(jobs: list[ShardJob], splits: list[str], task: str, *, workers: int | None,
           quiet: bool, total: int | None) -> dict[str, SplitStats]:
    """Every shard read in `workers` processes (default: one per 256 MB of shards, up
    to the CPU count), added up per split (in `splits` order)."""
    from cocoprep.parallel import map_tasks
    from cocoprep.progress import progress_bar
    from cocoprep.tfimport import import_tensorflow

    if workers is None:
        size = sum(os.path.getsize(j.path) for j in jobs)
        workers = min(os.cpu_count() or 1, max(1, size // _BYTES_PER_WORKER))
    out = {split: empty_stats(split, task) for split in splits}
    with progress_bar(total, "reading", "rec", quiet) as bar:
        results = map_tasks(shard_stats, jobs, workers=max(1, int(workers)), bar=bar,
                            init=import_tensorflow,
                            describe=lambda job: f"reading {job.display}")
    for job, stats in zip(jobs, results):
        out[job.split].merge(stats)
    return out
