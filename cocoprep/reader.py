"""`load(...)`: cocoprep shards -> a fast, deterministic `tf.data.Dataset`.

Pipeline (every parallel stage as wide as the cores this process may use; tf.data's
autotuner off, see `_pipeline_options`)::

    argument checks (_check_options)
    -> record stream (_record_stream): shard files --(seeded shuffle, input_context
       shard)--> interleave(TFRecordDataset) -> record shuffle buffer (train only by
       default) -> repeat
    -> per-element steps (_element_fn), in parallel: parse (schema spec) -> decode (or
       an op that decodes only what it keeps) -> augmentation ops -> final resize ->
       objects cut to max_boxes and padded to it
    -> batching (_batch): batch (padded batch with masks or captions) -> prefetch

Feature keys are never spelled here: the parse spec and the feature table come from
`cocoprep.schema`.

Element layout
--------------
Detection (a dict):

* ``image``: uint8 ``[H, W, 3]``; float32 ``[S, S, 3]`` (values 0..255) when
  ``image_size`` is given (letterboxed: aspect ratio kept, padded with 0 at the
  bottom and right).
* ``image_id``: string, the record's source id (the COCO image id); ``filename``.
* ``boxes``: float32 ``[N, 4]`` as (ymin, xmin, ymax, xmax), normalized to the
  returned image.
* ``classes``: int32 ``[N]``, contiguous 0..C-1 in label-map order (-1 for an id
  missing from the label map); ``label_ids``: int32 ``[N]``, the stored label-map ids.
* ``is_crowd``: bool ``[N]``; ``area``: float32 ``[N]`` (as stored, source pixels).
* ``num_boxes``: int32 scalar, N.
* ``masks``: uint8 ``[N, H, W]`` with values 0/1 (only when the records hold masks).
* ``keypoints``: float32 ``[N, K, 2]`` as (y, x) normalized, and
  ``keypoint_visibility``: int32 ``[N, K]`` (0 absent, 1 hidden, 2 visible), only
  when the records hold keypoints.
* ``captions``: string ``[M]``, only when the records hold captions.

With ``batch_size``, per-object tensors are padded to ``max_boxes`` (objects beyond
``max_boxes`` are dropped, in stored order), except ``masks``, padded only to the
largest object count in the batch (``[B, M, S, S]`` with M <= max_boxes: full-size
masks padded to 100 objects would hold ~330 MB per batch of 8 at 640 px, nearly all
zeros): ``boxes``/``area``/``masks``/``keypoints`` with 0, ``classes`` and ``label_ids`` with -1, ``is_crowd`` with
False, ``keypoint_visibility`` with 0, ``captions`` with ``b""``; ``num_boxes``
tells how many rows are real.

Segmentation (a dict):

* ``image``: as for detection (letterboxed to ``image_size``: aspect ratio kept,
  padded with 0 at the bottom and right).
* ``mask``: uint8 ``[H, W]`` (``[S, S]`` with ``image_size``), the class ids as stored
  (label-map ids, background included; ``describe(...).class_names[id]`` names one)
  and 255 (``cocoprep.schema.VOID_ID``) for void. It moves with the pixels through
  every augmentation, is resized nearest-neighbour only (no id is ever invented)
  and padding is void.
* ``image_id`` (the record's source id) and ``filename``.

Batches stack: ``image`` ``[B, S, S, 3]``, ``mask`` ``[B, S, S]``.
``as_supervised=True`` gives ``(image, mask)``.

Classification (a dict): ``image``, ``label`` (int32, 0-based: the stored label
minus the manifest's ``label_offset``), ``label_text``, ``filename``.
``as_supervised=True`` gives ``(image, label)`` (detection: ``(image, targets)``
with the rest of the dict).
"""

from __future__ import annotations

import numbers
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cocoprep import schema
from cocoprep.datasetinfo import DECODE_SCALES, DatasetInfo, describe
from cocoprep.errors import UsageError
from cocoprep.labelmap import LabelMap

