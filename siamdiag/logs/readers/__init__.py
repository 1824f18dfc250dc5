"""The log formats siamdiag reads: a registry from format name to reader, and the rules that
pick a format from a file's name and first bytes when the user does not name one."""
from __future__ import annotations

import importlib
import json
import os
import re
from typing import Callable

from ..tables import Table, to_float
from .dialect import sniff_delimiter
from .lines import first_lines
from .wandb import is_chart_export


def _lazy(module: str, name: str):
    """``name`` from a reader module loaded with the first log that needs it (a CSV run never
    loads the JSON or text readers, nor compiles their patterns; a plain CSV of numbers never
    loads pandas)."""
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


# Formats read from decoded text into a table. TensorBoard, MLflow and DVCLive read stores
# (directories, a database) into series; ingest handles them by name.
# ``reread`` gives the file's text again (None for stdin): a reader that can locate errors from it
# need not hold the text (CSV/TSV).
TEXT_READERS: dict[str, Callable[..., Table]] = {
    "csv": lambda text, source, pattern, reread=None: _lazy("delimited", "parse_delimited")(text, source, None, reread),
    "tsv": lambda text, source, pattern, reread=None: _lazy("delimited", "parse_delimited")(text, source, "\t", reread),
    "wandb": lambda text, source, pattern, reread=None: _lazy("wandb", "read_wandb")(text, source),
    "json": lambda text, source, pattern, reread=None: _lazy("jsonlog", "read_json")(text, source),
    "jsonl": lambda text, source, pattern, reread=None: _lazy("jsonlog", "read_jsonl")(text, source),
    "text": lambda text, source, pattern, reread=None: _lazy("text", "read_text")(text, source, pattern),
}
TREE_FORMATS = ("tensorboard", "mlflow", "dvclive")

SUFFIX_FORMATS = ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                  (".json", "json"), (".txt", "text"), (".log", "text"), (".out", "text"))


def is_event_file(name: str) -> bool:
    """A TensorBoard event file, by its name (``events.out.tfevents.<time>.<host>...``)."""
    return "tfevents" in os.path.basename(name)


def format_from_name(path: str) -> str | None:
    name = path.lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in SUFFIX_FORMATS if name.endswith(suffix)), None)


def _looks_delimited(lines: list[str]) -> bool:
    """A header and rows with the same number of commas (or tabs, or semicolons); a single column when a
    name is followed by numbers."""
    if not lines:
        return False
    delimiter = sniff_delimiter(lines[0])
    count = lines[0].count(delimiter)
    if count == 0:
        return bool(re.fullmatch(r"[\w ./-]+", lines[0])) and all(to_float(line) is not None for line in lines[1:5])
    return all(line.count(delimiter) == count for line in lines[1:5])


def _header_names(line: str) -> list[str]:
    return [c.strip().strip('"') for c in line.split(sniff_delimiter(line))]


def _first_line_is_record(lines: list[str]) -> bool:
    """JSON lines: the first line is a whole JSON object by itself and another follows."""
    if len(lines) < 2 or not lines[1].lstrip().startswith("{"):
        return False
    try:
        return isinstance(_lazy("jsonlog", "json_loads")(lines[0]), dict)
    except json.JSONDecodeError:
        return False


def detect_format(path: str, text: str) -> str:
    """The reader for a decoded file: its suffix when it has a known one (a CSV whose header has
    '<run> - <metric>' columns is a W&B chart export), else what its content looks like."""
    by_name = format_from_name(path)
    lines = [line for line in first_lines(text, 6) if line.strip()]
    if by_name in ("csv", "tsv"):
        return "wandb" if lines and is_chart_export(_header_names(lines[0])) else by_name
    if by_name:
        return by_name
    head = text.lstrip()[:1]
    if head in ("{", "["):
        return "jsonl" if _first_line_is_record(lines) else "json"
    if _looks_delimited(lines):
        return "wandb" if is_chart_export(_header_names(lines[0])) else "csv"
    loss = _lazy("text", "LOSS")
    if any(loss.search(line) for line in first_lines(text, 200)):
        return "text"
    return "csv"
