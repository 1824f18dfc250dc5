"""Early stopping on a settled loss: how often StopWhenStationary stops a run that is still
learning (false stops; the documented bound is alpha over all looks), and how many steps it saves
on runs that settle, against the naive rule "stop at the first stationary verdict". Each cell is
--seeds seeds of a 20,000-step budget judged every 1,000 steps (alpha = 0.01), with the budget
known (alpha spent in proportion to the steps) and unknown (alpha / (j (j + 1)) at look j).
Usage: python benchmarks/stopping.py [--seeds 200] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import Pool

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from siamdiag.engine.stopping import StopWhenStationary  # noqa: E402
from siamdiag.engine.synthetic import ar1  # noqa: E402

BUDGET, EVERY, ALPHA = 20_000, 1_000, 0.01
T = np.arange(BUDGET, dtype=float)

# name -> (still learning?, generator). "Still learning" runs fall, in every window a look
# judges, by more than the drift margin (0.25 noise sigmas); the linear one only after 4,000 steps.
RUNS = {
    "exp decay, tau = budget/3": (True, lambda r: 1 + 2 * np.exp(-T / (BUDGET / 3)) + 0.1 * r.standard_normal(BUDGET)),
    "power-law decay": (True, lambda r: 0.5 + 2 * (1 + T / 50) ** -0.5 + 0.05 * r.standard_normal(BUDGET)),
    "linear fall, 3 sigma over the budget": (True, lambda r: 0.3 - 0.06 * T / BUDGET + 0.02 * r.standard_normal(BUDGET)),
    "settles by step 2,000 (white noise)": (False, lambda r: 1 + 2 * np.exp(-T / (BUDGET / 50)) + 0.1 * r.standard_normal(BUDGET)),
    "settles by step 4,000 (AR(0.5) noise)": (False, lambda r: 0.3 + np.exp(-T / (BUDGET / 30)) + 0.02 * ar1(BUDGET, r, 0.5)),
    "settled from the start (white noise)": (False, lambda r: 0.3 + 0.02 * r.standard_normal(BUDGET)),
}
RULES = ("budget known", "budget unknown", "naive: first stationary verdict")


def stop_step(args) -> float | None:
    """Where one seed of one run stops under one rule (None: trained to the end)."""
    name, rule, seed = args
    loss = RUNS[name][1](np.random.default_rng([seed, 13]))
    monitor = StopWhenStationary(check_every=EVERY, alpha=ALPHA, min_steps=EVERY,
                                 max_steps=BUDGET if rule == "budget known" else None)
    for start in range(0, BUDGET, EVERY):
        for step in range(start, start + EVERY):
            monitor.add(step, loss[step])
        if rule.startswith("naive"):
            if monitor.due() and monitor.look().verdict == "stationary":
                return monitor.looks[-1].step
        elif monitor.check():
            return monitor.looks[-1].step
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    tasks = [(name, rule, seed) for name in RUNS for rule in RULES for seed in range(args.seeds)]
    with Pool(args.jobs) as pool:
        stops = pool.map(stop_step, tasks, chunksize=8)
    results: dict[tuple[str, str], list] = {}
    for (name, rule, _seed), step in zip(tasks, stops):
        results.setdefault((name, rule), []).append(step)
    print(f"{args.seeds} seeds per cell, budget {BUDGET:,} steps, a look every {EVERY:,}, alpha = {ALPHA}")
    print(f"{'run':<40} {'rule':<32} {'stopped':>8} {'mean stop step':>15} {'steps saved':>12}")
    for (name, rule), steps in results.items():
        stopped = [s for s in steps if s is not None]
        saved = np.mean([1 - (s + 1) / BUDGET if s is not None else 0.0 for s in steps])
        kind = "FALSE STOP" if RUNS[name][0] else "stop"
        mean = f"{np.mean(stopped):15,.0f}" if stopped else f"{'-':>15}"
        print(f"{name:<40} {rule:<32} {len(stopped) / len(steps):7.1%} {mean} {saved:11.1%}  ({kind} rate)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
