"""MLflow file stores (``mlruns/<experiment>/<run>/``): each run directory holds
``metrics/<name>`` files (a name with '/' is a sub-path) whose lines are
``<timestamp> <value> <step>``. One run per run directory, named after its ``mlflow.runName``
tag when there is one. Read as plain text: no MLflow installation needed."""
from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from ...errors import InputError
from ..tables import Metric, to_float
from .lines import unterminated_note


def is_run_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "metrics")) and os.path.isfile(os.path.join(path, "meta.yaml"))


def find_run_dirs(root: str) -> list[str]:
    """Run directories at or below ``root`` (a store, an experiment or a run), sorted."""
    if is_run_dir(root):
        return [root]
    found = []
    for directory, subdirs, _files in os.walk(root):
        if is_run_dir(directory):
            found.append(directory)
            subdirs[:] = []  # a run holds no runs
        else:
            subdirs[:] = [d for d in subdirs if d not in (".trash", "models")]
    return sorted(found)


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
    if not data.strip():
        return Metric(steps=np.zeros(0), values=np.zeros(0))
    try:
        frame = pd.read_csv(io.BytesIO(data), sep=" ", header=None, engine="c", skip_blank_lines=True)
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


def read_mlflow_run(run_dir: str) -> tuple[dict[str, Metric], tuple[str, ...]]:
    """Every metric of one run, keyed by its MLflow name, and the notes reading them left."""
    metrics_dir = os.path.join(run_dir, "metrics")
    series, notes = {}, []
    for directory, _subdirs, files in os.walk(metrics_dir):
        for f in sorted(files):
            path = os.path.join(directory, f)
            name = os.path.relpath(path, metrics_dir).replace(os.sep, "/")
            series[name], note = read_metric_file(path)
            if note:
                notes.append(note)
    return dict(sorted(series.items())), tuple(sorted(notes))
