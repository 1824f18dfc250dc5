"""CSV and TSV logs with a header row: pandas/Keras/Lightning CSVLogger files, W&B history
exports, siamdiag's own metrics.csv. A last line without its newline is set aside with a note:
a writer caught mid-line leaves one, complete-looking or not."""
from __future__ import annotations

import codecs
import contextlib
import functools
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor   # (pandas loads it anyway)
from typing import Callable

import numpy as np
import pandas as pd

try:
    from pandas._libs.parsers import TextReader
except ImportError:   # (private: _numeric_frame then leaves every file to read_csv)
    TextReader = None

from ...errors import InputError
from .. import textfile
from ..tables import NONFINITE_TOKENS, Table, pandas_reads_exactly
from .dialect import first_line, sniff_delimiter
from .lines import unterminated_note


def data_line_numbers(text: str) -> list[int]:
    """1-based file line of each data row (header excluded, blank lines skipped), as pandas
    counts rows. Only computed on the error path."""
    numbers = [i + 1 for i, line in enumerate(text.split("\n")) if line.strip()]
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


CHUNK_ROWS = 1 << 18   # rows parsed together from text (about 25 MB of a wide log's text)
CHUNK_BYTES = 25 << 20   # a file on disk: as many rows as about this much of it holds
PIECE_MIN_BYTES = 3 << 19   # a file on disk is cut into a piece per thread when each is at least this long (1.5 MB)
WHOLE_BYTES = 1 << 20   # a log this short is parsed in one call: joining chunks saves it nothing
# A piece hands pandas at least this much per read (pandas asks for 256 KB; each read is a call
# into Python, under the GIL): a 1M-step log read in two pieces took 1.19-1.38x read_csv with
# 4 MB reads against 1.53-1.72x (BENCHMARKS.md), for 4 MB more held per piece.
PIECE_READ_BYTES = 4 << 20


class TextChunks:
    """``text`` as a file that hands out slices: pandas reads it a chunk at a time, where a
    StringIO would hold the whole text again at four bytes per character."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def read(self, size: int = -1) -> str:
        end = len(self.text) if size is None or size < 0 else self.pos + size
        chunk = self.text[self.pos:end]
        self.pos += len(chunk)
        return chunk

    def __iter__(self):
        return iter(self.text.splitlines(keepends=True))


# read_csv's options that read every decimal as float() does, whatever the pandas installed: a log's
# values, and so its verdict, do not depend on it
EXACT_FLOATS = {} if pandas_reads_exactly() else {"float_precision": "round_trip"}
PARSE_OPTIONS = dict(keep_default_na=False, na_values=[""], skip_blank_lines=True,   # only an empty cell is missing
                     **EXACT_FLOATS)


class MixedChunks(Exception):
    """Columns that held numbers in some rows and words in others."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(names))
        self.names = names


def _parse_as_one(parse: Callable, open_rows: Callable) -> pd.DataFrame:
    """``parse`` of the rows ``open_rows()`` opens, read again when a column held numbers in some
    rows and words in others, that column as text throughout: one parse of the whole file at once
    reads such a column as text, and a run column of both would tell run 1 from run "1"."""
    with open_rows() as rows:
        try:
            return parse(rows)
        except MixedChunks as mixed:
            names = mixed.names
    with open_rows() as rows:
        return parse(rows, text_columns=names)


def _numbers_and_words(parts: list[pd.Series]) -> bool:
    """Whether a column, over its chunks of rows, holds numbers in some rows and words in others.
    pandas types each chunk on its own, and inside one each block of rows it tokenises at a time
    (a "mixed types" DtypeWarning), so such a column comes back as numbers beside text: 1 beside
    "1". Words are text that is neither a number nor a NaN/inf spelling (those, as in a loss that
    diverged late, read the same either way: the numeric columns parse them)."""
    texts = [part for part in parts if not pd.api.types.is_numeric_dtype(part)]
    if not texts or (len(texts) == len(parts) and all(map(_only_text, texts))):
        return False
    for part in texts:
        words = part.dropna().astype(str).str.strip()
        numbers = pd.to_numeric(words, errors="coerce")
        if (numbers.isna() & ~words.str.lower().isin(NONFINITE_TOKENS)).any():
            return True
    return False


