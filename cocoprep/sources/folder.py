"""Class-per-folder image trees: layout discovery, listing, and the stratified split.

Two layouts are understood:

* ``SRC/<class>/...``: one tree, split by ratio;
* ``SRC/<split>/<class>/...``: the splits are given and kept. It is recognised when
  every visible top-level folder is named like a split (train, val, validation,
  test, dev; any case) and holds class folders.

Files at any depth below a class folder belong to that class. Image files are
recognised by extension (`IMAGE_EXTENSIONS`, any case); hidden entries (a name
starting with a dot; a hidden folder is not entered) and other files are ignored
and counted. Listings are sorted, so everything downstream is deterministic.

Only `list_tree`, `hash_files` and `content_keys` touch the disk; the rest is pure.
"""

from __future__ import annotations

import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from cocoprep.errors import InputError, ItemSkipped, UsageError
from cocoprep.fsio import file_sha256
from cocoprep.ratio import allocate
from cocoprep.images import IMAGE_EXTENSIONS, UNREADABLE_FILE, read_bytes

# Folder names that mark the `SRC/<split>/<class>/` layout, in output order.
SPLIT_ORDER = ("train", "val", "validation", "dev", "test")
DEFAULT_RATIO = (Fraction(4, 5), Fraction(1, 5))
RATIO_SPLITS = ("train", "val", "test")

LAYOUT_CLASSES = "classes"  # SRC/<class>/...
LAYOUT_SPLITS = "splits"  # SRC/<split>/<class>/...

# Reasons for files kept out in the parent (skipped.jsonl).
CLASS_CONFLICT = "class_conflict"
DUPLICATE_ACROSS_SPLITS = "duplicate_across_splits"
BAD_FILE_NAME = "bad_file_name"

# Counter names (manifest.counters).
IGNORED_HIDDEN = "ignored_hidden"
IGNORED_OTHER = "ignored_other"
IGNORED_OUTSIDE_CLASS = "ignored_outside_class"
IGNORED_UNSELECTED = "ignored_unselected_class"

# ------------------------------------------------------------------ values

@dataclass(frozen=True)
class ImageFile:
    """One image file of the tree. `path` is relative to SRC, with `/` separators;
    `split` is the given split (layout `splits`) or None."""

    path: str
    class_name: str
    split: str | None = None


@dataclass(frozen=True)
class FolderListing:
    """What `list_tree` found.

    Attributes:
        layout: `classes` or `splits`.
        classes: every visible class folder name, sorted (the Keras order).
        splits: the given split folder names in `SPLIT_ORDER` (layout `splits`), else ().
        files: image files sorted by path.
        ignored: counter name -> number of ignored entries.
        bad_names: image files whose names cannot be written to a listing line.
        mixed: layout `classes`, yet these top-level folders are named like splits and
            hold folders: the tree may be a split tree with a stray folder.
    """

    layout: str
    classes: tuple[str, ...]
    splits: tuple[str, ...]
    files: tuple[ImageFile, ...]
    ignored: dict[str, int] = field(default_factory=dict)
    bad_names: tuple[ImageFile, ...] = ()
    mixed: tuple[str, ...] = ()
    loose_images: int = 0  # image files outside every class folder (counted as ignored)


@dataclass(frozen=True)
class Rejected:
    """A file kept out before writing, and why."""

    file: ImageFile
    reason: str
    detail: str


@dataclass(frozen=True)
class SplitAssignment:
    """The outcome of splitting: files per split (in final, seeded order), what was
    kept out, and warnings for the user."""

    splits: dict[str, tuple[ImageFile, ...]]
    rejected: tuple[Rejected, ...] = ()
    warnings: tuple[str, ...] = ()
    duplicates: int = 0  # files whose bytes equal an earlier file of the same class
    small_classes: tuple[str, ...] = ()  # classes with fewer images than splits


# ------------------------------------------------------------------ small rules

def is_hidden(name: str) -> bool:
    return name.startswith(".")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def usable_name(name: str) -> bool:
    """A name that can be written as UTF-8 on one line of a listing."""
    if "\n" in name or "\r" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a file name (surrogate escapes)
        return False
    return True


