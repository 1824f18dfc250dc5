"""One run from ordered series to verdict: prepare the window, run the checks, decide, and
say why in words a user can act on. No printing, no exiting."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from . import checks, magnitude, running_mean, siamese, smoothing
from .decide import Verdict, WindowTests, decide_tests, move_verdict
from .magnitude import Wander
from ..logs.tables import Metric, RawRun, Tracker
from .numerics import HUGE, block_means, exact_median, kept, mean, robust_sigma
from .prepare import Options, OrderedRun, PreparedSeries, Window, order_run, prepare_series, window_start_index


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
    lr_change: tuple[float, float] | None = None  # (step, ratio) of the lr jump the window starts after
    lr_period: int | None = None     # period of lr restarts whose cycle profile was removed
    interval_change: tuple[float, float, float] | None = None  # (step, old, new) logging interval the window starts after
    level_drop: float | None = None  # step of a drop of the loss (no lr logged) the window starts after
    tolerance: float | None = None   # the practical tolerance in loss units, when one was given
    findings: tuple[siamese.Finding, ...] = ()   # Siamese-specific observations, with advice
    tracker: Tracker | None = None   # where the run's tracker keeps it (for --write-back); not in the JSON


def fmt_step(step: float) -> str:
    return f"{int(step):,}" if float(step).is_integer() else f"{step:,.4g}"


def fmt_p(p: float) -> str:
    return f"p={p:.2g}" if p >= 1e-4 else "p<1e-4"


# Which findings lead the reasons, by verdict: the one that decided it comes first.
REASON_ORDER = {
    Verdict.NOT_CONVERGED: ("transient", "drift", "level_shift", "end_change", "move", "wander"),
    Verdict.NONSTATIONARY: ("end_change", "level_shift", "variance", "drift", "unit_root", "move", "wander"),
}


TINY_CHANGE = 1e-3   # a drift below this fraction of the loss level may be practically nothing


def tiny_change_advice(total: float, level: float) -> str:
    """For a drift that is significant only because the loss is (nearly) noiseless: its size
    relative to the loss, and how to accept it."""
    if level == 0 or abs(total / level) >= TINY_CHANGE:
        return ""
    return (f"; that is only {abs(total / level):.2g} of the loss's value (a nearly noiseless curve, e.g. "
            "full-batch training): if that is negligible, pass a tolerance, e.g. --tolerance 0.1%")


def explain(tests: WindowTests, rejected: set[str], verdict: Verdict, window: Window, alpha: float,
            sigma: float, level: float = 0.0, looks_smoothed: bool = False) -> list[str]:
    """Human reasons for a tested window, most decisive first; ``tests``, ``sigma`` and ``level``
    (the window median) in loss units. Advice to log the raw loss comes only with a log that
    shows smoothing (``looks_smoothed``: smooth, with no batch noise, but not undone)."""
    at = lambda frac: fmt_step(window.step_at(frac))  # noqa: E731
    d, s, v, u, e = tests.drift, tests.level_shift, tests.variance, tests.unit_root, tests.end_change
    found: dict[str, str] = {}
    if "level_shift" in rejected:
        found["level_shift"] = f"level shift of {s.delta / sigma:+.2f}σ near step {at(s.at_fraction)} ({fmt_p(s.p_value)})"
    if "end_change" in rejected:
        direction = "rose" if e.delta > 0 else "dropped"
        last = max(1, round(e.points / tests.persistence.points * (window.last_step - window.first_step)))
        found["end_change"] = (f"the loss {direction} by {abs(e.delta) / sigma:.1f}σ over about the last "
                               f"{fmt_step(last)} steps, against the rest of the window ({fmt_p(e.p_value)})")
    if tests.transient_in_window:
        found["transient"] = (f"the learning transient reaches into the window: the burn-in (MSER-5) ends at "
                              f"step {fmt_step(window.burn_in_step)}, after the window start {fmt_step(window.first_step)}")
    if "drift" in rejected:
        direction = "still decreasing" if d.total < 0 else "drifting upward"
        found["drift"] = (f"loss {direction}: {d.total_sigma:+.2f}σ over the window, beyond the "
                          f"±{d.margin_sigma:.2g}σ margin ({fmt_p(d.p_value)})" + tiny_change_advice(d.total, level))
    if "variance" in rejected:
        if v.gradual:
            found["variance"] = (f"the spread of the loss {'grew' if v.ratio > 1 else 'shrank'} ×{v.ratio:.2f} over the "
                                 f"window ({fmt_p(v.p_value)}): an oscillation or noise that "
                                 f"{'grows (a learning rate too high?)' if v.ratio > 1 else 'dies out'}")
        else:
            what = "variance" if v.on == "residuals" else "spread of the loss"
            found["variance"] = f"{what} changed ×{v.ratio:.2f} near step {at(v.at_fraction)} ({fmt_p(v.p_value)})"
    if "unit_root" in rejected:
        evidence = (f"KPSS rejects level stationarity ({fmt_p(u.kpss.p_value)})" if u.kpss.p_value < 0.05 else
                    f"the window holds only {tests.persistence.effective_size:.0f} effectively independent points")
        found["unit_root"] = (f"unit-root-like wandering: ADF cannot reject a unit root ({fmt_p(u.adf.p_value)}) and "
                              f"{evidence}" + ("; the log looks smoothed (no batch noise in it) but could not be "
                                               "undone: log the raw per-step loss" if looks_smoothed else ""))
    if "move" in rejected and tests.move is not None:
        found["move"] = move_reason(tests.move, window, sigma)
    if "wander" in rejected and tests.wander is not None:
        found["wander"] = wander_reason(tests.wander, window, tests.persistence)
    first = REASON_ORDER.get(verdict, ())
    reasons = [found[k] for k in first if k in found] + [text for k, text in found.items() if k not in first]
    if verdict is Verdict.INCONCLUSIVE and tests.wander is None:
        adf = (f"ADF rejects a unit root ({fmt_p(tests.unit_root.adf.p_value)})"
               if tests.persistence.points >= checks.UNIT_ROOT_MIN_POINTS else
               "the window is too short for ADF to tell persistence from a random walk")
        reasons.append(f"too persistent to decide: effective sample size {tests.persistence.effective_size:.0f} "
                       f"< {checks.MIN_ESS:.0f} (τ_int={tests.persistence.tau_int:.1f}); the loss has no level away "
                       f"from 0 to measure the size of its wander against, and {adf}: persistent noise or a slow "
                       "move, the data cannot tell; log longer or judge a longer window")
    if verdict is Verdict.STATIONARY and tests.within_tolerance:
        return ["every block mean of the window lies within the tolerance of its median: nothing moves by "
                "more than the tolerance allows"]
    if verdict in (Verdict.STATIONARY, Verdict.INCONCLUSIVE) and tests.wander is not None and not tests.persistence.enough:
        return reasons + [flat_wander_reason(tests.wander, tests.persistence, verdict)]
    if verdict is Verdict.STATIONARY:
        estimate = "" if abs(d.total_sigma) <= d.margin_sigma else ", an estimate not significantly beyond it"
        vetoed = tests.wander is not None and tests.wander.flat and u.p_value < alpha
        joint = {"unit_root": (f"KPSS rejects level stationarity ({fmt_p(u.kpss.p_value)}) and ADF cannot reject a unit "
                               f"root, but the smoothed path stays within {percent(tests.wander.range_bound / tests.wander.level)} "
                               "of the level: practically flat" if vetoed else
                               "ADF/KPSS lean to a unit root, not significantly after Holm"),
                 "trend_or_break": "ADF rejects a unit root; KPSS's rejection is the persistence the drift and "
                                   "shift tests already judged"}.get(u.label, f"ADF/KPSS: {u.label.replace('_', ' ')}")
        reasons.append(f"no drift beyond ±{d.margin_sigma:.2g}σ (estimated {d.total_sigma:+.2f}σ{estimate}), no level "
                       f"shift, no variance change, no change at the end, at family α={alpha:g}; {joint}")
    return reasons


def percent(fraction: float) -> str:
    """A share of the level in per cent: two significant digits under 10 %, whole per cents above."""
    return f"{100 * fraction:.2g} %" if fraction < 0.1 else f"{100 * fraction:.0f} %"


def wander_reason(wander: Wander, window: Window, persistence: checks.Persistence) -> str:
    """A persistent window that moves by a practically large amount, in per cent of its level."""
    level = wander.level
    threshold = percent(wander.threshold / level)
    why = (f"({fmt_p(wander.p_value)} against the noise around the smoothed path; the window holds "
           f"{persistence.effective_size:.0f} effectively independent points)")
    if wander.shape in ("fall", "rise"):
        verb = "fell" if wander.shape == "fall" else "rose"
        lead = "the loss is still falling" if wander.shape == "fall" else "the loss is rising"
        return (f"{lead}: its smoothed level {verb} by {percent(abs(wander.change) / level)} of its level over the "
                f"window, beyond the {threshold} that counts as moving {why}")
    period = wander.period_fraction * (window.last_step - window.first_step)
    return (f"the loss wanders by ±{percent(wander.relative / 2)} of its level (period ~{fmt_step(float(f'{period:.2g}'))} "
            f"steps), beyond the {threshold} (peak to peak) that counts as moving {why}")


def flat_wander_reason(wander: Wander, persistence: checks.Persistence, verdict: Verdict) -> str:
    """A persistent window whose smoothed path is practically flat, or cannot be told either way."""
    threshold = percent(wander.threshold / wander.level)
    persistent = (f"persistent (effective sample size {persistence.effective_size:.0f}, "
                  f"τ_int={persistence.tau_int:.1f})")
    if verdict is Verdict.STATIONARY:
        return (f"{persistent} but practically flat: the smoothed loss stays within a range of "
                f"{percent(wander.range_bound / wander.level)} of its level (its error included), under the "
                f"{threshold} that counts as moving")
    return (f"too persistent to decide: the smoothed loss moves over {percent(wander.relative)} of its level, "
            f"which the data can neither show beyond nor bound below the {threshold} that counts as moving "
            f"(effective sample size {persistence.effective_size:.0f}); log longer or judge a longer window")


def move_reason(move: checks.Move, window: Window | None, sigma: float | None) -> str:
    """A decided (or short-window) move in words, in residual-noise sigmas."""
    size = f"{move.size_noise:.0f} times the noise around it"
    p = fmt_p(move.p_value)
    where = f" near step {fmt_step(window.step_at(move.at_fraction))}" if window is not None else ""
    return {
        "rise": f"the loss rises smoothly over the window by {size} ({p})",
        "fall": f"the loss is still falling smoothly over the window, by {size} ({p})",
        "swing": f"the loss swings {'up' if move.size > 0 else 'down'} and back{where}, by {size} ({p})",
        "step": f"the loss steps {'up' if move.size > 0 else 'down'}{where}, by {size} ({p})",
    }[move.shape]


PROFILE_POINTS = 16


def loss_profile(loss: np.ndarray, points: int = PROFILE_POINTS) -> tuple[float, ...]:
    """The shape of the run at a glance: the finite loss cut into ``points`` equal chunks
    (fewer for short runs), each chunk's mean."""
    finite = kept(loss, np.isfinite(loss))
    if len(finite) == 0:
        return ()
    chunks = np.array_split(finite, min(points, len(finite)))
    means = [float(mean(chunk)) for chunk in chunks]
    if not np.isfinite(means).all():   # a sum of values near 1e308 overflowed: scale (exactly) first
        scale = running_mean.magnitude(finite)
        means = [float(mean(chunk / scale) * scale) for chunk in chunks]
    return tuple(means)


