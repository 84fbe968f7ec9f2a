"""What a PATH argument names: one rule for every command that reads records.

`resolve` turns an output directory (read through its manifest.json) or a shard
glob (a single shard file counts as a glob matching itself) into `Shards`: the
splits with their shard files in stored order, the manifest, the directory and
the task. `describe` (so `load`), `verify`, `inspect` and `preview` ask it, so
they accept the same paths and say the same thing about a bad one.
"""

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from cocoprep import schema
from cocoprep.errors import InputError, ManifestError
from cocoprep.framing import read_shard
from cocoprep.fsio import is_remote
from cocoprep.manifest import MANIFEST_NAME, Manifest

SHARD_PATTERN = "*.tfrecord-?????-of-?????"
_GLOB_CHARS = "*?["


def is_glob(path: str) -> bool:
    return any(c in path for c in _GLOB_CHARS)


def split_of(name: str) -> str:
    """The split of a shard file name (`train.tfrecord-00000-of-00002` -> `train`)."""
    name = os.path.basename(name)
    return name.split(".tfrecord", 1)[0] if ".tfrecord" in name else name


@dataclass(frozen=True)
class Shards:
    """The shards a PATH names.

    Attributes:
        path: the path as given.
        directory: the output directory, or the folder of the first shard of a glob.
        splits: split name -> shard paths, in manifest order (glob: by file name).
        manifest: the manifest of an output directory; None for a glob.
        task: the manifest's task; None for a glob (the records tell: `task_of`).
    """

    path: str
    directory: Path
    splits: dict[str, tuple[str, ...]]
    manifest: Manifest | None = field(default=None, repr=False)
    task: str | None = None

    @property
    def from_glob(self) -> bool:
        return self.manifest is None

    @property
    def files(self) -> tuple[str, ...]:
        """Every shard, split after split."""
        return tuple(f for files in self.splits.values() for f in files)

    @property
    def counts(self) -> dict[str, int] | None:
        """Examples per split (from the manifest; None for a glob)."""
        if self.manifest is None:
            return None
        return {name: info.num_examples for name, info in self.manifest.splits.items()}

    def split_files(self, split: str) -> tuple[str, ...]:
        """The shards of `split` (a glob: every file, whatever its name)."""
        if self.manifest is None:
            return self.files
        if split not in self.splits:
            have = ", ".join(f"{name} ({n} examples)" for name, n in self.counts.items()) or "none"
            raise ManifestError(self.directory / MANIFEST_NAME,
                                f"no split {split!r}; splits here: {have}")
        return self.splits[split]

    def missing(self, split: str | None = None) -> list[str]:
        """Listed shards (of `split`, or of every split) that are not there."""
        files = self.files if split is None else self.split_files(split)
        return [f for f in files if not os.path.isfile(f)]


def describe_directory(directory: Path) -> str:
    """A short account of what a directory holds, for an error message."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return "nothing readable"
    shards = [p.name for p in entries if ".tfrecord" in p.name]
    subdirs = [p.name + "/" for p in entries if p.is_dir() and (p / MANIFEST_NAME).is_file()]
    parts = []
    if subdirs:
        parts.append("directories with a manifest: " + ", ".join(subdirs[:10]))
    if shards:
        parts.append(f"{len(shards)} shard file(s) such as {shards[0]} "
                     f"(pass a glob like {directory / '*.tfrecord-*'})")
    if not parts:
        names = [p.name for p in entries[:10]]
        parts.append("entries: " + (", ".join(names) if names else "none (empty directory)"))
    return "; ".join(parts)


def _from_glob(text: str) -> Shards:
    files = sorted(f for f in _glob.glob(text) if os.path.isfile(f)) if is_glob(text) else [text]
    if not files:
        parent = Path(text).parent
        where = (f"no file matches it in {parent}; {describe_directory(parent)}"
                 if parent.is_dir() else "its directory does not exist")
        raise InputError(text, "a glob matching shard files", f"no files ({where})")
    splits: dict[str, list[str]] = {}
    for f in files:
        splits.setdefault(split_of(f), []).append(f)
    return Shards(text, Path(files[0]).parent, {k: tuple(v) for k, v in splits.items()})


def _from_directory(text: str) -> Shards:
    directory = Path(text)
    if not (directory / MANIFEST_NAME).is_file():
        raise ManifestError(directory / MANIFEST_NAME,
                            f"no manifest here; found {describe_directory(directory)}")
    manifest = Manifest.read(directory)
    splits = {name: tuple(str(directory / s.file) for s in info.shards)
              for name, info in manifest.splits.items()}
    return Shards(text, directory, splits, manifest, manifest.task)


def resolve(path: str | os.PathLike) -> Shards:
    """The shards of an output directory (through its manifest.json), a shard glob,
    or one shard file.

    Raises:
        InputError: nothing at `path`, or a glob matching no file.
        ManifestError: a directory without a readable manifest.json.
    """
    text = os.fspath(path)
    if is_remote(text):  # tf.data and the checks read local files only
        raise InputError(text, "a local output directory or shard glob (copy a remote "
                         "output down first, e.g. `aws s3 cp --recursive` or "
                         "`gcloud storage cp -r`)", "a remote path")
    if is_glob(text) or os.path.isfile(text):
        return _from_glob(text)
    if not os.path.isdir(text):
        raise InputError(text, "a cocoprep output directory or a shard glob",
                         "nothing at that path")
    return _from_directory(text)


def infer_task_of(path: str) -> str | None:
    """The task of the first readable record of `path` (None if it has none)."""
    import tensorflow as tf

    for framed in read_shard(path):
        if framed.data is not None:
            try:
                keys = tf.train.Example.FromString(framed.data).features.feature.keys()
            except Exception:
                return None
            return schema.infer_task(keys)
    return None


def task_of(shards: Shards) -> str:
    """The manifest's task, or that of the first shard holding a readable record."""
    if shards.task is not None:
        return shards.task
    files = shards.files
    for f in files:
        task = infer_task_of(f)
        if task is not None:
            return task
    raise InputError(files[0] if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)",
                     "cocoprep records (detection, segmentation or classification keys)",
                     "no readable record with those keys")
