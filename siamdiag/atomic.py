"""Every file siamdiag writes over (reports, plots, config.json, checkpoints, a trimmed log) is
written whole or not at all: into a temporary file in the same directory (so the rename is
atomic), flushed to disk, then renamed over the target. A reader sees the old file or the new one,
never half of one, and an interrupted write leaves the old file and no temporary behind.

Targets that are not files are never renamed over: a character device (/dev/null, a terminal)
or a FIFO is written through, as are /dev/stdout and its kin, and anything else (a directory,
a socket, a block device) is refused."""
from __future__ import annotations

import os
import shutil
import stat
from contextlib import contextmanager

from .errors import OutputError, UsageError

TEMP_PREFIX = ".siamdiag-"
# Names of the process's own streams: what they point to is the caller's, not a file to replace.
STREAM_PATHS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")


@contextmanager
def replacing(path: str, mode: str = "w", **open_args):
    """A file object for ``path``'s new content (``mode`` 'w' or 'wb'). On a clean exit it
    replaces ``path`` — the file a symlink points to, with the old file's permissions; a new
    file gets the umask's — and on an exception it is removed and ``path`` stays as it was."""
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f"{TEMP_PREFIX}{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **open_args) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(target):
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def target_kind(path: str) -> str:
    """'stream' (write through), 'file' (an existing regular file), 'new' (nothing there yet), or
    what else is there ('directory', 'socket', 'block device', ...), which is refused."""
    if path.startswith(STREAM_PATHS):
        return "stream"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise OutputError(path, exc) from None
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    if stat.S_ISREG(mode):
        return "file"
    return {stat.S_IFDIR: "directory", stat.S_IFSOCK: "socket", stat.S_IFBLK: "block device"}.get(
        stat.S_IFMT(mode), "special file")


@contextmanager
def output_file(path: str, what: str, mode: str = "w", **open_args):
    """Where a report or a plot goes (``what`` names the option in messages): a file is
    replaced atomically, a device, FIFO or standard stream is written through, anything else
    is refused. A failure of the system (disk full, permission denied) is an OutputError."""
    kind = target_kind(path)
    if kind not in ("stream", "file", "new"):
        raise UsageError(f"{what} {path}: is a {kind}, not a file; refusing to write there")
    if kind != "stream":
        directory = os.path.dirname(os.path.realpath(path)) or "."
        if not os.path.isdir(directory):
            raise UsageError(f"{what} {path}: directory {directory} does not exist")
    try:
        if kind == "stream":
            with open(path, mode, **open_args) as fh:
                yield fh
        else:
            with replacing(path, mode, **open_args) as fh:
                yield fh
    except OSError as exc:
        raise OutputError(path, exc) from None
