"""The checks run on one run's evaluation window. Each returns a frozen result with the
numbers behind it; gating checks also carry a p-value for the Holm step-down in decide.py.

Location and variance tests work on B batch means of the winsorised window: batch means of
autocorrelated noise are close to independent when batches are long, which keeps the tests'
size honest without modelling the noise (the batch-means method of simulation output analysis).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import stattests
from .numerics import (MAD_TO_SIGMA, SortedWindow, ar_residuals, bartlett_long_run_variance, block_means, exact_median,
                       integrated_autocorrelation_time, mean, ols_slope, polynomial_residuals, winsorize)

MIN_BATCHES, MAX_BATCHES = 20, 50  # batch means per window for drift / shift / variance tests
MIN_VARIANCE_BATCHES = 10    # squared residuals under volatility clustering need longer batches
BATCH_TAUS = 2.0             # each batch spans at least this many autocorrelation times
MIN_SEGMENT = 3              # batches on each side of a candidate level or variance shift
DRIFT_MARGIN_SIGMA = 0.25    # drifts smaller than this (in noise sigmas) are practically flat
SHIFT_MARGIN_SIGMA = 0.10    # level shifts smaller than this are practically nothing
END_FRACTIONS = (0.01, 0.02, 0.04, 0.08)  # end segments (of the window) tested against the body
END_BODY_GAP = 0.16          # the body is the window less its last 16 %
END_MIN_POINTS = 5
END_MARGIN_SIGMA = 0.5       # end changes smaller than this are practically nothing
VARIANCE_MARGIN_LOG = 0.30   # variance changes under ~35 % are practically nothing
GROWTH_FACTOR = 10.0         # geometric growth: the loss (or its rise above its level) multiplies >= x10,
GROWTH_HALF_SHARE = 1 / 3    # ... each half of the stretch carrying >= 1/3 of the rise on a log scale,
GROWTH_P = 1e-3              # ... significantly (slope t-test on the logs)
GROWTH_MIN_POINTS = 8
TAIL_FRACTION = 0.05         # the window's level and noise for an end explosion: all but its last 5 %
EXCESS_SIGMAS = 2.0          # an end explosion stands more than 2 robust sigmas above that level
RECOVERED_MAX_RUN = 3        # non-finite steps in a row that a run can skip and recover from
RECOVERED_MAX_SHARE = 0.01   # ... and at most 3 of them or this share of the window (an fp16 scaler's skips)
RECOVERED_MAX_COUNT = 3
STEP_LIKE_RATIO = 0.95      # a step must explain the batch means clearly better than a curve
PINNED_RTOL = 2e-6           # ~16 float32 units in the last place: rounding jitter, not movement
PINNED_SHARE = 0.9           # a loss at one value (within PINNED_RTOL) this often is not learning
FELL_RTOL = 100 * PINNED_RTOL # a loss that started this far (relative) above its pinned value came down
FELL_START_SHARE = 0.1       # ... to it: judged on the first 10 % of the loss before the window
EASY_ALL = 0.99              # easy_fraction at or above this: every triplet meets the margin
COLLAPSE_OF_MARGIN = 0.02    # distances below 2 % of the margin: the embeddings collapsed
COLLAPSE_ABSOLUTE = 1e-6     # ... or below this when no margin is logged
UNIT_ROOT_MIN_POINTS = 500  # ADF cannot tell AR(0.9) from a random walk on shorter windows
MIN_ESS = 30.0               # below this no test has both size and power (research §5.9)
MOVE_MIN_ESS = 10.0          # a shape must leave a residual at least this effectively large ...
MOVE_MIN_NOISE = 8.0         # ... and move by at least this many residual sigmas to decide
COUPLING_MIN_R = 0.1         # smaller correlations are not worth reporting as coupling
COUPLING_WINSOR = 3.0        # prewhitened residuals clipped at 3 robust sigmas before correlating


# --------------------------------------------------------------------------------------------
# Divergence and degeneracy: decided on raw values, before any test


@dataclass(frozen=True)
class Divergence:
    nonfinite_in_window: int
    nonfinite_before_window: int
    first_nonfinite_step: float | None
    ends_nonfinite: bool
    recovered: bool          # every non-finite value was an isolated step the run recovered from
    growth: float | None     # the window's fastest growth: end-over-start factor of the fit (None: nothing to fit)
    doubling_steps: float | None
    growth_start_step: float | None
    growth_over: str | None  # "window": the loss itself; "end": its rise above the window's level at the end
    geometric: bool          # that growth is geometric (see geometric_growth)
    diverged: bool


def longest_run(mask: np.ndarray) -> int:
    """The longest stretch of consecutive True values."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)))


