"""JSON logs: a list of per-step records, a dict of equal-length lists, a document holding one
list of records (Hugging Face ``trainer_state.json`` keeps them under ``log_history``), or JSON
lines with one record per line. A key missing from a record, or null, means "not logged at
that step"; NaN and Infinity literals are values."""
from __future__ import annotations

import io
import json
import re
from array import array
from functools import lru_cache
from itertools import accumulate, chain, repeat

import numpy as np
import pandas as pd

from ...errors import InputError
from ..tables import Table
from .delimited import EXACT_FLOATS
from .lines import POSSESSIVE, Column, line_blocks, line_number, raw_bytes, whole_lines

RECORD_KEYS = ("log_history", "history", "records", "metrics", "logs", "steps")
INT64_DIGITS, INT64_END = 19, 2 ** 63


def json_int(text: str) -> int | float:
    """A JSON integer as json.loads reads one when it fits an int64; beyond, the float its digits
    spell, correctly rounded (±inf beyond float64's ~1.8e308), as a float literal reads. Such ints
    end up as floats anyway, and pandas versions disagree on how: 2.2 raised OverflowError beyond
    the float range and rounded others by its own parser, 3 reads inf; and Python refuses to make
    an int of over 4,300 digits at all."""
    if len(text) - text.startswith("-") <= INT64_DIGITS:
        value = int(text)
        if -INT64_END <= value < INT64_END:
            return value
    return float(text)


def json_loads(text: str):
    """json.loads, integers read by ``json_int``."""
    return json.loads(text, parse_int=json_int)


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
        doc = json_loads(text)
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
        values = json_loads("[" + block.replace("\n", _BETWEEN_LINES) + "]")
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
            record = json_loads(line)
        except json.JSONDecodeError as exc:
            raise _decode_error(source, exc, number - 1) from None
        if not isinstance(record, dict):
            raise InputError(source, f"record {first_row + len(records)} is a {type(record).__name__}, "
                             "not an object of metrics", number, 1)
        records.append(record)
        numbers.append(number)
    return records, numbers


# A JSON number, as json.loads reads one (NaN and Infinity aside: those lines take the slow path).
# Possessive quantifiers (Python 3.11 on) match the same numbers faster (no backtracking state).
_NUMBER_PLAIN = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+|)(?:[eE][-+]?[0-9]+|)"
_NUMBER_POSSESSIVE = r"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+"
_NUMBER = _NUMBER_POSSESSIVE if POSSESSIVE else _NUMBER_PLAIN
_OPENING = re.compile(r"[ \t]*\{")
_MEMBER = re.compile(r'[ \t]*"([^"\\\x00-\x1f]*)"[ \t]*:[ \t]*(' + _NUMBER + r")[ \t]*([,}])")
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_TOKEN = "[-+.eE0-9]+" + "+" * POSSESSIVE   # a run of the characters numbers are written with
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0"):ord("9") + 1] = True
_ALL_BYTES = frozenset(range(256))


def _skeleton(line: str) -> tuple[list[str], list[str]] | None:
    """The keys of ``line`` and the text around its values (``len(keys) + 1`` pieces) when the
    line is one JSON object whose values are all numbers (not NaN or Infinity) under distinct
    keys without escapes; None otherwise."""
    opening = _OPENING.match(line)
    if opening is None:
        return None
    keys, literals, start, pos = [], [], 0, opening.end()
    while True:
        member = _MEMBER.match(line, pos)
        if member is None:
            return None
        keys.append(member[1])
        literals.append(line[start:member.start(2)])
        start, pos = member.end(2), member.end()
        if member[3] == "}":
            break
    if line[pos:].strip(" \t") or len(set(keys)) != len(keys):
        return None
    literals.append(line[start:])
    return keys, literals


@lru_cache(maxsize=256)
def _line_form(literals: tuple[str, ...]) -> tuple[re.Pattern, tuple[tuple[str, int], ...]]:
    """The pattern of lines made of the texts ``literals`` with a run of number characters
    between each two (a whole run: the texts end in a colon or a space and start with a space, a
    comma or a brace), and the characters a number may hold that these texts hold too (in keys),
    each with how many times a line holds it."""
    line = re.escape(literals[0]) + "".join(_TOKEN + re.escape(literal) for literal in literals[1:])
    template = "".join(literals)
    shared = tuple((char, template.count(char)) for char in sorted(_NUMBER_CHARS.intersection(template)))
    return re.compile(f"{line}(?:\n{line})*" + "+" * POSSESSIVE), shared


@lru_cache(maxsize=256)
def _csv_form(literals: tuple[str, ...], absent: str) -> tuple[bytes, bytes, list[int] | None]:
    """How lines made of ``literals`` and numbers become CSV bytes: every byte but a number's, a
    comma and a line break is deleted, and so is each character of ``absent`` (key characters
    that no number of these lines holds). When characters of keys are left, the colons are kept
    too, as commas: each key's characters then make fields of their own, for the value of a JSON
    member follows its colon and ends at the comma or brace after it. bytes.translate's table and
    deletions, and the CSV columns of the values (None when the CSV has no other column)."""
    kept = set(b"0123456789.eE+-,\n") - set(absent.encode())
    if any(literal.encode().translate(None, bytes(_ALL_BYTES - kept)).replace(b",", b"") for literal in literals):
        kept.add(ord(":"))
    table, delete = bytes.maketrans(b":", b","), bytes(sorted(_ALL_BYTES - kept))
    columns = list(accumulate(literal.encode().translate(table, delete).count(b",") for literal in literals[:-1]))
    return table, delete, None if columns == list(range(len(columns))) else columns


