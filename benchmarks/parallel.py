"""`siamdiag analyze --jobs N` on many runs: 1,000 CSV logs of 2,000 steps (settling, still
learning, drifting: every verdict path of a realistic sweep), judged end to end by the CLI in a
fresh process per setting, best of --repeat. Prints seconds, runs per second, the speed-up over
--jobs 1 (issue #13's bar: at least 1.6x with 2 jobs on 2 cores) and whether the JSON reports
are identical byte for byte.
Usage: python benchmarks/parallel.py [--runs 1000] [--steps 2000] [--jobs 1,2] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import ENV  # noqa: E402


def write_runs(directory: str, runs: int, steps: int) -> None:
    t = np.arange(steps)
    for k in range(runs):
        rng = np.random.default_rng(k)
        shape = k % 4
        loss = 0.3 + 0.02 * rng.standard_normal(steps)
        if shape == 1:
            loss += 1.5 * np.exp(-t / (steps / 10))          # settles early
        elif shape == 2:
            loss += 1.5 * np.exp(-t / (steps / 1.5))         # still learning
        elif shape == 3:
            loss += 0.05 * t / steps                          # drifts
        grad = 1.0 + 0.1 * rng.standard_normal(steps)
        with open(os.path.join(directory, f"run{k:05d}.csv"), "w") as fh:
            fh.write("step,loss,grad_norm\n")
            np.savetxt(fh, np.column_stack([t, loss, grad]), fmt=["%d", "%.6f", "%.5f"], delimiter=",")


def analyze(directory: str, jobs: int) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "siamdiag", "analyze", directory, "--format", "json",
                          "--jobs", str(jobs)], env=ENV, capture_output=True)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        raise SystemExit(out.stderr.decode())
    return wall, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    settings = [int(j) for j in args.jobs.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        write_runs(directory, args.runs, args.steps)
        results = {}
        for _ in range(args.repeat):   # interleaved, so that a burst of load hits every setting alike
            for jobs in settings:
                wall, report = analyze(directory, jobs)
                best = results.get(jobs)
                results[jobs] = (min(wall, best[0]) if best else wall, report)
    base_wall, base_report = results[settings[0]]
    print(f"siamdiag analyze, {args.runs:,} runs x {args.steps:,} steps, {os.cpu_count()} cores, "
          f"best of {args.repeat}:")
    print(f"{'jobs':>5} {'seconds':>8} {'runs/s':>8} {'speed-up':>9}  same JSON")
    for jobs, (wall, report) in results.items():
        print(f"{jobs:>5} {wall:8.2f} {args.runs / wall:8.1f} {base_wall / wall:9.2f}  {report == base_report}")


if __name__ == "__main__":
    main()
