"""CSV/TSV logs on disk are read a block at a time (siamdiag.logs.textfile): the oracle is the
whole-file reader, ``parse_delimited`` on the decoded text, which must give the same table,
notes and error locations for every shape of file."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from siamdiag.errors import InputError
from siamdiag.logs import ingest, textfile
from siamdiag.logs.ingest import LogInput, ReadOptions, read_runs
from siamdiag.logs.readers.delimited import WHOLE_BYTES, parse_delimited, read_delimited_file
from siamdiag.logs.tables import numeric_column


def _rows(n: int, sep: str = ",") -> str:
    rng = np.random.default_rng(n)
    return "".join(f"{i}{sep}{v:.6f}{sep}{g:.4f}\n" for i, v, g in zip(range(n), rng.random(n), rng.random(n)))


def _cut_at_the_first_block(cut: str) -> str:
    """A log whose first 1 MB block (``textfile.BLOCK``) ends inside ``cut`` (a CRLF, a two-byte
    character), in a note cell of a row after the header and first rows."""
    start = "step,loss,note\n" + _rows(5)
    filler = "x" * (textfile.BLOCK - 1 - len(start) - len("9,1,"))
    return start + "9,1," + filler + cut + "\n" + _rows(10).replace("\n", "\r\n")


SHAPES = {
    "plain": "step,loss,grad_norm\n" + _rows(50),
    "bom": "\ufeffstep,loss,grad_norm\n" + _rows(50),
    "crlf": ("step,loss,grad_norm\n" + _rows(50)).replace("\n", "\r\n"),
    "lone cr": ("step,loss,grad_norm\n" + _rows(50)).replace("\n", "\r"),
    "blank lines": "\n\nstep,loss,grad_norm\n\n" + _rows(20) + "\n\n" + _rows(20),
    "complete unterminated last row": "step,loss,grad_norm\n" + _rows(50) + "50,0.5,0.25",
    "cut last row": "step,loss,grad_norm\n" + _rows(50) + "50,0.5",
    "cut last number": "step,loss,grad_norm\n" + _rows(50) + "50,0.5,0.2x",
    "header only": "step,loss,grad_norm",
    "header only, newline": "step,loss,grad_norm\n",
    "duplicate columns": "step,loss,loss\n" + _rows(30),
    "tsv": "step\tloss\tgrad_norm\n" + _rows(40, "\t"),
    "longer than a block": "step,loss,grad_norm\n" + _rows(120_000),   # ~3 MB: blocks of 1 MB
    "quoted fields": 'step,"loss",note\n' + "".join(f'{i},{i / 7:.5f},"a, b"\n' for i in range(30)),
    "quoted line breaks, crlf": ('step,loss,note\n' + "".join(f'{i},{i / 7:.5f},"a\nb\rc"\n' for i in range(30))
                                 ).replace("\n", "\r\n"),
    "bom, crlf, semicolons": ("\ufeffstep;loss;grad_norm\n" + _rows(50, ";")).replace("\n", "\r\n"),
    "empty loss cells": "step,loss,grad_norm\n" + "".join(f"{i},{'' if i % 3 else i / 9},{i}\n" for i in range(60)),
    "spaces opening fields": 'step, loss, note\n' + "".join(f' {i}, {i / 7:.5f}, "a, b"\n' for i in range(30)),
    "a space opening a field deep in the file": "step,loss,run\n" + _rows(120_000) + '5,0.5, "x, y"\n',
    "crlf cut by a block": _cut_at_the_first_block("\r\n") + "10,0.5",   # the note counts its lines
    # a Keras or Lightning CSVLogger writes through the csv module: CRLF line ends
    "crlf, blank lines, empty cells": ("step,loss,val_loss\n\n" + "".join(
        f"{i},{i / 9},{'' if i % 4 else i}\n" for i in range(60)) + "\n").replace("\n", "\r\n"),
    "crlf, spaces opening fields": ('step, loss\n' + "".join(f' {i}, {i / 7:.5f}\n' for i in range(40))).replace("\n", "\r\n"),
    "crlf, quoted fields": ('step,loss,note\n' + "".join(f'{i},{i / 7:.5f},"a, b"\n' for i in range(40))).replace("\n", "\r\n"),
    "crlf, then a lone cr": ("step,loss\n" + "".join(f"{i},{i / 7:.5f}\n" for i in range(40))).replace("\n", "\r\n")
    + "40,0.5\r41,0.25\r\n",
    "crlf, ending in a lone cr": ("step,loss\n" + "".join(f"{i},{i / 7:.5f}\n" for i in range(40))).replace("\n", "\r\n")
    + "40,0.5\r",
    "crlf longer than a block": ("step,loss,grad_norm\n" + _rows(120_000)).replace("\n", "\r\n"),
    "non-ascii cut by a block": _cut_at_the_first_block("é"),
}


def _whole(path) -> object:
    text = textfile.read_text(str(path), str(path))
    return parse_delimited(text, str(path), "\t" if str(path).endswith(".tsv") else ",")


@pytest.mark.parametrize("shape", SHAPES)
def test_block_reader_gives_the_whole_file_readers_table(shape, tmp_path):
    path = tmp_path / ("log.tsv" if shape == "tsv" else "log.csv")
    path.write_bytes(SHAPES[shape].encode("utf-8"))
    expected = _whole(path)
    got = read_delimited_file(str(path), str(path), "\t" if shape == "tsv" else ",")
    pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert got.notes == expected.notes
    if len(expected.frame):
        last = len(expected.frame) - 1
        for column in expected.frame.columns:
            assert got.locate(last, str(column)) == expected.locate(last, str(column))


@pytest.mark.parametrize("threads", [1, 2])   # read after a check of the whole file, or checked piece by piece
@pytest.mark.parametrize("bad, needle", [
    (b"\x00", "NUL byte"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_bad_bytes_after_the_first_block_are_located_like_the_whole_file_reader(bad, needle, threads, tmp_path,
                                                                                 monkeypatch):
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(textfile, "PARSE_THREADS", threads)
    pieces = []
    real_range = delimited._ByteRange
    monkeypatch.setattr(delimited, "_ByteRange", lambda *a: pieces.append(a[2:4]) or real_range(*a))
    text = ("step,loss,grad_norm\n" + _rows(160_000)).encode()   # ~3.7 MB: two pieces
    at = len(text) - 1000   # past the head and the first block
    at = text.index(b"\n", at) + 3
    path = tmp_path / "log.csv"
    path.write_bytes(text[:at] + bad + text[at:])
    with pytest.raises(textfile.NotPlainText):
        read_delimited_file(str(path), str(path), ",")
    with pytest.raises(InputError) as from_disk:
        read_runs([str(path)])
    with pytest.raises(InputError) as whole:
        textfile.read_text(str(path), str(path))
    assert needle in str(from_disk.value) and str(from_disk.value) == str(whole.value)
    assert len(pieces) == (2 * 2 if threads == 2 else 0)   # (read twice: by read_delimited_file, by read_runs)


def test_a_name_is_only_a_name(tmp_path, monkeypatch):
    """pandas, given the path, would expand '~', read 'file:' as a URL and unzip '.zip': the path
    handed to it is absolute and no compression is inferred from the name."""
    monkeypatch.chdir(tmp_path)
    for name in ("~log.csv", "file:log.csv", "log.csv.zip"):
        (tmp_path / name).write_text("step,loss\n1,0.5\n2,0.25\n")
        table = read_delimited_file(name, name, ",")
        assert table.frame["loss"].tolist() == [0.5, 0.25], name


@pytest.mark.parametrize("appended", ["50,0.5,0.25\n51,0", "50,1,2,3\n51,0"])   # rows, then one that does not parse
def test_a_log_that_grows_while_pandas_reads_it_is_read_as_it_was(appended, tmp_path, monkeypatch):
    """The path is read by pandas itself, which reads to the end: a writer appending meanwhile
    (cutting a row) makes the reader read the bytes the file had when it looked."""
    from siamdiag.logs.readers import delimited

    path = tmp_path / "log.csv"
    path.write_text("step,loss,grad_norm\n" + _rows(50))
    expected = read_delimited_file(str(path), str(path), ",")
    real = delimited._parse

    def appending(rows, *args, **kwargs):
        if isinstance(rows, str):
            with open(path, "a") as fh:
                fh.write(appended)
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(delimited, "_parse", appending)
    got = read_delimited_file(str(path), str(path), ",")
    pd.testing.assert_frame_equal(got.frame, expected.frame)


@pytest.mark.parametrize("numbers", [True, False])   # through pandas' tokenizer alone, through read_csv
def test_a_log_that_grows_while_its_pieces_are_parsed_is_read_as_it_was(numbers, tmp_path, monkeypatch):
    """Pieces end where the file did when its size was taken: a row a writer appends meanwhile
    (and the cut one after it) is not read."""
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(textfile, "PARSE_THREADS", 2)
    path = tmp_path / "log.csv"
    rows = _rows(160_000) if numbers else "".join(f"{i},{i / 7:.5f},n{i % 3}\n" for i in range(160_000))
    path.write_text("step,loss,grad_norm\n" + rows)   # ~3.7 MB: two pieces
    expected = read_delimited_file(str(path), str(path), ",")
    real_range, pieces, outcomes = delimited._ByteRange, [], []
    real_pieces = delimited._parse_pieces

    def appending(*args):
        if not pieces:
            with open(path, "a") as fh:
                fh.write("160000,0.5,0.25\n160001,0")
        pieces.append(args[2:4])
        return real_range(*args)

    read_csv_calls = []
    real_read_csv = pd.read_csv
    monkeypatch.setattr(delimited.pd, "read_csv", lambda rows, *a, **k: read_csv_calls.append(rows) or real_read_csv(rows, *a, **k))
    monkeypatch.setattr(delimited, "_ByteRange", appending)
    monkeypatch.setattr(delimited, "_parse_pieces", lambda *a: outcomes.append(real_pieces(*a)) or outcomes[-1])
    got = read_delimited_file(str(path), str(path), ",")
    assert len(pieces) == 2 and len(outcomes) == 1 and outcomes[0] is not None   # read in pieces alone
    assert len(read_csv_calls) == (0 if numbers else 2)
    pd.testing.assert_frame_equal(got.frame, expected.frame)


def test_a_piece_stops_at_the_first_space_opening_a_field_and_the_pieces_are_read_again_skipping_them(
        tmp_path, monkeypatch):
    """Spaces after the delimiters of the rows, not of the header: each piece's first parse stops at
    its first block (the rest would be thrown away), the second skips the spaces and gives the
    whole-file reader's table. Reads as pandas asks for them (256 KB), not PIECE_READ_BYTES, so that
    each piece takes several. The first piece to stop cancels the other if its thread has not
    started yet: the first parse has one reader or two."""
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(textfile, "PARSE_THREADS", 2)
    monkeypatch.setattr(delimited, "PIECE_READ_BYTES", 0)
    readers, reads = [], []   # each piece's reader (kept), in the order it first read, and its reads
    real_read = delimited._ByteRange.read

    def counted(self, size=-1):
        if not any(reader is self for reader in readers):
            readers.append(self)
            reads.append(0)
        reads[next(k for k, reader in enumerate(readers) if reader is self)] += 1
        return real_read(self, size)

    monkeypatch.setattr(delimited._ByteRange, "read", counted)
    path = tmp_path / "log.csv"
    path.write_text("step,loss,grad_norm\n" + _rows(160_000).replace(",", ", "))   # ~4.2 MB
    got = read_delimited_file(str(path), str(path), ",")
    first, second = reads[:-2], reads[-2:]   # the pieces in the order they first read, a parse after the other
    assert len(first) in (1, 2)
    assert max(first) <= 2 < 5 < min(second)   # the header and one block, then stopped; then all of it
    pd.testing.assert_frame_equal(got.frame, _whole(path).frame)


@pytest.mark.parametrize("read_bytes", [0, 1 << 20])   # reads of 256 KB (as pandas asks them), of 1 MB
def test_characters_cut_between_the_reads_of_a_piece_are_text(read_bytes, tmp_path, monkeypatch):
    """A piece hands pandas its bytes a read at a time and checks each: two-byte characters cut
    between two reads are carried over, not taken for bytes that are not UTF-8."""
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(textfile, "PARSE_THREADS", 2)
    monkeypatch.setattr(delimited, "PIECE_READ_BYTES", read_bytes)
    reads = []
    real_read = delimited._ByteRange.read
    monkeypatch.setattr(delimited._ByteRange, "read",
                        lambda self, size=-1: reads.append(real_read(self, size)) or reads[-1])
    outcomes = []
    real = delimited._parse_pieces
    monkeypatch.setattr(delimited, "_parse_pieces", lambda *a: outcomes.append(real(*a)) or outcomes[-1])
    path = tmp_path / "log.csv"
    path.write_text("step,loss,note\n" + "".join(f"{i},{i / 7:.5f},{'é' * (20 + i % 7)}\n" for i in range(80_000)))
    got = read_delimited_file(str(path), str(path), ",")
    assert outcomes and outcomes[0] is not None
    assert any(not _decodes(data) for data in reads)   # a character was cut between two reads
    pd.testing.assert_frame_equal(got.frame, _whole(path).frame)


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_a_character_cut_by_the_first_block_and_left_unfinished_is_not_utf8(tmp_path):
    """A lead byte ending the first block, then ASCII: the check carries the cut character over."""
    path = tmp_path / "log.csv"
    path.write_bytes(_cut_at_the_first_block("\xc3").encode("latin-1"))
    with pytest.raises(textfile.NotPlainText):
        read_delimited_file(str(path), str(path), ",")
    with pytest.raises(InputError, match=r":7:1048471: not UTF-8"):
        read_runs([str(path)])


def test_parse_errors_are_located_from_a_second_reading(tmp_path):
    text = "step,loss,grad_norm\n" + _rows(300_000) + "1,2,3,4\n" + _rows(10)
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        read_runs([str(path)])
    assert str(exc.value) == f"{path}:300002:7: expected 3 fields, found 4"
    path.write_text("step,loss,grad_norm\n" + _rows(10) + "11,oops,1\n")
    with pytest.raises(InputError) as exc:
        read_runs([str(path)])
    assert str(exc.value) == f"{path}:12:4: column 'loss': 'oops' is not a number"


def test_csv_on_disk_is_never_read_whole(tmp_path, monkeypatch):
    """The memory of issue #12: a CSV on disk goes through the block reader; only stdin, gzip
    and files that are not clean text are read whole."""
    plain, packed = tmp_path / "a.csv", tmp_path / "b.csv.gz"
    body = "step,loss\n" + "".join(f"{i},{1 / (i + 1):.6f}\n" for i in range(500))
    plain.write_text(body)
    packed.write_bytes(gzip.compress(body.encode()))
    whole_reads = []
    real = textfile.read_text
    monkeypatch.setattr(textfile, "read_text", lambda path, source: whole_reads.append(path) or real(path, source))
    (run_a,), (run_b,) = (ingest.read_input(LogInput(str(p)), ReadOptions(), False) for p in (plain, packed))
    assert whole_reads == [str(packed)]
    np.testing.assert_array_equal(run_a.metrics["loss"].values, run_b.metrics["loss"].values)


@pytest.mark.parametrize("blocks, translated", [
    ([b"a,1\r\nb,2\r\n"], False),
    ([b"a,1\r", b"\nb,2\r\n"], False),          # a CRLF cut by the blocks
    ([b"a,1\r", b"b,2\n"], True),               # the block after a CR does not open with its LF
    ([b"a,1\rb,2\n"], True),
    ([b"a,1\r\n", b"b,2\r"], True),              # a CR that ends the bytes
    ([b"a,1\r\n", b'"b",2\r\n'], True),         # a CRLF and a quote: a quoted field could hold the CRLF
    ([b'"a",1\n', b"b,2\n"], False),             # a quote, no CR
])
def test_a_carriage_return_counts_where_universal_newlines_would_read_it_otherwise(blocks, translated):
    """The oracle: whether pandas, reading the bytes themselves, splits the rows that universal
    newlines give (the whole-file decoder's lines, quoted fields included)."""
    check = textfile.BlockCheck(needles=())
    for k, block in enumerate(blocks):
        check.see(block, final=k == len(blocks) - 1)
    assert check.carriage is translated


def test_a_crlf_log_is_parsed_from_its_bytes_and_a_quoted_one_with_universal_newlines(tmp_path, monkeypatch):
    """CRLF line ends (every Keras and Lightning CSVLogger log) no longer send a log through the
    translating reader, whose Python-level blocks took about three times pandas' time."""
    translated = []
    real = textfile.open_lines
    monkeypatch.setattr(textfile, "open_lines", lambda *a: translated.append(a[0]) or real(*a))
    plain, quoted = tmp_path / "plain.csv", tmp_path / "quoted.csv"
    plain.write_bytes(("step,loss\n" + "".join(f"{i},{i / 7:.5f}\n" for i in range(2000))).replace("\n", "\r\n").encode())
    quoted.write_bytes(("step,loss,note\n" + "".join(f'{i},{i / 7:.5f},"x"\n' for i in range(2000))
                        ).replace("\n", "\r\n").encode())
    for path in (plain, quoted):
        pd.testing.assert_frame_equal(read_delimited_file(str(path), str(path), ",").frame, _whole(path).frame)
    assert translated == [str(quoted)]


PIECE_SHAPES = {
    **SHAPES,
    "quoted line breaks": 'step,loss,note\n' + "".join(f'{i},{i / 7:.5f},"a\nb, c"\n' for i in range(40)),
    "quoted header": '"step","loss","grad_norm"\n' + _rows(60),
    "text in a later piece": "step,loss,note\n" + "".join(f"{i},{i / 9:.4f},{i}\n" for i in range(60)) + "61,0.5,x\n",
    "nan in a later piece": "step,loss\n" + "".join(f"{i},{i / 9:.4f}\n" for i in range(60)) + "60,nan\n61,-inf\n",
    "empty cells in some pieces": "step,loss,val\n" + "".join(f"{i},{i / 9:.4f},{'' if i < 40 else i}\n" for i in range(80)),
    "blank lines between pieces": "step,loss,grad_norm\n" + _rows(20) + "\n" * 200 + _rows(20),
    "spaces opening the header's fields alone": "step, loss, grad_norm\n" + _rows(60),
    "a float among integers in a later piece": "step,loss\n" + "".join(f"{i},{i / 9:.4f}\n" for i in range(60)) + "60.5,0.5\n",
    "booleans": "step,loss,ok\n" + "".join(f"{i},{i / 9:.4f},{i % 2 == 0}\n" for i in range(60)),
    "an index column the header leaves unnamed": "loss,grad_norm\n" + _rows(60),
}


@pytest.mark.parametrize("shape", PIECE_SHAPES)
def test_pieces_parsed_on_threads_give_the_whole_file_readers_table(shape, tmp_path, monkeypatch):
    """A long CSV is cut after line breaks into a piece per thread; cut into ~50 pieces here (on
    as many threads), every shape gives the table of the whole-file reader, and pieces are only
    given up (for the serial reader) where the file asks for it."""
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(delimited, "PIECE_MIN_BYTES", 61)
    monkeypatch.setattr(textfile, "PARSE_THREADS", min(50, len(PIECE_SHAPES[shape]) // 61))
    outcomes = []
    real = delimited._parse_pieces
    monkeypatch.setattr(delimited, "_parse_pieces", lambda *a: outcomes.append(real(*a)) or outcomes[-1])
    path = tmp_path / ("log.tsv" if shape == "tsv" else "log.csv")
    path.write_bytes(PIECE_SHAPES[shape].encode("utf-8"))
    expected = _whole(path)
    got = read_delimited_file(str(path), str(path), "\t" if shape == "tsv" else ",")
    if shape == "nan in a later piece":   # numbers and 'nan' joined, where one parse has only text: the same values
        for column in ("step", "loss"):
            np.testing.assert_array_equal(numeric_column(got, column, "x")[0], numeric_column(expected, column, "x")[0])
    else:
        pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert got.notes == expected.notes
    gives_up = {"quoted line breaks", "text in a later piece", "blank lines", "lone cr", "crlf, quoted fields",
                "crlf, then a lone cr"}
    if shape in ("plain", "bom", "quoted header", "empty cells in some pieces", "longer than a block", "nan in a later piece",
                 "a float among integers in a later piece", "booleans",
                 "an index column the header leaves unnamed",
                 "duplicate columns", "tsv", "empty loss cells", "blank lines between pieces", "crlf", "bom, crlf, semicolons",
                 "crlf longer than a block", "crlf, spaces opening fields"):
        assert outcomes and outcomes[0] is not None   # parsed in pieces
    elif shape in gives_up:
        assert outcomes == [None]


@pytest.mark.parametrize("shape", [shape for shape, text in PIECE_SHAPES.items() if len(text.encode()) <= WHOLE_BYTES])
@pytest.mark.parametrize("on_disk", [True, False])
def test_a_short_log_parsed_in_one_call_gives_the_table_of_chunks(shape, on_disk, tmp_path, monkeypatch):
    """A log of at most WHOLE_BYTES is parsed in one call and kept as pandas gives it; the oracle
    is the chunked reader (chunks of 7 rows, joined), which must give the same table and notes,
    on disk and from text alike."""
    from siamdiag.logs.readers import delimited

    path = tmp_path / ("log.tsv" if shape == "tsv" else "log.csv")
    path.write_bytes(PIECE_SHAPES[shape].encode("utf-8"))
    delimiter = "\t" if shape == "tsv" else ","
    text = textfile.read_text(str(path), str(path))

    def read():
        return read_delimited_file(str(path), str(path), delimiter) if on_disk else parse_delimited(text, "x", delimiter)

    parses = []
    real = delimited._parse
    monkeypatch.setattr(delimited, "_parse", lambda *a, **k: parses.append(k["chunk_rows"]) or real(*a, **k))
    got = read()
    assert parses[0] is None
    monkeypatch.setattr(delimited, "WHOLE_BYTES", -1)
    monkeypatch.setattr(delimited, "CHUNK_ROWS", 7)
    monkeypatch.setattr(delimited, "CHUNK_BYTES", 1)
    expected = read()
    if shape == "nan in a later piece":   # one parse has only text, the chunks numbers and 'nan': the same values
        for column in ("step", "loss"):
            np.testing.assert_array_equal(numeric_column(got, column, "x")[0], numeric_column(expected, column, "x")[0])
        assert got.frame["loss"].dtype == pd.read_csv(path, keep_default_na=False)["loss"].dtype   # one parse's type
    else:
        pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert got.notes == expected.notes


def test_a_long_log_parsed_in_pieces_equals_one_parse_of_it(tmp_path, monkeypatch):
    """At a real size: ~20 MB, two pieces on two threads, against pandas reading the file in one go."""
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(textfile, "PARSE_THREADS", 2)
    outcomes, pieces = [], []
    real_pieces, real_range = delimited._parse_pieces, delimited._ByteRange
    monkeypatch.setattr(delimited, "_parse_pieces", lambda *a: outcomes.append(real_pieces(*a)) or outcomes[-1])
    monkeypatch.setattr(delimited, "_ByteRange", lambda *a: pieces.append(a[2:4]) or real_range(*a))
    path = tmp_path / "log.csv"
    path.write_text("step,loss,grad_norm\n" + _rows(800_000))
    got = read_delimited_file(str(path), str(path), ",")
    assert len(outcomes) == 1 and outcomes[0] is not None and len(pieces) == 2
    pd.testing.assert_frame_equal(got.frame, pd.read_csv(path, engine="c", keep_default_na=False, na_values=[""]))


@pytest.mark.parametrize("on_disk", [True, False])
def test_a_run_column_of_numbers_then_words_is_read_as_one_parse_reads_it(on_disk, tmp_path, monkeypatch):
    """Chunks of rows are typed one by one: a run column of numbers in early chunks and words in a
    later one was joined as 2 and "2", two runs of one name. It is read again as text throughout,
    as one parse of the file reads it; a loss that turns to 'nan' tokens late is not read twice."""
    from siamdiag.logs.readers import delimited

    monkeypatch.setattr(delimited, "CHUNK_ROWS", 50)
    monkeypatch.setattr(delimited, "CHUNK_BYTES", 1)
    monkeypatch.setattr(delimited, "WHOLE_BYTES", 0)   # chunks, however short the log
    parses = []
    real = delimited._parse
    monkeypatch.setattr(delimited, "_parse", lambda *a, **k: parses.append(k.get("text_columns")) or real(*a, **k))
    rows = [(run, step, 1.0 / (step + 1)) for run in ("1", "2", "a") for step in range(80)]
    text = "run,step,loss\n" + "".join(f"{r},{s},{v:.6f}\n" for r, s, v in rows)
    path = tmp_path / "runs.csv"
    path.write_text(text)
    runs = read_runs([str(path)]) if on_disk else None
    table = read_delimited_file(str(path), str(path), ",") if on_disk else parse_delimited(text, "runs.csv", ",")
    assert parses[-2:] == [None, ["run"]]
    expected = pd.read_csv(path, dtype={"run": str})   # one parse: the column is text
    pd.testing.assert_frame_equal(table.frame, expected)
    if on_disk:
        assert sorted((r.name, len(r.metrics["loss"].values)) for r in runs) == [("1", 80), ("2", 80), ("a", 80)]
    parses.clear()
    path.write_text("step,loss\n" + "".join(f"{s},{1 / (s + 1):.6f}\n" for s in range(200)) + "200,nan\n201,inf\n")
    (run,) = read_runs([str(path)])
    assert parses == [None]
    np.testing.assert_array_equal(run.metrics["loss"].values[-3:], [0.005, np.nan, np.inf])


def test_a_run_column_that_pandas_types_block_by_block_inside_one_chunk_is_one_run_per_name(tmp_path):
    """Found on a 49 MB export pandas wrote (runs seed-0, seed-1, baseline, 1): inside one chunk of
    rows pandas' parser types each block it tokenises on its own, so run 1's rows came back as
    the number 1 in some blocks and the text '1' in others (a "mixed types" DtypeWarning), and
    run 1 was judged as two runs of one name. The column is read as text, as one parse of the
    whole file reads it, and pandas' warning does not reach the user."""
    import warnings

    steps = np.arange(200_000)
    frame = pd.concat([pd.DataFrame({"run": run, "step": steps, "loss": 1.0 / (steps + 1)})
                       for run in ("baseline", "1")])   # 1's rows: text in the parser's block of 2^18 rows, then numbers
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = read_runs([str(path)])
        table = read_delimited_file(str(path), str(path), ",")
    assert sorted((r.name, len(r.metrics["loss"].values)) for r in runs) == [("1", 200_000), ("baseline", 200_000)]
    pd.testing.assert_frame_equal(table.frame, pd.read_csv(path, dtype={"run": str}))
    assert not [w for w in caught if issubclass(w.category, pd.errors.DtypeWarning)]


@pytest.mark.parametrize("library", ["without malloc_trim", "not loadable"])
def test_a_c_library_without_malloc_trim_reads_the_pieces_all_the_same(library, tmp_path, monkeypatch):
    """Handing the parse threads' freed memory back is glibc's call; with a C library that has no
    malloc_trim (musl, macOS) or none to load, the pieces give the same table."""
    import ctypes

    from siamdiag.logs.readers import delimited

    def load(name):
        if library == "not loadable":
            raise OSError("no C library")
        return object()   # a library without the call

    monkeypatch.setattr(textfile, "PARSE_THREADS", 2)
    monkeypatch.setattr(ctypes, "CDLL", load)
    outcomes = []
    real = delimited._parse_pieces
    monkeypatch.setattr(delimited, "_parse_pieces", lambda *a: outcomes.append(real(*a)) or outcomes[-1])
    path = tmp_path / "log.csv"
    path.write_text("step,loss,grad_norm\n" + _rows(160_000))   # ~3.7 MB: two pieces
    got = read_delimited_file(str(path), str(path), ",")
    assert len(outcomes) == 1 and outcomes[0] is not None
    pd.testing.assert_frame_equal(got.frame, pd.read_csv(path, engine="c", keep_default_na=False, na_values=[""]))
