"""One run from ordered series to verdict: prepare the window, run the checks, decide, and
say why in words a user can act on. No printing, no exiting."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import checks
from .decide import Verdict, WindowTests, decide_tests
from ..logs.tables import Metric, RawRun
from .numerics import block_means
from .prepare import Options, OrderedRun, PreparedSeries, Window, order_run, prepare_series


@dataclass(frozen=True)
class RunResult:
    """Everything known about one run; the report and every renderer read only this."""

    run: str
    source: str
    verdict: Verdict
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    points: int
    window: Window | None
    window_points: int
    sigma: float | None = None
    divergence: checks.Divergence | None = None
    degeneracy: checks.Degeneracy | None = None
    tests: WindowTests | None = None
    rejected: frozenset[str] = field(default_factory=frozenset)
    grad_norm: checks.Coupling | None = None
    profile: tuple[float, ...] = ()  # the finite loss in PROFILE_POINTS chunk means, for sparklines


def fmt_step(step: float) -> str:
    return f"{int(step):,}" if float(step).is_integer() else f"{step:,.4g}"


def fmt_p(p: float) -> str:
    return f"p={p:.2g}" if p >= 1e-4 else "p<1e-4"


# Which findings lead the reasons, by verdict: the one that decided it comes first.
REASON_ORDER = {
    Verdict.NOT_CONVERGED: ("transient", "drift", "level_shift"),
    Verdict.NONSTATIONARY: ("level_shift", "variance", "drift", "unit_root"),
}


def explain(tests: WindowTests, rejected: set[str], verdict: Verdict, window: Window, alpha: float,
            sigma: float) -> list[str]:
    """Human reasons for a tested window, most decisive first."""
    at = lambda frac: fmt_step(window.step_at(frac))  # noqa: E731
    d, s, v, u = tests.drift, tests.level_shift, tests.variance, tests.unit_root
    found: dict[str, str] = {}
    if "level_shift" in rejected:
        found["level_shift"] = f"level shift of {s.delta / sigma:+.2f}σ near step {at(s.at_fraction)} ({fmt_p(s.p_value)})"
    if tests.transient_in_window:
        found["transient"] = (f"the learning transient reaches into the window: the burn-in (MSER-5) ends at "
                              f"step {fmt_step(window.burn_in_step)}, after the window start {fmt_step(window.first_step)}")
    if "drift" in rejected:
        direction = "still decreasing" if d.total < 0 else "drifting upward"
        found["drift"] = (f"loss {direction}: {d.total_sigma:+.2f}σ over the window, beyond the "
                          f"±{d.margin_sigma:g}σ margin ({fmt_p(d.p_value)})")
    if "variance" in rejected:
        found["variance"] = f"variance changed ×{v.ratio:.2f} near step {at(v.at_fraction)} ({fmt_p(v.p_value)})"
    if "unit_root" in rejected:
        evidence = (f"KPSS rejects level stationarity ({fmt_p(u.kpss.p_value)})" if u.kpss.p_value < 0.05 else
                    f"the window holds only {tests.persistence.effective_size:.0f} effectively independent points")
        found["unit_root"] = (f"unit-root-like wandering: ADF cannot reject a unit root ({fmt_p(u.adf.p_value)}) and "
                              f"{evidence}; if the logged loss is smoothed (EMA), log the raw per-step loss")
    first = REASON_ORDER.get(verdict, ())
    reasons = [found[k] for k in first if k in found] + [text for k, text in found.items() if k not in first]
    if verdict is Verdict.INCONCLUSIVE:
        reasons.append(f"too persistent to decide: effective sample size {tests.persistence.effective_size:.0f} "
                       f"< {checks.MIN_ESS:.0f} (τ_int={tests.persistence.tau_int:.1f}); log longer or judge a longer window")
    if verdict is Verdict.STATIONARY:
        reasons.append(f"no drift beyond ±{d.margin_sigma:g}σ ({d.total_sigma:+.2f}σ), no level shift, "
                       f"no variance change at family α={alpha:g}; ADF/KPSS: {u.label.replace('_', ' ')}")
    return reasons


PROFILE_POINTS = 16


def loss_profile(loss: np.ndarray, points: int = PROFILE_POINTS) -> tuple[float, ...]:
    """The shape of the run at a glance: the finite loss cut into ``points`` equal chunks
    (fewer for short runs), each chunk's mean."""
    finite = loss[np.isfinite(loss)]
    if len(finite) == 0:
        return ()
    return tuple(float(chunk.mean()) for chunk in np.array_split(finite, min(points, len(finite))))


