"""Where a YOLO data set's images, labels and class names are, and which tool wrote it.

Knows the layouts people have:

* Ultralytics `data.yaml` (also CVAT's "Ultralytics YOLO" export): `names` as a
  list or an `{index: name}` map, optional `nc` and `path:`; `train`/`val`/`test`
  each a folder, a .txt list of image paths, or a list of either, relative to
  `path:` (itself relative to the YAML's folder), else to the YAML's folder;
* Roboflow's "YOLOv5/v8/v11" exports: the same data.yaml with `../train/images`
  entries, which Ultralytics reads as `train/images` beside the YAML when the
  `../` path does not exist (the same rule here);
* darknet `obj.data` (CVAT "YOLO 1.1": `train = train.txt`, `valid = valid.txt`,
  `names = obj.names`, images in `obj_<subset>_data/`);
* a folder of images with a `classes.txt` or `obj.names` (darknet, and Label
  Studio's YOLO export with `images/`, `labels/`, `notes.json`).

A label file is found as Ultralytics finds it: the image's path with its last
`images` folder replaced by `labels` and the suffix `.txt` (beside the image when
there is no `images` folder). Only the layout is read here; label files are not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from cocoprep.errors import InputError, UsageError
from cocoprep.images import IMAGE_EXTENSIONS

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
OBJ_DATA = "obj.data"
NAMES_FILES = ("classes.txt", "obj.names")
LABEL_STUDIO_NOTES = "notes.json"
YAML_SPLITS = ("train", "val", "test")
OBJ_DATA_SPLITS = ("train", "valid", "test")

ULTRALYTICS = "Ultralytics data.yaml"
ROBOFLOW = "Roboflow data.yaml"
DARKNET_DATA = "darknet obj.data"
DARKNET_FOLDER = "darknet folder"
LABEL_STUDIO = "Label Studio YOLO export"


@dataclass(frozen=True)
class YoloSplitFiles:
    """One split: its images in listing order, and the folders holding its labels
    (searched for label files without an image; empty for splits given as lists)."""

    name: str
    images: tuple[Path, ...]
    label_dirs: tuple[Path, ...]
    entries: tuple[str, ...]      # what the configuration named, resolved


@dataclass(frozen=True)
class YoloLayout:
    kind: str
    root: Path
    config: Path | None
    names: tuple[str, ...]
    splits: tuple[YoloSplitFiles, ...]
    keypoint_values: int = 0          # values per line after the box (pose data sets)
    notes: tuple[str, ...] = ()
    not_labels: frozenset = frozenset()  # .txt files that are names or lists


# ------------------------------------------------------------------ small rules

def is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def label_path(image: Path, root: Path) -> Path:
    """The label file of `image`: its last `images` folder (below `root` when the
    image is there) replaced by `labels`, suffix `.txt`."""
    try:
        base, parts = root, list(image.relative_to(root).parts)
    except ValueError:
        base, parts = Path(image.anchor), list(image.parts[1:])
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return (base.joinpath(*parts)).with_suffix(".txt")


def list_images(folder: Path) -> list[Path]:
    """Every image below `folder` (any depth, hidden entries left out), sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in filenames if is_image(f)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def find_config(src: Path) -> Path | None:
    """The data.yaml or obj.data that describes `src` (a file or a folder), if any."""
    if src.is_file():
        return src
    for name in YAML_NAMES + (OBJ_DATA,):
        if (src / name).is_file():
            return src / name
    yamls = sorted(p for p in src.glob("*.y*ml") if _yolo_yaml(p))
    return yamls[0] if len(yamls) == 1 else None


def _yolo_yaml(path: Path) -> bool:
    if path.suffix.lower() not in (".yaml", ".yml") or path.stat().st_size > 1_000_000:
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and ("names" in data or "nc" in data) and "train" in data


def names_file(folder: Path) -> Path | None:
    return next((folder / n for n in NAMES_FILES if (folder / n).is_file()), None)


def detect(src: Path) -> bool:
    """Cheap: a data.yaml/obj.data, or a folder with classes.txt/obj.names."""
    if src.is_file():
        return src.suffix.lower() in (".yaml", ".yml") or src.name == OBJ_DATA
    if not src.is_dir():
        return False
    return find_config(src) is not None or names_file(src) is not None


# ------------------------------------------------------------------ class names