@dataclass(frozen=True)
class Growth:
    """A line through the logs of a stretch of loss values: how much and how fast it multiplies."""

    factor: float
    doubling_steps: float | None
    start_step: float
    over: str
    geometric: bool


def geometric_growth(steps: np.ndarray, values: np.ndarray, over: str) -> Growth:
    """How fast positive ``values`` multiply: a line through their logs (batch means, at most 50,
    so that noise averages out). Geometric growth, as exploding gradients make it: the line
    multiplies >= x10 end over start, significantly (slope t-test, p < GROWTH_P), and steadily:
    each half of the stretch, fitted on its own, carries >= 1/3 of the rise. A linear rise slows
    on a log scale (once it spans x10 its later half carries about a quarter of it); a step is
    flat on one side."""
    batches = min(len(values), MAX_BATCHES)
    logs, at = batch_means(np.log(values), batches), batch_means(steps, batches)
    slope = ols_slope(at, logs)
    halves = np.array([ols_slope(a, v) * (a[-1] - a[0])
                       for a, v in zip(np.array_split(at, 2), np.array_split(logs, 2))])
    steady = halves.sum() > 0 and halves.min() >= GROWTH_HALF_SHARE * halves.sum()
    factor = float(np.exp(slope * (steps[-1] - steps[0])))
    significant = slope_test(logs, 0.0)[2] < GROWTH_P
    return Growth(factor, float(np.log(2) / slope) if slope > 0 else None, float(steps[0]), over,
                  bool(factor >= GROWTH_FACTOR and steady and significant))


def end_stretch(values: np.ndarray) -> tuple[int, float] | None:
    """Where an explosion at the end would start: the index from which every value stands more
    than 2 robust sigmas above the level of the window less its last 5 % (its median), and that
    level. None when the window is too short to have a level apart from its end."""
    tail = max(END_MIN_POINTS, int(np.ceil(TAIL_FRACTION * len(values))))
    if len(values) < 4 * tail:
        return None
    body = values[:-tail]
    level = float(exact_median(body))
    sigma = max(MAD_TO_SIGMA * float(exact_median(np.abs(body - level))), PINNED_RTOL * abs(level))
    within = values - level <= EXCESS_SIGMAS * sigma
    after_last = len(within) - int(np.argmax(within[::-1]))   # one past the last value within (no index array)
    return (after_last if within[after_last - 1] else 0), level


def explosion(steps: np.ndarray, values: np.ndarray) -> Growth | None:
    """The window's fastest growth, geometric first: of the loss itself over the whole window
    (when it is positive), or of its rise above the window's level at the end (an explosion from
    a settled level). None when neither has GROWTH_MIN_POINTS values to fit."""
    candidates = []
    if len(values) >= GROWTH_MIN_POINTS and np.all(values > 0):
        candidates.append(geometric_growth(steps, values, "window"))
    end = end_stretch(values)
    if end is not None and len(values) - end[0] >= GROWTH_MIN_POINTS:
        start, level = end
        excess = values[start:] - level
        if np.isfinite(excess).all():   # the difference of two values near the float64 limit overflows
            candidates.append(geometric_growth(steps[start:], excess, "end"))
    return max(candidates, key=lambda g: (g.geometric, g.factor), default=None)


