"""Practical magnitude: how far a loss's smoothed path moves against the loss's own level.

When the window's block means hold few effectively independent values (under ~30), no test has
both size and power: a stationary but persistent loss and a loss that is still moving look alike
to it. What still separates them is how far the smoothed loss moves against its level. A settled
loss whose smoothed path stays within 2 % of its level is practically flat, however persistent;
one that moves by more is still moving, however few independent values show it (the 2 % sit
below the 3 % moves real logs were seen making by more than the error of the path's range). The
same yardstick catches slow moves under heavy per-step noise, which the batch tests (margins in
noise sigmas) are too coarse for. It needs a level: a loss that stays on one side of zero (as
losses do), so that "2 % of the level" means something; a window crossing zero is left to the
statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stattests
from .numerics import exact_median, integrated_autocorrelation_time, nested_rss, robust_sigma

PRACTICAL_MOVE = 0.02     # a smoothed path moving over 2 % of the level (peak to peak) is moving
MAX_COMPONENTS = 8        # components of the smooth path: a line, then wanders down to a period of 1/4 window
MIN_POINTS_PER_COMPONENT = 10
BOUND_SES = 2.0           # "practically flat" needs the range plus this many standard errors below the threshold
LEVEL_BATCHES = 20        # the sign of the level is read off this many batch means of the window
LEVEL_NOISES = 3.0        # ... and the level must lie this many step-to-step noises away from 0
NOISE_POINTS = 1 << 12    # (measured on the window's last 4,096 points at most)
MONOTONE = 0.8            # end-to-end change of at least 80 % of the range: a steady rise or fall


@dataclass(frozen=True)
class Wander:
    """A window's smooth path, in the units it was given, judged against the loss's level."""

    level: float            # |level| the path is measured against
    range: float            # max - min of the fitted smooth path
    change: float           # its end minus its start
    threshold: float        # the range that counts as moving (2 % of |level|, or the tolerance)
    range_bound: float      # range plus BOUND_SES standard errors of the fitted path
    period_fraction: float  # the dominant period of the path as a fraction of the window
    p_value: float          # Wald test that the path is flat, against the residual's long-run variance
    shape: str              # "fall", "rise", "wander", or "none" (no path beyond noise)
    beyond: bool            # the range reaches the threshold (then p_value joins the gating family)
    flat: bool              # the range plus its error stays below the threshold

    @property
    def relative(self) -> float:
        """The range as a share of the level."""
        return self.range / self.level


def path_basis(m: int, components: int) -> np.ndarray:
    """Columns for the smooth paths a window can take, in order of complexity: a straight line
    (a steady move, whose size a half-cosine would understate by a fifth), then cos(pi k (i + 1/2) / m)
    for k = 2..components (a swing, then ever shorter wanders), each centred."""
    i = np.arange(m) + 0.5
    columns = [i / m - 0.5] + [np.cos(np.pi * k * i / m) for k in range(2, components + 1)]
    basis = np.column_stack(columns)
    return basis - basis.mean(axis=0)


def bic_order(rss: np.ndarray, effective: float) -> int:
    """How many components the path needs, by BIC on the nested fits' residual sums of squares
    (``rss[k]`` with the first k components), counting the window's effective size rather than
    its points (persistent noise would otherwise pass for detail): a steady move takes one, a
    wander a few, noise none. Keeps the noise of unneeded components out of the path's range."""
    effective = max(effective, 2.0)
    bic = effective * np.log(np.maximum(rss, 1e-300) / rss[0]) + np.arange(len(rss)) * np.log(effective)
    return int(np.argmin(bic))


@dataclass(frozen=True)
class Path:
    """A window's smooth path and what it leaves."""

    values: np.ndarray   # the path, centred, one value per window point
    order: int           # components BIC kept (0: no path beyond the noise)
    p_value: float       # Wald test of all the components against the residual's long-run variance
    long_run: float      # long-run variance of the residual

    @property
    def range(self) -> float:
        return float(self.values.max() - self.values.min())


