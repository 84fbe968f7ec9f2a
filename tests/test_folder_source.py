"""Class-per-folder source: listing rules, layout discovery and the split arithmetic."""

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocoprep.errors import InputError, ItemSkipped, UsageError
from cocoprep.ratio import allocate, parse_ratio
from cocoprep.sources import folder
from cocoprep.sources.folder import ImageFile


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ allocate


def test_allocate_examples():
    half = (Fraction(1, 2), Fraction(1, 2))
    assert allocate(10, folder.DEFAULT_RATIO) == (8, 2)
    assert allocate(7, folder.DEFAULT_RATIO) == (6, 1)  # 5.6 / 1.4
    assert allocate(3, half) == (2, 1)  # ties go to the earlier split
    assert allocate(1, folder.DEFAULT_RATIO) == (1, 0)  # too small: train only
    assert allocate(0, folder.DEFAULT_RATIO) == (0, 0)
    r = parse_ratio("0.8,0.1,0.1")
    assert allocate(20, r) == (16, 2, 2)
    assert allocate(5, r) == (3, 1, 1)  # 4/.5/.5: empty splits get the spare first
    # 3 at 0.8/0.1/0.1 cannot be both within one image and one per split: one per split wins
    assert allocate(3, r) == (1, 1, 1)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 400),
       parts=st.lists(st.integers(1, 100), min_size=2, max_size=3))
def test_allocate_properties(n, parts):
    ratios = [Fraction(p, sum(parts)) for p in parts]
    counts = allocate(n, ratios)
    k = len(ratios)
    assert sum(counts) == n and all(c >= 0 for c in counts)
    if n >= k:
        assert all(c >= 1 for c in counts)
    # Within one image of the ratio whenever that is compatible with one per split.
    floors = [int(n * r) for r in ratios]
    forced = sum(1 for f in floors if f == 0) if n >= k else 0
    if forced <= n - sum(floors):
        assert all(abs(c - n * r) < 1 for c, r in zip(counts, ratios))


# ------------------------------------------------------------------ layout and listing


def test_detect_layout():
    assert folder.detect_layout({"cat": False, "dog": False}) == "classes"
    assert folder.detect_layout({"train": True, "val": True}) == "splits"
    assert folder.detect_layout({"Train": True, "Validation": True, "TEST": True}) == "splits"
    # split-like names holding only files are classes called "train" and "test"
    assert folder.detect_layout({"train": False, "test": False}) == "classes"
    assert folder.detect_layout({"train": True, "cat": True}) == "classes"
    assert folder.detect_layout({}) == "classes"


def test_split_like_folders():
    assert folder.split_like_folders({"train": True, "test": False}) == ("train",)
    assert folder.split_like_folders({"train": True, "models": True}) == ("train",)
    assert folder.split_like_folders({"train": True, "val": True}) == ()  # a split tree
    assert folder.split_like_folders({"cat": True, "dog": False}) == ()


def test_list_tree_rules(tmp_path):
    touch(tmp_path / "dog" / "b.JPG")
    touch(tmp_path / "dog" / "a.jpeg")
    touch(tmp_path / "dog" / "deep" / "er" / "c.PnG")
    for ext in ("bmp", "gif", "webp", "tif", "TIFF"):
        touch(tmp_path / "cat" / f"x.{ext}")
    touch(tmp_path / "cat" / "notes.txt")  # other file
    touch(tmp_path / "cat" / "y.jpg.bak")  # other file
    touch(tmp_path / "cat" / ".hidden.jpg")  # hidden file
    touch(tmp_path / "cat" / ".thumbs" / "z.jpg")  # hidden folder: counted once, not entered
    touch(tmp_path / ".git" / "HEAD")  # hidden top-level folder: not a class
    touch(tmp_path / "README.md")  # outside every class
    touch(tmp_path / "top.jpg")  # an image outside every class
    (tmp_path / "empty").mkdir()  # a class without images is still a class (as in Keras)
    listing = folder.list_tree(tmp_path)
    assert listing.layout == "classes"
    assert listing.classes == ("cat", "dog", "empty")
    assert [f.path for f in listing.files] == [
        "cat/x.TIFF", "cat/x.bmp", "cat/x.gif", "cat/x.tif", "cat/x.webp",
        "dog/a.jpeg", "dog/b.JPG", "dog/deep/er/c.PnG",
    ]
    assert all(f.class_name == f.path.split("/")[0] and f.split is None for f in listing.files)
    assert listing.ignored == {"ignored_hidden": 3, "ignored_other": 2,
                               "ignored_outside_class": 2}


