"""Numeric building blocks on plain float arrays: aggregation, robust scale, persistence,
nested least squares, burn-in. Pure numpy; every function is O(n) or O(n·k²) with small k."""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ..cores import usable_cores

MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal sample -> its sigma
# sorted_copy sorts a long array's halves on two threads where the process may use two cores
# (set to 1 in --jobs workers, which share the cores already)
SORT_THREADS = min(2, usable_cores() or 1)
HALVES_SORT_MIN = 1 << 18   # shorter arrays sort in a few ms: a second thread would not pay for itself


def mean(x: np.ndarray) -> np.floating:
    """x.mean() of a 1-D float64 array, bit for bit (the same pairwise sum, divided by the
    count), without numpy's any-axis wrapper: under half its time on the windows judged here,
    where it is called dozens of times per run."""
    return np.add.reduce(x) / len(x)


def kept(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``x[keep]``, or ``x`` itself when ``keep`` keeps every value: the same values in the same
    order, without copying a long run (at 3M steps a copy of the loss took 15-60 ms, most of it
    the first touch of fresh memory). Read the result, never write into it."""
    return x if keep.all() else x[keep]


def block_means(x: np.ndarray, size: int) -> np.ndarray:
    """Means of non-overlapping blocks of ``size`` points.

    The *end* of the series is kept whole (the few leftover points are dropped from the start),
    because the tail is what gets judged.
    """
    count = len(x) // size
    return np.add.reduce(x[len(x) - count * size:].reshape(count, size), axis=1) / size   # .mean(axis=1), bit for bit


def block_variances(x: np.ndarray, size: int) -> np.ndarray:
    """Variance of the points inside each non-overlapping block of ``size`` (aligned to the end,
    like block_means): what block means hide, e.g. an oscillation faster than a block."""
    count = len(x) // size
    if size == 1:
        return np.zeros(count)
    return x[len(x) - count * size:].reshape(count, size).var(axis=1)


def power_of_two_near(spread: float) -> float:
    """A power of two near ``spread`` (1 when it is 0 or not finite): dividing by it is exact
    and brings any finite magnitude near 1."""
    if not (spread > 0 and np.isfinite(spread)):
        return 1.0
    return float(2.0 ** min(1023.0, np.round(np.log2(spread))))   # 2**1024 is not a float


HUGE = 2.0 ** 1000   # beyond this, sums and differences of two values can overflow


SELECT_MIN_POINTS = 50_000   # below this np.median's own partition is as fast
SELECT_SAMPLE = 4096          # evenly strided values that bracket the middle of a long array


def exact_median(x: np.ndarray) -> np.floating:
    """np.median(x), bit for bit, with less work on a 1-D float array. A short one is partitioned
    as np.median does it, without its any-axis wrapping (a fifth of its time at 1,000 points). On
    a long one a strided sample brackets the middle order statistics, one pass counts the values
    below and above the bracket, and only the values inside it are partitioned (a third of its
    time); whenever the bracket misses the middle (or x holds NaN, which no comparison counts)
    np.median decides."""
    if x.ndim != 1 or x.dtype != np.float64 or len(x) < 2:
        return np.median(x)
    if len(x) < SELECT_MIN_POINTS:
        return _partitioned_median(x)
    n = len(x)
    middle = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
    sample = np.sort(x[::n // SELECT_SAMPLE])
    centre, reach = len(sample) // 2, 3 * int(np.sqrt(len(sample))) + 2
    low, high = sample[max(centre - reach, 0)], sample[min(centre + reach, len(sample) - 1)]
    below = np.count_nonzero(x < low)
    inside = x[(x >= low) & (x <= high)]
    ranks = [k - below for k in middle]
    if (ranks[0] < 0 or ranks[-1] >= len(inside)
            or below + len(inside) + np.count_nonzero(x > high) != n):
        return np.median(x)
    return np.mean(np.partition(inside, ranks)[ranks])


def _partitioned_median(x: np.ndarray) -> np.floating:
    """np.median's own steps on a 1-D float64 array of two or more values: partition at the
    middle and at the end (where a NaN would sort), the NaN if there is one, else the mean of
    the middle value or two, as np.median takes it (its mean turns a lone -0.0 into 0.0)."""
    half = len(x) // 2
    low = half - 1 if len(x) % 2 == 0 else half
    part = np.partition(x, [low, half, -1] if low < half else [half, -1])
    if np.isnan(part[-1]):
        return part[-1]
    return mean(part[low:half + 1])


def robust_sigma(x: np.ndarray, center: float | None = None) -> float:
    """Spread of ``x`` that one outlier or a few spikes cannot inflate: 1.4826·MAD, falling
    back to sqrt(pi/2) times the mean absolute deviation (both equal sigma for normal data)
    when more than half the values are tied; no squares, and near the float limit (where a
    median, averaging two values, overflows) computed on halved values: finite for any finite x.
    ``center``, when the caller already has x's median, saves computing it again."""
    med = exact_median(x) if center is None else center
    deviation = np.abs(x - med)
    mad = exact_median(deviation)
    sigma = float(MAD_TO_SIGMA * mad) if mad > 0 else float(np.sqrt(np.pi / 2) * np.mean(deviation))
    if not np.isfinite(sigma) and len(x) and np.isfinite(x).all():
        return 2.0 * robust_sigma(x / 2.0)
    return sigma


def median(x: np.ndarray) -> float:
    """np.median, which averages the two middle values, without overflowing near the float limit."""
    value = float(exact_median(x))
    if not np.isfinite(value) and len(x) and np.isfinite(x).all():
        return 2.0 * float(exact_median(x / 2.0))
    return value


def _middle_ranks(n: int) -> list[int]:
    """The order statistics np.median averages: the middle one, or the middle two."""
    return [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]


def _first_passing(low: int, high: int, passed: Callable[[int], bool]) -> int:
    """The first index of [low, high) where ``passed`` holds (``high`` when none), for a test that
    fails and then holds as the index grows: bisection."""
    while low < high:
        middle = (low + high) // 2
        if passed(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _kth_of_two(first: Callable[[int], float], first_count: int, second: Callable[[int], float],
                second_count: int, k: int) -> float:
    """The k-th smallest (from 0) of two non-decreasing sequences together, each read through
    an index -> value function, in O(log n) reads: the k + 1 smallest are the first i of one and
    the first k + 1 - i of the other, for the i found by bisection."""
    low, high = max(0, k + 1 - second_count), min(k + 1, first_count)
    while low < high:
        i = (low + high) // 2
        if first(i) < second(k - i):   # the (i+1)-th of the first precedes the last taken from the second
            low = i + 1
        else:
            high = i
    taken = [first(low - 1)] if low > 0 else []
    return max(taken + ([second(k - low)] if k + 1 - low > 0 else []))


def sorted_copy(x: np.ndarray) -> np.ndarray:
    """np.sort(x) of a 1-D float64 array. A long one is sorted in halves on SORT_THREADS threads
    (numpy's sort releases the GIL), then merged by the stable sort, which finds the two sorted
    runs and merges them in one pass: at 1.5M points 62-65 ms against 84-100 ms for one sort
    on this 2-core machine. The same values in the same order (only a -0.0 and a 0.0 may trade
    places, as np.sort does not order them either)."""
    if SORT_THREADS < 2 or len(x) < HALVES_SORT_MIN:
        return np.sort(x)
    ordered = x.copy()
    half = len(ordered) // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(np.ndarray.sort, (ordered[:half], ordered[half:])))
    ordered.sort(kind="stable")
    return ordered


class SortedWindow:
    """A finite 1-D float64 array ``x`` sorted once, and the statistics the window's checks take
    of it read from the sorted values instead of selections over the whole array: each method
    gives, bit for bit, what the function it names gives on ``x`` (the same order statistics,
    averaged alike). ``mapped`` does the same for any non-decreasing map of the values (the
    standardised window): such a map keeps every order statistic in its place. The median
    absolute deviation is read in O(log n): the deviations below the centre, read from it
    outward, and those above it are two sorted sequences. At 1.5M points the sort (which the
    distinct count needs anyway) replaces four selections and two arrays of deviations."""

    def __init__(self, x: np.ndarray, ordered: np.ndarray | None = None,
                 at: Callable[[float], float] | None = None):
        self.x = x
        self.ordered = sorted_copy(x) if ordered is None else ordered
        self.at = at

    def mapped(self, at: Callable[[float], float], x: np.ndarray) -> SortedWindow:
        """The window of ``x``, which is ``at`` applied to each value of this one (non-decreasing)."""
        return SortedWindow(x, self.ordered, at)

    def value(self, i: int) -> float:
        v = self.ordered.item(i)
        return v if self.at is None else self.at(v)

    def _first_at_least(self, centre: float) -> int:
        """How many values lie below ``centre``: the index of the first at or above it."""
        return _first_passing(0, len(self.ordered), lambda i: self.value(i) >= centre)

    def exact_median(self) -> np.floating:
        """exact_median(x)."""
        ranks = _middle_ranks(len(self.ordered))
        if self.at is None:
            return mean(self.ordered[ranks[0]:ranks[-1] + 1])
        return mean(np.array([self.value(k) for k in ranks]))

    def median_deviation(self, centre: float) -> np.floating:
        """exact_median(np.abs(x - centre)), x holding no NaN."""
        n, value = len(self.ordered), self.value
        split = self._first_at_least(centre)

        def below(i: int) -> float:   # the deviations below the centre, read outward from it
            return abs(value(split - 1 - i) - centre)

        def above(j: int) -> float:
            return abs(value(split + j) - centre)

        return mean(np.array([_kth_of_two(below, split, above, n - split, k) for k in _middle_ranks(n)]))

    def median(self) -> float:
        """median(x)."""
        value = float(self.exact_median())
        return value if np.isfinite(value) else median(self.x)

    def robust_sigma(self, center: float | None = None) -> float:
        """robust_sigma(x, center)."""
        mad = self.median_deviation(self.exact_median() if center is None else center)
        sigma = float(MAD_TO_SIGMA * mad) if mad > 0 else np.nan
        # ties (the mean deviation) or overflow near the float limit: on the values themselves
        return sigma if np.isfinite(sigma) else robust_sigma(self.x, center)

    def winsor_bounds(self, k: float = 5.0) -> tuple[float, float] | None:
        """winsor_bounds(x, k)."""
        med = float(self.exact_median())
        return _bounds_around(med, self.robust_sigma(med), k)

    def distinct_count(self) -> int:
        """How many different values x holds (as np.diff of the sorted values counts them)."""
        ordered = self.ordered
        return int(1 + np.count_nonzero(ordered[1:] != ordered[:-1])) if len(ordered) else 0

    def share_within(self, centre: float, tolerance: float) -> float:
        """float(np.mean(np.abs(x - centre) <= tolerance)), x holding no NaN: the values within
        are one stretch of the sorted values, found by bisection on each side of the centre."""
        n, value = len(self.ordered), self.value
        split = self._first_at_least(centre)
        start = _first_passing(0, split, lambda i: abs(value(i) - centre) <= tolerance)
        end = _first_passing(split, n, lambda i: abs(value(i) - centre) > tolerance)
        return (end - start) / n


def winsor_bounds(x: np.ndarray, k: float = 5.0) -> tuple[float, float] | None:
    """Median ± k robust sigmas of ``x``: beyond them a value is an isolated spike (a bad batch)
    that could masquerade as a level or variance change. None when the robust sigma is 0."""
    med = float(exact_median(x))
    return _bounds_around(med, robust_sigma(x, med), k)


def _bounds_around(med: float, sigma: float, k: float) -> tuple[float, float] | None:
    return None if sigma == 0 else (med - k * sigma, med + k * sigma)


def winsorize(x: np.ndarray, k: float = 5.0) -> np.ndarray:
    """``x`` clipped to its winsor_bounds, as a new array. Normal data is untouched (P(|z|>5) ≈ 6e-7)."""
    bounds = winsor_bounds(x, k)
    return x.copy() if bounds is None else np.clip(x, *bounds)


def clip_in_place(x: np.ndarray, bounds: tuple[float, float] | None) -> None:
    """np.clip(x, *bounds) written into ``x`` itself (winsorize's values, given its bounds), and
    only when a value reaches a bound (np.clip gives back a value strictly inside them as it is):
    no new array for a long window. None: nothing to clip."""
    if bounds is not None and not (np.min(x) > bounds[0] and np.max(x) < bounds[1]):
        np.clip(x, *bounds, out=x)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags 0..max_lag via FFT (biased estimator, as in Geyer 1992)."""
    n = len(x)
    y = x - mean(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(y, size)
    acov = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1] / n
    if acov[0] <= 0:
        return np.zeros(max_lag + 1)
    return acov / acov[0]


DIRECT_LAGS = 16   # autocorrelations up to this lag one dot product at a time, beyond it all at once by FFT


def integrated_autocorrelation_time(x: np.ndarray) -> float:
    """τ_int by Geyer's initial positive sequence: sum autocorrelation pairs while they stay
    positive. τ_int = 1 for white noise, (1+φ)/(1-φ) for AR(1); effective size = n / τ_int."""
    n = len(x)
    y = x - mean(x)
    energy = float(y @ y)
    if not energy > 0:   # constant (or not finite): nothing persists
        return 1.0
    rho = _autocorrelations(x, y, energy, min(n - 1, max(2, n // 2)))
    total = 0.0
    for even, odd in zip(rho, rho):   # consecutive pairs; an unpaired last lag is left out
        pair = even + odd
        if pair <= 0:
            break
        total += pair
    return max(1.0, 2.0 * total - 1.0)


def _autocorrelations(x: np.ndarray, y: np.ndarray, energy: float, max_lag: int):
    """ρ_0 .. ρ_max_lag of x (``y`` = x centred, ``energy`` = y·y), as Geyer's sum asks for them:
    a dot product each up to DIRECT_LAGS, where the sum of a series with little persistence
    stops (a quarter of the time of the FFT), then the rest from one FFT."""
    n = len(y)
    for k in range(min(max_lag, DIRECT_LAGS) + 1):
        yield float(y[k:] @ y[:n - k]) / energy
    if max_lag > DIRECT_LAGS:
        yield from autocorrelation(x, max_lag)[DIRECT_LAGS + 1:].tolist()


@functools.lru_cache(maxsize=16)
def _orthonormal_polynomials(n: int, degree: int) -> np.ndarray:
    """An orthonormal basis (n x degree+1) of the polynomials up to ``degree`` sampled at n
    evenly spaced points: the Q of their Vandermonde matrix. Windows of one sweep share their
    length, so the basis is made once and kept (read-only)."""
    basis = np.linalg.qr(np.vander(np.linspace(-1.0, 1.0, n), degree + 1))[0]
    basis.flags.writeable = False
    return basis


def polynomial_residuals(y: np.ndarray, degree: int) -> np.ndarray:
    """y minus its least-squares polynomial of ``degree`` in the position (evenly spaced): the
    residual of projecting y on an orthonormal basis of those polynomials, two matrix-vector
    products instead of a fresh SVD solve per call (np.polyfit), the same fit to rounding."""
    basis = _orthonormal_polynomials(len(y), degree)
    return y - basis @ (y @ basis)


def ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x (0 when x does not vary)."""
    centred = x - mean(x)
    denom = float(centred @ centred)
    return float(centred @ (y - mean(y)) / denom) if denom > 0 else 0.0


# The normal equations give each nested fit's residual sum of squares to about machine precision over
# this share: the part of each column (and of y) that the columns before it leave unexplained, as a
# share of its squared norm. A fit's coefficients lose about machine precision over the smallest
# share (the normal equations square the condition number): fits whose coefficients are used ask for
# FIT_MIN_NEW, which keeps them within about 1e-12.
NORMAL_EQUATIONS_MIN_NEW = 1e-8
FIT_MIN_NEW = 1e-4


def nested_rss(y: np.ndarray, columns) -> np.ndarray:
    """Residual sums of squares of y on the first k of ``columns`` (1-D arrays as long as y, or
    the columns of a 2-D array given as its transpose), for k = 1..K (n > K rows), from the
    triangular factor R of [columns | y]: its last column holds Qᵀy and its corner the full fit's
    residual norm. Column order defines the nesting, so lag-order searches cost one factorisation
    instead of one fit per candidate order. R comes from the normal equations where they hold
    (``normal_equations_factor``), else from a Householder QR."""
    augmented = stacked(columns, y)
    r = normal_equations_factor(augmented)
    if r is None:
        r = np.linalg.qr(augmented, mode="r")
    qty = r[:-1, -1]
    tail = np.cumsum((qty * qty)[::-1])[::-1]  # tail[k] = sum_{j>=k} qty_j^2
    return r[-1, -1] ** 2 + np.append(tail[1:], 0.0)


def stacked(columns, y: np.ndarray) -> np.ndarray:
    """[columns | y] as one Fortran-ordered matrix (the layout LAPACK factorises without a copy)."""
    augmented = np.empty((len(y), len(columns) + 1), order="F")
    for k, column in enumerate(columns):
        augmented[:, k] = column
    augmented[:, -1] = y
    return augmented


def normal_equations_factor(a: np.ndarray, min_new: float = NORMAL_EQUATIONS_MIN_NEW) -> np.ndarray | None:
    """The upper triangular R with RᵀR = aᵀa, by Cholesky: a fifth of the time of a Householder
    QR on the tall, narrow matrices of lag fits, and as accurate wherever every column brings a
    share of at least ``min_new`` of its own norm that the columns before it do not explain.
    None where one does not (a noiseless curve, a nearly deterministic series, a column
    repeated: the normal equations would lose digits there), where the Gram matrix is not positive
    definite, or where a squared norm overflows (beyond about 1e154, which the QR's scaled norms
    survive): the caller's QR or SVD decides then."""
    with np.errstate(over="ignore", invalid="ignore"):   # an overflow sends the fit to the QR
        gram = a.T @ a
    if not np.isfinite(gram).all():
        return None
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None
    new = np.diagonal(lower) ** 2
    if not np.all(new >= min_new * np.diagonal(gram)):   # NaN fails too
        return None
    return lower.T


def lag_columns(x: np.ndarray, max_lag: int) -> list[np.ndarray]:
    """Views x_{t-1} .. x_{t-max_lag} for t = max_lag .. n-1."""
    n = len(x)
    return [x[max_lag - k: n - k] for k in range(1, max_lag + 1)]


def ar_residuals(x: np.ndarray, max_lag: int = 20) -> tuple[np.ndarray, int]:
    """Prewhiten: demean, pick the AR order 0..max_lag by BIC on a common sample, return the
    residuals of that fit and its order. Autocorrelated noise turns into nearly white noise,
    so variance and correlation tests keep their nominal size."""
    y = x - mean(x)
    max_lag = int(min(max_lag, max(0, len(y) // 10)))
    if max_lag == 0:
        return y, 0
    target = y[max_lag:]
    rss = np.concatenate([[float(target @ target)], nested_rss(target, lag_columns(y, max_lag))])
    n = len(target)
    bic = n * np.log(np.maximum(rss, 1e-300) / n) + np.arange(max_lag + 1) * np.log(n)
    order = int(np.argmin(bic))
    if order == 0:
        return y, 0
    target, lags = y[order:], lag_columns(y, order)
    augmented = stacked(lags, target)
    r = normal_equations_factor(augmented, FIT_MIN_NEW)
    if r is None:   # (nearly) dependent lags: the SVD's minimum-norm fit
        design = np.column_stack(lags)
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        return target - design @ coef, order
    return target - augmented[:, :-1] @ np.linalg.solve(r[:-1, :-1], r[:-1, -1]), order


def mser_truncation(y: np.ndarray, batch: int = 5, search_limit: int | None = None) -> int:
    """MSER-m truncation point (White 1997; m=5 as in Spratt 1998), in points of ``y``.

    Chooses d minimising the squared standard error of the mean of what remains,
    S²(d)/(n-d)², over batch means of ``batch`` points; O(n) through reverse cumulative sums.
    ``search_limit`` (default: half the series, the usual validity bound) keeps a short tail
    from winning merely by being short.
    """
    z = block_means(y, batch)
    count = len(z)
    offset = len(y) - count * batch
    rev_sum = np.cumsum(z[::-1])[::-1]
    rev_sq = np.cumsum((z * z)[::-1])[::-1]
    remaining = count - np.arange(count)
    sse = rev_sq - rev_sum * rev_sum / remaining
    score = sse / (remaining.astype(float) ** 2)
    limit = count // 2 if search_limit is None else max(1, min(count - 2, search_limit // batch))
    d = int(np.argmin(score[: limit + 1]))
    return offset + d * batch


def bartlett_long_run_variance(x: np.ndarray, bandwidth: int) -> float:
    """Newey–West long-run variance of a (centred) series with Bartlett weights."""
    n = len(x)
    gamma0 = float(x @ x) / n
    total = gamma0
    for k in range(1, min(bandwidth, n - 1) + 1):
        total += 2.0 * (1.0 - k / (bandwidth + 1.0)) * float(x[k:] @ x[:-k]) / n
    return max(total, 1e-12 * gamma0)
