"""Run one configuration, or every combination of a --grid, into run directories.

With --jobs above 1 each grid run trains in its own process (spawned, so no torch state is
shared). Every grid run trains with the intra-op thread count a single run of its configuration
gets, so a run logs the same rows alone and in a grid; without one, cpu_count // jobs threads,
so that --jobs N does not oversubscribe the machine.
"""
from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable

from .config import TrainConfig


@dataclass(frozen=True)
class RunSpec:
    label: str
    cfg: TrainConfig
    run_dir: str


class StopFlag:
    """Set by the first Ctrl-C or SIGTERM (what schedulers, CI and `docker stop` send): the run
    stops cleanly after its current step, with its log flushed and a checkpoint written. A
    second signal interrupts at once. ``signal`` is the first one received."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signal: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it (130, 143)."""
        return 128 + int(self.signal or signal.SIGINT)

    def __call__(self) -> bool:
        return self.requested


def train_one(spec: RunSpec, threads: int | None = None, resume: bool = False,
              on_rows: Callable | None = None, stop: Callable[[], bool] = lambda: False):
    """Train one run in this process (joining a torchrun job if the environment says so)."""
    import torch

    from .checkpoint import load_checkpoint
    from .distributed import setup, teardown
    from .loop import Trainer

    if threads:
        torch.set_num_threads(threads)
    placement = setup(spec.cfg.device)
    try:
        checkpoint = load_checkpoint(spec.run_dir) if resume else None
        trainer = Trainer(spec.cfg, spec.run_dir, placement, checkpoint)
        return trainer.run(on_rows=on_rows, stop_requested=stop), placement.is_main
    finally:
        teardown(placement)


def _grid_worker(spec: RunSpec, threads: int):
    """Entry point in a sweep worker process: the first Ctrl-C stops its run cleanly."""
    with StopFlag() as stop:
        outcome, _ = train_one(spec, threads=threads, stop=stop)
    return spec, outcome


def run_grid(specs: list[RunSpec], jobs: int, on_done: Callable, stop: Callable[[], bool],
             threads: int | None = None) -> list:
    """Train every spec, ``jobs`` at a time, each with ``threads`` intra-op threads (a single run's
    count; cpu_count // jobs when None), calling ``on_done(spec, outcome)`` as each finishes.
    Outcomes come back in grid order (None for runs never started because of a stop request)."""
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    results: dict[str, object] = {}
    if jobs == 1:
        for spec in specs:
            if stop():
                break
            results[spec.label], _ = train_one(spec, threads=threads, stop=stop)
            on_done(spec, results[spec.label])
    else:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_grid_worker, spec, threads) for spec in specs]
            for future in as_completed(futures):
                if stop():
                    pool.shutdown(wait=True, cancel_futures=True)
                if future.cancelled():
                    continue
                spec, outcome = future.result()
                results[spec.label] = outcome
                on_done(spec, outcome)
    return [results.get(s.label) for s in specs]
