"""What only a Siamese-aware tool can say: findings from the pair/triplet statistics a log
carries (embedding_norm, pos_dist, neg_dist, easy_fraction, grad_norm), each with its number and
advice from the seeds (cut-initialisation, weight decay, a lower learning rate, a margin schedule).

One finding gates, through the ``degenerate`` verdict, and only where the window would otherwise
pass (stationary or inconclusive: "stationary but never learned"): a *stalled* run, whose log starts
at the beginning of training, whose loss stayed above half its start level under a fixed margin, and
whose embedding norm blew up tenfold within the first 5 % of the run (a learning rate too high for
normalised embeddings). Each half alone is common in healthy runs, so alone it is reported, never
gating: cosine-loss runs that learn grow their norms x5 to x50 over thousands of steps (BENCHMARKS.md), and a
fine-tuning run can start at its converged level (or a loss against a moving target, as in BYOL,
need not fall); a loss that never left its start level is reported only within 10 % of it. Together they mean the gradients shrank as
1/||z|| until nothing moved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .numerics import exact_median, kept

START_SHARE = 0.01        # the start of a log: its first 1 % of points ...
START_MIN_POINTS = 20     # ... and at least this many
STARTS_AT_BEGINNING = 0.01  # a log starts at the beginning of training if its first step is this early
STALLED_FALL = 0.5        # the loss kept more than half of its start level (losses >= 0): with norm growth, stalled
FLAT_FROM_START = 0.10    # reported alone only when the window is within 10 % of the start level
NORM_GROWTH = 10.0        # embedding norm grew by this factor or more
EARLY_BLOWUP = 0.05       # ... within this share of the run: blown up by the first steps, not grown with learning
MARGIN_FIXED = 0.01       # the margin moved by less than 1 %: losses at the start and the end compare
EASY_ALL, EASY_NONE = 0.99, 0.01
GAP_SHRINK = 0.2          # the negative-positive distance gap fell below 20 % of its early value
GRAD_FACTOR = 10.0        # grad norm grew / shrank by this factor over the window


@dataclass(frozen=True)
class Finding:
    """One Siamese-specific observation: a stable name, the number behind it, the words, and
    what to do about it. ``gating`` findings decide the verdict (degenerate)."""

    name: str
    value: float
    message: str
    advice: str
    gating: bool = False

    def reason(self) -> str:
        return f"{self.message}; {self.advice}" if self.advice else self.message


def finite(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    values = kept(values, np.isfinite(values))
    return values if len(values) else None


def start_count(n: int) -> int:
    return max(START_MIN_POINTS, int(np.ceil(START_SHARE * n)))


def starts_at_beginning(steps: np.ndarray) -> bool:
    """The first logged step is step 0/1 or within the first 1 % of the run."""
    return len(steps) > 1 and steps[0] <= max(1.0, STARTS_AT_BEGINNING * steps[-1])


def margin_fixed(margin: np.ndarray | None) -> bool:
    """No margin logged, or one that stayed within 1 %: a loss under a growing margin (a margin
    schedule) cannot be compared with its start."""
    values = finite(margin)
    return values is None or float(np.ptp(values)) <= MARGIN_FIXED * max(abs(float(exact_median(values))), 1e-12)


def blew_up_early(embedding_norm: np.ndarray | None) -> bool:
    """The embedding norm reached NORM_GROWTH times its initial value within the first 5 % of the
    run (lr 5 with normalised embeddings: x300 by step 11 of 6,000)."""
    values = embedding_norm
    if values is None or len(values) < 2 * START_MIN_POINTS:
        return False
    first = finite(values[:3])
    if first is None or not float(exact_median(first)) > 0:
        return False
    early = values[: max(START_MIN_POINTS, int(np.ceil(EARLY_BLOWUP * len(values))))]
    return bool(np.any(early[np.isfinite(early)] >= NORM_GROWTH * float(exact_median(first))))


def never_learned(steps: np.ndarray, loss: np.ndarray, level: float) -> Finding | None:
    """A non-negative loss, logged from the beginning, whose window level is still more than half
    of its level over the first 1 % of the log: nothing much was learned after the first steps (a
    run that learns cuts its loss several-fold: the default siamdiag train run by 8x). ``level``
    is the window's median."""
    values = kept(loss, np.isfinite(loss))
    if not starts_at_beginning(steps) or len(values) < 2 * START_MIN_POINTS or np.min(values) < 0:
        return None
    start = float(exact_median(values[:start_count(len(values))]))
    if start <= 0 or level < (1 - STALLED_FALL) * start:
        return None
    change = level / start - 1
    return Finding("never_learned", change,
                   f"the loss stayed above half its start level: {level:.4g} in the window against {start:.4g} "
                   f"over the first {start_count(len(values))} steps ({change:+.0%})",
                   "if the run was meant to learn from scratch, check that it trains at all (learning rate, "
                   "frozen layers, data labels); a loss against a moving target (BYOL) need not fall")