def analyze_run(run: OrderedRun, options: Options) -> RunResult:
    """Judge one run. Raises nothing for any finite or non-finite input of any length."""
    base = dict(run=run.name, source=run.source, notes=run.notes, points=len(run.loss),
                profile=loss_profile(run.loss))
    steps, loss = run.steps, run.loss
    finite_count = int(np.isfinite(loss).sum())
    prepared = prepare_series(steps, loss, options)
    if prepared is None:
        # No window to judge: only the end of the run can still show a blow-up.
        div = checks.divergence(steps, loss, float(steps[-1])) if len(loss) else None
        # A log that ends non-finite has diverged however short it is (a run stopped on NaN).
        if div is not None and (div.ends_nonfinite or (div.nonfinite_in_window and len(loss) >= options.min_points)):
            return RunResult(verdict=Verdict.DIVERGED, reasons=(_nonfinite_reason(div),), window=None,
                             window_points=0, divergence=div, **base)
        return RunResult(verdict=Verdict.INSUFFICIENT_DATA, window=None, window_points=0,
                         reasons=(f"only {finite_count:,} finite loss values"
                                  + ("" if finite_count < options.min_points else " in the evaluation window")
                                  + f"; at least {options.min_points} are needed",), **base)
    window = prepared.window
    div = checks.divergence(steps, loss, window.first_step)
    common = dict(window=window, window_points=len(prepared.window_loss), divergence=div, **base)
    if div.diverged:
        return RunResult(verdict=Verdict.DIVERGED, reasons=(_divergence_reason(div),), **common)
    notes = list(run.notes)
    if div.nonfinite_before_window:
        notes.append(f"{div.nonfinite_before_window:,} non-finite loss values before the window "
                     f"(first at step {fmt_step(div.first_nonfinite_step)}); the run recovered")
    common["notes"] = tuple(notes)
    window_extras = {k: v[np.searchsorted(steps, window.first_step):] for k, v in run.extras.items() if v is not None}
    deg = checks.degeneracy(prepared.window_loss, window_extras)
    if deg.degenerate:
        return RunResult(verdict=Verdict.DEGENERATE, reasons=(_degeneracy_reason(deg),), degeneracy=deg, **common)
    sigma = checks.sigma_of(prepared)
    tests = window_tests(prepared, sigma, options.alpha)
    verdict, rejected = decide_tests(tests, options.alpha)
    reasons = explain(tests, rejected, verdict, window, options.alpha, sigma)
    coupling = None
    if run.grad_norm is not None:
        coupling = window_coupling(run, prepared)
        if coupling is not None and coupling.coupled:
            reasons.append(f"loss swings track grad-norm swings: r={coupling.r:+.2f} "
                           f"[{coupling.ci_low:+.2f}, {coupling.ci_high:+.2f}] after prewhitening")
    return RunResult(verdict=verdict, reasons=tuple(reasons), sigma=sigma, degeneracy=deg, tests=tests,
                     rejected=frozenset(rejected), grad_norm=coupling, **common)


def window_tests(prepared: PreparedSeries, sigma: float, alpha: float) -> WindowTests:
    """Every gating test on the window's block means (winsorised). The MSER burn-in counts as
    a transient in the window only when the loss is also falling at level alpha: MSER is an
    estimator, not a test, and a late spike can pull it into the window on flat noise."""
    w = prepared.agg_window
    persist = checks.persistence(w)
    batches = checks.batch_count(persist.points, persist.tau_int)
    inflation = checks.short_batch_inflation(persist.points, batches, persist.tau_int)
    drift = checks.drift(w, sigma, batches, inflation)
    window = prepared.window
    transient = (window.burn_in_method != "fixed" and window.burn_in_step is not None
                 and window.burn_in_step > window.first_step and drift.total < 0
                 and drift.p_value < alpha)
    return WindowTests(drift=drift, level_shift=checks.level_shift(w, sigma, batches, inflation),
                       variance=checks.variance_change(w), unit_root=checks.unit_root(w),
                       shape=checks.shape(w, batches), persistence=persist, batches=batches,
                       transient_in_window=bool(transient))


def window_coupling(run: OrderedRun, prepared: PreparedSeries) -> checks.Coupling | None:
    """Coupling on the window, over the same blocks as the loss tests."""
    start = int(np.searchsorted(run.steps, prepared.window.first_step))
    loss, grad = run.loss[start:], run.grad_norm[start:]
    both = np.isfinite(loss) & np.isfinite(grad)
    loss, grad = loss[both], grad[both]
    block = prepared.window.block
    if len(loss) // block < 50:
        return None
    return checks.coupling(block_means(loss, block), block_means(grad, block))


def _nonfinite_reason(div: checks.Divergence) -> str:
    where = f" (first at step {fmt_step(div.first_nonfinite_step)})" if div.first_nonfinite_step is not None else ""
    if div.ends_nonfinite:
        return f"the loss ends non-finite (NaN/inf){where}"
    return f"{div.nonfinite_in_window:,} non-finite loss values in the evaluation window{where}"


def _divergence_reason(div: checks.Divergence) -> str:
    if div.nonfinite_in_window or div.ends_nonfinite:
        return _nonfinite_reason(div)
    return (f"explosive growth at the end: {div.tail_share_above:.0%} of the last {div.tail_points:,} "
            f"points exceed median + {checks.EXPLOSION_MADS:g} robust σ ({div.threshold:.4g})")


def _degeneracy_reason(deg: checks.Degeneracy) -> str:
    share = f"{deg.modal_share:.1%} of the window"
    return {
        "zero": f"loss pinned at 0 ({share}): no active pairs/triplets, nothing is being learned",
        "margin": f"loss pinned at the margin {deg.modal_value:.4g} ({share}): embeddings have collapsed to a point",
        "constant": f"loss constant at {deg.modal_value:.6g} ({share}); a flat loss that does not move is not learning",
        "inactive": "no active pairs/triplets in the window (active_fraction = 0): nothing is being learned",
        "collapsed": "positive and negative distances are both 0: embeddings have collapsed to a point",
    }[deg.kind]


def analyze_arrays(loss, steps=None, grad_norm=None, options: Options = Options(), name: str = "run") -> RunResult:
    """Judge one run given as arrays (steps default to 0..n-1)."""
    loss = np.asarray(loss, dtype=np.float64)
    steps = np.arange(len(loss), dtype=np.float64) if steps is None else np.asarray(steps, dtype=np.float64)
    metrics = {"loss": Metric(steps, loss)}
    if grad_norm is not None:
        metrics["grad_norm"] = Metric(steps, np.asarray(grad_norm, dtype=np.float64))
    return analyze_run(order_run(RawRun(name=name, source=name, metrics=metrics)), options)
