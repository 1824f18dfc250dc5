"""A short CSV whose columns are all numbers is read by pandas' tokenizer directly
(delimited._numeric_frame, issue #20: read_csv's setup is most of a 2,000-row log's read). Oracle:
pd.read_csv with the reader's own options on the same file: wherever the direct read gives a
frame, it is read_csv's frame exactly (values bit for bit, dtypes, column names and their dtype);
wherever it gives none, the reader falls back to read_csv and the table is the same. Inputs: the
bad-input corpus, crafted headers and cells (a BOM, unnamed and repeated columns, an index column,
booleans, integers past int64, NaN spellings, quotes, blank lines, CRLF), the real logs, and
generated numeric tables in every formatting a writer uses."""
from __future__ import annotations

import glob
import os
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamdiag.logs.readers import delimited

from .test_bad_input_corpus import CORPUS
from .test_readers import REAL

CRAFTED = {
    "bom.csv": "\ufeffstep,loss\n0,0.1\n1,0.2\n".encode(),
    "unnamed_column.csv": b"step,,loss\n0,1,0.1\n1,2,0.2\n",
    "repeated_name.csv": b"loss,loss\n0.1,0.2\n0.3,0.4\n",
    "repeated_with_suffix.csv": b"loss,loss.1,loss\n0.1,0.2,1\n0.3,0.4,2\n",
    "index_column.csv": b"step,loss\n7,0,0.1\n8,1,0.2\n",
    "short_rows.csv": b"step,loss,g\n0,0.1\n1,0.2,3\n",
    "past_int64.csv": b"step,loss\n99999999999999999999,0.1\n1,0.2\n",
    "uint64.csv": b"step,loss\n18446744073709551615,0.1\n1,0.2\n",
    "booleans.csv": b"step,loss\nTrue,0.1\nFalse,0.2\n",
    "empty_column.csv": b"step,loss,x\n0,0.1,\n1,0.2,\n",
    "spaces.csv": b"step, loss\n0, 0.1\n1,  0.2\n",
    "quoted.csv": b'"step","loss"\n"0","0.1"\n1,0.2\n',
    "nan_spellings.csv": b"step,loss\n0,nan\n1,inf\n2,-inf\n3,NaN\n4,Infinity\n",
    "NA.csv": b"step,loss\n0,NA\n1,0.2\n",
    "missing_step.csv": b"step,loss\n0,0.1\n,0.2\n2,0.3\n",
    "exponents.csv": b"step,loss\n0,1e-3\n1,1E+2\n2,.5\n3,5.\n",
    "comment_line.csv": b"# comment\nstep,loss\n0,0.1\n",
    "numeric_header.csv": b"1,2\n3,4\n5,6\n",
    "blank_line.csv": b"step,loss\n0,0.1\n\n1,0.2\n",
    "spaces_line.csv": b"step,loss\n0,0.1\n   \n1,0.2\n",
    "signs.csv": b"step,loss\n+1,+0.1\n-0,-0.0\n",
    "long_decimals.csv": b"step,loss\n0,0.1000000000000000055511151231257827021181583404541015625\n"
                         b"1,3.14159265358979323846264338327950288\n",
    "crlf.csv": b"step,loss\r\n0,0.1\r\n1,0.2\r\n",
    "trailing_delimiter.csv": b"step,loss,\n0,0.1,\n1,0.2,\n",
    "hexadecimal.csv": b"step,loss\n0,0x10\n",
    "semicolons.csv": b"step;loss\n0;0,1\n1;0,2\n",
    "header_only.csv": b"step,loss\n",
}


def read_csv(path: str, delimiter: str, spaces: bool) -> pd.DataFrame | Exception:
    """What the reader's read_csv gives for the file: its frame, or the error it raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.read_csv(path, sep=delimiter, engine="c", skipinitialspace=spaces, compression=None,
                               **delimited.PARSE_OPTIONS)
    except Exception as exc:   # noqa: BLE001 (any error: the direct read must then give None)
        return exc


def assert_same_as_read_csv(path: str, delimiter: str, spaces: bool) -> bool:
    """The direct read is None or read_csv's frame exactly; whether it gave a frame."""
    frame = delimited._numeric_frame(path, delimiter, spaces)
    if frame is None:
        return False
    expected = read_csv(path, delimiter, spaces)
    assert not isinstance(expected, Exception), f"read_csv raises {expected!r} where the direct read gave a frame"
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert list(frame.columns) == list(expected.columns) and frame.columns.dtype == expected.columns.dtype
    for name in frame.columns:   # NaN and signed zeros, bit for bit
        assert frame[name].to_numpy().tobytes() == expected[name].to_numpy().tobytes()
    return True


def _files(tmp_path) -> dict[str, str]:
    files = {}
    for name, data in {**CORPUS, **CRAFTED}.items():
        path = tmp_path / name
        path.write_bytes(data)
        files[name] = str(path)
    for path in sorted(glob.glob(os.path.join(REAL, "*.csv"))):
        files[os.path.basename(path)] = path
    return files


