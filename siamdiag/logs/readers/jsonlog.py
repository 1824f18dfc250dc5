"""JSON logs: a list of per-step records, a dict of equal-length lists, a document holding one
list of records (Hugging Face ``trainer_state.json`` keeps them under ``log_history``), or JSON
lines with one record per line. A key missing from a record, or null, means "not logged at
that step"; NaN and Infinity literals are values."""
from __future__ import annotations

import json
import re
from array import array
from itertools import chain, repeat

import numpy as np
import pandas as pd

from ...errors import InputError
from ..tables import Table
from .lines import Column, line_blocks, line_number, whole_lines

RECORD_KEYS = ("log_history", "history", "records", "metrics", "logs", "steps")


def _decode_error(source: str, exc: json.JSONDecodeError, line_offset: int = 0) -> InputError:
    return InputError(source, f"invalid JSON: {exc.msg}", exc.lineno + line_offset, exc.colno)


def _key_position(text: str, key: str, occurrence: int) -> tuple[int | None, int | None]:
    """Line and column of the ``occurrence``-th (0-based) '"key":' in the text."""
    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    for k, m in enumerate(pattern.finditer(text)):
        if k == occurrence:
            return text.count("\n", 0, m.start()) + 1, m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    return None, None


def records_table(records: list, source: str, locate_key, notes: tuple[str, ...] = ()) -> Table:
    """One row per record; ``present`` tells a key that was logged as NaN from one that was absent."""
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            line, col = locate_key(i, None)
            raise InputError(source, f"record {i} is a {type(rec).__name__}, not an object of metrics", line, col)
    frame = pd.DataFrame.from_records(records)
    frame.columns = [str(c) for c in frame.columns]
    present = {c: np.fromiter((rec.get(c) is not None for rec in records), bool, len(records))
               for c in frame.columns}
    return Table(frame=frame, locate=locate_key, notes=notes, present=present)


def _document_records(doc, source: str):
    """The records of a JSON document, or a dict of lists turned into columns."""
    if isinstance(doc, list):
        return doc, None
    if not isinstance(doc, dict):
        raise InputError(source, f"a JSON {type(doc).__name__} is not a loss log: expected records or a dict of lists", 1, 1)
    for key in RECORD_KEYS:
        value = doc.get(key)
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            return value, None
    lists = {k: v for k, v in doc.items() if isinstance(v, list) and v and not isinstance(v[0], (dict, list))}
    if not lists:
        raise InputError(source, "no list of records and no lists of values in this JSON document", 1, 1)
    return None, lists


def read_json(text: str, source: str) -> Table:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _decode_error(source, exc) from None
    records, columns = _document_records(doc, source)
    if records is not None:
        def locate_key(row: int, column: str | None):
            if column is None:
                return None, None
            occurrence = sum(1 for rec in records[:row] if isinstance(rec, dict) and column in rec)
            return _key_position(text, column, occurrence)

        return records_table(records, source, locate_key)
    lengths = {k: len(v) for k, v in columns.items()}
    n = max(lengths.values())
    frame = pd.DataFrame({k: v for k, v in columns.items() if len(v) == n})
    notes = ()
    short = sorted(k for k, length in lengths.items() if length != n)
    if short:
        notes = (f"ignored lists shorter than {n} values: {', '.join(short)}",)
    present = {c: np.array([v is not None for v in columns[c]]) for c in frame.columns}
    return Table(frame=frame, locate=lambda row, column: _key_position(text, column, 0), notes=notes, present=present)


_MARK = "siamdiag: a line ends here"
_BETWEEN_LINES = f',\n"{_MARK}",\n'


def _records_at_once(block: str, count: int) -> list | None:
    """The records of the ``count`` lines of ``block`` when every line holds one JSON object and
    nothing else (JSON's whitespace aside), decoded in one call: the lines as one array, a marker
    string between each two. A marker at every other place of the array proves the lines apart:
    it cannot come from a line, since the block does not hold it and cannot spell it (no \\u
    escape). None otherwise (a blank line, another value, bad JSON): read line by line."""
    if _MARK in block or "\\u" in block:
        return None
    try:
        values = json.loads("[" + block.replace("\n", _BETWEEN_LINES) + "]")
    except ValueError:
        return None
    records = values[::2]
    if len(values) != 2 * count - 1 or values[1::2].count(_MARK) != count - 1 or set(map(type, records)) != {dict}:
        return None
    return records


def _records_by_line(block: str, first_number: int, first_row: int, source: str) -> tuple[list, list[int]]:
    """The records of ``block``'s lines one line at a time, and their line numbers: blank lines
    are skipped, a line that is not one JSON object is an error at its line and column."""
    records, numbers = [], []
    for number, line in enumerate(block.split("\n"), first_number):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _decode_error(source, exc, number - 1) from None
        if not isinstance(record, dict):
            raise InputError(source, f"record {first_row + len(records)} is a {type(record).__name__}, "
                             "not an object of metrics", number, 1)
        records.append(record)
        numbers.append(number)
    return records, numbers


def read_jsonl(text: str, source: str) -> Table:
    """One row per line, a block of lines at a time straight into columns (no list of every
    record is kept). An unterminated last line is set aside with a note."""
    columns: dict[str, Column] = {}
    line_of = array("q")
    body_end, notes = whole_lines(text)
    for number, block in line_blocks(text, body_end):
        count = block.count("\n") + 1
        records = _records_at_once(block, count)
        if records is None:
            records, numbers = _records_by_line(block, number, len(line_of), source)
        else:
            numbers = range(number, number + count)
        for key in dict.fromkeys(chain.from_iterable(records)):   # in order of first appearance, as pandas orders them
            column = columns.get(key) or columns.setdefault(key, Column())
            column.extend(len(line_of), list(map(dict.get, records, repeat(key))))
        line_of.extend(numbers)
    count = len(line_of)
    if not count:
        raise InputError(source, "empty file: no JSON records")

    def locate_key(row: int, column: str | None):
        pos = line_number(text, line_of[row]).find(json.dumps(column)) if column else 0
        return line_of[row], max(pos, 0) + 1

    frame = pd.DataFrame({str(key): column.values(count) for key, column in columns.items()}, index=range(count))
    present = {str(key): column.present(count) for key, column in columns.items()}
    return Table(frame=frame, locate=locate_key, notes=notes, present=present)