def divergence(steps: np.ndarray, loss: np.ndarray, window_start_step: float) -> Divergence:
    """Diverged: the run ends non-finite, the window holds non-finite values that are more than
    isolated skipped steps (runs of more than 3, or more than 3 and over 1 % of the window), or the
    loss grows geometrically in the window (explosion). A linear rise, however steep, is not
    divergence: the window tests judge it. Isolated recovered non-finite steps count the same
    inside and before the window."""
    bad = ~np.isfinite(loss)
    in_window = steps >= window_start_step
    if bad.any():
        nonfinite_in = int((bad & in_window).sum())
        nonfinite_before = int((bad & ~in_window).sum())
        first_bad = float(steps[np.argmax(bad)])
        ends_bad = bool(bad[-1])
        window_points = int(in_window.sum())
        recovered = (not ends_bad and longest_run(bad) <= RECOVERED_MAX_RUN
                     and nonfinite_in <= max(RECOVERED_MAX_COUNT, RECOVERED_MAX_SHARE * window_points))
        finite = in_window & ~bad
    else:   # every value finite, the usual case: nothing to count (five passes over the run saved)
        nonfinite_in, nonfinite_before, first_bad, ends_bad, recovered = 0, 0, None, False, True
        finite = in_window
    first = int(np.argmax(finite))
    # the window's finite points are a stretch to the end (the usual case): views, not copies
    growth = explosion(steps[first:], loss[first:]) if finite[first:].all() else explosion(steps[finite], loss[finite])
    fit = (None,) * 4 if growth is None else (growth.factor, growth.doubling_steps, growth.start_step, growth.over)
    geometric = growth is not None and growth.geometric
    return Divergence(nonfinite_in, nonfinite_before, first_bad, ends_bad, bool(recovered), *fit, geometric,
                      diverged=bool(ends_bad or (nonfinite_in and not recovered) or geometric))


@dataclass(frozen=True)
class Degeneracy:
    modal_value: float       # the window's median loss
    modal_share: float       # share of the window within float32 jitter (PINNED_RTOL) of it
    distinct_values: int
    inactive: bool
    collapsed: bool
    easy_fraction: float | None   # median easy-triplet fraction in the window, when logged
    fell_to_level: bool | None    # pinned windows only: the loss came down to modal_value first (see fell_to)
    degenerate: bool
    kind: str | None  # "constant", "zero", "margin", "easy", "inactive", "collapsed"


