"""Divergence means non-finite values or geometric growth, and degeneracy means a loss that never
moved (issue #17, items 4, 6 and 8). Every series is built here with its truth; rates are over 50
seeds."""
import re

import numpy as np

from siamdiag.engine.analysis import analyze_arrays, analyze_run
from siamdiag.engine.decide import DEFAULT_FAILING, Verdict
from siamdiag.engine.prepare import Options, order_run
from siamdiag.engine.synthetic import SyntheticRun, as_raw_run

SEEDS = 50


def rate(verdicts, wanted):
    return np.mean([v in wanted for v in verdicts])


# -- item 4: a loss that fell and then stopped converged; one that never moved is dead ------------

def full_batch(n, rng, jitter=1e-9):
    """Full-batch (L-BFGS-like) training: 2.0 -> 0.5 in the first fifth, then 0.5 with relative jitter."""
    t = np.arange(n, dtype=float)
    return 0.5 + 1.5 * np.exp(-t / (n / 40)) + 0.5 * jitter * rng.standard_normal(n)


def test_a_noiseless_run_that_converged_is_stationary_not_degenerate():
    runs = [analyze_arrays(full_batch(1000, np.random.default_rng([s, 4]))) for s in range(SEEDS)]
    assert not any(r.verdict is Verdict.DEGENERATE for r in runs)
    assert rate([r.verdict for r in runs], {Verdict.STATIONARY}) >= 0.97
    assert all(r.degeneracy.fell_to_level for r in runs)


def test_a_loss_that_never_moved_or_came_back_up_to_its_value_is_still_dead():
    rng = np.random.default_rng(4)
    n = 1000
    t = np.arange(n, dtype=float)
    pinned = 0.5 + 0.5e-9 * rng.standard_normal(n)              # the same jitter, but never moved
    learned_then_died = np.where(t < 400, 0.8 + 1.5 * np.exp(-t / 50), np.log(10.0))   # back up at ln 10
    for loss in (pinned, learned_then_died):
        run = analyze_arrays(loss)
        assert run.verdict is Verdict.DEGENERATE and run.degeneracy.kind == "constant"
        assert "without having fallen to it" in run.reasons[0]


def test_a_loss_that_fell_to_the_margin_is_still_collapse():
    n = 1000
    t = np.arange(n, dtype=float)
    loss = np.where(t < 300, 1.0 + np.exp(-t / 50), 1.0) + 1e-9 * np.random.default_rng(5).standard_normal(n)
    assert analyze_arrays(loss).verdict is Verdict.STATIONARY   # no margin logged: it converged to 1.0
    with_margin = analyze_run(order_run(as_raw_run(SyntheticRun(loss, extras={"margin": np.ones(n)}))), Options())
    assert with_margin.verdict is Verdict.DEGENERATE and with_margin.degeneracy.kind == "margin"


def test_a_loss_that_fell_to_one_exact_value_cannot_be_judged_and_says_why():
    t = np.arange(1000, dtype=float)
    run = analyze_arrays(np.where(t < 300, 1.0 + np.exp(-t / 50), 1.0))
    assert run.verdict is Verdict.DEGENERATE and run.degeneracy.fell_to_level
    assert "after falling to it" in run.reasons[0] and "dead network" not in run.reasons[0]


# -- item 6: geometric growth without NaN is divergence -------------------------------------------

def dqn_blowup(n, rng):
    """A DQN-like loss growing x20 over the second half (2e3 -> 4e4) under multiplicative noise."""
    t = np.arange(n, dtype=float)
    return 2e3 * 20.0 ** np.clip((t - n / 2) / (n / 2), 0, 1) * np.exp(0.2 * rng.standard_normal(n))


def test_geometric_growth_is_diverged_and_says_how_fast():
    runs = [analyze_arrays(dqn_blowup(1000, np.random.default_rng([s, 6]))) for s in range(SEEDS)]
    assert rate([r.verdict for r in runs], {Verdict.DIVERGED}) >= 0.97
    reason = runs[0].reasons[0]
    assert re.match(r"the loss grew ×(19|20|21)\.?\d* over the window, geometrically \(doubling every ~", reason)
    doubling = float(re.search(r"doubling every ~([\d,.]+) steps", reason).group(1).replace(",", ""))
    assert abs(doubling - 500 * np.log(2) / np.log(20)) < 20   # 500 window steps, x20


def test_a_linear_rise_or_a_step_of_the_same_size_is_not_geometric():
    n = 1000
    t = np.arange(n, dtype=float)
    ramp = np.clip((t - n / 2) / (n / 2), 0, 1)
    for s in range(SEEDS):
        noise = np.exp(0.2 * np.random.default_rng([s, 7]).standard_normal(n))
        linear = (2e3 + 3.8e4 * ramp) * noise
        step = 2e3 * np.where(t >= 0.8 * n, 20.0, 1.0) * noise
        for loss in (linear, step):
            verdict = analyze_arrays(loss).verdict
            assert verdict in DEFAULT_FAILING and verdict is not Verdict.DIVERGED


# -- item 8: a moderate late rise is non-stationary, not an explosion -----------------------------

