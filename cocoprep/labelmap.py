"""`LabelMap`: ordered label id <-> name, and its two file forms.

`label_map.pbtxt` uses the TF Object Detection API StringIntLabelMap text format::

    item {
      id: 1
      name: 'person'
      display_name: 'person'
    }

`labels.txt` holds one name per line, in label order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cocoprep.errors import LabelMapError

PBTXT_NAME = "label_map.pbtxt"
LABELS_TXT_NAME = "labels.txt"


@dataclass(frozen=True)
class LabelItem:
    id: int
    name: str
    display_name: str | None = None


class LabelMap:
    """An ordered, validated list of `LabelItem`s.

    Ids are >= 1 (0 only for a class named `background`); ids and names are unique.
    The order is the label order: `index_of(id)` gives the contiguous 0-based index a
    model uses. With `index_ids=True` (labels.txt, classification) ids are 0-based
    indices and 0 is allowed for any name.
    """

    def __init__(self, items: Iterable[LabelItem], *, path: str | Path | None = None,
                 lines: Sequence[int] | None = None, index_ids: bool = False):
        self.items: tuple[LabelItem, ...] = tuple(items)
        ids: dict[int, int] = {}
        names: dict[str, int] = {}
        for i, item in enumerate(self.items):
            line = lines[i] if lines else None
            if isinstance(item.id, bool) or not isinstance(item.id, int):
                raise LabelMapError(path, line, f"id must be an integer, found {item.id!r}")
            # Classification labels (labels.txt) are 0-based indices, so 0 is fine there.
            if item.id < 0 or (item.id == 0 and item.name != "background" and not index_ids):
                raise LabelMapError(
                    path, line,
                    f"id {item.id} for {item.name!r}: ids must be >= 1 "
                    "(0 is reserved for 'background')",
                )
            if not item.name:
                raise LabelMapError(path, line, f"id {item.id} has an empty name")
            if item.id in ids:
                raise LabelMapError(path, line, f"duplicate id {item.id} (also item {ids[item.id] + 1})")
            if item.name in names:
                raise LabelMapError(
                    path, line, f"duplicate name {item.name!r} (also item {names[item.name] + 1})"
                )
            ids[item.id] = i
            names[item.name] = i
        self._index_by_id = ids
        self._index_by_name = names

    # ------------------------------------------------------------- construction

    @classmethod
    def from_names(cls, names: Iterable[str], *, start: int = 1) -> "LabelMap":
        """Ids `start, start+1, ...` in the given order; display_name = name.
        `start=0` gives 0-based index ids (classification labels)."""
        return cls((LabelItem(start + i, n, n) for i, n in enumerate(names)),
                   index_ids=start == 0)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, str]]) -> "LabelMap":
        return cls(LabelItem(i, n, n) for i, n in pairs)

    # ------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and self.items == other.items

    def __repr__(self) -> str:
        return f"LabelMap({list(self.items)!r})"

    @property
    def ids(self) -> list[int]:
        return [item.id for item in self.items]

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    def __contains__(self, label_id: object) -> bool:
        return label_id in self._index_by_id

    def name_of(self, label_id: int) -> str:
        return self.items[self._index_by_id[label_id]].name

    def id_of(self, name: str) -> int:
        return self.items[self._index_by_name[name]].id

    def index_of(self, label_id: int) -> int:
        """The contiguous 0-based index of `label_id` in label order."""
        return self._index_by_id[label_id]

    # ------------------------------------------------------------- pbtxt

    def to_pbtxt(self) -> str:
        out = []
        for item in self.items:
            out.append("item {\n")
            out.append(f"  id: {item.id}\n")
            out.append(f"  name: {_quote(item.name)}\n")
            if item.display_name is not None:
                out.append(f"  display_name: {_quote(item.display_name)}\n")
            out.append("}\n")
        return "".join(out)

    @classmethod
    def from_pbtxt(cls, text: str, *, path: str | Path | None = None) -> "LabelMap":
        return _parse_pbtxt(text, path)

    @classmethod
    def read_pbtxt(cls, path: str | Path) -> "LabelMap":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LabelMapError(path, None, f"cannot read: {e}") from None
        return _parse_pbtxt(text, path)

    def write_pbtxt(self, path: str | Path) -> None:
        Path(path).write_text(self.to_pbtxt(), encoding="utf-8")

    # ------------------------------------------------------------- labels.txt

    def to_labels_txt(self) -> str:
        for item in self.items:
            if "\n" in item.name or "\r" in item.name or item.name != item.name.strip():
                raise LabelMapError(
                    None, None, f"name {item.name!r} cannot be written to labels.txt "
                    "(line breaks or surrounding spaces)"
                )
        return "".join(f"{item.name}\n" for item in self.items)

    @classmethod
    def from_labels_txt(cls, text: str, *, start: int = 0,
                        path: str | Path | None = None) -> "LabelMap":
        """Names one per line; ids `start, start+1, ...` (0-based by default, as
        classification labels are; a `background` line may take id 0)."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        names = []
        for number, line in enumerate(lines, start=1):
            name = line.rstrip("\r")
            if not name.strip():
                raise LabelMapError(path, number, "empty line (expected one class name per line)")
            if name != name.strip():
                raise LabelMapError(path, number, f"name {name!r} has surrounding spaces")
            names.append(name)
        if not names:
            raise LabelMapError(path, None, "no class names")
        items = [LabelItem(start + i, n) for i, n in enumerate(names)]
        return cls(items, path=path, lines=range(1, len(items) + 1), index_ids=True)

    @classmethod
    def read_labels_txt(cls, path: str | Path, *, start: int = 0) -> "LabelMap":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LabelMapError(path, None, f"cannot read: {e}") from None
        return cls.from_labels_txt(text, start=start, path=path)

    def write_labels_txt(self, path: str | Path) -> None:
        Path(path).write_text(self.to_labels_txt(), encoding="utf-8")


