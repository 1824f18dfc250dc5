"""Logs of running means: Keras (and loggers like it) log, at every batch, the mean of the
epoch's batch losses so far. Such a log is smooth late in each epoch and jumps at each epoch
start, which reads as persistence, variance changes and shifts that the training never had.
Detected from the log itself, and undone exactly: x_i = i m_i - (i - 1) m_(i-1) within an epoch.
Undoing multiplies a plain log's noise up to 2·period-fold and can erase its trend, so what the
detector finds is corroborated before it is undone (``doubt``).
"""
from __future__ import annotations

import numpy as np

from .numerics import autocorrelation, exact_median, power_of_two_near, robust_sigma

MIN_EPOCH = 5          # shorter epochs are not told apart from noise
MIN_EPOCHS = 3         # at least this many epoch starts must show
DECAY_RATIO = 0.25     # late-epoch increments at most this share of early ones (a mean settling as 1/i)
MIN_PERIODICITY = 0.3  # autocorrelation of the log increments at the epoch length
TAIL_POINTS = 1 << 17  # detected on the last 131,072 points at most (hundreds of epochs of any usual size)
SKEW_SCREEN = 0.6      # median/mean of |increments|: ~0.85 for noise, far lower for running means
EPOCH_TOLERANCE = 0.03  # an epoch column's rows per epoch within 3 % (and one row) of the detected length
FLOAT32_EPS = 2.0 ** -23   # the coarsest binary rounding a logger applies (float32)
NEGATIVE_SHARE = 0.01  # recovered values below zero beyond rounding: more than 1 % speaks against undoing
NOISIER = 2.5          # recovered values late in the epochs at most this many times as spread as at its start
MIN_COMPARED = 30      # ... judged only with this many epoch-start values (the spread of fewer is too uncertain)


