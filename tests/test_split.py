"""`cocoprep split` end to end: options -> files on disk -> records read back."""

import io
import json
import os
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

from cocoprep.errors import StrictModeError, UsageError
from cocoprep.labelmap import LabelMap
from cocoprep.manifest import Manifest
from cocoprep.sources import folder
from cocoprep.split import split_folder
from conftest import FIXTURES, image_bytes, invoke, read_records

_seed = iter(range(10**6))


def make_tree(root: Path, counts: dict[str, int], *, size: int = 16) -> Path:
    """Distinct small JPEGs: `counts` maps a class (or `split/class`) to a number."""
    for cls, n in counts.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (d / f"{i:03d}.jpg").write_bytes(image_bytes(size, size, seed=next(_seed)))
    return root


run = partial(invoke, "split")


def listing(out: Path, split: str) -> list[tuple[str, int]]:
    lines = (out / f"{split}.txt").read_text(encoding="utf-8").splitlines()
    return [(path, int(label)) for path, label in (line.rsplit(" ", 1) for line in lines)]


# ------------------------------------------------------------------ the committed fixtures


def test_fixtures_split_end_to_end(tmp_path):
    out = tmp_path / "y"
    result = run(FIXTURES / "imgs", "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "train" in result.stdout and "val" in result.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dataset_info.json", "features.json", "image.class.label.labels.txt",
                     "labels.txt", "manifest.json", "skipped.jsonl",
                     "train.tfrecord-00000-of-00001", "train.txt",
                     "val.tfrecord-00000-of-00001", "val.txt"]
    classes = ["circle", "square", "stripes", "triangle"]
    assert (out / "labels.txt").read_text() == "".join(c + "\n" for c in classes)
    assert (out / "skipped.jsonl").read_text() == ""
    m = Manifest.read(out)
    assert m.task == "classification" and m.label_offset == 0
    assert m.label_map is None and m.labels_txt == "labels.txt"
    assert m.splits["train"].class_counts == {c: 8 for c in classes}
    assert m.splits["val"].class_counts == {c: 2 for c in classes}
    assert m.options["ratio"] == [0.8, 0.2] and m.options["seed"] == 0
    for split in ("train", "val"):
        records = read_records(out, split)
        assert [(r["filename"], int(r["label"])) for r in records] == listing(out, split)
        for r in records:
            cls = r["filename"].split("/")[0]
            assert r["label_text"] == cls and r["label"] == classes.index(cls)
            assert r["format"] == ("png" if r["filename"].endswith(".png") else "jpeg")
            assert Image.open(io.BytesIO(r["encoded"])).size == (r["width"], r["height"])
    # the subfolder images belong to their class, the PNG passes through untouched
    written = {p for s in ("train", "val") for p, _ in listing(out, s)}
    assert {"square/more/square_008.jpg", "triangle/triangle_004.png"} <= written
    png = next(r for s in ("train", "val") for r in read_records(out, s)
               if r["filename"] == "triangle/triangle_004.png")
    assert png["encoded"] == (FIXTURES / "imgs/triangle/triangle_004.png").read_bytes()


# ------------------------------------------------------------------ bad input: Error, exit 2, nothing written


