"""From what a reader decoded to runs: a table of rows (CSV, JSON records) or a set of named
series (TensorBoard tags, MLflow metrics) becomes one RawRun per run, with the loss, grad norm
and Siamese extras chosen by the column rules of ``columns``."""
from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from .columns import ColumnMap, ColumnOverrides, detect_columns
from .loggers import every_step_setting
from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd   # (loaded by the readers that build a table: a plain CSV of numbers never needs it)


@functools.cache
def pandas_reads_exactly() -> bool:
    """pandas reads a decimal as float() does (correctly rounded) from 3.1 on; before, its default
    parsers may land on a neighbouring float, and only read_csv's round_trip parser reads one exactly."""
    import pandas as pd

    return tuple(map(int, re.findall(r"\d+", pd.__version__)[:2])) >= (3, 1)


NONFINITE_TOKENS = {"nan": np.nan, "+nan": np.nan, "-nan": np.nan, "inf": np.inf, "+inf": np.inf,
                    "-inf": -np.inf, "infinity": np.inf, "+infinity": np.inf, "-infinity": -np.inf}


@dataclass(frozen=True)
class Metric:
    """The rows of one run where a metric was logged, in file order: steps may repeat or go
    backwards (resumed runs). Values may be non-finite (the loss really was NaN or inf)."""

    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Tracker:
    """Where the run's own tracker keeps it, so that its verdict can be written back there
    (``logs.writeback``): ``kind`` 'mlflow' (``location`` a tracking URI, with ``run_id``),
    'tensorboard' (the writer's directory), 'dvclive' (the DVCLive directory) or 'wandb' (the
    run's first directory, with ``run_id``). Plain log files have none."""

    kind: str
    location: str
    run_id: str = ""


@dataclass(frozen=True)
class RawRun:
    """One run as logged: 'loss' always, 'grad_norm' and Siamese extras when present.
    ``every_step_setting``: how to make the library that wrote it log the loss at every step,
    when the log says which library that was (see ``loggers``); ``tracker``: where its verdict
    can be written back, for a run kept by a tracker."""

    name: str
    source: str
    metrics: dict[str, Metric]
    notes: tuple[str, ...] = ()
    every_step_setting: str = ""
    tracker: Tracker | None = None


def no_location(row: int, column: str) -> tuple[int | None, int | None]:
    return None, None


@dataclass(frozen=True)
class Table:
    """Rows of a log. ``locate(row, column)`` gives the file line and column of a cell for
    error messages. ``present`` marks, per column, the cells that were logged, where a reader
    can tell a logged NaN from an absent value; otherwise NaN in a float column means absent."""

    frame: pd.DataFrame
    locate: Callable[[int, str], tuple[int | None, int | None]] = no_location
    notes: tuple[str, ...] = ()
    present: dict[str, np.ndarray] = field(default_factory=dict)

    @functools.cached_property
    def columns(self) -> dict[str, pd.Series]:
        """The frame's columns by name (the first of a repeated name), taken in one pass: looking
        one up by name first builds a hash table of the names, a tenth of the time a 2,000-step log
        takes to read."""
        columns: dict[str, pd.Series] = {}
        for name, column in self.frame.items():
            columns.setdefault(name, column)
        return columns


def to_float(token: str) -> float | None:
    """A number, or a NaN/inf spelling; None when the token is neither."""
    try:
        return float(token)
    except ValueError:
        return NONFINITE_TOKENS.get(token.strip().lower())