def largest_magnitude(loss: np.ndarray) -> float:
    """The largest |loss| among finite values (0 when there is none). A finite run's comes from
    its largest and smallest values, without an array of magnitudes (24 MB at 3M steps)."""
    if len(loss) and np.isfinite(loss).all():
        return float(max(np.max(loss), -np.min(loss), 0.0))
    return float(np.max(np.abs(loss), where=np.isfinite(loss), initial=0.0))


def analyze_run(run: OrderedRun, options: Options) -> RunResult:
    """Judge one run. Raises nothing for any finite or non-finite input of any length.

    The tests run on the standardised window, so they hold at any magnitude; a loss within a
    few powers of two of the float64 limit (|loss| > 2^1000, about 1e301) still overflows in
    the few figures kept in loss units (a threshold, a profile chunk), which are then inf and
    say so in a note, while the verdict stands."""
    largest = largest_magnitude(run.loss)
    if largest > HUGE:
        with np.errstate(over="ignore", invalid="ignore"):
            result = judge_run(run, options)
        return replace(result, notes=result.notes + (
            f"the loss reaches {largest:.3g}, near the float64 limit: figures in loss units "
            "may overflow to inf (the tests run on the standardised series and are unaffected)",))
    return judge_run(run, options)


def judge_run(run: OrderedRun, options: Options) -> RunResult:
    """analyze_run's work, for a loss of any magnitude below the float64 limit."""
    base = dict(run=run.name, source=run.source, notes=run.notes, points=len(run.loss),
                profile=loss_profile(run.loss), tracker=run.tracker)
    steps, loss = run.steps, run.loss
    epochs = running_mean.epoch_length(loss) if np.isfinite(loss).all() else None
    recovered = None if epochs is None else running_mean.undo_running_mean(loss, *epochs)
    doubt = None if epochs is None else running_mean.doubt(loss, recovered, *epochs, epoch=run.extras.get("epoch"))
    if doubt is not None:
        run = replace(run, notes=run.notes + (
            f"the log looked like Keras-style running means ({epochs[0]:,} steps per epoch) but was judged as "
            f"written: {doubt}",))
        base["notes"] = run.notes
        epochs = None
    if epochs is not None:
        loss = recovered
        run = replace(run, loss=loss, notes=run.notes + (
            f"the log holds running means since each epoch start (Keras-style, {epochs[0]:,} steps per epoch): "
            "judged the per-batch losses recovered from them",))
        base["notes"] = run.notes
    smoothed = smoothing.smoothing(loss) if epochs is None and np.isfinite(loss).all() else None
    if smoothed is not None and smoothed.undo:
        loss = smoothing.undo_ema(loss, smoothed.beta)
        run = replace(run, loss=loss, notes=run.notes + (
            f"the log looks exponentially smoothed (each value ≈ {smoothed.beta:.3g} × the previous one + "
            f"{1 - smoothed.beta:.2g} × the batch loss, as fastai's smooth_loss or a progress-bar average logs; "
            "no white batch noise left in it): judged the batch losses recovered from it",))
        base["notes"] = run.notes
    prepared = prepare_series(steps, loss, options, lr=run.extras.get("lr"))
    if prepared is None:
        return short_run(run, options, base)
    judged = judge_window(prepared, options.alpha)
    drop = settled_drop(prepared, judged, options) if run.extras.get("lr") is None else None
    if drop is not None:
        after = prepare_series(steps, loss, options, level_drop=drop.step)
        if after is not None and after.level_drop is not None:
            judged_after = judge_window(after, options.alpha)
            if settled_after(after, judged_after, drop.size):
                prepared, judged = after, judged_after
    window = prepared.window
    div = checks.divergence(steps, loss, window.first_step)
    common = dict(window=window, window_points=len(prepared.window_loss), divergence=div,
                  lr_change=prepared.lr_change, lr_period=prepared.lr_period, interval_change=prepared.interval_change,
                  level_drop=prepared.level_drop,
                  tolerance=prepared.tolerance * prepared.scale if prepared.tolerance > 0 else None, **base)
    if div.diverged:
        return RunResult(verdict=Verdict.DIVERGED, reasons=(_divergence_reason(div),), **common)
    notes = list(run.notes) + window_notes(prepared, options)
    if prepared.level_drop is not None:
        notes.append(f"the loss dropped by {abs(drop.sigmas):.1f}σ near step {fmt_step(drop.step)} with no learning rate "
                     f"logged (a step decay?): judged only the loss after the drop, from step "
                     f"{fmt_step(prepared.window.first_step)} (where its transient ends); log the learning rate "
                     "(an lr column) so a schedule's drop is told from a change in training")
    if div.nonfinite_in_window or div.nonfinite_before_window:
        notes.append(f"{div.nonfinite_in_window + div.nonfinite_before_window:,} isolated non-finite loss value(s) "
                     f"(first at step {fmt_step(div.first_nonfinite_step)}), each followed by finite values: "
                     "skipped steps the run recovered from (e.g. an fp16 overflow the loss scaler skipped)")
    common["notes"] = tuple(notes)
    window_index = int(np.searchsorted(steps, window.first_step))
    window_extras = {k: v[window_index:] for k, v in run.extras.items() if v is not None}
    deg = checks.degeneracy(prepared.sorted_window, prepared.level, window_extras, loss[:window_index])
    findings = siamese.siamese_findings(steps, loss, run.grad_norm, run.extras, window_index, prepared.level)
    if deg.kind == "easy":  # the degeneracy reason says it already
        findings = tuple(f for f in findings if f.name != "margin_too_easy")
    common["findings"] = findings
    told = [f.reason() for f in findings]
    if deg.degenerate:
        return RunResult(verdict=Verdict.DEGENERATE, reasons=(_degeneracy_reason(deg), *told), degeneracy=deg,
                         **common)
    sigma = prepared.spread / prepared.scale   # robust sigma is scale-equivariant
    tests, verdict, rejected = judged
    tests = in_loss_units(tests, prepared.scale)
    if verdict in (Verdict.STATIONARY, Verdict.INCONCLUSIVE) and any(f.gating for f in findings):
        # stationary, but never learned: flat for the wrong reason
        return RunResult(verdict=Verdict.DEGENERATE, reasons=tuple(told), degeneracy=deg, sigma=sigma * prepared.scale,
                         tests=tests, rejected=frozenset(rejected), **common)
    reasons = explain(tests, rejected, verdict, window, options.alpha, sigma * prepared.scale, prepared.level,
                      looks_smoothed=smoothed is not None and smoothed.smooth and not smoothed.undo)
    coupling = None
    if run.grad_norm is not None:
        coupling = window_coupling(run, prepared)
        if coupling is not None and coupling.coupled:
            reasons.append(f"loss swings track grad-norm swings: r={coupling.r:+.2f} "
                           f"[{coupling.ci_low:+.2f}, {coupling.ci_high:+.2f}] after prewhitening")
    reasons += told
    return RunResult(verdict=verdict, reasons=tuple(reasons), sigma=sigma * prepared.scale, degeneracy=deg,
                     tests=tests, rejected=frozenset(rejected), grad_norm=coupling, **common)


