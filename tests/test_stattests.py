"""The unit-root tests, computed in siamdiag, against statsmodels itself (the oracle for every
statistic, lag order, p-value and critical value) and against published tables."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import special
from statsmodels.tsa.adfvalues import mackinnoncrit, mackinnonp
from statsmodels.tsa.stattools import adfuller, kpss

from siamdiag.engine import stattests
from siamdiag.engine.synthetic import ar1


@pytest.mark.parametrize("n", [120, 800, 2000])
@pytest.mark.parametrize("phi", [0.0, 0.5, 0.95, 1.0])
def test_adf_equals_statsmodels_autolag_aic(n, phi):
    rng = np.random.default_rng(n + int(phi * 100))
    x = np.cumsum(rng.standard_normal(n)) if phi == 1.0 else ar1(n, rng, phi)
    ours, ref = _adf_against_statsmodels(x)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.critical_values == pytest.approx(ref.critical_values, rel=1e-12)


@pytest.mark.parametrize("level", [1e2, 1e3, 1e4, 1e5, 1e6])
def test_adf_equals_statsmodels_on_a_level_far_from_zero(level):
    """A loss far from 0 makes its level column nearly the constant's: the final fit takes the
    normal equations only while they keep the statistic to about 1e-12, else the QR."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        _adf_against_statsmodels(level + ar1(1500, rng, 0.5))