def _only_text(part: pd.Series) -> bool:
    """A chunk of a text column that holds strings alone (or nothing)."""
    return isinstance(part.dtype, pd.StringDtype) or pd.api.types.infer_dtype(part, skipna=True) in ("string", "empty")


def _parse(rows, delimiter: str, source: str, text_of: Callable[[], str], chunk_rows: int | None = CHUNK_ROWS,
           spaces_open_fields: bool = True, text_columns: list[str] | None = None, direct: bool = False) -> pd.DataFrame:
    """The table in ``rows`` (a file-like text, or UTF-8 bytes), through pandas' C parser, read
    ``chunk_rows`` rows at a time and joined column by column: pandas joining its own chunks holds
    every column twice at once. ``chunk_rows`` None parses a short log in one call, where that
    costs nothing and chunks would cost their join. Spaces opening a field are skipped (`a, "b, c"`
    is two fields) unless the caller knows no field opens with one (skipping costs pandas a third
    more time). ``text_of`` gives the whole text, only to locate a parse error. Raises MixedChunks
    when a column holds numbers and words (``_numbers_and_words``; ``text_columns`` are read as text).
    ``direct``: ``rows`` being a path, try pandas' tokenizer alone first (``_numeric_frame``)."""
    if direct and text_columns is None and isinstance(rows, str):
        frame = _numeric_frame(rows, delimiter, spaces_open_fields)
        if frame is not None:
            return frame
    try:
        chunks: dict[str, list[pd.Series]] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)   # mixed columns are read again (_refuse_mixed)
            parsed = pd.read_csv(rows, sep=delimiter, engine="c", skipinitialspace=spaces_open_fields,
                                 chunksize=chunk_rows, compression=None,   # gzip is read whole before; a name is not a format
                                 dtype=dict.fromkeys(text_columns, str) if text_columns else None, **PARSE_OPTIONS)
            if chunk_rows is None:
                return _checked(parsed)
            for chunk in parsed:
                for name in chunk.columns:
                    chunks.setdefault(name, []).append(chunk[name].copy())   # its own block, not a view of the chunk's
                del chunk
    except pd.errors.EmptyDataError:
        raise InputError(source, "empty file: no header row") from None
    except pd.errors.ParserError as exc:
        raise located_parse_error(str(exc), text_of(), delimiter, source) from None
    return _joined(chunks)


def _numeric_frame(path: str, delimiter: str, spaces_open_fields: bool) -> pd.DataFrame | None:
    """The table in the file at ``path`` when pandas' C tokenizer reads every column of it as
    numbers, through the tokenizer class that read_csv drives (TextReader, pandas' private API):
    read_csv's per-call setup around it is two thirds of the time a 2,000-row log takes to read.
    Same options, same tokenizer, same frame (tests/test_numeric_frame.py holds it to read_csv's).
    None for anything else (a text or boolean column, an index column the header leaves unnamed,
    a parse error, a pandas without that class): read_csv then reads the file, and decides."""
    if TextReader is None:
        return None
    try:
        with open(path, "rb") as fh:
            reader = _text_reader(fh, delimiter, spaces_open_fields)
            columns = reader.read()
    except Exception:   # read_csv reads it again and reports what is wrong
        return None
    names = _named_once(reader, len(columns))
    if names is None or not all(_numbers(columns[k]) for k in range(len(names))):
        return None
    return pd.DataFrame({name: columns[k] for k, name in enumerate(names)}, copy=False)