SETTLED_SHARE = 0.45   # a drop followed by at least this share of the window (and min_points) can be judged after
CLEAN_STEP_RATIO = 0.7  # ... when one step leaves at most 70 % of the residual a smooth curve leaves
SETTLED_MOVE = 0.5      # ... and what follows the drop moves by less than half of it


def judge_window(prepared: PreparedSeries, alpha: float) -> tuple[WindowTests, Verdict, set[str]] | None:
    """The window tests and their verdict, in standardised units; None for a window without
    spread (a pinned loss, judged on its values alone by the degeneracy check)."""
    if not prepared.spread > 0:
        return None
    tests = window_tests(prepared, prepared.spread / prepared.scale, alpha)
    return (tests, *decide_tests(tests, alpha))


class Drop(NamedTuple):
    step: float     # where the loss dropped
    size: float     # by how much, in loss units (negative)
    sigmas: float   # the same in noise sigmas of the window


def settled_drop(prepared: PreparedSeries, judged: tuple[WindowTests, Verdict, set[str]] | None,
                 options: Options) -> Drop | None:
    """A clean drop of the loss inside the window (significant at alpha on its own, and a step
    explains the window better than a curve), when the window fails and enough follows the drop
    to judge on its own: the mark of a learning-rate step decay nobody logged. The loss after it may well have settled; what follows a rise, or a drop too late to
    leave SETTLED_SHARE of the window, is judged as part of the window. A fixed burn-in is
    honoured as given."""
    if judged is None or options.burn_in is not None or prepared.window.burn_in_method != "mser-5":
        return None
    tests, verdict, _ = judged
    shift = tests.level_shift
    clean_step = tests.shape.step_rss <= CLEAN_STEP_RATIO * tests.shape.curve_rss
    if (verdict in (Verdict.STATIONARY, Verdict.INCONCLUSIVE) or shift.p_value >= options.alpha
            or not clean_step or shift.delta >= 0):
        return None
    w = prepared.agg_window
    cut = checks.best_step_fit(w)[0]   # finer than the batches
    if 1.0 - cut / len(w) < SETTLED_SHARE:
        return None
    return Drop(prepared.window.step_at(cut / len(w)), shift.delta * prepared.scale,
                shift.delta / (prepared.spread / prepared.scale))


