"""The one adapter to third-party statistics (statsmodels, scipy).

statsmodels is called with explicit lag orders and result objects, inside a warnings guard, so
its FutureWarning / InterpolationWarning never reach the user: what they say is returned as data
(continuous p-values instead of a clipped table lookup).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from statsmodels.tsa.stattools import adfuller, kpss

from .numerics import nested_rss


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
    ceiling, identical to ``adfuller(x, autolag='AIC')`` but O(n·maxlag²) in one factorisation."""
    lag = adf_aic_lag(x, adf_default_max_lag(len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = adfuller(x, maxlag=lag, autolag=None, regression="c", result_object=True)
    crit = {k: float(v) for k, v in res.critical_values.items()}
    return UnitRootResult(float(res.statistic), float(res.pvalue), int(res.lags), crit)


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


def kpss_level(x: np.ndarray) -> UnitRootResult:
    """KPSS around a constant; H0: level-stationary. statsmodels computes the statistic with
    Hobijn et al.'s automatic bandwidth; the p-value is continuous (asymptotic law above)
    rather than statsmodels' table interpolation clipped to [0.01, 0.10]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = kpss(x, regression="c", nlags="auto", result_object=True)
    crit = {k: float(v) for k, v in res.critical_values.items() if k in ("1%", "5%", "10%")}
    stat = float(res.statistic)
    return UnitRootResult(stat, cramer_von_mises_sf(stat), int(res.lags), crit)


def student_t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    return float(special.stdtr(df, -t))  # what stats.t.sf computes, without its argument checks


def normal_quantile(p: float) -> float:
    return float(stats.norm.ppf(p))


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return float(special.ndtr(-z))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with ``df`` degrees of freedom."""
    return float(special.chdtrc(df, x))
