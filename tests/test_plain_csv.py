"""A short CSV of plain numbers is read by numpy without loading pandas (readers.plain_csv, issue
#20: importing pandas is most of the time a CI gate on a few short logs takes). Oracle: the pandas
reader on the same file (plain_csv switched off): wherever numpy reads a file, the runs are the
same, name, notes and every metric's steps and values bit for bit; wherever it declines, pandas
reads the file, so any error or note is pandas'. Each value is also held to float() of its token.
Inputs: the bad-input corpus, the crafted files of the direct-tokenizer tests, the real logs, and
generated tables in every number format a writer uses."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamdiag.errors import SiamdiagError
from siamdiag.logs import ingest, tables
from siamdiag.logs.ingest import ReadOptions, read_runs
from siamdiag.logs.readers import plain_csv

from .test_bad_input_corpus import CORPUS
from .test_numeric_frame import CRAFTED
from .test_readers import REAL

DECLINED = {   # files numpy must leave to pandas, each for the reason its name gives
    "nan.csv": b"step,loss\n0,0.1\n1,nan\n",
    "inf.csv": b"step,loss\n0,0.1\n1,-inf\n",
    "overflow.csv": b"step,loss\n0,0.1\n1,1e999\n",
    "empty_cell.csv": b"step,loss,g\n0,0.1,\n1,0.2,3\n",
    "negative_zero_int.csv": b"step,loss\n-0,0.1\n1,0.2\n",
    "negative_zero_float.csv": b"step,loss\n0,-0.0\n1,0.2\n",
    "quoted_cell.csv": b'step,loss\n0,"0.1"\n1,0.2\n',
    "quoted_name.csv": b'"step",loss\n0,0.1\n1,0.2\n',
    "space_in_row.csv": b"step,loss\n0, 0.1\n1,0.2\n",
    "space_around_name.csv": b"step, loss\n0,0.1\n1,0.2\n",
    "crlf_rows.csv": b"step,loss\n0,0.1\r\n1,0.2\r\n",
    "unterminated.csv": b"step,loss\n0,0.1\n1,0.2",
    "blank_line_inside.csv": b"step,loss\n0,0.1\n\n1,0.2\n",
    "blank_line_first.csv": b"\nstep,loss\n0,0.1\n",
    "repeated_name.csv": b"loss,loss\n0.1,0.2\n0.3,0.4\n",
    "empty_name.csv": b"step,,loss\n0,1,0.1\n1,2,0.2\n",
    "bom.csv": "\ufeffstep,loss\n0,0.1\n1,0.2\n".encode(),
    "two_points.csv": b"step,loss\n0,1.2.3\n1,0.2\n",
    "lone_sign.csv": b"step,loss\n0,-\n1,0.2\n",
    "short_row.csv": b"step,loss,g\n0,0.1\n1,0.2,3\n",
    "long_row.csv": b"step,loss\n0,0.1,7\n1,0.2,8\n",
    "header_only.csv": b"step,loss\n",
    "run_column.csv": b"run,step,loss\n1,0,0.1\n1,1,0.2\n2,0,0.3\n",
    "steps_start_over.csv": b"step,loss,seed\n0,0.1,1\n1,0.2,1\n0,0.3,2\n1,0.4,2\n",
    "decimal_comma.csv": b"step;loss\n0;0,1\n1;0,2\n",
    "text_column.csv": b"step,loss,phase\n0,0.1,warmup\n1,0.2,train\n",
}
TAKEN = {   # files numpy must read
    "exponents.csv": b"step,loss\n0,1e-3\n1,1E+2\n2,.5\n3,5.\n4,+7\n",
    "tabs.tsv": b"step\tloss\tgrad_norm\n0\t0.5\t1\n1\t0.25\t2\n",
    "semicolons.csv": b"step;loss\n0;0.1\n1;0.2\n",
    "single_column.csv": b"loss\n0.3\n0.2\n0.1\n",
    "no_step_column.csv": b"loss,grad_norm\n0.3,1\n0.2,2\n",
    "past_2_53.csv": b"step,loss\n9007199254740993,0.1\n18446744073709551615,0.2\n99999999999999999999999,0.3\n",
    "long_decimals.csv": b"step,loss\n0,0.1000000000000000055511151231257827021181583404541015625\n"
                         b"1,3.14159265358979323846264338327950288\n",
    "subnormal.csv": b"step,loss\n0,4.9e-324\n1,2.2250738585072014e-308\n",
}


def same_runs(a, b) -> None:
    """Two lists of RawRun alike: names, sources, notes, settings, trackers, and every metric's
    steps and values bit for bit, dtypes included."""
    assert [(r.name, r.source, r.notes, r.every_step_setting, r.tracker) for r in a] == \
        [(r.name, r.source, r.notes, r.every_step_setting, r.tracker) for r in b]
    for x, y in zip(a, b):
        assert list(x.metrics) == list(y.metrics)
        for role in x.metrics:
            for got, want in ((x.metrics[role].steps, y.metrics[role].steps), (x.metrics[role].values, y.metrics[role].values)):
                assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), role


def outcome(path: str):
    """read_runs of one file: its runs, or the error it raises (type and message)."""
    try:
        return read_runs([path], ReadOptions())
    except SiamdiagError as exc:
        return (type(exc), str(exc))


def read_both(path: str, monkeypatch) -> tuple[object, object, bool]:
    """What read_runs gives with numpy's plain reader and with pandas alone, and whether numpy read it."""
    taken = []
    real = tables.numbers_to_run

    def spy(*args, **kwargs):
        runs = real(*args, **kwargs)
        taken.append(runs is not None)
        return runs

    with monkeypatch.context() as m:
        m.setattr(ingest, "numbers_to_run", spy)
        with_numpy = outcome(path)
    with monkeypatch.context() as m:
        m.setattr(plain_csv, "PLAIN_MAX_BYTES", -1)
        with_pandas = outcome(path)
    return with_numpy, with_pandas, any(taken)