def _bad_trees(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    only_other = tmp_path / "only_other"
    (only_other / "cat").mkdir(parents=True)
    (only_other / "cat" / "notes.txt").write_text("x")
    one = make_tree(tmp_path / "one", {"cat": 3})
    flat = make_tree(tmp_path, {"flat": 3}) / "flat"  # images but no class folders
    a_file = tmp_path / "file.jpg"
    a_file.write_bytes(image_bytes(8, 8))
    return {"empty": empty, "only_other": only_other, "one": one, "flat": flat, "file": a_file,
            "missing": tmp_path / "missing", "good": make_tree(tmp_path / "good",
                                                               {"a": 3, "b": 3})}


@pytest.mark.parametrize("tree, args, words", [
    ("good", ["--ratio", "0.5,0.6"], "--ratio: expected fractions that sum to 1"),
    ("good", ["--ratio", "0.7,0.2"], "sum to 0.9"),
    ("good", ["--ratio", "1.5,-0.5"], "greater than 0 and less than 1"),
    ("good", ["--ratio", "0,1"], "greater than 0 and less than 1"),
    ("good", ["--ratio", "0.9"], "2 or 3 comma-separated"),
    ("good", ["--ratio", "x,y"], "numbers such as"),
    ("empty", [], "no images in class folders"),
    ("only_other", [], "no images in class folders (1 other file"),
    ("one", [], "expected at least 2 class folders, found 1 (cat)"),
    ("flat", [], "found 3 image(s) outside any class folder and none inside one"),
    ("good", ["--classes", "a"], "expected at least 2 class folders, found 1 (a)"),
    ("good", ["--classes", "a,zebra"], "--classes: expected names of class folders (a, b)"),
    ("good", ["--label-offset", "-1"], "--label-offset: expected an integer >= 0"),
    ("good", ["--workers", "0"], "--workers: expected an integer >= 1"),
    ("good", ["--num-shards", "0"], "--num-shards: expected an integer >= 1"),
    ("good", ["--shard-size", "lots"], "--shard-size"),
    ("missing", [], "expected a directory of class folders, found nothing (no such path)"),
    ("file", [], "expected a directory of class folders, found a file"),
])
def test_bad_input_is_an_error_and_writes_nothing(tmp_path, tree, args, words):
    src = _bad_trees(tmp_path)[tree]
    out = tmp_path / "out"
    result = run(src, "-o", out, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unreadable_src_is_an_error(tmp_path, monkeypatch):
    src = make_tree(tmp_path / "src", {"a": 2, "b": 2})
    out = tmp_path / "out"

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(folder.os, "scandir", denied)
    result = run(src, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {src}: expected a readable directory, found Permission denied\n"
    assert not out.exists()


def test_ratio_is_refused_for_a_tree_that_is_already_split(tmp_path):
    src = make_tree(tmp_path / "src", {"train/a": 2, "train/b": 2, "val/a": 1, "val/b": 1})
    result = run(src, "-o", tmp_path / "out", "--ratio", "0.5,0.5")
    assert result.exit_code == 2
    assert "--ratio: expected no ratio: the tree is already split into train, val" in result.stderr
    assert not (tmp_path / "out").exists()


def test_mixed_tree_is_refused_unless_classes_are_named(tmp_path):
    src = make_tree(tmp_path / "src", {"train/a": 2, "train/b": 2, "test": 3})
    out = tmp_path / "out"
    result = run(src, "-o", out)
    assert result.exit_code == 2
    assert "found a mix: train look(s) like split folders holding class folders, test do(es) " \
        "not" in result.stderr
    assert not out.exists()
    result = run(src, "-o", out, "--classes", "train,test", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert (out / "labels.txt").read_text() == "train\ntest\n"


def test_unwritable_names(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 3, "b": 3})
    (src / "a" / "two\nlines.jpg").write_bytes(image_bytes(8, 8, seed=1234))
    out = tmp_path / "out"
    m = split_folder(src, out, workers=1, quiet=True)
    line = json.loads((out / "skipped.jsonl").read_text())
    assert line["reason"] == "bad_file_name" and line["file"] == "a/two\nlines.jpg"
    assert m.skipped == {"bad_file_name": 1} and m.num_examples == 6
    bad_class = Path(os.fsdecode(os.path.join(os.fsencode(src), b"caf\xe9")))
    make_tree(bad_class.parent, {bad_class.name: 2})
    result = run(src, "-o", tmp_path / "out2")
    assert result.exit_code == 2
    assert "expected class folder names that are valid UTF-8 on one line, found " \
        "'caf\\udce9'" in result.stderr
    assert not (tmp_path / "out2").exists()


def test_output_inside_the_tree_is_refused(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 2, "b": 2})
    result = run(src, "-o", src / "records")
    assert result.exit_code == 2
    assert "-o/--out: expected a directory outside SRC" in result.stderr
    assert not (src / "records").exists()


def test_bad_output_keeps_an_old_result(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 5, "b": 5})
    out = tmp_path / "out"
    split_folder(src, out, workers=1, quiet=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run(src, "-o", out, "--ratio", "0.1,0.1").exit_code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ------------------------------------------------------------------ the split itself


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 12, "b": 9, "c": 6})
    out = {}
    for name, seed in (("s0", 0), ("s0again", 0), ("s1", 1)):
        out[name] = tmp_path / name
        split_folder(src, out[name], seed=seed, workers=1, quiet=True)
    for split in ("train", "val"):
        assert (out["s0"] / f"{split}.txt").read_bytes() == (
            out["s0again"] / f"{split}.txt").read_bytes()
        assert set(listing(out["s0"], split)) != set(listing(out["s1"], split))
    assert (out["s0"] / "train.tfrecord-00000-of-00001").read_bytes() == (
        out["s0again"] / "train.tfrecord-00000-of-00001").read_bytes()


