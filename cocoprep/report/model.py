"""The values a report is made of: what was read, handed to the page as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocoprep.errors import CocoprepError
from cocoprep.manifest import Manifest
from cocoprep.report.gather import SplitStats


@dataclass
class SkipGroup:
    """The skipped items of one split and reason: how many, and the first few
    (each a skipped.jsonl line, with `thumb`: a data URI where the image could be read)."""

    count: int = 0
    first: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows."""

    path: str
    task: str
    manifest: Manifest | None
    entries: dict[str, dict]              # split -> `inspect`'s statistics
    stats: dict[str, SplitStats]
    class_names: list[str]                # label order, then names found only in records
    flags: dict[str, list[str]]           # class -> what is odd about it across splits
    reference: str                        # the split shares are compared with
    share_factor: float
    seg_names: dict[int, str]             # segmentation: mask value -> class name
    skipped: dict[tuple[str, str], SkipGroup]
    examples_uri: str | None
    examples_note: str
    leaks: list[tuple[str, dict[str, str]]]  # sha256 -> {split: a file name}
    use_lines: list[tuple[str, str]]      # (what, code)
    verify: Any = None                    # a verify.VerifyReport when asked for
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportResult:
    """What `report` wrote and what it found wrong (empty: nothing)."""

    path: Path
    problems: tuple[str, ...]


class ReportProblems(CocoprepError):
    """The page was written, but the records have problems (it lists them)."""

    exit_code = 1

    def __init__(self, result: ReportResult):
        self.result = result
        n = len(result.problems)
        super().__init__(f"{n} problem(s) in the records, first: {result.problems[0]}; "
                         f"{result.path} shows what could be read and lists them")
