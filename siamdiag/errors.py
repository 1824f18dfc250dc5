"""User-facing errors. The CLI turns each into one line on stderr and exit code 2."""
from __future__ import annotations


class SiamdiagError(Exception):
    """An error the user can fix (bad input, bad option); never a bug in siamdiag."""


class InputError(SiamdiagError):
    """A log that cannot be read, located as precisely as possible: file, line, column."""

    def __init__(self, source: str, message: str, line: int | None = None, column: int | None = None):
        self.source, self.line, self.column, self.message = source, line, column, message
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):   # raised in a worker process, re-raised in the parent
        return type(self), (self.source, self.message, self.line, self.column)


class UsageError(SiamdiagError):
    """Options or paths that make no sense together (no runs found, unknown column, ...)."""


class OutputError(SiamdiagError):
    """A file siamdiag was asked to write that the system would not let it write (disk full,
    permission denied, read-only file system): an environment error, named with its path."""

    def __init__(self, path: str, exc: OSError):
        self.path, self.exc = path, exc
        super().__init__(f"cannot write {path}: {exc.strerror or exc}")

    def __reduce__(self):
        return type(self), (self.path, self.exc)
