"""The checks run on one run's evaluation window. Each returns a frozen result with the
numbers behind it; gating checks also carry a p-value for the Holm step-down in decide.py.

Location and variance tests work on B batch means of the winsorised window: batch means of
autocorrelated noise are close to independent when batches are long, which keeps the tests'
size honest without modelling the noise (the batch-means method of simulation output analysis).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stattests
from .numerics import (ar_residuals, bartlett_long_run_variance, block_means, integrated_autocorrelation_time,
                       robust_sigma, winsorize)
from .prepare import PreparedSeries

MIN_BATCHES, MAX_BATCHES = 20, 50  # batch means per window for drift / shift / variance tests
MIN_VARIANCE_BATCHES = 10    # squared residuals under volatility clustering need longer batches
BATCH_TAUS = 2.0             # each batch spans at least this many autocorrelation times
MIN_SEGMENT = 3              # batches on each side of a candidate level or variance shift
DRIFT_MARGIN_SIGMA = 0.25    # drifts smaller than this (in noise sigmas) are practically flat
SHIFT_MARGIN_SIGMA = 0.10    # level shifts smaller than this are practically nothing
VARIANCE_MARGIN_LOG = 0.30   # variance changes under ~35 % are practically nothing
TAIL_FRACTION = 0.05         # divergence is looked for in the last 5 % of the window
EXPLOSION_MADS = 10.0        # ... as values beyond median + 10 robust sigmas
EXPLOSION_SHARE = 0.2        # ... in at least 20 % of that tail (isolated spikes are not)
STEP_LIKE_RATIO = 0.95      # a step must explain the batch means clearly better than a curve
MODAL_SHARE_DEGENERATE = 0.99
UNIT_ROOT_MIN_POINTS = 500  # ADF cannot tell AR(0.9) from a random walk on shorter windows
MIN_ESS = 30.0               # below this no test has both size and power (research §5.9)
COUPLING_MIN_R = 0.1         # smaller correlations are not worth reporting as coupling


# --------------------------------------------------------------------------------------------
# Divergence and degeneracy: decided on raw values, before any test


@dataclass(frozen=True)
class Divergence:
    nonfinite_in_window: int
    nonfinite_before_window: int
    first_nonfinite_step: float | None
    ends_nonfinite: bool
    tail_points: int
    tail_share_above: float
    threshold: float | None
    diverged: bool


def divergence(steps: np.ndarray, loss: np.ndarray, window_start_step: float) -> Divergence:
    """Non-finite values inside the window or at the end of the run, or explosive growth: at
    least 20 % of the window's last 5 % above median + 10 robust sigmas of the rest."""
    bad = ~np.isfinite(loss)
    in_window = steps >= window_start_step
    nonfinite_in = int((bad & in_window).sum())
    nonfinite_before = int((bad & ~in_window).sum())
    first_bad = float(steps[np.argmax(bad)]) if bad.any() else None
    ends_bad = bool(len(loss) and bad[-1])
    finite_window = loss[in_window & ~bad]
    tail_n = max(5, int(np.ceil(TAIL_FRACTION * len(finite_window))))
    share, threshold = 0.0, None
    if len(finite_window) >= 4 * tail_n:
        body, tail = finite_window[:-tail_n], finite_window[-tail_n:]
        sigma = robust_sigma(body)
        threshold = float(np.median(body) + EXPLOSION_MADS * sigma)
        share = float(np.mean(tail > threshold)) if sigma > 0 else 0.0
    explosive = share >= EXPLOSION_SHARE
    return Divergence(nonfinite_in, nonfinite_before, first_bad, ends_bad, tail_n, share, threshold,
                      diverged=bool(nonfinite_in or ends_bad or explosive))


@dataclass(frozen=True)
class Degeneracy:
    modal_value: float
    modal_share: float
    distinct_values: int
    inactive: bool
    collapsed: bool
    degenerate: bool
    kind: str | None  # "constant", "zero", "margin", "inactive", "collapsed"


