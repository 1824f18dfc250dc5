"""siamdiag's own log, metrics.csv: its columns, an appending writer that keeps every row written
so far through a crash, and the trim a resumed run needs. No torch: the Keras and Hugging Face
callbacks write it too."""
from __future__ import annotations

import os

import numpy as np

from ..atomic import replacing
from ..errors import InputError

COLUMNS = ("step", "epoch", "loss", "grad_norm", "lr", "margin", "pos_dist", "neg_dist", "easy_fraction",
           "active_fraction", "embedding_norm", "nonfinite")


def format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.8g}"


class MetricsFile:
    """metrics.csv (its directory created when missing): one row per step, appended, flushed and
    fsynced on every write so a crash or Ctrl-C keeps every step written so far."""

    def __init__(self, path: str):
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        self.handle = open(path, "a", encoding="utf-8", newline="")
        if fresh:
            self.handle.write(",".join(COLUMNS) + "\n")
            self.sync()

    def append(self, rows: list[dict]) -> None:
        if rows:
            self.handle.write("".join(",".join(format_cell(r[c]) for c in COLUMNS) + "\n" for r in rows))
            self.sync()

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


class BufferedRows:
    """Rows from a callback that sees one step at a time, written ``every`` rows at once (and at
    close): one fsync per block, not per step. A crash loses at most the rows not yet written."""

    def __init__(self, path: str, every: int = 100):
        self.file, self.every, self.rows = MetricsFile(path), every, []

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
