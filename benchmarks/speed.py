"""Speed and memory of `siamdiag analyze` end to end against its yardsticks, each pair timed
alternately in one invocation (a burst of load on the shared machine hits both sides alike).

Every timing runs a fresh interpreter (imports included), single-threaded BLAS, and reads its
peak RSS from the kernel. Bytecode is cached, as after `pip install` (this development
environment sets PYTHONDONTWRITEBYTECODE, which would make every run compile siamdiag's sources);
each command runs once untimed first. Yardsticks:

- floor: `import pandas; pandas.read_csv(F)`, the least any reader of a CSV pays;
- floor, exit alike: the same, ending as the `siamdiag` executable ends (``gc.freeze()``, so that
  the interpreter's last collections skip the objects pandas loaded: about 0.1 s): the floor
  with none of siamdiag's exit saving, so that a ratio against it counts only the work;
- peers: what a user would run instead: ADF (lag by AIC) and KPSS on the second half of the loss,
  with statsmodels and with arch, the file read by pandas.

Prints medians and the median of the paired ratios. Usage:
python benchmarks/speed.py [--repeats 9] [--peer-repeats 3] [--skip-peers] [--steps 2000,100000,1000000,3000000]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


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
    if "PEAK " not in res.stderr:
        raise SystemExit(f"failed: {code}\n{res.stderr}")
    return wall, int(res.stderr.rsplit("PEAK ", 1)[1]) / 1024.0


def analyze_code(path: str) -> str:
    """`siamdiag analyze PATH --format json` as the installed `siamdiag` script runs it (console)."""
    return (f"import sys; from siamdiag.cli.main import console; sys.argv=['siamdiag', 'analyze', {path!r}, "
            "'--format', 'json']\ntry:\n    console()\nexcept SystemExit as e:\n    assert e.code in (0, 1), e.code")


def floor_code(path: str) -> str:
    return f"import pandas; pandas.read_csv({path!r})"


def floor_exit_alike_code(path: str) -> str:
    return f"import gc; {floor_code(path)}; gc.freeze()"


SECOND_HALF = "x = pandas.read_csv({path!r})['loss'].to_numpy(); h = x[len(x) // 2:]\n"
PEERS = {
    "statsmodels": ("import warnings, pandas; from statsmodels.tsa.stattools import adfuller, kpss\n" + SECOND_HALF
                    + "warnings.simplefilter('ignore'); adfuller(h, autolag='AIC'); kpss(h, nlags='auto')"),
    "arch": ("import pandas; from arch.unitroot import ADF, KPSS\n" + SECOND_HALF
             + "ADF(h).pvalue; KPSS(h).pvalue"),
}


def paired(codes: dict[str, str], repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Each code `repeats` times, alternating (the order reversed every round), after one untimed run each."""
    for code in codes.values():
        timed(code)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}
    names = list(codes)
    for round_ in range(repeats):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            out[name].append(timed(codes[name]))
    return out


def summary(samples: list[tuple[float, float]]) -> str:
    return f"{statistics.median(w for w, _ in samples):.3f} s, {max(m for _, m in samples):.0f} MB"


def ratio(ours: list[tuple[float, float]], other: list[tuple[float, float]]) -> float:
    """Median of the paired ratios ours / other."""
    return statistics.median(a[0] / b[0] for a, b in zip(ours, other))


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
    ap.add_argument("--repeats", type=int, default=9, help="paired runs against the floor")
    ap.add_argument("--peer-repeats", type=int, default=3, help="paired runs against each peer")
    ap.add_argument("--skip-peers", action="store_true", help="skip statsmodels and arch (about a minute)")
    ap.add_argument("--steps", default="2000,100000,1000000,3000000", help="log lengths paired with the floor")
    args = ap.parse_args(argv)
    peers = {} if args.skip_peers else {name: code for name, code in PEERS.items() if importlib.util.find_spec(name)}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"siamdiag analyze --format json against `import pandas; pandas.read_csv(F)`, and against the same "
              f"ending with gc.freeze() as siamdiag does (exit alike), median of {args.repeats} paired runs:")
        for n in map(int, args.steps.split(",")):
            path = os.path.join(tmp, f"{n}.csv")
            write_log(path, n, n)
            res = paired({"ours": analyze_code(path), "floor": floor_code(path),
                          "alike": floor_exit_alike_code(path)}, args.repeats)
            print(f"  {n:>9,} steps: siamdiag {summary(res['ours'])}; floor {summary(res['floor'])}; "
                  f"ratio {ratio(res['ours'], res['floor']):.2f}x; floor exit alike {summary(res['alike'])}, "
                  f"ratio {ratio(res['ours'], res['alike']):.2f}x")
        for n in (2_000, 100_000) if peers else ():
            path = os.path.join(tmp, f"{n}.csv")
            if not os.path.exists(path):
                write_log(path, n, n)
            codes = {"ours": analyze_code(path)} | {name: code.format(path=path) for name, code in peers.items()}
            res = paired(codes, args.peer_repeats)
            line = "; ".join(f"{name} {summary(res[name])} ({ratio(res[name], res['ours']):.1f}x siamdiag's time)"
                             for name in peers)
            print(f"  {n:>9,} steps, ADF+KPSS on the second half, median of {args.peer_repeats}: "
                  f"siamdiag {summary(res['ours'])}; {line}")
        long_path = os.path.join(tmp, "long.csv")
        write_long(long_path, 1000, 2000)
        long_wall, long_rss = timed(analyze_code(long_path))
        print(f"1,000 runs x 2,000 steps in one long CSV: {long_wall:.2f} s, peak {long_rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
