"""From check results to one verdict with reasons: a pure function, no I/O.

Order of precedence: insufficient data, divergence, degeneracy, then the window tests under a
Holm step-down at the family level alpha (so one run fails falsely at most alpha of the time
through the tests), then the persistence guard that turns 'nothing found' on too little
effective data into 'inconclusive' rather than a pass it cannot back.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from . import checks
from .magnitude import Wander


class Verdict(str, Enum):
    STATIONARY = "stationary"
    NOT_CONVERGED = "not_converged"
    NONSTATIONARY = "nonstationary"
    DIVERGED = "diverged"
    DEGENERATE = "degenerate"
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT_DATA = "insufficient_data"
    NO_DATA = "no_data"      # nothing to judge: no finite loss at all, or none left after the burn-in


UNIT_ROOT_LEVEL = 0.025  # too little effective data on a long window: ADF decides unit root vs persistent noise
# no_data fails by default: a job that crashed before logging a loss must not pass CI.
DEFAULT_FAILING = frozenset({Verdict.NOT_CONVERGED, Verdict.NONSTATIONARY, Verdict.DIVERGED, Verdict.DEGENERATE,
                             Verdict.NO_DATA})
STRICT_FAILING = DEFAULT_FAILING | {Verdict.INCONCLUSIVE, Verdict.INSUFFICIENT_DATA}


def holm(p_values: dict[str, float], alpha: float) -> set[str]:
    """Names rejected by Holm's step-down procedure at family-wise level alpha."""
    rejected: set[str] = set()
    ordered = sorted(p_values.items(), key=lambda kv: (kv[1], kv[0]))
    for i, (name, p) in enumerate(ordered):
        if p > alpha / (len(ordered) - i):
            break
        rejected.add(name)
    return rejected


@dataclass(frozen=True)
class WindowTests:
    """The gating tests on one window plus what classifies a rejection."""

    drift: checks.Drift
    level_shift: checks.Shift
    variance: checks.VarianceChange
    unit_root: checks.UnitRoot
    end_change: checks.EndChange
    shape: checks.Shape
    persistence: checks.Persistence
    batches: int
    transient_in_window: bool   # MSER burn-in ends after the window start, loss falling
    move: checks.Move | None = None   # only for windows too persistent for the batch tests
    wander: Wander | None = None      # only when the loss has a level to measure moves against
    wander_gates: bool = False        # ... and a move of it fails the run (magnitude.gates)
    within_tolerance: bool = False     # every block mean lies within the user's tolerance of the median

    def p_values(self) -> dict[str, float]:
        """The gating family. On a loss with a level, the unit-root test leaves it where the
        window is persistent (it can only restate the persistence, which practical magnitude
        judges) or practically flat (a wander within the threshold is not worth failing a run);
        the smoothed path's move joins it where magnitude.gates says so."""
        p = {"drift": self.drift.p_value, "level_shift": self.level_shift.p_value,
             "variance": self.variance.p_value, "end_change": self.end_change.p_value}
        if self.wander is None or (self.persistence.enough and not self.wander.flat):
            p["unit_root"] = self.unit_root.p_value
        if self.wander is not None and self.wander_gates and self.wander.beyond:
            p["wander"] = self.wander.p_value
        return p


def move_verdict(move: checks.Move) -> Verdict:
    """A decided move: still falling smoothly is learning under way; a rise, a swing or a step
    (either way, as for a step-shaped level shift) is non-stationarity."""
    return Verdict.NOT_CONVERGED if move.shape == "fall" else Verdict.NONSTATIONARY


def decide_tests(tests: WindowTests, alpha: float) -> tuple[Verdict, set[str]]:
    """Verdict for a run that reached the window tests, and the tests Holm rejected.

    A step-shaped level change is a level shift even when the loss falls; a rise at the end of
    the run is non-stationarity whatever came before; a falling trend or falling unit-root-like
    path (or a burn-in that has not ended, or a drop at the end) is learning still under way;
    anything else rejected is non-stationarity (rising drift, unit-root wandering, variance
    change). A window that stays within the user's tolerance is stationary whatever the tests
    say: nothing in it moves by more than the user cares about. When nothing is rejected but the
    window is too persistent to trust that, a move
    many times larger than the noise decides; failing that, when the loss has a level, whether
    its smoothed path is practically flat (stationary) or not (inconclusive: a practically large
    move was already a rejected test of the family, see magnitude.py); failing that (a window
    crossing zero), ADF: a unit root it cannot reject is wandering (fail); a rejected one is
    persistent noise (inconclusive). A rejected move of the smoothed path fails as
    non-stationarity, or as learning still under way when it is a steady fall.
    """
    if tests.within_tolerance:
        return Verdict.STATIONARY, set()
    rejected = holm(tests.p_values(), alpha)
    falling = tests.drift.total < 0
    if "level_shift" in rejected and tests.shape.step_like:
        return Verdict.NONSTATIONARY, rejected
    if "variance" in rejected and not (tests.transient_in_window or {"drift", "level_shift"} & rejected):
        return Verdict.NONSTATIONARY, rejected
    if "end_change" in rejected and tests.end_change.delta > 0:
        return Verdict.NONSTATIONARY, rejected
    if "wander" in rejected and tests.wander.shape != "fall":
        return Verdict.NONSTATIONARY, rejected
    if tests.transient_in_window or (falling and {"drift", "level_shift", "unit_root", "end_change", "wander"} & rejected):
        return Verdict.NOT_CONVERGED, rejected
    if rejected:
        return Verdict.NOT_CONVERGED if rejected == {"end_change"} else Verdict.NONSTATIONARY, rejected
    if not tests.persistence.enough and tests.move is not None and tests.move.decided:
        return move_verdict(tests.move), {"move"}
    if not tests.persistence.enough and tests.wander is not None:   # gates on any persistent window
        return (Verdict.STATIONARY if tests.wander.flat else Verdict.INCONCLUSIVE), rejected
    if not tests.persistence.enough:
        if tests.persistence.points >= checks.UNIT_ROOT_MIN_POINTS and tests.unit_root.adf.p_value >= UNIT_ROOT_LEVEL:
            return Verdict.NONSTATIONARY, {"unit_root"}
        return Verdict.INCONCLUSIVE, rejected
    return Verdict.STATIONARY, rejected
