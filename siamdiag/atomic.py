"""Every file siamdiag writes over (reports, plots, config.json, checkpoints, a trimmed log) is
written whole or not at all: into a temporary file in the same directory (so the rename is
atomic), flushed to disk, then renamed over the target. A reader sees the old file or the new one,
never half of one, and an interrupted write leaves the old file and no temporary behind."""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager

TEMP_PREFIX = ".siamdiag-"


@contextmanager
def replacing(path: str, mode: str = "w", **open_args):
    """A file object for ``path``'s new content (``mode`` 'w' or 'wb'). On a clean exit it
    replaces ``path`` — the file a symlink points to, with the old file's permissions; a new
    file gets the umask's — and on an exception it is removed and ``path`` stays as it was."""
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f"{TEMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
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