def settled_after(prepared: PreparedSeries, judged: tuple[WindowTests, Verdict, set[str]] | None,
                  drop: float) -> bool:
    """Whether the loss after a drop (``drop`` in loss units) has settled: its window passes, and
    the drop dominates what follows it, whose smoothed path moves by less than SETTLED_MOVE of the
    drop. After an lr step the loss sits at its new level; a loss that falls and then keeps
    wandering by most of the fall is no step decay, whatever the tests make of the pieces."""
    if judged is None or judged[1] is not Verdict.STATIONARY:
        return False
    return magnitude.smooth_path(prepared.agg_window).range * prepared.scale < SETTLED_MOVE * abs(drop)


def window_notes(prepared: PreparedSeries, options: Options) -> list[str]:
    """What the schedule, the warm-up or the tolerance changed about the judging, said once per run."""
    notes = []
    if prepared.asked_first_step is not None:
        asked, window = prepared.asked_first_step, prepared.window
        flag = int(asked) if float(asked).is_integer() else asked
        where = ("no later than the second half of the run, into which the transient still reaches"
                 if (window.burn_in_step or 0.0) > window.first_step else "past its end (MSER-5) and its tail")
        notes.append(f"the window asked for (from step {fmt_step(asked)}) reaches into the learning transient: "
                     f"judged from step {fmt_step(window.first_step)}, {where}; --burn-in {flag} judges from the step "
                     "asked for")
    if prepared.lr_change is not None:
        step, ratio = prepared.lr_change
        notes.append(f"the learning rate changed ×{ratio:.3g} at step {fmt_step(step)}: judged only the loss after "
                     f"the last lr change, from step {fmt_step(prepared.window.first_step)} (where its transient ends)")
    if prepared.interval_change is not None:
        step, old, new = prepared.interval_change
        judged = ("judged only the loss logged after it" if prepared.window.burn_in_method == "interval-change"
                  else "the window's noise before it was matched to the noise after it")
        notes.append(f"the logging interval changed from {old:g} to {new:g} steps at step {fmt_step(step)} (a resume?), "
                     f"which changes the logged noise: {judged}")
    if prepared.lr_period is not None:
        notes.append(f"the learning rate restarts every {prepared.lr_period:,} logged steps: judged the loss net of "
                     "the cycle's average profile (what differs between cycles)")
    if prepared.tolerance > 0:
        tolerance = prepared.tolerance * prepared.scale
        notes.append(f"tolerance: changes within ±{tolerance:.3g} (loss units) count as flat")
    return notes