__all__ = ["load", "describe", "DatasetInfo", "DEFAULT_SHUFFLE_BUFFER"]

DEFAULT_SHUFFLE_BUFFER = 1024
_READ_BUFFER = 8 << 20
_PREFETCH_BATCHES = 2  # batches made ahead (elements: this many per core)


def _cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------ parsing

def _parser(task_schema: schema.TaskSchema, wanted: set[str]):
    """A function: one serialized record -> dict by feature name (lists as 1-D
    tensors). Parsing runs in the parallel element map: batching records to parse
    them together copied every record's bytes once more (more than it saved)."""
    import tensorflow as tf

    spec = schema.parse_spec(task_schema)
    by_name = {f.name: f for f in task_schema.features if f.name in wanted}
    # Lists as RaggedFeature: their 1-D values, without a sparse tensor's indices.
    spec = {f.key: (tf.io.RaggedFeature(spec[f.key].dtype) if isinstance(
        spec[f.key], tf.io.VarLenFeature) else spec[f.key]) for f in by_name.values()}

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        return {name: parsed[f.key] for name, f in by_name.items()}

    return parse


def _parsed_names(info: DatasetInfo) -> set[str]:
    if info.task == "classification":
        return {"encoded", "filename", "label", "label_text"}
    if info.task == "segmentation":
        return {"encoded", "filename", "source_id", "class_mask"}
    names = {"encoded", "filename", "source_id", "xmin", "ymin", "xmax", "ymax",
             "class_label", "is_crowd", "area"}
    if info.has_masks:
        names.add("mask")
    if info.has_keypoints:
        names |= {"keypoint_x", "keypoint_y", "keypoint_visibility"}
    if info.has_captions:
        names.add("caption")
    return names


# ------------------------------------------------------------------ options

@dataclass(frozen=True)
class _Options:
    """`load`'s options, checked, with the defaults that depend on the split resolved."""

    size: tuple[int, int] | None
    batch_size: int | None
    max_boxes: int
    shuffle: bool
    shuffle_buffer: int
    base_seed: int
    deterministic: bool
    repeat: bool
    drop_remainder: bool
    decode_scale: str = "auto"


def _size_pair(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (bool, str, bytes)):
        raise UsageError("image_size", "an int or (height, width)", image_size)
    if isinstance(image_size, int):
        pair = (image_size, image_size)
    else:
        try:
            pair = tuple(int(v) for v in image_size)
        except (TypeError, ValueError):
            raise UsageError("image_size", "an int or (height, width)", image_size) from None
        if len(pair) != 2:
            raise UsageError("image_size", "an int or (height, width)", image_size)
    if min(pair) < 1:
        raise UsageError("image_size", "positive sizes", image_size)
    return pair


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UsageError(name, "an integer >= 1", value)


def _check_options(info: DatasetInfo, *, image_size, batch_size, max_boxes, shuffle, seed,
                   shuffle_buffer, deterministic, repeat, drop_remainder,
                   decode_scale: str = "auto") -> _Options:
    if decode_scale not in DECODE_SCALES:
        raise UsageError("decode_scale", " or ".join(map(repr, DECODE_SCALES)), decode_scale)
    size = _size_pair(image_size)
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
        if size is None:
            raise UsageError("image_size", "a size when batch_size is given (images differ "
                             "in size and must be resized to stack)", None)
    _positive_int("max_boxes", max_boxes)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise UsageError("seed", "an integer or None", seed)
    _positive_int("shuffle_buffer", shuffle_buffer)
    if shuffle is None:
        shuffle = info.split == "train" if info.split is not None else any(
            Path(f).name.startswith("train") for f in info.files)
    if deterministic is None:
        deterministic = seed is not None or not shuffle
    base_seed = (random.SystemRandom().randrange(1 << 31) if seed is None
                 else int(seed) & 0x7FFFFFFF)
    return _Options(size=size, batch_size=None if batch_size is None else int(batch_size),
                    max_boxes=int(max_boxes), shuffle=bool(shuffle),
                    shuffle_buffer=int(shuffle_buffer), base_seed=base_seed,
                    deterministic=bool(deterministic), repeat=bool(repeat),
                    drop_remainder=bool(drop_remainder), decode_scale=decode_scale)