def norm_growth(embedding_norm: np.ndarray | None) -> Finding | None:
    """The embedding norm grew by NORM_GROWTH or more from its first steps (median of the first 3
    logged: the scale at initialisation, before a too-high lr blows it up within a few steps) to
    its peak (95th percentile of the rest): with normalised embeddings the
    gradient shrinks as 1/||z||, so training slows (the cosine-loss pitfall). The peak, not the
    end, because such a run may later collapse to 0 under weight decay."""
    values = finite(embedding_norm)
    if values is None or len(values) < 2 * START_MIN_POINTS:
        return None
    head = 3
    first, peak = float(exact_median(values[:head])), float(np.quantile(values[head:], 0.95))
    if not first > 0 or peak < NORM_GROWTH * first:
        return None
    return Finding("embedding_norm_growth", peak / first,
                   f"the embedding norm grew ×{peak / first:,.0f} ({first:.3g} in the first steps, {peak:.3g} at its "
                   "peak, before normalisation): the gradient through a normalised embedding shrinks as 1/‖z‖, "
                   "so learning slows",
                   "use weight decay, cut-initialisation (divide initial weights by 3 for contrastive losses) "
                   "or a lower learning rate")


def margin_findings(easy: np.ndarray | None) -> list[Finding]:
    """The easy-triplet fraction at 1 (the margin is too easy: nothing left to learn) or at 0
    (the margin is unreachable)."""
    easy = finite(easy)
    if easy is None:
        return []
    median = float(exact_median(easy))
    if median >= EASY_ALL:
        return [Finding("margin_too_easy", median, f"every triplet already meets the margin (easy_fraction {median:.2f})",
                        "raise the margin, schedule it from the easy fraction, or mine harder triplets")]
    if median <= EASY_NONE:
        return [Finding("margin_unreachable", median, f"no triplet meets the margin (easy_fraction {median:.2f})",
                        "lower the margin or schedule it from the easy fraction")]
    return []


def distance_gap(pos: np.ndarray | None, neg: np.ndarray | None, window_start: int) -> Finding | None:
    """Positive and negative distances converging: their gap in the window is under 20 % of
    what it was over the first 10 % of the log (collapse in progress)."""
    if pos is None or neg is None:
        return None
    gap = neg - pos
    early = finite(gap[: max(START_MIN_POINTS, len(gap) // 10)])
    late = finite(gap[window_start:])
    if early is None or late is None:
        return None
    before, after = float(exact_median(early)), float(exact_median(late))
    if not before > 0 or after > GAP_SHRINK * before:
        return None
    return Finding("distances_converging", after / before,
                   f"positive and negative distances are converging: their gap fell from {before:.3g} to {after:.3g} "
                   "(collapse in progress)",
                   "lower the learning rate or raise the margin; check the pair sampler's labels")


def gradient_trend(grad_norm: np.ndarray | None, window_start: int) -> Finding | None:
    """Vanishing or exploding gradients from the grad-norm trend over the window: the median of
    its last tenth against its first tenth, by a factor of 10 or more."""
    window = finite(None if grad_norm is None else grad_norm[window_start:])
    if window is None or len(window) < 2 * START_MIN_POINTS:
        return None
    tenth = max(START_MIN_POINTS // 2, len(window) // 10)
    first, last = float(exact_median(window[:tenth])), float(exact_median(window[-tenth:]))
    if not (first > 0 and last > 0):
        return None
    ratio = last / first
    if ratio >= GRAD_FACTOR:
        return Finding("gradients_exploding", ratio, f"the gradient norm grew ×{ratio:.3g} over the window "
                       f"({first:.3g} → {last:.3g})",
                       "if the loss grows with it, lower the learning rate or clip gradients")
    if ratio <= 1 / GRAD_FACTOR:
        return Finding("gradients_vanishing", ratio, f"the gradient norm shrank ×{1 / ratio:.3g} over the window "
                       f"({first:.3g} → {last:.3g})",
                       "check for saturated activations or dead units; normalised embeddings whose norm grows "
                       "shrink gradients too")
    return None


def siamese_findings(steps: np.ndarray, loss: np.ndarray, grad_norm: np.ndarray | None,
                     extras: dict[str, np.ndarray], window_start: int, level: float) -> tuple[Finding, ...]:
    """Every finding the log supports; ``window_start`` indexes the first window point, ``level``
    is the window's median loss. A run that never learned and whose embedding norm blew up early
    is stalled (gating where the window would pass)."""
    learned = never_learned(steps, loss, level) if margin_fixed(extras.get("margin")) else None
    growth = norm_growth(extras.get("embedding_norm"))
    found: list[Finding] = []
    if learned is not None and growth is not None and blew_up_early(extras.get("embedding_norm")):
        found.append(Finding("stalled", growth.value, f"stalled: {learned.message}, while {growth.message[4:]}",
                             "lower the learning rate, use weight decay or cut-initialisation", gating=True))
    else:
        # alone, a loss that stays where it started is worth a word only when it is really flat: a
        # loss against a moving target (BYOL) or one that rose is judged by the window tests
        if learned is not None and abs(learned.value) <= FLAT_FROM_START:
            found.append(learned)
        if growth is not None:
            found.append(growth)
    found += margin_findings(extras.get("easy_fraction"))
    found += [f for f in (distance_gap(extras.get("pos_dist"), extras.get("neg_dist"), window_start),
                          gradient_trend(grad_norm, window_start)) if f is not None]
    return tuple(found)