def looks_like_split(name: str) -> bool:
    return name.lower() in SPLIT_ORDER


def split_sort_key(name: str) -> tuple[int, str]:
    low = name.lower()
    return (SPLIT_ORDER.index(low) if low in SPLIT_ORDER else len(SPLIT_ORDER), name)


def detect_layout(top: Mapping[str, bool]) -> str:
    """`splits` when every visible top-level folder is named like a split and holds
    at least one visible sub-folder, else `classes`.

    Args:
        top: visible top-level folder name -> whether it holds a visible folder.
    """
    if top and all(looks_like_split(name) and has_dirs for name, has_dirs in top.items()):
        return LAYOUT_SPLITS
    return LAYOUT_CLASSES


def split_like_folders(top: Mapping[str, bool]) -> tuple[str, ...]:
    """Top-level folders that look like split folders (split name, holding folders)
    in a tree that `detect_layout` calls `classes`: a sign of a mixed tree such as
    `train/<class>/...` beside an unlabeled `test/*.jpg`."""
    if detect_layout(top) == LAYOUT_SPLITS:
        return ()
    return tuple(sorted(n for n, has_dirs in top.items() if looks_like_split(n) and has_dirs))


# ------------------------------------------------------------------ listing (I/O)

def _scan(path: Path) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks: a linked class folder is a folder
    except OSError:
        return False


def _unreadable(path: Path, e: OSError) -> InputError:
    return InputError(path, "a readable directory", e.strerror or str(e))


def _class_dirs(layout: str, top_dirs, top_children, visible_dirs):
    """(split or None, class folder entry, its sorted entries) for every class folder."""
    if layout == LAYOUT_CLASSES:
        return [(None, d, top_children[d.name]) for d in top_dirs]
    class_dirs = []
    for d in top_dirs:
        for c in visible_dirs(top_children[d.name]):
            try:
                class_dirs.append((d.name, c, _scan(Path(c.path))))
            except OSError as e:
                raise _unreadable(Path(c.path), e) from None
    return class_dirs


def list_tree(src: str | Path) -> FolderListing:
    """List an image tree (see the module docstring for the rules).

    Raises:
        InputError: `src` is missing, not a directory or cannot be read.
    """
    root = Path(src)
    if not root.exists():
        raise InputError(root, "a directory of class folders", "nothing (no such path)")
    if not root.is_dir():
        raise InputError(root, "a directory of class folders", "a file")
    try:
        top_entries = _scan(root)
    except OSError as e:
        raise _unreadable(root, e) from None
    ignored = {IGNORED_HIDDEN: 0, IGNORED_OTHER: 0, IGNORED_OUTSIDE_CLASS: 0}
    loose = [0]

    def visible_dirs(entries) -> list[os.DirEntry]:
        out = []
        for e in entries:
            if is_hidden(e.name):
                ignored[IGNORED_HIDDEN] += 1
            elif _is_dir(e):
                out.append(e)
            else:
                ignored[IGNORED_OUTSIDE_CLASS] += 1
                loose[0] += is_image_name(e.name)
        return out

    top_dirs = visible_dirs(top_entries)
    top_children: dict[str, list[os.DirEntry]] = {}
    for d in top_dirs:
        try:
            top_children[d.name] = _scan(Path(d.path))
        except OSError as e:
            raise _unreadable(Path(d.path), e) from None
    has_dirs = {
        name: any(not is_hidden(c.name) and _is_dir(c) for c in children)
        for name, children in top_children.items()
    }
    layout = detect_layout(has_dirs)

    # Count only while walking; `visible_dirs` above already counted the top level.
    files: list[ImageFile] = []
    bad: list[ImageFile] = []
    classes: set[str] = set()
    splits = [d.name for d in top_dirs] if layout == LAYOUT_SPLITS else []
    for split, d, children in _class_dirs(layout, top_dirs, top_children, visible_dirs):
        classes.add(d.name)
        prefix = f"{split}/{d.name}" if split else d.name
        st = os.stat(d.path)
        seen = {(st.st_dev, st.st_ino)}
        _walk(children, prefix, d.name, split, files, bad, ignored, seen)
    files.sort(key=lambda f: f.path)
    return FolderListing(
        layout=layout,
        classes=tuple(sorted(classes)),
        splits=tuple(sorted(splits, key=split_sort_key)),
        files=tuple(files),
        ignored={k: v for k, v in ignored.items() if v},
        bad_names=tuple(bad),
        mixed=split_like_folders(has_dirs),
        loose_images=loose[0],
    )


