"""The statistics adapter against statsmodels itself and against published tables."""
import warnings

import numpy as np
import pytest
from statsmodels.tsa.stattools import adfuller

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
