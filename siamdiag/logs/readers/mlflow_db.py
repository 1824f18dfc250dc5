"""MLflow database stores (``sqlite:///mlflow.db``, the default tracking store since MLflow 3.7),
read with the standard library's sqlite3, opened read-only: no MLflow installation needed. One
run per active MLflow run in an active experiment; every metric of a run is one series.

MLflow stores a NaN as 0 with ``is_nan`` set and ±inf as ±1.797e308 (the largest double):
both are mapped back, or a diverged loss would read as a finite one."""
from __future__ import annotations

import contextlib
import fnmatch
import math
import os
import sys
import urllib.parse
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...errors import InputError
from ..tables import Metric
from .. import textfile

if TYPE_CHECKING:
    import sqlite3

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
    """An SQLite file holding MLflow's runs and metrics tables. (sqlite3 is imported by the
    functions that open a store: a CSV judgement never needs it.)"""
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != SQLITE_MAGIC:
                return False
    except OSError:
        return False
    import sqlite3

    try:
        with contextlib.closing(_connect(path)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except (OSError, sqlite3.Error):
        return False
    return {"runs", "metrics", "experiments"} <= tables


def _connect(path: str) -> sqlite3.Connection:
    """Read-only: a store being written by a training job is never modified by reading it. (A
    connection's own ``with`` only ends a transaction: callers close it with contextlib.closing.)
    Transactions are begun explicitly (``snapshot``), never implicitly."""
    import sqlite3

    return sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True,
                           isolation_level=None)


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
# The plain reading of a metric's history, in the order every reader of the store has used: by
# step, then timestamp; rows tied on both come in the order the query plan meets them.
METRIC_QUERY = """
    SELECT step, value, is_nan FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step, timestamp"""
HISTORY = np.dtype([("step", np.float64), ("value", np.float64), ("is_nan", np.int8)])
STORED = np.dtype([("value", np.float64), ("is_nan", np.int8)])

# The coded reading (``coded_history``) moves a metric's rows out of SQLite as a few long strings of
# integers instead of one Python tuple per row, which costs two to three times as much. A value v
# goes as v * 2^k when 2^(52-k) <= |v| < 2^(63-k) (eleven binades around the metric's own scale,
# where v * 2^k is an exact integer below 2^63) or v is 0; any other row (flagged NaN, the stored
# ±inf, a value outside the window, text, which SQLite ranks above every number) goes as UNSCALED
# and is fetched afterwards as it is stored. No code is UNSCALED: codes are doubles below 2^63.
UNSCALED = 2**63 - 1
CODE = f"""CASE WHEN is_nan = 0 AND (value >= :low AND value < :high OR value <= -:low AND value > -:high OR value = 0)
    THEN CAST(value * :scale AS INTEGER) ELSE {UNSCALED} END"""
# The first column says whether the steps (and timestamps) are integers: SQLite ranks every number
# below any text or blob, so their maximum is an integer only if none is text or a blob; a REAL
# one fails when its text is parsed. CODE is never NULL: fewer steps than codes means a NULL step.
CODES_QUERY = f"SELECT typeof(max(step)) = 'integer', group_concat({CODE}), group_concat(step) {{source}}"
TIMED_CODES_QUERY = f"""SELECT typeof(max(step)) = 'integer' AND typeof(max(timestamp)) = 'integer',
    group_concat({CODE}), group_concat(step), group_concat(timestamp) {{source}}"""
UNSCALED_QUERY = f"""SELECT value, is_nan {{source}} AND step BETWEEN :first AND :last AND {CODE} = {UNSCALED}
    ORDER BY step, timestamp"""