def numeric_column(table: Table, column: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 plus a mask of the cells that hold a value. Empty cells are
    missing (sparse logging); 'nan'/'inf' tokens are values (the loss really was non-finite).
    Anything else non-numeric is an error pointing at its cell."""
    import pandas as pd

    series = table.columns[column]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        present = table.present.get(column)
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":   # numpy's ints: none missing
            return series.to_numpy().astype(np.float64), (np.ones(len(series), bool) if present is None else present)
        values = (series.to_numpy(copy=False) if series.dtype == np.float64   # no copy of a float column
                  else series.to_numpy(dtype=np.float64, na_value=np.nan))
        if present is None:   # NaN is what pandas made of an empty cell
            present = np.isnan(values)
            np.logical_not(present, out=present)
        return values, present
    raw = series.astype("string")
    present = raw.notna().to_numpy() & (raw.str.strip() != "").fillna(False).to_numpy(dtype=bool)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if not pandas_reads_exactly():   # the numbers again, as float() reads them (where it reads them all)
        numbers = ~np.isnan(values)
        with contextlib.suppress(ValueError):
            values[numbers] = raw[numbers].to_numpy(dtype=str).astype(np.float64)
    for i in np.flatnonzero(np.isnan(values) & present):
        token = str(raw.iloc[i]).strip()
        special = NONFINITE_TOKENS.get(token.lower())
        if special is None:
            line, col = table.locate(int(i), column)
            raise InputError(source, f"column {column!r}: {token[:40]!r} is not a number", line, col)
        values[i] = special
    if column in table.present:
        present = present & table.present[column]
    return values, present


def run_keys(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Run code per row and run labels in order of first appearance; composite keys join
    their parts with '/'. Factorised column by column: no per-row string building."""
    import pandas as pd

    codes = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        part, _ = pd.factorize(frame[col], sort=False, use_na_sentinel=False)
        codes = codes * (int(part.max(initial=0)) + 1) + part
    codes, _ = pd.factorize(codes, sort=False)
    rows = np.unique(codes, return_index=True)[1]
    labels = ["/".join("" if pd.isna(v) else str(v) for v in frame[list(columns)].iloc[i]) for i in rows]
    return codes, labels


def metric_roles(cmap: ColumnMap) -> dict[str, str]:
    """Role -> column for the metrics a run carries."""
    roles = {"loss": cmap.loss}
    if cmap.grad_norm:
        roles["grad_norm"] = cmap.grad_norm
    roles.update(cmap.extras)
    return roles


def table_to_runs(table: Table, source: str, overrides: ColumnOverrides, label_runs_by_source: bool) -> list[RawRun]:
    """Split a table into runs by its run column(s), one run per file when there is none.
    Without a step column, the row position within the run is the step."""
    columns = [str(c) for c in table.frame.columns]
    cmap = detect_columns(columns, overrides, source)
    parsed = {}
    for role, col in metric_roles(cmap).items():
        try:
            parsed[role] = numeric_column(table, col, source)
        except InputError:
            if role in ("loss", "grad_norm"):
                raise
            # a non-numeric extra is simply not an extra
    step_values = numeric_column(table, cmap.step, source)[0] if cmap.step else None
    if cmap.run:
        codes, uniques = run_keys(table.frame, cmap.run)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        groups = [(str(u), order[bounds[k]:bounds[k + 1]]) for k, u in enumerate(uniques)]
    else:
        groups = [(None, None)]   # every row, in order
    notes = table.notes
    if not cmap.run and step_values is not None:
        hint = several_runs_hint(table.frame, step_values, {cmap.step, *metric_roles(cmap).values()})
        notes += (hint,) if hint else ()
    return _grouped_runs(groups, parsed, step_values, len(table.frame), notes, source, label_runs_by_source)


def numbers_to_run(columns: dict[str, np.ndarray], source: str, overrides: ColumnOverrides) -> list[RawRun] | None:
    """The run in a table whose every cell is a finite number (``columns``: float64 by column
    name, as ``readers.plain_csv`` reads a plain CSV without pandas): what table_to_runs makes of
    the same table. None where table_to_runs needs the table itself: a run column to split by, or
    steps that start over (its hint names the columns that change with them)."""
    cmap = detect_columns(list(columns), overrides, source)
    step_values = columns[cmap.step] if cmap.step else None
    if cmap.run or (step_values is not None and np.any(step_values[1:] < step_values[:-1])):
        return None
    rows = len(next(iter(columns.values())))
    everywhere = np.ones(rows, dtype=bool)
    parsed = {role: (columns[col], everywhere) for role, col in metric_roles(cmap).items()}
    return _grouped_runs([(None, None)], parsed, step_values, rows, (), source, False)


def _grouped_runs(groups: list[tuple[str | None, np.ndarray | None]], parsed: dict[str, tuple[np.ndarray, np.ndarray]],
                  step_values: np.ndarray | None, rows: int, notes: tuple[str, ...], source: str,
                  label_runs_by_source: bool) -> list[RawRun]:
    """A RawRun per group of rows (label None: the file's one run, every row in order), each
    metric its ``parsed`` values where present; without step values the row position is the step."""
    runs = []
    setting = every_step_setting(source)
    for label, group in groups:
        if label is None:
            name = source
        else:
            name = f"{source}:{label}" if label_runs_by_source else label
        whole = len(groups) == 1   # one run: every row, in order, without copies
        steps = (step_values if whole else step_values[group]) if step_values is not None \
            else np.arange(rows if group is None else len(group), dtype=np.float64)
        metrics = {}
        for role, (values, present) in parsed.items():
            keep = present if whole else present[group]
            mine = values if whole else values[group]
            metrics[role] = (Metric(steps=steps, values=mine) if keep.all()
                             else Metric(steps=steps[keep], values=mine[keep]))
        runs.append(RawRun(name=name, source=source, metrics=metrics, notes=notes, every_step_setting=setting))
    return runs


def several_runs_hint(frame: pd.DataFrame, steps: np.ndarray, taken: set[str]) -> str | None:
    """Steps that start over in a file without a run column are a resumed run, or several runs
    in one file. When other columns hold one value per stretch between restarts and, together,
    change at every restart (a seed, a method), it is the second: name them for --run-col."""
    import pandas as pd

    restarts = np.flatnonzero(steps[1:] < steps[:-1]) + 1   # (no array of differences: a long log's memory)
    if not len(restarts) or not np.isfinite(steps).all():
        return None
    same_stretch = np.ones(len(steps) - 1, dtype=bool)
    same_stretch[restarts - 1] = False
    labels, changed = [], np.zeros(len(restarts), dtype=bool)
    for column in frame.columns:
        if column in taken:
            continue
        codes = pd.factorize(frame[column], use_na_sentinel=False)[0]
        steady = np.all(codes[1:][same_stretch] == codes[:-1][same_stretch])
        if steady and codes.max(initial=0) > 0:
            labels.append(str(column))
            changed |= codes[restarts] != codes[restarts - 1]
    if not labels or not changed.all():
        return None
    return (f"the steps start over {len(restarts)} time{'s' if len(restarts) > 1 else ''}, each time with a new "
            f"value of {', '.join(repr(c) for c in labels)}: several runs in one file? Judge them apart "
            f"with --run-col {','.join(labels)}")


def series_to_run(name: str, source: str, series: dict[str, Metric], overrides: ColumnOverrides,
                  notes: tuple[str, ...] = (), tracker: Tracker | None = None) -> RawRun:
    """One run from named series that each carry their own steps (TensorBoard tags, MLflow
    metrics): the series names play the part of column names."""
    cmap = detect_columns(list(series), overrides, source)
    metrics = {role: series[name_] for role, name_ in metric_roles(cmap).items()}
    return RawRun(name=name, source=source, metrics=metrics, notes=notes, tracker=tracker)
