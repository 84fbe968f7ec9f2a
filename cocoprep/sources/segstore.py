"""Compact storage of per-annotation segmentations (`--masks`).

COCO-train holds about 860k polygon segmentations; as Python lists of floats they
take gigabytes (every coordinate a float object, every polygon a list), and every
worker got a copy. Here every well-formed polygon list is packed into one float64
array with offsets (8 bytes a coordinate); anything else (RLE dicts, None, malformed
values) is kept as the original object, so `masks.to_rle` sees exactly what the file
held and reports the same reasons. Reading an item gives a fresh list of lists.
"""

from __future__ import annotations

import math
import posixpath
from array import array
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

_EXACT_INT = 2**53  # larger integers do not survive a float64 round trip
_CHUNK = 1 << 16   # annotations gathered at a time by `take`


def _packable(seg: Any) -> bool:
    """A list of polygons, each a list of finite ints/floats a float64 holds exactly."""
    if type(seg) is not list:
        return False
    for poly in seg:
        if type(poly) is not list:
            return False
        for v in poly:
            t = type(v)
            if t is float:
                if not math.isfinite(v):
                    return False
            elif t is not int or not -_EXACT_INT <= v <= _EXACT_INT:
                return False
    return True


class SegmentationStore:
    """A sequence of segmentations, one per annotation, in a few flat arrays.

    `coords` holds every packed polygon's numbers; polygon p spans
    `coords[poly_end[p - 1]:poly_end[p]]`; annotation k owns polygons
    `ann_poly[k]:ann_poly[k + 1]`. `others` maps an annotation index to the object
    kept as it was (not a packable polygon list).
    """

    def __init__(self):
        self._coords = array("d")
        self._poly_end = array("q")
        self._ann_poly = array("q", [0])
        self._ints: set[int] = set()   # annotations whose numbers were all ints
        self.others: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._ann_poly) - 1

    def append(self, seg: Any) -> None:
        k = len(self)
        if _packable(seg):
            all_int = True
            for poly in seg:
                self._coords.extend(poly)
                self._poly_end.append(len(self._coords))
                all_int = all_int and all(type(v) is int for v in poly)
            if all_int and seg and any(seg):
                self._ints.add(k)
        else:
            self.others[k] = seg
        self._ann_poly.append(len(self._poly_end))

    def __getitem__(self, k: int) -> Any:
        if k < 0:
            k += len(self)
        if k in self.others:
            return self.others[k]
        lo, hi = self._ann_poly[k], self._ann_poly[k + 1]
        out = []
        start = self._poly_end[lo - 1] if lo > 0 else 0
        cast = int if k in self._ints else float
        for p in range(lo, hi):
            end = self._poly_end[p]
            out.append([cast(v) for v in self._coords[start:end]])
            start = end
        return out

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SegmentationStore):
            other = list(other)
        return isinstance(other, list) and list(self) == other

    __hash__ = None  # mutable (append)

    def take(self, indices: Iterable[int]) -> "SegmentationStore":
        """A store of the items at `indices`, in that order: array gathers in chunks
        of `_CHUNK` annotations (bounded temporaries), no lists."""
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices,
                         dtype=np.int64)
        if len(idx) == len(self) and np.array_equal(idx, np.arange(len(idx))):
            return self  # already in order (COCO files usually are): share, not copy
        ann_poly = np.frombuffer(self._ann_poly, dtype=np.int64)
        poly_end = np.frombuffer(self._poly_end, dtype=np.int64)
        coords = np.frombuffer(self._coords, dtype=np.float64)
        out = SegmentationStore()
        for lo in range(0, len(idx), _CHUNK):
            part = idx[lo:lo + _CHUNK]
            polys = _ranges(ann_poly[part], ann_poly[part + 1])
            starts = np.where(polys > 0, poly_end[np.maximum(polys - 1, 0)], 0)
            ends = poly_end[polys]
            base = len(out._coords)
            out._coords.frombytes(coords[_ranges(starts, ends)].tobytes())
            out._poly_end.frombytes((base + np.cumsum(ends - starts, dtype=np.int64)).tobytes())
            counts = ann_poly[part + 1] - ann_poly[part]
            out._ann_poly.frombytes((out._ann_poly[-1] + np.cumsum(counts, dtype=np.int64))
                                    .tobytes())
        if self.others or self._ints:
            for new, k in enumerate(idx.tolist()):
                if k in self.others:
                    out.others[new] = self.others[k]
                elif k in self._ints:
                    out._ints.add(new)
        return out

    def nbytes(self) -> int:
        """Bytes held by the packed arrays (the kept objects not counted)."""
        return sum(a.itemsize * len(a) for a in (self._coords, self._poly_end, self._ann_poly))


@dataclass(frozen=True)
class MaskFile:
    """An object's mask as a PNG file of its own (Open Images): its name, the folders
    it may be in (the first holding it wins; the folders named after the name's first
    character are tried first: FiftyOne's `labels/masks/<0-F>/`, an extracted
    `<split>-masks-<0-f>.zip`), and how reports name those folders (relative to SRC,
    never an absolute path)."""

    name: str
    folders: tuple[str, ...]
    searched: str

    def paths(self) -> list[str]:
        first = self.name[:1].lower()

        def elsewhere(folder: str) -> bool:
            base = posixpath.basename(folder.rstrip("/")).lower()
            return not (base == first or base.endswith(f"-{first}"))

        ordered = sorted(self.folders, key=elsewhere)  # stable: the given order otherwise
        return [f"{f.rstrip('/')}/{self.name}" for f in ordered]


class MaskFileStore:
    """Per annotation, the name of its mask PNG (a `MaskFile`) or None (no mask row):
    the names in one byte string with offsets, not a list of strings."""

    def __init__(self, names: bytes | bytearray, ends: np.ndarray, index: np.ndarray,
                 folders: tuple[str, ...], searched: str):
        self._names, self._ends = names, np.asarray(ends, np.int64)
        self._index = np.asarray(index, np.int64)
        self.folders, self.searched = folders, searched

    def __len__(self) -> int:
        return len(self._index)

    def _name(self, i: int) -> str:
        start = int(self._ends[i - 1]) if i > 0 else 0
        return self._names[start:int(self._ends[i])].decode("utf-8", "replace")

    def __getitem__(self, k: int) -> MaskFile | None:
        i = int(self._index[k])
        return None if i < 0 else MaskFile(self._name(i), self.folders, self.searched)

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def take(self, indices: Iterable[int]) -> "MaskFileStore":
        """A store of the annotations at `indices` holding only their names (what one
        shard's worker needs)."""
        picked = self._index[np.asarray(list(indices) if not isinstance(indices, np.ndarray)
                                        else indices, np.int64)]
        used = np.unique(picked[picked >= 0])
        names = [self._name(int(i)).encode() for i in used]
        ends = np.cumsum([len(n) for n in names], dtype=np.int64)
        index = np.full(len(picked), -1, np.int64)
        index[picked >= 0] = np.searchsorted(used, picked[picked >= 0])
        return MaskFileStore(b"".join(names), ends, index, self.folders, self.searched)


def take(values: Sequence[Any] | None, indices: np.ndarray | Sequence[int]) -> Any:
    """`values` at `indices` (in that order): a store stays a store, a list a list."""
    if values is None:
        return None
    if isinstance(values, (SegmentationStore, MaskFileStore)):
        return values.take(indices)
    return [values[int(k)] for k in indices]


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The concatenation of `range(starts[i], stops[i])` for every i, as one array."""
    counts = stops - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total, dtype=np.int64) - offsets)
