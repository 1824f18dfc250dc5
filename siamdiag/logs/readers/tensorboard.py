"""TensorBoard event files, decoded without TensorFlow or TensorBoard: the TFRecord framing
and the few protobuf fields that carry scalars (``Event.step``, ``Summary.Value.tag`` with a
``simple_value`` as written by ``torch.utils.tensorboard``, or a one-element float/int tensor
as written by ``tf.summary.scalar``). Each directory of event files is one run; its files are
read in name order (a resumed run writes a new file) and each tag becomes a series. Every
record's CRC-32C checksums are checked: a damaged file is an error, never silently wrong values.

A writer's directory can hold subdirectories that are not runs: ``add_scalars`` writes each
series to ``<main_tag>_<key>/`` (tag ``main_tag``), ``add_hparams`` a timestamp directory of
hyperparameters; ``read_writer_directory`` reads them as what they are."""
from __future__ import annotations

import os
import struct
from array import array
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ..tables import Metric
from .crc32c import VECTOR_MAX, byte_table, crc32c, crc32c_many, masked, pair_table

# TensorProto dtypes holding one scalar: DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_HALF
_FLOAT, _DOUBLE, _INT32, _INT64, _HALF = 1, 2, 3, 9, 19
_HPARAMS = "hparams"
_NON_SCALAR_PLUGINS = {"histograms", "images", "audio", "text", "hparams", "pr_curves", "mesh",
                       "graph_run_metadata", "custom_scalars"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) for each field of a protobuf message; length-delimited
    values are bytes, fixed-width values are raw bytes to be unpacked by the caller."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, None for anything else."""
    dtype, dims, content, packed = 0, 0, b"", {}
    for number, _wire, value in _fields(buf):
        if number == 1:
            dtype = value
        elif number == 2:
            dims = sum(1 for n, _w, dim in _fields(value) if n == 2 and any(
                f == 1 and size != 1 for f, _w2, size in _fields(dim)))
        elif number == 4:
            content = value
        elif number in (5, 6, 7, 10, 13):
            packed[number] = value
    if dims:
        return None
    formats = {_FLOAT: ("<f", 5), _DOUBLE: ("<d", 6), _INT32: (None, 7), _INT64: (None, 10), _HALF: ("<e", 13)}
    if dtype not in formats:
        return None
    fmt, field = formats[dtype]
    if content and fmt:
        return struct.unpack_from(fmt, content)[0] if len(content) == struct.calcsize(fmt) else None
    if content:
        return float(int.from_bytes(content, "little", signed=True))
    if field not in packed:
        return None
    raw = packed[field]
    if dtype in (_FLOAT, _DOUBLE):
        return struct.unpack_from(fmt, raw)[0] if isinstance(raw, bytes) and len(raw) == struct.calcsize(fmt) else None
    if dtype == _HALF:
        bits = raw if isinstance(raw, int) else _varint(raw, 0)[0]
        return struct.unpack("<e", bits.to_bytes(2, "little"))[0]
    value = raw if isinstance(raw, int) else _varint(raw, 0)[0]
    return float(value - (1 << 64) if value >= 1 << 63 else value)


def _summary_scalars(buf: bytes, plugins: dict[str, str]):
    """(tag, value) for every scalar in a Summary message."""
    for number, _wire, value_msg in _fields(buf):
        if number != 1:
            continue
        tag, value, tensor = "", None, None  # proto3 leaves an empty tag out of the record
        for n, _w, v in _fields(value_msg):
            if n == 1:
                tag = v.decode("utf-8", "replace")
            elif n == 2:
                value = struct.unpack("<f", v)[0]
            elif n == 8:
                tensor = v
            elif n == 9:
                for mn, _mw, mv in _fields(v):
                    if mn == 1:
                        name = next((pv for pn, _pw, pv in _fields(mv) if pn == 1), b"")
                        plugins.setdefault(tag, name.decode("utf-8", "replace"))
        if value is None and tensor is not None and plugins.get(tag) not in _NON_SCALAR_PLUGINS:
            value = _tensor_scalar(tensor)
        if value is not None:
            yield tag, value