def _quote(s: str) -> str:
    escaped = (
        s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        .replace("\r", "\\r").replace("\t", "\\t")
    )
    return f"'{escaped}'"


_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<comment>\#[^\n]*)
    |(?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    |(?P<num>-?\d+)|(?P<ident>[A-Za-z_][A-Za-z_0-9]*)|(?P<punct>[{}:])""",
    re.VERBOSE,
)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), body)


def _tokens(text: str, path):
    line, pos = 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise LabelMapError(path, line, f"unexpected text {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind == "nl":
            line += 1
        elif kind not in ("ws", "comment"):
            yield kind, m.group(), line
        pos = m.end()


def _parse_pbtxt(text: str, path) -> LabelMap:
    toks = list(_tokens(text, path))
    items, lines = [], []
    i = 0

    def expect(kind: str, value: str | None = None):
        nonlocal i
        if i >= len(toks):
            last = toks[-1][2] if toks else 1
            raise LabelMapError(path, last, f"unexpected end of file (expected {value or kind})")
        k, v, ln = toks[i]
        if k != kind or (value is not None and v != value):
            raise LabelMapError(path, ln, f"expected {value or kind}, found {v!r}")
        i += 1
        return v, ln

    while i < len(toks):
        _, start_line = expect("ident", "item")
        expect("punct", "{")
        fields: dict[str, object] = {}
        while True:
            if i < len(toks) and toks[i][1] == "}":
                i += 1
                break
            name, ln = expect("ident")
            if name not in ("id", "name", "display_name"):
                raise LabelMapError(
                    path, ln, f"unknown field {name!r} (expected id, name or display_name)"
                )
            if name in fields:
                raise LabelMapError(path, ln, f"field {name!r} given twice in one item")
            expect("punct", ":")
            if name == "id":
                fields[name] = int(expect("num")[0])
            else:
                fields[name] = _unquote(expect("str")[0])
        if "id" not in fields or "name" not in fields:
            raise LabelMapError(path, start_line, "item needs both id and name")
        items.append(LabelItem(fields["id"], fields["name"], fields.get("display_name")))
        lines.append(start_line)
    if not items:
        raise LabelMapError(path, None, "no items")
    return LabelMap(items, path=path, lines=lines)
