"""Pictures of judged runs (matplotlib, through the 'plot' extra). Per run, four stacked panels:
the whole loss with block means (a long run as its min-max band per bucket, so spikes stay
visible; a log scale when it spans two decades), the evaluation window zoomed to its own data (a
settled 1e-5 after a start at 0.05 is not a flat line under the warm-up), the rolling variance and
the gradient norm; the burn-in and the window shaded, the change points the tests located marked,
and the verdict with its reasons wrapped above. Many runs go in a grid of at most COLUMNS × ROWS
per page, in the format the file's extension names. Files are written atomically; the library
draws, the CLI decides where."""
from __future__ import annotations

import contextlib
import math
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
from .series import change_points, envelope, finite_loss, in_window, padded_limits, wants_log_scale

IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
COLUMNS, ROWS = 4, 3        # runs per page: a grid, never one long row
CELL_INCHES = (5.6, 6.4)    # one run's four panels and its title
DPI = 100                   # a full PNG page is at most 2,240 × 1,920 pixels
DISPLAY_BLOCKS = 200        # block means drawn over a long series
RAW_POINTS = 4000           # a longer series is drawn as its min-max band in BAND_BUCKETS buckets
BAND_BUCKETS = 1000
ROLLING_FRACTION = 0.02     # rolling-variance window, as a fraction of the run's points
TITLE_SIZE = 8              # points
REASON_LINES = 4            # each of the first two reasons wrapped to at most this many lines
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


def image_format(path: str, what: str) -> str:
    """The image format ``path``'s extension names (png, svg, pdf); any other is the user's
    mistake, named with the option ``what`` that gave the path."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in IMAGE_FORMATS:
        raise UsageError(f"{what} {path}: the extension names the image format; expected a name ending in "
                         f"{', '.join(IMAGE_FORMATS)}")
    return IMAGE_FORMATS[extension]


def rolling_variance(loss: np.ndarray) -> np.ndarray:
    import pandas as pd

    width = max(10, int(len(loss) * ROLLING_FRACTION))
    return pd.Series(loss).rolling(width, min_periods=width).var().to_numpy()


def draw_series(ax, steps: np.ndarray, values: np.ndarray, colour: str, means: bool = False) -> None:
    """``values`` (finite) as a line, or, when longer than RAW_POINTS, as the band between each
    bucket's minimum and maximum; with ``means``, block means over it when the series is long."""
    if len(values) > RAW_POINTS:
        band = envelope(steps, values, BAND_BUCKETS)
        ax.fill_between(band.steps, band.low, band.high, color=colour, lw=0,
                        label=f"loss (min–max per {len(values) // BAND_BUCKETS} points)" if means else None)
    else:
        ax.plot(steps, values, lw=0.5, color=colour, label="loss" if means else None)
    if means and len(values) >= 2 * DISPLAY_BLOCKS:
        block = len(values) // DISPLAY_BLOCKS
        ax.plot(block_means(steps, block), block_means(values, block), lw=1.4, color="tab:blue",
                label=f"block means ({block} points)")


def draw_window(ax, steps: np.ndarray, loss: np.ndarray, result: RunResult) -> None:
    """The evaluation window alone, its y-limits set by its own data (log scale when that spans
    two decades)."""
    ws, wl = in_window(steps, loss, result)
    ax.set_ylabel("loss in window", fontsize=8)
    if not len(wl):
        ax.text(0.5, 0.5, "no evaluation window" if result.window is None else "no finite loss in the window",
                transform=ax.transAxes, ha="center", color="0.5")
        return
    log = wants_log_scale(wl)
    if log:
        ax.set_yscale("log")
    draw_series(ax, ws, wl, "0.6", means=True)
    if result.window.first_step < result.window.last_step:
        ax.set_xlim(result.window.first_step, result.window.last_step)
    ax.set_ylim(*padded_limits(wl, log))


def draw_positive(ax, steps: np.ndarray, values: np.ndarray, colour: str) -> None:
    """A secondary series (rolling variance, grad norm): its finite points, on a log scale when
    they span two decades."""
    finite = np.isfinite(values)
    if wants_log_scale(values[finite]):
        ax.set_yscale("log")
    draw_series(ax, steps[finite], values[finite], colour)


def title_text(result: RunResult, width_inches: float) -> str:
    """The run's name and verdict, then its first two reasons, each wrapped to ``width_inches`` so
    that nothing runs past the panel's right edge (long words, such as paths, are broken too)."""
    chars = max(20, int(width_inches * 72 / (0.62 * TITLE_SIZE)))
    lines = textwrap.wrap(f"{result.run}: {result.verdict.value}", chars)
    for reason in result.reasons[:2]:
        lines += textwrap.wrap(reason, chars, max_lines=REASON_LINES, placeholder=" …")
    if len(result.reasons) > 2:
        lines.append(f"(+{len(result.reasons) - 2} more reasons in the report)")
    return "\n".join(lines)