def test_splits_are_disjoint_and_cover_exactly_the_valid_input(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 10, "b": 7, "c/sub": 4})
    (src / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (src / "b" / "dup_of_a0.jpg").write_bytes((src / "a" / "000.jpg").read_bytes())  # conflict
    (src / "c" / "notes.txt").write_text("not an image")
    (src / "b" / ".DS_Store").write_bytes(b"\0")
    (src / "c" / ".cache").mkdir()
    (src / "c" / ".cache" / "x.jpg").write_bytes(image_bytes(8, 8))
    (src / "loose.jpg").write_bytes(image_bytes(8, 8, seed=99))
    out = tmp_path / "out"
    m = split_folder(src, out, ratio="0.6,0.2,0.2", workers=1, quiet=True)
    written = [p for s in ("train", "val", "test") for p, _ in listing(out, s)]
    assert len(written) == len(set(written))  # disjoint
    every_image = {str(p.relative_to(src).as_posix()) for p in src.rglob("*.jpg")}
    invalid = {"a/broken.jpg", "a/000.jpg", "b/dup_of_a0.jpg", "c/.cache/x.jpg", "loose.jpg"}
    assert set(written) == every_image - invalid
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert sorted((s["file"], s["reason"]) for s in skipped) == [
        ("a/000.jpg", "class_conflict"), ("a/broken.jpg", "corrupt_image"),
        ("b/dup_of_a0.jpg", "class_conflict")]
    assert m.skipped == {"class_conflict": 2, "corrupt_image": 1}
    assert m.counters["ignored_other"] == 1
    assert m.counters["ignored_hidden"] == 2 and m.counters["ignored_outside_class"] == 1
    assert m.num_examples == len(written)


def test_per_class_sizes_are_within_one_image_of_the_ratio(tmp_path):
    counts = {"a": 7, "b": 13, "c": 23, "d": 4}
    src = make_tree(tmp_path / "src", counts, size=8)
    ratios = (0.7, 0.2, 0.1)
    m = split_folder(src, tmp_path / "out", ratio=ratios, workers=1, quiet=True)
    for cls, n in counts.items():
        got = [m.splits[s].class_counts[cls] for s in ("train", "val", "test")]
        assert sum(got) == n
        assert all(abs(g - n * r) < 1 for g, r in zip(got, ratios)), (cls, got)
        assert all(g >= 1 for g in got)
    assert m.options["warnings"] == []


def test_small_class_is_reported_not_dropped(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 10, "b": 1})
    out = tmp_path / "out"
    result = run(src, "-o", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "Warning: class 'b' has 1 usable image(s), fewer than the 2 splits" in result.stderr
    m = Manifest.read(out)
    assert len(m.options["warnings"]) == 1 and m.counters["small_classes"] == 1
    assert m.splits["train"].class_counts == {"a": 8, "b": 1}
    assert m.splits["val"].class_counts == {"a": 2, "b": 0}


def test_a_class_folder_without_images_is_refused(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 4, "b": 4})
    (src / "c").mkdir()
    (src / "d").mkdir()
    (src / "d" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = run(src, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {src}: expected an image in every class folder (an empty class would be "
        "listed in labels.txt and never seen in training), found no images in c, d; add "
        "images, remove the folder(s), or pick the classes with --classes\n")
    assert not out.exists()
    m = split_folder(src, out, classes="b,a", workers=1, quiet=True)  # picked: fine
    assert LabelMap.read_labels_txt(out / "labels.txt").names == ["b", "a"]
    assert m.splits["train"].class_counts == {"a": 3, "b": 3}


@pytest.mark.parametrize("fixture, title", [
    ("coco", "COCO detection"), ("voc", "Pascal VOC detection"), ("yolo", "YOLO detection"),
    ("labelme", "LabelMe detection"), ("seg", "Pascal VOC segmentation")])
def test_a_detection_data_set_is_refused(tmp_path, fixture, title):
    out = tmp_path / "out"
    result = run(FIXTURES / fixture, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {FIXTURES / fixture}: expected a class-per-folder tree (SRC/<class>/*.jpg) "
        f"for `cocoprep split`, found a {title} data set; convert it with "
        f"`cocoprep convert {FIXTURES / fixture}`\n")
    assert not out.exists()


def test_identical_files_share_a_split(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 10, "b": 10})
    same = (src / "a" / "000.jpg").read_bytes()
    for i in range(3):
        (src / "a" / f"copy{i}.jpg").write_bytes(same)
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        m = split_folder(src, out, seed=seed, workers=1, quiet=True)
        where = {p: s for s in ("train", "val") for p, _ in listing(out, s)}
        assert len({where[f"a/{n}.jpg"] for n in ("000", "copy0", "copy1", "copy2")}) == 1
        assert m.counters["duplicate_files"] == 3
        assert m.num_examples == 23


def test_conflicts_kept_out_or_first_kept(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 5, "b": 5})
    (src / "b" / "same.jpg").write_bytes((src / "a" / "001.jpg").read_bytes())
    out = tmp_path / "out"
    m = split_folder(src, out, workers=1, quiet=True)
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["file"], s["reason"], s["split"]) for s in skipped] == [
        ("a/001.jpg", "class_conflict", None), ("b/same.jpg", "class_conflict", None)]
    assert "also under class 'b'" in skipped[0]["detail"]
    assert m.num_examples == 9
    m = split_folder(src, out, keep_conflicts=True, workers=1, quiet=True)
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert [s["file"] for s in skipped] == ["b/same.jpg"]
    written = {p for s in ("train", "val") for p, _ in listing(out, s)}
    assert "a/001.jpg" in written and m.num_examples == 10


def test_given_splits_are_kept(tmp_path):
    src = make_tree(tmp_path / "src", {"train/cat": 4, "train/dog": 3, "validation/cat": 2,
                                       "validation/dog": 1})
    leak = src / "validation" / "dog" / "leak.jpg"
    leak.write_bytes((src / "train" / "dog" / "000.jpg").read_bytes())
    out = tmp_path / "out"
    m = split_folder(src, out, workers=1, quiet=True)
    assert list(m.splits) == ["train", "validation"]
    assert m.sources["layout"] == "splits" and m.options["ratio"] is None
    assert sorted(p for p, _ in listing(out, "validation")) == [
        "validation/cat/000.jpg", "validation/cat/001.jpg", "validation/dog/000.jpg"]
    assert m.splits["train"].class_counts == {"cat": 4, "dog": 3}
    assert m.skipped == {"duplicate_across_splits": 1}
    line = json.loads((out / "skipped.jsonl").read_text())
    assert line["file"] == "validation/dog/leak.jpg" and line["split"] == "validation"


# ------------------------------------------------------------------ labels


def test_label_offset_one_writes_a_label_map(tmp_path):
    src = make_tree(tmp_path / "src", {"b": 3, "a": 3, "c": 3})
    out = tmp_path / "out"
    result = run(src, "-o", out, "--label-offset", "1", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert m.label_offset == 1 and m.label_map == "label_map.pbtxt"
    assert LabelMap.read_pbtxt(out / "label_map.pbtxt") == LabelMap.from_names(["a", "b", "c"])
    assert LabelMap.read_labels_txt(out / "labels.txt", start=1).ids == [1, 2, 3]
    records = read_records(out, "train") + read_records(out, "val")
    assert {(r["label_text"], int(r["label"])) for r in records} == {("a", 1), ("b", 2), ("c", 3)}
    assert {label for s in ("train", "val") for _, label in listing(out, s)} == {1, 2, 3}
    # back to 0-based: the stale label map goes
    split_folder(src, out, workers=1, quiet=True)
    assert not (out / "label_map.pbtxt").exists()
    assert Manifest.read(out).label_map is None


def test_classes_pick_and_order(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 3, "b": 3, "c": 4})
    out = tmp_path / "out"
    m = split_folder(src, out, classes="c,a", workers=1, quiet=True)
    assert (out / "labels.txt").read_text() == "c\na\n"
    assert list(m.splits["train"].class_counts) == ["c", "a"]
    assert m.counters["ignored_unselected_class"] == 3
    rows = listing(out, "train") + listing(out, "val")
    assert {(p.split("/")[0], label) for p, label in rows} == {("c", 0), ("a", 1)}


@pytest.mark.slow
def test_labels_agree_with_keras_image_dataset_from_directory(tmp_path):
    import tensorflow as tf

    names = {"b": 2, "B": 2, "a b": 2, "_x": 2, "Z9": 2, "é": 2, "10": 2, "9": 2}
    src = make_tree(tmp_path / "src", names, size=8)
    (src / ".hidden").mkdir()  # and skips hidden folders
    (src / ".hidden" / "x.jpg").write_bytes(image_bytes(8, 8))
    keras_names = tf.keras.utils.image_dataset_from_directory(
        str(src), image_size=(8, 8), batch_size=4, shuffle=False, verbose=False).class_names
    out = tmp_path / "out"
    split_folder(src, out, workers=1, quiet=True)
    assert LabelMap.read_labels_txt(out / "labels.txt").names == keras_names
    assert Manifest.read(out).splits["train"].class_counts.keys() == set(keras_names)
    for r in read_records(out, "train"):
        assert keras_names[r["label"]] == r["label_text"]


# ------------------------------------------------------------------ images, strictness, workers


def test_exif_orientation_is_applied(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 2, "b": 2})
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.frombytes("RGB", (40, 20), bytes(range(256)) * 9 + bytes(96)).save(
        buf, "JPEG", exif=exif)
    (src / "a" / "rotated.jpg").write_bytes(buf.getvalue())
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 128))
    rgba.save(src / "b" / "alpha.png")
    out = tmp_path / "out"
    m = split_folder(src, out, ratio="0.5,0.5", workers=1, quiet=True)
    records = {r["filename"]: r for s in ("train", "val") for r in read_records(out, s)}
    rotated = records["a/rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (20, 40) and rotated["format"] == "jpeg"
    alpha = records["b/alpha.png"]
    assert alpha["format"] == "jpeg"
    assert Image.open(io.BytesIO(alpha["encoded"])).format == "JPEG"
    assert m.counters["images_rotated"] == 1 and m.counters["images_converted"] == 1


def test_strict_fails_after_writing_the_report(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 3, "b": 3})
    (src / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = run(src, "-o", out, "--strict", "--workers", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --strict: 1 item(s) skipped")
    assert json.loads((out / "skipped.jsonl").read_text())["file"] == "a/bad.png"
    with pytest.raises(StrictModeError):
        split_folder(src, out, strict=True, workers=1, quiet=True)
    assert split_folder(src, out, workers=1, quiet=True).skipped == {"corrupt_image": 1}


def test_rerun_replaces_old_splits(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 10, "b": 10})
    out = tmp_path / "out"
    split_folder(src, out, ratio="0.8,0.1,0.1", workers=1, quiet=True)
    assert (out / "test.txt").exists()
    split_folder(src, out, workers=1, quiet=True)
    assert not list(out.glob("test*"))


def test_many_images_get_several_shards(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 200, "b": 100}, size=4)
    m = split_folder(src, tmp_path / "out", workers=1, quiet=True)
    assert len(m.splits["train"].shards) == 2  # 240 images, about 128 per shard
    assert len(m.splits["val"].shards) == 1
    m = split_folder(src, tmp_path / "out2", num_shards=3, workers=1, quiet=True)
    assert [len(s.shards) for s in m.splits.values()] == [3, 3]


@pytest.mark.slow
def test_output_is_byte_identical_whatever_the_worker_count(tmp_path):
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        result = run(FIXTURES / "imgs", "-o", out, "--workers", workers, "--num-shards", "2",
                     "--ratio", "0.6,0.2,0.2", "--seed", "7", "-q")
        assert result.exit_code == 0, result.output
        outs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outs[0] == outs[1]
    assert len([n for n in outs[0] if ".tfrecord-" in n]) == 6


def test_help_shows_an_example():
    result = invoke("split", "--help")
    assert result.exit_code == 0 and "cocoprep split fixtures/imgs" in result.output


def test_api_rejects_bad_options_before_reading(tmp_path):
    with pytest.raises(UsageError, match="--encode"):
        split_folder(tmp_path / "missing", tmp_path / "out", encode="gif")
    with pytest.raises(UsageError, match="--seed"):
        split_folder(tmp_path / "missing", tmp_path / "out", seed="1")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ review

def test_non_utf8_file_name_is_skipped_and_reported_not_a_traceback(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 3, "b": 3})
    bad = os.path.join(os.fsencode(src / "a"), b"caf\xe9.jpg")
    with open(bad, "wb") as f:
        f.write(image_bytes(8, 8, seed=4321))
    out = tmp_path / "out"
    result = run(src, "-o", out, "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    [line] = [json.loads(t) for t in (out / "skipped.jsonl").read_text(encoding="utf-8")
              .splitlines()]
    assert line["reason"] == "bad_file_name"
    assert os.fsencode(line["file"]) == b"a/caf\xe9.jpg"  # the exact bytes can be recovered
    assert Manifest.read(out).skipped == {"bad_file_name": 1}


def test_label_offset_beyond_the_label_map_id_range_is_an_error(tmp_path):
    src = make_tree(tmp_path / "src", {"a": 2, "b": 2})
    out = tmp_path / "out"
    result = run(src, "-o", out, "--label-offset", str(2**31 - 1), "--workers", "1")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("Error: --label-offset: expected an integer from 0 to "
                                     "2147483646 (with 2 classes; label_map.pbtxt ids are "
                                     "32-bit), found 2147483647")
    assert not out.exists()
    result = run(src, "-o", out, "--label-offset", str(2**31 - 2), "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(label for _, label in listing(out, "train") + listing(out, "val")) == \
        [2**31 - 2] * 2 + [2**31 - 1] * 2