def late_rise(rng, noise, total=4000, rise_steps=160):
    """``total`` steps at 0.30 +- ``noise``, then a linear rise of +0.15 over the last ``rise_steps``."""
    t = np.arange(total, dtype=float)
    start = total - rise_steps
    return 0.30 + 0.15 * np.clip((t - start) / rise_steps, 0, 1) + noise * rng.standard_normal(total)


def test_a_linear_late_rise_is_nonstationary_at_any_noise():
    for noise in (0.01, 0.03):
        runs = [analyze_arrays(late_rise(np.random.default_rng([s, 8]), noise)) for s in range(SEEDS)]
        assert rate([r.verdict for r in runs], {Verdict.NONSTATIONARY}) >= 0.97, noise
        assert not any(r.verdict is Verdict.DIVERGED for r in runs), noise
        assert runs[0].reasons[0].startswith("the loss rose by")


def test_ten_step_means_of_a_rising_run_get_the_verdict_of_its_per_step_log():
    # Hugging Face's Trainer logs the mean loss of every logging_steps (10) steps
    per_step, means = [], []
    for s in range(SEEDS):
        loss = late_rise(np.random.default_rng([s, 9]), 0.03)
        per_step.append(analyze_arrays(loss).verdict)
        means.append(analyze_arrays(loss.reshape(-1, 10).mean(axis=1), steps=np.arange(10.0, 4001.0, 10.0)).verdict)
    assert rate(per_step, {Verdict.NONSTATIONARY}) >= 0.97
    assert rate(means, {Verdict.NONSTATIONARY}) >= 0.97
    assert Verdict.DIVERGED not in per_step + means


def test_an_exponential_explosion_at_the_end_is_still_diverged():
    n = 1000
    t = np.arange(n, dtype=float)
    runs = []
    for s in range(SEEDS):
        rng = np.random.default_rng([s, 10])
        runs.append(analyze_arrays(0.3 + 0.02 * rng.standard_normal(n) + 0.01 * np.exp(np.maximum(t - 950, 0) / 10)))
    assert all(r.verdict is Verdict.DIVERGED for r in runs)
    assert runs[0].reasons[0].startswith("explosive growth at the end: from step 9")
    doubling = float(re.search(r"doubling every ~([\d.]+) steps", runs[0].reasons[0]).group(1))
    assert abs(doubling - 10 * np.log(2)) < 1.5   # time constant 10 steps


# -- the shortcuts for a finite run give what the general counts give ---------------------------

def _end_stretch_by_its_definition(values):
    """checks.end_stretch written out with an index array of every value within the band."""
    from siamdiag.engine import checks

    tail = max(checks.END_MIN_POINTS, int(np.ceil(checks.TAIL_FRACTION * len(values))))
    if len(values) < 4 * tail:
        return None
    body = values[:-tail]
    level = float(np.median(body))
    sigma = max(checks.MAD_TO_SIGMA * float(np.median(np.abs(body - level))), checks.PINNED_RTOL * abs(level))
    below = np.flatnonzero(values - level <= checks.EXCESS_SIGMAS * sigma)
    return (int(below[-1]) + 1 if len(below) else 0), level


def test_the_end_stretch_starts_after_the_last_value_within_the_band():
    from siamdiag.engine import checks

    rng = np.random.default_rng(11)
    for n in (10, 200, 1000, 30_000):
        flat = 1.0 + 0.01 * rng.standard_normal(n)
        rising = flat.copy()
        rising[-n // 10:] += np.geomspace(0.1, 100.0, n // 10)   # every value of the end above the band
        spiked = flat.copy()
        spiked[-1] += 5.0   # only the last value above it
        for values in (flat, rising, spiked, np.full(n, 2.0), -flat):
            assert checks.end_stretch(values) == _end_stretch_by_its_definition(values)


def test_a_finite_run_counts_no_nonfinite_values_and_fits_its_window_alone():
    from siamdiag.engine import checks

    rng = np.random.default_rng(5)
    for n, start in ((40, 20), (3000, 1500), (3000, 0), (3000, 3000), (3000, 10**6)):
        steps = np.arange(n, dtype=float)
        for loss in (0.3 + 0.01 * rng.standard_normal(n), 0.3 * np.exp(steps / (n / 8)), -steps):
            d = checks.divergence(steps, loss, float(start))
            growth = checks.explosion(steps[steps >= start], loss[steps >= start])
            assert (d.nonfinite_in_window, d.nonfinite_before_window, d.first_nonfinite_step, d.ends_nonfinite,
                    d.recovered) == (0, 0, None, False, True)
            assert d.growth == (None if growth is None else growth.factor)
            assert d.geometric == d.diverged == (growth is not None and growth.geometric)


def test_the_largest_magnitude_is_that_of_the_finite_values():
    from siamdiag.engine.analysis import largest_magnitude

    rng = np.random.default_rng(2)
    cases = [rng.standard_normal(1000) * 10.0 ** rng.integers(-300, 300, 1000), -np.arange(1.0, 6.0),
             np.array([-0.0, 0.0]), np.array([]), np.array([np.nan, np.inf, -np.inf]),
             np.array([1.0, np.nan, -7.5, np.inf]), np.array([-1e308, 1e308, -np.inf])]
    for x in cases:
        expected = float(np.max(np.abs(x), where=np.isfinite(x), initial=0.0))
        assert largest_magnitude(x) == expected and not np.signbit(largest_magnitude(x))