def epoch_length(loss: np.ndarray) -> tuple[int, int] | None:
    """(epoch length, offset of the first epoch start) when ``loss`` (finite values, in step
    order) is a running mean since each epoch start, else None. The increments of a running mean
    shrink as 1/i through an epoch and jump back at its start: the phase whose increments are
    largest repeats with one period (the log increments correlate strongly at that lag), and
    increments late in the epoch are a fraction of those just after its start. O(n log n) on at
    most the last TAIL_POINTS points, after an O(n) screen that rejects ordinary noise."""
    n = len(loss)
    skipped = max(0, n - TAIL_POINTS)
    tail = loss[skipped:]
    tail = tail / magnitude(tail)   # exact: differences of values near 1e308 overflow
    steps = np.abs(np.diff(tail))
    if len(steps) < MIN_EPOCHS * 2 * MIN_EPOCH or not np.any(steps > 0):
        return None
    # cheap screen: most increments of a running mean are far smaller than its average increment
    if exact_median(steps) > SKEW_SCREEN * steps.mean():
        return None
    # candidate period: the first lag where the log increments' autocorrelation nearly peaks
    logs = np.log(steps + steps[steps > 0].min() * 1e-3)
    rho = autocorrelation(logs, len(steps) // MIN_EPOCHS)
    if len(rho) <= MIN_EPOCH:
        return None
    peak = float(np.max(rho[MIN_EPOCH:]))
    if peak < MIN_PERIODICITY:
        return None
    rough = MIN_EPOCH + int(np.argmax(rho[MIN_EPOCH:] >= 0.9 * peak))
    # the autocorrelation peak is broad: fold at each nearby length and keep the sharpest epoch start
    candidates = range(max(MIN_EPOCH, int(0.97 * rough) - 1), int(1.03 * rough) + 3)
    period, start, by_position = max((folded(steps, p) for p in candidates if len(steps) >= MIN_EPOCHS * p),
                                     key=lambda f: f[3], default=(0, 0, None, 0.0))[:3]
    if by_position is None:
        return None
    early = by_position[1: 1 + max(1, period // 10)].mean()
    late = by_position[period // 2:].mean()
    if not (early > 0 and late <= DECAY_RATIO * early and by_position[0] >= early):
        return None
    return period, (start + 1 + skipped) % period


def folded(steps: np.ndarray, period: int) -> tuple[int, int, np.ndarray, float]:
    """Fold the increments at ``period``: (period, index of the epoch-start increment, the mean
    increment by position in the epoch from its first step, sharpness of that start). The start
    is where the 1/i decay begins (a circular matched filter)."""
    usable = (len(steps) // period) * period
    profile = steps[:usable].reshape(-1, period).mean(axis=0)
    weights = 1.0 / np.arange(1, period + 1)
    score = np.fft.irfft(np.fft.rfft(profile) * np.conj(np.fft.rfft(weights)), period)
    start = int(np.argmax(score))
    return period, start, np.roll(profile, -start), float(score[start] / (profile.mean() * weights.sum()))


def undo_running_mean(loss: np.ndarray, period: int, offset: int) -> np.ndarray:
    """The per-batch values behind running means whose epochs start at ``offset`` + k·period."""
    scale = magnitude(loss)
    scaled = loss / scale
    position = epoch_position(len(loss), period, offset)
    previous = np.concatenate([[0.0], scaled[:-1]])
    return scale * np.where(position == 1, scaled, position * scaled - (position - 1) * previous)


def epoch_position(n: int, period: int, offset: int) -> np.ndarray:
    """The 1-based position of each of ``n`` points in its epoch (epochs start at ``offset`` + k·period)."""
    return (np.arange(n) - offset) % period + 1


def doubt(loss: np.ndarray, recovered: np.ndarray, period: int, offset: int,
          epoch: np.ndarray | None = None) -> str | None:
    """Why a log that reads as running means of ``period`` steps (``recovered``: the per-batch
    values undone from it) should be judged as written, or None when nothing speaks against
    undoing it. A plain log can pass the detector (a sharp first
    drop dominates the folded increments of a loss whose noise shrinks with it); undone, its noise
    is multiplied up to 2·period-fold and its trend drowns. ``epoch`` is the log's epoch column
    aligned to ``loss``, when it has one."""
    return (epoch_column_disagrees(epoch, period) or recovered_negative(loss, recovered, period, offset)
            or recovered_noisier_late(recovered, period, offset))


def epoch_column_disagrees(epoch: np.ndarray | None, period: int) -> str | None:
    """The log's own epoch column counts the rows of an epoch: they must number ``period``. The
    epoch changes where its whole part does (fractional epochs, as Hugging Face logs them, too);
    with fewer than two changes one epoch spans about the whole log."""
    known = np.flatnonzero(np.isfinite(epoch)) if epoch is not None else np.array([], dtype=int)
    if len(known) < 2:
        return None
    whole = np.floor(epoch[known])
    starts = known[1:][whole[1:] != whole[:-1]]
    rows = float(exact_median(np.diff(starts))) if len(starts) >= 2 else float(len(epoch))
    if abs(rows - period) <= 1 + EPOCH_TOLERANCE * period:
        return None
    return f"its epoch column has {rows:,.0f} rows per epoch, not {period:,}"


def recovered_negative(loss: np.ndarray, recovered: np.ndarray, period: int, offset: int) -> str | None:
    """Running means of a loss that is never negative hide no negative batch losses: recovered
    values below zero by more than the log's rounding explains (its smallest step, or float32
    precision, each multiplied by up to 2·position in the epoch) speak against them."""
    if len(loss) < 2 or np.min(loss) < 0:
        return None
    steps = np.abs(np.diff(loss))
    quantum = float(np.min(steps[steps > 0])) if np.any(steps > 0) else 0.0
    position = epoch_position(len(loss), period, offset)
    previous = np.concatenate([[0.0], loss[:-1]])
    slack = (2 * position - 1) * (quantum + FLOAT32_EPS * np.maximum(loss, previous))
    share = float(np.mean(recovered < -slack))
    if share <= NEGATIVE_SHARE:
        return None
    return f"{share:.0%} of the recovered per-batch losses would be negative, though the logged loss never is"


def recovered_noisier_late(recovered: np.ndarray, period: int, offset: int) -> str | None:
    """A batch's loss does not depend on its place in the epoch, so recovered values late in the
    epochs must spread about as much (around their epoch's mean) as those at its start, which are
    the logged values themselves. Undoing a plain log multiplies its noise by ~2·position: far
    more spread late than early."""
    epochs = (len(recovered) - offset) // period
    head = max(1, period // 4)
    if epochs * head < MIN_COMPARED:
        return None
    by_epoch = (recovered / magnitude(recovered))[offset: offset + epochs * period].reshape(epochs, period)
    deviations = by_epoch - by_epoch.mean(axis=1, keepdims=True)
    early = robust_sigma(deviations[:, :head])
    late = robust_sigma(deviations[:, period // 2:])
    if late <= NOISIER * early:
        return None
    return (f"the recovered per-batch losses late in each epoch would be {late / early:.0f}× as spread as those "
            "at its start" if early > 0 else "the recovered per-batch losses would vary only late in each epoch")


def magnitude(loss: np.ndarray) -> float:
    """A power of two near the largest |value|: dividing by it is exact and keeps sums and
    differences of any finite values from overflowing."""
    return power_of_two_near(float(np.max(np.abs(loss)))) if len(loss) else 1.0
