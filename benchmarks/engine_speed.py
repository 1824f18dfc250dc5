"""Analysis time per run, in-process (no imports, no file reading), on series of several
lengths; optionally against another checkout of siamdiag measured in the same invocation.

Usage: python benchmarks/engine_speed.py [--repeats 5] [--baseline DIR]
  --baseline DIR  a checkout of an earlier siamdiag (e.g. `git worktree add /tmp/base <commit>`);
                  current and baseline alternate, each in its own interpreter, and the ratio of
                  their medians is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = {  # name -> expression of t, n, rng (numpy as np)
    "white": "0.3 + 0.02 * rng.standard_normal(n)",
    "decay": "0.3 + 1.5 * np.exp(-t / (n / 50)) + 0.02 * rng.standard_normal(n)",
    "ar0.9": "lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))",
}
LENGTHS = (2000, 20000, 200000, 1000000)

MEASURE = r"""
import json, os, sys, time
import numpy as np
from scipy.signal import lfilter
import siamdiag
if os.path.isdir(os.path.join(os.path.dirname(siamdiag.__file__), "engine")):
    from siamdiag.engine.analysis import analyze_arrays
else:  # an earlier layout (decided by the tree: an editable install would resolve the new path)
    from siamdiag.analysis import analyze_arrays
assert analyze_arrays.__module__ and sys.modules[analyze_arrays.__module__].__file__.startswith(os.getcwd())
shapes, lengths, repeats = json.loads(sys.argv[1])
out = {}
for n in lengths:
    for name, expr in shapes.items():
        rng = np.random.default_rng(0)
        t = np.arange(n, dtype=float)
        x = eval(expr)
        analyze_arrays(x)  # warm
        best = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            analyze_arrays(x)
            best.append(time.perf_counter() - t0)
        out[f"{name}@{n}"] = min(best)
print(json.dumps(out))
"""


def measure(tree: str, repeats: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([SHAPES, LENGTHS, repeats])],
                         env=env, capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(res.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of current and baseline")
    ap.add_argument("--baseline", default=None)
    args = ap.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"current": here} | ({"baseline": os.path.abspath(args.baseline)} if args.baseline else {})
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            runs[label].append(measure(tree, args.repeats))
    keys = list(runs["current"][0])
    print(f"{'series':18} " + " ".join(f"{k + ' ms':>14}" for k in trees) + ("   ratio" if args.baseline else ""))
    for key in keys:
        medians = {k: statistics.median(r[key] for r in runs[k]) * 1000 for k in trees}
        line = f"{key:18} " + " ".join(f"{medians[k]:14.1f}" for k in trees)
        if args.baseline:
            line += f"   {medians['current'] / medians['baseline']:.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