# A scalar event as torch.utils.tensorboard (and TF1's writer) frames it, field by field:
# [0x09 wall_time:8] [0x10 step:varint] 0x2a len {0x0a len {0x0a taglen tag 0x15 simple_value:4}}
# with each length in one byte. Records of this layout are decoded with numpy all at once;
# any other record goes through the field walk above, which is several times slower per record.
_WALL_TIME, _STEP, _SUMMARY, _VALUE_OR_TAG, _SIMPLE_VALUE = 0x09, 0x10, 0x2A, 0x0A, 0x15
_LENGTH = struct.Struct("<Q").unpack_from
_CRC = struct.Struct("<I").unpack_from
_FIRST_RUN, _MAX_RUN = 16, 1 << 16   # rows of a cycle checked together (see _cycle_rows)
CHUNK_RECORDS = 1 << 19   # records decoded together: ~10 arrays of this length live at once
BLOCK_BYTES = 1 << 20   # rows of a cycle decoded together: a block that stays in the CPU's cache
_PAD = 32  # the layout check reads at most 26 bytes into a record; short ones stay inside the padding


@dataclass(frozen=True)
class _Rows:
    """``count`` repetitions ("rows") from byte ``start`` of a cycle of records whose payloads
    are ``lengths`` bytes long: the tags a writer logs at each step, in turn. Rows follow each
    other every ``width`` bytes, so a field of every row is a strided view of the file."""

    start: int
    count: int
    lengths: tuple[int, ...]

    @property
    def width(self) -> int:
        return sum(self.lengths) + 16 * len(self.lengths)

    def offsets(self) -> list[int]:
        """Where each record of the cycle starts within a row (its header)."""
        return np.concatenate(([0], np.cumsum(np.array(self.lengths) + 16)[:-1])).tolist()