def finite_values(extras: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    v = extras.get(name)
    if v is None:
        return None
    v = v[np.isfinite(v)]
    return v if len(v) else None


def fell_to(level: float, before: np.ndarray) -> bool:
    """Did the loss come down to ``level`` before the window (a converged run, however
    noiseless: full-batch, L-BFGS) rather than sit there from the start (a dead network)? The
    first 10 % of the finite loss before the window lies above it (median) by more than a hundred
    times the rounding jitter, and at most 10 % of that loss lies as far below it (a run that
    learned and then died at a higher value did not come down to it)."""
    finite = before[np.isfinite(before)]
    if len(finite) == 0:
        return False
    band = FELL_RTOL * abs(level)
    start = finite[: max(1, int(np.ceil(FELL_START_SHARE * len(finite))))]
    return bool(exact_median(start) - level > band and np.mean(level - finite > band) <= 1 - PINNED_SHARE)


def degeneracy(window: SortedWindow, level: float, extras: dict[str, np.ndarray], before: np.ndarray) -> Degeneracy:
    """Flat for the wrong reason: the loss sits at one value (within float32 rounding jitter,
    PINNED_RTOL relative) in >= 90 % of the window — pinned at 0, pinned at the margin (0 with
    every triplet easy is the margin being too easy), or constant where it never came down to that
    value (``before``: the loss before the window; a loss that fell and then stopped converged,
    unless the window holds one exact value) —, no active pairs/triplets, or collapsed embeddings
    (positive and negative distances below 2 % of the margin). ``window`` holds the window's loss
    values (sorted once, for the share and the distinct count); ``level`` is their median."""
    share = window.share_within(level, PINNED_RTOL * abs(level))
    pinned = share >= PINNED_SHARE
    fell = fell_to(level, before) if pinned else None
    distinct = window.distinct_count()
    easy = finite_values(extras, "easy_fraction")
    easy_median = None if easy is None else float(exact_median(easy))
    all_easy = easy_median is not None and easy_median >= EASY_ALL
    active = finite_values(extras, "active_fraction")
    inactive = active is not None and float(np.max(active)) == 0.0
    pos, neg, margin = (finite_values(extras, k) for k in ("pos_dist", "neg_dist", "margin"))
    collapsed = False
    if pos is not None and neg is not None:
        distance = max(float(exact_median(np.abs(pos))), float(exact_median(np.abs(neg))))
        reference = float(exact_median(margin)) if margin is not None else 0.0
        limit = COLLAPSE_OF_MARGIN * reference if reference > 0 else COLLAPSE_ABSOLUTE
        collapsed = distance <= limit
    kind = None
    if pinned and collapsed:
        kind = "collapsed"   # the more specific reason: a pinned loss because the embeddings collapsed
    elif pinned and level == 0.0:
        kind = "easy" if all_easy else "zero"
    elif pinned and margin is not None and np.isclose(level, exact_median(margin), rtol=1e-3, atol=0.0):
        kind = "margin"
    elif pinned and not (fell and distinct > 1):   # one exact value leaves the window tests no noise to judge by
        kind = "constant"
    elif inactive:
        kind = "easy" if all_easy else "inactive"
    elif collapsed:
        kind = "collapsed"
    return Degeneracy(level, share, distinct, bool(inactive), bool(collapsed), easy_median, fell,
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


def slope_test(values: np.ndarray, margin: float, inflation: float = 1.0) -> tuple[float, float, float]:
    """Minimum-effect t-test on the OLS slope of (nearly independent) values: H0 |total change
    over the values| <= margin, df = len - 2. Returns (total change, t, one-sided p)."""
    count = len(values)
    x = np.arange(count) - (count - 1) / 2.0
    level = mean(values)
    slope = float(x @ (values - level) / (x @ x))
    resid = values - level - slope * x
    se = float(np.sqrt(resid @ resid / (count - 2) / (x @ x)))
    total, se_total = slope * count, se * count * inflation
    t = (abs(total) - margin) / se_total if se_total > 0 else (np.inf if abs(total) > margin else -np.inf)
    return total, float(t), stattests.student_t_sf(t, count - 2)


def drift(window: np.ndarray, sigma: float, batches: int, inflation: float = 1.0, tolerance: float = 0.0) -> Drift:
    """Is the window's trend larger than a practical margin? The slope test on batch means. A
    huge n then cannot make a negligible slope fail the gate. The margin is DRIFT_MARGIN_SIGMA
    noise sigmas or the user's tolerance, whichever is larger."""
    margin = max(DRIFT_MARGIN_SIGMA * sigma, tolerance)
    total, t, p = slope_test(batch_means(window, batches), margin, inflation)
    return Drift(total, total / sigma, margin / sigma, t, p)


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


def level_shift(window: np.ndarray, sigma: float, batches: int, inflation: float = 1.0,
                tolerance: float = 0.0) -> Shift:
    """A step in the mean inside the window, larger than SHIFT_MARGIN_SIGMA noise sigmas (or the
    user's tolerance)."""
    return best_split(batch_means(window, batches), max(SHIFT_MARGIN_SIGMA * sigma, tolerance), inflation)


@dataclass(frozen=True)
class EndChange:
    delta: float          # mean of the end minus mean of the body (standardised units)
    points: int           # length of the end segment that showed it (block means)
    t: float
    p_value: float        # Bonferroni over the end lengths tried, two-sided


def end_change(window: np.ndarray, sigma: float, tolerance: float = 0.0) -> EndChange:
    """Does the end of the run differ from the rest of the window? The last 1, 2, 4 and 8 % of
    the window (at least 5 points) against the body (the first 84 %), in a minimum-effect test
    (|delta| <= END_MARGIN_SIGMA sigmas or the tolerance under H0). Persistence and variance are
    estimated on the body alone, so a large late change cannot hide itself by inflating them (as
    it does in the batch tests); the end mean's variance is sigma^2 min(tau, L)/L."""
    n = len(window)
    body = window[: n - int(np.ceil(END_BODY_GAP * n))]
    lengths = sorted({max(END_MIN_POINTS, int(round(f * n))) for f in END_FRACTIONS})
    if len(body) < 4 * END_MIN_POINTS:
        return EndChange(0.0, 0, -np.inf, 1.0)
    tau = integrated_autocorrelation_time(body)
    variance = float(np.var(body))
    margin = max(END_MARGIN_SIGMA * sigma, tolerance)
    best, body_mean = (-np.inf, 0.0, 0), mean(body)
    for length in lengths:
        delta = float(mean(window[-length:]) - body_mean)
        se = np.sqrt(variance * (min(tau, length) / length + tau / len(body)))
        t = (abs(delta) - margin) / se if se > 0 else (np.inf if abs(delta) > margin else -np.inf)
        if t > best[0]:
            best = (float(t), delta, length)
    t, delta, length = best
    p = min(1.0, 2 * len(lengths) * stattests.normal_sf(t))
    return EndChange(delta, length, t, p)


@dataclass(frozen=True)
class Shape:
    """Which explains the window's batch means better: one step, or a smooth curve (a
    quadratic, which covers straight drifts and decelerating learning curves alike)."""

    step_rss: float
    curve_rss: float
    step_like: bool


def two_segment_rss(values: np.ndarray) -> np.ndarray:
    """Residual sum of squares of a two-mean fit for every split with >= MIN_SEGMENT values a
    side, from cumulative sums of the centred values (one pass instead of one per split)."""
    n = len(values)
    centred = values - mean(values)
    total, total_sq = np.cumsum(centred), float(np.sum(centred * centred))
    ks = np.arange(MIN_SEGMENT, n - MIN_SEGMENT + 1)
    left = total[ks - 1]
    return total_sq - left * left / ks - (total[-1] - left) ** 2 / (n - ks)


def shape(window: np.ndarray, batches: int) -> Shape:
    bm = batch_means(window, batches)
    curve = polynomial_residuals(bm, 2)
    curve_rss = float(curve @ curve)
    step_rss = float(np.min(two_segment_rss(bm)))
    return Shape(step_rss, curve_rss, step_rss < STEP_LIKE_RATIO * curve_rss)


@dataclass(frozen=True)
class VarianceChange:
    ratio: float          # variance after / before the best split
    at_fraction: float
    ar_order: int
    t: float
    p_value: float        # the better of the two versions, Bonferroni x2
    on: str               # "residuals" (AR-prewhitened) or "series" (the detrended series itself)
    gradual: bool = False # a steady growth or decline over the window rather than a step


def distinct_count(values: np.ndarray) -> int:
    """How many different values (one sort)."""
    ordered = np.sort(values)
    return int(1 + np.count_nonzero(np.diff(ordered))) if len(ordered) else 0


def quantisation_floor(window_loss: np.ndarray, scale: float, block: int) -> float:
    """Variance that rounding of the logged values adds to a block mean, in standardised units:
    q^2/12 per value for a quantum q (the smallest gap between distinct values, when values
    repeat), divided by the block length. Keeps a log of variances finite when a quantised
    loss sits on one value for a whole batch. Skipped (no sort) when the window's values barely
    repeat, as for any float loss logged at full precision."""
    sample = window_loss[-min(len(window_loss), 1000):]
    if distinct_count(sample) > len(sample) // 2:
        return 0.0
    values = np.unique(window_loss)
    if len(values) < 2 or len(values) > len(window_loss) // 2:
        return 0.0
    quantum = float(np.min(np.diff(values))) / scale
    return quantum * quantum / 12.0 / block


def variance_change(agg_window: np.ndarray, within: np.ndarray | None = None, floor: float = 0.0) -> VarianceChange:
    """A step in the variance, in two versions whose better p-value counts twice (Bonferroni):

    - on AR-prewhitened residuals: log of the mean squared residual per batch, then the same
      split test as for the level. Prewhitening keeps this honest on autocorrelated noise (raw
      Levene rejects AR(0.9) 78 % of the time at 5 %), but an AR model also absorbs a growing
      oscillation, so
    - on the series itself: the variance of the points inside each batch around the batch's own
      mean (block variances included, so an oscillation faster than a block counts), with
      batches long against the persistence of the series and of its squares.

    Batch sizes follow the persistence of the squared values, which keeps both honest under
    volatility clustering (GARCH); ``floor`` (quantisation) is added to every batch variance."""
    resid, order = ar_residuals(agg_window)
    resid = winsorize(resid)
    batches = batch_count(len(resid), integrated_autocorrelation_time(resid * resid), MIN_VARIANCE_BATCHES)
    logs = np.log(batch_means(resid * resid, batches) + floor + 1e-300)
    on_residuals = best_split(logs, VARIANCE_MARGIN_LOG)
    n = len(agg_window)
    detrended = polynomial_residuals(agg_window, 2)
    squares = detrended * detrended
    squares = polynomial_residuals(squares, 1)  # a growing spread is not persistence
    tau = max(integrated_autocorrelation_time(detrended), integrated_autocorrelation_time(squares))
    batches = batch_count(n, tau, MIN_VARIANCE_BATCHES)
    size = n // batches
    grid = agg_window[n - size * batches:].reshape(batches, size)
    spread = grid.var(axis=1)
    if within is not None and len(within) == n:
        spread = spread + within[n - size * batches:].reshape(batches, size).mean(axis=1)
    logs = np.log(spread + floor + 1e-300)
    split = best_split(logs, VARIANCE_MARGIN_LOG)
    total, t, p = slope_test(logs, VARIANCE_MARGIN_LOG)
    gradual = p < split.p_value
    on_series = Shift(total, 1.0, t, p) if gradual else split
    on_series = replace(on_series, p_value=min(1.0, 2 * on_series.p_value))  # split or gradual growth
    if on_residuals.p_value <= on_series.p_value:
        best, on, gradual = on_residuals, "residuals", False
    else:
        best, on = on_series, "series"
    return VarianceChange(float(np.exp(best.delta)), best.at_fraction, order, best.t,
                          min(1.0, 2 * best.p_value), on, bool(gradual))


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


def best_step_fit(x: np.ndarray) -> tuple[int, np.ndarray]:
    """The least-squares single step (>= MIN_SEGMENT points a side): its position and the
    two-level fit."""
    n = len(x)
    csum = np.cumsum(x)
    ks = np.arange(MIN_SEGMENT, n - MIN_SEGMENT + 1)
    left, right = csum[ks - 1] / ks, (csum[-1] - csum[ks - 1]) / (n - ks)
    k = int(ks[np.argmax(ks * (n - ks) * (right - left) ** 2)])
    return k, np.where(np.arange(n) < k, mean(x[:k]), mean(x[k:]))


@dataclass(frozen=True)
class Move:
    """A smooth or step-shaped move that explains a persistent (or short) window."""

    shape: str             # "rise", "fall", "swing", "step"
    size: float            # signed: end minus start of the fitted shape (swing: peak minus ends)
    size_noise: float      # |size| in residual noise sigmas
    residual_ess: float    # effective size of what the shape leaves
    at_fraction: float     # where a step is, or the swing's extreme, 0..1
    p_value: float
    decided: bool          # significant, many times the noise, and the residual is trustworthy


def persistent_move(window: np.ndarray, alpha: float, tolerance: float = 0.0) -> Move:
    """When a window is too persistent (or too short) for the batch tests, ask whether one
    simple shape (a line, a parabola, or one step) explains it, leaving a residual that is
    nearly free of persistence (effective size >= MOVE_MIN_ESS) and many times smaller than the
    move (>= MOVE_MIN_NOISE residual sigmas). Its significance is a Wald test whose variance is
    the residual's long-run variance (sigma^2 tau), Bonferroni over step positions. Stationary
    persistent noise leaves persistent residuals, so it stays undecided; a real move does not."""
    n = len(window)
    centred = window - mean(window)
    rss0 = float(centred @ centred)
    k, step_fit = best_step_fit(window)
    candidates = {  # residual, parameters beyond the mean, Bonferroni factor
        "line": (polynomial_residuals(window, 1), 1, 1), "parabola": (polynomial_residuals(window, 2), 2, 1),
        "step": (window - step_fit, 1, n - 2 * MIN_SEGMENT + 1)}
    best_name = min(candidates, key=lambda c: float(candidates[c][0] @ candidates[c][0]) * (1 + 0.05 * candidates[c][1]))
    resid, df, factor = candidates[best_name]
    tau = integrated_autocorrelation_time(resid)
    long_run = float(resid @ resid) / max(1, n - df - 1) * tau
    statistic = (rss0 - float(resid @ resid)) / long_run if long_run > 0 else np.inf
    p = min(1.0, factor * stattests.chi2_sf(statistic, df))
    fitted = window - resid
    if best_name == "step":
        shape_, size, at = "step", float(step_fit[-1] - step_fit[0]), k / n
    elif best_name == "line" or abs(fitted[-1] - fitted[0]) >= 0.5 * float(np.ptp(fitted)):
        size = float(fitted[-1] - fitted[0])
        shape_, at = ("rise" if size > 0 else "fall"), 1.0
    else:
        extreme = int(np.argmax(np.abs(fitted - 0.5 * (fitted[0] + fitted[-1]))))
        shape_, size, at = "swing", float(fitted[extreme] - 0.5 * (fitted[0] + fitted[-1])), extreme / n
    noise = float(np.std(resid))
    size_noise = abs(size) / noise if noise > 0 else np.inf
    ess = n / tau
    decided = p < alpha and size_noise >= MOVE_MIN_NOISE and ess >= MOVE_MIN_ESS and abs(size) > tolerance
    return Move(shape_, size, float(size_noise), float(ess), float(at), float(p), bool(decided))


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
    """Residuals of x after a line, its best single step (a shared lr decay moves both series
    at once) and an AR fit, winsorised: a shared transient must not pass for coupling."""
    t = np.arange(len(x), dtype=float) - (len(x) - 1) / 2.0
    detrended = x - mean(x) - ols_slope(t, x) * t          # the least-squares line, in closed form
    detrended = detrended - best_step_fit(detrended)[1]
    return winsorize(ar_residuals(detrended)[0], COUPLING_WINSOR)


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
    u, v = (u - mean(u)) / su, (v - mean(v)) / sv
    r = float(mean(u * v))
    influence = u * v - 0.5 * r * (u * u + v * v)
    influence -= mean(influence)
    bandwidth = int(np.floor(4 * (n / 100.0) ** (2.0 / 9.0)))
    se = float(np.sqrt(bartlett_long_run_variance(influence, bandwidth) / n))
    z = stattests.normal_quantile(0.5 + confidence / 2)
    low, high = max(-1.0, r - z * se), min(1.0, r + z * se)
    coupled = (low > 0 or high < 0) and abs(r) >= COUPLING_MIN_R
    return Coupling(r, low, high, n, bool(coupled))

