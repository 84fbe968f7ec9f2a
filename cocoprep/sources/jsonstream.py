"""A pull reader for one big JSON object whose large values are arrays.

It keeps only a window of the text and hands the elements of the top-level arrays
to a handler one at a time, so a 450 MB COCO annotation file never exists as one
tree of Python dicts. With `drop_polygons`, polygon segmentations are cut out of the
text before decoding (most of a COCO file's bytes; boxes-only needs none of them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from cocoprep.errors import InputError


def typename(v: Any) -> str:
    """A JSON value's type, as a message names it ("a list", "null", ...)."""
    if v is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


_WS = re.compile(r"[ \t\n\r]*")
_SEGMENTATION_KEY = '"segmentation"'
# A polygon segmentation: a list (of lists) of numbers. Greedy over the characters
# numbers and lists are made of, then back to its last `]`: the key that follows
# (after `,`) starts with `"`, which stops the run. RLE ({...}) never matches.
_POLYGONS = re.compile(r'"segmentation"\s*:\s*\[[-+0-9.eE,\s\[\]]*\]')


def _drop_polygons(text: str) -> str:
    if "\n" in text:  # keep line numbers right for error messages
        return _POLYGONS.sub(lambda m: '"segmentation":0' + "\n" * m.group().count("\n"), text)
    return _POLYGONS.sub('"segmentation":0', text)


# What a JSON text that is not an object starts with, for the error message.
_TOP_LEVEL = {"[": "a JSON list ('[')", '"': "a JSON string", "t": "true", "f": "false",
              "n": "null", "-": "a number", **{d: "a number" for d in "0123456789"}}


# A value this close to the end of the window is decoded again with more text: a
# number cut by a read can look complete ("0." decodes as 0).
_NUMBER_TAIL = 32


def _found(c: str) -> str:
    return repr(c) if c else "the end of the file"


