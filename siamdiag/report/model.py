"""The report model: every run's result plus the gate decision, and its stable JSON shape.

Field names are an interface (DESIGN.md §5); changing one bumps SCHEMA_VERSION.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import __version__
from ..engine.analysis import RunResult
from ..engine.decide import DEFAULT_FAILING, STRICT_FAILING, Verdict
from ..errors import UsageError

SCHEMA_VERSION = 3  # 3: wander, window.level_drop, divergence growth fields, degeneracy.fell_to_level; 2: end_change, move, ...


@dataclass(frozen=True)
class GatePolicy:
    """Which verdicts fail the gate."""

    failing: frozenset[Verdict] = DEFAULT_FAILING

    @classmethod
    def from_options(cls, fail_on: str | None, strict: bool) -> "GatePolicy":
        if fail_on:
            names = [v.strip() for v in fail_on.split(",") if v.strip()]
            allowed = {v.value: v for v in Verdict}
            unknown = [n for n in names if n not in allowed]
            if unknown:
                raise UsageError(f"--fail-on: unknown verdict {unknown[0]!r}; allowed: {', '.join(allowed)}")
            failing = frozenset(allowed[n] for n in names)
        else:
            failing = DEFAULT_FAILING
        if strict:
            failing = failing | STRICT_FAILING - DEFAULT_FAILING
        return cls(failing)

    def passes(self, verdict: Verdict) -> bool:
        return verdict not in self.failing


@dataclass(frozen=True)
class Report:
    runs: tuple[RunResult, ...]
    policy: GatePolicy
    alpha: float

    @property
    def passed(self) -> bool:
        return all(self.policy.passes(r.verdict) for r in self.runs)

    def run_gate(self, run: RunResult) -> str:
        return "pass" if self.policy.passes(run.verdict) else "fail"


def _clean(value):
    """JSON-safe: non-finite floats become null, numpy scalars plain Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def step(value):
    """A step as the log wrote it: an integer when it is a whole number (2001, not 2001.0)."""
    if value is None or not math.isfinite(value):
        return value
    return int(value) if float(value).is_integer() else float(value)


STEP_KEYS = ("first_nonfinite_step", "growth_start_step")   # step fields of the divergence check


def run_to_dict(report: Report, r: RunResult) -> dict:
    """One run in the JSON schema: verdict, gate, reasons, window, then one object per check
    (null when the check did not run because an earlier one decided the verdict)."""
    w, t, rej = r.window, r.tests, r.rejected
    at = (lambda fraction: step(w.step_at(fraction))) if w else None  # noqa: E731
    out = {
        "run": r.run, "source": r.source, "verdict": r.verdict.value, "gate": report.run_gate(r),
        "reasons": list(r.reasons), "notes": list(r.notes), "points": r.points,
        "window": None if w is None else {
            "first_step": step(w.first_step), "last_step": step(w.last_step), "points": r.window_points,
            "burn_in_step": step(w.burn_in_step), "burn_in_method": w.burn_in_method,
            "transient_in_window": bool(t.transient_in_window) if t else None,
            "block_size": w.block, "batches": t.batches if t else None,
            "lr_change": None if r.lr_change is None else {"step": step(r.lr_change[0]), "ratio": r.lr_change[1]},
            "lr_period": r.lr_period, "tolerance": r.tolerance,
            "interval_change": None if r.interval_change is None else dict(zip(("step", "old", "new"),
                                                                                (step(r.interval_change[0]),
                                                                                 *r.interval_change[1:]))),
            "level_drop": step(r.level_drop)},
        "sigma": r.sigma,
        "adf": None, "kpss": None, "unit_root": None, "drift": None, "level_shift": None,
        "variance": None, "end_change": None, "move": None, "wander": None, "persistence": None,
        "divergence": None if r.divergence is None else {k: step(v) if k in STEP_KEYS else v
                                                          for k, v in vars(r.divergence).items()},
        "degeneracy": None if r.degeneracy is None else vars(r.degeneracy).copy(),
        "grad_norm": None if r.grad_norm is None else vars(r.grad_norm).copy(),
        "findings": [{"name": f.name, "value": f.value, "message": f.message, "advice": f.advice,
                      "gating": f.gating} for f in r.findings],
    }
    if t is not None:
        u = t.unit_root
        out["adf"] = {"statistic": u.adf.statistic, "p_value": u.adf.p_value, "lags": u.adf.lags,
                      "critical_values": u.adf.critical_values, "null": "unit root"}
        out["kpss"] = {"statistic": u.kpss.statistic, "p_value": u.kpss.p_value, "lags": u.kpss.lags,
                       "critical_values": u.kpss.critical_values, "null": "level stationary"}
        out["unit_root"] = {"label": u.label, "p_value": u.p_value, "rejected": "unit_root" in rej}
        out["drift"] = {"total": t.drift.total, "total_sigma": t.drift.total_sigma,
                        "margin_sigma": t.drift.margin_sigma, "t": t.drift.t, "p_value": t.drift.p_value,
                        "rejected": "drift" in rej}
        out["level_shift"] = {"delta": t.level_shift.delta,
                              "delta_sigma": t.level_shift.delta / r.sigma if r.sigma else None,
                              "at_step": at(t.level_shift.at_fraction), "t": t.level_shift.t,
                              "p_value": t.level_shift.p_value, "step_like": t.shape.step_like,
                              "rejected": "level_shift" in rej}
        out["variance"] = {"ratio": t.variance.ratio, "at_step": None if t.variance.gradual else at(t.variance.at_fraction),
                           "ar_order": t.variance.ar_order, "t": t.variance.t, "p_value": t.variance.p_value,
                           "on": t.variance.on, "gradual": t.variance.gradual, "rejected": "variance" in rej}
        e = t.end_change
        out["end_change"] = {"delta": e.delta, "delta_sigma": e.delta / r.sigma if r.sigma else None,
                             "points": e.points, "t": e.t, "p_value": e.p_value, "rejected": "end_change" in rej}
        if t.move is not None:
            out["move"] = {"shape": t.move.shape, "size_noise": t.move.size_noise,
                           "residual_ess": t.move.residual_ess, "p_value": t.move.p_value,
                           "decided": t.move.decided, "rejected": "move" in rej}
        if t.wander is not None:
            wd = t.wander
            out["wander"] = {"range": wd.range, "relative": wd.relative, "threshold": wd.threshold,
                             "range_bound": wd.range_bound, "change": wd.change, "shape": wd.shape,
                             "period_steps": wd.period_fraction * (w.last_step - w.first_step),
                             "p_value": wd.p_value, "beyond": wd.beyond, "flat": wd.flat, "gates": t.wander_gates,
                             "rejected": "wander" in rej}
        out["persistence"] = {"tau_int": t.persistence.tau_int, "effective_size": t.persistence.effective_size,
                              "enough": t.persistence.enough}
    return _clean(out)


def report_to_dict(report: Report) -> dict:
    counts: dict[str, int] = {}
    for r in report.runs:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    return {
        "schema_version": SCHEMA_VERSION,
        "siamdiag_version": __version__,
        "gate": "pass" if report.passed else "fail",
        "alpha": report.alpha,
        "fail_on": sorted(v.value for v in report.policy.failing),
        "counts": counts,
        "runs": [run_to_dict(report, r) for r in report.runs],
    }
