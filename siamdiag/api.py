"""The Python API: judge runs held in memory or on disk and get the same report model the CLI
renders (``report.passed``, ``report.runs[i].verdict``, ``.reasons``, ...)."""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from .engine.analysis import analyze_arrays, analyze_run
from .logs.columns import ColumnOverrides, detect_columns
from .errors import UsageError
from .logs.ingest import ReadOptions
from .pipeline import analyze_paths
from .logs.readers.delimited import parse_delimited
from .engine.prepare import Options, order_run, parse_tolerance, parse_window
from .engine.stopping import StopWhenStationary  # noqa: F401 - public as siamdiag.StopWhenStationary
from .report.model import GatePolicy, Report
from .logs.tables import RawRun, Table, table_to_runs

FRAME_SOURCE = "<DataFrame>"


def single_threaded_blas(function):
    """Run ``function`` with BLAS held to one thread, as the CLI does: these small least-squares
    problems run 30-50x slower on a multithreaded BLAS competing for a busy machine's cores,
    and one thread keeps results identical across machines. (The CLI sets the environment before
    numpy loads; a library caller has loaded numpy already, so the limit is set at run time.)"""
    @functools.wraps(function)
    def limited(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)
    return limited


@single_threaded_blas
def analyze(data, *, step_col: str | None = None, loss_col: str | None = None, grad_norm_col: str | None = None,
            run_col: str | None = None, window: float = 0.5, burn_in: float | None = None, alpha: float = 0.01,
            fail_on: str | None = None, strict: bool = False, tolerance: str | float = 0, name: str = "run") -> Report:
    """Judge every run in ``data`` and return the report.

    ``data`` is a path or a list of paths (files, directories, globs — as for ``siamdiag analyze``);
    a pandas DataFrame (one run, or several with a run column; columns detected by name as for
    files, or named with the ``*_col`` arguments); a mapping of column name to values (made into
    a DataFrame); or a 1-D sequence of loss values, one per step (judged as one run, ``name``).
    ``window``, ``burn_in``, ``alpha``, ``fail_on``, ``strict`` and ``tolerance`` mean what the CLI
    flags mean (``tolerance``: '0.5%' of the loss level, or a number in loss units).
    In a DataFrame every row's loss is a logged loss: NaN, infinities and nulls in a numeric loss
    column are non-finite losses (divergence), as 'nan' in a file; a step whose loss was not
    logged has no row (see ``frame_runs``).
    Bad input raises ``siamdiag.errors.SiamdiagError`` with the same message the CLI prints.
    """
    try:
        fraction_or_steps = parse_window(window)
    except ValueError as exc:
        raise UsageError(f"window={window!r}: must be {exc}") from None
    try:
        relative, absolute = parse_tolerance(str(tolerance))
    except ValueError:
        raise UsageError(f"tolerance={tolerance!r}: must be a percentage such as '0.5%' or a number >= 0") from None
    options = Options(alpha=alpha, window=fraction_or_steps, burn_in=burn_in, tolerance_relative=relative,
                      tolerance_absolute=absolute)
    policy = GatePolicy.from_options(fail_on, strict)
    overrides = ColumnOverrides(step=step_col, loss=loss_col, grad_norm=grad_norm_col, run=run_col)
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and data
                                                 and all(isinstance(p, (str, os.PathLike)) for p in data)):
        paths = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(p) for p in data]
        return analyze_paths(paths, options, ReadOptions(overrides=overrides), policy)
    if isinstance(data, Mapping):
        try:
            data = pd.DataFrame(dict(data))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"analyze: the mapping is not a table of columns ({exc})") from None
    if isinstance(data, pd.DataFrame):
        results = tuple(analyze_run(order_run(raw), options) for raw in frame_runs(data, overrides))
        return Report(runs=results, policy=policy, alpha=alpha)
    try:
        values = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"analyze: expected a path, a DataFrame, a mapping or 1-D loss values "
                         f"({type(data).__name__}: {exc})") from None
    if values.ndim != 1:
        raise UsageError(f"analyze: expected a path, a DataFrame, a mapping or 1-D loss values; got shape {values.shape}")
    return Report(runs=(analyze_arrays(values, options=options, name=name),), policy=policy, alpha=alpha)


def frame_table(frame: pd.DataFrame) -> Table:
    """A DataFrame as a Table. A bad cell is reported as '<DataFrame>:line:column' of the
    frame's CSV rendering (line 2 is the first row), like a bad cell in a file; the rendering
    is only made on that error path."""
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]

    def locate(row: int, column: str):
        return parse_delimited(frame.to_csv(index=False), FRAME_SOURCE, ",").locate(row, column)

    return Table(frame=frame, locate=locate)


