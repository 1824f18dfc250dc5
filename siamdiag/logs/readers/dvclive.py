"""DVCLive output directories (``dvclive/`` by default): ``plots/metrics/<name>.tsv`` per metric,
a name with '/' being a sub-path (``train/loss.tsv``), each file a ``[timestamp] step <metric>``
table. A directory is one run, its metrics the series (``val/loss`` is not the training loss:
the column rules that tell train from val apply to the metric names)."""
from __future__ import annotations

import os

from ...errors import InputError
from .. import textfile
from ..tables import Metric, numeric_column

METRICS_DIR = os.path.join("plots", "metrics")


def is_dvclive_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, METRICS_DIR))


def read_metric_tsv(path: str) -> tuple[Metric, tuple[str, ...]]:
    """One metric's history: its 'step' column and its value column (the one named after the
    file, else the last that is neither step nor timestamp), and the notes reading it left."""
    from .delimited import parse_delimited   # (pandas, loaded with the first metric file)

    table = parse_delimited(textfile.read_text(path, path), path, "\t")
    columns = [str(c) for c in table.frame.columns]
    name = os.path.splitext(os.path.basename(path))[0]
    values = [c for c in columns if c not in ("step", "timestamp")]
    if "step" not in columns or not values:
        raise InputError(path, f"expected a DVCLive metric table ('step' and '{name}' columns); columns are: "
                         + ", ".join(columns), 1, 1)
    value = name if name in values else values[-1]
    steps, logged_step = numeric_column(table, "step", path)
    series, logged = numeric_column(table, value, path)
    keep = logged & logged_step
    return Metric(steps=steps[keep], values=series[keep]), table.notes


def read_dvclive(directory: str) -> tuple[dict[str, Metric], tuple[str, ...]]:
    """Every metric of one DVCLive directory, keyed by its DVCLive name ('train/loss'), and the
    notes reading them left (each naming its file)."""
    metrics_dir = os.path.join(directory, METRICS_DIR)
    series, notes = {}, []

    def refuse(exc: OSError) -> None:
        raise InputError(exc.filename or metrics_dir, f"cannot list directory: {exc.strerror}")

    for root, subdirs, files in os.walk(metrics_dir, onerror=refuse):
        subdirs.sort()
        for f in sorted(files):
            if f.endswith(".tsv"):
                path = os.path.join(root, f)
                name = os.path.relpath(path, metrics_dir)[:-len(".tsv")].replace(os.sep, "/")
                series[name], file_notes = read_metric_tsv(path)
                notes += [f"{name}.tsv: {note}" for note in file_notes]
    return series, tuple(notes)
