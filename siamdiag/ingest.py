"""Read loss logs into runs: find the files, decode them, parse the table, split it by run.

Readers are registered by format name; each takes decoded text and returns a DataFrame of
strings-or-numbers. Every failure becomes an InputError naming file, line and column.
"""
from __future__ import annotations

import glob
import gzip
import io
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .columns import ColumnMap, ColumnOverrides, detect_columns
from .errors import InputError, UsageError

LOG_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
NONFINITE_TOKENS = {"nan": np.nan, "+nan": np.nan, "-nan": np.nan, "inf": np.inf, "+inf": np.inf,
                    "-inf": -np.inf, "infinity": np.inf, "+infinity": np.inf, "-infinity": -np.inf}


@dataclass(frozen=True)
class Metric:
    """The rows of one run where a metric was logged, in file order: steps may repeat or go
    backwards (resumed runs). Values may be non-finite (the loss really was NaN or inf)."""

    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class RawRun:
    """One run as logged: 'loss' always, 'grad_norm' and Siamese extras when present."""

    name: str
    source: str
    metrics: dict[str, Metric]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A parsed log: the frame, where its data rows sit in the file, and what was set aside."""

    frame: pd.DataFrame
    text: str
    delimiter: str
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Finding inputs


def expand_paths(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Files as given, every log inside a directory (recursively, sorted), glob matches, and
    '-' for stdin. A path that matches nothing is a usage error, not a silent skip."""
    found: list[str] = []
    for p in paths:
        if p == "-":
            found.append(p)
        elif os.path.isdir(p):
            inside = []
            for root, _dirs, files in os.walk(p):
                inside += [os.path.join(root, f) for f in files if f.lower().endswith(LOG_SUFFIXES)]
            found += sorted(inside)
        elif os.path.exists(p):
            found.append(p)
        elif any(ch in p for ch in "*?["):
            matches = sorted(m for m in glob.glob(p, recursive=True) if os.path.isfile(m))
            if not matches:
                raise UsageError(f"{p}: the pattern matches no file")
            found += matches
        else:
            raise UsageError(f"{p}: no such file or directory")
    if not found:
        raise UsageError("no runs found: the paths hold no .csv/.tsv logs (gzip accepted)")
    return found


def read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    return data


def decode(data: bytes, source: str) -> str:
    """gzip (by magic bytes, whatever the name), UTF-8 with or without BOM, CRLF -> LF."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(source, f"corrupt gzip stream ({exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(source, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); is this a loss log?",
                         line, column) from None
    if "\x00" in text:
        pos = text.index("\x00")
        raise InputError(source, "NUL byte in text; is this a loss log?", text.count("\n", 0, pos) + 1,
                         pos - (text.rfind("\n", 0, pos) + 1) + 1)
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------------------------
# Parsing delimited text


def data_line_numbers(text: str) -> list[int]:
    """1-based file line of each data row (header excluded, blank lines skipped), as pandas
    counts rows. Only computed on the error path."""
    lines = text.split("\n")
    numbers = [i + 1 for i, line in enumerate(lines) if line.strip()]
    return numbers[1:]


def field_column(line: str, delimiter: str, index: int) -> int:
    """1-based character column where field ``index`` (0-based) starts."""
    pos = 0
    for _ in range(index):
        nxt = line.find(delimiter, pos)
        if nxt < 0:
            return len(line) + 1
        pos = nxt + 1
    return pos + 1


def _parse_delimited(text: str, delimiter: str, source: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), sep=delimiter, engine="c", keep_default_na=False,
                           na_values=[""], skip_blank_lines=True, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(source, "empty file: no header row") from None
    except pd.errors.ParserError as exc:
        msg = str(exc)
        detail = msg.split("C error: ")[-1].strip()
        lines = text.split("\n")
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m and int(m.group(2)) <= len(lines):
            expected, line = int(m.group(1)), int(m.group(2))
            raise InputError(source, f"expected {expected} fields, found {m.group(3)}", line,
                             field_column(lines[line - 1], delimiter, expected)) from None
        m = re.search(r"row (\d+)", msg)
        rows = data_line_numbers(text)
        if m and rows:
            raise InputError(source, detail, rows[min(int(m.group(1)), len(rows) - 1)], 1) from None
        raise InputError(source, detail) from None


def _row_is_valid(line: str, frame: pd.DataFrame, delimiter: str) -> bool:
    """Does an unterminated last line look complete: right field count, numbers where the
    body has numbers?"""
    fields = line.split(delimiter)
    if len(fields) != len(frame.columns):
        return False
    for value, column in zip(fields, frame.columns):
        value = value.strip()
        if value and pd.api.types.is_numeric_dtype(frame[column]) and _to_float(value) is None:
            return False
    return True


def _to_float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return NONFINITE_TOKENS.get(token.strip().lower())


def parse_delimited(text: str, source: str, delimiter: str | None = None) -> Table:
    """Parse CSV/TSV text with a header row. An unterminated last line that is incomplete
    (a writer caught mid-line) is set aside with a note rather than failing the file."""
    if not text.strip():
        raise InputError(source, "empty file: no header row")
    header = text.lstrip("\n").split("\n", 1)[0]
    if delimiter is None:
        delimiter = "\t" if header.count("\t") > header.count(",") else ","
    notes: list[str] = []
    body = text
    last = ""
    if not text.endswith("\n") and "\n" in text.strip("\n"):
        body, last = text.rsplit("\n", 1)
        body += "\n"
    frame = _parse_delimited(body, delimiter, source)
    if last:
        if _row_is_valid(last, frame, delimiter):
            tail = _parse_delimited(header + "\n" + last + "\n", delimiter, source)
            frame = pd.concat([frame, tail], ignore_index=True)  # no second parse of the body
            body += last + "\n"
        else:
            notes.append(f"ignored the incomplete last line {text.count(chr(10)) + 1} "
                         "(the log is probably still being written)")
    return Table(frame=frame, text=body, delimiter=delimiter, notes=tuple(notes))


READERS: dict[str, Callable[[str, str], Table]] = {
    "csv": lambda text, source: parse_delimited(text, source, ","),
    "tsv": lambda text, source: parse_delimited(text, source, "\t"),
    "auto": lambda text, source: parse_delimited(text, source, None),
}


def format_for(path: str) -> str:
    name = path.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".csv"):
        return "csv"
    return "auto"


# ---------------------------------------------------------------------------------------------
# From a table to runs


def numeric_column(table: Table, column: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 plus a mask of the cells that hold a value. Empty cells are
    missing (sparse logging); 'nan'/'inf' tokens are values (the loss really was non-finite).
    Anything else non-numeric is an error pointing at its cell."""
    series = table.frame[column]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, ~np.isnan(values)  # the C parser only yields NaN for empty cells here
    raw = series.astype("string")
    present = raw.notna().to_numpy() & (raw.str.strip() != "").fillna(False).to_numpy(dtype=bool)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    unparsed = np.flatnonzero(np.isnan(values) & present)
    for i in unparsed:
        token = str(raw.iloc[i]).strip()
        special = NONFINITE_TOKENS.get(token.lower())
        if special is not None:
            values[i] = special
        else:
            line = data_line_numbers(table.text)[i]
            row = table.text.split("\n")[line - 1]
            col_index = list(table.frame.columns).index(column)
            raise InputError(source, f"column {column!r}: {token[:40]!r} is not a number", line,
                             field_column(row, table.delimiter, col_index))
    return values, present