def _text_reader(rows, delimiter: str, spaces_open_fields: bool):
    """pandas' tokenizer (TextReader) over the file-like ``rows``, its first line the header, with
    PARSE_OPTIONS as read_csv hands them to it."""
    options = dict(PARSE_OPTIONS, na_values=set(PARSE_OPTIONS["na_values"]), na_fvalues=set())
    return TextReader(rows, delimiter=delimiter, header=0, skipinitialspace=spaces_open_fields, **options)


def _named_once(reader, columns: int) -> list[str] | None:
    """The header's names, when it is one line naming each of the ``columns`` parsed once, as
    text; None otherwise (rows longer than the header make an index column, a repeated name is
    renamed: read_csv decides those)."""
    header = reader.header
    names = header[0] if header and len(header) == 1 else []
    if (not names or len(names) != columns or len(set(names)) != len(names)
            or not all(isinstance(name, str) for name in names)):
        return None
    return names


NUMBER_DTYPES = {np.dtype(np.int64), np.dtype(np.float64)}   # what the tokenizer makes of a column of numbers


def _numbers(values) -> bool:
    """Whether the tokenizer read a column (or a chunk of one) as numbers: int64 or float64, not
    text, booleans or integers past int64."""
    return isinstance(values, np.ndarray) and values.dtype in NUMBER_DTYPES


def _numeric_chunks(rows: _ByteRange, delimiter: str, spaces_skipped: bool) -> tuple[list[str], list[dict]] | None:
    """A piece's rows through pandas' tokenizer alone, in the chunks of rows read_csv's low-memory
    read makes (not joined: the pieces' chunks are joined once, by ``_gathered``): the header's
    names and the chunks, each a column's values by position. None when the header does not name
    each column once."""
    reader = _text_reader(rows, delimiter, spaces_skipped)
    try:
        chunks = reader.read_low_memory(None)
    except StopIteration:   # no row: blank lines alone
        chunks = []
    finally:
        reader.close()
    columns = len(chunks[0]) if chunks else reader.table_width
    names = _named_once(reader, columns)
    return None if names is None else (names, chunks)


def _gathered(pieces: list[tuple[list[str], list[dict]] | None]) -> pd.DataFrame | None:
    """The pieces' chunks of rows, joined in file order into one array per column: int64 where
    every chunk holds integers, float64 where any holds a float or an empty cell (as read_csv's
    join types them). Each chunk is let go as it is copied. None when a column holds anything but
    numbers in some chunk (text, booleans, integers past int64), or the pieces' headers differ:
    read_csv then reads the pieces."""
    if any(piece is None or piece[0] != pieces[0][0] for piece in pieces):
        return None
    names = pieces[0][0]
    chunks = [chunk for _, piece_chunks in pieces for chunk in piece_chunks]
    positions = list(range(len(names)))
    if not chunks or not all(sorted(chunk) == positions for chunk in chunks) \
            or not all(_numbers(chunk[k]) for chunk in chunks for k in positions):
        return None
    rows = sum(len(chunk[0]) for chunk in chunks)
    columns = {}
    for k, name in enumerate(names):
        column = np.empty(rows, np.result_type(*{chunk[k].dtype for chunk in chunks}))
        start = 0
        for chunk in chunks:
            part = chunk.pop(k)
            column[start:start + len(part)] = part
            start += len(part)
        columns[name] = column
    return pd.DataFrame(columns, copy=False)


def _checked(frame: pd.DataFrame) -> pd.DataFrame:
    """A table parsed in one call, as it is; MixedChunks when a column holds numbers and words
    (pandas types each block of rows it tokenises on its own, in one call too)."""
    _refuse_mixed({name: [column] for name, column in frame.items()
                   if not pd.api.types.is_numeric_dtype(column.dtype)})   # a numeric column holds no words
    return frame


