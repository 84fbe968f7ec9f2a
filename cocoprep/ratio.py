"""`--ratio`: one rule for the split fractions that `convert` and `split` take."""

from __future__ import annotations

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
