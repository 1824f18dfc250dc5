"""The fast reading paths give what the slow ones give (issue #20): JSON lines decoded a block at a
time against the same lines read one at a time, and every line format on disk against its
gzip twin (read whole). Tables are compared column by column (values, dtypes, which cells were
logged), notes and error locations too."""
from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pandas as pd
import pytest

from siamdiag.errors import InputError
from siamdiag.logs import textfile
from siamdiag.logs.ingest import read_runs
from siamdiag.logs.readers import jsonlog, lines, tensorboard
from siamdiag.logs.readers import text as text_reader

from .test_readers import _event   # a scalar event framed as TFRecord, with its CRCs


def _jsonl_shapes() -> dict[str, str]:
    rng = np.random.default_rng(7)
    n = 3000
    plain = "".join(json.dumps({"step": i, "loss": float(v), "grad_norm": float(g)}) + "\n"
                    for i, v, g in zip(range(n), rng.random(n), rng.random(n)))
    sparse = "".join(json.dumps({"step": i, **({"loss": i / 7} if i % 3 else {}), **({"lr": 0.1} if i % 5 == 0 else {}),
                                 **({"val_loss": None} if i % 2 else {})}) + "\n" for i in range(n))
    late_object = "".join(json.dumps({"step": i, "loss": 1 / (i + 1), "note": i if i < n - 10 else "late"}) + "\n"
                          for i in range(n))
    return {
        "plain": plain,
        "crlf": plain.replace("\n", "\r\n"),
        "bom": "\ufeff" + plain,
        "nan, infinity, null": '{"step": 1, "loss": NaN}\n{"step": 2, "loss": -Infinity, "grad_norm": null}\n'
                               '{"step": 3, "loss": Infinity, "grad_norm": 1e3}\n' + plain,
        "sparse keys": sparse,
        "ints then floats": '{"step": 1, "loss": 1}\n{"step": 2, "loss": 2}\n{"step": 3, "loss": 2.5}\n',
        "whole ints": '{"step": 1, "loss": 1}\n{"step": 2, "loss": 2}\n',
        "a string late": late_object,
        "bools and nesting": '{"step": 1, "loss": true, "x": [1, 2]}\n{"step": 2, "loss": 0.5, "x": {"a": 1}}\n',
        "int beyond float": '{"step": 1, "loss": 0.5, "big": 1' + "0" * 400 + '}\n{"step": 2, "loss": 0.25, "big": 3}\n',
        "duplicate keys": '{"step": 1, "loss": 0.5, "loss": 0.75}\n{"step": 2, "loss": 0.25}\n',
        "blank and indented lines": "\n  \n" + plain[:plain.index("\n", 2000) + 1].replace("\n", "\n\t ", 3) + "\n\n",
        "trailing whitespace": plain.replace("}\n", "}  \t\n"),
        "escaped strings": plain.replace('"loss"', '"lo\\u0073s"', 5) + '{"step": 9, "loss": 1, "s": "a\\"b"}\n',
        "the marker in a string": '{"step": 1, "loss": 0.5, "n": "siamdiag: a line ends here"}\n' + plain,
        "unterminated last line": plain + '{"step": 3000, "lo',
        "unterminated complete record": plain + '{"step": 3000, "loss": 0}',
    }


JSONL = _jsonl_shapes()


def _table_of(path) -> list:
    return [(r.name, {k: (m.steps, m.values) for k, m in r.metrics.items()}, r.notes) for r in read_runs([str(path)])]