def _walk(entries, prefix, class_name, split, files, bad, ignored, seen) -> None:
    for e in entries:
        if is_hidden(e.name):
            ignored[IGNORED_HIDDEN] += 1
            continue
        rel = f"{prefix}/{e.name}"
        if _is_dir(e):
            try:
                st = os.stat(e.path)
            except OSError as err:
                raise _unreadable(Path(e.path), err) from None
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue  # a link back up the tree: do not loop
            try:
                children = _scan(Path(e.path))
            except OSError as err:
                raise _unreadable(Path(e.path), err) from None
            _walk(children, rel, class_name, split, files, bad, ignored, seen | {key})
        elif is_image_name(e.name):
            item = ImageFile(rel, class_name, split)
            if not usable_name(rel):
                bad.append(item)
            else:
                files.append(item)
        else:
            ignored[IGNORED_OTHER] += 1


def _hash_one(path: str) -> str:
    try:
        return file_sha256(path)
    except OSError:
        read_bytes(path)  # raises ItemSkipped with the right reason and words
        raise ItemSkipped(UNREADABLE_FILE, f"{path}: cannot be read")


def _in_threads(fn: Callable[[str], object], paths: Sequence[str], threads: int | None) -> list:
    """`[fn(p) for p in paths]`, on threads (they overlap the reads; hashlib releases
    the GIL while it hashes)."""
    threads = threads or min(16, 4 * (os.cpu_count() or 1))
    if len(paths) < 64 or threads <= 1:
        return [fn(p) for p in paths]
    # Chunks, not one future per file: a million-file tree stays cheap to schedule.
    chunks = [paths[i:i + 64] for i in range(0, len(paths), 64)]
    with ThreadPoolExecutor(threads) as pool:
        return [d for chunk in pool.map(lambda c: [fn(p) for p in c], chunks) for d in chunk]


def hash_files(root: str | Path, paths: Sequence[str], *, threads: int | None = None,
               progress: Callable[[int], object] | None = None) -> list[str | ItemSkipped]:
    """sha256 hex digest of each file (relative to `root`), or the `ItemSkipped` that
    says why it could not be read."""
    root = str(root)

    def one(rel: str) -> str | ItemSkipped:
        try:
            return _hash_one(os.path.join(root, rel))
        except ItemSkipped as e:
            return e
        finally:
            if progress is not None:
                progress(1)

    return _in_threads(one, paths, threads)


_TAIL = 4096  # bytes of a file's end that tell distinct photos apart


def _size_and_tail(path: str) -> tuple[int, bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, _TAIL, max(0, size - _TAIL)) if hasattr(os, "pread") else \
                _read_tail(fd, size)
        finally:
            os.close(fd)
        return size, hashlib.sha256(tail).digest()
    except OSError:
        read_bytes(path)  # raises ItemSkipped with the right reason and words
        raise ItemSkipped(UNREADABLE_FILE, f"{path}: cannot be read")


def _read_tail(fd: int, size: int) -> bytes:
    os.lseek(fd, max(0, size - _TAIL), os.SEEK_SET)
    return os.read(fd, _TAIL)


