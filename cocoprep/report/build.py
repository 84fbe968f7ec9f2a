"""`report`: read an output's records (in parallel, streaming), then write the page.

The steps, in order: resolve PATH (the rule every reading command shares), read
every shard into per-split statistics (`gather`), add what the manifest and
skipped.jsonl say, draw a few examples with `preview`'s drawing, and render the
page (`page`). Problems the records have (a damaged shard, an empty split, a
missing shard) go on the page; `report` returns them and the command line turns
them into one `Error:` line after the page is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from cocoprep import schema
from cocoprep.errors import CocoprepError, InputError, UsageError
from cocoprep.inspection import split_entry, tfds_lines
from cocoprep.manifest import MANIFEST_NAME, REPORT_NAME, SKIPPED_NAME
from cocoprep.report import plots
from cocoprep.report.gather import ShardJob, SplitStats, gather
from cocoprep.report.model import ReportData, ReportResult, SkipGroup
from cocoprep.report.page import render_page
from cocoprep.shards import Shards, resolve, task_of
from cocoprep.splitnames import default_split

_FIRST_SKIPPED = 5      # items shown per split and reason
_THUMB = 96
_EXAMPLE_SCAN = 2000    # records looked at to find examples of every class
_EXAMPLE_TILES = 40


def class_flags(counts: dict[str, dict[str, int]], names: list[str], reference: str,
                factor: float) -> dict[str, list[str]]:
    """What is odd about each class across splits: missing from a split that other
    splits have it in, or a share of its split more than `factor` times (or less
    than 1/`factor` of) its share of `reference`."""
    totals = {split: sum(c.values()) for split, c in counts.items()}
    flags: dict[str, list[str]] = {}
    for name in names:
        have = {split: c.get(name, 0) for split, c in counts.items()}
        out = []
        if any(have.values()):
            out += [f"missing from {split}" for split, n in have.items() if n == 0]
        ref = have.get(reference, 0)
        for split, n in have.items():
            if split == reference or not n or not ref or not totals[split]:
                continue
            ratio = (n / totals[split]) / (ref / totals[reference])
            if ratio > factor or ratio < 1 / factor:
                out.append(f"{split} share {ratio:.1f}x {reference}'s")
        flags[name] = out
    return flags


def _class_names(shards: Shards, stats: dict[str, SplitStats]) -> list[str]:
    names: list[str] = []
    if shards.manifest is not None:
        for info in shards.manifest.splits.values():
            names += [n for n in info.class_counts if n not in names]
    found: dict[str, int] = {}
    for s in stats.values():
        for n, c in s.tally.classes.items():
            found[n] = found.get(n, 0) + c
    return names + sorted((n for n in found if n not in names), key=lambda n: (-found[n], n))


def _seg_names(shards: Shards) -> dict[int, str]:
    from cocoprep.labelmap import LabelMap

    m = shards.manifest
    path = shards.directory / (m.labels_txt if m is not None and m.labels_txt else "labels.txt")
    names = {schema.VOID_ID: "void"}
    if path.is_file():
        try:
            lm = LabelMap.read_labels_txt(path, start=m.label_offset if m is not None else 0)
            names.update({item.id: item.name for item in lm})
        except Exception:  # a bad label map is verify's to report; ids stand in for names
            pass
    return names


def _thumbnail(item: dict, shards: Shards) -> str | None:
    """A small picture of a skipped item's source image, where it can be read."""
    from PIL import Image

    file = item.get("file")
    if not file or shards.manifest is None:
        return None
    sources = shards.manifest.sources
    roots = [None, (sources.get("splits", {}).get(item.get("split"), {}) or {}).get("images"),
             sources.get("images"), sources.get("src")]
    for root in roots:
        path = Path(file) if root is None else Path(root) / file
        try:
            with Image.open(path) as im:
                im.thumbnail((_THUMB, _THUMB))
                return plots.picture(im.convert("RGB"))
        except Exception:  # missing, unreadable or corrupt: that is why it was skipped
            continue
    return None


