"""CRC-32C (Castagnoli), the checksum TFRecord framing stores, for many records at once with numpy.

A CRC is linear over GF(2): with ``raw`` the CRC register started at 0 and not inverted at the
end, ``crc32c(m) = raw(m) ^ crc32c(zero bytes of len(m))``, and ``raw(m)`` is the XOR over m's
bytes of a table entry chosen by the byte and its distance from the end of the message
(leading zero bytes add nothing). So the records of one length are checked together, two bytes
per table lookup, instead of a Python loop over every byte."""
from __future__ import annotations

import functools

import numpy as np

_POLY = 0x82F63B78        # Castagnoli's polynomial, bit-reflected
_MASK_DELTA = 0xA282EAD8  # TFRecord's masking: rotate right by 15, add this
VECTOR_MAX = 256          # records up to this length are checked column by column
_ROW = 64                 # a longer record is cut into rows of this many bytes


def _base_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> np.uint32(1)) ^ np.uint32(_POLY), table >> np.uint32(1))
    return table.astype(np.uint32)


@functools.cache
def _shifted() -> np.ndarray:
    """[d][b]: raw CRC of byte b followed by d zero bytes. Built on first use, not on import:
    only TensorBoard logs need it."""
    table = np.empty((VECTOR_MAX, 256), np.uint32)
    table[0] = _base_table()
    for d in range(1, VECTOR_MAX):
        table[d] = table[0][table[d - 1] & 0xFF] ^ (table[d - 1] >> np.uint32(8))
    return table


def byte_table(d: int) -> np.ndarray:
    """Raw CRC of the byte b followed by d zero bytes, for every b."""
    return _shifted()[d]


@functools.cache
def pair_table(d: int) -> np.ndarray:
    """Raw CRC of the little-endian byte pair w followed by d zero bytes, for every w."""
    shifted = _shifted()
    return (shifted[d + 1][None, :] ^ shifted[d][:, None]).ravel()


def crc32c(data: bytes) -> int:
    """The CRC-32C of one byte string (a few bytes: record headers, and the zeros correction)."""
    crc, table = 0xFFFFFFFF, _shifted()[0]
    for byte in data:
        crc = int(table[(crc ^ byte) & 0xFF]) ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@functools.lru_cache(maxsize=4096)
def _zeros_crc(length: int) -> int:
    return crc32c(bytes(length))


def masked(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masked form of CRCs (rotated, so that a CRC of CRCs is not trivially one)."""
    crc = np.atleast_1d(np.asarray(crc, dtype=np.uint32))
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)   # wraps modulo 2**32


def _raw_rows(block: np.ndarray) -> np.ndarray:
    """Raw CRC of each row of a 2-D uint8 array whose width is even."""
    words = block.view("<u2")
    width = words.shape[1]
    crc = pair_table(2 * (width - 1))[words[:, 0]]
    for j in range(1, width):
        crc ^= pair_table(2 * (width - 1 - j))[words[:, j]]
    return crc


def _raw_long(record: np.ndarray) -> int:
    """Raw CRC of one long record: its rows at once, then folded row by row (Horner: shift the
    register past a row of zeros, add the next row's CRC)."""
    pad = -len(record) % _ROW
    rows = np.concatenate([np.zeros(pad, np.uint8), record]).reshape(-1, _ROW)
    shift = [_shifted()[_ROW - 1 - k] for k in range(4)]   # a register moved on by _ROW zero bytes
    crc = 0
    for part in _raw_rows(rows).tolist():
        crc = int(shift[0][crc & 0xFF] ^ shift[1][(crc >> 8) & 0xFF] ^ shift[2][(crc >> 16) & 0xFF]
                  ^ shift[3][crc >> 24]) ^ part
    return crc


def crc32c_many(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, block_rows: int = 1 << 14) -> np.ndarray:
    """The CRC-32C of each record ``buf[start:start + length]``. ``buf`` must hold one readable
    byte before each start (the framing's header does)."""
    out = np.empty(len(starts), np.uint32)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        if length > VECTOR_MAX:
            for row in rows.tolist():
                out[row] = _raw_long(buf[starts[row]:starts[row] + length]) ^ _zeros_crc(length)
            continue
        pad = length & 1   # an odd length starts a byte early: the byte is zeroed, adding nothing
        offsets = np.arange(-pad, length)
        for first in range(0, len(rows), block_rows):   # bounded temporaries
            part = rows[first:first + block_rows]
            block = buf[starts[part][:, None] + offsets]
            if pad:
                block[:, 0] = 0
            out[part] = _raw_rows(block) ^ np.uint32(_zeros_crc(length)) if length else np.uint32(0)
    return out