def content_keys(root: str | Path, paths: Sequence[str], *, threads: int | None = None,
                 progress: Callable[[int], object] | None = None) -> list[str | ItemSkipped]:
    """A key per file (relative to `root`) that is equal for two files exactly when
    their bytes are, or the `ItemSkipped` that says why it could not be read.

    Files that could be identical (same size and same last 4 KiB) get their sha256
    hex digest; a file no other one could equal gets a key from its size and tail
    (never 64 hex digits, so never equal to a digest). Only the candidates are read
    whole: on a tree of distinct photos that is almost none, where hashing every
    file read the whole tree once more before any record was written.
    """
    root = str(root)

    def tail(rel: str) -> tuple[int, bytes] | ItemSkipped:
        try:
            return _size_and_tail(os.path.join(root, rel))
        except ItemSkipped as e:
            return e

    # One thread: a 4 KiB read is mostly Python work, which threads only queue for
    # (20,000 photos: 0.22 s alone, 0.47 s on 8 threads; hashing each whole: 1.3 s).
    tails = [tail(p) for p in paths]
    seen: dict[tuple[int, bytes], int] = {}
    for t in tails:
        if not isinstance(t, ItemSkipped):
            seen[t] = seen.get(t, 0) + 1
    twins = [i for i, t in enumerate(tails) if not isinstance(t, ItemSkipped) and seen[t] > 1]
    keys: list[str | ItemSkipped] = [
        t if isinstance(t, ItemSkipped) else f"{t[0]}:{t[1].hex()}" for t in tails]
    if progress is not None:
        progress(len(paths) - len(twins))
    for i, digest in zip(twins, hash_files(root, [paths[i] for i in twins], threads=threads,
                                           progress=progress)):
        keys[i] = digest
    return keys


# ------------------------------------------------------------------ splitting (pure)

