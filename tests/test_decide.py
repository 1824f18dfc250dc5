import numpy as np
from statsmodels.stats.multitest import multipletests

from siamdiag.engine.decide import holm


def test_holm_matches_statsmodels(monkeypatch):
    import gc

    # multipletests runs a full gc.collect() on every call: 0.1 s alone, a minute and more inside
    # a test session's heap. It changes nothing about the answer.
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        ps = rng.random(4) ** 3
        names = ["a", "b", "c", "d"]
        ref = multipletests(ps, alpha=0.05, method="holm")[0]
        assert holm(dict(zip(names, ps)), 0.05) == {n for n, r in zip(names, ref) if r}
