"""A short CSV or TSV log of plain numbers, read by numpy without loading pandas: loading pandas
takes a third of a second, longer than numpy's slower parse of a log of up to PLAIN_MAX_BYTES, and
a CI gate on a few short logs would otherwise spend most of its time on it. Only a file that
pandas would read as the same numbers, column for column, is read here; the delimited reader
reads anything else, and says what is wrong with it or notes what it set aside."""
from __future__ import annotations

import codecs
import io
import os

import numpy as np

from .dialect import sniff_delimiter

# The largest log read here. numpy parses about 0.2 µs per number against pandas' 0.1 µs, so
# pandas' import is won back only beyond some 3 million numbers: 8 MB (a million numbers at 8
# bytes each) is well within (BENCHMARKS.md, "Speed and memory").
PLAIN_MAX_BYTES = 8 << 20
NUMBER_BYTES = b"0123456789.+-eE"   # all a plain number is written with (no nan, inf, spaces, quotes)


def read_plain_numbers(path: str, delimiter: str | None) -> dict[str, np.ndarray] | None:
    """Every column of the log at ``path`` as float64 by header name (``delimiter`` None: sniffed
    from the header), when the file is at most PLAIN_MAX_BYTES and holds a header of distinct
    names (not quoted, without spaces around them or a byte order mark before them) and then rows
    of as many finite numbers each, written with digits, signs, a point and exponents alone, every
    line ended by LF. None for anything else: empty cells, NaN or inf spellings, quotes, spaces,
    carriage returns, blank lines, an unterminated last line, rows of another width, a negative
    zero (pandas reads an integer column's -0 as 0), or a header alone."""
    with open(path, "rb") as fh:
        # A longer log is not read here at all: once glibc's malloc frees a buffer of megabytes it
        # serves every later block below that size from its heap, not from fresh pages, and pandas'
        # read of a 169 MB log then peaked at 623 MB instead of 432 (benchmarks/readers.py).
        if os.fstat(fh.fileno()).st_size > PLAIN_MAX_BYTES:
            return None
        data = fh.read(PLAIN_MAX_BYTES + 1)
    header_end = data.find(b"\n")
    if len(data) > PLAIN_MAX_BYTES or header_end <= 0 or data.startswith(codecs.BOM_UTF8):
        return None
    try:
        header = data[:header_end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    delimiter = delimiter or sniff_delimiter(header)
    names = header.split(delimiter)
    if (len(set(names)) != len(names) or any(not name or name != name.strip() or any(c in name for c in '"\r\x00')
                                             for name in names)):
        return None
    body = data[header_end + 1:]
    if (not body.endswith(b"\n") or body.startswith(b"\n") or b"\n\n" in body
            or body.translate(None, NUMBER_BYTES + delimiter.encode() + b"\n")):
        return None
    try:
        values = np.loadtxt(io.BytesIO(body), delimiter=delimiter, dtype=np.float64, comments=None, ndmin=2,
                            encoding="ascii")
    except ValueError:   # a token that is no number ('1.2.3', '-'), or rows of other widths
        return None
    if (values.shape != (body.count(b"\n"), len(names)) or not np.isfinite(values).all()
            or np.signbit(values[values == 0]).any()):
        return None
    return {name: np.ascontiguousarray(values[:, k]) for k, name in enumerate(names)}