def in_loss_units(tests: WindowTests, scale: float) -> WindowTests:
    """The fitted drift, level shift and end change back in loss units (the tests ran on the
    standardised series; sigma-relative figures are unchanged)."""
    wander = None if tests.wander is None else replace(
        tests.wander, level=tests.wander.level * scale, range=tests.wander.range * scale,
        change=tests.wander.change * scale, threshold=tests.wander.threshold * scale,
        range_bound=tests.wander.range_bound * scale)
    return replace(tests, wander=wander, drift=replace(tests.drift, total=tests.drift.total * scale),
                   level_shift=replace(tests.level_shift, delta=tests.level_shift.delta * scale),
                   end_change=replace(tests.end_change, delta=tests.end_change.delta * scale))


SHORT_MIN_POINTS = 20   # below this even a strong trend is not judged


def short_run(run: OrderedRun, options: Options, base: dict) -> RunResult:
    """A run whose window holds fewer than ``min_points`` finite values: diverged if it ends
    non-finite; not_converged / nonstationary when a simple shape explains the short window with
    a move many times its noise (a 150-epoch log still falling by 100 sigma); no_data when
    nothing at all is left to judge; else insufficient_data, counting what the window really holds."""
    steps, loss = run.steps, run.loss
    div = checks.divergence(steps, loss, float(steps[-1])) if len(loss) else None
    # A log that ends non-finite has diverged however short it is (a run stopped on NaN).
    if div is not None and (div.ends_nonfinite or (div.nonfinite_in_window and len(loss) >= options.min_points)):
        return RunResult(verdict=Verdict.DIVERGED, reasons=(_nonfinite_reason(div),), window=None,
                         window_points=0, divergence=div, **base)
    finite = np.isfinite(loss)
    finite_steps, finite_loss = steps[finite], loss[finite]
    start = window_start_index(finite_steps, options) if len(finite_loss) else 0
    window_values = finite_loss[start:]
    if len(window_values) >= SHORT_MIN_POINTS:
        level = float(exact_median(window_values))
        spread = robust_sigma(window_values - level) or 1.0
        move = checks.persistent_move((window_values - level) / spread, options.alpha,
                                      options.tolerance(level) / spread)
        if move.decided:
            window = Window(start=start, first_step=float(finite_steps[start]), last_step=float(finite_steps[-1]),
                            burn_in_step=None, burn_in_method="short", block=1, agg_start=0)
            return RunResult(verdict=move_verdict(move), window=window, window_points=len(window_values),
                             reasons=(move_reason(move, window, None) + f"; only {len(window_values):,} points in the "
                                      f"window, but the move leaves no doubt",), **base)
    verdict = Verdict.INSUFFICIENT_DATA if len(window_values) else Verdict.NO_DATA
    return RunResult(verdict=verdict, window=None, window_points=0,
                     reasons=(insufficient_reason(finite_steps, len(window_values), options, run.every_step_setting),),
                     **base)