def _refuse_mixed(chunks: dict[str, list[pd.Series]]) -> None:
    """MixedChunks naming the columns that hold numbers in some chunks of rows and words in others."""
    mixed = [str(name) for name, parts in chunks.items() if _numbers_and_words(parts)]
    if mixed:
        raise MixedChunks(mixed)


def _joined(chunks: dict[str, list[pd.Series]]) -> pd.DataFrame:
    """Each column's chunks of rows joined in file order (the chunks are let go as they are
    joined); MixedChunks when a column holds numbers and words."""
    _refuse_mixed(chunks)
    return pd.DataFrame({name: chunks.pop(name)[0] if len(chunks[name]) == 1 else
                         pd.concat(chunks.pop(name), ignore_index=True) for name in list(chunks)}, copy=False)


def located_parse_error(msg: str, text: str, delimiter: str, source: str) -> InputError:
    """pandas' parse error, at the file line and column it names."""
    detail = msg.split("C error: ")[-1].strip()
    lines = text.split("\n")
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m and int(m.group(2)) <= len(lines):
        expected, line = int(m.group(1)), int(m.group(2))
        return InputError(source, f"expected {expected} fields, found {m.group(3)}", line,
                          field_column(lines[line - 1], delimiter, expected))
    m = re.search(r"row (\d+)", msg)
    rows = data_line_numbers(text)
    if m and rows:
        return InputError(source, detail, rows[min(int(m.group(1)), len(rows) - 1)], 1)
    return InputError(source, detail)