def test_list_tree_given_splits(tmp_path):
    touch(tmp_path / "train" / "cat" / "1.jpg")
    touch(tmp_path / "train" / "dog" / "2.jpg")
    touch(tmp_path / "train" / "stray.jpg")  # in a split folder, outside a class
    touch(tmp_path / "val" / "cat" / "3.jpg")
    touch(tmp_path / "test" / "bird" / "4.jpg")
    listing = folder.list_tree(tmp_path)
    assert listing.layout == "splits"
    assert listing.splits == ("train", "val", "test")  # canonical order, not sorted
    assert listing.classes == ("bird", "cat", "dog")
    assert [(f.path, f.class_name, f.split) for f in listing.files] == [
        ("test/bird/4.jpg", "bird", "test"),
        ("train/cat/1.jpg", "cat", "train"),
        ("train/dog/2.jpg", "dog", "train"),
        ("val/cat/3.jpg", "cat", "val"),
    ]
    assert listing.ignored == {"ignored_outside_class": 1}


def test_list_tree_follows_links_without_looping(tmp_path):
    touch(tmp_path / "cat" / "1.jpg")
    os.symlink(tmp_path / "cat", tmp_path / "cat" / "loop")  # a cycle
    outside = touch(tmp_path.parent / f"{tmp_path.name}-elsewhere" / "dog" / "2.jpg")
    os.symlink(outside.parent, tmp_path / "dog")  # a linked class folder
    listing = folder.list_tree(tmp_path)
    assert [f.path for f in listing.files] == ["cat/1.jpg", "dog/2.jpg"]


def test_list_tree_flags_names_with_line_breaks_or_bad_bytes(tmp_path):
    touch(tmp_path / "cat" / "bad\nname.jpg")
    touch(tmp_path / "cat" / "ok.jpg")
    touch(Path(os.fsdecode(os.path.join(os.fsencode(tmp_path / "cat"), b"latin1-\xe9.jpg"))))
    listing = folder.list_tree(tmp_path)
    assert [f.path for f in listing.files] == ["cat/ok.jpg"]
    assert sorted(f.path for f in listing.bad_names) == ["cat/bad\nname.jpg",
                                                         "cat/latin1-\udce9.jpg"]


def test_list_tree_bad_src(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="no such path"):
        folder.list_tree(tmp_path / "missing")
    touch(tmp_path / "file.jpg")
    with pytest.raises(InputError, match="found a file"):
        folder.list_tree(tmp_path / "file.jpg")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(folder.os, "scandir", denied)
    with pytest.raises(InputError, match="Permission denied"):
        folder.list_tree(tmp_path)


def test_hash_files(tmp_path):
    paths = []
    for i in range(80):  # enough to use the thread pool
        touch(tmp_path / "c" / f"{i}.jpg", bytes([i]) * (i * 1000 + 1))
        paths.append(f"c/{i}.jpg")
    paths.append("c/missing.jpg")
    seen = []
    digests = folder.hash_files(tmp_path, paths, progress=seen.append)
    for i in range(80):
        assert digests[i] == hashlib.sha256(bytes([i]) * (i * 1000 + 1)).hexdigest()
    assert isinstance(digests[-1], ItemSkipped) and digests[-1].reason == "missing_file"
    assert len(seen) == len(paths)


