"""MLflow database stores (``sqlite:///mlflow.db``, the default tracking store since MLflow 3.7),
read with the standard library's sqlite3, opened read-only: no MLflow installation needed. One
run per active MLflow run in an active experiment; every metric of a run is one series.

MLflow stores a NaN as 0 with ``is_nan`` set and ±inf as ±1.797e308 (the largest double):
both are mapped back, or a diverged loss would read as a finite one."""
from __future__ import annotations

import contextlib
import fnmatch
import os
import sqlite3
import sys
import urllib.parse
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ..tables import Metric

SQLITE_MAGIC = b"SQLite format 3\x00"
FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class RunFilter:
    """Which MLflow runs to read: an experiment (its name or id) and a glob on run names."""

    experiment: str | None = None
    run_name: str | None = None

    def keeps(self, experiment_id: str, experiment_name: str, run_name: str) -> bool:
        if self.experiment is not None and self.experiment not in (experiment_id, experiment_name):
            return False
        return self.run_name is None or fnmatch.fnmatchcase(run_name, self.run_name)


@dataclass(frozen=True)
class TrackedRun:
    """One MLflow run read from a store: its display name and the metrics read."""

    name: str
    run_id: str
    experiment: str
    series: dict[str, Metric]
    source: str | None = None      # where it was read when not the store itself (a file store's run directory)
    notes: tuple[str, ...] = ()


def from_stored(values: np.ndarray, is_nan: np.ndarray | None = None) -> np.ndarray:
    """Metric values as they were logged: NaN where MLflow flagged one, ±inf where it stored the
    largest double in its place."""
    values = np.where(np.abs(values) >= FLOAT_MAX, np.copysign(np.inf, values), values)
    if is_nan is not None:
        values[is_nan.astype(bool)] = np.nan
    return values


def is_mlflow_db(path: str) -> bool:
    """An SQLite file holding MLflow's runs and metrics tables."""
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != SQLITE_MAGIC:
                return False
        with contextlib.closing(_connect(path)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except (OSError, sqlite3.Error):
        return False
    return {"runs", "metrics", "experiments"} <= tables


def _connect(path: str) -> sqlite3.Connection:
    """Read-only: a store being written by a training job is never modified by reading it. (A
    connection's own ``with`` only ends a transaction: callers close it with contextlib.closing.)"""
    return sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)


RUNS_QUERY = """
    SELECT r.run_uuid, r.name, CAST(e.experiment_id AS TEXT), e.name
    FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id
    WHERE r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active'
    ORDER BY e.experiment_id, r.start_time, r.run_uuid"""
# The metric names of a run: MLflow keeps one row per run and metric in latest_metrics (what its
# own client lists as a run's metrics), a lookup where scanning the run's history is not;
# a store without that table is scanned.
KEYS_QUERIES = {True: "SELECT key FROM latest_metrics WHERE run_uuid = ? ORDER BY key",
                False: "SELECT DISTINCT key FROM metrics WHERE run_uuid = ? ORDER BY key"}
METRIC_QUERY = """
    SELECT step, value, is_nan FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step, timestamp"""
HISTORY = np.dtype([("step", np.float64), ("value", np.float64), ("is_nan", np.int8)])


def read_mlflow_db(path: str, wanted: RunFilter = RunFilter(), pick=None) -> list[TrackedRun]:
    """The runs in an MLflow SQLite store that ``wanted`` keeps and that logged any metric, in
    experiment and start-time order, with the metrics ``pick`` keeps (metric names -> the names
    to read; all by default). A step logged twice (a resumed run) keeps both rows, the later one
    last, as a file store would."""
    try:
        with contextlib.closing(_connect(path)) as db:
            keys_query = KEYS_QUERIES[bool(db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'latest_metrics'").fetchone())]
            found = []
            for run_id, name, experiment_id, experiment in db.execute(RUNS_QUERY).fetchall():
                name = name or run_id
                if not wanted.keeps(experiment_id, experiment, name):
                    continue
                keys = [k for (k,) in db.execute(keys_query, (run_id,))]
                keys = sorted(pick(keys)) if pick is not None and keys else keys
                series = {}
                for key in keys:
                    rows = np.fromiter(db.execute(METRIC_QUERY, (run_id, key)), dtype=HISTORY)
                    series[key] = Metric(steps=rows["step"], values=from_stored(rows["value"], rows["is_nan"]))
                if series:
                    found.append(TrackedRun(name=name, run_id=run_id, experiment=experiment, series=series))
    except sqlite3.Error as exc:
        raise InputError(path, f"cannot read the MLflow database: {exc}") from None
    return found


def unique_names(runs: list[TrackedRun]) -> list[str]:
    """Display names, the same for the file store, the database and a tracking server: the run
    name, ``experiment/run`` when runs of several experiments are read, and the start of the
    run's id after it where two runs still share a name."""
    several = len({r.experiment for r in runs}) > 1
    names = [f"{r.experiment}/{r.name}" if several else r.name for r in runs]
    return [f"{n} ({r.run_id[:8]})" if names.count(n) > 1 else n for n, r in zip(names, runs)]
