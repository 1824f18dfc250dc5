"""The MLflow SQLite reader's coded path (integer codes moved as group_concat strings, ordered in
NumPy) against the plain query read the slow obvious way: one row at a time, ordered by step then
timestamp, NaN where flagged, ±inf where MLflow stored the largest double. Stores are written by
MLflow itself, or created by MLflow and filled directly where MLflow cannot write the case (rows
tied on step and timestamp, steps that are not integers). Each test also checks which path read
each metric, so that a coded path that always gave up could not pass."""
from __future__ import annotations

import contextlib
import math
import shutil
import sqlite3
import sys

import numpy as np
import pytest

from siamdiag.logs.readers import mlflow_db
from siamdiag.logs.readers.mlflow_db import read_mlflow_db

mlflow = pytest.importorskip("mlflow")

T0 = 1_700_000_000_000


def plain_history(path: str, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The plain SQL reading, the slow obvious way (each stored number made a float64 as NumPy
    makes one: a NULL becomes NaN)."""
    steps, values = [], []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for step, value, is_nan in db.execute("SELECT step, value, is_nan FROM metrics WHERE run_uuid = ? AND key = ? "
                                              "ORDER BY step, timestamp", (run_id, key)):
            steps.append(np.float64(step))
            if is_nan:
                values.append(math.nan)
            elif abs(value) >= sys.float_info.max:
                values.append(math.copysign(math.inf, value))
            else:
                values.append(np.float64(value))
    return np.array(steps, dtype=np.float64), np.array(values, dtype=np.float64)


def assert_reads_plainly(path: str) -> dict[str, int]:
    """Every metric of every run read equals the plain reading bit for bit; returns the number of
    runs and metrics read."""
    runs = read_mlflow_db(path)
    for run in runs:
        for key, metric in run.series.items():
            steps, values = plain_history(path, run.run_id, key)
            assert metric.steps.dtype == np.float64 and metric.values.dtype == np.float64
            np.testing.assert_array_equal(metric.steps.view(np.int64), steps.view(np.int64), err_msg=f"{run.name} {key}")
            np.testing.assert_array_equal(metric.values.view(np.int64), values.view(np.int64), err_msg=f"{run.name} {key}")
    return {"runs": len(runs), "metrics": sum(len(r.series) for r in runs)}


@pytest.fixture
def paths(monkeypatch):
    """Which path read each metric: 'coded', or 'plain' where the coded path gave up (in the order
    the metrics' threads finish: compared sorted)."""
    taken = []
    coded = mlflow_db.coded_history

    def spy(db, source, run_id, key, has_latest):
        rows = None
        try:
            rows = coded(db, source, run_id, key, has_latest)
            return rows
        finally:
            taken.append((key, "plain" if rows is None else "coded"))

    monkeypatch.setattr(mlflow_db, "coded_history", spy)
    return taken


def _client(path):
    import logging

    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{path}")


def _wide_values(rng, n: int) -> np.ndarray:
    """Doubles of every magnitude MLflow can hold: random mantissas over all binades (subnormals
    included), zeros, both signs, and the largest double (which reads back as inf)."""
    values = rng.uniform(1, 2, n) * np.exp2(rng.integers(-1074, 1024, n).astype(np.float64))
    values[rng.random(n) < 0.05] = 0.0
    values[rng.random(n) < 0.03] = sys.float_info.max
    return np.where(rng.random(n) < 0.5, -values, values)


@pytest.fixture(scope="module")
def logged_store(tmp_path_factory):
    """A store MLflow wrote: two experiments; a long run whose loss falls by twelve binades (its
    first values fall outside the codes' window), with NaN and inf at its end; a resumed run that
    logs steps 150-199 again later; a metric of every magnitude; steps out of order and beyond
    2^53; a deleted run and a run without metrics."""
    path = tmp_path_factory.mktemp("logged") / "mlflow.db"
    client = _client(path)
    rng = np.random.default_rng(3)
    a, b = client.create_experiment("a"), client.create_experiment("b")

    def log(run_id, key, steps, values, t0=T0):
        metrics = [mlflow.entities.Metric(key, float(v), t0 + i, int(s)) for i, (s, v) in enumerate(zip(steps, values))]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])

    long = client.create_run(a, run_name="long").info.run_id
    n = 3000
    loss = 1e3 * np.exp(-np.arange(n) / 100) + 0.3 + 0.01 * rng.standard_normal(n)
    loss[-3:] = [math.inf, math.nan, -math.inf]
    log(long, "loss", range(n), loss)
    log(long, "grad_norm", range(n), 1 + 0.1 * rng.standard_normal(n))
    resumed = client.create_run(a, run_name="resumed").info.run_id
    log(resumed, "loss", range(200), 0.5 + 0.01 * rng.standard_normal(200))
    log(resumed, "loss", range(150, 400), 0.4 + 0.01 * rng.standard_normal(250), t0=T0 + 10_000)
    wide = client.create_run(b, run_name="wide").info.run_id
    log(wide, "loss", range(2000), _wide_values(rng, 2000))
    odd = client.create_run(b, run_name="odd steps").info.run_id
    log(odd, "loss", rng.permutation(np.r_[-5:0, 2**53 - 2:2**53 + 3, 2**62:2**62 + 5]), rng.standard_normal(15))
    deleted = client.create_run(a, run_name="deleted").info.run_id
    log(deleted, "loss", range(10), np.ones(10))
    client.delete_run(deleted)
    client.create_run(a, run_name="no metrics")
    return str(path)


