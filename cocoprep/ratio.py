"""`--ratio`: one rule for the split fractions that `convert` and `split` take, and
one rule for how many of n items each fraction gets (`allocate`)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

from cocoprep.errors import UsageError

_TOLERANCE = Fraction(1, 10**6)


def parse_ratio(value: str | Sequence[float | str | Fraction] | None, *,
                default: tuple[Fraction, ...] | None = None) -> tuple[Fraction, ...] | None:
    """`"0.8,0.1,0.1"` or a sequence -> exact fractions (train, val[, test]);
    `default` when `value` is None.

    Each value must lie strictly between 0 and 1 and the values must sum to 1
    (within 1e-6; they are then scaled to sum exactly to 1).
    """
    if value is None:
        return default
    shown = value if isinstance(value, str) else ",".join(str(v) for v in value)
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) not in (2, 3):
        raise UsageError("--ratio", "2 or 3 comma-separated fractions (train,val[,test])", shown)
    ratios = []
    for part in parts:
        try:
            r = part if isinstance(part, Fraction) else Fraction(str(part).strip())
        except (ValueError, ZeroDivisionError):
            raise UsageError("--ratio", "numbers such as 0.8,0.1,0.1", shown) from None
        if not 0 < r < 1:
            raise UsageError("--ratio", "each fraction greater than 0 and less than 1", shown)
        ratios.append(r)
    total = sum(ratios)
    if abs(total - 1) > _TOLERANCE:
        raise UsageError("--ratio", f"fractions that sum to 1 (these sum to {float(total):g})",
                         shown)
    return tuple(r / total for r in ratios)


def allocate(n: int, ratios: Sequence[Fraction]) -> tuple[int, ...]:
    """How many of `n` images each split gets.

    Largest-remainder rounding, so every split is within less than one image of
    `n * ratio`; when `n` is at least the number of splits, the spare images go
    first to splits that would otherwise be empty, so every split gets one. Only
    when both rules cannot hold together (a tiny class with a skewed ratio, e.g.
    3 images at 0.8/0.1/0.1) does an image move from the split with the most
    surplus, and the minimum of one per split wins.
    """
    k = len(ratios)
    exact = [n * Fraction(r) for r in ratios]
    counts = [math.floor(e) for e in exact]
    spare = n - sum(counts)
    need_one = n >= k
    order = sorted(range(k), key=lambda i: (not (need_one and counts[i] == 0),
                                            -(exact[i] - counts[i]), i))
    for i in order[:spare]:
        counts[i] += 1
    if need_one:
        for j in range(k):
            if counts[j] == 0:
                donor = max((i for i in range(k) if counts[i] > 1),
                            key=lambda i: (counts[i] - exact[i], counts[i], -i))
                counts[donor] -= 1
                counts[j] += 1
    return tuple(counts)