class JsonStream:
    """A minimal pull reader for one JSON object whose big values are arrays:
    it keeps only a window of the text and decodes one element at a time."""

    CHUNK = 1 << 23
    RUN_MIN = 1 << 20  # read on before decoding a run when less text than this is left

    def __init__(self, f, path: Path, progress: Callable[[int], None] | None = None, *,
                 drop_polygons: bool = False):
        self.f, self.path, self.progress = f, path, progress
        self.buf, self.pos, self.eof = "", 0, False
        self.line_base, self.char_base = 1, 0
        self.decode = json.JSONDecoder().raw_decode
        self.drop_polygons = drop_polygons
        self._carry = ""
        self._no_run_before = 0  # absolute offset: a run that failed to decode ends here

    def _read(self) -> str:
        try:
            data = self.f.read(self.CHUNK)
        except UnicodeDecodeError as e:
            raise InputError(self.path, "UTF-8 encoded JSON", f"undecodable bytes ({e.reason})") from None
        if self.progress is not None:
            self.progress(len(data))
        return data

    def _read_text(self) -> str:
        """The next piece of text ('' at the end). With `drop_polygons`, polygon
        segmentations are cut out of the text before it is decoded: they are most of
        a COCO file's bytes and all of its numbers, and boxes-only needs none of them.
        Text from the last `"segmentation"` key on waits for the next read, so every
        polygon list that is cut is complete."""
        if not self.drop_polygons:
            return self._read()
        while True:
            data = self._read()
            if not data:
                text, self._carry = self._carry, ""
                return _drop_polygons(text)
            text = self._carry + data
            cut = text.rfind(_SEGMENTATION_KEY)
            if cut < 0:
                cut = len(text)
            text, self._carry = text[:cut], text[cut:]
            if text:
                return _drop_polygons(text)

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self._read_text()
        if not data:
            self.eof = True
            return False
        if self.pos:
            self.line_base += self.buf.count("\n", 0, self.pos)
            self.char_base += self.pos
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def _where(self, pos: int) -> str:
        line = self.line_base + self.buf.count("\n", 0, pos)
        last_nl = self.buf.rfind("\n", 0, pos)
        col = pos - last_nl if last_nl >= 0 else pos + 1 + (self.char_base if line == 1 else 0)
        return f"line {line} column {col}"

    def error(self, expected: str, found: str, pos: int | None = None) -> InputError:
        """`path: expected <expected> at line L column C, found <found>`."""
        pos = self.pos if pos is None else pos
        return InputError(self.path, f"{expected} at {self._where(pos)}", found)

    def peek(self) -> str:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self.decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                near_end = e.pos >= len(self.buf) - 8 or e.msg.startswith("Unterminated string")
                if not self.eof and near_end:
                    self._more()
                    continue
                if self.eof and (e.pos >= len(self.buf.rstrip())
                                 or e.msg.startswith("Unterminated string")):
                    raise self.error("the rest of the JSON", "the end of the file "
                                     "(truncated?)", e.pos) from None
                raise self.error("valid JSON", f"a syntax error ({e.msg})", e.pos) from None
            except RecursionError:
                raise self.error("JSON values nested less deeply", "values nested too "
                                 "deeply for Python's JSON decoder") from None
            if end + _NUMBER_TAIL >= len(self.buf) and not self.eof and self._more():
                continue  # a number may continue in the next chunk ("100." + "5")
            self.pos = end
            return obj

    def _run_of_elements(self) -> list | None:
        """The array elements from here to the last `}` followed by `,` in the
        window, decoded by one call of the C decoder, or None (fewer than two objects
        in view, or that text is not a run of whole elements: a `},` inside a string
        or a nested value never decodes as one, and the caller then reads one element
        at a time, which also names any syntax error exactly). The position is left
        on the `,` after the run."""
        self.peek()
        if len(self.buf) - self.pos < self.RUN_MIN and not self.eof:
            self._more()
        start = self.pos
        if self.char_base + start < self._no_run_before:
            return None
        cut = self.buf.rfind("},", start)
        if cut < 0 or self.buf.find("},", start, cut) < 0:
            return None
        try:
            elements = json.loads("[" + self.buf[start:cut + 1] + "]")
        except (ValueError, RecursionError):
            self._no_run_before = self.char_base + cut + 1
            return None
        self.pos = cut + 1
        return elements

    def expect(self, char: str, what: str) -> None:
        c = self.peek()
        if c != char:
            raise self.error(what, _found(c))
        self.pos += 1

    def read_object(self, handlers: dict[str, Callable[[Any, int], None]],
                    seen_keys: set[str], other_keys: set[str] | None = None) -> None:
        """Read the top-level object, passing each element of a handled key's list to
        its handler; handled keys go into `seen_keys`, the others into `other_keys`."""
        c = self.peek()
        if c != "{":
            if not c:
                raise InputError(self.path, "a JSON object", "an empty file")
            raise self.error("a JSON object ('{') with images, annotations and categories",
                             _TOP_LEVEL.get(c, repr(c)))
        self.pos += 1
        first = True
        while True:
            c = self.peek()
            if c == "}":
                self.pos += 1
                break
            if not first:
                self.expect(",", "',' or '}'")
                c = self.peek()
            first = False
            if c != '"':
                raise self.error("a key in double quotes", _found(c))
            key = self.value()
            self.expect(":", "':'")
            handler = handlers.get(key)
            if handler is None:
                self.value()  # info, licenses, ...: not needed
                if other_keys is not None:
                    other_keys.add(key)
                continue
            if self.peek() != "[":
                found = self.value()
                raise InputError(self.path, f"{key!r} to be a list", typename(found))
            seen_keys.add(key)
            self.pos += 1
            if self.peek() == "]":
                self.pos += 1
                continue
            i = 0
            while True:
                batch = self._run_of_elements()
                if batch is None:
                    handler(self.value(), i)
                    i += 1
                else:
                    for element in batch:
                        handler(element, i)
                        i += 1
                c = self.peek()
                if c == ",":
                    self.pos += 1
                elif c == "]":
                    self.pos += 1
                    break
                else:
                    raise self.error(f"',' or ']' after {key}[{i - 1}]", _found(c))
        if self.peek():
            raise self.error("the end of the file after the top-level object", "more data")

