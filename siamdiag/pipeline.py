"""The whole flow for a set of paths: ingest -> order -> analyse -> report. No I/O beyond
reading the inputs."""
from __future__ import annotations

from dataclasses import replace

from .engine.analysis import RunResult, analyze_run
from .logs.ingest import ReadOptions, read_runs
from .engine.prepare import Options, OrderedRun, order_run
from .report.model import GatePolicy, Report


def judge_paths(paths, options: Options = Options(), read: ReadOptions = ReadOptions()) -> list[tuple[OrderedRun, RunResult]]:
    """Every run found under ``paths`` with its result; each run judged independently."""
    judged = []
    for raw in read_runs(paths, read):
        run = order_run(raw)
        judged.append((run, analyze_run(run, options)))
    return judged


def analyze_paths(paths, options: Options = Options(), read: ReadOptions = ReadOptions(),
                  policy: GatePolicy = GatePolicy()) -> Report:
    """The report on every run found under ``paths``."""
    runs = tuple(result for _run, result in judge_paths(paths, options, read))
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
