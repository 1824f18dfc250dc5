"""TensorBoard event files, decoded without TensorFlow or TensorBoard: the TFRecord framing
and the few protobuf fields that carry scalars (``Event.step``, ``Summary.Value.tag`` with a
``simple_value`` as written by ``torch.utils.tensorboard``, or a one-element float/int tensor
as written by ``tf.summary.scalar``). Each directory of event files is one run; its files are
read in name order (a resumed run writes a new file) and each tag becomes a series."""
from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import InputError
from ..tables import Metric

EVENT_FILE_MARK = "tfevents"
# TensorProto dtypes holding one scalar: DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_HALF
_FLOAT, _DOUBLE, _INT32, _INT64, _HALF = 1, 2, 3, 9, 19
_NON_SCALAR_PLUGINS = {"histograms", "images", "audio", "text", "hparams", "pr_curves", "mesh",
                       "graph_run_metadata", "custom_scalars"}


def is_event_file(name: str) -> bool:
    return EVENT_FILE_MARK in os.path.basename(name)


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
        tag, value, tensor = None, None, None
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
                        plugins.setdefault(tag or "", name.decode("utf-8", "replace"))
        if tag is None:
            continue
        if value is None and tensor is not None and plugins.get(tag) not in _NON_SCALAR_PLUGINS:
            value = _tensor_scalar(tensor)
        if value is not None:
            yield tag, value


def read_event_file(path: str, series: dict[str, tuple[list, list]], plugins: dict[str, str]) -> str | None:
    """Append the scalars of one event file to ``series`` (tag -> steps, values). Returns a note
    when the file ends in a truncated record (a writer still running)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 12:
            return f"ignored {end - pos} trailing bytes of {os.path.basename(path)} (a truncated record)"
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12
        if start + length + 4 > end:
            return f"ignored a truncated record at byte {pos} of {os.path.basename(path)} (still being written?)"
        record = data[start:start + length]
        try:
            step = 0  # proto3 leaves a zero step out of the record
            for number, _wire, value in _fields(record):
                if number == 2:
                    step = value - (1 << 64) if value >= 1 << 63 else value
                elif number == 5:
                    for tag, scalar in _summary_scalars(value, plugins):
                        steps, values = series.setdefault(tag, ([], []))
                        steps.append(step)
                        values.append(scalar)
        except (ValueError, IndexError, struct.error):
            raise InputError(path, f"corrupt event record at byte {pos}: not a TensorBoard event file?") from None
        pos = start + length + 4
    return None


def read_tensorboard(paths: list[str]) -> tuple[dict[str, Metric], tuple[str, ...]]:
    """The scalar series of one run (its event files, in order)."""
    series: dict[str, tuple[list, list]] = {}
    plugins: dict[str, str] = {}
    notes = []
    for path in paths:
        note = read_event_file(path, series, plugins)
        if note:
            notes.append(note)
    metrics = {tag: Metric(steps=np.asarray(s, dtype=np.float64), values=np.asarray(v, dtype=np.float64))
               for tag, (s, v) in series.items()}
    return metrics, tuple(notes)