def _assert_same_runs(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for (name, metrics, notes), (name_e, metrics_e, notes_e) in zip(got, expected):
        assert name == name_e and notes == notes_e and metrics.keys() == metrics_e.keys()
        for key in metrics:
            for a, b in zip(metrics[key], metrics_e[key]):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype


@pytest.mark.parametrize("shape", JSONL)
def test_jsonl_blocks_decode_as_the_lines_one_at_a_time(shape, tmp_path, monkeypatch):
    text = textfile.decode(JSONL[shape].encode(), "log.jsonl")
    at_once = jsonlog.read_jsonl(text, "log.jsonl")
    monkeypatch.setattr(lines, "BLOCK_CHARS", 700)   # many blocks, cut anywhere
    small_blocks = jsonlog.read_jsonl(text, "log.jsonl")
    monkeypatch.setattr(jsonlog, "_numbers_at_once", lambda block, count: None)   # numeric blocks decoded by json too
    json_blocks = jsonlog.read_jsonl(text, "log.jsonl")
    monkeypatch.setattr(jsonlog, "_records_at_once", lambda block, count: None)
    by_line = jsonlog.read_jsonl(text, "log.jsonl")
    for got in (at_once, small_blocks, json_blocks):
        pd.testing.assert_frame_equal(got.frame, by_line.frame)
        assert got.notes == by_line.notes and got.present.keys() == by_line.present.keys()
        for column in by_line.present:
            np.testing.assert_array_equal(got.present[column], by_line.present[column])
        last = len(by_line.frame) - 1
        assert got.locate(last, "loss") == by_line.locate(last, "loss")


BAD_JSONL = {   # each line alone is not one JSON object; joined into one array, some would be
    "two records on a line": '{"step": 1, "loss": 0.5},{"step": 2, "loss": 0.4}\n{"step": 3, "loss": 0.3}\n',
    "a record over two lines": '{"step": 1, "loss": [1,\n2]}\n{"step": 3, "loss": 0.3}\n',
    "a string over two lines": '{"step": 1, "loss": "a\n{"step": 2}\n',
    "one line closes what another opens": '{"a": 1},{"b": [{}\n{}]},{"c": 1}\n',
    "a line forging the marker": '{"a": [1\n2], "x": 0},"siamdiag: a line ends here",{"b": 1}\n',
    "a line forging the marker by escapes": '{"a": [1\n2]},"siamdiag\\u003a a line ends here",{"b": 1}\n',
    "a value that is not an object": '{"step": 1, "loss": 0.5}\n[1, 2]\n',
    "trailing text": '{"step": 1, "loss": 0.5} 7\n',
}


@pytest.mark.parametrize("shape", BAD_JSONL)
def test_bad_jsonl_is_the_same_error_at_the_same_place_either_way(shape, monkeypatch):
    text = BAD_JSONL[shape]
    with pytest.raises(InputError) as at_once:
        jsonlog.read_jsonl(text, "log.jsonl")
    monkeypatch.setattr(jsonlog, "_numbers_at_once", lambda block, count: None)
    monkeypatch.setattr(jsonlog, "_records_at_once", lambda block, count: None)
    with pytest.raises(InputError) as by_line:
        jsonlog.read_jsonl(text, "log.jsonl")
    assert str(at_once.value) == str(by_line.value)


def _line_logs() -> dict[str, tuple[str, str]]:
    rng = np.random.default_rng(3)
    n = 2000
    loss, grad = rng.random(n), rng.random(n)
    csv = "step,loss,grad_norm\n" + "".join(f"{i},{v:.6f},{g:.6f}\n" for i, v, g in zip(range(n), loss, grad))
    return {
        "csv": ("log.csv", csv),
        "csv, crlf and bom": ("log.csv", "\ufeff" + csv.replace("\n", "\r\n")),
        "csv, quoted fields and empty loss cells": (
            "log.csv", 'step,"loss",note\n' + "".join(f'{i},{"" if i % 4 == 0 else f"{v:.5f}"},"a, b"\n'
                                                    for i, v in zip(range(n), loss))),
        "csv, semicolons": ("log.csv", csv.replace(",", ";")),
        "csv, unterminated": ("log.csv", csv + "2000,0.5"),
        "jsonl": ("log.jsonl", JSONL["plain"]),
        "jsonl, crlf and bom": ("log.jsonl", "\ufeff" + JSONL["plain"].replace("\n", "\r\n")),
        "jsonl, sparse": ("log.jsonl", JSONL["sparse keys"]),
        "text": ("train.log", "".join(f"step {i} | loss: {v:.6f} | grad_norm: {g:.6f}\n"
                                      for i, v, g in zip(range(n), loss, grad))),
        "text, crlf and epochs": ("train.log", "".join(f"Epoch {i // 100 + 1}/20\r\n{i}/100 - loss: {v:.4f}\r\n"
                                                       for i, v in zip(range(n), loss))),
    }


LINE_LOGS = _line_logs()


@pytest.mark.parametrize("shape", LINE_LOGS)
def test_a_log_on_disk_reads_as_its_gzip_twin_read_whole(shape, tmp_path):
    name, text = LINE_LOGS[shape]
    plain, packed = tmp_path / name, tmp_path / (name + ".gz")
    plain.write_bytes(text.encode())
    packed.write_bytes(gzip.compress(text.encode()))
    got, expected = _table_of(plain), _table_of(packed)
    expected = [(str(plain), metrics, tuple(n.replace(str(packed), str(plain)) for n in notes))
                for _name, metrics, notes in expected]
    _assert_same_runs(got, expected)


def _walk_frames(data: bytes) -> tuple[list[int], list[int], str | None]:
    """TFRecord frames found one record at a time: the definition _frames' predictions must meet."""
    starts, lengths, pos = [], [], 0
    while pos < len(data):
        if len(data) - pos < 12:
            return starts, lengths, "trailing"
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + 16 + length > len(data):
            return starts, lengths, f"past the end at {pos}"
        starts.append(pos + 12)
        lengths.append(length)
        pos += 16 + length
    return starts, lengths, None


def _records(seed: int, n: int, tags: list[str], irregular: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    out = []
    for step in range(n):
        for tag in tags:
            if irregular and rng.random() < 0.3:
                tag = tag + "x" * int(rng.integers(1, 9))   # a record of another length
            out.append(_event(step, tag, float(rng.random())))
    return b"".join(out)


def _damaged(data: bytes, record: int) -> bytes:
    """``data`` with a length field too large for the file at the start of the given record."""
    at = _walk_frames(data)[0][record] - 12
    return data[:at] + struct.pack("<Q", 10**9) + data[at + 8:]


TB_FILES = {   # steps past 128 and 16384 lengthen the records: the cycle changes under the predictions
    "one tag": lambda: _records(0, 20_000, ["loss"]),
    "three tags": lambda: _records(1, 17_000, ["train/loss", "grad_norm", "lr"]),
    "irregular lengths": lambda: _records(2, 3000, ["loss", "grad_norm"], irregular=True),
    "truncated in a cycle": lambda: _records(3, 5000, ["loss", "grad_norm"])[:-7],
    "a few trailing bytes": lambda: _records(4, 5000, ["loss", "grad_norm"]) + b"\x01\x02\x03",
    "a damaged length": lambda: _damaged(_records(5, 5000, ["loss", "grad_norm"]), 3000),
    "empty": lambda: b"",
}


@pytest.mark.parametrize("shape", TB_FILES)
def test_tensorboard_frames_predicted_in_runs_are_the_frames_walked_one_at_a_time(shape):
    data = TB_FILES[shape]()
    padded = bytearray(data + bytes(32))
    runs, starts, lengths, note, damaged = tensorboard._frames(padded, len(data), "events.out.tfevents.x")
    for run in runs:   # the records of each run of rows, payload starts and lengths
        for offset, length in zip(run.offsets(), run.lengths):
            starts = np.append(starts, run.start + offset + 12 + run.width * np.arange(run.count))
            lengths = np.append(lengths, np.full(run.count, length))
    order = np.argsort(starts)
    walked_starts, walked_lengths, end = _walk_frames(data)
    assert starts[order].tolist() == walked_starts and lengths[order].tolist() == walked_lengths
    assert starts.dtype == lengths.dtype == np.int64
    assert (note is None and damaged is None) == (end is None)
    if shape == "a damaged length":
        assert damaged == walked_starts[-1] + walked_lengths[-1] + 4


@pytest.mark.parametrize("shape", ["text", "text, crlf and epochs"])
def test_text_blocks_cut_anywhere_read_as_one_block(shape, monkeypatch):
    """A step marker sets the step of the loss lines after it, across blocks too."""
    text = textfile.decode(LINE_LOGS[shape][1].encode() + b"step 9 | loss: 0.5", "train.log")
    whole = text_reader.read_text(text, "train.log")
    monkeypatch.setattr(lines, "BLOCK_CHARS", 37)
    cut = text_reader.read_text(text, "train.log")
    pd.testing.assert_frame_equal(cut.frame, whole.frame)
    assert cut.notes == whole.notes and len(cut.notes) >= 1
    assert cut.locate(len(cut.frame) - 1, "loss") == whole.locate(len(whole.frame) - 1, "loss")