def read_mlflow_db(path: str, wanted: RunFilter = RunFilter(), pick=None) -> list[TrackedRun]:
    """The runs in an MLflow SQLite store that ``wanted`` keeps and that logged any metric, in
    experiment and start-time order, with the metrics ``pick`` keeps (metric names -> the names
    to read; all by default). A step logged twice (a resumed run) keeps both rows, the later one
    last, as a file store would."""
    import sqlite3

    try:
        with contextlib.closing(_connect(path)) as db:
            has_latest = bool(db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'latest_metrics'").fetchone())
            keys_query = KEYS_QUERIES[has_latest]
            one_run = db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
            source = history_source((one_run and covering_key_index(db)) or run_key_index(db))
            found = []
            for run_id, name, experiment_id, experiment in db.execute(RUNS_QUERY).fetchall():
                name = name or run_id
                if not wanted.keeps(experiment_id, experiment, name):
                    continue
                keys = [k for (k,) in db.execute(keys_query, (run_id,))]
                keys = sorted(pick(keys)) if pick is not None and keys else keys
                series = {}
                for key, rows in zip(keys, read_histories(path, db, source, run_id, keys, has_latest)):
                    series[key] = Metric(steps=rows["step"], values=from_stored(rows["value"], rows["is_nan"]))
                if series:
                    found.append(TrackedRun(name=name, run_id=run_id, experiment=experiment, series=series))
    except sqlite3.Error as exc:
        raise InputError(path, f"cannot read the MLflow database: {exc}") from None
    return found


def _metrics_index(db: sqlite3.Connection, fits) -> str | None:
    """The first index of the metrics table whose columns (in order) ``fits`` accepts."""
    for (name,) in db.execute("SELECT name FROM pragma_index_list('metrics') WHERE NOT partial").fetchall():
        if fits([c for (c,) in db.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (name,))]):
            return name
    return None


def run_key_index(db: sqlite3.Connection) -> str | None:
    """An index of the metrics table that leads with (run_uuid, key): MLflow's own (run_uuid, key,
    step) since MLflow 3.x. Without it the planner would scan the metric's rows of every run
    through the primary key; stores made by older MLflow versions have none."""
    return _metrics_index(db, lambda columns: columns[:2] == ["run_uuid", "key"])


def covering_key_index(db: sqlite3.Connection) -> str | None:
    """An index of the metrics table that leads with key and holds every column a metric's
    reading needs: MLflow's primary key (key, timestamp, step, run_uuid, value, is_nan). In a
    store of one run a metric's rows are all of its key's, read from this index alone, where the
    run-key index leads to the table for each row's value (a third of the reading's time)."""
    return _metrics_index(db, lambda columns: columns[:1] == ["key"]
                          and {"run_uuid", "step", "timestamp", "value", "is_nan"} <= set(columns))


def history_source(index: str | None) -> str:
    """The FROM and WHERE of one metric's rows, through ``index`` when the store has one."""
    indexed = ' INDEXED BY "{}"'.format(index.replace('"', '""')) if index else ""
    return f"FROM metrics{indexed} WHERE run_uuid = :run AND key = :key"