def logged_every(steps: np.ndarray) -> int | None:
    """k when nearly every step gap (90 %) is the same whole number k > 1: a logger that writes
    every k-th step (Hugging Face's logging_steps, Lightning's log_every_n_steps)."""
    gaps = np.diff(steps)
    if not len(gaps):
        return None
    values, counts = np.unique(gaps, return_counts=True)
    k = float(values[np.argmax(counts)])
    return int(k) if k > 1 and k.is_integer() and counts.max() >= 0.9 * len(gaps) else None


def insufficient_reason(finite_steps: np.ndarray, window_count: int, options: Options, every_step_setting: str) -> str:
    """Why there is too little to judge, with the counts that are really there; for a log written
    every k steps, how to log every step (in the logger's words when the log says which wrote it:
    ``every_step_setting``), which gives k times the points."""
    need = f"at least {options.min_points} are needed"
    total = len(finite_steps)
    if total and options.burn_in is not None and options.burn_in > finite_steps[-1]:
        return (f"the burn-in step {fmt_step(options.burn_in)} is after the last logged step "
                f"{fmt_step(finite_steps[-1])}: nothing left to judge; {need}")
    if total == 0:
        return "no loss value was logged (a job that stopped before its first log?): nothing to judge"
    k = logged_every(finite_steps)
    hint = f"; the loss was logged every {k:,} steps: {every_step_setting or 'log it at every step'}" if k else ""
    if window_count == total:
        return f"only {total:,} finite loss values; {need}{hint}"
    return (f"only {window_count:,} finite loss values in the evaluation window "
            f"(steps {fmt_step(finite_steps[total - window_count])}–{fmt_step(finite_steps[-1])}) of "
            f"{total:,} in the run; {need}{hint}")


