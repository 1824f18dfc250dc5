"""W&B chart exports: a CSV with a 'Step' column and one '<run> - <metric>' column per run and
metric (plus '__MIN'/'__MAX' band columns, which are dropped). Reshaped to one row per run and
step with a 'run' column. A W&B run-history export ('_step', 'train/loss', ...) is a plain CSV."""
from __future__ import annotations

import re

import numpy as np

from ...errors import InputError
from ..tables import Table

RUN_METRIC = re.compile(r"^(?P<run>.+?) - (?P<metric>.+)$")
BAND = re.compile(r"__(MIN|MAX)$")


def is_chart_export(columns: list[str]) -> bool:
    return any(RUN_METRIC.match(c) and not BAND.search(c) for c in columns)


def read_wandb(text: str, source: str) -> Table:
    import pandas as pd

    from .delimited import parse_delimited

    wide = parse_delimited(text, source)
    columns = [str(c) for c in wide.frame.columns]
    step_cols = [c for c in columns if not RUN_METRIC.match(c)]
    per_run: dict[str, dict[str, str]] = {}
    for c in columns:
        m = RUN_METRIC.match(c)
        if m and not BAND.search(c):
            per_run.setdefault(m.group("run"), {})[m.group("metric")] = c
    if not per_run:
        raise InputError(source, "no '<run> - <metric>' columns: not a W&B chart export", 1)
    parts, origin_rows, origin_cols = [], [], []
    for run, metric_cols in per_run.items():
        block = wide.frame[step_cols + list(metric_cols.values())].rename(
            columns={col: metric for metric, col in metric_cols.items()})
        logged = block[list(metric_cols)].notna().any(axis=1).to_numpy()
        block = block[logged].assign(run=run)
        parts.append(block)
        origin_rows.append(np.flatnonzero(logged))
        origin_cols.append({**{s: s for s in step_cols}, **metric_cols})
    frame = pd.concat(parts, ignore_index=True)
    offsets = np.cumsum([0] + [len(p) for p in parts])

    def locate(row: int, column: str):
        k = int(np.searchsorted(offsets, row, side="right")) - 1
        return wide.locate(int(origin_rows[k][row - offsets[k]]), origin_cols[k].get(column, step_cols[0]))

    return Table(frame=frame, locate=locate, notes=wide.notes)
