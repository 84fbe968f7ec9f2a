"""The compact segmentation store gives back exactly what the file held."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from cocoprep.sources import segstore
from cocoprep.sources.segstore import SegmentationStore


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _values(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    kinds = [
        lambda: None,
        lambda: {"size": [10, 10], "counts": [100]},             # uncompressed RLE
        lambda: [[1, 2, 3, 4, 5, 6]],                             # integer polygon
        lambda: [],
        lambda: [[]],
        lambda: [[1.5, float("nan"), 3.0, 4.0, 5.0, 6.0]],        # malformed: kept as is
        lambda: [1, 2, 3, 4, 5, 6],                               # flat: malformed, kept
        lambda: [[True, 2, 3, 4, 5, 6]],                          # bools are not numbers
        lambda: [[2**60, 1, 2, 3, 4, 5]],                         # past float64's exact ints
        lambda: [[rng.uniform(0, 600) for _ in range(2 * rng.randrange(0, 12))]
                 for _ in range(rng.randrange(1, 4))],
    ]
    return [rng.choice(kinds)() for _ in range(n)]


def test_items_come_back_as_stored():
    values = _values(3000)
    store = SegmentationStore()
    for v in values:
        store.append(v)
    assert len(store) == len(values)
    assert all(_same(store[k], v) for k, v in enumerate(values))
    assert _same(store[-1], values[-1])


@pytest.mark.parametrize("order", ["random", "identity", "reversed", "empty"])
def test_take_and_pickle_keep_every_item(monkeypatch, order):
    monkeypatch.setattr(segstore, "_CHUNK", 37)  # several chunks even for small inputs
    values = _values(1500, seed=1)
    store = SegmentationStore()
    for v in values:
        store.append(v)
    rng = random.Random(2)
    idx = {"random": [rng.randrange(len(values)) for _ in range(2000)],
           "identity": list(range(len(values))), "reversed": list(range(len(values)))[::-1],
           "empty": []}[order]
    taken = pickle.loads(pickle.dumps(store.take(idx)))
    assert len(taken) == len(idx)
    assert all(_same(taken[j], values[k]) for j, k in enumerate(idx))


def test_polygons_take_eight_bytes_a_coordinate():
    store = SegmentationStore()
    for _ in range(1000):
        store.append([[float(i) for i in range(40)]])
    assert store.nbytes() < 1000 * (40 * 8 + 2 * 8) + 64
