"""One rule for the split a command uses when none is named.

`preview`, `smoketrain` and every other command that defaults a split ask
`pick_splits`: with one split, that split; otherwise the train-like split
(train, train2017, training, ...) and the val-like split (val, valid,
validation, val2017, dev; a test split only as a last resort). Pure: it takes
split names (and optionally their example counts), never touches disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from cocoprep.errors import UsageError

# Stems, in order of preference; a name matches a stem when it is the stem
# optionally followed by digits or a separator and digits (val2017, train_1).
TRAIN_STEMS = ("train", "training", "trn")
VAL_STEMS = ("val", "valid", "validation", "dev", "eval", "evaluation")
TEST_STEMS = ("test", "testing", "tst")


def _rank(name: str, stems: Sequence[str]) -> int | None:
    """The preference rank of `name` among `stems` (lower is better), or None."""
    low = name.lower()
    for i, stem in enumerate(stems):
        if low == stem:
            return 2 * i
        if re.fullmatch(re.escape(stem) + r"[-_.]?\d+", low):
            return 2 * i + 1
    return None


def _best(names: Sequence[str], stems: Sequence[str]) -> str | None:
    ranked = [(r, n) for n in names if (r := _rank(n, stems)) is not None]
    return min(ranked)[1] if ranked else None


def is_train_like(name: str) -> bool:
    return _rank(name, TRAIN_STEMS) is not None


def is_val_like(name: str) -> bool:
    return _rank(name, VAL_STEMS) is not None


@dataclass(frozen=True)
class SplitChoice:
    """The splits a command will use.

    Attributes:
        train: the split to train on (or to show by default).
        val: the split to validate on, or None when there is none.
        note: a sentence for the user when the choice needs one (e.g. "no
            validation split"), else "".
    """

    train: str
    val: str | None
    note: str = ""


def _have(names: Sequence[str], counts: Mapping[str, int] | None) -> str:
    if not names:
        return "none"
    if counts is None:
        return ", ".join(names)
    return ", ".join(f"{n} ({counts.get(n, 0)} examples)" for n in names)


def pick_splits(names: Sequence[str], *, counts: Mapping[str, int] | None = None,
                train: str | None = None, val: str | None = None,
                where: str = "the output", train_option: str = "--train-split",
                val_option: str = "--val-split") -> SplitChoice:
    """Choose the train and validation splits among `names`.

    `train`/`val` given by the user are checked, not guessed. With one split it
    is the train split and there is no validation split. A val split with 0
    examples (per `counts`) counts as none. Raises UsageError naming the splits
    there are when no train split can be chosen.
    """
    names = list(names)
    have = _have(names, counts)
    if train is not None and train not in names:
        raise UsageError(train_option, f"a split in {where} ({have})", train)
    if val is not None and val not in names:
        raise UsageError(val_option, f"a split in {where} ({have})", val)
    if train is None:
        if len(names) == 1:
            train = names[0]
        else:
            train = _best(names, TRAIN_STEMS)
        if train is None:
            raise UsageError(train_option, f"one of the splits in {where} ({have})", None)
    note = ""
    if val is None:
        rest = [n for n in names if n != train]
        val = _best(rest, VAL_STEMS) or _best(rest, TEST_STEMS)
        if val is not None and _rank(val, TEST_STEMS) is not None:
            note = f"no validation split; validating on {val!r}"
    if val is not None and counts is not None and counts.get(val, 0) == 0:
        note = f"validation split {val!r} is empty"
        val = None
    if val is None and not note:
        note = "no validation split"
    return SplitChoice(train=train, val=val, note=note)


def default_split(names: Sequence[str], *, counts: Mapping[str, int] | None = None,
                  where: str = "the output", option: str = "--split") -> str:
    """The split a command shows or reads when none is named (the train-like one)."""
    return pick_splits(names, counts=counts, where=where, train_option=option).train