def test_content_keys_group_exactly_the_identical_files(tmp_path):
    tail = bytes(range(256)) * 20  # 5120 bytes: longer than the tail that is read
    files = {
        "a/1.jpg": b"head-one" + tail,
        "a/2.jpg": b"head-one" + tail,  # a copy of 1
        "b/3.jpg": b"head-two" + tail,  # same size and tail as 1, other bytes
        "b/4.jpg": b"x" * 9000,  # nothing else looks like it
        "b/5.jpg": b"",
        "c/6.jpg": b"",  # two empty files are identical too
    }
    for i in range(70):  # enough to use the thread pool
        files[f"d/{i}.jpg"] = bytes([i]) * (100 + i)
    for rel, data in files.items():
        touch(tmp_path / rel, data)
    paths = sorted(files) + ["c/missing.jpg"]
    seen = []
    keys = dict(zip(paths, folder.content_keys(tmp_path, paths, progress=seen.append)))
    assert keys["a/1.jpg"] == keys["a/2.jpg"] == hashlib.sha256(files["a/1.jpg"]).hexdigest()
    assert keys["b/3.jpg"] == hashlib.sha256(files["b/3.jpg"]).hexdigest() != keys["a/1.jpg"]
    assert keys["b/5.jpg"] == keys["c/6.jpg"] == hashlib.sha256(b"").hexdigest()
    unique = [keys["b/4.jpg"]] + [keys[f"d/{i}.jpg"] for i in range(70)]
    assert len(set(unique)) == len(unique)
    assert not any(len(k) == 64 for k in unique)  # never mistaken for a digest
    assert isinstance(keys["c/missing.jpg"], ItemSkipped)
    assert keys["c/missing.jpg"].reason == "missing_file"
    assert sum(seen) == len(paths)


def test_select_classes():
    available = ("a", "b", "c")
    assert folder.select_classes(available, None) == available
    assert folder.select_classes(available, "c,a") == ("c", "a")
    assert folder.select_classes(available, ["b", "a"]) == ("b", "a")
    with pytest.raises(UsageError, match=r"--classes: expected names of class folders "
                                         r"\(a, b, c\), found 'x'$"):
        folder.select_classes(available, "a,x")
    with pytest.raises(UsageError, match=r"--classes.*a repeated"):
        folder.select_classes(available, "a,b,a")
    with pytest.raises(UsageError, match="--classes"):
        folder.select_classes(available, "a,,b")


# ------------------------------------------------------------------ splitting


def make_files(counts: dict[str, int]):
    files, hashes = [], []
    for cls, n in counts.items():
        for i in range(n):
            files.append(ImageFile(f"{cls}/{i:04d}.jpg", cls))
            hashes.append(f"{cls}-{i}")
    return files, hashes


def test_assign_by_ratio_is_stratified_exact_and_seeded():
    counts = {"a": 101, "b": 7, "c": 3, "d": 50}
    files, hashes = make_files(counts)
    ratios = parse_ratio("0.7,0.2,0.1")
    result = folder.assign_by_ratio(files, hashes, list(counts), ratios, seed=0)
    assert list(result.splits) == ["train", "val", "test"]
    everything = [f for items in result.splits.values() for f in items]
    assert sorted(everything, key=lambda f: f.path) == files  # disjoint, union = input
    for cls, n in counts.items():
        got = tuple(sum(f.class_name == cls for f in result.splits[s]) for s in result.splits)
        assert got == allocate(n, ratios)
        assert all(g >= 1 for g in got)
    again = folder.assign_by_ratio(files, hashes, list(counts), ratios, seed=0)
    assert again == result
    other = folder.assign_by_ratio(files, hashes, list(counts), ratios, seed=1)
    assert other.splits["val"] != result.splits["val"]
    assert result.warnings == () and result.duplicates == 0