def degeneracy(window_loss: np.ndarray, extras: dict[str, np.ndarray]) -> Degeneracy:
    """Flat for the wrong reason: one value holds >= 99 % of the window (constant, pinned at 0,
    pinned at the margin), no active pairs/triplets, or collapsed embeddings."""
    values, counts = np.unique(window_loss, return_counts=True)
    top = int(np.argmax(counts))
    modal, share = float(values[top]), float(counts[top] / len(window_loss))

    def finite_extra(name: str) -> np.ndarray | None:
        v = extras.get(name)
        if v is None:
            return None
        v = v[np.isfinite(v)]
        return v if len(v) else None

    active = finite_extra("active_fraction")
    inactive = active is not None and float(np.max(active)) == 0.0
    pos, neg = finite_extra("pos_dist"), finite_extra("neg_dist")
    collapsed = pos is not None and neg is not None and max(np.max(np.abs(pos)), np.max(np.abs(neg))) <= 1e-6
    kind = None
    if share >= MODAL_SHARE_DEGENERATE:
        margin = finite_extra("margin")
        if modal == 0.0:
            kind = "zero"
        elif margin is not None and np.isclose(modal, np.median(margin), rtol=1e-3, atol=1e-6):
            kind = "margin"
        else:
            kind = "constant"
    elif inactive:
        kind = "inactive"
    elif collapsed:
        kind = "collapsed"
    return Degeneracy(modal, share, int(len(values)), bool(inactive), bool(collapsed),
                      degenerate=kind is not None, kind=kind)


# --------------------------------------------------------------------------------------------
# Gating tests on the window


def batch_count(points: int, tau_int: float, minimum: int = MIN_BATCHES) -> int:
    """As many batches as keep each batch >= 2 τ_int long (so batch means are close to
    independent), between ``minimum`` and 50: more batches give the t-tests more degrees of
    freedom."""
    by_tau = int(points / (BATCH_TAUS * tau_int))
    return int(min(MAX_BATCHES, max(minimum, by_tau)))


def batch_means(x: np.ndarray, batches: int) -> np.ndarray:
    """``batches`` equal batch means, dropping the first few points if n is not a multiple."""
    size = len(x) // batches
    return block_means(x[len(x) - size * batches:], size)


@dataclass(frozen=True)
class Drift:
    total: float          # fitted change over the window, in loss units
    total_sigma: float    # the same in noise sigmas
    margin_sigma: float
    t: float
    p_value: float


def short_batch_inflation(points: int, batches: int, tau_int: float) -> float:
    """Factor on standard errors when batches are shorter than 2 τ_int (too little data to make
    them long enough): correlated batch means understate the variance by about that ratio."""
    return float(np.sqrt(max(1.0, BATCH_TAUS * tau_int * batches / points)))


def drift(window: np.ndarray, sigma: float, batches: int, inflation: float = 1.0) -> Drift:
    """Is the window's trend larger than a practical margin? One-sided minimum-effect t-test on
    the OLS slope of batch means: H0 |total drift| <= margin, df = B - 2. A huge n then cannot
    make a negligible slope fail the gate."""
    bm = batch_means(window, batches)
    x = np.arange(batches) - (batches - 1) / 2.0
    slope = float(x @ (bm - bm.mean()) / (x @ x))
    resid = bm - bm.mean() - slope * x
    se = float(np.sqrt(resid @ resid / (batches - 2) / (x @ x)))
    total, se_total = slope * batches, se * batches * inflation
    margin = DRIFT_MARGIN_SIGMA * sigma
    t = (abs(total) - margin) / se_total if se_total > 0 else (np.inf if abs(total) > margin else -np.inf)
    return Drift(total, total / sigma, DRIFT_MARGIN_SIGMA, float(t), stattests.student_t_sf(t, batches - 2))


