"""A log file as text: UTF-8 with or without a BOM (gzip-compressed or not), universal newlines.
Read whole (``read_text``, which locates what is wrong by line and column), or, for a large
uncompressed log on disk, a block at a time so that neither its bytes nor its text are held
whole: ``inspect`` checks a file's bytes (and says whether a parser reading them itself would
meet carriage returns it reads otherwise than universal newlines), ``open_lines`` hands them to a
parser checked and with line breaks made universal. Either raises ``NotPlainText`` at anything
but clean text (a NUL byte, bytes that are not UTF-8), and the caller reads the file whole instead.
"""
from __future__ import annotations

import codecs
import gzip
import io
import os
import sys

from ..cores import usable_cores
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
    return universal_newlines(text)


def universal_newlines(text: str) -> str:
    """CRLF and CR as LF, as universal newlines read them; the text itself when it holds no CR
    (the two replaces scan a long log twice for nothing)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_text(path: str, source: str) -> str:
    """The whole text of ``path`` ('-': stdin)."""
    return decode(read_bytes(path), source)


BLOCK = 1 << 20
# Threads a reader may parse one log on: pandas' C parser releases the GIL while it tokenises and
# converts, as pandas' own reader of a whole file does on these cores. The pool workers of --jobs
# set it to 1 (their processes already share the cores).
PARSE_THREADS = max(1, min(4, usable_cores() or 1))
HEAD_BYTES = 1 << 16   # enough for a header and the first rows, to pick a format


class NotPlainText(Exception):
    """The file needs the whole-file decoder (to be read, or to locate what is wrong in it)."""


class _Lines(io.RawIOBase):
    """The first ``end`` bytes of a file, a block at a time, as universal newlines read them
    (CRLF and CR become LF, so that a parser sees the lines the whole-file decoder sees, quoted
    fields included), refusing NUL bytes and bytes that are not UTF-8 as they go by. The bytes
    are handed on undecoded: a block is decoded only to check it, and only when not ASCII."""

    def __init__(self, path: str, end: int):
        self.handle, self.left = open(path, "rb"), end
        self.check = BlockCheck(needles=())
        self.block, self.pos, self.after_cr = memoryview(b""), 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.pos == len(self.block) and self.left:
            self.block, self.pos = memoryview(self._next_block()), 0
        size = min(len(buffer), len(self.block) - self.pos)
        memoryview(buffer).cast("B")[:size] = self.block[self.pos:self.pos + size]
        self.pos += size
        return size

    def _next_block(self) -> bytes:
        data = self.handle.read(min(BLOCK, self.left))
        self.left = self.left - len(data) if data else 0
        self.check.see(data, final=not self.left)
        if self.after_cr:   # the LF of a CRLF that the last block cut
            data = data.removeprefix(b"\n")
        self.after_cr = data.endswith(b"\r")
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data

    def close(self) -> None:
        self.handle.close()
        super().close()


def open_lines(path: str, end: int | None = None) -> io.BufferedReader:
    """The bytes of ``path`` (its first ``end``), checked and with universal newlines, for a
    parser that reads UTF-8 bytes: no text is decoded and encoded again on the way."""
    end = os.path.getsize(path) if end is None else end
    return io.BufferedReader(_Lines(path, end), BLOCK)


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
    return universal_newlines(text)


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


class BlockCheck:
    """Bytes seen a block at a time, in order: raises ``NotPlainText`` at a NUL byte or bytes that
    are not UTF-8, and remembers whether a parser reading the bytes themselves would see other
    lines than universal newlines make (``carriage``) and whether any of ``needles`` went by (two
    bytes each, found across block boundaries too; ``before`` is the byte before the first block).
    Most blocks are settled by memchr and an ASCII check; a block is decoded only when not ASCII,
    and searched for the needles only when it holds their last byte."""

    def __init__(self, needles: tuple[bytes, ...], before: bytes = b""):
        self.needles, self.lasts = needles, {needle[-1:] for needle in needles}
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.lone_cr = self.cr = self.quote = self.found = False
        self.previous = before

    @property
    def carriage(self) -> bool:
        """A carriage return that the parser would read otherwise than universal newlines: one
        outside a CRLF (a line break to pandas, or a character inside a field), or a CRLF where a
        quote went by (a quoted field would keep it whole). The CRLFs of a Keras or Lightning
        CSVLogger, whose numbers are never quoted, end lines for pandas just as LF does."""
        return self.lone_cr or (self.cr and self.quote)

    def see(self, block: bytes, final: bool) -> None:
        """Check the next block; ``final``: nothing follows it (a character it cuts is an error)."""
        if b"\x00" in block:
            raise NotPlainText("NUL byte")
        if not block.isascii() or self.utf8.getstate()[0]:
            try:
                self.utf8.decode(block, final=final)
            except UnicodeDecodeError:
                raise NotPlainText("not UTF-8") from None
        if self.previous == b"\r" and not block.startswith(b"\n"):
            self.lone_cr = True
        if b"\r" in block:
            self.cr = True   # (a lone one also sets lone_cr, which decides alone)
            ends_in_cr = block.endswith(b"\r")   # its LF, if any, opens the next block
            if block.count(b"\r") != block.count(b"\r\n") + ends_in_cr or (ends_in_cr and final):
                self.lone_cr = True
        self.quote = self.quote or b'"' in block
        if not self.found and any(last in block for last in self.lasts):
            joined = self.previous + block
            self.found = any(needle in joined for needle in self.needles)
        self.previous = block[-1:] or self.previous


def inspect(path: str, end: int, *needles: bytes) -> tuple[bool, bool]:
    """Whether the first ``end`` bytes hold a carriage return that a parser would read otherwise
    than universal newlines (``BlockCheck.carriage``), and any of ``needles``, read a block at a
    time (``BlockCheck``, which raises ``NotPlainText`` at anything but clean text)."""
    check, left = BlockCheck(needles), end
    with open(path, "rb") as fh:
        while left > 0:
            block = fh.read(min(BLOCK, left))
            if not block:
                break
            left -= len(block)
            check.see(block, final=left <= 0)
    return check.carriage, check.found


def count_lines(path: str, end: int | None = None) -> int:
    """Line breaks in the first ``end`` bytes, as universal newlines count them."""
    with open_lines(path, end) as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(BLOCK), b""))
