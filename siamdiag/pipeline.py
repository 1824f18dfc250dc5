"""The whole flow for a set of paths: ingest -> order -> analyse -> report. No I/O beyond
reading the inputs. With ``jobs`` > 1 the inputs are read and judged in a pool of processes,
each input whole in one worker; results come back in input order, so the report is the same
byte for byte whatever the number of jobs. The process pool's modules load only when a pool is
asked for."""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from .engine.analysis import RunResult, analyze_run
from .logs.ingest import LogInput, ReadOptions, inputs_of, read_input, read_runs, require_runs, tracked_runs
from .logs.tables import RawRun
from .engine.prepare import Options, OrderedRun, order_run
from .report.model import GatePolicy, Report

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

Judged = list[tuple[OrderedRun | None, RunResult]]

# Short logs are read a batch at a time, every one before any is judged: a pandas parse and a
# judgement alternating log by log cost about a tenth more CPU per log (each evicts what the
# other had warm in the processor's caches). A batch holds at most this many inputs and bytes.
BATCH_INPUTS = 16
BATCH_BYTES = 4 << 20


def judge_paths(paths, options: Options = Options(), read: ReadOptions = ReadOptions(),
                jobs: int = 1, keep_runs: bool = True, progress=None) -> Judged:
    """Every run found under ``paths`` (and on the tracking URI) with its result; each run
    judged independently. ``keep_runs=False`` gives None for the runs: a plot needs them, a
    report does not (and workers then send back results only). ``progress(paths)``, a context
    manager yielding advance(), is told of each input done."""
    logs = inputs_of(paths, read)
    several = len(logs) > 1
    judged: Judged = []
    with progress([log.path for log in logs]) if progress else contextlib.nullcontext(lambda: None) as advance:
        if jobs <= 1:
            for batch in _batches(logs):
                for runs in _judge_batch(batch, several, options, read, keep_runs):
                    judged += runs
                    advance()
            judged += [_judged(raw, options, keep_runs) for raw in tracked_runs(read)]
        else:
            judged = _judge_in_pool(logs, several, options, read, jobs, keep_runs, advance)
    require_runs(len(judged), logs, read)
    return judged


def _judge_in_pool(logs, several, options, read, jobs, keep_runs, advance) -> Judged:
    from concurrent.futures import ProcessPoolExecutor

    judged: Judged = []
    batches = _batches(logs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_context(), initializer=_start_worker) as pool:
        try:
            chunk = max(1, len(batches) // (jobs * 32))   # small enough to balance, large enough to amortise
            for batch in pool.map(_judge_batch, batches, [several] * len(batches), [options] * len(batches),
                                  [read] * len(batches), [keep_runs] * len(batches), chunksize=chunk):
                for runs in batch:
                    judged += runs
                    advance()
            tracked = tracked_runs(read)
            judged += pool.map(_judged, tracked, [options] * len(tracked), [keep_runs] * len(tracked))
        except BaseException:
            _end_workers(pool)
            raise
    return judged


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """A first error, Ctrl-C or SIGTERM ends the workers now, their inputs unfinished: waiting
    would keep a cancelled job busy, and a worker left running outlives its parent (holding its
    output pipes open). The pool has no terminate() before Python 3.14, hence its process table."""
    for process in list((pool._processes or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _judged(raw: RawRun, options: Options, keep_run: bool) -> tuple[OrderedRun | None, RunResult]:
    run = order_run(raw)
    return (run if keep_run else None), analyze_run(run, options)


def _judge_batch(batch: list[LogInput], several: bool, options: Options, read: ReadOptions,
                 keep_runs: bool) -> list[Judged]:
    """A worker's task: every run of each input in ``batch``, all read before any is judged."""
    runs = [read_input(log, read, label_runs_by_source=several) for log in batch]
    return [[_judged(raw, options, keep_runs) for raw in raws] for raws in runs]


def _batches(logs: list[LogInput]) -> list[list[LogInput]]:
    """The inputs in order, in batches: a file of at most BATCH_BYTES joins the batch before it
    while that stays within BATCH_INPUTS inputs and BATCH_BYTES bytes of files; anything else
    (a large file, a directory, stdin, a path that cannot be read) is a batch of its own."""
    batches: list[list[LogInput]] = []
    room = -1   # bytes the last batch can still take; -1 when it takes nothing more
    for log in logs:
        try:
            status = os.stat(log.path)
            size = status.st_size if stat.S_ISREG(status.st_mode) else BATCH_BYTES + 1
        except OSError:
            size = BATCH_BYTES + 1
        if size <= room and len(batches[-1]) < BATCH_INPUTS:
            batches[-1].append(log)
            room -= size
        else:
            batches.append([log])
            room = BATCH_BYTES - size if size <= BATCH_BYTES else -1
    return batches


def _context():
    """fork where it is safe and fast (Linux: the workers start with siamdiag already imported),
    spawn elsewhere."""
    import multiprocessing

    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def _start_worker() -> None:
    """In a worker: a long CSV is parsed and a long window sorted on one thread (the workers
    already share the cores). Ctrl-C reaches the whole process group, and the parent handles it
    (exit 130) by ending the workers; SIGTERM, which ends a worker, does so at once (a forked
    worker would otherwise inherit the CLI's handler, take it for its task's error and carry on)."""
    from .engine import numerics
    from .logs import textfile

    textfile.PARSE_THREADS = 1
    numerics.SORT_THREADS = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def analyze_paths(paths, options: Options = Options(), read: ReadOptions = ReadOptions(),
                  policy: GatePolicy = GatePolicy(), jobs: int = 1) -> Report:
    """The report on every run found under ``paths``."""
    runs = tuple(result for _run, result in judge_paths(paths, options, read, jobs, keep_runs=False))
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