def draw_run(axes, run: OrderedRun, result: RunResult) -> None:
    """Four stacked panels on ``axes``: the whole loss, the window zoomed, the rolling variance and
    the grad norm."""
    loss_ax, window_ax, var_ax, grad_ax = axes
    steps, loss, bad = finite_loss(run)
    if wants_log_scale(loss):
        loss_ax.set_yscale("log")
    draw_series(loss_ax, steps, loss, "0.6", means=True)
    if len(bad):
        loss_ax.plot(bad, np.full(len(bad), loss.min() if len(loss) else 0.0), "x", color="darkred",
                     label="non-finite loss (drawn at the bottom)")
    draw_window(window_ax, steps, loss, result)
    if result.window is not None:
        w = result.window
        for ax in (loss_ax, var_ax, grad_ax):
            if w.burn_in_step is not None and len(steps) and w.burn_in_step > steps[0]:
                ax.axvspan(steps[0], w.burn_in_step, color="0.85", alpha=0.6, lw=0)
            ax.axvspan(w.first_step, w.last_step, color="tab:green", alpha=0.08, lw=0)
        loss_ax.axvline(w.first_step, color="tab:green", lw=0.8, ls="--", label="evaluation window")
        if w.burn_in_step is not None:
            loss_ax.axvline(w.burn_in_step, color="0.4", lw=0.8, ls=":", label=f"burn-in ({w.burn_in_method})")
    for step, what in change_points(result):
        for ax in axes:
            ax.axvline(step, color="tab:red", lw=1.2)
        window_ax.annotate(what, (step, 1), xycoords=("data", "axes fraction"), color="tab:red",
                           fontsize=8, ha="left", va="top", rotation=90)
    loss_ax.set_ylabel("loss", fontsize=8)
    loss_ax.legend(fontsize=6, loc="upper right")
    if len(loss):
        draw_positive(var_ax, steps, rolling_variance(loss), "tab:orange")
    var_ax.set_ylabel("rolling variance", fontsize=8)
    if run.grad_norm is not None:
        draw_positive(grad_ax, run.steps, run.grad_norm, "tab:purple")
    else:
        grad_ax.text(0.5, 0.5, "grad norm not logged", transform=grad_ax.transAxes, ha="center", color="0.5")
    grad_ax.set_ylabel("grad norm", fontsize=8)
    grad_ax.set_xlabel("step", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    cell = loss_ax.figure
    colour = VERDICT_COLOUR[VERDICT_STYLE[result.verdict.value]]
    loss_ax.set_title(title_text(result, 0.85 * cell.bbox.width / cell.dpi), fontsize=TITLE_SIZE, color=colour,
                      loc="left")


def draw_page(plt, judged: list[tuple[OrderedRun, RunResult]], advance):
    """A figure with the runs in a grid of at most COLUMNS columns, one cell per run. Margins are
    fixed, and the top one fits the title's lines (a layout engine would double the drawing time)."""
    columns = min(COLUMNS, len(judged))
    rows = math.ceil(len(judged) / columns)
    figure = plt.figure(figsize=(CELL_INCHES[0] * columns, CELL_INCHES[1] * rows), dpi=DPI)
    cells = figure.subfigures(rows, columns, squeeze=False)
    for cell, (run, result) in zip(cells.flat, judged):
        axes = cell.subplots(4, 1, gridspec_kw={"height_ratios": [3, 2, 1, 1], "hspace": 0.4})
        for ax in axes[2:]:   # variance and grad norm under the whole loss; the window has its own steps
            ax.sharex(axes[0])
        draw_run(axes, run, result)
        title_lines = axes[0].get_title(loc="left").count("\n") + 1
        title_inches = (title_lines * 1.25 * TITLE_SIZE + 12) / 72
        cell.subplots_adjust(left=0.14, right=0.97, bottom=0.07, top=1 - title_inches / CELL_INCHES[1])
        advance()
    return figure


def page_paths(path: str, pages: int) -> list[str]:
    """Where each page goes: ``path`` itself for one page, else runs-1.png, runs-2.png, ..."""
    if pages == 1:
        return [path]
    stem, extension = os.path.splitext(path)
    return [f"{stem}-{k}{extension}" for k in range(1, pages + 1)]


def plot_runs(judged: list[tuple[OrderedRun, RunResult]], path: str, progress=None) -> list[str]:
    """Every run, COLUMNS × ROWS to a page, in the format ``path``'s extension names: a PDF holds
    every page; PNG and SVG write one file per page (``page_paths``). ``progress(total)``, a
    context manager yielding advance(), is told of each run drawn. Returns the paths written."""
    plt = _pyplot()
    fmt = image_format(path, "-o")
    per_page = COLUMNS * ROWS
    pages = [judged[k:k + per_page] for k in range(0, len(judged), per_page)]
    with progress(len(judged)) if progress else contextlib.nullcontext(lambda: None) as advance:
        if fmt == "pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            with output_file(path, "plot", "wb") as fh, PdfPages(fh) as pdf:
                for page in pages:
                    figure = draw_page(plt, page, advance)
                    try:
                        pdf.savefig(figure)
                    finally:
                        plt.close(figure)
            return [path]
        targets = page_paths(path, len(pages))
        for page, target in zip(pages, targets):
            figure = draw_page(plt, page, advance)
            try:
                with output_file(target, "plot", "wb") as fh:
                    figure.savefig(fh, format=fmt, dpi=DPI)
            finally:
                plt.close(figure)
    return targets


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
        written += plot_runs([pair], os.path.join(directory, file_name_for(pair[0].name, taken)))
    return written


def plot_to(judged: list[tuple[OrderedRun, RunResult]], target: str) -> list[str]:
    """``analyze --plot TARGET``: a name ending in .png, .svg or .pdf (not an existing directory)
    is one file, which holds exactly one run; any other name is a directory of one PNG per run."""
    if os.path.splitext(target)[1].lower() in IMAGE_FORMATS and not os.path.isdir(target):
        if len(judged) != 1:
            raise UsageError(f"--plot {target}: a file holds one run's plot, and {len(judged)} runs were judged; "
                             "name a directory for one PNG per run, or draw them all in a grid with "
                             "`siamdiag plot PATH... -o FILE`")
        return plot_runs(judged, target)
    return plot_each(judged, target)