@contextlib.contextmanager
def snapshot(db: sqlite3.Connection):
    """One read transaction: the queries that read one metric see the same rows, even while a
    training job appends to the store (held as long as one metric's reading, as a single query is)."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def read_history(db: sqlite3.Connection, source: str, run_id: str, key: str, has_latest: bool) -> np.ndarray:
    """One metric's rows (HISTORY) exactly as the plain query gives them: coded where it can be,
    plainly where not (a history too long for one SQLite string, steps that are not integers,
    rows tied on step and timestamp, whose order only the plain query's plan decides)."""
    import sqlite3

    with snapshot(db):
        try:
            rows = coded_history(db, source, run_id, key, has_latest)
        except sqlite3.DataError:   # SQLITE_TOOBIG: over a billion bytes of codes
            rows = None
        if rows is None:
            rows = np.fromiter(db.execute(METRIC_QUERY, (run_id, key)), dtype=HISTORY)
    return rows


def read_histories(path: str, db: sqlite3.Connection, source: str, run_id: str, keys: list[str],
                   has_latest: bool) -> list[np.ndarray]:
    """The rows of each of a run's metrics (read_history), on textfile.PARSE_THREADS threads when it has
    several, each thread with a connection of its own: sqlite3 lets go of the GIL while SQLite
    computes a query, so the metrics' queries run side by side."""
    threads = min(textfile.PARSE_THREADS, len(keys))
    if threads < 2:
        return [read_history(db, source, run_id, key, has_latest) for key in keys]

    def share(first: int) -> list[np.ndarray]:
        with contextlib.closing(_connect(path)) as own:
            return [read_history(own, source, run_id, key, has_latest) for key in keys[first::threads]]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        shares = list(pool.map(share, range(threads)))
    return [shares[k % threads][k // threads] for k in range(len(keys))]


def scale_exponent(probes: list) -> int:
    """k for CODE: the window's eleven binades start two below the smaller probe's (the metric's
    first and latest values), so a loss may fall to a quarter of its latest value and have been
    some 2^8 times it; a run whose transient starts higher has its first values fetched as stored."""
    exponents = [math.frexp(v)[1] - 1 for v in probes
                 if isinstance(v, float) and v != 0 and abs(v) < FLOAT_MAX]
    return min(max(52 - (min(exponents, default=0) - 2), 0), 1023)


def parse_integers(text: str | None) -> np.ndarray:
    """group_concat's comma-separated integers as int64; ValueError for anything else (a REAL),
    which NumPy before 2.x only warned of, returning what it had read."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, np.int64)
        except DeprecationWarning as exc:
            raise ValueError(str(exc)) from None


def coded_columns(db: sqlite3.Connection, query: str, params: dict) -> list[np.ndarray] | None:
    """A codes query's group_concat columns (codes first) as int64 arrays, one entry a row; None
    where a step or timestamp is not an integer."""
    integers, *texts = db.execute(query, params).fetchone()
    if texts[0] and not integers:
        return None
    try:
        columns = [parse_integers(text) for text in texts]
    except ValueError:
        return None
    return columns if all(len(column) == len(columns[0]) for column in columns) else None


def coded_history(db: sqlite3.Connection, source: str, run_id: str, key: str, has_latest: bool) -> np.ndarray | None:
    """One metric's rows through integer codes (see CODE), ordered by step and timestamp in
    NumPy; None where only the plain query can give its rows and their order."""
    params = {"run": run_id, "key": key}
    probes = [v for (v,) in db.execute(f"SELECT value {source} LIMIT 1", params)]
    if has_latest:
        probes += [v for (v,) in db.execute("SELECT value FROM latest_metrics WHERE run_uuid = ? AND key = ?",
                                            (run_id, key))]
    exponent = scale_exponent(probes)
    params.update(scale=2.0 ** exponent, low=2.0 ** (52 - exponent), high=2.0 ** (63 - exponent))
    columns = coded_columns(db, CODES_QUERY.format(source=source), params)
    if columns is None:
        return None
    codes, steps = columns
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    if np.any(steps[1:] == steps[:-1]):   # a step logged twice: its timestamps decide
        columns = coded_columns(db, TIMED_CODES_QUERY.format(source=source), params)
        if columns is None:
            return None
        codes, steps, times = columns
        order = np.lexsort((times, steps))
        steps, times = steps[order], times[order]
        if np.any((steps[1:] == steps[:-1]) & (times[1:] == times[:-1])):
            return None
    codes = codes[order]
    rows = np.zeros(len(codes), dtype=HISTORY)
    rows["step"] = steps
    rows["value"] = np.ldexp(codes.astype(np.float64), -exponent)
    unscaled = np.flatnonzero(codes == UNSCALED)
    if len(unscaled):   # the same rows, in the same order: one snapshot, one classification
        params.update(first=int(steps[unscaled[0]]), last=int(steps[unscaled[-1]]))
        stored = np.fromiter(db.execute(UNSCALED_QUERY.format(source=source), params), dtype=STORED)
        rows["value"][unscaled], rows["is_nan"][unscaled] = stored["value"], stored["is_nan"]
    return rows


def unique_names(runs: list[TrackedRun]) -> list[str]:
    """Display names, the same for the file store, the database and a tracking server: the run
    name, ``experiment/run`` when runs of several experiments are read, and the start of the
    run's id after it where two runs still share a name."""
    several = len({r.experiment for r in runs}) > 1
    names = [f"{r.experiment}/{r.name}" if several else r.name for r in runs]
    return [f"{n} ({r.run_id[:8]})" if names.count(n) > 1 else n for n, r in zip(names, runs)]
