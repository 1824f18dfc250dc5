"""The MLflow SQLite reader's faster paths (issue #20) read what the plain query reads: a store of one
run through MLflow's primary key (a covering index) and a run's metrics on several threads, each
with its own connection. The oracle is test_mlflow_db_speed_paths' plain reading, one row at a time,
bit for bit; which index and how many threads read is checked too."""
from __future__ import annotations

import contextlib
import sqlite3

import numpy as np
import pytest

from siamdiag.logs import textfile
from siamdiag.logs.readers import mlflow_db
from siamdiag.logs.readers.mlflow_db import read_mlflow_db

from .test_mlflow_db_speed_paths import T0, _filled, _wide_values, assert_reads_plainly, empty_store, logged_store  # noqa: F401


@pytest.fixture
def sources(monkeypatch):
    """The index each read_mlflow_db call reads its metrics through."""
    chosen = []
    original = mlflow_db.history_source

    def spy(index):
        chosen.append(index)
        return original(index)

    monkeypatch.setattr(mlflow_db, "history_source", spy)
    return chosen


def _rows(seed: int) -> list[tuple]:
    """Several metrics of one run: values of every magnitude, NaN flags, steps repeated (later
    timestamps last) and out of order."""
    rng = np.random.default_rng(seed)
    rows = []
    for key in ("loss", "grad_norm", "lr", "val/loss")[:int(rng.integers(2, 5))]:
        n = int(rng.integers(1, 400))
        values = _wide_values(rng, n) if rng.random() < 0.5 else 0.3 + rng.random(n)
        steps = rng.integers(0, n, n) if rng.random() < 0.3 else rng.permutation(n)
        flags = (rng.random(n) < 0.05).astype(int)
        rows += [(key, int(s), T0 + i, float(v), int(f)) for i, (s, v, f) in enumerate(zip(steps, values, flags))]
    return rows


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_a_one_run_store_reads_through_its_primary_key_as_the_plain_query_does(
        empty_store, tmp_path, monkeypatch, sources, seed, threads):   # noqa: F811
    monkeypatch.setattr(textfile, "PARSE_THREADS", threads)
    path = _filled(empty_store, tmp_path, _rows(seed))
    counts = assert_reads_plainly(path)
    assert counts["runs"] == 1 and counts["metrics"] >= 2
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert sources == [mlflow_db.covering_key_index(db)] and sources[0] == "sqlite_autoindex_metrics_1"


def test_a_store_of_several_runs_reads_through_the_run_key_index(logged_store, sources):   # noqa: F811
    assert assert_reads_plainly(logged_store) == {"runs": 4, "metrics": 5}
    assert sources == ["index_metrics_run_uuid_key_step"]


def test_a_value_that_is_not_a_number_fails_on_a_thread_as_on_one(empty_store, tmp_path, monkeypatch):   # noqa: F811
    rows = [("loss", i, T0 + i, v, 0) for i, v in enumerate([0.5, "5x", 0.7])] + [("lr", 0, T0, 0.1, 0)]
    path = _filled(empty_store, tmp_path, rows)
    errors = []
    for threads in (1, 2):
        monkeypatch.setattr(textfile, "PARSE_THREADS", threads)
        with pytest.raises(ValueError) as raised:
            read_mlflow_db(path)
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
