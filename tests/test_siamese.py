"""Siamese-aware findings (siamdiag.engine.siamese): each on a log built so that its truth is
known, with its number, its advice, and whether it gates. And BLAS held to one thread in the API."""
import numpy as np
import pytest

import siamdiag
from siamdiag.engine.analysis import analyze_run
from siamdiag.engine.decide import Verdict
from siamdiag.engine.prepare import Options, order_run
from siamdiag.engine.synthetic import TRAINING_SHAPES, SyntheticRun, as_raw_run

N = 2000


def judge(made):
    return analyze_run(order_run(as_raw_run(made)), Options())


def names(result):
    return {f.name for f in result.findings}


def settled(rng, n=N):
    t = np.arange(n, dtype=float)
    return 0.1 + 0.2 * np.exp(-t / (n / 20)) + 0.01 * rng.standard_normal(n)


def test_stalled_run_gates_as_degenerate_with_advice():
    result = judge(TRAINING_SHAPES["stalled_norm_growth"].make(N, np.random.default_rng(0)))
    assert result.verdict is Verdict.DEGENERATE
    [stalled] = [f for f in result.findings if f.name == "stalled"]
    assert stalled.gating and stalled.value > 100 and "lower the learning rate" in stalled.advice


@pytest.mark.parametrize("extras, finding", [
    # a run that learned (the loss fell 3x) while the norm grew x6: reported, not gating
    ({"embedding_norm": lambda t: 1 + 5 * (1 - np.exp(-t / 200))}, None),
    ({"embedding_norm": lambda t: np.where(t < 3, 1.0, 50.0)}, "embedding_norm_growth"),
])
def test_norm_growth_alone_is_reported_never_gating(extras, finding):
    rng = np.random.default_rng(1)
    t = np.arange(N, dtype=float)
    result = judge(SyntheticRun(settled(rng), extras={k: f(t) for k, f in extras.items()}))
    assert result.verdict is Verdict.STATIONARY
    assert ("embedding_norm_growth" in names(result)) == (finding is not None)
    assert not any(f.gating for f in result.findings)


@pytest.mark.parametrize("case", ["margin schedule", "gradual growth", "learning late"])
def test_what_only_looks_stalled_is_not(case):
    # found on siamdiag train's own runs: an adaptive margin (0.2 -> 1.45) keeps the loss up while the
    # norm grows gradually; a cut-init run sits at its start for 2,000 steps, then learns
    rng = np.random.default_rng(9)
    t = np.arange(N, dtype=float)
    flat = 0.2 + 0.01 * rng.standard_normal(N)
    blown = np.where(t < 3, 0.3, 300.0)
    made = {"margin schedule": SyntheticRun(flat, extras={"embedding_norm": blown, "margin": 0.2 + t / N}),
            "gradual growth": SyntheticRun(flat, extras={"embedding_norm": 0.3 * np.exp(t / 300)}),
            "learning late": SyntheticRun(np.where(t < 1500, 0.5, 0.5 - 0.3 * (1 - np.exp(-(t - 1500) / 100)))
                                          + 0.005 * rng.standard_normal(N),
                                          extras={"embedding_norm": np.where(t < 1500, 0.28, 14.0)})}[case]
    result = judge(made)
    assert "stalled" not in names(result) and result.verdict is not Verdict.DEGENERATE


def test_a_loss_that_never_fell_alone_is_reported_never_gating():
    result = judge(0.3 + 0.01 * np.random.default_rng(2).standard_normal(N))
    assert result.verdict is Verdict.STATIONARY and names(result) == {"never_learned"}


def test_a_log_that_starts_late_is_not_judged_for_learning():
    steps = np.arange(N, dtype=float) + 50_000   # a tail cut from a long run
    result = judge(SyntheticRun(0.3 + 0.01 * np.random.default_rng(2).standard_normal(N), steps=steps))
    assert "never_learned" not in names(result)


@pytest.mark.parametrize("easy, finding", [(1.0, "margin_too_easy"), (0.0, "margin_unreachable"), (0.5, None)])
def test_easy_fraction_at_its_ends_is_a_margin_finding(easy, finding):
    rng = np.random.default_rng(3)
    result = judge(SyntheticRun(settled(rng), extras={"easy_fraction": np.full(N, easy)}))
    found = names(result) & {"margin_too_easy", "margin_unreachable"}
    assert found == ({finding} if finding else set())
    assert result.verdict is Verdict.STATIONARY


def test_triplet_loss_at_zero_because_every_triplet_is_easy_says_so():
    result = judge(SyntheticRun(np.zeros(N), extras={"easy_fraction": np.ones(N)}))
    assert result.verdict is Verdict.DEGENERATE and result.degeneracy.kind == "easy"
    assert "every triplet already meets the margin" in result.reasons[0] and "nothing is being learned" not in result.reasons[0]


def test_distances_converging_is_collapse_in_progress():
    rng = np.random.default_rng(4)
    t = np.arange(N, dtype=float)
    pos = 0.3 + 0.01 * rng.standard_normal(N)
    neg = pos + 0.6 * np.exp(-t / 300)              # the gap shrinks to ~0
    result = judge(SyntheticRun(settled(rng), extras={"pos_dist": pos, "neg_dist": neg}))
    assert "distances_converging" in names(result)
    healthy = judge(SyntheticRun(settled(rng), extras={"pos_dist": pos, "neg_dist": pos + 0.6}))
    assert "distances_converging" not in names(healthy)


@pytest.mark.parametrize("factor, finding", [(30.0, "gradients_exploding"), (1 / 30, "gradients_vanishing"), (1.5, None)])
def test_gradient_trend_over_the_window(factor, finding):
    rng = np.random.default_rng(5)
    t = np.arange(N, dtype=float)
    grad = np.exp(np.log(factor) * np.clip((t - N / 2) / (N / 2), 0, 1)) * (1 + 0.1 * rng.standard_normal(N))
    result = judge(SyntheticRun(settled(rng), extras={"grad_norm": grad}))
    found = names(result) & {"gradients_exploding", "gradients_vanishing"}
    assert found == ({finding} if finding else set())


def test_findings_have_numbers_words_and_advice_in_json():
    from siamdiag.report.model import GatePolicy, Report, report_to_dict
    result = judge(TRAINING_SHAPES["stalled_norm_growth"].make(N, np.random.default_rng(0)))
    doc = report_to_dict(Report(runs=(result,), policy=GatePolicy(), alpha=0.01))
    stalled = next(f for f in doc["runs"][0]["findings"] if f["name"] == "stalled")
    assert stalled["gating"] is True and stalled["value"] > 100 and stalled["message"] and stalled["advice"]


def test_the_api_holds_blas_to_one_thread_while_judging(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import siamdiag.engine.analysis as analysis

    seen = []
    original = analysis.analyze_run

    def recording(run, options):
        seen.extend(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
        return original(run, options)

    monkeypatch.setattr(analysis, "analyze_run", recording)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        siamdiag.analyze(np.random.default_rng(6).standard_normal(500))
    assert seen and set(seen) == {1}
