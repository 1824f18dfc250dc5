"""Runs per second per core, one machine, the same 10,000 runs (1,000 steps each) four ways:
`siamdiag analyze DIR` on one CSV per run with --jobs 1 and --jobs 2 (end to end, imports
included), `siamdiag.judge_frame` applied per group of one long table in this process (pandas
groupby.apply, one core), and the same function on Dask's local cluster (2 worker processes, one
thread each). The verdict counts of every way must agree.
Usage: python benchmarks/engines.py [--runs 10000] [--steps 1000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import ENV  # noqa: E402

os.environ.update({k: ENV[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})


def make_table(runs: int, steps: int) -> pd.DataFrame:
    t = np.arange(steps)
    rng = np.random.default_rng(0)
    loss = 0.3 + 0.02 * rng.standard_normal((runs, steps))
    loss[1::4] += 1.5 * np.exp(-t / (steps / 10))     # settles early
    loss[2::4] += 1.5 * np.exp(-t / (steps / 1.5))    # still learning
    loss[3::4] += 0.05 * t / steps                    # drifts
    return pd.DataFrame({"run": np.repeat([f"run{k:05d}" for k in range(runs)], steps),
                         "step": np.tile(t, runs), "loss": np.round(loss.ravel(), 6)})


def cli(directory: str, jobs: int) -> tuple[float, Counter]:
    import json

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "siamdiag", "analyze", directory, "--format", "json", "--jobs",
                          str(jobs), "--no-github-summary"], env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, Counter(r["verdict"] for r in json.loads(out.stdout)["runs"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1_000)
    args = parser.parse_args()
    import siamdiag
    from dask import dataframe as dd
    from dask.distributed import Client, LocalCluster

    table = make_table(args.runs, args.steps)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, group in table.groupby("run", sort=False):
            group[["step", "loss"]].to_csv(os.path.join(directory, f"{name}.csv"), index=False)
        results["analyze --jobs 1 (files)"] = (*cli(directory, 1), 1)
        results["analyze --jobs 2 (files)"] = (*cli(directory, 2), 2)
    t0 = time.perf_counter()
    local = table.groupby("run", group_keys=False).apply(siamdiag.judge_frame)
    results["judge_frame, pandas groupby (in process)"] = (time.perf_counter() - t0, Counter(local["verdict"]), 1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        t0 = time.perf_counter()
        frame = dd.from_pandas(table, npartitions=32)
        judged = frame.groupby("run").apply(siamdiag.judge_frame, meta=siamdiag.judge_frame_meta()).compute()
        results["judge_frame, Dask local cluster"] = (time.perf_counter() - t0, Counter(judged["verdict"]), 2)
    reference = results["analyze --jobs 1 (files)"][1]
    print(f"{args.runs:,} runs x {args.steps:,} steps, {os.cpu_count()} cores:")
    print(f"{'way':<42} {'seconds':>8} {'runs/s':>8} {'runs/s/core':>12}  same verdicts")
    for way, (wall, counts, cores) in results.items():
        print(f"{way:<42} {wall:8.1f} {args.runs / wall:8.1f} {args.runs / wall / cores:12.1f}  {counts == reference}")
    print("verdicts:", dict(sorted(reference.items())))


if __name__ == "__main__":
    main()