@dataclass(frozen=True)
class Shift:
    delta: float          # after minus before (level: loss units; variance: log ratio)
    at_fraction: float    # where in the window, 0..1
    t: float
    p_value: float        # Bonferroni over candidate split points


def best_split(values: np.ndarray, margin: float, inflation: float = 1.0) -> Shift:
    """Largest two-segment mean change among split points with >= MIN_SEGMENT values a side:
    a minimum-effect t-test (|Δ| <= margin under H0) with a pooled within-segment variance,
    Bonferroni-adjusted over the candidates."""
    n = len(values)
    total = np.cumsum(values)
    total_sq = np.cumsum(values * values)
    ks = np.arange(MIN_SEGMENT, n - MIN_SEGMENT + 1)
    left_mean = total[ks - 1] / ks
    right_mean = (total[-1] - total[ks - 1]) / (n - ks)
    sse_left = total_sq[ks - 1] - ks * left_mean ** 2
    sse_right = (total_sq[-1] - total_sq[ks - 1]) - (n - ks) * right_mean ** 2
    s2 = np.maximum((sse_left + sse_right) / (n - 2), 1e-300)
    se = inflation * np.sqrt(s2 * (1.0 / ks + 1.0 / (n - ks)))
    delta = right_mean - left_mean
    t = (np.abs(delta) - margin) / se
    best = int(np.argmax(t))
    p = min(1.0, len(ks) * stattests.student_t_sf(float(t[best]), n - 2))
    return Shift(float(delta[best]), float(ks[best] / n), float(t[best]), p)


def level_shift(window: np.ndarray, sigma: float, batches: int, inflation: float = 1.0) -> Shift:
    """A step in the mean inside the window, larger than SHIFT_MARGIN_SIGMA noise sigmas."""
    return best_split(batch_means(window, batches), SHIFT_MARGIN_SIGMA * sigma, inflation)


@dataclass(frozen=True)
class Shape:
    """Which explains the window's batch means better: one step, or a smooth curve (a
    quadratic, which covers straight drifts and decelerating learning curves alike)."""

    step_rss: float
    curve_rss: float
    step_like: bool


def shape(window: np.ndarray, batches: int) -> Shape:
    bm = batch_means(window, batches)
    x = np.linspace(-1.0, 1.0, batches)
    curve_rss = float(np.sum((bm - np.polyval(np.polyfit(x, bm, 2), x)) ** 2))
    step_rss = min(float(np.sum((bm[:k] - bm[:k].mean()) ** 2) + np.sum((bm[k:] - bm[k:].mean()) ** 2))
                   for k in range(MIN_SEGMENT, batches - MIN_SEGMENT + 1))
    return Shape(step_rss, curve_rss, step_rss < STEP_LIKE_RATIO * curve_rss)


@dataclass(frozen=True)
class VarianceChange:
    ratio: float          # variance after / before the best split
    at_fraction: float
    ar_order: int
    t: float
    p_value: float


def variance_change(agg_window: np.ndarray) -> VarianceChange:
    """A step in the variance of AR-prewhitened residuals: log of the mean squared residual per
    batch, then the same split test as for the level. Prewhitening is what keeps this test
    honest on autocorrelated noise (raw Levene rejects AR(0.9) 78 % of the time at 5 %); sizing
    the batches by the persistence of the squared residuals keeps it honest under volatility
    clustering (GARCH)."""
    resid, order = ar_residuals(agg_window)
    resid = winsorize(resid)
    batches = batch_count(len(resid), integrated_autocorrelation_time(resid * resid), MIN_VARIANCE_BATCHES)
    sq = batch_means(resid * resid, batches)
    logs = np.log(np.maximum(sq, 1e-300))
    split = best_split(logs, VARIANCE_MARGIN_LOG)
    return VarianceChange(float(np.exp(split.delta)), split.at_fraction, order, split.t, split.p_value)