def _spelled_as_json(csv: bytes) -> bool:
    """Whether no field of ``csv`` (runs of number characters apart by commas and line breaks)
    is one that pandas reads as a number and json refuses: pandas' parsers also take a leading
    '+' or zero ('+1', '007', '-01.5') and a point with a digit on one side only ('1.', '.5',
    '1.e5'); in what both read, signs, points and exponents are where JSON has them. (A point
    with no digit beside it is in no number pandas reads: a key's, as in 'train.loss'.)"""
    b = np.frombuffer(b"\n" + csv + b"\n", dtype=np.uint8)   # every field follows a comma or a line break
    points = np.flatnonzero(b == ord("."))
    if (_DIGIT[b[points - 1]] != _DIGIT[b[points + 1]]).any():
        return False
    starts = np.flatnonzero((b == ord(",")) | (b == ord("\n"))) + 1
    first = b[starts[:-1]]   # (the last line break starts no field)
    lead = starts[:-1] + (first == ord("-"))   # where a field's digits start
    zeros = lead[b[lead] == ord("0")]   # (never the last byte, a line break)
    return not ((first == ord("+")).any() or _DIGIT[b[zeros + 1]].any())


def _numbers_at_once(block: str, count: int) -> tuple[list[str], list[tuple[np.ndarray, bool]]] | None:
    """The keys and, key by key, the values (float64, and whether every one was an int) of the
    ``count`` lines of ``block`` when each line repeats the first one but for its numbers; None
    when that is not proven. The lines become CSV (bytes.translate), read by pandas' C parser.

    Proof: the block matches the first line's texts around its values with a run of number
    characters in each place, line after line (``_line_form``). A character that a number may
    hold and a key holds too is known absent from every number when the block holds it exactly
    as often as the keys of its lines do. Deleting every other byte then leaves each line's runs
    in order, apart by commas (``_csv_form``). Each run is a JSON number when pandas reads it as
    a number and it is spelled as JSON spells numbers (``_spelled_as_json``).

    Values: json.loads makes a number without fraction or exponent an int, any other a correctly
    rounded float; pandas reads a column of such ints as int64 (with one beyond int64: unsigned or
    text, refused) and any other column as correctly rounded floats. Refused where json's values
    would differ or might: -0.0 in a float column (an int written -0 reads so; json's 0 is +0.0),
    a non-finite value (an overflow), and whole values beyond 2^63 in a column without a fraction
    (ints too big for int64, which pandas might read as floats)."""
    first_end = block.find("\n")
    shape = _skeleton(block if first_end < 0 else block[:first_end])
    if shape is None:
        return None
    keys, literals = shape
    pattern, shared = _line_form(tuple(literals))
    if not pattern.fullmatch(block):
        return None
    raw = block.encode()
    codes = np.frombuffer(raw, dtype=np.uint8)   # (numpy counts a character several times faster than str.count)
    absent = "".join(char for char, per_line in shared if np.count_nonzero(codes == ord(char)) == per_line * count)
    table, delete, usecols = _csv_form(tuple(literals), absent)
    csv = raw.translate(table, delete)
    if not _spelled_as_json(csv):
        return None
    frame = pd.read_csv(io.BytesIO(csv), header=None, engine="c", na_filter=False, low_memory=False, usecols=usecols,
                        **EXACT_FLOATS)
    columns = [_as_json_reads(column.to_numpy()) for _, column in frame.items()]
    return None if None in columns else (keys, columns)


def _as_json_reads(values: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """A column pandas read from JSON numbers as float64 and whether all were ints, as the
    json-decoded column holds it; None where json's values would differ or might."""
    if values.dtype == np.int64:
        return values.astype(np.float64), True
    if values.dtype != np.float64 or not np.isfinite(values).all() or np.signbit(values[values == 0]).any():
        return None
    if not (abs(values) < 2.0 ** 63).all() and (values == np.trunc(values)).all():
        return None
    return values, False


def read_jsonl(text: str, source: str) -> Table:
    """One row per line, a block of lines at a time straight into columns (no list of every
    record is kept): a block of lines that repeat the first one's keys with other numbers through
    pandas, any other block decoded by json. An unterminated last line is set aside with a note."""
    columns: dict[str, Column] = {}
    line_of = array("q")
    body_end, notes = whole_lines(text)
    for number, block, count in line_blocks(text, body_end):
        at_once = _numbers_at_once(block, count)
        if at_once is not None and not any(key in columns and columns[key].objects is not None for key in at_once[0]):
            rows = np.arange(len(line_of), len(line_of) + count)
            for key, (values, whole) in zip(*at_once):
                (columns.get(key) or columns.setdefault(key, Column())).extend_numbers(rows, values, whole)
            line_of.frombytes(raw_bytes(np.arange(number, number + count), np.int64))
            continue
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

    frame = pd.DataFrame({str(key): column.values(count) for key, column in columns.items()}, index=range(count),
                         copy=False)   # the columns are made here: no block of them all copied
    present = {str(key): column.present(count) for key, column in columns.items()}
    return Table(frame=frame, locate=locate_key, notes=notes, present=present)