def test_a_store_mlflow_wrote_reads_as_the_plain_query_does(logged_store, paths):
    assert assert_reads_plainly(logged_store) == {"runs": 4, "metrics": 5}
    assert sorted(paths) == sorted([(key, "coded") for key in ("grad_norm", "loss", "loss", "loss", "loss")])


def test_a_store_without_the_run_key_index_reads_alike(logged_store, tmp_path, paths):
    """Stores made before MLflow 3.x have no (run_uuid, key, step) index: the planner's own path."""
    old = tmp_path / "old.db"
    shutil.copy(logged_store, old)
    with contextlib.closing(sqlite3.connect(old)) as db:
        db.execute("DROP INDEX index_metrics_run_uuid_key_step")
        db.commit()
        assert mlflow_db.run_key_index(db) is None
    assert assert_reads_plainly(str(old)) == {"runs": 4, "metrics": 5}
    assert {path for _key, path in paths} == {"coded"}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A store with MLflow's schema and one run, its metrics to be inserted directly."""
    path = tmp_path_factory.mktemp("empty") / "mlflow.db"
    client = _client(path)
    client.create_run(client.create_experiment("direct"), run_name="direct")
    return str(path)


def _filled(empty_store, directory, rows, name="filled.db") -> str:
    """A copy of ``empty_store`` whose run has ``rows`` (key, step, timestamp, value, is_nan), in
    that insertion order, and latest_metrics as MLflow keeps it."""
    path = directory / name
    shutil.copy(empty_store, path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        (run,) = db.execute("SELECT run_uuid FROM runs").fetchone()
        db.executemany("INSERT INTO metrics (key, step, timestamp, value, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
                       [(*row, run) for row in rows])
        db.execute("INSERT INTO latest_metrics (key, step, timestamp, value, is_nan, run_uuid) "
                   "SELECT key, step, timestamp, value, is_nan, run_uuid FROM metrics WHERE rowid IN "
                   "(SELECT max(rowid) FROM metrics GROUP BY key)")
        db.commit()
    return str(path)


def test_rows_tied_on_step_and_timestamp_keep_the_plain_querys_order(empty_store, tmp_path, paths):
    """Only the plain query's plan orders rows tied on step and timestamp (MLflow logging one step
    twice within a millisecond): those metrics are read plainly, with and without the index."""
    rng = np.random.default_rng(5)
    tied = [("loss", int(s), T0 + int(t), float(v), 0) for s, t, v in
            zip(rng.integers(0, 20, 300), rng.integers(0, 3, 300), rng.standard_normal(300))]
    tied += [("loss", 3, T0 + 1, 0.0, 1), ("loss", 3, T0 + 1, 7.5, 0)]   # a NaN among them
    # steps logged up to three times, each time with an earlier timestamp than the last
    repeated = [("grad_norm", s % 40, T0 - s, float(v), 0) for s, v in enumerate(rng.standard_normal(120))]
    repeated += [("grad_norm", 5, T0 + 1000, 1e10, 0), ("grad_norm", 5, T0 + 999, -2e10, 0)]   # outside the window
    path = _filled(empty_store, tmp_path, tied + repeated)
    assert assert_reads_plainly(path) == {"runs": 1, "metrics": 2}
    assert sorted(paths) == sorted([("grad_norm", "coded"), ("loss", "plain")])   # repeated steps alone keep the coded path
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DROP INDEX index_metrics_run_uuid_key_step")
        db.commit()
    assert assert_reads_plainly(path) == {"runs": 1, "metrics": 2}


def test_values_of_every_magnitude_come_back_bit_for_bit(empty_store, tmp_path, paths):
    """Most of these values fall outside the codes' window and are fetched as stored, wherever
    they are in the run; NaN flags on any value, -0.0 (which SQLite stores as 0)."""
    rng = np.random.default_rng(11)
    n = 5000
    values = _wide_values(rng, n)
    values[:3] = [-0.0, 5e-324, -sys.float_info.max]
    flags = (rng.random(n) < 0.02).astype(int)
    steps = rng.permutation(n) * 3 - 100
    rows = [("loss", int(s), T0 + i, float(v), int(f)) for i, (s, v, f) in enumerate(zip(steps, values, flags))]
    rows += [("lr", i, T0 + i, v, 0) for i, v in enumerate([0.0, 1e-3, 1e-3, 1e-4, 0.0])]
    # first and latest value 1.0: the window is [2^-2, 2^9); full mantissas in and beyond its edge binades
    edges = np.r_[1.0, np.nextafter(0.25, 0), 0.25, np.nextafter(512, 0), 512.0,
                  np.ravel(rng.uniform(1, 2, (4, 50)) * np.exp2([[-3], [-2], [8], [9]])), 1.0]
    rows += [("edges", i, T0 + i, float(v), 0) for i, v in enumerate(np.r_[edges, -edges[1:]])]
    assert assert_reads_plainly(_filled(empty_store, tmp_path, rows)) == {"runs": 1, "metrics": 3}
    assert sorted(paths) == sorted([("edges", "coded"), ("loss", "coded"), ("lr", "coded")])


def test_steps_that_are_not_integers_are_read_plainly(empty_store, tmp_path, paths):
    """A REAL step, or a blob (no MLflow client writes either; SQLite orders a blob after every
    number), cannot travel as an integer code."""
    rows = [("loss", s, T0 + i, 0.5 + i, 0) for i, s in enumerate([0, 1, 2.5, 3, 1e20])]
    rows += [("lr", s, T0 + i, 0.5 + i, 0) for i, s in enumerate([0, 1, b"7", 2, 3])]
    assert assert_reads_plainly(_filled(empty_store, tmp_path, rows)) == {"runs": 1, "metrics": 2}
    assert sorted(paths) == sorted([("loss", "plain"), ("lr", "plain")])


def test_null_steps_are_read_plainly(empty_store, tmp_path, paths):
    """A metrics table that allows NULL steps (MLflow's does not, but nothing else checks it):
    group_concat leaves NULLs out, so the steps no longer line up with the codes."""
    path = tmp_path / "nullable.db"
    shutil.copy(empty_store, path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        (run,) = db.execute("SELECT run_uuid FROM runs").fetchone()
        db.execute("DROP TABLE metrics")
        db.execute("CREATE TABLE metrics (key TEXT, value FLOAT, timestamp BIGINT, run_uuid TEXT, step BIGINT, is_nan BOOLEAN)")
        db.executemany("INSERT INTO metrics VALUES ('loss', ?, ?, ?, ?, 0)",
                       [(0.5 + i, T0 + i, run, s) for i, s in enumerate([0, 1, None, 3])])
        db.execute("DELETE FROM latest_metrics")
        db.execute("INSERT INTO latest_metrics VALUES ('loss', 3.5, ?, 3, 0, ?)", (T0 + 3, run))
        db.commit()
    assert assert_reads_plainly(str(path)) == {"runs": 1, "metrics": 1}
    assert sorted(paths) == sorted([("loss", "plain")])


def test_a_value_that_is_not_a_number_fails_as_the_plain_reading_does(empty_store, tmp_path):
    """Text where MLflow keeps a REAL is never read as a number (SQLite would take '5x' as 5):
    the reading raises what the plain query's conversion raises."""
    path = _filled(empty_store, tmp_path, [("loss", i, T0 + i, v, 0) for i, v in enumerate([0.5, "5x", 0.7])])
    with pytest.raises(ValueError) as plain, contextlib.closing(sqlite3.connect(path)) as db:
        (run,) = db.execute("SELECT run_uuid FROM runs").fetchone()
        np.fromiter(db.execute(mlflow_db.METRIC_QUERY, (run, "loss")), dtype=mlflow_db.HISTORY)
    with pytest.raises(ValueError) as coded:
        read_mlflow_db(path)
    assert str(coded.value) == str(plain.value)


def test_a_history_too_long_for_one_sqlite_string_is_read_plainly(empty_store, tmp_path, monkeypatch, paths):
    """SQLite refuses a string over its length limit (a billion bytes by default: some 50 million
    rows of codes); the limit is lowered here so that a 3,000-row metric's codes reach it."""
    rows = [("loss", i, T0 + i, 0.3 + i / 7, 0) for i in range(3000)] + [("lr", i, T0 + i, 0.1, 0) for i in range(30)]
    path = _filled(empty_store, tmp_path, rows)
    connect = mlflow_db._connect

    def limited(path):
        db = connect(path)
        db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 20_000)
        return db

    monkeypatch.setattr(mlflow_db, "_connect", limited)
    assert assert_reads_plainly(path) == {"runs": 1, "metrics": 2}
    assert sorted(paths) == sorted([("loss", "plain"), ("lr", "coded")])
