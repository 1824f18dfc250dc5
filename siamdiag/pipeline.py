"""The whole flow for a set of paths: ingest -> order -> analyse -> report. No I/O beyond
reading the inputs."""
from __future__ import annotations

from dataclasses import replace

from .analysis import analyze_run
from .ingest import ReadOptions, read_runs
from .prepare import Options, order_run
from .report import GatePolicy, Report


def analyze_paths(paths, options: Options = Options(), read: ReadOptions = ReadOptions(),
                  policy: GatePolicy = GatePolicy()) -> Report:
    """Judge every run found under ``paths``; each run independently of the others."""
    runs = tuple(analyze_run(order_run(raw), options) for raw in read_runs(paths, read))
    return Report(runs=runs, policy=policy, alpha=options.alpha)


def analyze_named_logs(named_paths: list[tuple[str, str]], options: Options = Options(),
                       policy: GatePolicy = GatePolicy()) -> Report:
    """Judge single-run logs under the given names (training runs are named by their directory,
    not by the path of their metrics.csv)."""
    runs = []
    for name, path in named_paths:
        for raw in read_runs([path]):
            runs.append(analyze_run(order_run(replace(raw, name=name)), options))
    return Report(runs=tuple(runs), policy=policy, alpha=options.alpha)
