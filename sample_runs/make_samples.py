"""Write the golden sample runs: one small log per verdict, plus a long-format file with
several runs and a gzip copy. Seeded, so the files are byte-identical on every machine.

    python sample_runs/make_samples.py             # rewrites sample_runs/*.csv*
    python sample_runs/make_samples.py --expected  # also re-records sample_runs/expected/*.json

The expected JSON is a regression record (tests/test_golden.py compares against it); the
verdict each file must get is fixed by construction and by its name, not by that record.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name: str, header: list[str], rows, compress: bool = False) -> None:
    lines = [",".join(header)] + [",".join(_cell(v) for v in row) for row in rows]
    text = "\n".join(lines) + "\n"
    path = os.path.join(HERE, name)
    if compress:
        with open(path, "wb") as fh:
            fh.write(gzip.compress(text.encode(), mtime=0))
    else:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def _cell(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "nan" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.6g}")


def main() -> None:
    rng = np.random.default_rng(20261122)
    n = 2000
    t = np.arange(n)
    transient = 1.5 * np.exp(-t / 80)
    # stationary: a contrastive run that settled, with a grad norm that swings with it
    common = rng.standard_normal(n)
    loss = 0.35 + transient + 0.02 * (0.8 * common + 0.6 * rng.standard_normal(n))
    grad = 1.2 + 2 * transient + 0.1 * (0.8 * common + 0.6 * rng.standard_normal(n))
    write("stationary.csv", ["step", "loss", "grad_norm"], zip(t, loss, grad))
    # not_converged: still learning at the end
    loss = 0.3 + 1.5 * np.exp(-t / 700) + 0.02 * rng.standard_normal(n)
    write("not_converged.csv", ["global_step", "train_loss"], zip(t, loss))
    # nonstationary: the loss jumps up by 1.5 sigma three quarters through the run
    loss = 0.35 + transient + 0.02 * rng.standard_normal(n) + 0.03 * (t >= 1500)
    write("nonstationary.csv", ["step", "loss"], zip(t, loss))
    # diverged: NaN after a blow-up
    loss = 0.35 + transient + 0.02 * rng.standard_normal(n)
    loss[1900:] = np.nan
    write("diverged.csv", ["step", "loss"], zip(t, loss))
    # degenerate: loss pinned at the margin (collapsed embeddings), as siamdiag train logs it
    loss = np.where(t < 300, 1.0 - 0.5 * np.exp(-t / 50) + 0.01 * rng.standard_normal(n), 1.0)
    write("degenerate.csv", ["step", "loss", "margin"], zip(t, loss, np.full(n, 1.0)))
    # inconclusive: a loss with no level to measure moves against (an adversarial loss around 0)
    # and persistent noise (AR(0.98)): too few independent points, and no practical yardstick
    from scipy.signal import lfilter

    persistent = lfilter([0.05 * np.sqrt(1 - 0.98 ** 2)], [1, -0.98], rng.standard_normal(n + 3000))[3000:]
    write("inconclusive.csv", ["step", "loss"], zip(t, persistent))
    # insufficient_data: a run that has only just started
    write("insufficient_data.csv", ["step", "loss"], zip(t[:60], 0.35 + transient[:60]))
    # no_data: a job that crashed before its first log (a header only)
    write("no_data.csv", ["step", "loss"], [])
    # long format: three runs in one file, gzip-compressed, one of them resumed from step 600
    rows = []
    for run in ("seed0", "seed1", "seed2"):
        steps = np.concatenate([t[:800], t[600:]]) if run == "seed1" else t
        values = 0.35 + 1.5 * np.exp(-steps / 80) + 0.02 * rng.standard_normal(len(steps))
        rows += [(run, s, v) for s, v in zip(steps, values)]
    write("sweep.csv.gz", ["run", "step", "loss"], rows, compress=True)


def record_expected() -> None:
    import json

    from siamdiag.pipeline import analyze_paths
    from siamdiag.report.model import report_to_dict

    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        for name in sorted(f for f in os.listdir(".") if f.endswith((".csv", ".csv.gz"))):
            doc = report_to_dict(analyze_paths([name]))
            with open(os.path.join("expected", name.split(".")[0] + ".json"), "w") as fh:
                json.dump(doc, fh, indent=2, allow_nan=False)
                fh.write("\n")
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    import sys

    main()
    if "--expected" in sys.argv:
        record_expected()
