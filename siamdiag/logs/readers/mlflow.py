"""MLflow file stores (``mlruns/<experiment>/<run>/``): each run directory holds
``metrics/<name>`` files (a name with '/' is a sub-path) whose lines are
``<timestamp> <value> <step>``. One run per active run directory that logged a metric, named
after its ``mlflow.runName`` tag when there is one (``mlflow_db.unique_names`` makes the names
the three MLflow sources share); deleted runs and experiments, and ``.trash/``, are never read.
Read as plain text: no MLflow installation needed."""
from __future__ import annotations

import io
import os

import numpy as np

from ...errors import InputError
from ..tables import Metric, to_float
from .lines import unterminated_note
from .mlflow_db import RunFilter, TrackedRun


def is_run_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "metrics")) and os.path.isfile(os.path.join(path, "meta.yaml"))


def is_deleted(directory: str) -> bool:
    """A run or experiment directory whose meta.yaml says ``lifecycle_stage: deleted``."""
    try:
        with open(os.path.join(directory, "meta.yaml"), encoding="utf-8") as fh:
            return any(line.split(":", 1)[1].strip() == "deleted" for line in fh
                       if line.startswith("lifecycle_stage:"))
    except OSError:
        return False


def holds_runs(directory: str) -> bool:
    """A store (experiment directories with run directories in them) or an experiment directory."""
    for sub in _subdirectories(directory):
        if is_run_dir(sub):
            return os.path.isfile(os.path.join(directory, "meta.yaml"))
        if os.path.isfile(os.path.join(sub, "meta.yaml")) and any(is_run_dir(r) for r in _subdirectories(sub)):
            return True
    return False


def _subdirectories(directory: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(directory) if e.is_dir() and e.name != ".trash"]
    except OSError:
        return []


def find_run_dirs(root: str) -> list[str]:
    """The active run directories at or below ``root`` (a store, an experiment or a run), sorted."""
    if is_run_dir(root):
        return [] if is_deleted(root) or is_deleted(os.path.dirname(os.path.normpath(root))) else [root]
    found = []
    for directory, subdirs, _files in os.walk(root):
        if is_run_dir(directory):
            found.append(directory)
            subdirs[:] = []  # a run holds no runs
        elif is_deleted(directory):
            subdirs[:] = []
        else:
            subdirs[:] = [d for d in subdirs if d not in (".trash", "models")]
    return sorted(d for d in found if not is_deleted(d))


def run_name(run_dir: str) -> str:
    """The run's display name, else its directory name."""
    tag = os.path.join(run_dir, "tags", "mlflow.runName")
    if os.path.isfile(tag):
        with open(tag, encoding="utf-8") as fh:
            name = fh.read().strip()
        if name:
            return name
    return os.path.basename(os.path.normpath(run_dir))


def experiment_of(run_dir: str) -> tuple[str, str]:
    """The id and name of the experiment a run directory belongs to (its parent directory,
    whose meta.yaml has a ``name:`` line)."""
    experiment_dir = os.path.dirname(os.path.normpath(run_dir))
    name = ""
    try:
        with open(os.path.join(experiment_dir, "meta.yaml"), encoding="utf-8") as fh:
            name = next((line.split(":", 1)[1].strip().strip("'\"") for line in fh if line.startswith("name:")), "")
    except OSError:
        pass
    return os.path.basename(experiment_dir), name


def read_metric_file(path: str) -> tuple[Metric, str | None]:
    """One metric's history: '<timestamp> <value> <step>' lines (old stores: no step), and a note
    when an unterminated last line (a writer caught mid-line) was set aside. Read by pandas' C
    parser when every line is well formed; otherwise line by line, which locates the bad line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    note = None
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        last = data[cut:].decode("utf-8", "replace")
        if last.strip():
            note = f"{os.path.basename(path)}: " + unterminated_note(data.count(b"\n") + 1, last)
        data = data[:cut]
    fast = well_formed_metric(data)
    return (fast if fast is not None else read_metric_lines(path, data.decode("utf-8", "replace"))), note


def well_formed_metric(data: bytes) -> Metric | None:
    """The metric when every line has three numeric fields, else None."""
    import pandas as pd

    from .delimited import EXACT_FLOATS

    if not data.strip():
        return Metric(steps=np.zeros(0), values=np.zeros(0))
    try:
        frame = pd.read_csv(io.BytesIO(data), sep=" ", header=None, engine="c", skip_blank_lines=True, **EXACT_FLOATS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return None
    if frame.shape[1] != 3 or not all(pd.api.types.is_float_dtype(t) or pd.api.types.is_integer_dtype(t)
                                      for t in frame.dtypes):
        return None
    steps, values = frame[2].to_numpy(np.float64), frame[1].to_numpy(np.float64)
    if np.isnan(steps).any() or frame[0].isna().any():
        return None
    return Metric(steps=steps, values=values)


def read_metric_lines(path: str, text: str) -> Metric:
    steps, values = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise InputError(path, f"expected '<timestamp> <value> <step>', found {len(fields)} fields", number, 1)
        value = to_float(fields[1])
        step = to_float(fields[2]) if len(fields) == 3 else float(len(steps))
        if value is None or step is None:
            bad = 2 if value is None else 3
            column = line.find(fields[bad - 1]) + 1
            raise InputError(path, f"{fields[bad - 1][:40]!r} is not a number", number, column)
        steps.append(step)
        values.append(value)
    return Metric(steps=np.asarray(steps, dtype=np.float64), values=np.asarray(values, dtype=np.float64))


def read_mlflow_run(run_dir: str, pick=None) -> tuple[dict[str, Metric], tuple[str, ...]]:
    """The metrics of one run that ``pick`` (metric names -> the names to read; all by default)
    keeps, keyed by their MLflow names, and the notes reading them left."""
    metrics_dir = os.path.join(run_dir, "metrics")
    paths = {os.path.relpath(os.path.join(d, f), metrics_dir).replace(os.sep, "/"): os.path.join(d, f)
             for d, _subdirs, files in os.walk(metrics_dir) for f in files}
    names = sorted(paths) if pick is None or not paths else sorted(pick(sorted(paths)))
    series, notes = {}, []
    for name in names:
        series[name], note = read_metric_file(paths[name])
        if note:
            notes.append(note)
    return series, tuple(sorted(notes))


def read_file_store(root: str, wanted: RunFilter = RunFilter(), pick=None) -> list[TrackedRun]:
    """The active runs at or below ``root`` that ``wanted`` keeps and that logged any metric, as
    the database and tracking-server readers give theirs (``source``: the run directory)."""
    found = []
    for run_dir in find_run_dirs(root):
        experiment_id, experiment = experiment_of(run_dir)
        name = run_name(run_dir)
        if not wanted.keeps(experiment_id, experiment, name):
            continue
        series, notes = read_mlflow_run(run_dir, pick)
        if series:
            found.append(TrackedRun(name=name, run_id=os.path.basename(os.path.normpath(run_dir)),
                                    experiment=experiment or experiment_id, series=series, source=run_dir,
                                    notes=notes))
    return found