def window_tests(prepared: PreparedSeries, sigma: float, alpha: float) -> WindowTests:
    """Every gating test on the window's block means (winsorised, standardised). The MSER
    burn-in counts as a transient in the window only when the loss is also falling at level
    alpha: MSER is an estimator, not a test, and a late spike can pull it into the window on
    flat noise. The persistent-move check runs only where the batch tests cannot decide."""
    w = prepared.agg_window
    tolerance = prepared.tolerance
    persist = checks.persistence(w)
    batches = checks.batch_count(persist.points, persist.tau_int)
    inflation = checks.short_batch_inflation(persist.points, batches, persist.tau_int)
    drift = checks.drift(w, sigma, batches, inflation, tolerance)
    window = prepared.window
    transient = (window.burn_in_method == "mser-5" and window.burn_in_step is not None
                 and window.burn_in_step > window.first_step and drift.total < 0
                 and drift.p_value < alpha)
    floor = checks.quantisation_floor(prepared.window_loss, prepared.scale, window.block)
    move = None if persist.enough else checks.persistent_move(w, alpha, tolerance)
    level = prepared.level / prepared.scale
    unit_root = checks.unit_root(w)
    gates = magnitude.gates(level, not persist.enough, drift.margin_sigma * sigma)
    # the smoothed path matters where it gates or may veto a unit-root rejection
    wander = (magnitude.wander(w, level, tolerance)
              if (gates or unit_root.p_value < alpha) and magnitude.has_level(prepared.window_loss) else None)
    return WindowTests(drift=drift, level_shift=checks.level_shift(w, sigma, batches, inflation, tolerance),
                       variance=checks.variance_change(w, prepared.within_window, floor),
                       unit_root=unit_root, end_change=checks.end_change(w, sigma, tolerance),
                       shape=checks.shape(w, batches), persistence=persist, batches=batches,
                       transient_in_window=bool(transient), move=move, wander=wander, wander_gates=gates,
                       within_tolerance=bool(tolerance > 0 and np.max(np.abs(w)) <= tolerance))


