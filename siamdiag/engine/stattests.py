"""The unit-root and distribution functions the checks use, computed here from their published
definitions rather than imported: statsmodels.tsa, scipy.stats and even scipy.special cost more
import time than the judging of a short run. Each function is checked against statsmodels or scipy
in tests/test_stattests.py (statistic, p-value, lag order, critical values; the tail probabilities
to full double precision on dense grids).

- ADF: the augmented Dickey–Fuller regression with a constant, lag by AIC (as statsmodels'
  ``adfuller(autolag='AIC')`` chooses it), p-value from MacKinnon's (1994) response surface and
  finite-sample critical values from MacKinnon (2010).
- KPSS around a constant: Hobijn, Franses & Ooms' (1998) automatic Bartlett bandwidth, the
  statistic of Kwiatkowski et al. (1992); p-value from the statistic's asymptotic law (continuous,
  not a table lookup clipped to [0.01, 0.10]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .numerics import FIT_MIN_NEW, bartlett_long_run_variance, nested_rss, normal_equations_factor, stacked

# MacKinnon (1994), one I(1) series, constant ('c'): the response surface p = Φ(c0 + c1·τ + c2·τ² (+ c3·τ³)),
# with one polynomial below TAU_STAR and another above it; beyond [TAU_MIN, TAU_MAX] p is 0 or 1.
TAU_MIN, TAU_STAR, TAU_MAX = -18.83, -1.61, 2.74
TAU_SMALL_P = (2.1659, 1.4412, 0.038269)
TAU_LARGE_P = (1.7339, 0.93202, -0.12745, -0.010368)
# MacKinnon (2010), constant, one series: critical value = b0 + b1/T + b2/T² + b3/T³ at 1%, 5%, 10%.
TAU_CRITICAL = {"1%": (-3.43035, -6.5393, -16.786, -79.433), "5%": (-2.86154, -2.8903, -4.234, -40.040),
                "10%": (-2.56677, -1.5384, -2.809, 0.0)}
# Kwiatkowski et al. (1992), level stationarity: upper critical values of the KPSS statistic.
KPSS_CRITICAL = {"10%": 0.347, "5%": 0.463, "1%": 0.739}


@dataclass(frozen=True)
class UnitRootResult:
    """One ADF or KPSS test: its statistic, p-value, lag order and 1%/5%/10% critical values."""

    statistic: float
    p_value: float
    lags: int
    critical_values: dict[str, float]


def adf_default_max_lag(nobs: int) -> int:
    """statsmodels' default ADF lag ceiling (Schwert 1989), for regression 'c'."""
    return min(nobs // 2 - 2, int(np.ceil(12.0 * (nobs / 100.0) ** 0.25)))


def adf_aic_lag(x: np.ndarray, max_lag: int) -> int:
    """The ADF lag order statsmodels' ``autolag='AIC'`` would choose, from one factorisation
    (numerics.nested_rss) instead of max_lag+1 separate OLS fits (same common sample, same AIC,
    same tie-break)."""
    dx = np.diff(x)
    nobs = len(dx) - max_lag
    columns = [np.ones(nobs), x[max_lag: max_lag + nobs]]
    columns += [dx[max_lag - k: max_lag - k + nobs] for k in range(1, max_lag + 1)]
    target = dx[max_lag:]
    rss = nested_rss(target, columns)[1:]  # models with const, level, and 0..max_lag lags
    k = np.arange(2, max_lag + 3)
    aic = nobs * np.log(np.maximum(rss, 1e-300) / nobs) + 2 * k
    return int(np.argmin(aic))  # argmin keeps the first (smallest lag) on ties, as statsmodels


def adf(x: np.ndarray) -> UnitRootResult:
    """Augmented Dickey–Fuller with a constant; H0: unit root. Lag by AIC up to Schwert's
    ceiling; then the t-statistic of the lagged level in Δx_t = a + ρ·x_(t-1) + Σ γ_k·Δx_(t-k),
    fitted on the observations every lag is defined for."""
    lag = adf_aic_lag(x, adf_default_max_lag(len(x)))
    dx = np.diff(x)
    nobs = len(dx) - lag
    target = dx[lag:]
    columns = [x[lag: lag + nobs], np.ones(nobs)] + [dx[lag - k: lag - k + nobs] for k in range(1, lag + 1)]
    augmented = stacked(columns, target)
    factor = normal_equations_factor(augmented, FIT_MIN_NEW)
    if factor is None:   # nearly dependent columns (a level far from 0 beside the constant): the QR
        design = np.column_stack(columns)
        q, r = np.linalg.qr(design)
        qty = q.T @ target
    else:   # R and Qᵀy (Q = design·R⁻¹) from the Cholesky factor of [design | target]
        design, r, qty = augmented[:, :-1], factor[:-1, :-1], factor[:-1, -1]
    critical = {level: polynomial(b, 1.0 / nobs) for level, b in TAU_CRITICAL.items()}
    pivots = np.abs(np.diag(r))
    if not pivots.min() > 1e-12 * pivots.max():
        # a window that barely moves (one value but for a blip) leaves the regression singular:
        # no statistic, and no evidence against a unit root
        return UnitRootResult(float("nan"), 1.0, lag, critical)
    coef = np.linalg.solve(r, qty)
    resid = target - design @ coef
    sigma2 = float(resid @ resid) / (nobs - design.shape[1])
    r_inv = np.linalg.inv(r)
    statistic = float(coef[0] / np.sqrt(sigma2 * float(r_inv[0] @ r_inv[0])))
    return UnitRootResult(statistic, mackinnon_p(statistic), lag, critical)


def polynomial(coefficients: tuple[float, ...], x: float) -> float:
    """c0 + c1·x + c2·x² + ... by Horner's rule, the steps np.polyval takes (the same bits)
    without turning the coefficients into an array at every call."""
    value = 0.0
    for c in reversed(coefficients):
        value = value * x + c
    return value


def mackinnon_p(tau: float) -> float:
    """Asymptotic p-value of an ADF statistic (constant, one series): MacKinnon's surface."""
    if not np.isfinite(tau):
        return 0.0 if tau < 0 else 1.0
    if tau > TAU_MAX:
        return 1.0
    if tau < TAU_MIN:
        return 0.0
    coefficients = TAU_SMALL_P if tau <= TAU_STAR else TAU_LARGE_P
    return normal_cdf(polynomial(coefficients, tau))


def cramer_von_mises_sf(stat: float, terms: int = 12) -> float:
    """Upper tail of ∫B(r)²dr for a Brownian bridge B (Anderson & Darling 1952 series):
    F(s) = Σ_j C(2j, j)/4^j · √(4j+1) · e^(-u_j) K_{1/4}(u_j) / (π√s), u_j = (4j+1)²/(16s).

    This is the asymptotic null law of the level KPSS statistic: its 10/5/2.5/1% points are
    0.347/0.461/0.581/0.743 against KPSS's tabulated 0.347/0.463/0.574/0.739.
    """
    if stat <= 0:
        return 1.0
    j = np.arange(terms)
    u = (4 * j + 1) ** 2 / (16.0 * stat)
    cdf = float(np.sum(CVM_COEFFICIENTS[:terms] * np.sqrt(4 * j + 1) * np.exp(-2.0 * u) * scaled_bessel_k_quarter(u)))
    cdf /= np.pi * np.sqrt(stat)
    return float(min(1.0, max(0.0, 1.0 - cdf)))


# Γ(j + 1/2) / (Γ(1/2) j!) = C(2j, j) / 4^j, correctly rounded (Python's int division is).
CVM_COEFFICIENTS = np.array([math.comb(2 * j, j) / 4 ** j for j in range(40)])


def scaled_bessel_k_quarter(u: np.ndarray) -> np.ndarray:
    """e^u · K_{1/4}(u) for each u > 0, as ∫_0^∞ exp(-2u·sinh²(t/2)) cosh(t/4) dt (cosh t - 1
    without its cancellation) by the trapezoidal rule. The integrand is analytic in a strip, so
    the rule converges geometrically: a step of min(1/4, 1/(2√u)) (the peak at t = 0 narrows as
    1/√u) leaves an error far below one unit in the last place, and nodes go on until every
    integrand is below e^-45 of its peak (later nodes only add smaller values)."""
    u = np.asarray(u, dtype=float)[:, None]
    h = np.minimum(0.25, 0.5 / np.sqrt(u))
    count = int(np.max(np.arccosh(1.0 + 45.0 / u) / h)) + 2
    t = h * np.arange(count)
    f = np.exp(-2.0 * u * np.sinh(0.5 * t) ** 2) * np.cosh(0.25 * t)
    return h[:, 0] * (f.sum(axis=1) - 0.5 * f[:, 0])


def kpss_bandwidth(resid: np.ndarray) -> int:
    """Hobijn, Franses & Ooms' automatic Bartlett bandwidth: ⌊1.1447·(ŝ²)^(1/3)·n^(1/3)⌋ with
    ŝ = ŝ¹/ŝ⁰ from the first ⌊n^(2/9)⌋ autocovariances (at most n − 1)."""
    n = len(resid)
    pre = int(n ** (2.0 / 9.0))
    gammas = np.array([resid[i:] @ resid[:n - i] for i in range(1, pre + 1)]) * (2.0 / n)
    s0 = float(resid @ resid) / n + gammas.sum()
    s1 = float(np.arange(1, pre + 1) @ gammas)
    return min(int(1.1447 * ((s1 / s0) ** 2) ** (1.0 / 3.0) * n ** (1.0 / 3.0)), n - 1)


def kpss_level(x: np.ndarray) -> UnitRootResult:
    """KPSS around a constant; H0: level-stationary. η = Σ S_t² / n² over the partial sums S of
    the demeaned series, divided by the Bartlett long-run variance at the automatic bandwidth."""
    resid = x - x.mean()
    lags = kpss_bandwidth(resid)
    eta = float(np.sum(np.cumsum(resid) ** 2)) / len(resid) ** 2
    statistic = eta / bartlett_long_run_variance(resid, lags)
    return UnitRootResult(statistic, cramer_von_mises_sf(statistic), lags, dict(KPSS_CRITICAL))


def normal_cdf(z: float) -> float:
    """P(Z <= z) for a standard normal Z, from erf near 0 and erfc in the tails (as Cephes'
    ndtr, which scipy uses): full relative precision down to the smallest doubles."""
    x = z * SQRT_HALF
    if abs(x) < SQRT_HALF:
        return 0.5 + 0.5 * math.erf(x)
    tail = 0.5 * math.erfc(abs(x))
    return 1.0 - tail if x > 0 else tail


SQRT_HALF = math.sqrt(0.5)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return normal_cdf(-z)


def normal_quantile(p: float) -> float:
    """z with P(Z <= z) = p (Wichura's AS 241, accurate to about 1e-16)."""
    from statistics import NormalDist   # rarely needed: not imported with the engine

    return NormalDist().inv_cdf(p)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with a whole number ``df`` of degrees of freedom:
    Q(df/2, x/2) as a finite sum of positive terms (an even df: the Poisson sum; an odd df:
    erfc(√(x/2)) plus the terms that raise the order by one at a time), so no cancellation."""
    if x != x:
        return math.nan
    if x <= 0:
        return 1.0
    if x == math.inf:
        return 0.0
    y = 0.5 * x
    if df % 2 == 0:
        head, term, order = 0.0, 1.0, 1.0            # Q(1, y) = e^-y
    else:
        head, term, order = math.erfc(math.sqrt(y)), math.sqrt(y) / math.gamma(1.5), 1.5
    total = 0.0
    for _ in range((df - 1) // 2 if df % 2 else df // 2):
        total += term
        term *= y / order
        order += 1.0
    return head + (math.exp(-y) * total if y < 700 else math.exp(math.log(total) - y) if total > 0 else 0.0)


def student_t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom: I_x(df/2, 1/2) / 2 with
    x = df/(df + t²), the regularised incomplete beta function from its continued fraction. x and
    1 - x are formed without cancellation and the beta function's prefactor from exact
    binomial coefficients, so small tail probabilities keep their relative precision."""
    if t != t:
        return math.nan
    if t < 0:
        return 1.0 - student_t_sf(-t, df)
    if t == math.inf:
        return 0.0
    a, t2 = 0.5 * df, t * t
    log_x, log_1mx = -math.log1p(t2 / df), math.log(t2 / (df + t2)) if t2 > 0 else -math.inf
    x, one_minus_x = df / (df + t2), t2 / (df + t2)
    if x < (a + 1.0) / (a + 2.5):
        prefactor = math.exp(a * log_x + 0.5 * log_1mx) / (a * beta_half(df))
        return 0.5 * prefactor * beta_continued_fraction(a, 0.5, x, one_minus_x)
    prefactor = math.exp(0.5 * log_1mx + a * log_x) / (0.5 * beta_half(df))
    return 0.5 - 0.5 * prefactor * beta_continued_fraction(0.5, a, one_minus_x, x)


@lru_cache(maxsize=None)
def beta_half(df: int) -> float:
    """B(df/2, 1/2) = Γ(df/2)Γ(1/2)/Γ(df/2 + 1/2), from the correctly rounded C(2m, m)/4^m."""
    m = df // 2
    central = math.comb(2 * m, m) / 4 ** m          # Γ(m + 1/2) / (Γ(1/2) m!)
    return 1.0 / (m * central) if df % 2 == 0 else math.pi * central


def beta_continued_fraction(a: float, b: float, x: float, one_minus_x: float) -> float:
    """The continued fraction of I_x(a, b) without its prefactor (DLMF 8.17.22, modified Lentz),
    for x < (a + 1)/(a + b + 2), where it converges fast."""
    tiny = 1e-300
    c, d = 1.0, ((a + 1.0) * one_minus_x + (1.0 - b) * x) / (a + 1.0)   # 1 - (a+b)x/(a+1), no cancellation
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 10000):
        numerator = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        for step in (numerator, -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))):
            d = 1.0 + step * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + step / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return f
