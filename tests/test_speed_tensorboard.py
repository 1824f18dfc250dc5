"""TensorBoard event files decoded a cycle of rows at a time (issue #20) give what reading them one
record at a time gives. The oracle walks the TFRecord frames one by one, checks each record's
checksums (crc32c_many, checked against TensorBoard's own in test_readers) and decodes each record
by walking its protobuf fields:
series (bit for bit, in record order), notes, and the error and its offset for damaged files.
The files are seeded random mixes of what breaks a cycle or a layout: steps whose varint grows,
steps left out (zero) or spelt with a redundant byte, missing wall times, a tag of the same length
as another, tags repeated within a cycle, tensor and two-value events, NaN, truncated ends."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from siamdiag.errors import InputError
from siamdiag.logs.readers import tensorboard
from siamdiag.logs.readers.crc32c import crc32c, crc32c_many, masked


def _varint(n: int, extra: int = 0) -> bytes:
    """``n`` as a protobuf varint (two's complement for negatives), with ``extra`` redundant bytes."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n and not extra:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)
        if not n:
            extra -= 1


def _scalar(tag: bytes, value: bytes, wall: float | None, step: int, step_extra: int = 0) -> bytes:
    val = b"\x0a" + _varint(len(tag)) + tag + b"\x15" + value
    summary = b"\x0a" + _varint(len(val)) + val
    return (b"" if wall is None else b"\x09" + struct.pack("<d", wall)) \
        + (b"\x10" + _varint(step, step_extra) if step or step_extra else b"") + b"\x2a" + _varint(len(summary)) + summary


def _tensor(tag: bytes, value: float, step: int) -> bytes:
    tensor = b"\x08\x01" + b"\x2a\x04" + struct.pack("<f", value)   # DT_FLOAT, float_val packed
    val = b"\x0a" + _varint(len(tag)) + tag + b"\x42" + _varint(len(tensor)) + tensor
    summary = b"\x0a" + _varint(len(val)) + val
    return b"\x10" + _varint(step) + b"\x2a" + _varint(len(summary)) + summary


def _two_values(tags: tuple[bytes, bytes], values: tuple[bytes, bytes], step: int) -> bytes:
    vals = b"".join(b"\x0a" + _varint(len(v)) + v for v in
                    (b"\x0a" + _varint(len(t)) + t + b"\x15" + x for t, x in zip(tags, values)))
    return b"\x10" + _varint(step) + b"\x2a" + _varint(len(vals)) + vals


def _crcs(payloads: list[bytes]) -> list[bytes]:
    """Each payload's masked CRC-32C, packed."""
    lengths = np.array([len(p) for p in payloads], np.int64)
    starts = 1 + np.concatenate(([0], np.cumsum(lengths)[:-1]))
    crcs = masked(crc32c_many(np.frombuffer(b"\0" + b"".join(payloads), np.uint8), starts, lengths))
    return [struct.pack("<I", c) for c in crcs.tolist()]


def _framed(payloads: list[bytes]) -> list[bytes]:
    """The payloads framed as TFRecords: [length][its masked CRC][payload][its masked CRC]."""
    headers = [struct.pack("<Q", len(p)) for p in payloads]
    return [h + c + p + pc for h, c, p, pc in zip(headers, _crcs(headers), payloads, _crcs(payloads))]


def _event_file(seed: int) -> bytes:
    """Records of a writer logging a cycle of tags per step, with rare irregular records."""
    rng = np.random.default_rng(seed)
    pool = [b"loss", b"lr", b"grad", b"val/loss", b"x" * 127, b"\xff\xfeab", b"train/loss", b"train/lozz"]
    cycle = [pool[i] for i in rng.choice(len(pool), int(rng.integers(1, 5)))]   # repeats allowed
    steps = int(rng.choice([150, 600, 2500]))
    first = int(rng.choice([0, 1, 100, 16_300, 2**21 - 50, 2**40, -3]))   # varints that grow, and the longest
    wall = rng.random() < 0.8
    payloads = [b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0dbrain.Event:2"]   # file_version
    rare = 20 / (steps * len(cycle))
    for step in range(first, first + steps):
        for tag in cycle:
            value = struct.pack("<f", np.float32(rng.normal())) if rng.random() > 0.01 else \
                rng.choice([b"\x00\x00\xc0\x7f", b"\x01\x00\x80\x7f", b"\x00\x00\x00\x80"])   # NaNs, -0.0
            when = 1.7e9 + step + rng.random() if wall else None
            odd = rng.random()
            if odd < rare:
                payloads.append(_tensor(tag, float(rng.normal()), step))
            elif odd < 2 * rare:
                payloads.append(_two_values((tag, b"lr"), (value, b"\x00\x00\x80\x3f"), step))
            elif odd < 3 * rare:   # another tag of the same length, one byte or all different
                other = rng.choice([bytes(reversed(tag)), b"#" + tag[1:], tag[:-1] + b"#", tag[:2] + b"#" + tag[3:]])
                payloads.append(_scalar(other, value, when, step))
            elif odd < 4 * rare:   # a step spelt with a redundant byte, or a wall time left out
                payloads.append(_scalar(tag, value, None, step, step_extra=int(rng.integers(0, 2))))
            else:
                payloads.append(_scalar(tag, value, when, step))
    data = b"".join(_framed(payloads))
    end = rng.random()
    if end < 0.2:
        data = data[:-int(rng.integers(1, 30))]   # a record still being written
    elif end < 0.3:
        data += b"\x01\x02\x03"
    return data


def _reference(data: bytes, path: str):
    """Series and notes of an event file read one record at a time, or the error it raises."""
    name = path.rsplit("/", 1)[-1]
    records, pos, note, damaged = [], 0, None, None
    while pos < len(data):
        if len(data) - pos < 12:
            note = f"ignored {len(data) - pos} trailing bytes of {name} (a truncated record)"
            break
        (length,) = struct.unpack_from("<Q", data, pos)
        header_ok = int(masked(crc32c(data[pos:pos + 8]))[0]) == struct.unpack_from("<I", data, pos + 8)[0]
        if pos + 16 + length > len(data):
            if header_ok:
                note = f"ignored a truncated record at byte {pos} of {name} (still being written?)"
            else:
                damaged = pos
            break
        records.append((pos, data[pos + 12:pos + 12 + length], header_ok, data[pos + 12 + length:pos + 16 + length]))
        pos += 16 + length
    crcs = _crcs([payload for _at, payload, _ok, _crc in records]) if records else []
    bad = [at for (at, _payload, ok, stored), crc in zip(records, crcs) if not ok or stored != crc]
    if bad or damaged is not None:
        return InputError(path, f"corrupt TensorBoard record at byte {(bad + [damaged])[0]}: its CRC-32C checksum "
                                "does not match (the file is damaged)")
    series: dict[str, tuple[list, list]] = {}
    for at, payload, _ok, _crc in records:
        try:
            for tag, step, value in tensorboard._event_scalars(payload, {}):
                series.setdefault(tag, ([], []))[0].append(step)
                series[tag][1].append(value)
        except (ValueError, IndexError, struct.error):
            return InputError(path, f"corrupt event record at byte {at}: not a TensorBoard event file?")
    return {tag: (np.array(s, np.int64), np.array(v, np.float64)) for tag, (s, v) in series.items()}, note


def _check(data: bytes, tmp_path) -> InputError | None:
    """Reading the file as one event file gives what _reference gives; the error, if any."""
    path = tmp_path / "events.out.tfevents.1.host"
    path.write_bytes(data)
    expected = _reference(data, str(path))
    if isinstance(expected, InputError):
        with pytest.raises(InputError) as raised:
            tensorboard.read_event_file(str(path), {})
        assert str(raised.value) == str(expected)
        return expected
    series, note = tensorboard.read_event_file(str(path), {})
    assert note == expected[1]
    assert sorted(series) == sorted(expected[0])
    for tag, (steps, values) in expected[0].items():
        assert series[tag][0].dtype == np.int64 and series[tag][1].dtype == np.float64
        np.testing.assert_array_equal(series[tag][0], steps)
        np.testing.assert_array_equal(series[tag][1].view(np.int64), values.view(np.int64))   # bit for bit
    return None


@pytest.fixture(params=[None, 300], ids=["blocks of 1 MB", "blocks of 300 bytes"])
def blocks(request, monkeypatch):
    if request.param:
        monkeypatch.setattr(tensorboard, "BLOCK_BYTES", request.param)


@pytest.mark.parametrize("seed", range(16))
def test_event_files_read_as_one_record_at_a_time(seed, tmp_path, blocks):
    _check(_event_file(seed), tmp_path)


@pytest.mark.parametrize("seed", range(16))
def test_damaged_event_files_fail_as_one_record_at_a_time(seed, tmp_path, blocks):
    """One byte changed anywhere (a length, a checksum, a tag, a step, a value): the first record
    whose checksums fail is named, as reading one record at a time names it."""
    rng = np.random.default_rng(1000 + seed)
    data = bytearray(_event_file(seed))
    for _ in range(int(rng.integers(1, 3))):
        at = int(rng.integers(len(data)))
        data[at] ^= int(rng.integers(1, 256))
    _check(bytes(data), tmp_path)


def test_a_cycle_whose_first_row_is_damaged_or_irregular(tmp_path):
    """The first row of a run is its records' template: a template that is not a plain scalar, or
    whose bytes are damaged, must not make the rows after it read wrongly."""
    good = [_scalar(tag, struct.pack("<f", step / 7), 1.7e9 + step, step) for step in range(200, 3000)
            for tag in (b"loss", b"grad")]   # two tags of one length
    _check(b"".join(_framed(good)), tmp_path)
    for record in range(4, 8):   # the cycle is seen twice, then its rows follow: 4 and 5 are the first
        framed = [bytearray(r) for r in _framed(good)]
        framed[record][25] ^= 0x40   # the step
        assert "at byte" in str(_check(b"".join(framed), tmp_path))
        tensor = _tensor(b"loss", 1.0, 202)
        irregular = good[:record] + [tensor + b"\x00" * (len(good[record]) - len(tensor))] + good[record + 1:]
        _check(b"".join(_framed(irregular)), tmp_path)   # its field 0 is skipped