def duplicate_column_notes(header: str, delimiter: str) -> list[str]:
    """A header that names a column twice: pandas reads the second as 'name.1'; say so, since
    the first is the one a role (loss, step, ...) is taken from."""
    names = [cell.strip().strip('"') for cell in header.split(delimiter)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    return [f"the header names column {n!r} {names.count(n)} times; used the first, the others read as "
            + ", ".join(f"{n!r}" for n in [f"{n}.{k}" for k in range(1, names.count(n))]) for n in repeated]


def parse_delimited(text: str, source: str, delimiter: str | None = None,
                    reread: Callable[[], str] | None = None) -> Table:
    """Parse CSV/TSV text with a header row; cells are located by file line and column. With
    ``reread`` (the file's text again, from disk) the table does not hold the text: a bad cell is
    located from a second reading, and the text can be freed once parsed."""
    if not text or text.isspace():   # (no strip(): it would copy the whole text)
        raise InputError(source, "empty file: no header row")
    header = first_line(text)
    delimiter = delimiter or sniff_delimiter(header)
    body, last = text, ""
    if not text.endswith("\n") and "\n" in text.strip("\n"):
        body, last = text.rsplit("\n", 1)
        body += "\n"
    parse = functools.partial(_parse, delimiter=delimiter, source=source, text_of=lambda: body,
                              chunk_rows=None if len(body) <= WHOLE_BYTES else CHUNK_ROWS)
    frame = _parse_as_one(parse, lambda: contextlib.nullcontext(TextChunks(body)))
    return _with_last_line(frame, header, last, delimiter, source, reread or (lambda: text),
                           lambda: text.count("\n") + 1)


def read_delimited_file(path: str, source: str, delimiter: str | None = None,
                        start_text: str | None = None) -> Table:
    """A CSV/TSV file on disk, parsed as ``parse_delimited`` parses its text but read as bytes a
    chunk at a time (pandas parses UTF-8 bytes; text would be encoded again for it): neither the
    file's bytes nor its text are ever held whole. ``start_text`` is the file's textfile.head when
    the caller has it. Raises ``NotPlainText`` when the file is not clean UTF-8 text (the
    whole-file reader locates the problem)."""
    start_text = textfile.head(path) if start_text is None else start_text
    size = os.path.getsize(path)
    has_rows = "\n" in start_text.strip("\n")   # a line break after the header, as parse_delimited asks
    if not start_text.strip() or (size > textfile.HEAD_BYTES and not has_rows):
        raise textfile.NotPlainText("no header row, or one longer than the first block")
    header = first_line(start_text)
    delimiter = delimiter or sniff_delimiter(header)
    body_end = textfile.last_line_start(path)
    last = ""
    if body_end < size and has_rows:   # an unterminated last line that is not the header
        try:
            last = textfile.bytes_from(path, body_end).decode("utf-8")
        except UnicodeDecodeError:
            raise textfile.NotPlainText("not UTF-8") from None
        if "\x00" in last:
            raise textfile.NotPlainText("NUL byte")
    else:
        body_end = size
    reread = lambda: textfile.read_text(path, source)  # noqa: E731
    needles = ((delimiter + " ").encode(), b"\n ", b"\r ")   # spaces that may open a field
    numeric = first_row_numbers(start_text, header, delimiter)   # a guess from the first row; the parse decides
    frame = None
    if body_end == size and textfile.PARSE_THREADS > 1 and size >= textfile.PARSE_THREADS * PIECE_MIN_BYTES:
        frame = _parse_pieces(path, size, delimiter, needles, start_text.startswith(" "), numeric)
    if frame is None:   # a short file, an unterminated last line, carriage returns, a piece that did not parse...
        carriage, spaces = textfile.inspect(path, body_end, *needles)
        parse = functools.partial(_parse, delimiter=delimiter, source=source, text_of=reread,
                                  chunk_rows=None if size <= WHOLE_BYTES else _chunk_rows(start_text),
                                  spaces_open_fields=spaces or start_text.startswith(" "),
                                  direct=size <= WHOLE_BYTES and numeric)
        if body_end == size and not carriage:
            frame = _parse_path(path, size, parse)
        if frame is None:   # line breaks to make universal, an unterminated last line to leave out, or a file that grew
            frame = _parse_as_one(parse, lambda: textfile.open_lines(path, body_end))
    return _with_last_line(frame, header, last, delimiter, source, reread,
                           lambda: textfile.count_lines(path, body_end) + 1)


def first_row_numbers(start_text: str, header: str, delimiter: str) -> bool:
    """Whether the first row after ``header`` holds numbers and empty cells only: a log whose first
    row holds a word (a run's name) has a text column, which only read_csv types, and trying
    pandas' tokenizer alone first would parse it twice. A guess from one row, on the safe side:
    a table it lets through that is not all numbers is still read by read_csv."""
    row = first_line(start_text[start_text.find(header) + len(header):])
    for cell in row.split(delimiter):
        if cell.strip():
            try:
                float(cell)
            except ValueError:
                return False
    return bool(row.strip())


def _chunk_rows(start_text: str) -> int:
    """Rows to parse together: as many as CHUNK_BYTES of the file hold, at the row length of its
    first lines (CHUNK_ROWS at least)."""
    row_bytes = max(1, len(start_text.encode()) // max(1, start_text.count("\n")))
    return max(CHUNK_ROWS, CHUNK_BYTES // row_bytes)


def _parse_path(path: str, size: int, parse: Callable) -> pd.DataFrame | None:
    """The table in the file, read by ``parse`` from the path (faster than from any file object).
    None when the file no longer has ``size`` bytes once read: a log being written grew meanwhile,
    and a row it was cut in may have been read (the caller reads the bytes it had)."""
    try:   # absolute: pandas would read '~...' or 'file:...' as more than a path
        frame = _parse_as_one(parse, lambda: contextlib.nullcontext(os.path.abspath(path)))
    except InputError:
        if os.path.getsize(path) != size:
            return None
        raise
    return frame if os.path.getsize(path) == size else None


class _PieceStopped(Exception):
    """A piece met what the pieces' parse cannot take as it is: a carriage return that universal
    newlines would read otherwise (``carriage``; see BlockCheck), or a space opening a field where
    spaces are not skipped. Its parse stops there: the rest would be thrown away."""

    def __init__(self, carriage: bool):
        super().__init__()
        self.carriage = carriage


class _ByteRange:
    """The bytes ``prefix`` then ``[start, end)`` of an open file, as a file pandas reads; each
    block of the range goes by ``check`` as it is handed out, and the reading stops
    (``_PieceStopped``) at a carriage return that universal newlines would read otherwise, or at a
    space opening a field unless ``spaces_skipped``."""

    def __init__(self, fd: int, prefix: bytes, start: int, end: int, check: textfile.BlockCheck,
                 spaces_skipped: bool):
        self.fd, self.prefix, self.pos, self.end, self.check = fd, prefix, start, end, check
        self.spaces_skipped = spaces_skipped

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix, b""
            return data
        left = self.end - self.pos
        size = left if size is None or size < 0 else min(max(size, PIECE_READ_BYTES), left)
        data = os.pread(self.fd, size, self.pos) if size > 0 else b""
        self.pos += len(data)
        self.check.see(data, final=not data or self.pos >= self.end)
        if self.check.carriage or (self.check.found and not self.spaces_skipped):
            raise _PieceStopped(self.check.carriage)
        return data

    def __iter__(self):   # pandas asks file objects for iteration; reads go through read()
        raise TypeError("read in blocks")


def header_end(data: bytes) -> int:
    """Offset just after the header line that opens ``data`` (a UTF-8 byte order mark allowed), or
    0 when the file does not open plainly with it: blank lines first, or a quoted line break in it."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    end = data.find(b"\n", start)
    if end < 0 or not data[start:end].strip() or data.count(b'"', start, end) % 2:
        return 0
    return end + 1


def _parse_pieces(path: str, size: int, delimiter: str, needles: tuple[bytes, ...],
                  spaces_open_fields: bool, numeric: bool) -> pd.DataFrame | None:
    """The table, parsed in a piece per thread (textfile.PARSE_THREADS pieces of about equal size, cut after
    a line break, each behind the header line), joined column by column in file order: the table
    the serial reader gives. More pieces than threads would only add a parser and a frame each:
    slower, and no less memory. When the log looks ``numeric`` (its first row holds numbers alone),
    each piece goes through pandas' tokenizer alone and the chunks of rows it makes are joined once
    (``_gathered``): pandas joining each piece's chunks, then the pieces joined, copied every value
    twice into fresh memory. Otherwise, or when a column turns out to hold more than numbers,
    read_csv reads each piece. Each piece's bytes are checked as pandas reads them (``BlockCheck``:
    NotPlainText at anything but clean text), so the file is read once. A piece stops at the first
    carriage return that universal newlines would read otherwise (a CRLF ends a line for pandas as
    LF does, unless a quote went by), or space opening a field (one of ``needles``) while such spaces
    are not skipped: the pieces are then read again skipping them. None, for the serial reader to
    decide, when such a carriage return went by (its line breaks are made universal), when the file
    does not open with its header line, when a column holds numbers in one piece and words in
    another, when any piece does not parse (a cut inside a quoted line break leaves a piece ending in
    an open quote, which pandas refuses; the serial reader then reads the file or locates its error).
    The pieces end where the file did when its size was taken: what a writer appends meanwhile is
    not read."""
    with open(path, "rb") as fh:
        fd = fh.fileno()
        body = header_end(os.pread(fd, textfile.HEAD_BYTES, 0))
        prefix = os.pread(fd, body, 0)
        if not body or b"\r" in prefix.replace(b"\r\n", b""):   # (a header's CRLF ends it, as LF would)
            return None
        cuts = [body]
        threads = textfile.PARSE_THREADS
        for target in (body + (size - body) * k // threads for k in range(1, threads)):
            if target <= cuts[-1]:
                continue
            line_break = os.pread(fd, textfile.BLOCK, target).find(b"\n")
            if line_break < 0:   # a line longer than a block: leave the rest to one piece
                break
            cuts.append(target + line_break + 1)
        cuts.append(size)

        def parse(spaces_skipped: bool, read_piece: Callable) -> list | None:
            """``read_piece(rows, delimiter, spaces_skipped)`` of every piece, spaces opening a field
            skipped or not; None when a piece does not parse or stops at a carriage return."""
            checks = [textfile.BlockCheck(needles, before=b"\n") for _ in cuts[1:]]   # each piece follows a line break

            def piece(k: int):
                return read_piece(_ByteRange(fd, prefix, cuts[k], cuts[k + 1], checks[k], spaces_skipped),
                                  delimiter, spaces_skipped)

            try:
                with ThreadPoolExecutor(max_workers=len(checks)) as pool, warnings.catch_warnings():
                    warnings.simplefilter("ignore", pd.errors.DtypeWarning)   # mixed columns go to the serial reader
                    return list(pool.map(piece, range(len(checks))))
            except _PieceStopped as stop:
                return None if stop.carriage or spaces_skipped else parse(True, read_piece)   # spaces in the rows: again, skipping them
            except (ValueError, OverflowError):   # pandas' parse and data errors (ParserError is a ValueError)
                return None

        spaces_skipped = spaces_open_fields or any(needle in prefix for needle in needles)   # (the header's spaces too)
        if numeric and TextReader is not None:
            chunked = parse(spaces_skipped, _numeric_chunks)
            if chunked is None:
                return None
            frame = _gathered(chunked)
            if frame is not None:
                _return_freed_memory()
                return frame
        pieces = parse(spaces_skipped, _read_csv_piece)
    if pieces is None:
        return None
    if any(list(p.columns) != list(pieces[0].columns) for p in pieces):
        return None
    pieces = [p for p in pieces if len(p)] or pieces[:1]   # a piece of blank lines types its columns as text
    try:
        return _joined({name: [p.pop(name) for p in pieces] for name in list(pieces[0].columns)})
    except MixedChunks:   # the serial reader reads such a column as text
        return None


def _return_freed_memory() -> None:
    """Hand back to the system what the parse threads freed (glibc's malloc_trim): glibc keeps the
    memory a thread frees (its tokenizer's buffers, the chunks once joined) in that thread's arena,
    where the analysis, on the main thread, cannot reuse it, so the run's peak stacked the analysis
    on top of it (1M steps: 175 MB against 166 MB after the trim, which takes about 1.5 ms). Nothing
    where the C library has no such call."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _read_csv_piece(rows: _ByteRange, delimiter: str, spaces_skipped: bool) -> pd.DataFrame:
    """A piece's rows, as read_csv reads them."""
    return pd.read_csv(rows, engine="c", compression=None, **dict(PARSE_OPTIONS, sep=delimiter, skipinitialspace=spaces_skipped))


def _with_last_line(frame: pd.DataFrame, header: str, last: str, delimiter: str, source: str,
                    text_of: Callable[[], str], last_line_number: Callable[[], int]) -> Table:
    """The table, with a note when an unterminated ``last`` line was set aside (never parsed:
    a writer caught mid-number leaves a cut that still reads as a number)."""
    notes = [unterminated_note(last_line_number(), last)] if last.strip() else []
    columns = [str(c) for c in frame.columns]
    notes += duplicate_column_notes(header, delimiter)
    return Table(frame=frame, locate=cell_locator(text_of, delimiter, columns), notes=tuple(notes))


def cell_locator(text_of: Callable[[], str], delimiter: str, columns: list[str]):
    """locate(row, column) -> (file line, character column) of a data cell, from the text
    ``text_of`` gives (only called on the error path)."""
    def locate(row: int, column: str) -> tuple[int, int]:
        text = text_of()
        line = data_line_numbers(text)[row]
        return line, field_column(text.split("\n")[line - 1], delimiter, columns.index(column))
    return locate
