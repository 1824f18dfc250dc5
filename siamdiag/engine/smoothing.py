"""Logs of exponentially smoothed losses: fastai's ``smooth_loss``, tqdm postfixes and many
hand-written loggers record s_i = beta s_(i-1) + (1 - beta) x_i instead of the batch loss x_i.
Smoothing turns white batch noise into a slow AR(1) wander that the window tests read as
persistence or a unit root. Recognised from the log itself and undone exactly:
x_i = (s_i - beta s_(i-1)) / (1 - beta).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import running_mean
from .numerics import ols_slope

MIN_BETA = 0.8          # weaker smoothing does not make a window look persistent
MAX_BETA = 0.9995       # beyond this an AR(1) fit cannot tell smoothing from a random walk
MIN_POINTS = 250        # fitted on the last half of the run, at least this many points (on fewer a white
                        # component does not show clearly enough in the residuals) ...
TAIL_POINTS = 1 << 14   # ... and at most this many (16,384 points pin a weight near 1 to a few parts in 10,000)
WHITE_R1 = 0.1          # residual lag-1 autocorrelation below -max(this, 3/sqrt(n)): a white component
RESIDUAL_CLIP = 4.0     # residuals clipped at 4 sigmas before their autocorrelation (one spike is not structure)
MAX_SIGN_FLIPS = 0.01   # recovered values of a one-signed loss on the other side of 0: at most 1 %


@dataclass(frozen=True)
class Smoothing:
    """What the AR(1) fit on the second half of the log says about smoothing."""

    beta: float               # the fitted weight of the previous value
    residual_r1: float        # lag-1 autocorrelation of the fit's (clipped) residuals
    sign_flips: float | None  # share of recovered values across 0 (None: the log is not one-signed)
    smooth: bool              # an AR(1) as strong as a smoothing logger's, with no white component
    undo: bool                # ... and the recovered batch losses are plausible: undo it


def ar1_fit(x: np.ndarray, trend: bool = False) -> tuple[float, np.ndarray]:
    """OLS fit x_i = c + beta x_(i-1) (+ d i, with ``trend``) + e_i; returns beta and the
    residuals. An EMA of a loss with a linear trend keeps the trend, which would otherwise pass
    for a weight nearer 1."""
    prev, cur = x[:-1], x[1:]
    if trend:
        design = np.column_stack([prev, np.ones(len(prev)), np.linspace(-1.0, 1.0, len(prev))])
        coef, *_ = np.linalg.lstsq(design, cur, rcond=None)
        return float(coef[0]), cur - design @ coef
    beta = ols_slope(prev, cur)
    return beta, (cur - cur.mean()) - beta * (prev - prev.mean())


def undo_ema(loss: np.ndarray, beta: float) -> np.ndarray:
    """The batch losses behind an exponential moving average of weight ``beta`` (the first value
    is kept as logged)."""
    out = loss.copy()
    out[1:] = (loss[1:] - beta * loss[:-1]) / (1.0 - beta)
    return out


def smoothing(loss: np.ndarray) -> Smoothing | None:
    """Is ``loss`` (finite values in step order) an exponential moving average of noisy batch
    losses? Fitted on the run's second half (its last TAIL_POINTS at most), where the transient
    has mostly passed.

    Smooth: the AR(1) weight is at least MIN_BETA (and below MAX_BETA), and its residuals are
    white: a raw per-step log holds batch noise that makes them clearly negatively correlated
    (an AR(1) plus white noise), so a log with a white component is never taken for smoothed.
    A logger smooths with one weight throughout, so each half of the stretch must show it on its
    own (a slow recovery from a late spike after a white stretch does not).
    Undone only when the log is one-signed and the recovered values stay on its side of zero
    (at most 1 % across): a non-negative loss has non-negative batch losses, while undoing a
    wander or a trend that is not smoothing multiplies the noise far past the level."""
    half = loss[max(len(loss) // 2, len(loss) - TAIL_POINTS):]
    if len(half) < MIN_POINTS:
        return None
    x = half / running_mean.magnitude(half)   # exact scaling: sums of any finite loss stay finite
    x = x - x.mean()
    if not x.any():
        return None
    x = x / running_mean.magnitude(x)          # and its deviations, however small, are of order 1
    beta, resid = ar1_fit(x)
    if not MIN_BETA <= beta < MAX_BETA:
        return Smoothing(beta, 0.0, None, smooth=False, undo=False)
    spread = float(np.std(resid))
    clipped = np.clip(resid, -RESIDUAL_CLIP * spread, RESIDUAL_CLIP * spread)
    centred = clipped - clipped.mean()
    r1 = float(centred[1:] @ centred[:-1] / (centred @ centred)) if centred.any() else 0.0
    steady = min(ar1_fit(part)[0] for part in np.array_split(x, 2)) >= MIN_BETA
    smooth = steady and r1 >= -max(WHITE_R1, 3.0 / np.sqrt(len(resid)))
    flips = None
    if smooth and (np.all(half > 0) or np.all(half < 0)):
        beta, flips = plausible_weight(half, [beta, ar1_fit(x, trend=True)[0]])
    undo = bool(smooth and flips is not None and flips <= MAX_SIGN_FLIPS)
    return Smoothing(beta, r1, flips, smooth=bool(smooth), undo=undo)


def sign_flips(half: np.ndarray, beta: float) -> float:
    """Share of the batch losses recovered with weight ``beta`` that lie across 0 from the log."""
    return float(np.mean(np.sign(undo_ema(half, beta)[1:]) != np.sign(half[0])))


def plausible_weight(half: np.ndarray, fits: list[float]) -> tuple[float, float]:
    """The first fitted weight whose recovered batch losses stay on the log's side of 0, and
    their share across it (that of the last fit tried when none does). Fits come in order of
    preference: the plain AR(1) weight is exact for a settled loss; the one fitted around a
    linear trend is exact for a loss still drifting, where the plain one comes out nearer 1 and
    would multiply the recovered noise several times over."""
    flips = 1.0
    for beta in fits:
        flips = sign_flips(half, beta)
        if flips <= MAX_SIGN_FLIPS:
            break
    return beta, flips
