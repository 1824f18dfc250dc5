"""From a run as logged to the series the checks judge: ordered unique steps, aligned
grad norm and extras, the evaluation window, and block means of long runs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..logs.tables import Metric, RawRun
from .numerics import block_means, mser_truncation, winsorize

MAX_BLOCKS = 2000          # judge at most this many block means per run (research §6.1)
DEFAULT_WINDOW = 0.5       # the second half of the run's steps


@dataclass(frozen=True)
class Options:
    """What the user chose. ``window`` is a fraction of the step range (<= 1) or a number of
    final steps (> 1); ``burn_in`` is None for automatic (MSER) or the first step to judge."""

    alpha: float = 0.01
    window: float = DEFAULT_WINDOW
    burn_in: float | None = None
    min_points: int = 100


def is_valid_window(window: float) -> bool:
    """A window is a fraction of the step range in (0, 1] or a whole number of final steps."""
    return 0 < window <= 1 or (window > 1 and float(window).is_integer())


@dataclass(frozen=True)
class OrderedRun:
    """A run with strictly increasing steps; loss may hold non-finite values."""

    name: str
    source: str
    steps: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray | None
    extras: dict[str, np.ndarray]
    notes: tuple[str, ...]


def last_per_step(metric: Metric) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Sort by step, keeping the last logged value of each step (a resumed run re-logs the
    steps after its checkpoint). Returns steps, values, duplicates dropped, whether the file
    order was not increasing."""
    steps, values = metric.steps, metric.values
    finite = np.isfinite(steps)
    if not finite.all():
        steps, values = steps[finite], values[finite]
    if len(steps) < 2 or np.all(np.diff(steps) > 0):
        return steps, values, 0, False
    order = np.argsort(steps, kind="stable")
    s, v = steps[order], values[order]
    keep = np.append(s[1:] != s[:-1], True)  # last of each run of equal steps = last in file
    return s[keep], v[keep], int(len(s) - keep.sum()), True


def align(target_steps: np.ndarray, metric: Metric | None) -> np.ndarray | None:
    """Values of ``metric`` at ``target_steps`` (NaN where it was not logged)."""
    if metric is None or len(metric.steps) == 0:
        return None
    steps, values, _, _ = last_per_step(metric)
    out = np.full(len(target_steps), np.nan)
    pos = np.clip(np.searchsorted(steps, target_steps), 0, len(steps) - 1)
    hit = steps[pos] == target_steps
    out[hit] = values[pos[hit]]
    return out


def order_run(raw: RawRun) -> OrderedRun:
    """Order and de-duplicate a run, saying what was done to it."""
    steps, loss, dropped, reordered = last_per_step(raw.metrics["loss"])
    notes = list(raw.notes)
    if dropped:
        notes.append(f"{dropped:,} steps were logged more than once (a resumed run?); "
                     "kept the last value of each")
    elif reordered:
        notes.append("steps were not in increasing order; sorted them")
    bad_steps = int((~np.isfinite(raw.metrics["loss"].steps)).sum())
    if bad_steps:
        notes.append(f"ignored {bad_steps:,} rows without a step value")
    extras = {k: align(steps, m) for k, m in raw.metrics.items() if k not in ("loss", "grad_norm")}
    return OrderedRun(name=raw.name, source=raw.source, steps=steps, loss=loss,
                      grad_norm=align(steps, raw.metrics.get("grad_norm")), extras=extras,
                      notes=tuple(notes))


@dataclass(frozen=True)
class Window:
    """The evaluation window and the aggregation used inside it.

    ``start`` is the index of the first window point in the run's finite-loss arrays;
    ``block`` the block length (1 = raw); ``agg_start`` the first window block.
    """

    start: int
    first_step: float
    last_step: float
    burn_in_step: float | None
    burn_in_method: str
    block: int
    agg_start: int

    def step_at(self, fraction: float) -> float:
        """The (rounded) step a fraction of the way through the window."""
        return float(round(self.first_step + fraction * (self.last_step - self.first_step)))


@dataclass(frozen=True)
class PreparedSeries:
    """Everything the checks read. ``window_loss`` is the raw window (finite values); ``agg``
    block means of the whole run, centred on the window median, window part winsorised (so a
    spike cannot steer the burn-in); ``agg_window`` the window's blocks."""

    window: Window
    window_loss: np.ndarray
    agg: np.ndarray
    agg_window: np.ndarray


def window_start_index(steps: np.ndarray, options: Options) -> int:
    """First index of the evaluation window: a fixed first step, or the last fraction / the
    last N steps of the step range."""
    if options.burn_in is not None:
        return int(np.searchsorted(steps, options.burn_in, side="left"))
    span = steps[-1] - steps[0]
    width = options.window * span if options.window <= 1 else options.window
    return int(np.searchsorted(steps, steps[-1] - width, side="left"))


def prepare_series(steps: np.ndarray, loss: np.ndarray, options: Options) -> PreparedSeries | None:
    """Finite points only; None when the window holds fewer than ``min_points``."""
    finite = np.isfinite(loss)
    steps, loss = steps[finite], loss[finite]
    if len(loss) < options.min_points:
        return None
    start = window_start_index(steps, options)
    if len(loss) - start < options.min_points:
        return None
    window_loss = loss[start:]
    # At most MAX_BLOCKS blocks over the run, and at least min_points blocks in the window.
    block = max(1, min(-(-len(loss) // MAX_BLOCKS), (len(loss) - start) // options.min_points))
    # Blocks are aligned to the end of the run, and the window is widened to whole blocks.
    agg_count_window = (len(loss) - start) // block
    # Centre on the window median: every test is location-invariant, and sums of squares of
    # a loss like 684.5 ± 2e-5 would otherwise cancel catastrophically (MSER, OLS with a constant).
    series = loss - np.median(window_loss)
    series[start:] = winsorize(series[start:])
    agg = block_means(series, block)
    agg_start = len(agg) - agg_count_window
    if options.burn_in is None:
        search_limit = len(agg) - agg_count_window // 2
        cut = mser_truncation(agg, search_limit=search_limit)
        burn_in_step = float(steps[len(loss) - len(agg) * block + cut * block])
        method = "mser-5"
    else:
        burn_in_step, method = float(options.burn_in), "fixed"
    window = Window(start=start, first_step=float(steps[start]), last_step=float(steps[-1]),
                    burn_in_step=burn_in_step, burn_in_method=method, block=block, agg_start=agg_start)
    return PreparedSeries(window=window, window_loss=window_loss,
                          agg=agg, agg_window=agg[agg_start:])