# ------------------------------------------------------------------ record stream

def _record_stream(files: Sequence[str], opts: _Options, input_context):
    """Serialized records: shard files (seeded shuffle, split across input pipelines)
    -> interleaved reads -> record shuffle -> repeat."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    n_files = len(files)
    split_records = None
    if input_context is not None and input_context.num_input_pipelines > 1:
        n_pipes, pipe = input_context.num_input_pipelines, input_context.input_pipeline_id
        if n_files >= n_pipes:
            dataset = dataset.shard(n_pipes, pipe)
            n_files = len(range(pipe, n_files, n_pipes))
        else:
            split_records = (n_pipes, pipe)

    def read(f):
        return tf.data.TFRecordDataset(f, buffer_size=_READ_BUFFER)

    # Records split by position need the same stream in every pipeline (each may draw
    # its own seed): then read the files in stored order; the record shuffle below
    # still shuffles each pipeline's part.
    if opts.shuffle and split_records is None:
        dataset = dataset.shuffle(max(n_files, 1), seed=opts.base_seed,
                                  reshuffle_each_iteration=True)
        cycle = max(1, min(n_files, 8))
        records = dataset.interleave(read, cycle_length=cycle, block_length=1,
                                     num_parallel_calls=min(cycle, _cores()),
                                     deterministic=opts.deterministic)
    else:
        # Unshuffled reads keep the stored order (what evaluation and `preview` expect);
        # reading is never the bottleneck, decoding is.
        records = dataset.flat_map(read)
    if split_records is not None:
        records = records.shard(*split_records)
    if opts.shuffle:
        records = records.shuffle(opts.shuffle_buffer, seed=opts.base_seed + 1,
                                  reshuffle_each_iteration=True)
    if opts.repeat:
        # After the shuffles: clean epoch boundaries, each epoch reshuffled.
        records = records.repeat()
    return records


# ------------------------------------------------------------------ elements

def _label_lookup(label_map: LabelMap | None):
    """A function: stored label-map ids (int64) -> contiguous 0-based classes (int32)."""
    import tensorflow as tf

    if label_map is None:
        # No label map next to a glob of shards: OD API convention, ids start at 1.
        return lambda ids: tf.cast(ids, tf.int32) - 1
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(label_map.ids, tf.int64),
            tf.range(len(label_map), dtype=tf.int32)),
        default_value=-1)
    return table.lookup


def _detection_record(parsed: dict, info: DatasetInfo, lookup) -> dict:
    """The element before decoding: per-object tensors and the encoded image/masks."""
    import tensorflow as tf

    from cocoprep.decoding import ENCODED, ENCODED_MASKS

    ids = parsed["class_label"]
    boxes = tf.stack([parsed["ymin"], parsed["xmin"], parsed["ymax"], parsed["xmax"]], axis=-1)
    element = {
        ENCODED: parsed["encoded"],
        "image_id": parsed["source_id"],
        "filename": parsed["filename"],
        "boxes": tf.reshape(boxes, [-1, 4]),
        "classes": lookup(ids),
        "label_ids": tf.cast(ids, tf.int32),
        "is_crowd": parsed["is_crowd"] > 0,
        "area": parsed["area"],
        "num_boxes": tf.shape(ids, out_type=tf.int32)[0],
    }
    if info.has_masks:
        element[ENCODED_MASKS] = parsed["mask"]
    if info.has_keypoints:
        n, k = tf.shape(ids)[0], info.num_keypoints
        ky = tf.reshape(parsed["keypoint_y"], [n, k])
        kx = tf.reshape(parsed["keypoint_x"], [n, k])
        element["keypoints"] = tf.stack([ky, kx], axis=-1)
        element["keypoint_visibility"] = tf.cast(
            tf.reshape(parsed["keypoint_visibility"], [n, k]), tf.int32)
    if info.has_captions:
        element["captions"] = parsed["caption"]
    return element


def _classification_record(parsed: dict, info: DatasetInfo) -> dict:
    import tensorflow as tf

    from cocoprep.decoding import ENCODED

    return {
        ENCODED: parsed["encoded"],
        "label": tf.cast(parsed["label"], tf.int32) - info.label_offset,
        "label_text": parsed["label_text"],
        "filename": parsed["filename"],
    }


def _segmentation_record(parsed: dict) -> dict:
    from cocoprep.decoding import ENCODED, ENCODED_CLASS_MASK

    return {
        ENCODED: parsed["encoded"],
        ENCODED_CLASS_MASK: parsed["class_mask"],
        "image_id": parsed["source_id"],
        "filename": parsed["filename"],
    }


def _record_fn(info: DatasetInfo):
    """A function: parsed record -> the element before decoding, for the task."""
    if info.task == "detection":
        lookup = _label_lookup(info.label_map)
        return lambda parsed: _detection_record(parsed, info, lookup)
    if info.task == "segmentation":
        return _segmentation_record
    return lambda parsed: _classification_record(parsed, info)


def _element_steps(info: DatasetInfo, opts: _Options, augment) -> list:
    """The per-element pipeline, in order: decode (or an op that decodes only what it
    keeps), the augmentation ops, the final resize, the objects cut and padded to `max_boxes`."""
    import functools

    from cocoprep import augment as _augment

    pipeline = _augment.resolve(augment, task=info.task, image_size=opts.size,
                                num_keypoints=info.num_keypoints)
    ops = list(pipeline.ops) if pipeline is not None else []
    detection = info.task == "detection"
    # Detection and segmentation letterbox (shapes keep their proportions); a
    # segmentation mask keeps the stored size until it moves with the pixels, so its
    # image is decoded at full scale too (DECODE_RULES).
    keep_aspect = info.task != "classification"
    steps: list = []
    full = opts.decode_scale == "full"
    if full or not (ops and getattr(ops[0], "decodes", False)):
        # A reduced-scale decode only where nothing before the resize depends on the
        # pixel size, and masks (decoded at stored size) are absent (DECODE_RULES).
        # With "full", an op that would decode only its window (RandomResizedCrop)
        # gets decoded pixels instead and crops them.
        reduce = (not full and opts.size is not None and not info.has_masks
                  and info.task != "segmentation"
                  and all(getattr(op, "scale_invariant", False) for op in ops))
        steps.append(_augment.Decode(opts.size if reduce else None, keep_aspect=keep_aspect))
    steps += ops
    if opts.size is not None:
        steps.append(functools.partial(_augment.resize_to, size=opts.size,
                                       keep_aspect=keep_aspect))
    if opts.batch_size is not None and detection:
        steps.append(functools.partial(_fit_objects, max_boxes=opts.max_boxes))
    return steps


def _element_fn(info: DatasetInfo, opts: _Options, augment):
    """A function: (running index, parsed record) -> element. Each element's seed is
    (base seed, index): augmentation independent of parallelism, new every epoch."""
    import tensorflow as tf

    from cocoprep.augment import Compose

    to_record = _record_fn(info)
    steps = Compose(_element_steps(info, opts, augment))
    base = tf.constant(opts.base_seed, tf.int64)

    parse = _parser(schema.schema_for(info.task), _parsed_names(info))

    @tf.autograph.experimental.do_not_convert
    def to_element(index, serialized):
        return steps(to_record(parse(serialized)), tf.stack([base, index]))

    return to_element


# ------------------------------------------------------------------ load

def load(
    path: str | os.PathLike,
    split: str = "train",
    *,
    batch_size: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    shuffle: bool | None = None,
    augment: Any = None,
    seed: int | None = None,
    repeat: bool = False,
    as_supervised: bool = False,
    max_boxes: int = 100,
    input_context: Any = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    drop_remainder: bool = False,
    deterministic: bool | None = None,
    prefetch: bool = True,
    decode_scale: str = "auto",
):
    """Read a split of cocoprep records as a `tf.data.Dataset`.

    Args:
        path: an output directory of `cocoprep convert`/`split` (read through its
            manifest.json) or a glob of shard files.
        split: the split to read (ignored for a glob).
        batch_size: batch elements; detection pads per-object tensors to
            `max_boxes`, masks to the batch's largest object count (see the module
            docstring for padding values). Needs `image_size` so that images stack.
        image_size: int or (height, width). Detection and segmentation: letterbox
            (keep aspect ratio, pad bottom/right with 0; boxes, masks and keypoints
            remapped; a segmentation mask resized nearest-neighbour, padded with void).
            Classification: plain resize. Images become float32 0..255.
        decode_scale: ``"auto"``: a JPEG that the resize shrinks 2x or more is
            decoded at reduced DCT scale (1/2, 1/4, 1/8; never below the size),
            unless the records hold masks (then always at full scale: masks keep
            the stored size, and the image must match them); so the same JPEG can
            give slightly different pixels with and without masks (`describe(...)`
            `.decode_rule` says which rule applies). ``"full"``: always decode at
            full scale, then resize: the pixels of ``tf.io.decode_image`` followed
            by ``tf.image.resize`` (or the letterbox), for evaluation that must
            match a serving pipeline; slower on large JPEGs.
        shuffle: shuffle shard order and records (buffer `shuffle_buffer`);
            default: only for the ``train`` split.
        augment: ``"default"`` (a preset for the task), a `cocoprep.augment`
            op / `Compose`, or a list of ops; None for none.
        seed: makes file order, record order and augmentation deterministic.
        repeat: repeat forever (each epoch reshuffled).
        as_supervised: ``(image, label)`` for classification, ``(image, mask)``
            for segmentation, ``(image, targets)`` for detection.
        max_boxes: objects kept per image when batching.
        input_context: a `tf.distribute.InputContext`; each input pipeline reads
            its own shard files (records are split instead when there are fewer
            files than pipelines).
        deterministic: element order guarantee; default: True when `seed` is
            given or nothing is shuffled.

    Raises:
        ManifestError: no manifest, or no such split (the message lists the splits).
        InputError: nothing at `path`, or a glob matching no shard.
        UsageError: a bad option.
    """
    import tensorflow as tf

    info = describe(path, split)
    opts = _check_options(info, image_size=image_size, batch_size=batch_size,
                          max_boxes=max_boxes, shuffle=shuffle, seed=seed,
                          shuffle_buffer=shuffle_buffer, deterministic=deterministic,
                          repeat=repeat, drop_remainder=drop_remainder,
                          decode_scale=decode_scale)
    to_element = _element_fn(info, opts, augment)
    records = _record_stream(info.files, opts, input_context)
    ds = records.enumerate().map(to_element, num_parallel_calls=_cores(),
                                 deterministic=opts.deterministic)
    ds = _batch(ds, opts)
    if as_supervised:
        if info.task in ("classification", "segmentation"):
            target = "label" if info.task == "classification" else "mask"
            ds = ds.map(lambda e: (e["image"], e[target]))
        else:
            ds = ds.map(lambda e: (e["image"], {k: v for k, v in e.items() if k != "image"}))
    if prefetch:
        ds = ds.prefetch(_PREFETCH_BATCHES if opts.batch_size else _PREFETCH_BATCHES * _cores())
    return ds.with_options(_pipeline_options(opts))


def _pipeline_options(opts: _Options):
    """The dataset's options: its order guarantee, and tf.data's autotuner off.

    With the autotuner on, a pass over the same bytes ran at full speed or parked
    its decoding on about one core (1140 vs 705 img/s, the same CPU per image, a
    core idle two thirds of the time) in 3 to 7 of 16 passes of a bare decode+resize
    pipeline on a 2-core machine, whatever the map's parallelism (it is what made
    `load` and Keras' `image_dataset_from_directory` differ from round to round);
    with it off and each stage as wide as the cores, in none of 42
    (`benchmarks/bench_reader.py --autotune-check 16`). A pipeline appended after `load`
    may turn it back on with its own `tf.data.Options`."""
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = opts.deterministic
    options.autotune.enabled = False
    return options


# ------------------------------------------------------------------ batching

def _batch(ds, opts: _Options):
    if opts.batch_size is None:
        return ds
    spec = ds.element_spec
    if all(s.shape.is_fully_defined() for s in spec.values()):
        # Per-object tensors already padded per element (_fit_objects): a plain batch
        # copies each image once, where padded_batch first fills the whole batch with
        # the padding value (a second write of every pixel). Without its own
        # num_parallel_calls, tf.data fuses it with the element map (map_and_batch:
        # each element is copied into the batch by the worker that made it).
        return ds.batch(opts.batch_size, drop_remainder=opts.drop_remainder)
    return ds.padded_batch(
        opts.batch_size, padded_shapes=_padded_shapes(spec, opts.max_boxes),
        padding_values=_padding_values(spec), drop_remainder=opts.drop_remainder)


def _fit_objects(element: dict, max_boxes: int) -> dict:
    """Keep the first `max_boxes` objects (in stored order), and pad the per-object
    tensors except masks to `max_boxes` rows (the padding values of `_padding_values`;
    masks are padded by the batch, to its largest object count)."""
    import tensorflow as tf

    from cocoprep.augment import OBJECT_KEYS

    out = dict(element)
    # The rows of padding, computed once (every per-object tensor has N rows).
    missing = max_boxes - tf.minimum(tf.shape(element["boxes"])[0], max_boxes)
    paddings = {}
    for key in (k for k in OBJECT_KEYS if k in out):
        value = out[key][:max_boxes]
        if key != "masks":
            rank = value.shape.rank
            if rank not in paddings:
                paddings[rank] = tf.stack([tf.stack([0, missing])] + [[0, 0]] * (rank - 1))
            value = tf.pad(value, paddings[rank],
                           constant_values=_padding_value(key, value.dtype))
            value = tf.ensure_shape(value, [max_boxes] + value.shape.as_list()[1:])
        out[key] = value
    out["num_boxes"] = tf.minimum(tf.cast(element["num_boxes"], tf.int32), max_boxes)
    return out


def _padded_shapes(spec: dict, max_boxes: int) -> dict:
    """Per-object tensors padded to `max_boxes` rows; masks only to the batch's
    largest object count (full-size masks padded to 100 objects made one batch of 8
    at 640 px hold 328 MB, nearly all zeros)."""
    import tensorflow as tf

    from cocoprep.augment import OBJECT_KEYS

    shapes = {}
    for k, s in spec.items():
        dims = list(s.shape)
        if k in OBJECT_KEYS:
            dims[0] = None if k == "masks" else max_boxes
        shapes[k] = tf.TensorShape(dims)
    return shapes


def _padding_value(key: str, dtype):
    import tensorflow as tf

    if key in ("classes", "label_ids"):
        return tf.constant(-1, dtype)
    if dtype == tf.string:
        return tf.constant(b"", tf.string)
    if dtype == tf.bool:
        return tf.constant(False)
    return tf.constant(0, dtype)


def _padding_values(spec: dict) -> dict:
    return {k: _padding_value(k, s.dtype) for k, s in spec.items()}