@pytest.mark.parametrize("spaces", [True, False])
def test_the_direct_read_gives_read_csvs_frame_or_nothing(tmp_path, spaces):
    files = _files(tmp_path)
    direct = set()
    for name, path in files.items():
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).decode("utf-8", "replace")
        delimiter = delimited.sniff_delimiter(delimited.first_line(head)) if head.strip() else ","
        if assert_same_as_read_csv(path, delimiter, spaces):
            direct.add(name)
    # it must really take the numeric files, and leave the others to read_csv
    assert {"bom.csv", "unnamed_column.csv", "repeated_name.csv", "short_rows.csv", "crlf.csv",
            "empty_column.csv", "huge_alternating.csv", "exponents.csv"} <= direct
    assert not direct & {"index_column.csv", "past_int64.csv", "uint64.csv", "booleans.csv", "text_in_loss.csv",
                         "header_only.csv", "nul_byte.csv", "latin1.csv", "binary.csv", "ragged_rows.csv",
                         "quoted_cells.csv", "empty.csv"}
    assert any(name.endswith("metrics.csv") for name in direct)   # real Lightning logs


NUMBER_FORMATS = [repr, "{:.6f}".format, "{:.3e}".format, "{:g}".format, lambda v: f"{v:.17g}".upper()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 60), columns=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       delimiter=st.sampled_from([",", "\t", ";"]), spaces=st.booleans(), crlf=st.booleans(),
       empty_share=st.sampled_from([0.0, 0.1, 0.5]), formats=st.lists(st.integers(0, 4), min_size=5, max_size=5))
def test_generated_numeric_tables_are_read_directly_as_read_csv_reads_them(tmp_path, rows, columns, seed, delimiter,
                                                                          spaces, crlf, empty_share, formats):
    rng = np.random.default_rng(seed)
    names = ["step"] + [f"m{k}" for k in range(1, columns)]
    lines = [delimiter.join(names)]
    for i in range(rows):
        cells = [str(i)]
        for k in range(1, columns):
            value = float(rng.standard_normal() * 10.0 ** rng.integers(-8, 8))
            cells.append("" if rng.random() < empty_share else NUMBER_FORMATS[formats[k]](value))
        lines.append(delimiter.join((" " + c if spaces and c and rng.random() < 0.3 else c) for c in cells))
    path = tmp_path / "generated.csv"
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode() + b"\n")
    assert assert_same_as_read_csv(str(path), delimiter, spaces)   # a numeric table: always direct


def test_the_reader_gives_the_same_table_with_and_without_the_direct_read(tmp_path):
    """read_delimited_file end to end: the same frame and notes whether the direct read is there
    or not, for files it takes, files it tries and leaves to read_csv, and files whose first row
    holds a word, which go to read_csv without the direct read's parse."""
    files = _files(tmp_path)
    files["run_names.csv"] = str(tmp_path / "run_names.csv")
    (tmp_path / "run_names.csv").write_text("run,step,loss\n" + "".join(f"seed-{i % 2},{i},{1 / (i + 1)}\n"
                                                                      for i in range(200)))
    taken, tried = [], []
    for name in ("bom.csv", "repeated_name.csv", "short_rows.csv", "spaces.csv", "index_column.csv",
                 "booleans.csv", "quoted_cells.csv", "nan_spellings.csv", "missing_step.csv", "crlf.csv",
                 "run_names.csv"):
        calls = []
        original = delimited._numeric_frame

        def counted(*args):
            calls.append(args)
            return original(*args)

        with mock.patch.object(delimited, "_numeric_frame", counted):
            direct = delimited.read_delimited_file(files[name], name)
        with mock.patch.object(delimited, "TextReader", None):
            plain = delimited.read_delimited_file(files[name], name)
        pd.testing.assert_frame_equal(direct.frame, plain.frame, check_exact=True)
        assert direct.notes == plain.notes
        if calls:
            tried.append(name)
            if delimited._numeric_frame(*calls[0]) is not None:
                taken.append(name)
    assert {"bom.csv", "repeated_name.csv", "short_rows.csv", "spaces.csv", "missing_step.csv", "crlf.csv"} <= set(taken)
    assert {"index_column.csv", "nan_spellings.csv"} <= set(tried) - set(taken)   # tried, left to read_csv
    assert not {"booleans.csv", "quoted_cells.csv", "run_names.csv"} & set(tried)   # a word in the first row


@pytest.mark.parametrize("text, numbers", [
    ("step,loss\n0,0.1\n", True), ("step,loss\r\n0,0.1\r\n", True), ("step,loss\n\n\n0,1e-3\n", True),
    ("\ufeffstep,loss\n1,2\n", True), ("step,loss,x\n0,,0.5\n", True), ("step,loss\n0, 0.1\n", True),
    ("run,step,loss\nseed-0,0,0.1\n", False), ("step,loss\n", False), ('step,loss\n"0",0.1\n', False),
    ("step,loss\n   \n0,0.1\n", False), ("step,loss,note\n0,0.1,warm-up\n", False),
])
def test_the_first_row_says_whether_to_try_the_direct_read(text, numbers):
    assert delimited.first_row_numbers(text, delimited.first_line(text), ",") is numbers
