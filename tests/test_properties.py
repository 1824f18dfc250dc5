"""Properties that must hold for every input (hypothesis)."""
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from siamdiag.engine.analysis import analyze_arrays
from siamdiag.engine.checks import PINNED_RTOL
from siamdiag.errors import SiamdiagError
from siamdiag.logs.ingest import read_runs
from siamdiag.pipeline import analyze_paths
from siamdiag.engine.synthetic import PROCESSES

NAMES = sorted(PROCESSES)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 10**6), n=st.sampled_from([300, 2000]),
       a=st.floats(1e-3, 1e3))
def test_verdict_invariant_under_positive_scaling(name, seed, n, a):
    x = PROCESSES[name].make(n, np.random.default_rng(seed))
    y = a * x
    # The promise holds while the loss still moves by more than float32 rounding of its level:
    # a loss varying by less than PINNED_RTOL of its value is a pinned (dead) loss, rightly.
    for series in (x, y):
        spread = np.median(np.abs(series - np.median(series)))
        assume(spread > 100 * PINNED_RTOL * abs(np.median(series)))
    assert analyze_arrays(y).verdict == analyze_arrays(x).verdict


def judged_against_the_level(result) -> bool:
    """Whether a verdict leaned on the loss's level: a practically large (or flat) smoothed path,
    or batch losses recovered from an EMA (which needs the log's sign)."""
    tests = result.tests
    return bool(tests is not None and tests.wander is not None
                or any("exponentially smoothed" in note for note in result.notes))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 10**6), n=st.sampled_from([300, 2000]),
       b=st.floats(-1e3, 1e3))
def test_a_shift_changes_only_verdicts_judged_against_the_level(name, seed, n, b):
    x = PROCESSES[name].make(n, np.random.default_rng(seed))
    y = x + b
    for series in (x, y):
        spread = np.median(np.abs(series - np.median(series)))
        assume(spread > 100 * PINNED_RTOL * abs(np.median(series)))
    before, after = analyze_arrays(x), analyze_arrays(y)
    assert before.verdict == after.verdict or judged_against_the_level(before) or judged_against_the_level(after)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(4))))
def test_verdicts_do_not_depend_on_run_order(tmp_path, order):
    rng = np.random.default_rng(5)
    names = ["white_noise", "slow_exp_decay", "level_shift_1sigma_up", "divergence_last_5pct"]
    series = {k: PROCESSES[k].make(600, rng) for k in names}
    lines = ["run,step,loss"]
    for i in order:
        lines += [f"{names[i]},{s},{float(v)!r}" for s, v in enumerate(series[names[i]])]
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n")
    verdicts = {r.run: r.verdict for r in analyze_paths([str(path)]).runs}
    expected = {k: analyze_arrays(series[k]).verdict for k in names}
    assert verdicts == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(alphabet="step,los\n\r\t0123456789.-eE+naif\"' ", max_size=300).map(str.encode)))
def test_no_byte_string_crashes_the_reader(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        for run in read_runs([str(path)]):
            assert "loss" in run.metrics
        analyze_paths([str(path)])
    except SiamdiagError as exc:
        assert str(exc)  # a clear message, never a bare exception