def smooth_path(window: np.ndarray) -> Path:
    """Fit the window's smooth path: the components BIC keeps, counting the effective size of
    what they leave. Significance is a Wald test of all the components (so choosing the order does
    not bias it) whose variance is the long-run variance of what they leave: persistence left
    around the path is not taken for a move."""
    m = len(window)
    components = int(max(1, min(MAX_COMPONENTS, m // MIN_POINTS_PER_COMPONENT)))
    basis = path_basis(m, components)
    centred = window - window.mean()
    rss = np.concatenate([[float(centred @ centred)], nested_rss(centred, basis.T)])
    coef, *_ = np.linalg.lstsq(basis, centred, rcond=None)
    resid = centred - basis @ coef
    tau = integrated_autocorrelation_time(resid)
    long_run = float(resid @ resid) / max(1, m - components - 1) * tau
    statistic = (rss[0] - rss[-1]) / long_run if long_run > 0 else np.inf
    p = stattests.chi2_sf(statistic, components) if np.isfinite(statistic) else 0.0
    order = bic_order(rss, m / tau)
    values = np.zeros(m)
    if order:
        kept, *_ = np.linalg.lstsq(basis[:, :order], centred, rcond=None)
        values = basis[:, :order] @ kept
    return Path(values, order, float(p), long_run)


def wander(window: np.ndarray, level: float, tolerance: float = 0.0) -> Wander:
    """Judge the window's smooth path against PRACTICAL_MOVE of |level| (or the tolerance, if
    larger): a path whose range reaches it is a candidate move, tested by its p-value in the
    gating family; one whose range plus its error stays below it is practically flat.
    ``window`` and ``level`` in the same units; ``level`` must be non-zero."""
    path = smooth_path(window)
    values, order = path.values, path.order
    span, change = path.range, float(values[-1] - values[0])
    margin = BOUND_SES * 2.0 * np.sqrt(max(order, 1) * path.long_run / len(window))   # one path error at each end
    threshold = max(PRACTICAL_MOVE * abs(level), tolerance)
    cycles = max(1, int(np.argmax(np.abs(np.fft.rfft(values)[1:]))) + 1) if order else 1
    shape = ("none" if not order else "fall" if change <= -MONOTONE * span else
             "rise" if change >= MONOTONE * span else "wander")
    return Wander(level=abs(level), range=span, change=change, threshold=threshold,
                  range_bound=float(span + margin), period_fraction=1.0 / cycles, p_value=path.p_value, shape=shape,
                  beyond=bool(order and span >= threshold), flat=bool(span + margin < threshold))


def has_level(window_loss: np.ndarray) -> bool:
    """A level that relative moves can be measured against: the window's loss, in LEVEL_BATCHES
    batch means, stays on one side of 0 (single noisy values of a loss near 0 may cross it), and
    lies at least LEVEL_NOISES step-to-step noises from it (a series wandering around 0 has no
    level to speak of, whichever side it happens to stay on)."""
    if len(window_loss) < LEVEL_BATCHES:
        return False
    size = len(window_loss) // LEVEL_BATCHES
    means = window_loss[len(window_loss) - size * LEVEL_BATCHES:].reshape(LEVEL_BATCHES, size).mean(axis=1)
    if not (np.all(means > 0) or np.all(means < 0)):
        return False
    step_noise = robust_sigma(np.diff(window_loss[-NOISE_POINTS:])) / np.sqrt(2.0)
    return bool(abs(exact_median(window_loss)) >= LEVEL_NOISES * step_noise)


def gates(level: float, persistent: bool, drift_margin: float) -> bool:
    """Whether a practically large move of the smoothed path fails a run: where the window is
    too persistent for the batch tests, or where their noise-sigma margin (``drift_margin``, in
    the units of ``level``) is coarser than PRACTICAL_MOVE of the level (a loss whose per-step
    noise is large against its level, where a move of a few per cent hides in the noise).
    Elsewhere the batch tests resolve finer moves than this rule would."""
    return persistent or drift_margin > PRACTICAL_MOVE * abs(level)