def _rng(seed: int, *parts: str) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`, so it does not depend on
    # PYTHONHASHSEED; per-class streams keep one class's split independent of the others.
    return random.Random("/".join(("cocoprep-split", str(seed)) + parts))


def find_conflicts(files: Sequence[ImageFile], hashes: Sequence[str], class_order: Sequence[str],
                   *, keep_conflicts: bool = False) -> tuple[list[int], list[Rejected]]:
    """Identical bytes under different classes.

    Returns the indices of `files` to keep and the rejected ones. Without
    `keep_conflicts` every copy of a conflicting image is kept out; with it, the
    copies in the first class (label order) are kept and the others kept out.
    """
    rank = {name: i for i, name in enumerate(class_order)}
    by_hash: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        by_hash.setdefault(h, []).append(i)
    out: set[int] = set()
    rejected: list[Rejected] = []
    for h, idx in by_hash.items():
        names = {files[i].class_name for i in idx}
        if len(names) < 2:
            continue
        idx = sorted(idx, key=lambda i: (rank[files[i].class_name], files[i].path))
        first = files[idx[0]]
        for i in idx:
            f = files[i]
            if keep_conflicts and f.class_name == first.class_name:
                continue
            others = sorted({files[j].class_name for j in idx} - {f.class_name},
                            key=rank.__getitem__)
            kept = (f"; the copy in {first.class_name!r} ({first.path}) is kept"
                    if keep_conflicts else "; all copies are kept out (--keep-conflicts keeps "
                    "the first)")
            rejected.append(Rejected(
                f, CLASS_CONFLICT,
                f"same bytes (sha256 {h[:16]}...) also under class "
                f"{', '.join(repr(o) for o in others)}{kept}",
            ))
            out.add(i)
    keep = [i for i in range(len(files)) if i not in out]
    rejected.sort(key=lambda r: r.file.path)
    return keep, rejected


def _order_split(items: list[ImageFile], seed: int, split: str) -> tuple[ImageFile, ...]:
    items = sorted(items, key=lambda f: f.path)
    _rng(seed, "order", split).shuffle(items)  # mix classes within each shard
    return tuple(items)


def assign_by_ratio(files: Sequence[ImageFile], hashes: Sequence[str],
                    class_order: Sequence[str], ratios: Sequence[Fraction], *,
                    seed: int = 0) -> SplitAssignment:
    """Stratified, seeded split of `files` (already free of class conflicts).

    Per class, byte-identical files form one unit that goes to one split; units are
    shuffled with a per-class seeded stream and each is given to the split that
    still needs the most images, so with no duplicates every split gets exactly
    `allocate(n, ratios)` images.
    """
    names = RATIO_SPLITS[:len(ratios)]
    by_class: dict[str, list[int]] = {c: [] for c in class_order}
    for i, f in enumerate(files):
        by_class[f.class_name].append(i)
    out: dict[str, list[ImageFile]] = {n: [] for n in names}
    warnings: list[str] = []
    small: list[str] = []
    duplicates = 0
    for cls in class_order:
        idx = by_class[cls]
        n = len(idx)
        targets = allocate(n, ratios)
        if n < len(names):
            small.append(cls)
            warnings.append(
                f"class {cls!r} has {n} usable image(s), fewer than the {len(names)} splits: "
                f"it is missing from {', '.join(s for s, t in zip(names, targets) if t == 0)}"
            )
        units: dict[str, list[ImageFile]] = {}
        for i in idx:
            units.setdefault(hashes[i], []).append(files[i])
        groups = sorted(units.values(), key=lambda g: g[0].path)
        duplicates += sum(len(g) - 1 for g in groups)
        _rng(seed, "class", cls).shuffle(groups)
        # Big units first (stable, so their shuffled order holds), then singles.
        groups.sort(key=lambda g: -len(g))
        have = [0] * len(names)
        for g in groups:
            s = max(range(len(names)), key=lambda j: (targets[j] - have[j], -j))
            have[s] += len(g)
            out[names[s]].extend(g)
        if tuple(have) != targets:
            warnings.append(
                f"class {cls!r}: identical files must share a split, so its split sizes "
                f"{'/'.join(map(str, have))} differ from the ratio's "
                f"{'/'.join(map(str, targets))}"
            )
    return SplitAssignment(
        splits={s: _order_split(items, seed, s) for s, items in out.items()},
        warnings=tuple(warnings),
        duplicates=duplicates,
        small_classes=tuple(small),
    )


def assign_given(files: Sequence[ImageFile], hashes: Sequence[str], split_order: Sequence[str],
                 class_order: Sequence[str], *, seed: int = 0) -> SplitAssignment:
    """Keep the given splits. Identical bytes in two splits would leak, so only the
    copies in the earliest split are kept."""
    rank = {s: i for i, s in enumerate(split_order)}
    first_split: dict[str, str] = {}
    first_file: dict[str, ImageFile] = {}
    for i in sorted(range(len(files)), key=lambda i: (rank[files[i].split], files[i].path)):
        first_split.setdefault(hashes[i], files[i].split)
        first_file.setdefault(hashes[i], files[i])
    out: dict[str, list[ImageFile]] = {s: [] for s in split_order}
    rejected: list[Rejected] = []
    seen: set[str] = set()
    duplicates = 0
    for f, h in zip(files, hashes):
        if f.split != first_split[h]:
            first = first_file[h]
            rejected.append(Rejected(
                f, DUPLICATE_ACROSS_SPLITS,
                f"same bytes (sha256 {h[:16]}...) as {first.path} in split "
                f"{first.split!r}; only the copies in the earliest split are kept",
            ))
            continue
        duplicates += h in seen
        seen.add(h)
        out[f.split].append(f)
    warnings = []
    for s in split_order:
        present = {f.class_name for f in out[s]}
        missing = [c for c in class_order if c not in present]
        if missing:
            warnings.append(f"split {s!r} has no images of class(es) "
                            f"{', '.join(repr(c) for c in missing)}")
    return SplitAssignment(
        splits={s: _order_split(items, seed, s) for s, items in out.items()},
        rejected=tuple(rejected),
        warnings=tuple(warnings),
        duplicates=duplicates,
    )


def select_classes(available: Sequence[str], wanted: str | Iterable[str] | None, *,
                   what: str = "class folders") -> tuple[str, ...]:
    """The class order: `available` as it is, or `wanted` (picked and ordered); a
    wanted name that is not available is a `UsageError` naming it and every name
    there is (`what` says what they are)."""
    if wanted is None:
        return tuple(available)
    shown = wanted if isinstance(wanted, str) else ",".join(wanted)
    names = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted)]
    if any(not n for n in names):
        raise UsageError("--classes", "comma-separated class names", shown)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError("--classes", "each class once", f"{shown} ({', '.join(dupes)} repeated)")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UsageError("--classes", f"names of {what} ({', '.join(available)})",
                         ", ".join(unknown))
    return tuple(names)
