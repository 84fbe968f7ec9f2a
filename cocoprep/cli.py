"""The `cocoprep` command line: a thin layer over the Python API.

Each command turns its options into one library call and the result into an exit
code. A `CocoprepError` becomes one line `Error: ...` on stderr and a non-zero
exit, never a traceback. Options that several commands share are declared once,
below, and passed to the library by keyword under their own names.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import click

from cocoprep import __version__, interrupt
from cocoprep import train as _train  # no TensorFlow at import: only names and defaults
from cocoprep.errors import CocoprepError
from cocoprep.tfimport import import_tensorflow
from cocoprep.manifest import FIXED_NAME


def _import_tensorflow_quietly() -> None:
    """Called first by the commands that run TensorFlow in this process: its C++
    start-up notices stay off the terminal, and `TF_CPP_MIN_LOG_LEVEL` (default 3
    here) quiets the rest, e.g. the CUDA probe's error line on CPU-only machines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import_tensorflow()


_WRITES_OUT = ("convert", "split")


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so Python's exit-time flush of a closed pipe does
    not print its own error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _Group(click.Group):
    """Every command runs with SIGINT/SIGTERM raising `Interrupted`: a typed error
    or an interrupt is one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx):
        with interrupt.signals_raise():
            try:
                return super().invoke(ctx)
            except CocoprepError as e:
                click.echo(f"Error: {e}", err=True)
                ctx.exit(e.exit_code)
            except BrokenPipeError:  # `cocoprep ... | head`: the reader left; say nothing
                _quiet_stdout()
                ctx.exit(141)  # 128 + SIGPIPE, as a shell reports it
            except OSError as e:  # the file system said no where no typed error was ready
                where = f"{e.filename}: " if e.filename else ""
                click.echo(f"Error: {where}{e.strerror or e}", err=True)
                ctx.exit(1)
            except KeyboardInterrupt as e:
                click.echo(interrupt.message(ctx.invoked_subcommand in _WRITES_OUT), err=True)
                ctx.exit(getattr(e, "exit_code", 130))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cocoprep")
def cli() -> None:
    """cocoprep: correct, fast, deterministic TFRecords for TensorFlow vision.

    Example:

        cocoprep convert fixtures/coco -o tfrecords
    """


def main(argv: list[str] | None = None) -> None:
    from cocoprep import beam_runner

    beam_runner.LEAN_IMPORT = True  # this process is the command's own
    cli.main(args=argv, prog_name="cocoprep")


# ------------------------------------------------------------------ shared options

def options(*decorators: Callable) -> Callable:
    """One decorator applying `decorators` as if stacked in this order."""
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


def seed_option(help: str) -> Callable:
    return click.option("--seed", default=0, show_default=True, type=int, help=help)


def quiet_option(help: str = "No progress bars or summary.") -> Callable:
    return click.option("-q", "--quiet", is_flag=True, help=help)


OUT_OPTION = click.option("-o", "--out", default="tfrecords", show_default=True,
                          help="Output directory.")

# The options of every command that writes records (`convert`, `split`): each is
# passed to the library call by keyword under its own name, and the library builds
# the one `WriteOptions` value from them. `task` words the help for the command.
def _write_options(task: str) -> tuple[Callable, ...]:
    lost = "images or objects" if task == "detection" else "images"
    remote = ("SRC, --images and -o may then be gs://, s3://, ... paths"
              if task == "detection" else "-o may then be a gs://, s3://, ... path")
    return (
        click.option("--num-shards", default=None, type=int, help="Shards per split."),
        click.option("--shard-size", default=None, metavar="SIZE",
                     help="Target shard size, e.g. 200MB (default: 200MB, and about one shard "
                          "per 128 images, at most 16)."),
        click.option("--encode", default="jpeg", show_default=True,
                     type=click.Choice(["jpeg", "png"]),
                     help="Encoding for images that must be converted."),
        click.option("--max-side", default=None, type=int, metavar="N",
                     help="Resize images whose longer side is over N pixels (aspect kept, "
                          "after EXIF orientation); smaller images are stored as they are."),
        click.option("--jpeg-quality", default=95, show_default=True, type=int, metavar="Q",
                     help="Quality of the JPEGs cocoprep encodes (resized, converted, rotated)."),
        click.option("--strict", is_flag=True,
                     help="Exit 1 if anything was skipped (after writing)."),
        click.option("--allow-partial", is_flag=True,
                     help=f"Accept a split written empty or that lost more than half of its "
                          f"{lost} (otherwise exit 1, after writing)."),
        click.option("--workers", default=None, type=int,
                     help="Processes  [default: CPU count]."),
        quiet_option(),
        click.option("--runner", default="local", show_default=True,
                     type=click.Choice(["local", "beam"]),
                     help=f"local: a process pool; beam: an Apache Beam pipeline (same bytes; "
                          f'{remote}; needs pip install "apache-beam>=2.60").'),
        click.option("--beam-options", default=None, metavar='"FLAGS"',
                     help="Apache Beam pipeline flags as one string, e.g. \"--runner="
                          "DataflowRunner --project=P --region=R --temp_location=gs://b/tmp\" "
                          "[default: DirectRunner; in_memory for 1 worker, multi_threading for 2 "
                          "and up to 5000 items, else multi_processing]."),
    )




def _skipped_line(manifest) -> str:
    skipped = sum(manifest.skipped.values())
    reasons = ", ".join(f"{k} {v}" for k, v in manifest.skipped.items())
    return f"  skipped {skipped}" + (f" ({reasons})" if skipped else "")


# ------------------------------------------------------------------ convert

@cli.command("convert")
@click.argument("src", type=click.Path(path_type=str))
@OUT_OPTION
@click.option("--images", default=None, metavar="DIR",
              help="Image directory (for a single JSON file; overrides discovery).")
@click.option("--splits", default=None, metavar="A,B",
              help="Convert only these splits (names from the JSON file names).")
@click.option("--ratio", default=None, metavar="TRAIN,VAL[,TEST]",
              help="Split one annotation file into train/val[/test] by image, stratified "
                   "by category presence.")
@seed_option("Seeds the in-split shuffle and --ratio.")
@click.option("--shuffle/--no-shuffle", default=True, show_default=True,
              help="Seeded shuffle within each split, or keep the JSON order.")
@click.option("--masks", is_flag=True, help="Write instance masks (PNG) from polygons and RLE.")
@click.option("--missing-masks", default="box", show_default=True,
              type=click.Choice(["box", "skip-image"]),
              help="With --masks, an object without a usable segmentation: a mask filled "
                   "from its box (counted), or skip its whole image.")
@click.option("--contiguous-ids", is_flag=True,
              help="Label ids 1..N in category order instead of COCO's category ids.")
@click.option("--skip-empty", is_flag=True, help="Drop images with no object written.")
@click.option("--crowd", default="keep", show_default=True, type=click.Choice(["keep", "drop"]),
              help="Keep crowd annotations (is_crowd=1) or drop them.")
@click.option("--skip-difficult", is_flag=True,
              help="Pascal VOC: drop objects marked difficult (reported in skipped.jsonl).")
@click.option("--classes", default=None, metavar="A,B,...",
              help="Class names in label order (ids 1..N; objects of other classes are "
                   "skipped). Pascal VOC [default: every name in the XMLs, sorted]; YOLO: "
                   "names a folder without a names file.")
@click.option("--task", default=None, type=click.Choice(["detection", "segmentation"]),
              help="What to write [default: segmentation for a tree of masks without "
                   "detection annotations, else detection]. segmentation: Pascal VOC "
                   "SegmentationClass/ or image/mask folder pairs -> one class-id PNG per image.")
@click.option("--panoptic", is_flag=True,
              help="COCO panoptic (segmentation): also write the category and instance "
                   "masks (image/panoptic/...; 16-bit instance ids past 255).")
@options(*_write_options("detection"))
def convert_cmd(src, out, images, splits, ratio, seed, shuffle, masks, missing_masks,
                contiguous_ids, skip_empty, crowd, skip_difficult, classes, task, panoptic,
                **write):
    """Convert a detection dataset (COCO JSON, Pascal VOC or YOLO) + images into
    sharded detection TFRecords. The format is recognised by itself; the summary's
    first line names what was understood.

    SRC is a COCO root (annotations/instances_<split>.json with images in <split>/
    or images/<split>/; person_keypoints_ and captions_ files are merged, image_info_
    files give records without objects), a COCO export from a labelling tool (CVAT
    annotations/instances_default.json, Roboflow <split>/_annotations.coco.json,
    Label Studio result.json, FiftyOne labels.json), one COCO JSON file (images
    beside it, or --images DIR); a Pascal VOC folder (VOCdevkit with
    Annotations/ + JPEGImages/ + ImageSets/Main/, or images with one XML each); a
    YOLO data set (data.yaml, obj.data, or images with .txt labels and classes.txt);
    LabelMe JSONs; a CVAT for images 1.1 XML (annotations.xml + images/); KITTI
    (training/image_2 + label_2); or Open Images CSVs (official or FiftyOne).

    Writes OUT/{split}.tfrecord-{i:05d}-of-{n:05d}, label_map.pbtxt, labels.txt,
    manifest.json, skipped.jsonl (every skipped image or annotation, with its
    reason) and the TensorFlow Datasets files (dataset_info.json, features.json and
    the class-names file: tfds.builder_from_directory(OUT) opens it). A malformed
    annotation file is an error and nothing is written. A split written empty, or
    that lost more than half of its images or objects, exits 1 after writing.

    With --task segmentation (found by itself for a tree of masks only): a Pascal
    VOC SegmentationClass/ tree (palette masks read as class ids, 255 void; a
    CVAT/Datumaro labelmap.txt gives colours), Cityscapes (19 train classes), a
    Roboflow mask export, COCO panoptic (--panoptic adds the instance masks), COCO
    instances (drawn per category, crowd void) or image/mask folder pairs (images/
    + masks/, annotations/ or labels/; names from classes.txt or --classes;
    ADE20K). Each record holds the image and an 8-bit class-id PNG of its size; a
    mask that does not decode, differs in size or holds ids the label map lacks is
    skipped.

    Example:

        cocoprep convert fixtures/coco -o tfrecords --masks

        cocoprep convert fixtures/seg -o seg-records
    """
    from cocoprep.errors import DataLossError, StrictModeError
    from cocoprep.segconvert import convert_task

    try:
        manifest = convert_task(
            src, out, task=task, panoptic=panoptic, images=images, splits=splits, ratio=ratio,
            seed=seed, shuffle=shuffle, masks=masks, missing_masks=missing_masks,
            contiguous_ids=contiguous_ids, skip_empty=skip_empty, crowd=crowd,
            skip_difficult=skip_difficult, classes=classes, **write)
    except (StrictModeError, DataLossError) as e:
        if not write["quiet"] and getattr(e, "manifest", None) is not None:
            _convert_summary(e.manifest, out)
        raise
    if not write["quiet"]:
        _convert_summary(manifest, out)


def _convert_summary(manifest, out) -> None:
    if manifest.sources.get("layout"):
        click.echo(f"layout: {manifest.sources['layout']}")
    for note in manifest.sources.get("notes", []):
        click.echo(f"  note: {note}")
    width = max((len(name) for name in manifest.splits), default=0)
    for name, info in manifest.splits.items():
        objects = ("" if manifest.task == "segmentation"
                   else f" {info.num_objects:>8} objects")
        click.echo(f"  {name:<{width}} {info.num_examples:>7} images{objects} "
                   f"in {len(info.shards)} shard(s)")
    click.echo(_skipped_line(manifest))
    if manifest.counters:
        click.echo("  " + ", ".join(f"{k} {v}" for k, v in manifest.counters.items()))
    if manifest.counters.get("boxes_clipped"):
        click.echo(f"  boxes clipped to their images: each named in {FIXED_NAME}")
    from_boxes = manifest.counters.get("masks_from_boxes", 0)
    if from_boxes:
        click.echo(f"  {from_boxes} object(s) have no real mask: their masks are filled "
                   "from their boxes (--missing-masks skip-image skips such images)")
    click.echo(f"wrote {out}")


# ------------------------------------------------------------------ split

@cli.command("split")
@click.argument("src", type=click.Path(path_type=str))
@OUT_OPTION
@click.option("--ratio", default=None, metavar="TRAIN,VAL[,TEST]",
              help="Split fractions, summing to 1  [default: 0.8,0.2]. Not for a tree "
                   "that is already split (SRC/train/<class>/...).")
@seed_option("Seeds the split and the record order.")
@click.option("--classes", default=None, metavar="A,B,...",
              help="Pick and order the classes (default: all class folders, sorted).")
@click.option("--label-offset", default=0, show_default=True, type=int,
              help="Stored label of the first class (1 = Inception/Slim style, 0 = background).")
@click.option("--keep-conflicts", is_flag=True,
              help="Identical files under two classes: keep the first class's copy "
                   "(default: keep every copy out).")
@options(*_write_options("classification"))
def split_cmd(src, out, ratio, seed, classes, label_offset, keep_conflicts, **write):
    """Split a class-per-folder image tree into train/val[/test] TFRecords.

    SRC is SRC/<class>/... (split by --ratio, stratified per class, seeded) or
    SRC/<split>/<class>/... with split folders named train, val, validation, dev,
    test (the splits are kept). Labels are the sorted class folder names (as
    tf.keras.utils.image_dataset_from_directory orders them), 0-based unless
    --label-offset is given. Byte-identical files always share a split.

    Writes OUT/{split}.tfrecord-*, manifest.json, labels.txt, {split}.txt (path and
    label of every record), skipped.jsonl, label_map.pbtxt when labels start at 1
    or more, and the TensorFlow Datasets files (dataset_info.json, features.json,
    the class-names file).

    Example:

        cocoprep split fixtures/imgs -o tfrecords --ratio 0.8,0.1,0.1 --seed 1
    """
    from cocoprep.split import split_folder

    manifest = split_folder(src, out, ratio=ratio, seed=seed, classes=classes,
                            label_offset=label_offset, keep_conflicts=keep_conflicts, **write)
    for warning in manifest.options.get("warnings", []):
        click.echo(f"Warning: {warning}", err=True)
    if not write["quiet"]:
        _split_summary(manifest, src, out, seed)


def _split_summary(manifest, src, out, seed) -> None:
    from cocoprep.builders import IMAGES_RESIZED

    classes_written = next(iter(manifest.splits.values())).class_counts
    layout = ("SRC/<split>/<class>/..., splits kept" if manifest.sources.get("layout") == "splits"
              else "SRC/<class>/..., ratio " + "/".join(f"{r:g}" for r in manifest.options["ratio"]))
    click.echo(f"{src}: {len(classes_written)} classes ({layout}), seed {seed}")
    width = max(len(name) for name in manifest.splits)
    for name, info in manifest.splits.items():
        counts = ", ".join(f"{c} {n}" for c, n in info.class_counts.items())
        click.echo(f"  {name:<{width}} {info.num_examples:>6} images in "
                   f"{len(info.shards)} shard(s)  ({counts})")
    click.echo(_skipped_line(manifest))
    ignored = {k: v for k, v in manifest.counters.items() if k.startswith("ignored_")}
    if ignored:
        click.echo("  ignored " + ", ".join(f"{k[8:]} {v}" for k, v in ignored.items()))
    max_side = manifest.options.get("max_side")
    if max_side is not None:
        click.echo(f"  resized {manifest.counters.get(IMAGES_RESIZED, 0)} image(s) to at "
                   f"most {max_side} px on the longer side")
    click.echo(f"wrote {out}")


# ------------------------------------------------------------------ verify / inspect / preview

@cli.command("verify")
@click.argument("path")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes, one shard each (default: one per 256 MB of shards, up to the CPU count).")
@quiet_option("No progress bar.")
def verify_command(path: str, workers: int | None, quiet: bool) -> None:
    """Check that the records in PATH are intact and right.

    PATH is an output directory (checked against its manifest.json: shard
    sha256s, missing or extra shards, counts) or a quoted shard glob (the checks
    that need no manifest). Every record is read (a bad checksum or a truncated
    file names the file and record index), parsed with the schema, its image and
    masks decoded and compared with the stored size; boxes must lie in [0, 1]
    with min <= max and labels must be in the label map. Prints one line per
    problem and exits 1, or `OK: ...` and exits 0.

    Example:

        cocoprep verify tfrecords

        cocoprep verify 'tfrecords/train.tfrecord-*'
    """
    _import_tensorflow_quietly()
    from cocoprep.verify import verify

    report = verify(path, workers=workers, quiet=quiet)
    for problem in report.problems:
        click.echo(str(problem))
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(report.summary())
    click.get_current_context().exit(0 if report.ok else 1)


@cli.command("inspect")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def inspect_command(path: str, as_json: bool) -> None:
    """Show what the records in PATH hold, split by split.

    Examples, objects (per image: mean and max), every class with its count and
    a bar, crowd objects, masks/keypoints/captions, image size range, shards
    and their sizes, skipped items by reason (from manifest.json), and the two
    lines that open an output directory with TensorFlow Datasets. PATH is an
    output directory or a quoted shard glob.

    Example:

        cocoprep inspect tfrecords

        cocoprep inspect tfrecords --json
    """
    _import_tensorflow_quietly()
    import json

    from cocoprep.inspection import format_inspect, inspect

    report = inspect(path)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(format_inspect(report))


@cli.command("preview")
@click.argument("path")
@click.option("--split", default=None,
              help="Split to show (default: the only split, else the train-like one).")
@click.option("-n", "num", type=click.IntRange(min=1), default=16, show_default=True,
              help="Examples to draw.")
@click.option("--augment", is_flag=True, help="Apply the default augmentation first.")
@seed_option("Seed of the augmentation (and of --shuffle).")
@click.option("--shuffle", is_flag=True, help="A seeded random sample instead of the first N.")
@click.option("--tile", type=click.IntRange(min=32), default=256, show_default=True,
              help="Size of each image's square tile, in pixels.")
@click.option("--columns", type=click.IntRange(min=1), default=None,
              help="Tiles per row (default: a square grid).")
@click.option("-o", "--output", default="preview.png", show_default=True,
              help="PNG file to write.")
def preview_command(path: str, split: str | None, num: int, augment: bool, seed: int, shuffle: bool,
                    tile: int, columns: int | None, output: str) -> None:
    """Draw examples of PATH into a PNG grid, as the model will get them.

    Records are read through cocoprep.load: boxes, class names and translucent
    masks are drawn in one colour per class (classification: the label under
    each image). PATH is an output directory or a quoted shard glob.

    Example:

        cocoprep preview tfrecords --split val -n 9 -o preview.png

        cocoprep preview tfrecords --augment --seed 3
    """
    _import_tensorflow_quietly()
    from cocoprep.preview import preview

    written = preview(path, split=split, n=num, augment=augment, seed=seed, shuffle=shuffle,
                      tile=tile, columns=columns, output=output)
    click.echo(f"Wrote {written}")


@cli.command("report")
@click.argument("path")
@click.option("-o", "--output", default=None,
              help="HTML file to write (default: PATH/report.html).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes, one shard each (default: one per 256 MB of shards, up to the CPU count).")
@click.option("--per-class", type=click.IntRange(min=0), default=2, show_default=True,
              help="Example images drawn per class (0: none).")
@click.option("--share-factor", type=float, default=2.0, show_default=True,
              help="Flag a class whose share of a split differs from its share of the "
                   "train-like split by more than this factor.")
@click.option("--verify", "run_verify", is_flag=True,
              help="Also run `cocoprep verify` and show its result on the page.")
@quiet_option("No progress bar.")
def report_command(path: str, output: str | None, workers: int | None, per_class: int,
                   share_factor: float, run_verify: bool, quiet: bool) -> None:
    """Write one self-contained HTML page of what the records in PATH hold.

    Classes per split (flags for a class missing from a split or with a very
    different share), box sizes, aspect ratios and centres, image sizes and
    formats, pixel shares of semantic masks, skipped items by reason, example
    images with their labels drawn, images in more than one split, and the lines
    that load the output. The page opens from disk with no network. PATH is an
    output directory or a quoted shard glob. Needs the `report` extra
    (matplotlib). Problems in the records (a damaged shard, an empty split) are
    listed on the page and end the command with one Error line and exit code 1.

    Example:

        cocoprep report tfrecords

        cocoprep report tfrecords --verify -o report.html
    """
    from cocoprep.report import ReportProblems, report
    from cocoprep.report.plots import require_matplotlib

    require_matplotlib()  # before TensorFlow's start-up: a missing extra is said at once
    _import_tensorflow_quietly()
    result = report(path, output=output, workers=workers, per_class=per_class,
                    share_factor=share_factor, verify=run_verify, quiet=quiet)
    if result.problems:
        raise ReportProblems(result)
    click.echo(f"Wrote {result.path}")


# ------------------------------------------------------------------ smoketrain

@cli.command("smoketrain")
@click.argument("data", default=_train.DEFAULT_DATA, required=False,
                type=click.Path(path_type=str))
@click.option("-o", "--out", "run_dir", default=_train.DEFAULT_RUN_DIR, show_default=True,
              help="Run directory for metrics.json and model.keras.")
@click.option("--backbone", default=_train.DEFAULT_BACKBONE, show_default=True,
              type=click.Choice(list(_train.BACKBONES)), help="keras.applications backbone.")
@click.option("--weights", default="imagenet", show_default=True, metavar="imagenet|none|PATH",
              help="Backbone weights: ImageNet (downloaded once into the Keras cache), "
                   "random init, or a local weights file.")
@click.option("--head", default=None, type=click.Choice(list(_train.DETECTION_HEADS)),
              help="Detection records: a CenterNet box detector (detection), or one "
                   "sigmoid per class per image (multilabel)  [default: detection].")
@click.option("--steps", default=_train.DEFAULT_STEPS, show_default=True, type=int,
              help="Training steps in each phase.")
@click.option("--batch-size", default=_train.DEFAULT_BATCH_SIZE, show_default=True, type=int,
              help="Global batch size (split over the GPUs).")
@click.option("--image-size", default=None, type=int,
              help="Square input size in px  [default: the backbone's native size].")
@click.option("--fine-tune-layers", default=_train.DEFAULT_FINE_TUNE_LAYERS, show_default=True,
              type=int, help="Top backbone layers unfrozen in phase 2 (0: no phase 2).")
@click.option("--lr", default=_train.DEFAULT_LR, show_default=True, type=float,
              help="Phase-1 learning rate (Adam); phase 2 uses a tenth.")
@seed_option("Seeds weight init, record order and augmentation.")
@click.option("--train-split", default=None, metavar="NAME",
              help="Split to train on  [default: the only split, else the train-like one "
                   "(train, train2017, training, ...)].")
@click.option("--val-split", default=None, metavar="NAME",
              help="Split to validate on  [default: the val-like split (val, valid, "
                   "validation, val2017, dev; test as a last resort)].")
@quiet_option("Only the PASS/FAIL line.")
def smoketrain_cmd(data, run_dir, backbone, weights, head, steps, batch_size, image_size,
                   fine_tune_layers, lr, seed, train_split, val_split, quiet):
    """Fine-tune a Keras backbone on the records to prove that they train.

    DATA is a directory written by `cocoprep convert` (detection records: a
    CenterNet-style detector on the backbone's stride-8 feature map, trained on
    the boxes; --head multilabel: one sigmoid per class, an image's targets being
    its non-crowd objects' classes; segmentation records: a pixel softmax on the
    same feature map, upsampled, void pixels left out) or `cocoprep split`
    (classification: softmax).
    Phase 1 trains a new head on the frozen backbone; phase 2 unfreezes the top
    --fine-tune-layers backbone layers (BatchNorm stays frozen, in inference mode)
    at a tenth of --lr. Input: cocoprep.load with augmentation, then the
    backbone's preprocess_input. GPUs: MirroredStrategy over all, mixed_float16,
    XLA; CPU: float32.

    PASS (exit 0) when every loss is finite and the mean loss of the last 10% of
    steps is below that of the first 10% by more than 6 noise standard errors
    (noise measured around the local trend) and 10% of the first; the detector
    must also bring down its box loss and its heatmap loss; the segmenter must end
    below the loss of the best pixel-blind prediction (each batch's class
    frequencies) by 45% of it and by more than 4 noise SE. FAIL
    (exit 1) otherwise, and before training when the train split holds no objects
    (detection) or one class. Writes RUN_DIR/metrics.json (with mAP@0.5 on the
    validation split for the detector, mIoU beside the majority-class baseline's
    for the segmenter) and RUN_DIR/model.keras (inputs: images
    after preprocess_input; cocoprep.train.decode turns detector outputs into
    boxes).

    Example:

    \b
        cocoprep convert fixtures/coco
        cocoprep smoketrain --weights none --image-size 128
    """
    _import_tensorflow_quietly()
    result = _train.smoketrain(
        data, run_dir, backbone=backbone, weights=weights, head=head, steps=steps,
        batch_size=batch_size,
        image_size=image_size, fine_tune_layers=fine_tune_layers, lr=lr, seed=seed,
        train_split=train_split, val_split=val_split,
        log=None if quiet else click.echo,
        progress=not quiet and sys.stderr.isatty(),
    )
    if quiet:  # otherwise `log` printed it
        click.echo(f"{result.metrics['result']}: {result.verdict.reason}")
    else:
        click.echo(f"wrote {result.metrics_path}, {result.model_path}")
    if not result.passed:
        click.get_current_context().exit(1)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