def read_names_file(path: Path) -> tuple[str, ...]:
    """One class name per line (blank lines at the end ignored)."""
    lines = [line.strip() for line in _text(path).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or any(not n for n in lines):
        raise InputError(path, "one class name per line, none blank", "a blank line"
                         if lines else "no names")
    return _unique(path, lines)


def _unique(where: Path, names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise InputError(where, "each class name once", f"{n!r} for classes "
                             f"{seen[n]} and {i}")
        seen[n] = i
    return tuple(names)


def yaml_names(path: Path, data: dict) -> tuple[tuple[str, ...], list[str]]:
    """`names` (a list, or a map whose keys are 0..n-1) checked against `nc`; without
    `names`, `class_0..` as Ultralytics names them (with a note)."""
    names, nc, notes = data.get("names"), data.get("nc"), []
    if names is None:
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
            raise InputError(path, "names (a list or an {index: name} map) or nc",
                             "neither")
        notes.append(f"{path.name} has no names: classes named class_0..class_{nc - 1}")
        return tuple(f"class_{i}" for i in range(nc)), notes
    if isinstance(names, dict):
        keys = {}
        for k, v in names.items():
            index = k if isinstance(k, int) and not isinstance(k, bool) else \
                int(k) if isinstance(k, str) and k.strip().isdigit() else None
            if index is None:
                raise InputError(path, "names keys to be class indices (0: person)", repr(k))
            keys[index] = v
        if sorted(keys) != list(range(len(keys))):
            raise InputError(path, f"names keys 0..{len(keys) - 1}", str(sorted(keys)))
        names = [keys[i] for i in range(len(keys))]
    if not isinstance(names, list) or not names:
        raise InputError(path, "names as a list or an {index: name} map", repr(names)[:80])
    names = [str(n).strip() for n in names]
    if any(not n for n in names):
        raise InputError(path, "a non-empty name for every class", "an empty name")
    if nc is not None and nc != len(names):
        raise InputError(path, f"nc to equal the number of names ({len(names)})", repr(nc))
    return _unique(path, names), notes


def keypoint_values(path: Path, data: dict) -> int:
    shape = data.get("kpt_shape")
    if shape is None:
        return 0
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(v, int) and v > 0 for v in shape)):
        raise InputError(path, "kpt_shape as [keypoints, 2 or 3]", repr(shape))
    return shape[0] * shape[1]


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "UTF-8 text", "undecodable bytes") from None
    except OSError as e:
        raise InputError(path, "a readable file", e.strerror or str(e)) from None


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(_text(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(path, "YAML", f"a syntax error{where}") from None
    if not isinstance(data, dict):
        raise InputError(path, "a YAML mapping (names:, train:, val:, ...)",
                         type(data).__name__)
    return data


def read_obj_data(path: Path) -> dict[str, str]:
    """`key = value` lines (darknet); `#` starts a comment."""
    out = {}
    for line in _text(path).splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


# ------------------------------------------------------------------ paths

def _candidates(entry: str, bases: Sequence[Path]) -> list[Path]:
    """Where a relative `entry` may be, below each base in turn: as written; a `../x`
    also as `x` (Ultralytics' rule, for Roboflow's `../train/images`); a `data/x`
    also as `x` (darknet names files from its own folder, where exports sit in
    `data/`: CVAT writes `data/obj_train_data/a.jpg`)."""
    p = Path(entry)
    if p.is_absolute():
        return [p]
    out = []
    for base in bases:
        out.append(base / p)
        for prefix in ("../", "data/"):
            if entry.startswith(prefix):
                out.append(base / entry[len(prefix):])
    return out


def resolve(entry: str, bases: Sequence[Path]) -> Path | None:
    return next((c for c in _candidates(entry, bases) if c.exists()), None)


def read_list(path: Path, bases: Sequence[Path], root: Path) -> list[Path]:
    """The image paths of a .txt list: `./x` relative to the list's folder, others
    looked up as `resolve` does. An image that is not there keeps the place where
    its label file is (so that its objects count as lost with it), else the first
    candidate: the builder reports it missing."""
    out = []
    for line in _text(path).splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("./"):
            out.append(Path(os.path.normpath(path.parent / line[2:])))
            continue
        places = _candidates(line, (path.parent,) + tuple(bases))
        found = (next((c for c in places if c.exists()), None)
                 or next((c for c in places if label_path(c, root).is_file()), places[0]))
        out.append(Path(os.path.normpath(found)))
    return out


def split_files(name: str, entries: Sequence[str], bases: Sequence[Path], *,
                where: Path, root: Path) -> YoloSplitFiles:
    """One split from its configured entries (folders and lists)."""
    images: list[Path] = []
    label_dirs: list[Path] = []
    resolved = []
    for entry in entries:
        found = resolve(entry, bases)
        if found is None:
            tried = ", ".join(str(c) for c in _candidates(entry, bases)[:3])
            raise InputError(where, f"{name}: {entry!r} to be a folder of images or a .txt "
                             f"list of them (looked for {tried})", "nothing there")
        found = Path(os.path.normpath(found))
        resolved.append(str(found))
        if found.is_dir():
            images += list_images(found)
            label_dirs.append(label_path(found / "x", root).parent)
        else:
            images += read_list(found, bases, root)
    seen: set[Path] = set()
    unique = [p for p in images if not (p in seen or seen.add(p))]
    return YoloSplitFiles(name, tuple(unique), tuple(label_dirs), tuple(resolved))


def _entries(where: Path, key: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise InputError(where, f"{key}: a path or a list of paths", repr(value)[:80])
    return [v.strip() for v in values]


def select(available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    if not wanted:
        return list(available)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise UsageError("--splits", f"names from {list(available)}", ",".join(missing))
    return list(wanted)


# ------------------------------------------------------------------ the layouts

def _from_yaml(path: Path, wanted: Sequence[str] | None) -> YoloLayout:
    data = read_yaml(path)
    names, notes = yaml_names(path, data)
    here = path.parent
    root = here
    if data.get("path"):
        given = Path(str(data["path"]))
        root = given if given.is_absolute() else here / given
        if not root.is_dir():
            notes.append(f"path: {data['path']} is not a folder here; paths are read "
                         f"from the YAML's folder")
            root = here
    root = Path(os.path.normpath(root))
    bases = (root,) if root == here else (root, here)
    available = [k for k in YAML_SPLITS if data.get(k)]
    if not available:
        raise InputError(path, "at least one of train:, val:, test:", "none")
    splits = tuple(split_files(k, _entries(path, k, data[k]), bases, where=path, root=root)
                   for k in select(available, wanted))
    kind = ROBOFLOW if "roboflow" in data else ULTRALYTICS
    lists = {Path(e) for s in splits for e in s.entries if Path(e).is_file()}
    return YoloLayout(kind, root, path, names, splits, keypoint_values(path, data),
                      tuple(notes), frozenset(lists))


def _from_obj_data(path: Path, wanted: Sequence[str] | None) -> YoloLayout:
    data = read_obj_data(path)
    here = path.parent
    names_at = resolve(data["names"], (here,)) if data.get("names") else names_file(here)
    if names_at is None:
        raise InputError(path, "names = <file> naming a class per line (obj.names)",
                         repr(data.get("names")) if data.get("names") else "no names line")
    names = read_names_file(names_at)
    classes = data.get("classes")
    if classes is not None and classes != str(len(names)):
        raise InputError(path, f"classes = {len(names)} (the names in {names_at.name})",
                         classes)
    available = [k for k in OBJ_DATA_SPLITS if data.get(k)]
    if not available:
        raise InputError(path, "train = <list file> (or valid =, test =)", "none")
    splits = tuple(split_files(k, [data[k]], (here,), where=path, root=here)
                   for k in select(available, wanted))
    lists = {Path(e) for s in splits for e in s.entries} | {names_at}
    return YoloLayout(DARKNET_DATA, here, path, names, splits,
                      not_labels=frozenset(lists))


def _from_folder(src: Path, wanted: Sequence[str] | None,
                 classes: Sequence[str] | None) -> YoloLayout:
    at = names_file(src)
    if at is not None:
        names = read_names_file(at)
    elif classes:
        names = _unique(src, [c.strip() for c in classes])
    else:
        raise InputError(src, "a YOLO data set: data.yaml, obj.data, or images with "
                         ".txt labels and classes.txt/obj.names (or --classes)",
                         "none of these")
    kind = LABEL_STUDIO if (src / LABEL_STUDIO_NOTES).is_file() else DARKNET_FOLDER
    name = src.resolve().name or "images"
    select([name], wanted)
    split = YoloSplitFiles(name, tuple(list_images(src)), (src,), (str(src),))
    return YoloLayout(kind, src, None, names, (split,),
                      not_labels=frozenset({at} if at else ()))


def discover(src: Path, *, splits: Sequence[str] | None = None,
             classes: Sequence[str] | None = None) -> YoloLayout:
    """The layout of `src`: a data.yaml or obj.data file, or a folder holding one
    (or images with a classes.txt/obj.names)."""
    if not src.exists():
        raise InputError(src, "a YOLO data set (data.yaml, obj.data or a folder)",
                         "nothing at that path")
    config = find_config(src)
    if config is not None and config.name == OBJ_DATA:
        layout = _from_obj_data(config, splits)
    elif config is not None:
        layout = _from_yaml(config, splits)
    else:
        layout = _from_folder(src, splits, classes)
    return layout  # with a names file, `--classes` picks and orders (sources.select_classes)