def _skipped(shards: Shards) -> dict[tuple[str, str], SkipGroup]:
    """skipped.jsonl by split and reason, read line by line."""
    groups: dict[tuple[str, str], SkipGroup] = {}
    path = shards.directory / SKIPPED_NAME
    if shards.manifest is None or not path.is_file():
        return groups
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                item = json.loads(line)
                key = (str(item.get("split")), str(item["reason"]))
            except (json.JSONDecodeError, KeyError, AttributeError):
                item, key = {"detail": f"line {number} is not a skip record"}, ("?", "unreadable")
            group = groups.setdefault(key, SkipGroup())
            group.count += 1
            if len(group.first) < _FIRST_SKIPPED:
                group.first.append(dict(item, thumb=_thumbnail(item, shards)))
    return dict(sorted(groups.items()))


def _pick_examples(elements, task: str, per_class: int) -> list[dict]:
    """Up to `per_class` examples of each class, in record order (`elements`: dicts
    of numpy values, as `cocoprep.load` gives them)."""
    import numpy as np

    need: dict[int, int] = {}
    picked = []
    for k, ex in enumerate(elements):
        if k >= _EXAMPLE_SCAN or len(picked) >= _EXAMPLE_TILES:
            break
        ids = ([int(ex["label"])] if task == "classification"
               else sorted(set(np.asarray(ex["classes"]).tolist())))
        wanted = [i for i in ids if need.get(i, 0) < per_class]
        if wanted:
            for i in wanted:
                need[i] = need.get(i, 0) + 1
            picked.append(ex)
    return picked


def _segmentation_elements(files: tuple[str, ...]):
    """Semantic-mask records as `preview.render` draws masks: one mask per class
    present (void left out), coloured by the class id."""
    import io

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from cocoprep.framing import read_shard

    keys = schema.keys_of(schema.SEGMENTATION, ("encoded", "class_mask", "source_id"))
    for f in files:
        for framed in read_shard(f):
            if framed.data is None:
                continue  # listed among the page's problems already
            feature = tf.train.Example.FromString(framed.data).features.feature
            value = {name: feature[key].bytes_list.value[0] for name, key in keys.items()}
            try:
                ids = np.asarray(Image.open(io.BytesIO(value["class_mask"])))
                pixels = np.asarray(Image.open(io.BytesIO(value["encoded"])).convert("RGB"))
            except Exception:  # an undecodable image is verify's to name
                continue
            present = [i for i in np.unique(ids).tolist() if i != schema.VOID_ID]
            yield {"image": pixels, "classes": np.array(present, np.int64),
                   "masks": np.stack([ids == i for i in present]) if present else None,
                   "boxes": np.zeros((0, 4), np.float32), "image_id": value["source_id"]}


def _examples(path: str, shards: Shards, task: str, split: str,
              per_class: int) -> tuple[str | None, str]:
    if per_class == 0:
        return None, "--per-class 0: no examples asked for."
    import tensorflow as tf

    import cocoprep
    from cocoprep.preview import render
    from cocoprep.reader import describe

    names = None
    try:
        if task == "segmentation":
            files = tuple(f for f in shards.splits[split] if os.path.isfile(f))
            picked = _pick_examples(_segmentation_elements(files), task, per_class)
        else:
            names = describe(path, split).class_names
            ds = cocoprep.load(path, split, shuffle=False)
            picked = _pick_examples(({k: v.numpy() for k, v in el.items()} for el in ds), task,
                                    per_class)
    except (CocoprepError, tf.errors.OpError) as e:  # listed among the problems already
        return None, f"No examples: the records of {split!r} could not be read ({e})."
    if not picked:
        return None, f"No examples: split {split!r} holds no record."
    # a semantic mask is drawn as preview draws instance masks: one colour per class
    image, _ = render(picked, task="classification" if task == "classification" else "detection",
                      class_names=names, tile=160, columns=min(8, len(picked)))
    return plots.picture(image), (f"Up to {per_class} image(s) per class from split {split!r}, "
                                  "drawn as `cocoprep preview` draws them.")


def _leaks(stats: dict[str, SplitStats]) -> list[tuple[str, dict[str, str]]]:
    seen: dict[str, dict[str, str]] = {}
    for split, s in stats.items():
        for sha, filename in s.hashes:
            seen.setdefault(sha, {}).setdefault(split, filename)
    return sorted((sha, where) for sha, where in seen.items() if len(where) > 1)