def frame_runs(frame: pd.DataFrame, overrides: ColumnOverrides) -> list[RawRun]:
    """The runs in a DataFrame. Every row's loss counts as logged: a NaN, infinite or null loss in a
    numeric column is a non-finite loss, so a run that ends in one diverged. pandas has one NaN
    for "the loss was NaN" and "not logged", and Spark's and Ray's Arrow hand both over as the same
    NaN, so reading NaN as "not logged" let diverged runs pass; a step whose loss was not logged
    is a row left out. A text column reads as a CSV column does (empty or None: not logged, 'nan':
    a NaN loss). A run with NaN in a numeric loss column says so in a note, with that way out."""
    table = frame_table(frame)
    loss = detect_columns(list(table.frame.columns), overrides, FRAME_SOURCE).loss
    table = replace(table, present={loss: np.ones(len(table.frame), dtype=bool)})
    runs = table_to_runs(table, FRAME_SOURCE, overrides, label_runs_by_source=False)
    if not pd.api.types.is_numeric_dtype(table.columns[loss]):
        return runs
    return [nan_loss_note(run, loss) for run in runs]


def nan_loss_note(run: RawRun, column: str) -> RawRun:
    """The run, with a note when its loss holds NaN: a frame that meant "not logged" by it learns how to say so."""
    nan = int(np.isnan(run.metrics["loss"].values).sum())
    if not nan:
        return run
    return replace(run, notes=run.notes + (
        f"{nan:,} NaN loss value{'s' if nan > 1 else ''} in the DataFrame, judged as non-finite losses; where a "
        f"NaN means the loss was not logged at that step, leave the row out (frame.dropna(subset=[{column!r}]) "
        f"when every NaN means that)",))


# judge_frame's output: one row per run, these columns, these dtypes, whatever the input.
JUDGE_FRAME_COLUMNS = {
    "run": "string", "verdict": "string", "gate": "string", "points": "int64",
    "first_step": "float64", "last_step": "float64", "sigma": "float64",
    "adf_p": "float64", "kpss_p": "float64", "reasons": "string", "notes": "string",
}
# The same schema as Spark DDL, for applyInPandas(judge_frame, schema=JUDGE_FRAME_SCHEMA).
JUDGE_FRAME_SCHEMA = ("run string, verdict string, gate string, points long, first_step double, last_step double, "
                      "sigma double, adf_p double, kpss_p double, reasons string, notes string")


def judge_frame_meta() -> pd.DataFrame:
    """An empty frame with judge_frame's columns and dtypes (Dask's ``meta=``)."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in JUDGE_FRAME_COLUMNS.items()})


def judge_frame(frame: pd.DataFrame, *, name: str | None = None, **options) -> pd.DataFrame:
    """Judge the runs in a DataFrame (one run, or several with a run column) and return one row
    per run with a fixed schema (``JUDGE_FRAME_COLUMNS``): a pure function of its input, so a
    distributed engine can apply it to each group of a table too large for one machine (Spark
    ``applyInPandas``, Dask ``groupby.apply``, Ray Data ``map_groups``). ``frame`` is the only
    positional parameter: Spark calls a function of two positional parameters as ``f(key, pdf)``.
    A frame without a run column is one run named ``name``, else the group key pandas and Dask
    give the group (``frame.name``; parts of a composite key joined with '/'). Every row's loss
    counts as logged: a NaN, infinite or null loss is a non-finite loss (a run ending in one
    diverged), and a step whose loss was not logged is a row left out. ``options`` are
    ``analyze``'s keyword arguments; reasons and notes are joined with '; '."""
    if not isinstance(frame, pd.DataFrame):
        raise UsageError(f"judge_frame: expected a pandas DataFrame, got {type(frame).__name__}")
    report = analyze(frame, **options)
    key = name if name is not None else getattr(frame, "name", None)
    if isinstance(key, tuple):
        key = "/".join(map(str, key))
    rows = []
    for r in report.runs:
        rows.append({
            "run": str(key) if key is not None and r.run == FRAME_SOURCE else r.run, "verdict": r.verdict.value, "gate": report.run_gate(r), "points": r.points,
            "first_step": r.window.first_step if r.window else np.nan,
            "last_step": r.window.last_step if r.window else np.nan,
            "sigma": np.nan if r.sigma is None else r.sigma,
            "adf_p": r.tests.unit_root.adf.p_value if r.tests else np.nan,
            "kpss_p": r.tests.unit_root.kpss.p_value if r.tests else np.nan,
            "reasons": "; ".join(r.reasons), "notes": "; ".join(r.notes),
        })
    return pd.DataFrame({name: pd.Series([row[name] for row in rows], dtype=dtype)
                         for name, dtype in JUDGE_FRAME_COLUMNS.items()})
