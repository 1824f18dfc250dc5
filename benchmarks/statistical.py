"""Monte-Carlo benchmark of the verdicts on synthetic series with known truth.

Prints, per process and n: the share of each verdict over SEEDS seeds, the gate's failure
rate (false alarms on stationary processes, detection on non-stationary ones) and the share
of right verdicts. Usage: python benchmarks/statistical.py [--seeds 200] [--n 500,2000,20000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from siamdiag.engine.analysis import analyze_arrays  # noqa: E402
from siamdiag.engine.decide import DEFAULT_FAILING  # noqa: E402
from siamdiag.engine.synthetic import PROCESSES  # noqa: E402

FAILING = {v.value for v in DEFAULT_FAILING}


def run_cell(name: str, n: int, seeds: int) -> dict:
    proc = PROCESSES[name]
    verdicts: Counter = Counter()
    reasons: Counter = Counter()
    t0 = time.perf_counter()
    for seed in range(seeds):
        rng = np.random.default_rng([seed, n, sum(map(ord, name))])
        res = analyze_arrays(proc.make(n, rng))
        verdicts[res.verdict.value] += 1
        for r in res.rejected:
            reasons[r] += 1
    fail = sum(c for v, c in verdicts.items() if v in FAILING) / seeds
    right = sum(c for v, c in verdicts.items() if v in proc.truth) / seeds
    return dict(process=name, group=proc.group, n=n, fail=fail, right=right,
                verdicts={k: v / seeds for k, v in sorted(verdicts.items())}, reasons=dict(reasons),
                seconds_per_run=(time.perf_counter() - t0) / seeds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--n", default="500,2000,20000,200000")
    ap.add_argument("--only", default="", help="comma-separated process names")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(PROCESSES)
    print(f"{'process':24} {'group':13} {'n':>7} {'gate fails':>10} {'right':>6}  verdicts")
    for n in map(int, args.n.split(",")):
        for name in names:
            c = run_cell(name, n, args.seeds)
            shares = " ".join(f"{k}={v:.3f}" for k, v in c["verdicts"].items())
            print(f"{name:24} {c['group']:13} {n:7d} {c['fail']:10.3f} {c['right']:6.3f}  {shares}"
                  f"  [{c['seconds_per_run'] * 1000:.1f} ms/run] rejected={c['reasons']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