def _cycle(walked: list[tuple[int, bytes]]) -> list[int] | None:
    """The lengths of the records the last records repeat (the tags a writer logs at each step,
    in turn): the shortest period up to 32 seen twice at the end of ``walked`` (each record's
    length and _signature), None when there is none."""
    for period in range(1, min(32, len(walked) // 2) + 1):
        if walked[-period:] == walked[-2 * period:-period]:
            return [length for length, _signature in walked[-period:]]
    return None


def _signature(data: memoryview, at: int, length: int) -> bytes:
    """What tells records of one length apart in a cycle: the tag of a record laid out as a plain
    scalar (after the wall time and step), read without checks: it only steers which period
    _cycle picks. Two tags of one length logged in turn are then a cycle of two, not of one whose
    every other record fails to repeat the first (and is decoded the slow way)."""
    end = at + length
    at += 9 if data[at] == _WALL_TIME else 0
    if at < end and data[at] == _STEP:
        at += 1
        while at < end and data[at] & 0x80:
            at += 1
        at += 1
    if at + 6 > end or data[at] != _SUMMARY:
        return b""
    return bytes(data[at + 6:at + 6 + data[at + 5]])


def _column(padded: np.ndarray, dtype: str, offset: int, count: int, stride: int) -> np.ndarray:
    """``count`` values of ``dtype`` read from ``offset`` on, one every ``stride`` bytes (no copy)."""
    return np.ndarray((count,), dtype, buffer=padded, offset=offset, strides=(stride,))


def _cycle_rows(padded: np.ndarray, size: int, pos: int, cycle: list[int]) -> int:
    """How many whole rows of the cycle follow from ``pos``: rows whose every length field holds
    the cycle's length (what walking the records would find), checked in windows that double
    while they hold, so that a cycle broken early costs little."""
    run = _Rows(pos, 0, tuple(cycle))
    available, done, window = (size - pos) // run.width, 0, _FIRST_RUN
    while done < available:
        count = min(window, available - done)
        agree = np.ones(count, bool)
        for offset, length in zip(run.offsets(), cycle):
            agree &= _column(padded, "<u8", pos + done * run.width + offset, count, run.width) == length
        if not agree.all():
            return done + int(np.argmin(agree))
        done, window = done + count, min(2 * window, _MAX_RUN)
    return done


def _frames(padded: np.ndarray, size: int, path: str
            ) -> tuple[list[_Rows], np.ndarray, np.ndarray, str | None, int | None]:
    """The TFRecord frames of the file: the runs of a repeated cycle of record lengths, the start
    and length of every other complete payload, a note when the file ends in a truncated record
    (a writer still running), and the offset of a record that runs past the end with a length
    field that fails its CRC (a damaged length, not a record being written).

    Frames follow each other, so each start depends on the lengths before it. Records are walked
    one at a time until the last lengths repeat a cycle; the rows of that cycle that follow are
    then found at once (_cycle_rows), and walking resumes where they end."""
    data = memoryview(padded)[:size]
    runs: list[_Rows] = []
    starts, lengths = array("q"), array("q")   # the records walked, 8 bytes each
    walked: list[tuple[int, bytes]] = []   # the records walked since the last run, for _cycle
    pos, note, damaged = 0, None, None
    while pos < size:
        cycle = _cycle(walked)
        if cycle is not None:
            count = _cycle_rows(padded, size, pos, cycle)
            if count:
                runs.append(_Rows(pos, count, tuple(cycle)))
                pos += count * runs[-1].width
            walked = []
            if pos >= size:
                break
        if size - pos < 12:
            note = f"ignored {size - pos} trailing bytes of {os.path.basename(path)} (a truncated record)"
            break
        (length,) = _LENGTH(data, pos)
        if pos + 12 + length + 4 > size:
            if int(masked(crc32c(bytes(data[pos:pos + 8])))[0]) != _CRC(data, pos + 8)[0]:
                damaged = pos
                break
            note = f"ignored a truncated record at byte {pos} of {os.path.basename(path)} (still being written?)"
            break
        starts.append(pos + 12)
        lengths.append(length)
        walked = walked[-63:] + [(length, _signature(data, pos + 12, length))]
        pos += 12 + length + 4
    return runs, np.array(starts, np.int64), np.array(lengths, np.int64), note, damaged


def _corrupt(path: str, offset: int) -> InputError:
    return InputError(path, f"corrupt TensorBoard record at byte {offset}: its CRC-32C checksum does not match "
                            "(the file is damaged)")


def _first_bad_crc(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> int | None:
    """The offset of the first record (``starts`` in file order) whose checksums fail, as TFRecord
    frames it: [length:8][masked CRC of the length:4][payload][masked CRC of the payload:4]."""
    stored = np.ndarray((len(padded) - 3,), "<u4", buffer=padded, strides=(1,))   # a uint32 at every offset
    for first in range(0, len(starts), CHUNK_RECORDS):
        at, length = starts[first:first + CHUNK_RECORDS], lengths[first:first + CHUNK_RECORDS]
        sizes, which = np.unique(length, return_inverse=True)
        header = masked(np.array([crc32c(struct.pack("<Q", n)) for n in sizes.tolist()], np.uint32))[which]
        bad = (stored[at - 4] != header) | (stored[at + length] != masked(crc32c_many(padded, at, length)))
        if bad.any():
            return int(at[np.argmax(bad)]) - 12
    return None


def _varints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value (as int64, two's complement like protobuf's int64) and byte length of the varint
    starting at each offset; length 0 where it runs past ten bytes."""
    value = np.zeros(len(at), dtype=np.uint64)
    size = np.zeros(len(at), dtype=np.int64)
    open_ = np.ones(len(at), dtype=bool)
    for k in range(10):
        byte = buf[at + k]
        value[open_] |= (byte[open_] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        ends = open_ & (byte < 0x80)
        size[ends] = k + 1
        open_ &= ~ends
        if not open_.any():
            break
    return value.view(np.int64), size


def _simple_scalars(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """For every record: whether it has the plain scalar layout (lengths agreeing with each
    other and with the record's), and where it does, its step, value and tag position."""
    at = starts + 9 * (buf[starts] == _WALL_TIME)
    has_step = buf[at] == _STEP
    step, size = _varints(buf, at + 1)
    step = np.where(has_step, step, 0)  # proto3 leaves a zero step out of the record
    at = at + np.where(has_step, 1 + size, 0)
    summary_len, value_len, tag_len = (buf[at + k].astype(np.int16) for k in (1, 3, 5))
    tag_at = at + 6
    simple = ((size > 0) | ~has_step) & (buf[at] == _SUMMARY) & (buf[at + 2] == _VALUE_OR_TAG) \
        & (buf[at + 4] == _VALUE_OR_TAG) & (tag_len < 0x80) & (value_len == tag_len + 7) \
        & (summary_len == tag_len + 9) & (at + 2 + summary_len == starts + lengths)
    simple &= buf[np.where(simple, tag_at + tag_len, 0)] == _SIMPLE_VALUE
    value_at = np.where(simple, tag_at + tag_len + 1, 0)  # inside the record where simple
    values = np.empty((len(starts), 4), dtype=np.uint8)
    for k in range(4):  # byte by byte: one index array at a time, not four
        values[:, k] = buf[value_at + k]
    values = values.view("<f4").ravel()
    return simple, step, values, tag_at, tag_len


def _event_scalars(record: bytes, plugins: dict[str, str]):
    """(tag, step, value) for each scalar of one Event record, walking its protobuf fields."""
    step, summaries = 0, []
    for number, _wire, value in _fields(record):
        if number == 2:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5:
            summaries.append(value)
    for summary in summaries:
        for tag, scalar in _summary_scalars(summary, plugins):
            yield tag, step, scalar


_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _tag_codes(data, words: np.ndarray, at: np.ndarray, length: np.ndarray, tag_ids: dict[bytes, int]) -> np.ndarray:
    """Each record's tag (at ``at``, ``length`` bytes long) as a code into ``tag_ids``, which
    gains the tags not seen before. Tags are told apart by their length and first and last eight
    bytes (``words``: the file as a uint64 at every offset), then every record's middle bytes
    are compared with those of its group's first record; a record that differs is decoded alone."""
    first = words[at] & _LOW_BYTES[np.minimum(length, 8)]
    last = np.where(length > 8, words[at + np.maximum(length - 8, 0)], np.uint64(0))
    key = first ^ (last * np.uint64(0x9E3779B97F4A7C15)) ^ length.astype(np.uint64)
    _keys, rep, which = np.unique(key, return_index=True, return_inverse=True)
    rep_at = at[rep][which]
    same = (first == first[rep][which]) & (last == last[rep][which]) & (length == length[rep][which])
    for offset in range(8, int(length.max(initial=0)) - 8, 8):   # the middle of tags over 16 bytes
        middle = length - 8 > offset
        same &= ~middle | (words[at + offset * middle] == words[rep_at + offset * middle])
    codes = np.array([tag_ids.setdefault(bytes(data[a:a + n]), len(tag_ids))
                      for a, n in zip(at[rep].tolist(), length[rep].tolist())], np.int64)[which]
    for row in np.flatnonzero(~same).tolist():
        codes[row] = tag_ids.setdefault(bytes(data[at[row]:at[row] + length[row]]), len(tag_ids))
    return codes


@dataclass(frozen=True)
class _Layout:
    """The plain scalar records that repeat one record (the template) but for their wall time,
    step and value, positions counted from the record's header: ``checks`` are the template's
    bytes every such record repeats, as (offset, 8 bytes, mask of the bytes that count): all but
    those three fields and, of the step, the bits that say where its varint ends. Their payload's
    CRC is ``crc`` with the table entries of the bytes at ``lookups`` added (see crc32c.py)."""

    tag: bytes
    length: int
    checks: tuple[tuple[int, np.uint64, np.uint64], ...]
    step: tuple[int, ...]
    value: int
    crc: int
    lookups: tuple[tuple[int, str, np.ndarray], ...]


def _layout(padded: np.ndarray, at: int, length: int) -> _Layout | None:
    """The layout of the record whose payload starts at ``at``; None unless it is a plain scalar
    (as _simple_scalars decides) whose length field has a good checksum, so that every record
    that repeats it is one too, with its length checked."""
    header = bytes(padded[at - 12:at - 4])
    if int(masked(crc32c(header))[0]) != _CRC(padded, at - 4)[0] or length >= VECTOR_MAX:
        return None
    simple, _step, _value, tag_at, tag_len = _simple_scalars(padded, np.array([at]), np.array([length]))
    if not simple[0]:
        return None
    tag_at, tag_len = int(tag_at[0]) - at, int(tag_len[0])   # from here on, payload-relative
    wall = 9 if padded[at] == _WALL_TIME else 0
    step = range(wall + 1, tag_at - 6)   # empty where the step is left out (zero)
    value = tag_at + tag_len + 1
    mask = bytearray(b"\xff" * (12 + length) + bytes(8))   # header, payload, and past its end
    varying = set(range(1, wall)) | set(step) | set(range(value, value + 4))
    for k in varying:
        mask[12 + k] = 0x80 if k in step else 0
    template = bytes(padded[at - 12:at + length]) + bytes(8)
    checks = tuple((k, np.uint64(_LENGTH(template, k)[0]), np.uint64(_LENGTH(mask, k)[0]))
                   for k in range(0, 12 + length, 8) if any(mask[k:k + 8]))
    crc, lookups = _crc_parts(template[12:12 + length], varying)
    return _Layout(bytes(padded[at + tag_at:at + tag_at + tag_len]), length, checks,
                   tuple(12 + k for k in step), 12 + value, crc, lookups)


def _crc_parts(payload: bytes, varying: set[int]) -> tuple[int, tuple[tuple[int, str, np.ndarray], ...]]:
    """A payload's CRC as a constant (the CRC of ``payload`` with the ``varying`` bytes zeroed) and
    the table lookups (header-relative offset, dtype, table) that add the varying bytes' part, two
    bytes at a time where they can: CRC-32C is linear, so each byte's part only depends on its
    value and its distance from the end."""
    zeroed, lookups, k = bytearray(payload), [], 0
    while k < len(payload):
        if k not in varying:
            k += 1
            continue
        width = 2 if k + 1 < len(payload) else 1
        zeroed[k:k + width] = bytes(width)
        distance = len(payload) - k - width
        lookups.append((12 + k, "<u2", pair_table(distance)) if width == 2 else (12 + k, "u1", byte_table(distance)))
        k += width
    return crc32c(bytes(zeroed)), tuple(lookups)


def _decode_block(padded: np.ndarray, layout: _Layout, base: int, count: int, width: int):
    """``count`` records read as ``layout``'s, one every ``width`` bytes from the header at ``base``:
    which repeat the template, which of those fail their payload CRC, and their steps and values."""
    def column(dtype: str, offset: int) -> np.ndarray:
        return _column(padded, dtype, base + offset, count, width)

    differ = np.zeros(count, np.uint64)
    for offset, word, mask in layout.checks:
        differ |= (column("<u8", offset) ^ word) & mask
    same = differ == 0
    crc = np.full(count, layout.crc, np.uint32)
    for offset, dtype, table in layout.lookups:
        crc ^= table[column(dtype, offset)]
    bad = same & (column("<u4", 12 + layout.length) != masked(crc))
    steps = np.zeros(count, np.uint64)
    for k, offset in enumerate(layout.step):
        steps |= (column("u1", offset) & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return same, bad, steps.view(np.int64), column("<f4", layout.value).copy()


@dataclass
class _Decoded:
    """What decoding runs of rows found: (tag, payload offsets, steps, values) of plain scalars,
    the payload starts and lengths of the records left to the record-by-record path, and the
    offsets of records whose CRC fails (the first of each block of rows)."""

    parts: list[tuple[bytes, np.ndarray, np.ndarray, np.ndarray]]
    others: list[tuple[np.ndarray, np.ndarray]]
    bad: list[int]


def _decode_rows(padded: np.ndarray, run: _Rows, found: _Decoded) -> None:
    """The plain scalars of a run of rows, block of rows by block (each stays in the CPU's cache
    while all its fields are read), and record by record within a cycle. A record's layout is
    that of the same record in the first row; those that do not repeat it, and every record whose
    first is not a plain scalar, are left to the record-by-record path."""
    width = run.width
    block = max(1, BLOCK_BYTES // width)
    positions = [(offset, length, _layout(padded, run.start + offset + 12, length))
                 for offset, length in zip(run.offsets(), run.lengths)]
    for first in range(0, run.count, block):
        count = min(block, run.count - first)
        for offset, length, layout in positions:
            base = run.start + first * width + offset
            at = base + 12 + width * np.arange(count, dtype=np.int64)
            if layout is None:
                found.others.append((at, np.full(count, length, np.int64)))
                continue
            same, bad, steps, values = _decode_block(padded, layout, base, count, width)
            if bad.any():
                found.bad.append(int(at[np.argmax(bad)]) - 12)
            if not same.all():
                found.others.append((at[~same], np.full(count - int(same.sum()), length, np.int64)))
                at, steps, values = at[same], steps[same], values[same]
            if len(at):
                found.parts.append((layout.tag, at, steps, values))


def _by_tag_walked(data: bytes, path: str, starts, lengths, rows, plugins: dict[str, str]) -> dict[str, tuple]:
    """(payload offsets, steps, values) per tag of the given records, each walked field by field."""
    entries: dict[str, list[tuple[int, int, float]]] = {}
    for row in rows.tolist():
        try:
            for tag, step, scalar in _event_scalars(bytes(data[starts[row]:starts[row] + lengths[row]]), plugins):
                entries.setdefault(tag, []).append((int(starts[row]), step, scalar))
        except (ValueError, IndexError, struct.error):
            raise InputError(path, f"corrupt event record at byte {starts[row] - 12}: "
                                   "not a TensorBoard event file?") from None
    walked = {}
    for tag, found in entries.items():
        offsets, steps, values = zip(*found)
        walked[tag] = (np.asarray(offsets, dtype=np.int64), np.asarray(steps, dtype=np.int64),
                       np.asarray(values, dtype=np.float64))
    return walked


def _by_tag_simple(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray
                   ) -> tuple[list[tuple[bytes, np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """(tag, payload offsets, steps, values) of the plain scalars among the given records, found
    by _simple_scalars in chunks (bounded temporaries), and the indices of the other records."""
    data = memoryview(padded)
    words = np.ndarray((len(padded) - 7,), "<u8", buffer=padded, strides=(1,))   # a uint64 at every offset
    tag_ids: dict[bytes, int] = {}
    pieces, other = [], np.empty(len(starts), bool)
    for first in range(0, len(starts), CHUNK_RECORDS):
        part = slice(first, first + CHUNK_RECORDS)
        simple, step, value, tag_at, tag_len = _simple_scalars(padded, starts[part], lengths[part])
        mine = np.flatnonzero(simple)
        codes = _tag_codes(data, words, tag_at[mine], tag_len[mine], tag_ids)
        pieces.append((codes, starts[part][mine], step[mine], value[mine]))
        other[part] = ~simple
    tags = list(tag_ids)
    found = []
    for codes, at, step, value in pieces:
        order = np.argsort(codes, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(tags)))])
        for code in np.flatnonzero(np.diff(bounds)).tolist():
            mine = order[bounds[code]:bounds[code + 1]]
            found.append((tags[code], at[mine], step[mine], value[mine]))
    return found, np.flatnonzero(other)


def _read_padded(path: str) -> tuple[np.ndarray, int]:
    """The file's bytes followed by _PAD zero bytes, and its size: read once, into a buffer not
    zeroed first (zeroing a bytearray the size of the file takes as long as reading it)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            padded = np.empty(size + _PAD, np.uint8)
            size = fh.readinto(memoryview(padded)[:size])
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    padded[size:] = 0
    return padded, size


def _scan_event_file(path: str, plugins: dict[str, str]) -> tuple[dict[str, list[tuple]], str | None]:
    """The scalars of one event file as pieces per tag, each (payload offsets, steps, values) in
    record order, and a note when the file ends in a truncated record. They are returned so that
    the file's bytes are freed before the pieces are joined. Rows of a cycle are decoded at once,
    the other records by _simple_scalars or field by field; the first record whose checksums
    fail is named before any record that fails to parse."""
    padded, size = _read_padded(path)
    runs, starts, lengths, note, damaged = _frames(padded, size, path)
    found = _Decoded([], [(starts, lengths)], [])
    for run in runs:
        _decode_rows(padded, run, found)
    starts, lengths = (np.concatenate(column) for column in zip(*found.others))
    order = np.argsort(starts, kind="stable")
    starts, lengths = starts[order], lengths[order]
    bad = [at for at in (*found.bad, _first_bad_crc(padded, starts, lengths), damaged) if at is not None]
    if bad:
        raise _corrupt(path, min(bad))
    simple, other = _by_tag_simple(padded, starts, lengths)
    pieces: dict[str, list[tuple]] = {}
    for tag, at, steps, values in sorted(found.parts + simple, key=lambda part: part[1][0]):
        pieces.setdefault(tag.decode("utf-8", "replace"), []).append((at, steps, values))
    for tag, piece in _by_tag_walked(memoryview(padded), path, starts, lengths, other, plugins).items():
        pieces.setdefault(tag, []).append(piece)
    return pieces, note


def read_event_file(path: str, plugins: dict[str, str]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str | None]:
    """The scalar series (tag -> steps, values, in record order) of one event file, and a note
    when the file ends in a truncated record."""
    pieces, note = _scan_event_file(path, plugins)
    series = {}
    for tag, found in pieces.items():
        with np.errstate(invalid="ignore"):   # a signalling NaN logged becomes a quiet one, silently
            offsets, steps, values = (np.concatenate(column) for column in zip(*found))
            values = values.astype(np.float64, copy=False)
        if len(found) > 1 and (offsets[1:] < offsets[:-1]).any():
            order = np.argsort(offsets, kind="stable")  # record order; a record's own scalars keep theirs
            steps, values = steps[order], values[order]
        series[tag] = (steps, values)
    return series, note


def read_tensorboard(paths: list[str], plugins: dict[str, str] | None = None
                     ) -> tuple[dict[str, Metric], tuple[str, ...]]:
    """The scalar series of one run (its event files, in order); ``plugins`` gains the plugin
    named by each tag that carried one."""
    chunks: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    plugins = {} if plugins is None else plugins
    notes = []
    for path in paths:
        series, note = read_event_file(path, plugins)
        for tag, chunk in series.items():
            chunks.setdefault(tag, []).append(chunk)
        if note:
            notes.append(note)
    metrics = {tag: Metric(steps=np.concatenate([c[0] for c in parts]).astype(np.float64),
                           values=np.concatenate([c[1] for c in parts]))
               for tag, parts in chunks.items()}
    return metrics, tuple(notes)


def holds_scalars(path: str) -> bool:
    """Whether an event file holds a scalar summary, read record by record up to the first one:
    a few records of a writer that logs scalars, the whole file of one that logged nothing, or
    only histograms, images or a graph. A file that cannot be read or parsed, or whose length
    field fails its checksum, counts as holding scalars: reading it then says what is wrong."""
    plugins: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            while len(header := fh.read(12)) == 12:
                if int(masked(crc32c(header[:8]))[0]) != _CRC(header, 8)[0]:
                    return True
                (length,) = _LENGTH(header, 0)
                record = fh.read(length)
                if len(record) < length or len(fh.read(4)) < 4:
                    return False   # a last record cut short by a writer still at work
                if next(_event_scalars(record, plugins), None) is not None:
                    return True
    except (OSError, ValueError, IndexError, struct.error):
        return True
    return False


@dataclass(frozen=True)
class WriterRun:
    """One run found in a writer's directory: where, its scalar series, and what reading it noted."""

    path: str
    series: dict[str, Metric]
    notes: tuple[str, ...]


def _add_scalars_name(directory: str, tags: list[str]) -> str | None:
    """``main_tag/key`` when a directory is named as add_scalars names them (``<main_tag>_<key>``,
    '/' in the tag written as '_') and holds the one tag ``main_tag``; else None."""
    if len(tags) != 1 or not directory.startswith(tags[0].replace("/", "_") + "_"):
        return None
    return f"{tags[0]}/{directory[len(tags[0]) + 1:]}"


def read_writer_directory(directory: str, files: tuple[str, ...],
                          children: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> list[WriterRun]:
    """The runs of one writer's directory and its subdirectories of event files (``children``).
    A subdirectory ``<main_tag>_<key>`` whose one tag is ``main_tag`` is an ``add_scalars`` series
    of this run, read as ``main_tag/key``; one holding hparams summaries is ``add_hparams``' and
    never a run; one without scalars is skipped; any other is a run of its own. Each is noted."""
    series, own_notes = read_tensorboard(list(files)) if files else ({}, ())
    notes, grouped, others = list(own_notes), [], []
    for child, child_files in children:
        plugins: dict[str, str] = {}
        found, child_notes = read_tensorboard(list(child_files), plugins)
        name = os.path.basename(child)
        series_name = _add_scalars_name(name, list(found))
        if _HPARAMS in plugins.values():
            notes.append(f"{name}/ holds add_hparams' hyperparameters and final metrics: not a run, not judged")
        elif series_name and series_name not in series:
            series[series_name] = next(iter(found.values()))
            grouped.append(f"{name}/ as {series_name}")
            notes += child_notes
        elif found:
            others.append(WriterRun(child, found, child_notes))
        else:
            notes.append(f"skipped {name}/: no scalar summaries in its event files")
    if grouped:
        notes.append("add_scalars series read with this run: " + ", ".join(grouped))
    if series:
        return [WriterRun(directory, series, tuple(notes))] + others
    if others:   # what was said of this directory goes with the first run found under it
        others[0] = WriterRun(others[0].path, others[0].series, tuple(notes) + others[0].notes)
    return others
