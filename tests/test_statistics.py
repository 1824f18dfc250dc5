"""Statistical claims over many seeds on series whose truth is known by construction.

Seeds are fixed, so these are deterministic; the thresholds are the product's promises
(README 'What the verdicts promise'), checked on 200 seeds per process at n = 2000.
"""
import numpy as np
import pytest

from siamdiag.engine.analysis import analyze_arrays
from siamdiag.engine.checks import coupling
from siamdiag.engine.decide import DEFAULT_FAILING
from siamdiag.engine.synthetic import PROCESSES, ar1_pair, shared_trend_pair

SEEDS = 200
N = 2000


def rates(name):
    proc = PROCESSES[name]
    verdicts = [analyze_arrays(proc.make(N, np.random.default_rng([s, 99]))).verdict for s in range(SEEDS)]
    fail = np.mean([v in DEFAULT_FAILING for v in verdicts])
    right = np.mean([v.value in proc.truth for v in verdicts])
    return fail, right


@pytest.mark.parametrize("name", ["white_noise", "ar1_0.9", "heavy_tails_t3", "garch", "rare_spikes",
                                  "epoch_periodic", "fast_transient", "lr_drop_before_window", "quantised"])
def test_false_alarms_at_most_2_percent(name):
    fail, _ = rates(name)
    assert fail <= 0.02


@pytest.mark.parametrize("name", ["random_walk", "slow_exp_decay", "power_law_decay", "drift_down_3sigma",
                                  "drift_up_3sigma", "level_shift_0.5sigma", "variance_doubling",
                                  "divergence_last_5pct"])
def test_detection_at_least_95_percent_with_the_right_verdict_90(name):
    fail, right = rates(name)
    assert fail >= 0.95 and right >= 0.90


def coupled_share(make):
    hits = []
    for s in range(SEEDS):
        loss, grad = make(np.random.default_rng([s, 7]))
        c = coupling(loss[N // 2:], grad[N // 2:])
        hits.append(bool(c and c.coupled))
    return np.mean(hits)


def test_coupling_false_positives_and_power():
    assert coupled_share(lambda r: ar1_pair(N, r, 0.9, 0.0)) <= 0.05
    assert coupled_share(lambda r: shared_trend_pair(N, r)) <= 0.05
    assert coupled_share(lambda r: ar1_pair(N, r, 0.9, 0.3)) >= 0.90


def shared_step_decay(rng, settle, at):
    """Independent loss and grad-norm noise sharing only an lr step decay inside the window (both
    fall to a new level within ``settle`` steps): truth, not coupled (found: 14-26 % reported)."""
    t = np.arange(N, dtype=float)
    shape = np.where(t >= at * N, 1 - np.exp(-np.maximum(t - at * N, 0) / settle), 0.0)
    return 0.5 - 0.2 * shape + 0.02 * rng.standard_normal(N), 2.0 - 1.0 * shape + 0.1 * rng.standard_normal(N)


@pytest.mark.parametrize("settle", [1, 5, 20])
@pytest.mark.parametrize("at", [0.6, 0.9])
def test_coupling_is_not_reported_for_a_shared_step_decay(settle, at):
    assert coupled_share(lambda r: shared_step_decay(r, settle, at)) <= 0.06