def check_same(path: str, monkeypatch) -> bool:
    with_numpy, with_pandas, taken = read_both(path, monkeypatch)
    if isinstance(with_pandas, tuple):
        assert with_numpy == with_pandas
    else:
        same_runs(with_numpy, with_pandas)
    return taken


def _write(tmp_path, files: dict[str, bytes]) -> dict[str, str]:
    out = {}
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        out[name] = str(path)
    return out


def test_every_file_reads_as_pandas_reads_it_and_the_plain_ones_by_numpy(tmp_path, monkeypatch):
    files = _write(tmp_path, {**CORPUS, **CRAFTED, **DECLINED, **TAKEN})
    files.update({os.path.basename(p): p for p in sorted(glob.glob(os.path.join(REAL, "*.csv")))})
    taken = {name for name, path in files.items() if check_same(path, monkeypatch)}
    assert set(TAKEN) <= taken
    assert not taken & set(DECLINED)
    assert {"exponents.csv", "huge_alternating.csv", "near_float_max.csv"} <= taken
    assert len(taken) >= len(TAKEN) + 5   # the corpus's plain logs too


def test_each_value_is_float_of_its_token(tmp_path):
    rng = np.random.default_rng(3)
    tokens = [repr(float(v)) for v in rng.standard_normal(400) * 10.0 ** rng.integers(-300, 300, 400)]
    tokens += ["".join(map(str, rng.integers(0, 10, int(n)))) + "." + "".join(map(str, rng.integers(0, 10, 30)))
               for n in rng.integers(1, 25, 200)]   # more digits than a double holds
    tokens += [f"{int(m)}e{int(e)}" for m, e in zip(rng.integers(1, 10**6, 200), rng.integers(-320, 300, 200))]
    path = tmp_path / "tokens.csv"
    path.write_text("loss\n" + "".join(t + "\n" for t in tokens))
    columns = plain_csv.read_plain_numbers(str(path), None)
    assert columns is not None
    assert columns["loss"].tobytes() == np.array([float(t) for t in tokens]).tobytes()


