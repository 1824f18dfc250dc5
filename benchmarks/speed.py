"""Speed and memory of `siamdiag analyze` on long logs, each figure a ratio taken in one run.

Every timing runs a fresh interpreter (imports included), single-threaded BLAS, and reads its
peak RSS from the kernel. Usage: python benchmarks/speed.py [--skip-adfuller]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


# The child's own peak resident memory (kB). VmHWM, not ru_maxrss: Linux carries the parent's
# resident size at fork into the child's ru_maxrss, so a large benchmark process would inflate it.
PEAK = ("\nimport sys\nsys.stderr.write('PEAK %s' % next(line.split()[1] for line in open('/proc/self/status')"
        " if line.startswith('VmHWM')))")


def timed(code: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `python -c code` in a fresh process."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code + PEAK], env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    return wall, int(res.stderr.rsplit("PEAK ", 1)[1]) / 1024.0


def analyze_code(path: str) -> str:
    return ("import sys; from siamdiag.cli.main import main; sys.argv=['siamdiag'];"
            f"\ntry:\n    main(['analyze', {path!r}, '--format', 'json'])\nexcept SystemExit as e:\n"
            "    assert e.code in (0, 1), e.code")


def write_log(path: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    loss = 0.3 + 1.5 * np.exp(-t / (n / 50)) + 0.02 * rng.standard_normal(n)
    grad = 1.0 + 0.1 * rng.standard_normal(n)
    with open(path, "w") as fh:
        fh.write("step,loss,grad_norm\n")
        np.savetxt(fh, np.column_stack([t, loss, grad]), fmt=["%d", "%.6f", "%.5f"], delimiter=",")
    return loss


def write_long(path: str, runs: int, n: int) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(n)
    with open(path, "w") as fh:
        fh.write("run,step,loss,grad_norm\n")
        for r in range(runs):
            loss = 0.3 + np.exp(-t / 40) + 0.02 * rng.standard_normal(n)
            grad = 1.0 + 0.1 * rng.standard_normal(n)
            fh.write("".join(f"r{r},{s},{a:.6f},{g:.5f}\n" for s, a, g in zip(t, loss, grad)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-adfuller", action="store_true", help="skip the ~40 s statsmodels reference call")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "1m.csv")
        write_log(big, 1_000_000, 0)
        base_wall, base_rss = timed(f"import pandas, statsmodels.tsa.stattools; pandas.read_csv({big!r})")
        ours_wall, ours_rss = timed(analyze_code(big))
        print(f"1,000,000-step log: siamdiag analyze {ours_wall:.2f} s, peak {ours_rss:.0f} MB; "
              f"import pandas+statsmodels and read_csv {base_wall:.2f} s, peak {base_rss:.0f} MB; "
              f"ratio {ours_wall / base_wall:.2f}x")

        mid = os.path.join(tmp, "100k.csv")
        write_log(mid, 100_000, 1)
        mid_wall, mid_rss = timed(analyze_code(mid))
        print(f"100,000-step log: siamdiag analyze {mid_wall:.2f} s end to end, peak {mid_rss:.0f} MB")
        if not args.skip_adfuller:
            ref = ("import numpy as np, pandas as pd, time, warnings; from statsmodels.tsa.stattools import adfuller;"
                   "from siamdiag.pipeline import analyze_paths;"
                   f"t0 = time.perf_counter(); analyze_paths([{mid!r}]); ours = time.perf_counter() - t0;"
                   f"x = pd.read_csv({mid!r})['loss'].to_numpy(); warnings.simplefilter('ignore');"
                   "t0 = time.perf_counter(); adfuller(x); print(ours, time.perf_counter() - t0)")
            out = subprocess.run([sys.executable, "-c", ref], env=ENV, capture_output=True, text=True)
            ours_s, adf_s = map(float, out.stdout.split())
            print(f"  statsmodels adfuller(x) with defaults on the same series: {adf_s:.2f} s; "
                  f"siamdiag is {adf_s / mid_wall:.1f}x faster end to end (imports included), "
                  f"{adf_s / ours_s:.0f}x faster in-process ({ours_s:.3f} s, reading the file included)")

        long_path = os.path.join(tmp, "long.csv")
        write_long(long_path, 1000, 2000)
        long_wall, long_rss = timed(analyze_code(long_path))
        print(f"1,000 runs x 2,000 steps in one long CSV: {long_wall:.2f} s, peak {long_rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
