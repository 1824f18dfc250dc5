"""Monte-Carlo benchmark of the verdicts on synthetic series with known truth.

Prints, per cell (process and n): the share of each verdict over SEEDS seeds, the gate's failure
rate (false alarms on stationary processes, detection on non-stationary ones) and the share of
right verdicts. Cells are the textbook processes and the realistic training shapes of
siamdiag.engine.synthetic, each with its truth and the reason for it.

Usage: python benchmarks/statistical.py [--seeds 200] [--n 500,2000,20000] [--only a,b]
       [--shapes-only | --textbook-only | --persistence-only] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from siamdiag.engine.analysis import analyze_run  # noqa: E402
from siamdiag.engine.decide import DEFAULT_FAILING  # noqa: E402
from siamdiag.engine.prepare import Options, order_run  # noqa: E402
from siamdiag.engine.synthetic import CELLS, PERSISTENCE_SHAPES, PROCESSES, TRAINING_SHAPES, as_raw_run  # noqa: E402

FAILING = {v.value for v in DEFAULT_FAILING}
# Realistic shapes are generated per step; epoch means of 500 steps at n = 200,000 would need
# 10^8 steps, so those cells stop at this n.
MAX_SHAPE_N = 20000


def run_cell(name: str, n: int, seeds: int) -> dict:
    proc = CELLS[name]
    options = Options(**proc.options)
    verdicts: Counter = Counter()
    reasons: Counter = Counter()
    t0 = time.perf_counter()
    for seed in range(seeds):
        rng = np.random.default_rng([seed, n, sum(map(ord, name))])
        res = analyze_run(order_run(as_raw_run(proc.make(n, rng), name)), options)
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
    ap.add_argument("--only", default="", help="comma-separated cell names")
    ap.add_argument("--shapes-only", action="store_true", help="only the realistic training shapes")
    ap.add_argument("--textbook-only", action="store_true", help="only the textbook processes")
    ap.add_argument("--persistence-only", action="store_true", help="only the persistence and smoothing shapes (issue #17)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = ap.parse_args(argv)
    names = (args.only.split(",") if args.only else list(TRAINING_SHAPES) if args.shapes_only
             else list(PROCESSES) if args.textbook_only else list(PERSISTENCE_SHAPES) if args.persistence_only
             else list(CELLS))
    cells = [(name, n) for n in map(int, args.n.split(",")) for name in names
             if not (name not in PROCESSES and n > MAX_SHAPE_N)]
    print(f"{'process':28} {'group':13} {'n':>7} {'gate fails':>10} {'right':>6}  verdicts")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_cell, name, n, args.seeds) for name, n in cells]
        for future in futures:
            c = future.result()
            shares = " ".join(f"{k}={v:.3f}" for k, v in c["verdicts"].items())
            print(f"{c['process']:28} {c['group']:13} {c['n']:7d} {c['fail']:10.3f} {c['right']:6.3f}  {shares}"
                  f"  [{c['seconds_per_run'] * 1000:.1f} ms/run] rejected={c['reasons']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
