"""The shortcuts of engine/prepare.py on long runs give what the plain definitions give: the
logging-interval check settled by the extreme spacings, the in-order check without an array of
differences, and a grad norm logged on the loss's own steps taken as it is."""
import numpy as np
import pytest

from siamdiag.engine.prepare import align, interval_change, last_per_step
from siamdiag.logs.tables import Metric


def interval_change_by_definition(steps):
    """The check as first written: every spacing compared with the last 50's median."""
    spacing = np.diff(steps)
    if len(spacing) < 4:
        return None
    new = float(np.median(spacing[-min(len(spacing), 50):]))
    differs = np.flatnonzero(np.abs(spacing - new) > 0.25 * new)
    if len(differs) == 0:
        return None
    last = int(differs[-1])
    old = float(np.median(spacing[max(0, last - 50): last + 1]))
    if not (old > 0 and new > 0) or max(old / new, new / old) < 2:
        return None
    return last + 1, old, new


def step_logs(rng):
    n = int(rng.integers(3, 3000))
    kind = rng.integers(5)
    if kind == 0:   # every step
        return np.arange(n, dtype=np.float64)
    if kind == 1:   # a change of interval at a random point
        cut = int(rng.integers(1, n))
        return np.cumsum(np.r_[np.ones(cut), np.full(n - cut, float(rng.choice([2, 5, 0.5, 1.2])))])
    if kind == 2:   # jitter around one interval, sometimes right at the 25 % edge
        return np.cumsum(1.0 + rng.choice([0.0, 0.25, -0.25, 0.2499999, 0.2500001], n))
    if kind == 3:   # float steps (epochs as fractions)
        return np.cumsum(np.full(n, 1 / 3)) + rng.random() * 1e6
    return np.cumsum(rng.exponential(1.0, n))   # no interval at all


def test_interval_change_equals_its_definition():
    rng = np.random.default_rng(20)
    for _ in range(3000):
        steps = step_logs(rng)
        assert interval_change(steps) == interval_change_by_definition(steps)


@pytest.mark.parametrize("steps", [[0, 1, 2, 3], [0, 1, 1, 2], [3, 2, 1], [0, 5e-324, 1e-323], [1, np.nan, 2],
                                   [-1e308, 1e308], [0, 0]])
def test_in_order_check_without_differences_agrees_with_them(steps):
    steps = np.asarray(steps, dtype=np.float64)
    got_steps, _values, dropped, reordered = last_per_step(Metric(steps=steps, values=np.arange(len(steps), dtype=float)))
    finite = steps[np.isfinite(steps)]
    with np.errstate(over="ignore"):   # 1e308 - (-1e308) is inf, still > 0
        in_order = len(finite) < 2 or bool(np.all(np.diff(finite) > 0))
    assert reordered == (not in_order)
    assert list(got_steps) == sorted(set(finite)) and dropped == len(finite) - len(set(finite))


def test_a_grad_norm_on_the_loss_steps_is_taken_as_logged():
    steps = np.arange(10, dtype=np.float64)
    grad = Metric(steps=steps, values=np.linspace(1, 2, 10))
    assert align(steps, grad) is grad.values
    np.testing.assert_array_equal(align(steps.copy(), grad), grad.values)   # the plain path agrees
    shifted = Metric(steps=steps + 0.5, values=grad.values)
    assert np.isnan(align(steps, shifted)).all()
