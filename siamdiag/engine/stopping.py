"""Early stopping on a settled loss, with a false-stop rate that holds over repeated looks.

Judging a run every N steps and stopping at the first ``stationary`` verdict would stop a run
that is still learning far more often than any single look suggests: each look is another chance
for a slow decline to hide in the noise. So a look may stop the run only when two things hold:
the verdict is ``stationary``, and an equivalence test rejects "still moving": H0 |change of the
trend over the window| >= the drift margin (the engine's 0.25 noise sigmas, or the tolerance),
the two one-sided tests on the same batch-means slope the drift check fits. Look j spends
alpha_j of the family's alpha, with sum alpha_j <= alpha, so by the union bound a run whose window
still moves by the margin or more is stopped with probability at most alpha, however many looks:

- with a known budget of ``max_steps``, alpha is spent in proportion to the steps covered since
  the previous look (alpha_j = alpha * (s_j - s_(j-1)) / max_steps);
- without one, alpha_j = alpha / (j (j + 1)), which sums to alpha over infinitely many looks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import stattests
from .analysis import analyze_arrays
from .decide import Verdict
from .prepare import Options


@dataclass(frozen=True)
class Look:
    """One check: where, what the verdict was, the equivalence p-value and the alpha it had."""

    step: float
    points: int
    verdict: str
    p_moving: float | None   # p-value of H0 "the window still moves by the margin or more"
    alpha: float             # this look's share of the family alpha
    stop: bool


@dataclass
class StopWhenStationary:
    """Feed it the losses (``add``); ``check()`` looks every ``check_every`` steps and returns True
    once the run may stop. Used by the Lightning and Hugging Face callbacks and the Recorder
    (their ``stop=`` argument), or in a loop of your own. ``alpha`` is the false-stop rate over
    all looks; ``max_steps`` the training budget when known (spends alpha better); ``window``,
    ``tolerance_relative`` and ``tolerance_absolute`` mean what they mean for ``analyze``."""

    check_every: int = 1000
    alpha: float = 0.01
    max_steps: int | None = None
    min_steps: int = 200
    window: float = 0.5
    tolerance_relative: float = 0.0
    tolerance_absolute: float = 0.0
    looks: list[Look] = field(default_factory=list)

    def __post_init__(self):
        if self.check_every < 1 or not 0 < self.alpha < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("check_every >= 1, 0 < alpha < 1 and max_steps >= 1 (or None)")
        self._steps: list[float] = []
        self._losses: list[float] = []

    def add(self, step, loss) -> None:
        """One step's loss (host numbers)."""
        self._steps.append(float(step))
        self._losses.append(float(loss))

    @property
    def stopped(self) -> bool:
        return bool(self.looks) and self.looks[-1].stop

    def due(self) -> bool:
        last = self.looks[-1].step if self.looks else None
        return bool(self._steps) and len(self._steps) >= self.min_steps and (
            last is None or self._steps[-1] - last >= self.check_every)

    def check(self) -> bool:
        """Look if a look is due; True once the run may stop (and from then on)."""
        if self.stopped:
            return True
        if not self.due():
            return False
        return self.look().stop

    def look_alpha(self, step: float) -> float:
        """The share of alpha of a look at ``step`` after the looks so far (see the module
        docstring): with a budget, the part of it covered since the previous look."""
        if self.max_steps is not None:
            budget = float(self.max_steps)
            previous = self.looks[-1].step if self.looks else 0.0
            return self.alpha * max(min(step, budget) - min(previous, budget), 0.0) / budget
        j = len(self.looks) + 1
        return self.alpha / (j * (j + 1))

    def look(self) -> Look:
        steps, losses = np.asarray(self._steps), np.asarray(self._losses)
        options = Options(alpha=self.alpha, window=self.window, tolerance_relative=self.tolerance_relative,
                          tolerance_absolute=self.tolerance_absolute)
        result = analyze_arrays(losses, steps, options=options)
        share = self.look_alpha(float(steps[-1]))
        p_moving = None
        if result.tests is not None:
            drift = result.tests.drift
            p_moving = stattests.student_t_sf(-drift.t, result.tests.batches - 2)
        stop = result.verdict is Verdict.STATIONARY and p_moving is not None and p_moving <= share
        decision = Look(float(steps[-1]), len(losses), result.verdict.value, p_moving, share, stop)
        self.looks.append(decision)
        return decision

    def reason(self) -> str:
        """Why the run stopped (or why not yet), for a log line."""
        if not self.looks:
            return "siamdiag: not judged yet"
        last = self.looks[-1]
        if last.stop:
            return (f"siamdiag: the loss is stationary at step {last.step:,.0f} (look {len(self.looks)}: "
                    f"still-moving rejected, p={last.p_moving:.2g} <= {last.alpha:.2g}); stopping")
        return f"siamdiag: step {last.step:,.0f}: {last.verdict}, not stopping"
