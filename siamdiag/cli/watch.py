"""Following a log that is still being written: how many complete rows have arrived since the
last look. Reading only the appended bytes keeps a poll cheap on a long log; the judging itself
re-reads the file, whose incomplete last line the readers set aside."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError


@dataclass
class LogFollower:
    """Counts the newline-terminated rows of a growing file. A file that shrinks (rotated or
    rewritten) is counted again from its start."""

    path: str
    offset: int = 0
    rows: int = 0

    def __post_init__(self) -> None:
        if os.path.isdir(self.path):
            raise UsageError(f"{self.path}: watch follows one log file (CSV, TSV, JSON lines or text), not a directory")
        if self.path.endswith(".gz"):
            raise UsageError(f"{self.path}: a gzip file cannot be followed while it is written")

    def poll(self) -> int:
        """New complete rows since the last poll (0 while the file does not exist yet)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return 0
        if size < self.offset:
            self.offset, self.rows = 0, 0
        if size == self.offset:
            return 0
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(size - self.offset)
        complete = chunk.rfind(b"\n") + 1  # a partial last line waits for its newline
        new = chunk.count(b"\n", 0, complete)
        self.offset += complete
        self.rows += new
        return new
