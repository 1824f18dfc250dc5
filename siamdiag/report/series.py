"""What a chart shows of a run, shared by the matplotlib figures (plot.py) and the HTML report's
SVG charts (html.py): the loss reduced to a few hundred buckets (minimum, maximum and mean of
each, so a one-step spike stays visible however long the run), the part inside the evaluation
window, whether a series spans enough decades to need a log scale, and where the tests located a
change. No matplotlib here: the HTML report must not need it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.analysis import RunResult

LOG_DECADES = 2.0   # a positive series whose max/min reaches 10**2 is drawn on a log scale


@dataclass(frozen=True)
class Envelope:
    """A series in buckets of consecutive points: each bucket's middle step, minimum, maximum
    and mean (a series no longer than the buckets asked for keeps every point)."""

    steps: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def envelope(steps: np.ndarray, values: np.ndarray, buckets: int) -> Envelope:
    """``values`` (finite) at ``steps`` in at most ``buckets`` buckets of consecutive points."""
    if len(values) <= buckets:
        return Envelope(steps, values, values, values)
    starts = np.unique(np.linspace(0, len(values), buckets + 1).astype(int)[:-1])
    ends = np.append(starts[1:], len(values))
    return Envelope(steps=(steps[starts] + steps[ends - 1]) / 2,
                    low=np.minimum.reduceat(values, starts), high=np.maximum.reduceat(values, starts),
                    mean=np.add.reduceat(values, starts) / (ends - starts))


def wants_log_scale(values: np.ndarray) -> bool:
    """True when every value is positive and they span at least LOG_DECADES decades: on a linear
    scale the warm-up would flatten the rest (a settled 1e-5 after a start at 0.05)."""
    values = values[np.isfinite(values)]
    if len(values) < 2 or values.min() <= 0:
        return False
    return bool(np.log10(values.max()) - np.log10(values.min()) >= LOG_DECADES)


def finite_loss(run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's steps and loss where the loss is finite, and the steps where it is not (charts
    mark them)."""
    finite = np.isfinite(run.loss)
    return run.steps[finite], run.loss[finite], run.steps[~finite]


def in_window(steps: np.ndarray, values: np.ndarray, result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """The points inside the run's evaluation window (none when it has no window)."""
    if result.window is None:
        return steps[:0], values[:0]
    inside = (steps >= result.window.first_step) & (steps <= result.window.last_step)
    return steps[inside], values[inside]


def padded_limits(values: np.ndarray, log: bool, pad: float = 0.05) -> tuple[float, float]:
    """Y-limits enclosing ``values`` with a margin of ``pad`` of their range on each side (of
    their decades on a log scale); a constant series gets a margin around its value."""
    low, high = float(values.min()), float(values.max())
    if log:
        a, b = np.log10(low), np.log10(high)
        margin = pad * (b - a) or 0.1
        return float(10 ** (a - margin)), float(10 ** (b + margin))
    margin = pad * (high - low) or max(abs(high) * 1e-3, 1e-12)
    return low - margin, high + margin


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
