"""siamdiag's own log, metrics.csv: its columns, an appending writer that keeps every row written
so far through a crash and never mixes two runs in one file, and the trim a resumed run needs. No
torch: the Keras and Hugging Face callbacks write it too."""
from __future__ import annotations

import operator
import os
import warnings

import numpy as np

from ..atomic import replacing
from ..errors import InputError

COLUMNS = ("step", "epoch", "loss", "grad_norm", "lr", "margin", "pos_dist", "neg_dist", "easy_fraction",
           "active_fraction", "embedding_norm", "nonfinite")


def format_cell(value) -> str:
    """A cell as metrics.csv writes it: empty for None, integers exactly, other numbers to 8
    significant digits (the float test first: most cells are floats)."""
    if type(value) is float:
        return f"{value:.8g}"
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.8g}"


_CELLS = operator.itemgetter(*COLUMNS)   # a row's cells in column order


def format_row(row: dict) -> str:
    return ",".join(map(format_cell, _CELLS(row))) + "\n"


class MetricsFile:
    """metrics.csv (its directory created when missing): one row per step, appended, flushed and
    fsynced on every write so a crash or Ctrl-C keeps every step written so far.

    A file already there is continued only by the run that wrote it: when the first row written
    carries on from its last step (a resume). Steps that start over (another run, or the same job
    run again into the same directory) or other columns move the old file aside, to
    ``metrics.1.csv`` (the next free number), with a warning: two runs are never mixed in one
    file, and nothing written is lost. ``resume_from``: the step a resumed run's checkpoint
    holds; the rows after it, which the run will log again, are dropped first."""

    def __init__(self, path: str, resume_from: int | None = None):
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.handle = None
        self.moved_to: str | None = None   # where an earlier run's file went
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            self.continuable, self.last_step = True, None
            self._start()
            return
        self.continuable, self.last_step, whole = _last_step(path)
        if self.continuable and resume_from is not None and (self.last_step or 0) > resume_from:
            keep_steps_through(path, resume_from)
            self.last_step = resume_from
        elif self.continuable and not whole:   # a last row cut short by a crash is not a row: rows never join it
            keep_steps_through(path, self.last_step or 0)

    def _start(self) -> None:
        self.handle = open(self.path, "w", encoding="utf-8", newline="")
        self.handle.write(",".join(COLUMNS) + "\n")
        self.sync()

    def _open_for(self, first_step) -> None:
        """Continue the file there, or move it aside and start a new one (see the class)."""
        if self.continuable and (self.last_step is None or first_step is None or int(first_step) > self.last_step):
            self.handle = open(self.path, "a", encoding="utf-8", newline="")
            return
        self.moved_to = set_aside(self.path)
        why = (f"its steps reach {self.last_step} and this run starts at step {first_step}"
               if self.continuable else "its columns are not siamdiag's")
        warnings.warn(f"siamdiag: {self.path} holds another run ({why}): moved it to {self.moved_to}, "
                      "and this run is written to a new file", stacklevel=3)
        self._start()

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.handle is None:
            self._open_for(rows[0]["step"])
        self.handle.write("".join(map(format_row, rows)))
        self.sync()

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _last_step(path: str) -> tuple[bool, int | None, bool]:
    """Whether a file has siamdiag's header, the step of its last complete row (None: no row), and
    whether the file ends with its line break (False: a last row cut short)."""
    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff")
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 65536))
        tail = fh.read().decode("utf-8", "replace")
    if header.split(",") != list(COLUMNS):
        return False, None, True
    whole = tail.endswith("\n")
    for line in reversed(tail[:tail.rfind("\n") + 1].splitlines()):
        cell = line.split(",", 1)[0].strip()
        if cell.lstrip("-").isdigit():
            return True, int(cell), whole
    return True, None, whole


def set_aside(path: str) -> str:
    """Move ``path`` to ``<stem>.<n><suffix>`` with the first free n; never over another file (the
    name is claimed atomically first, see _claim)."""
    stem, suffix = os.path.splitext(path)
    n = 1
    while True:
        target = f"{stem}.{n}{suffix}"
        try:
            if _claim(path, target):
                os.unlink(path)         # linked: the old name goes
            else:
                os.replace(path, target)
            return target
        except FileExistsError:
            n += 1


def _claim(path: str, target: str) -> bool:
    """Claim the name ``target`` for ``path``'s file, or raise FileExistsError: a hard link (True),
    or, where the file system has none (exFAT, some network and FUSE mounts), an empty file
    created exclusively, for the move to replace (False)."""
    try:
        os.link(path, target)
        return True
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return False


class BufferedRows:
    """Rows from a callback that sees one step at a time, written ``every`` rows at once (and at
    close): one fsync per block, not per step. A crash loses at most the rows not yet written."""

    def __init__(self, path: str, every: int = 100, resume_from: int | None = None):
        self.file, self.every, self.rows = MetricsFile(path, resume_from), every, []

    def add(self, **cells) -> None:
        """One row; the columns not given are empty."""
        row = dict.fromkeys(COLUMNS)
        row.update(cells)
        self.rows.append(row)
        if len(self.rows) >= self.every:
            self.flush()

    def flush(self) -> None:
        self.file.append(self.rows)
        self.rows = []

    def close(self) -> None:
        self.flush()
        self.file.close()


def keep_steps_through(path: str, last_step: int) -> int:
    """Before resuming: keep the complete rows up to the checkpoint's step, each step once and
    in increasing order, and drop the rest (rows after the checkpoint will be logged again,
    identically; a last row cut short by a crash or a full disk is not a row). Rewrites the file
    atomically and returns the number of lines dropped."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    if not lines or lines[0].rstrip("\n").split(",") != list(COLUMNS):
        raise InputError(path, "not a siamdiag metrics.csv (unexpected header)", line=1)
    kept, previous = [lines[0]], 0
    for line in lines[1:]:
        cell = line.split(",", 1)[0]
        if line.endswith("\n") and line.count(",") == len(COLUMNS) - 1 and cell.isdigit() \
                and previous < int(cell) <= last_step:
            kept.append(line)
            previous = int(cell)
    with replacing(path, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(kept)
    return len(lines) - len(kept)
