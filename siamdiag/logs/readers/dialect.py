"""How a delimited log (CSV, TSV) writes its rows: the delimiter its header uses, and its first
line. No pandas here, so that telling a log's format, and reading a plain CSV of numbers
(``plain_csv``), never loads it."""
from __future__ import annotations

import re

DELIMITERS = {"csv": None, "tsv": "\t"}   # a .csv's delimiter is sniffed from its header


def sniff_delimiter(header: str) -> str:
    """The delimiter a header row uses: the most frequent of comma, tab and semicolon (spreadsheets
    in many locales write semicolons), the comma on a tie or a single column."""
    return max((",", "\t", ";"), key=lambda d: (header.count(d), d == ","))


def first_line(text: str) -> str:
    """The first non-empty line, without copying the rest of the text."""
    start = re.match(r"\n*", text).end()
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]