def _adf_against_statsmodels(x: np.ndarray):
    """Our ADF and statsmodels' (lag by AIC, a constant), the lag and the statistic checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = adfuller(x, autolag="AIC", regression="c", result_object=True)
    ours = stattests.adf(x)
    assert ours.lags == ref.lags
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    return ours, ref


def _series(rng, kind: int, n: int) -> np.ndarray:
    """White noise, a random walk, an MA(2), a trend, a level shift: every shape the checks meet."""
    e = rng.standard_normal(n)
    return [e, np.cumsum(e), np.convolve(e, [1.0, 0.8, 0.5], "same"), e + np.linspace(0, 3, n),
            e + 2.0 * (np.arange(n) > n // 2)][kind]


def test_adf_and_kpss_equal_statsmodels_on_many_series():
    rng = np.random.default_rng(13)
    for k in range(250):
        x = _series(rng, k % 5, int(rng.integers(30, 3000)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_adf = adfuller(x, autolag="AIC", regression="c", result_object=True)
            ref_kpss = kpss(x, regression="c", nlags="auto", result_object=True)
        ours_adf, ours_kpss = stattests.adf(x), stattests.kpss_level(x)
        assert (ours_adf.lags, ours_kpss.lags) == (ref_adf.lags, ref_kpss.lags)
        assert ours_adf.statistic == pytest.approx(ref_adf.statistic, rel=1e-9)
        assert ours_adf.p_value == pytest.approx(ref_adf.pvalue, rel=1e-9, abs=1e-15)
        assert ours_kpss.statistic == pytest.approx(ref_kpss.statistic, rel=1e-9)
        assert ours_kpss.critical_values == {k: v for k, v in ref_kpss.critical_values.items() if k != "2.5%"}


def test_mackinnon_surface_equals_statsmodels_everywhere():
    for tau in np.linspace(-25.0, 5.0, 601):
        assert stattests.mackinnon_p(float(tau)) == pytest.approx(float(mackinnonp(tau, "c", 1)), rel=1e-12, abs=1e-300)
    assert stattests.mackinnon_p(-np.inf) == 0.0 and stattests.mackinnon_p(np.inf) == 1.0
    for n in (30, 100, 1000, 5000):   # critical values at the regression's own sample size
        result = stattests.adf(np.random.default_rng(n).standard_normal(n))
        expected = mackinnoncrit(1, "c", n - 1 - result.lags)
        assert list(result.critical_values.values()) == pytest.approx(list(expected), rel=1e-12)


def relative_error(ours: float, scipy_value: float) -> float:
    return abs(ours - scipy_value) / abs(scipy_value)


def test_normal_distribution_equals_scipy_to_the_last_digits():
    # Φ(z) is computed from z/√2, rounded once: its condition number grows as z², so both
    # implementations can differ by that many units in the last place far in the tail.
    for z in np.linspace(-37.5, 8.5, 9201):
        expected = float(special.ndtr(z))
        assert relative_error(stattests.normal_cdf(float(z)), expected) <= 2.3e-16 * max(8.0, z * z), z
        assert stattests.normal_sf(float(-z)) == stattests.normal_cdf(float(z))
    for p in np.concatenate([np.logspace(-300, -1, 2000), np.linspace(0.001, 0.999, 4000), 1 - np.logspace(-15, -1, 500)]):
        assert relative_error(stattests.normal_quantile(float(p)), float(special.ndtri(p))) <= 1e-15, p


def test_chi2_sf_equals_scipy_to_the_last_digits():
    # condition number ~ x/2 for large x: the tail is e^(-x/2) times a polynomial. scipy's
    # chdtrc(1, x) is off by up to 3e-14 near x = 2 (30-digit mpmath: siamdiag's is within 2e-16).
    for df in range(1, 41):
        for x in np.logspace(-6, 3.1, 500):
            expected = float(special.chdtrc(df, x))
            if expected > 1e-300:
                assert relative_error(stattests.chi2_sf(float(x), df), expected) <= max(3.5e-14, 4.5e-16 * x), (df, x)
    assert stattests.chi2_sf(0.0, 3) == 1.0 and stattests.chi2_sf(np.inf, 3) == 0.0


def test_student_t_sf_equals_scipy_to_the_last_digits():
    """Degrees of freedom 1-200 (the engine's t-tests have at most 48), t from 1e-3 to 300 of
    either sign. The worst gaps (2.4e-14 at df = 1, t = 0.0012; 3e-14 where p < 1e-20) are
    scipy's: 30-digit mpmath agrees with siamdiag there to 1e-15 and 8e-15. The continued
    fraction slowly loses digits for larger df (3.5e-14 at df = 276, 2.5e-14 at df = 2,000)."""
    ts = np.concatenate([np.linspace(-8.0, 8.0, 321), np.logspace(-3, 2.5, 120)])
    for df in range(1, 201):
        for t in ts:
            expected = float(special.stdtr(df, -t))
            if expected > 1e-300:
                tolerance = 3e-14 if expected > 1e-15 else 3e-13
                assert relative_error(stattests.student_t_sf(float(t), df), expected) <= tolerance, (df, t)
    assert stattests.student_t_sf(np.inf, 5) == 0.0 and stattests.student_t_sf(-np.inf, 5) == 1.0


def test_kpss_p_value_equals_the_scipy_series():
    """The Anderson-Darling series with scipy's gammaln and kv, as siamdiag computed it before:
    equal to 3e-15 absolute (1 - cdf: the sum's own rounding). K_1/4 itself agrees with scipy's
    to 7e-14 relative, where mpmath sides with siamdiag (scipy's kve(1/4, 2) is off by 6.6e-14)."""
    def with_scipy(stat, terms=12):
        j = np.arange(terms)
        u = (4 * j + 1) ** 2 / (16.0 * stat)
        coef = np.exp(special.gammaln(j + 0.5) - special.gammaln(0.5) - special.gammaln(j + 1))
        cdf = float(np.sum(coef * np.sqrt(4 * j + 1) * np.exp(-u) * special.kv(0.25, u))) / (np.pi * np.sqrt(stat))
        return min(1.0, max(0.0, 1.0 - cdf))
    for stat in np.concatenate([np.linspace(0.001, 5.0, 2500), np.logspace(-3, 3, 500)]):
        assert abs(stattests.cramer_von_mises_sf(float(stat)) - with_scipy(stat)) <= 3e-15, stat
    u = np.logspace(-4, 4, 2000)
    assert np.allclose(stattests.scaled_bessel_k_quarter(u), special.kve(0.25, u), rtol=7e-14, atol=0)


def test_judging_a_log_imports_neither_statsmodels_nor_scipy(tmp_path):
    """The import cost this module exists to avoid: the CLI judges a log without loading them
    (scipy.special alone costs more than judging a short run)."""
    log = tmp_path / "run.csv"
    log.write_text("step,loss\n" + "".join(f"{s},{0.3 + 0.01 * ((s * 7) % 5)}\n" for s in range(400)))
    code = ("import sys; from siamdiag.cli.main import main\ntry:\n    main(['analyze', sys.argv[1]])\n"
            "except SystemExit:\n    pass\nloaded = [m for m in ('statsmodels', 'scipy') if m in sys.modules]\n"
            "sys.stderr.write('LOADED=' + ','.join(loaded))")
    out = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True)
    assert out.stderr.rsplit("LOADED=", 1)[1] == ""


@pytest.mark.parametrize("stat,p", [(0.347, 0.10), (0.463, 0.05), (0.574, 0.025), (0.739, 0.01)])
def test_kpss_p_value_matches_the_kpss_1992_table(stat, p):
    # Kwiatkowski, Phillips, Schmidt & Shin (1992), Table 1, level stationarity (eta_mu).
    assert stattests.cramer_von_mises_sf(stat) == pytest.approx(p, abs=0.0015)


def test_kpss_p_value_is_continuous_and_monotone():
    stats_ = np.linspace(0.01, 3.0, 200)
    ps = [stattests.cramer_von_mises_sf(s) for s in stats_]
    assert all(a >= b for a, b in zip(ps, ps[1:]))
    assert ps[0] > 0.99 and ps[-1] < 1e-5


def test_no_warning_escapes_the_adapter():
    x = np.random.default_rng(0).standard_normal(500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stattests.adf(x)
        stattests.kpss_level(x)