def run_keys(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Run code per row and run labels in order of first appearance; composite keys join
    their parts with '/'. Factorised column by column: no per-row string building."""
    codes = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        part, _ = pd.factorize(frame[col], sort=False, use_na_sentinel=False)
        codes = codes * (int(part.max(initial=0)) + 1) + part
    codes, _ = pd.factorize(codes, sort=False)
    rows = np.unique(codes, return_index=True)[1]
    labels = ["/".join("" if pd.isna(v) else str(v) for v in frame[list(columns)].iloc[i]) for i in rows]
    return codes, labels


def table_to_runs(table: Table, source: str, overrides: ColumnOverrides, label_runs_by_source: bool) -> list[RawRun]:
    """Split a table into runs by its run column(s), one run per file when there is none.
    Without a step column, the row position within the run is the step."""
    columns = [str(c) for c in table.frame.columns]
    cmap: ColumnMap = detect_columns(columns, overrides, source)
    roles = {"loss": cmap.loss}
    if cmap.grad_norm:
        roles["grad_norm"] = cmap.grad_norm
    roles.update(cmap.extras)
    parsed = {}
    for role, col in roles.items():
        try:
            parsed[role] = numeric_column(table, col, source)
        except InputError:
            if role in ("loss", "grad_norm"):
                raise
            # a non-numeric extra is simply not an extra
    step_values = numeric_column(table, cmap.step, source)[0] if cmap.step else None
    if cmap.run:
        codes, uniques = run_keys(table.frame, cmap.run)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        groups = [(str(u), order[bounds[k]:bounds[k + 1]]) for k, u in enumerate(uniques)]
    else:
        groups = [(None, np.arange(len(table.frame)))]
    runs = []
    for label, rows in groups:
        if label is None:
            name = source
        else:
            name = f"{source}:{label}" if label_runs_by_source else label
        steps = step_values[rows] if step_values is not None else np.arange(len(rows), dtype=np.float64)
        metrics = {}
        for role, (values, present) in parsed.items():
            keep = present[rows]
            metrics[role] = Metric(steps=steps[keep], values=values[rows][keep])
        runs.append(RawRun(name=name, source=source, metrics=metrics, notes=table.notes))
    return runs


def read_runs(paths: tuple[str, ...] | list[str], overrides: ColumnOverrides = ColumnOverrides()) -> list[RawRun]:
    """Every run in every input, in input order."""
    sources = expand_paths(paths)
    runs: list[RawRun] = []
    for path in sources:
        source = "<stdin>" if path == "-" else path
        text = decode(read_bytes(path), source)
        table = READERS[format_for(path)](text, source)
        runs += table_to_runs(table, source, overrides, label_runs_by_source=len(sources) > 1)
    return runs