def _use_lines(shards: Shards, task: str, split: str) -> list[tuple[str, str]]:
    where = str(shards.directory) if not shards.from_glob else shards.path
    lines = [("cocoprep (tf.data, decoded and batched):",
              f"import cocoprep\nds = cocoprep.load({where!r}, {split!r}, batch_size=32, "
              "shuffle=True)")]
    tfds = tfds_lines(shards)
    if tfds:
        lines.append(("TensorFlow Datasets:", "import tensorflow_datasets as tfds\n"
                      + "\n".join(tfds)))
    if task == "detection":
        lm = shards.manifest.label_map if shards.manifest is not None else None
        label_map = f'\n  label_map_path: "{shards.directory / lm}"' if lm else ""
        pattern = shards.directory / f"{split}.tfrecord-*"
        lines.append(("TensorFlow Object Detection API (pipeline.config):",
                      f"train_input_reader {{{label_map}\n  tf_record_input_reader {{\n"
                      f'    input_path: "{pattern}"\n  }}\n}}'))
    return lines


def _read(shards: Shards, task: str, *, workers: int | None, quiet: bool
          ) -> tuple[dict[str, SplitStats], list[str]]:
    problems = [f"{f}: missing (listed in {MANIFEST_NAME})" for f in shards.missing()]
    jobs = [ShardJob(f, os.path.relpath(f, shards.directory), split, task)
            for split, files in shards.splits.items() for f in files if os.path.isfile(f)]
    total = shards.manifest.num_examples if shards.manifest is not None else None
    stats = gather(jobs, list(shards.splits), task, workers=workers, quiet=quiet, total=total)
    for split, s in stats.items():
        problems += s.problems
        if s.tally.examples == 0:
            problems.append(f"split {split!r} holds no examples")
    return stats, problems


def report(path: str | os.PathLike, *, output: str | os.PathLike | None = None,
           workers: int | None = None, share_factor: float = 2.0, per_class: int = 2,
           verify: bool = False, quiet: bool = False) -> ReportResult:
    """Write one self-contained HTML page of what the records at `path` (an output
    directory or a shard glob) hold; `output` defaults to PATH/report.html.
    Returns the page's path and the problems it lists (damaged or missing shards,
    empty splits); problems do not stop the page."""
    plots.require_matplotlib()
    if share_factor <= 1:
        raise UsageError("--share-factor", "a number > 1", share_factor)
    if per_class < 0:
        raise UsageError("--per-class", "an integer >= 0", per_class)
    path = os.fspath(path)
    shards = resolve(path)
    task = task_of(shards)
    schema.schema_for(task)
    stats, problems = _read(shards, task, workers=workers, quiet=quiet)
    present = dataclasses.replace(shards, splits={
        s: tuple(f for f in files if os.path.isfile(f)) for s, files in shards.splits.items()})
    entries = {split: split_entry(present, split, task, stats[split].tally) for split in stats}
    names = _class_names(shards, stats)
    try:
        reference = default_split(list(stats), counts={s: e["examples"] for s, e in entries.items()})
    except UsageError:
        reference = next(iter(stats))
    uri, note = _examples(path, shards, task, reference, per_class)
    checked = None
    if verify:
        from cocoprep.verify import verify as run_verify

        checked = run_verify(path, workers=workers, quiet=quiet)
    data = ReportData(
        path=path, task=task, manifest=shards.manifest, entries=entries, stats=stats,
        class_names=names, reference=reference, share_factor=share_factor,
        flags=class_flags({s: e["classes"] for s, e in entries.items()}, names, reference,
                          share_factor),
        seg_names=_seg_names(shards) if task == "segmentation" else {},
        skipped=_skipped(shards), examples_uri=uri, examples_note=note, leaks=_leaks(stats),
        use_lines=_use_lines(shards, task, reference), verify=checked, problems=tuple(problems))
    out = Path(output) if output is not None else shards.directory / REPORT_NAME
    try:
        out.write_text(render_page(data), encoding="utf-8")
    except OSError as e:
        raise InputError(out, "an HTML file path that can be written",
                         (e.strerror or str(e)).lower()) from None
    return ReportResult(out, tuple(problems))