def test_a_log_longer_than_the_limit_goes_to_pandas(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text("step,loss\n" + "".join(f"{k},{1 / (k + 1)!r}\n" for k in range(500)))
    assert plain_csv.read_plain_numbers(str(path), None) is not None
    monkeypatch.setattr(plain_csv, "PLAIN_MAX_BYTES", os.path.getsize(path) - 1)
    reads = []

    class Counted:   # the file, its reads counted: a longer log must not be read at all (malloc's threshold)
        def __init__(self, *args):
            self.fh = open(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def fileno(self):
            return self.fh.fileno()

        def read(self, *args):
            reads.append(args)
            return self.fh.read(*args)

    monkeypatch.setattr(plain_csv, "open", Counted, raising=False)
    assert plain_csv.read_plain_numbers(str(path), None) is None
    assert reads == []


NUMBER_FORMATS = [repr, "{:.6f}".format, "{:.3e}".format, "{:g}".format, lambda v: f"{v:.17g}".upper(), "{:+.4f}".format]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 80), columns=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       delimiter=st.sampled_from([",", "\t", ";"]), step_column=st.booleans(),
       formats=st.lists(st.integers(0, 5), min_size=5, max_size=5))
def test_generated_plain_tables_read_by_numpy_as_pandas_reads_them(tmp_path, monkeypatch, rows, columns, seed,
                                                                  delimiter, step_column, formats):
    rng = np.random.default_rng(seed)
    names = (["step"] if step_column else []) + ["loss", "grad_norm", "lr", "pos_dist", "m5"][:columns]
    lines = [delimiter.join(names)]
    for i in range(rows):
        cells = [str(i * 10)] if step_column else []
        for k in range(columns):
            value = float(rng.standard_normal() * 10.0 ** rng.integers(-8, 8))
            token = NUMBER_FORMATS[formats[k]](value)
            if float(token) == 0:   # a negative zero ('-0.000000') is declined
                token = NUMBER_FORMATS[formats[k]](abs(value))
            cells.append(token if rng.random() < 0.8 else str(int(rng.integers(1, 10**6))))
        lines.append(delimiter.join(cells))
    path = tmp_path / "generated.csv"
    path.write_text("\n".join(lines) + "\n")
    assert check_same(str(path), monkeypatch)   # a plain table: always numpy's


def test_analyze_of_a_plain_csv_never_loads_pandas(tmp_path):
    path = tmp_path / "log.csv"
    rng = np.random.default_rng(0)
    path.write_text("step,loss,grad_norm\n" + "".join(f"{k},{0.3 + 0.02 * rng.standard_normal():.6f},{1 + rng.random():.5f}\n"
                                                   for k in range(2000)))
    code = ("import sys; from siamdiag.cli.main import main\n"
            f"try:\n    main(['analyze', {str(path)!r}, '--format', 'json'])\nexcept SystemExit as e:\n    code = e.code\n"
            "assert code == 0, code\nassert 'pandas' not in sys.modules, 'pandas was loaded'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"verdict": "stationary"' in result.stdout


@pytest.mark.parametrize("name", ["run_column.csv", "steps_start_over.csv", "text_column.csv"])
def test_a_plain_log_that_needs_the_table_is_still_read_by_pandas(tmp_path, monkeypatch, name):
    """A run column to split by, or steps that start over (the hint names the columns that change
    with them): numpy's read is not used, and pandas' runs and notes stand."""
    path = _write(tmp_path, {name: DECLINED[name]})[name]
    with_numpy, with_pandas, taken = read_both(path, monkeypatch)
    assert not taken
    same_runs(with_numpy, with_pandas)
    if name == "steps_start_over.csv":
        assert any("--run-col seed" in note for note in with_numpy[0].notes)
    if name == "run_column.csv":
        assert [r.name for r in with_numpy] == ["1", "2"]