def window_coupling(run: OrderedRun, prepared: PreparedSeries) -> checks.Coupling | None:
    """Coupling on the window, over the same blocks as the loss tests."""
    start = int(np.searchsorted(run.steps, prepared.window.first_step))
    loss, grad = run.loss[start:], run.grad_norm[start:]
    both = np.isfinite(loss) & np.isfinite(grad)
    loss, grad = kept(loss, both), kept(grad, both)
    block = prepared.window.block
    if len(loss) // block < 50:
        return None
    return checks.coupling(block_means(loss, block), block_means(grad, block))


def _nonfinite_reason(div: checks.Divergence) -> str:
    where = f" (first at step {fmt_step(div.first_nonfinite_step)})" if div.first_nonfinite_step is not None else ""
    if div.ends_nonfinite:
        return f"the loss ends non-finite (NaN/inf){where}"
    return (f"{div.nonfinite_in_window:,} non-finite loss values in the evaluation window{where}, more than "
            f"isolated skipped steps")


def _divergence_reason(div: checks.Divergence) -> str:
    """Why the run diverged: non-finite values, else geometric growth, with how fast it doubles."""
    if div.ends_nonfinite or (div.nonfinite_in_window and not div.recovered):
        return _nonfinite_reason(div)
    doubling = f"doubling every ~{fmt_step(float(f'{div.doubling_steps:.2g}'))} steps"
    if div.growth_over == "window":
        return (f"the loss grew ×{div.growth:.3g} over the window, geometrically ({doubling}): exploding gradients? "
                "clip them or lower the learning rate")
    return (f"explosive growth at the end: from step {fmt_step(div.growth_start_step)} the loss's rise above its level "
            f"in the rest of the window grew ×{div.growth:.3g}, geometrically ({doubling})")


def _degeneracy_reason(deg: checks.Degeneracy) -> str:
    """Why the loss is flat for the wrong reason, by kind."""
    share = f"{deg.modal_share:.1%} of the window"
    easy = "" if deg.easy_fraction is None else f" (easy_fraction {deg.easy_fraction:.2f})"
    return {
        "zero": f"loss pinned at 0 ({share}): no active pairs/triplets, nothing is being learned",
        "easy": (f"every triplet already meets the margin{easy}: the loss is 0 and nothing is left to learn; "
                 "raise the margin, schedule it from the easy fraction, or mine harder triplets"),
        "margin": f"loss pinned at the margin {deg.modal_value:.4g} ({share}): embeddings have collapsed to a point",
        "constant": f"loss constant at {deg.modal_value:.6g} ({share}, within float32 rounding) " + (
            "after falling to it, but not one value in the window differs: nothing is left to judge it by "
            "(did the run stop updating?)" if deg.fell_to_level else
            "without having fallen to it: nothing is being learned (a dead network?)"),
        "inactive": "no active pairs/triplets in the window (active_fraction = 0): nothing is being learned",
        "collapsed": ("positive and negative distances are both near 0 (under 2 % of the margin): embeddings have "
                      "collapsed to a point"),
    }[deg.kind]


def analyze_arrays(loss, steps=None, grad_norm=None, options: Options = Options(), name: str = "run") -> RunResult:
    """Judge one run given as arrays (steps default to 0..n-1)."""
    loss = np.asarray(loss, dtype=np.float64)
    steps = np.arange(len(loss), dtype=np.float64) if steps is None else np.asarray(steps, dtype=np.float64)
    metrics = {"loss": Metric(steps, loss)}
    if grad_norm is not None:
        metrics["grad_norm"] = Metric(steps, np.asarray(grad_norm, dtype=np.float64))
    return analyze_run(order_run(RawRun(name=name, source=name, metrics=metrics)), options)
