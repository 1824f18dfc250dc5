"""A log file as text: UTF-8 with or without a BOM (gzip-compressed or not), universal newlines.
Read whole (``read_text``, which locates what is wrong by line and column), or, for a large
uncompressed log on disk, a block at a time so that neither its bytes nor its text are held
whole (``open_text``); a block reader that meets anything but clean text (a NUL byte, bytes that
are not UTF-8) raises ``NotPlainText`` and the caller reads the file whole instead."""
from __future__ import annotations

import gzip
import io
import os
import sys

from ..errors import InputError


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


def read_text(path: str, source: str) -> str:
    """The whole text of ``path`` ('-': stdin)."""
    return decode(read_bytes(path), source)


BLOCK = 1 << 20
HEAD_BYTES = 1 << 16   # enough for a header and the first rows, to pick a format


class NotPlainText(Exception):
    """The file needs the whole-file decoder (to be read, or to locate what is wrong in it)."""


class _Prefix(io.RawIOBase):
    """The first ``end`` bytes of a file, refusing NUL bytes as they go by."""

    def __init__(self, path: str, end: int):
        self.handle, self.left = open(path, "rb"), end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.handle.read(min(len(buffer), self.left))
        if b"\x00" in data:
            raise NotPlainText("NUL byte")
        memoryview(buffer)[:len(data)] = data
        self.left -= len(data)
        return len(data)

    def close(self) -> None:
        self.handle.close()
        super().close()


class _Text(io.TextIOWrapper):
    """Decoding errors become NotPlainText (the whole-file decoder says where they are)."""

    def read(self, size: int = -1) -> str:
        try:
            return super().read(size)
        except UnicodeDecodeError:
            raise NotPlainText("not UTF-8") from None


def open_text(path: str, end: int | None = None) -> io.TextIOBase:
    """The text of ``path`` (its first ``end`` bytes), decoded a block at a time."""
    end = os.path.getsize(path) if end is None else end
    return _Text(io.BufferedReader(_Prefix(path, end), BLOCK), encoding="utf-8-sig", newline=None)


def is_gzip(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def head(path: str) -> str:
    """The file's first HEAD_BYTES as text (the whole file when it is no longer), cut at the last
    whole line they hold."""
    with open(path, "rb") as fh:
        data = fh.read(HEAD_BYTES)
    if b"\x00" in data:
        raise NotPlainText("NUL byte")
    if len(data) == HEAD_BYTES:
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        data = data[:cut + 1] if cut >= 0 else data
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotPlainText("not UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def last_line_start(path: str) -> int:
    """Offset just after the file's last line break (0 when it has none): where an unterminated
    last line starts, or the file's size when the file ends with a line break."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        end = size
        while end > 0:
            start = max(0, end - BLOCK)
            fh.seek(start)
            block = fh.read(end - start)
            cut = max(block.rfind(b"\n"), block.rfind(b"\r"))
            if cut >= 0:
                return start + cut + 1
            end = start
    return 0


def bytes_from(path: str, offset: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read()


def count_lines(path: str, end: int | None = None) -> int:
    """Line breaks in the first ``end`` bytes, as universal newlines count them."""
    with open_text(path, end) as fh:
        return sum(block.count("\n") for block in iter(lambda: fh.read(BLOCK), ""))
