"""What the line readers share: blocks of whole lines, the note for an unterminated last line, a
line found by its number (error messages only), and typed columns filled a block of lines at a time. The readers split
about 1 MB of lines at a time, never the whole log: a million-line log split into one list
costs about 100 bytes a line before any value is read."""
from __future__ import annotations

import operator
import sys
from array import array
from itertools import repeat

import numpy as np

_NONE = type(None)
POSSESSIVE = sys.version_info >= (3, 11)   # regular expressions take possessive quantifiers (*+) from 3.11 on


def unterminated_note(number: int, line: str) -> str:
    """The note for a last line without its newline, which every line reader sets aside: a writer
    caught mid-line leaves one, and its cut can still parse (``3001,0`` of ``3001,0.355``)."""
    shown = line if len(line) <= 40 else line[:37] + "..."
    return (f"set aside the unterminated last line {number} ({shown!r}): a log still being written "
            "ends mid-line, and a complete row ends with a newline")


BLOCK_CHARS = 1 << 20   # the lines of about 1 MB of text are read together


def whole_lines(text: str) -> tuple[int, tuple[str, ...]]:
    """Where ``text``'s newline-terminated lines end, and the note when an unterminated last line
    after them is set aside."""
    end = text.rfind("\n") + 1
    last = text[end:]
    return end, ((unterminated_note(text.count("\n", 0, end) + 1, last),) if last.strip() else ())


def line_blocks(text: str, end: int):
    """(number of the first line, the block, its number of lines) for blocks of about BLOCK_CHARS
    of whole lines of ``text[:end]`` (``end`` just after a line break), each without its last
    line break."""
    start, number = 0, 1
    while start < end:
        stop = text.find("\n", min(start + BLOCK_CHARS, end - 1))
        block = text[start:stop]
        count = block.count("\n") + 1
        yield number, block, count
        start, number = stop + 1, number + count


def first_lines(text: str, count: int) -> list[str]:
    """The first ``count`` lines of ``text`` (fewer when it has fewer), without copying the rest
    of it as ``split("\\n", count)`` does."""
    lines, start = [], 0
    while len(lines) < count:
        end = text.find("\n", start)
        if end < 0:
            lines.append(text[start:])
            break
        lines.append(text[start:end])
        start = end + 1
    return lines


def line_number(text: str, number: int) -> str:
    """Line ``number`` (1-based) of ``text``; for error messages only (it scans the text)."""
    start = 0
    for _ in range(number - 1):
        start = text.find("\n", start) + 1
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def raw_bytes(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` as ``dtype``, seen as bytes for ``array.frombytes`` (no copy when they already
    are ``dtype`` and contiguous; ``tobytes`` would copy them)."""
    return np.ascontiguousarray(values, dtype=dtype).view(np.uint8)


class Column:
    """The values one key took, row by row: floats in a typed array while every value is a
    number (8 bytes each), Python objects from the first one that is not. The rows are kept
    only once the key misses one (a dense column's rows are 0, 1, 2, ...)."""

    __slots__ = ("rows", "count", "numbers", "objects", "whole")

    def __init__(self):
        self.rows: array | None = None
        self.count = 0
        self.numbers = array("d")
        self.objects: list | None = None
        self.whole = True   # every value an int: the column reads as integers, as pandas would

    def add(self, row: int, value) -> None:
        if self.rows is not None:
            self.rows.append(row)
        elif row != self.count:
            self.rows = array("q", range(self.count))
            self.rows.append(row)
        self.count += 1
        if self.objects is None:
            kind = type(value)
            if kind is float or kind is int:   # bool is neither
                try:
                    self.numbers.append(value)
                    self.whole &= kind is int
                    return
                except OverflowError:   # an int beyond float range
                    pass
            self.objects = list(self.numbers)
        self.objects.append(value)

    def extend(self, first_row: int, values: list) -> None:
        """``add`` for the consecutive rows from ``first_row`` on (None: not logged there): a block
        of numbers into a column of numbers is converted by numpy at once; anything else goes
        value by value."""
        kinds = set(map(type, values))
        missing = _NONE in kinds
        kinds.discard(_NONE)
        if self.objects is None and kinds <= {int, float}:
            try:
                numbers = np.array(values, dtype=np.float64)   # None -> NaN, left out below
            except OverflowError:   # an int beyond float range: an object
                numbers = None
            if numbers is not None:
                at = np.flatnonzero(np.fromiter(map(operator.is_not, values, repeat(None)), bool, len(values))) \
                    if missing else np.arange(len(values))
                self.extend_numbers(first_row + at, numbers[at], float not in kinds)
                return
        for row, value in enumerate(values, first_row):
            if value is not None:
                self.add(row, value)

    def extend_numbers(self, rows: np.ndarray, numbers: np.ndarray, whole: bool) -> None:
        """``numbers`` (float64) logged at ``rows`` (increasing, after every row already held)
        into a column that holds no object; ``whole``: every one of them was an int."""
        if self.rows is None and len(rows) and rows[-1] != self.count + len(rows) - 1:
            self.rows = array("q", range(self.count))   # the key missed a row: rows are kept from now on
        if self.rows is not None:
            self.rows.frombytes(raw_bytes(rows, np.int64))
        self.numbers.frombytes(raw_bytes(numbers, np.float64))
        self.count += len(rows)
        self.whole &= whole

    def row_indices(self) -> np.ndarray | slice:
        return slice(0, self.count) if self.rows is None else np.frombuffer(self.rows, dtype=np.int64)

    def values(self, count: int) -> np.ndarray:
        """The column over ``count`` rows: NaN (or None) where the key was not logged."""
        rows = self.row_indices()
        if self.objects is not None:
            out = np.full(count, None, dtype=object)
            out[rows] = self.objects
            return out
        numbers = np.frombuffer(self.numbers, dtype=np.float64) if self.count else np.zeros(0)
        if self.count == count:
            # ints as int64, unless float64 rounded one to 2^63 or beyond (2^63 - 1 rounds up), which int64 would wrap
            fits = self.whole and (not count or -2.0 ** 63 <= numbers.min() and numbers.max() < 2.0 ** 63)
            return numbers.astype(np.int64) if fits else numbers
        out = np.full(count, np.nan)
        out[rows] = numbers
        return out

    def present(self, count: int) -> np.ndarray:
        mask = np.zeros(count, dtype=bool)
        mask[self.row_indices()] = True
        return mask