@dataclass(frozen=True)
class UnitRoot:
    adf: stattests.UnitRootResult
    kpss: stattests.UnitRootResult
    label: str            # stationary | unit_root | trend_or_break | undecided
    p_value: float        # KPSS p when ADF cannot reject a unit root, else 1


def unit_root(agg_window: np.ndarray, level: float = 0.05, min_points: int = UNIT_ROOT_MIN_POINTS) -> UnitRoot:
    """ADF (H0 unit root) and KPSS (H0 level-stationary) with an honest joint label. Only the
    'unit_root' case (ADF cannot reject, KPSS rejects) takes part in the gate: when ADF
    rejects, a KPSS rejection means trend, break or persistence, which the drift, shift and
    variance tests judge more reliably (the textbook four-way table mislabels decays)."""
    a, k = stattests.adf(agg_window), stattests.kpss_level(agg_window)
    adf_rejects, kpss_rejects = a.p_value < level, k.p_value < level
    if adf_rejects and not kpss_rejects:
        label = "stationary"
    elif kpss_rejects and not adf_rejects:
        label = "unit_root"
    elif adf_rejects and kpss_rejects:
        label = "trend_or_break"
    else:
        label = "undecided"
    gating = not adf_rejects and len(agg_window) >= min_points  # ADF is blind on short windows
    return UnitRoot(a, k, label, k.p_value if gating else 1.0)


@dataclass(frozen=True)
class Persistence:
    points: int
    tau_int: float
    effective_size: float
    enough: bool


def persistence(agg_window: np.ndarray) -> Persistence:
    """Effective sample size of the window's block means (n / τ_int, Geyer)."""
    tau = integrated_autocorrelation_time(agg_window)
    ess = len(agg_window) / tau
    return Persistence(len(agg_window), tau, ess, ess >= MIN_ESS)


# --------------------------------------------------------------------------------------------
# Loss / grad-norm coupling (reported, never gating)


@dataclass(frozen=True)
class Coupling:
    r: float
    ci_low: float
    ci_high: float
    points: int
    coupled: bool


def _prewhitened(x: np.ndarray) -> np.ndarray:
    t = np.arange(len(x), dtype=float)
    detrended = x - np.polyval(np.polyfit(t, x, 1), t)
    return ar_residuals(detrended)[0]


def coupling(loss: np.ndarray, grad_norm: np.ndarray, confidence: float = 0.95) -> Coupling | None:
    """Do loss swings go with grad-norm swings? Pearson r of linearly detrended, AR-prewhitened
    series (levels would correlate through any shared trend), with a delta-method interval from
    the Bartlett long-run variance of r's influence function, valid under autocorrelation.
    'Coupled' needs the interval to exclude 0 and |r| >= 0.1."""
    both = np.isfinite(loss) & np.isfinite(grad_norm)
    if both.sum() < 50:
        return None
    u, v = _prewhitened(loss[both]), _prewhitened(grad_norm[both])
    n = min(len(u), len(v))
    u, v = u[-n:], v[-n:]
    su, sv = u.std(), v.std()
    if su == 0 or sv == 0:
        return None
    u, v = (u - u.mean()) / su, (v - v.mean()) / sv
    r = float(np.mean(u * v))
    influence = u * v - 0.5 * r * (u * u + v * v)
    influence -= influence.mean()
    bandwidth = int(np.floor(4 * (n / 100.0) ** (2.0 / 9.0)))
    se = float(np.sqrt(bartlett_long_run_variance(influence, bandwidth) / n))
    z = stattests.normal_quantile(0.5 + confidence / 2)
    low, high = max(-1.0, r - z * se), min(1.0, r + z * se)
    coupled = (low > 0 or high < 0) and abs(r) >= COUPLING_MIN_R
    return Coupling(r, low, high, n, bool(coupled))


def sigma_of(prepared: PreparedSeries) -> float:
    """The noise scale that margins are expressed in: robust sigma of the raw window."""
    return robust_sigma(prepared.window_loss)
