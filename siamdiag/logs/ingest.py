"""Read loss logs into runs: find the inputs, decode them, pick a reader, split into runs.

An input is a file, stdin, a directory of TensorBoard event files (one run) or an MLflow run
directory (one run). Every failure becomes an InputError naming file, line and column.
"""
from __future__ import annotations

import errno
import glob
import gzip
import os
import re
import sys
from dataclasses import dataclass

from .columns import ColumnOverrides
from ..errors import InputError, SiamdiagError, UsageError
from . import INPUT_FORMAT_ALIASES, INPUT_FORMATS
from .readers import TEXT_READERS, detect_format, format_from_name
from .readers.mlflow import find_run_dirs, is_run_dir, read_mlflow_run, run_name
from .readers.tensorboard import is_event_file, read_tensorboard
from .tables import RawRun, series_to_run, table_to_runs

# Files a directory walk picks up; anything else is read when named explicitly.
WALKED_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".jsonl", ".ndjson", ".jsonl.gz")
WALKED_NAMES = ("trainer_state.json",)


@dataclass(frozen=True)
class LogInput:
    """One thing to read: a file ('-' is stdin), or a directory read as a whole by
    ``format`` ('tensorboard': the event ``files`` in it; 'mlflow': a run directory)."""

    path: str
    format: str | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadOptions:
    """How to read: column or tag names, the format when detection is not wanted, and a
    regular expression for plain-text logs."""

    overrides: ColumnOverrides = ColumnOverrides()
    input_format: str = "auto"  # a name from siamdiag.logs.INPUT_FORMATS or an alias of one
    pattern: re.Pattern | None = None

    def __post_init__(self):
        """Resolve an alias ('keras', 'tb', ...) to the format that reads it; refuse unknown names."""
        resolved = INPUT_FORMAT_ALIASES.get(self.input_format, self.input_format)
        if resolved not in INPUT_FORMATS:
            allowed = ", ".join(INPUT_FORMATS + tuple(INPUT_FORMAT_ALIASES))
            raise UsageError(f"unknown input format {self.input_format!r}; one of: {allowed}")
        object.__setattr__(self, "input_format", resolved)


def _walk(directory: str, input_format: str) -> list[LogInput]:
    """Logs under a directory, sorted: MLflow runs, directories of event files, log files."""
    found: list[LogInput] = []

    def refuse(exc: OSError) -> None:
        raise InputError(exc.filename or directory, f"cannot list directory: {exc.strerror}")

    for root, subdirs, files in os.walk(directory, onerror=refuse):
        subdirs.sort()
        if input_format in ("auto", "mlflow") and is_run_dir(root):
            found.append(LogInput(root, "mlflow"))
            subdirs[:] = []
            continue
        events = sorted(os.path.join(root, f) for f in files if is_event_file(f))
        if events and input_format in ("auto", "tensorboard"):
            found.append(LogInput(root, "tensorboard", tuple(events)))
        for f in sorted(files):
            lower = f.lower()
            if lower.endswith(WALKED_SUFFIXES) or lower in WALKED_NAMES or (
                    input_format not in ("auto", "tensorboard", "mlflow") and format_from_name(f) == input_format):
                found.append(LogInput(os.path.join(root, f)))
    return found


def expand_paths(paths, input_format: str = "auto") -> list[LogInput]:
    """Files as given, the logs inside a directory, glob matches, and '-' for stdin. A path
    that matches nothing is a usage error, not a silent skip."""
    found: list[LogInput] = []
    for p in paths:
        if p == "-":
            found.append(LogInput(p))
        elif os.path.isdir(p):
            found += _walk(p, input_format)
        elif os.path.exists(p):
            found.append(LogInput(p, "tensorboard", (p,)) if is_event_file(p) and input_format in (
                "auto", "tensorboard") else LogInput(p))
        elif any(ch in p for ch in "*?["):
            matches = sorted(m for m in glob.glob(p, recursive=True))
            if not matches:
                raise UsageError(f"{p}: the pattern matches no file")
            found += expand_paths(matches, input_format)
        else:
            raise missing_path(p)
    if not found:
        raise UsageError("no runs found: the paths hold no logs (.csv, .tsv, .jsonl, trainer_state.json, "
                         "TensorBoard event files, MLflow runs; name other files explicitly)")
    return found


def missing_path(path: str) -> SiamdiagError:
    """Why ``path`` cannot be used when it does not resolve: a symlink loop, a symlink to
    nothing, a directory on the way that may not be searched, or simply nothing there."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputError(path, "symlink loop (too many levels of symbolic links)")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return InputError(path, f"cannot open: {exc.strerror}")
        if os.path.islink(path):
            return InputError(path, f"broken symlink (it points to {os.readlink(path)}, which does not exist)")
    return UsageError(f"{path}: no such file or directory")


def input_files(paths, input_format: str = "auto") -> set[tuple[int, int]]:
    """(device, inode) of every file that reading ``paths`` opens: a log found inside a
    directory, or a hard link to one, is the same file whatever the path that reaches it."""
    names: list[str] = []
    for log in expand_paths(paths, input_format):
        if log.format == "mlflow":
            names += [os.path.join(root, f) for root, _dirs, files in os.walk(log.path) for f in files]
        elif log.path != "-":
            names += log.files or [log.path]
    identities = set()
    for name in names:
        try:
            st = os.stat(name)
        except OSError:
            continue  # reading it reports the problem
        identities.add((st.st_dev, st.st_ino))
    return identities


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
        raise InputError(source, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); is this a loss log? "
                         "(TensorBoard event files need 'tfevents' in their name or --input-format tensorboard)",
                         line, column) from None
    if "\x00" in text:
        pos = text.index("\x00")
        raise InputError(source, "NUL byte in text; is this a loss log?", text.count("\n", 0, pos) + 1,
                         pos - (text.rfind("\n", 0, pos) + 1) + 1)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_input(log: LogInput, options: ReadOptions, label_runs_by_source: bool) -> list[RawRun]:
    """The runs in one input."""
    fmt = log.format or options.input_format
    if fmt == "mlflow":
        run_dirs = find_run_dirs(log.path)
        if not run_dirs:
            raise InputError(log.path, "not an MLflow run directory (no meta.yaml and metrics/)")
        return [series_to_run(run_name(d), d, read_mlflow_run(d), options.overrides) for d in run_dirs]
    if fmt == "tensorboard":
        files = log.files or (log.path,)
        series, notes = read_tensorboard(list(files))
        if not series:
            raise InputError(log.path, "no scalar summaries in these TensorBoard event files")
        return [series_to_run(log.path, log.path, series, options.overrides, notes)]
    source = "<stdin>" if log.path == "-" else log.path
    text = decode(read_bytes(log.path), source)
    if fmt == "auto":
        fmt = detect_format(log.path, text)
    reread = None if log.path == "-" else (lambda: decode(read_bytes(log.path), source))
    table = TEXT_READERS[fmt](text, source, options.pattern, reread)
    del text   # a reader that can reread keeps no copy: the text is freed before the runs are built
    return table_to_runs(table, source, options.overrides, label_runs_by_source)


def read_runs(paths, options: ReadOptions = ReadOptions()) -> list[RawRun]:
    """Every run in every input, in input order."""
    logs = expand_paths(paths, options.input_format)
    runs: list[RawRun] = []
    for log in logs:
        runs += read_input(log, options, label_runs_by_source=len(logs) > 1)
    return runs