def test_one_class_does_not_change_another_class_split():
    files, hashes = make_files({"a": 30, "b": 30})
    more, more_hashes = make_files({"a": 30, "b": 30, "c": 10})
    r = parse_ratio("0.8,0.2")
    one = folder.assign_by_ratio(files, hashes, ["a", "b"], r, seed=3)
    two = folder.assign_by_ratio(more, more_hashes, ["a", "b", "c"], r, seed=3)
    for s in ("train", "val"):
        assert {f.path for f in one.splits[s]} == {
            f.path for f in two.splits[s] if f.class_name != "c"}


def test_assign_by_ratio_mixes_classes_in_each_split():
    files, hashes = make_files({"a": 40, "b": 40})
    result = folder.assign_by_ratio(files, hashes, ["a", "b"], folder.DEFAULT_RATIO, seed=0)
    train = [f.class_name for f in result.splits["train"]]
    assert train != sorted(train)


def test_assign_by_ratio_keeps_identical_files_together():
    files, hashes = make_files({"a": 20, "b": 10})
    for i in range(0, 12, 3):  # groups of identical bytes in class a
        hashes[i + 1] = hashes[i + 2] = hashes[i]
    for seed in range(20):
        result = folder.assign_by_ratio(files, hashes, ["a", "b"], folder.DEFAULT_RATIO,
                                        seed=seed)
        where = {f.path: s for s, items in result.splits.items() for f in items}
        for i in range(0, 12, 3):
            assert where[files[i].path] == where[files[i + 1].path] == where[files[i + 2].path]
        assert result.duplicates == 8


def test_assign_by_ratio_warns_about_small_classes():
    files, hashes = make_files({"a": 20, "b": 1, "c": 0})
    result = folder.assign_by_ratio(files, hashes, ["a", "b", "c"], folder.DEFAULT_RATIO)
    assert any("'b' has 1 usable image(s)" in w and "missing from val" in w for w in result.warnings)
    assert any("'c' has 0 usable image(s)" in w for w in result.warnings)
    assert sum(f.class_name == "b" for f in result.splits["train"]) == 1  # not dropped


def test_find_conflicts():
    files = [ImageFile("a/1.jpg", "a"), ImageFile("a/2.jpg", "a"), ImageFile("b/1.jpg", "b"),
             ImageFile("b/2.jpg", "b"), ImageFile("a/3.jpg", "a")]
    hashes = ["h1", "h1", "h1", "h2", "h3"]
    keep, rejected = folder.find_conflicts(files, hashes, ["a", "b"])
    assert keep == [3, 4]
    assert [r.file.path for r in rejected] == ["a/1.jpg", "a/2.jpg", "b/1.jpg"]
    assert all(r.reason == "class_conflict" for r in rejected)
    assert "'b'" in rejected[0].detail and "'a'" in rejected[2].detail
    # --keep-conflicts keeps the copies in the first class in label order
    keep, rejected = folder.find_conflicts(files, hashes, ["b", "a"], keep_conflicts=True)
    assert keep == [2, 3, 4]
    assert [r.file.path for r in rejected] == ["a/1.jpg", "a/2.jpg"]
    assert "b/1.jpg" in rejected[0].detail


def test_assign_given_keeps_splits_and_stops_leaks():
    files = [ImageFile("train/a/1.jpg", "a", "train"), ImageFile("train/b/1.jpg", "b", "train"),
             ImageFile("val/a/1.jpg", "a", "val"), ImageFile("val/a/2.jpg", "a", "val")]
    hashes = ["x", "y", "x", "z"]
    result = folder.assign_given(files, hashes, ("train", "val"), ("a", "b"))
    assert {s: sorted(f.path for f in v) for s, v in result.splits.items()} == {
        "train": ["train/a/1.jpg", "train/b/1.jpg"], "val": ["val/a/2.jpg"]}
    assert [(r.file.path, r.reason) for r in result.rejected] == [
        ("val/a/1.jpg", "duplicate_across_splits")]
    assert result.warnings == ("split 'val' has no images of class(es) 'b'",)
