"""Pictures of judged runs (matplotlib, through the 'plot' extra): per run, the raw loss with
block means, the burn-in and evaluation window shaded, detected change points, the rolling
variance and the gradient norm, with the verdict and its reasons in the title. Files are
written atomically; the library draws, the CLI decides where."""
from __future__ import annotations

import os
import re
import textwrap

import numpy as np

from ..engine.analysis import RunResult
from ..atomic import output_file
from ..errors import OutputError, UsageError
from ..engine.numerics import block_means
from ..engine.prepare import OrderedRun
from .render import VERDICT_STYLE

DISPLAY_BLOCKS = 200      # block means drawn over the whole run
ROLLING_FRACTION = 0.02   # rolling-variance window, as a fraction of the run's points
VERDICT_COLOUR = {"green": "tab:green", "yellow": "goldenrod", "red": "tab:red", "bold red": "darkred",
                  "magenta": "tab:purple", "cyan": "tab:cyan"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'siamdiag[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def change_points(result: RunResult) -> list[tuple[float, str]]:
    """Steps where a rejected test located a change: level shift, variance change."""
    if result.tests is None or result.window is None:
        return []
    points = []
    if "level_shift" in result.rejected:
        points.append((result.window.step_at(result.tests.level_shift.at_fraction), "level shift"))
    if "variance" in result.rejected:
        points.append((result.window.step_at(result.tests.variance.at_fraction), "variance change"))
    return points


def rolling_variance(loss: np.ndarray) -> np.ndarray:
    import pandas as pd

    width = max(10, int(len(loss) * ROLLING_FRACTION))
    return pd.Series(loss).rolling(width, min_periods=width).var().to_numpy()


def draw_run(axes, run: OrderedRun, result: RunResult) -> None:
    """Three stacked panels on ``axes``: loss, rolling variance, grad norm."""
    loss_ax, var_ax, grad_ax = axes
    finite = np.isfinite(run.loss)
    steps, loss = run.steps[finite], run.loss[finite]
    loss_ax.plot(steps, loss, lw=0.5, color="0.6", label="loss")
    if len(loss) >= 2 * DISPLAY_BLOCKS:
        block = len(loss) // DISPLAY_BLOCKS
        means = block_means(loss, block)
        centres = block_means(steps, block)
        loss_ax.plot(centres, means, lw=1.4, color="tab:blue", label=f"block means ({block} steps)")
    bad = run.steps[~finite]
    if len(bad):
        loss_ax.plot(bad, np.full(len(bad), loss.min() if len(loss) else 0.0), "x", color="darkred",
                     label="non-finite loss (drawn at the bottom)")
    if result.window is not None:
        w = result.window
        for ax in axes:
            if w.burn_in_step is not None and w.burn_in_step > steps[0]:
                ax.axvspan(steps[0], w.burn_in_step, color="0.85", alpha=0.6, lw=0)
            ax.axvspan(w.first_step, w.last_step, color="tab:green", alpha=0.08, lw=0)
        loss_ax.axvline(w.first_step, color="tab:green", lw=0.8, ls="--", label="evaluation window")
        if w.burn_in_step is not None:
            loss_ax.axvline(w.burn_in_step, color="0.4", lw=0.8, ls=":", label=f"burn-in ({w.burn_in_method})")
    for step, what in change_points(result):
        for ax in axes:
            ax.axvline(step, color="tab:red", lw=1.2)
        loss_ax.annotate(what, (step, 1), xycoords=("data", "axes fraction"), color="tab:red",
                         fontsize=8, ha="left", va="top", rotation=90)
    loss_ax.set_ylabel("loss")
    loss_ax.legend(fontsize=7, loc="upper right")
    if len(loss):
        var_ax.plot(steps, rolling_variance(loss), color="tab:orange", lw=0.9)
    var_ax.set_ylabel("rolling variance")
    if run.grad_norm is not None:
        grad_ax.plot(run.steps, run.grad_norm, lw=0.5, color="tab:purple")
    else:
        grad_ax.text(0.5, 0.5, "grad norm not logged", transform=grad_ax.transAxes, ha="center", color="0.5")
    grad_ax.set_ylabel("grad norm")
    grad_ax.set_xlabel("step")
    reasons = "\n".join(textwrap.shorten(r, 110) for r in result.reasons[:2])
    colour = VERDICT_COLOUR[VERDICT_STYLE[result.verdict.value]]
    loss_ax.set_title(f"{textwrap.shorten(result.run, 80)}: {result.verdict.value}\n{reasons}", fontsize=9,
                      color=colour, loc="left")


def save_figure(figure, path: str) -> None:
    """Write the PNG whole or not at all (see siamdiag.atomic.output_file)."""
    with output_file(path, "plot", "wb") as fh:
        figure.savefig(fh, format="png", dpi=110)


def plot_runs(judged: list[tuple[OrderedRun, RunResult]], path: str) -> None:
    """Every run side by side in one PNG."""
    plt = _pyplot()
    figure, axes = plt.subplots(3, len(judged), figsize=(7 * len(judged), 8), squeeze=False, sharex="col",
                                gridspec_kw={"height_ratios": [3, 1, 1]})
    for k, (run, result) in enumerate(judged):
        draw_run(axes[:, k], run, result)
    figure.tight_layout()
    try:
        save_figure(figure, path)
    finally:
        plt.close(figure)


def file_name_for(run_name: str, taken: set[str]) -> str:
    """A file name for a run's plot: the run name with path separators and odd characters
    replaced, made unique among ``taken``."""
    stem = re.sub(r"[^\w.-]+", "_", run_name).strip("._") or "run"
    stem = stem[-120:]
    name, k = f"{stem}.png", 1
    while name in taken:
        k += 1
        name = f"{stem}-{k}.png"
    taken.add(name)
    return name


def plot_each(judged: list[tuple[OrderedRun, RunResult]], directory: str) -> list[str]:
    """One PNG per run in ``directory`` (created if needed); returns the paths written."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise OutputError(directory, exc) from None
    taken: set[str] = set()
    written = []
    for pair in judged:
        path = os.path.join(directory, file_name_for(pair[0].name, taken))
        plot_runs([pair], path)
        written.append(path)
    return written
