"""The unit-root tests, computed in siamdiag, against statsmodels itself (the oracle for every
statistic, lag order, p-value and critical value) and against published tables."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa.adfvalues import mackinnoncrit, mackinnonp
from statsmodels.tsa.stattools import adfuller, kpss

from siamdiag.engine import stattests
from siamdiag.engine.synthetic import ar1


@pytest.mark.parametrize("n", [120, 800, 2000])
@pytest.mark.parametrize("phi", [0.0, 0.5, 0.95, 1.0])
def test_adf_equals_statsmodels_autolag_aic(n, phi):
    rng = np.random.default_rng(n + int(phi * 100))
    x = np.cumsum(rng.standard_normal(n)) if phi == 1.0 else ar1(n, rng, phi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = adfuller(x, autolag="AIC", regression="c", result_object=True)
    ours = stattests.adf(x)
    assert ours.lags == ref.lags
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.critical_values == pytest.approx(ref.critical_values, rel=1e-12)


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


def test_distribution_functions_equal_scipy():
    for p in (1e-12, 0.001, 0.025, 0.5, 0.975, 0.999999):
        assert stattests.normal_quantile(p) == pytest.approx(stats.norm.ppf(p), rel=1e-12)
    for t, df in ((-3.0, 5), (0.0, 10), (2.5, 100)):
        assert stattests.student_t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-10)
    for x, df in ((0.5, 1), (10.0, 4), (100.0, 80)):
        assert stattests.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-10)


def test_judging_a_log_imports_neither_statsmodels_nor_scipy_stats(tmp_path):
    """The import cost this module exists to avoid: the CLI judges a log without loading them."""
    log = tmp_path / "run.csv"
    log.write_text("step,loss\n" + "".join(f"{s},{0.3 + 0.01 * ((s * 7) % 5)}\n" for s in range(400)))
    code = ("import sys; from siamdiag.cli.main import main\ntry:\n    main(['analyze', sys.argv[1]])\n"
            "except SystemExit:\n    pass\nloaded = [m for m in ('statsmodels', 'scipy.stats') if m in sys.modules]\n"
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
