"""`manifest.json`: the contract between the writer, the reader and verify.

It holds no timestamps or absolute machine state beyond the source paths the user
gave, so the same input and options give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cocoprep.errors import ManifestError

MANIFEST_NAME = "manifest.json"
SKIPPED_NAME = "skipped.jsonl"
FIXED_NAME = "fixed.jsonl"  # objects written with a change, each named (only when any)
REPORT_NAME = "report.html"  # `cocoprep report`'s page; a new conversion removes the stale one
FORMAT_VERSION = "1"


def shard_name(split: str, index: int, count: int) -> str:
    """`{split}.tfrecord-{i:05d}-of-{n:05d}`."""
    return f"{split}.tfrecord-{index:05d}-of-{count:05d}"


@dataclass(frozen=True)
class ShardInfo:
    file: str
    num_examples: int
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class SplitInfo:
    """One split. `class_counts` maps the class name to its count (objects for
    detection, images for classification), in label order."""

    num_examples: int
    num_objects: int
    shards: tuple[ShardInfo, ...]
    class_counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    task: str
    schema_version: str
    splits: dict[str, SplitInfo]
    label_map: str | None = "label_map.pbtxt"
    labels_txt: str | None = "labels.txt"
    label_offset: int = 0
    sources: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    # The TensorFlow Datasets metadata beside the shards (cocoprep.tfdsmeta):
    # file name -> sha256 of its bytes. Empty in outputs written before it existed.
    tfds_files: dict[str, str] = field(default_factory=dict)
    format_version: str = FORMAT_VERSION
    created_by: str = ""

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.splits.values())

    @property
    def num_shards(self) -> int:
        return sum(len(s.shards) for s in self.splits.values())

    def shard_paths(self, root: str | Path, split: str) -> list[Path]:
        return [Path(root) / s.file for s in self.splits[split].shards]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, path: str | Path = MANIFEST_NAME) -> "Manifest":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(path, f"not valid JSON ({e})") from None
        try:
            splits = {
                name: SplitInfo(
                    num_examples=s["num_examples"],
                    num_objects=s["num_objects"],
                    shards=tuple(ShardInfo(**sh) for sh in s["shards"]),
                    class_counts=dict(s.get("class_counts", {})),
                    skipped=dict(s.get("skipped", {})),
                    counters=dict(s.get("counters", {})),
                )
                for name, s in data["splits"].items()
            }
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            known["splits"] = splits
            return cls(**known)
        except (KeyError, TypeError, AttributeError) as e:
            raise ManifestError(path, f"not a cocoprep manifest (missing or bad {e})") from None

    @classmethod
    def read(cls, directory: str | Path) -> "Manifest":
        path = Path(directory) / MANIFEST_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(
                path, "no manifest here; point at a directory written by "
                "`cocoprep convert` or `cocoprep split`, or at a shard glob"
            ) from None
        except OSError as e:
            raise ManifestError(path, f"cannot read ({e})") from None
        return cls.from_json(text, path=path)

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path
