"""The unit-root and distribution functions the checks use, computed here from their published
definitions rather than imported: statsmodels.tsa and scipy.stats cost about a second of imports,
several times the judging of a short run. Each function is checked against statsmodels or scipy
in tests/test_stattests.py (statistic, p-value, lag order, critical values).

- ADF: the augmented Dickey–Fuller regression with a constant, lag by AIC (as statsmodels'
  ``adfuller(autolag='AIC')`` chooses it), p-value from MacKinnon's (1994) response surface and
  finite-sample critical values from MacKinnon (2010).
- KPSS around a constant: Hobijn, Franses & Ooms' (1998) automatic Bartlett bandwidth, the
  statistic of Kwiatkowski et al. (1992); p-value from the statistic's asymptotic law (continuous,
  not a table lookup clipped to [0.01, 0.10]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .numerics import bartlett_long_run_variance, nested_rss

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
    """The ADF lag order statsmodels' ``autolag='AIC'`` would choose, from one QR instead of
    max_lag+1 separate OLS fits (same common sample, same AIC, same tie-break)."""
    dx = np.diff(x)
    nobs = len(dx) - max_lag
    columns = [np.ones(nobs), x[max_lag: max_lag + nobs]]
    columns += [dx[max_lag - k: max_lag - k + nobs] for k in range(1, max_lag + 1)]
    design = np.column_stack(columns)
    target = dx[max_lag:]
    rss = nested_rss(target, design)[1:]  # models with const, level, and 0..max_lag lags
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
    design = np.column_stack([x[lag: lag + nobs], np.ones(nobs)] + [dx[lag - k: lag - k + nobs] for k in range(1, lag + 1)])
    target = dx[lag:]
    q, r = np.linalg.qr(design)
    critical = {level: float(np.polyval(b[::-1], 1.0 / nobs)) for level, b in TAU_CRITICAL.items()}
    pivots = np.abs(np.diag(r))
    if not pivots.min() > 1e-12 * pivots.max():
        # a window that barely moves (one value but for a blip) leaves the regression singular:
        # no statistic, and no evidence against a unit root
        return UnitRootResult(float("nan"), 1.0, lag, critical)
    coef = np.linalg.solve(r, q.T @ target)
    resid = target - design @ coef
    sigma2 = float(resid @ resid) / (nobs - design.shape[1])
    r_inv = np.linalg.inv(r)
    statistic = float(coef[0] / np.sqrt(sigma2 * float(r_inv[0] @ r_inv[0])))
    return UnitRootResult(statistic, mackinnon_p(statistic), lag, critical)


def mackinnon_p(tau: float) -> float:
    """Asymptotic p-value of an ADF statistic (constant, one series): MacKinnon's surface."""
    if not np.isfinite(tau):
        return 0.0 if tau < 0 else 1.0
    if tau > TAU_MAX:
        return 1.0
    if tau < TAU_MIN:
        return 0.0
    coefficients = TAU_SMALL_P if tau <= TAU_STAR else TAU_LARGE_P
    return float(special.ndtr(np.polyval(coefficients[::-1], tau)))


def cramer_von_mises_sf(stat: float, terms: int = 12) -> float:
    """Upper tail of ∫B(r)²dr for a Brownian bridge B (Anderson & Darling 1952 series).

    This is the asymptotic null law of the level KPSS statistic: its 10/5/2.5/1% points are
    0.347/0.461/0.581/0.743 against KPSS's tabulated 0.347/0.463/0.574/0.739.
    """
    if stat <= 0:
        return 1.0
    j = np.arange(terms)
    u = (4 * j + 1) ** 2 / (16.0 * stat)
    coef = np.exp(special.gammaln(j + 0.5) - special.gammaln(0.5) - special.gammaln(j + 1))
    cdf = float(np.sum(coef * np.sqrt(4 * j + 1) * np.exp(-u) * special.kv(0.25, u)))
    cdf /= np.pi * np.sqrt(stat)
    return float(min(1.0, max(0.0, 1.0 - cdf)))


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


def student_t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    return float(special.stdtr(df, -t))  # what stats.t.sf computes, without its argument checks


def normal_quantile(p: float) -> float:
    return float(special.ndtri(p))


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return float(special.ndtr(-z))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with ``df`` degrees of freedom."""
    return float(special.chdtrc(df, x))
