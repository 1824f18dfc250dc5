"""JSON logs: a list of per-step records, a dict of equal-length lists, a document holding one
list of records (Hugging Face ``trainer_state.json`` keeps them under ``log_history``), or JSON
lines with one record per line. A key missing from a record, or null, means "not logged at
that step"; NaN and Infinity literals are values."""
from __future__ import annotations

import json
import re
from array import array

import numpy as np
import pandas as pd

from ...errors import InputError
from ..tables import Table
from .lines import Column, line_number, numbered_lines, unterminated_note

RECORD_KEYS = ("log_history", "history", "records", "metrics", "logs", "steps")
_DECODER = json.JSONDecoder()


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


def read_jsonl(text: str, source: str) -> Table:
    """One row per line, decoded straight into columns (no list of records is kept)."""
    columns: dict[str, Column] = {}
    line_of = array("q")
    notes = ()
    scan = _DECODER.scan_once  # the C scanner json.loads ends in, without its per-call wrappers
    for number, line, terminated in numbered_lines(text):
        if not terminated:
            notes = (unterminated_note(number, line),) if line.strip() else ()
            break
        try:
            record, end = scan(line, 0)
            if end != len(line) and line[end:].strip(" \t\r"):  # JSON's whitespace only
                raise ValueError("trailing text")
        except (StopIteration, ValueError):  # blank, indented, malformed: json.loads decides
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _decode_error(source, exc, number - 1) from None
        row = len(line_of)
        if not isinstance(record, dict):
            raise InputError(source, f"record {row} is a {type(record).__name__}, not an object of metrics", number, 1)
        for key, value in record.items():
            column = columns.get(key)
            if column is None:   # in order of first appearance, as pandas orders records' keys
                column = columns[key] = Column()
            if value is not None:
                column.add(row, value)
        line_of.append(number)
    count = len(line_of)
    if not count:
        raise InputError(source, "empty file: no JSON records")

    def locate_key(row: int, column: str | None):
        pos = line_number(text, line_of[row]).find(json.dumps(column)) if column else 0
        return line_of[row], max(pos, 0) + 1

    frame = pd.DataFrame({str(key): column.values(count) for key, column in columns.items()}, index=range(count))
    present = {str(key): column.present(count) for key, column in columns.items()}
    return Table(frame=frame, locate=locate_key, notes=notes, present=present)
