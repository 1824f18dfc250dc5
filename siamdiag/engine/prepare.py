"""From a run as logged to the series the checks judge: ordered unique steps, aligned
grad norm and extras, the evaluation window, and block means of long runs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..logs.tables import Metric, RawRun, Tracker
from .numerics import (HUGE, SortedWindow, block_means, block_variances, clip_in_place, exact_median, median,
                       mser_truncation, power_of_two_near, robust_sigma)

MAX_BLOCKS = 2000          # judge at most this many block means per run (research §6.1)
DEFAULT_WINDOW = 0.5       # the second half of the run's steps
LR_JUMP_RATIO = 1.8        # an lr change by this factor or more between two logged steps is a jump
LR_JUMP_OF_MAX = 0.01      # ... if it also moves the lr by >= 1 % of its largest value (not a cosine tail)
WARMUP_TAIL = 0.5          # a window moved past the transient starts this share of its length again after its end
WARMUP_SES = 3.0           # ... when the loss before that end lies this many standard errors above the rest


@dataclass(frozen=True)
class Options:
    """What the user chose. ``window`` is a fraction of the step range (<= 1) or a number of
    final steps (> 1); ``burn_in`` is None for automatic (MSER) or the first step to judge.
    ``tolerance_relative`` (a fraction of the window's median loss) and ``tolerance_absolute``
    (loss units) are the practical tolerance: drifts, shifts and end changes smaller than it
    pass whatever the logged noise."""

    alpha: float = 0.01
    window: float = DEFAULT_WINDOW
    burn_in: float | None = None
    min_points: int = 100
    tolerance_relative: float = 0.0
    tolerance_absolute: float = 0.0

    def tolerance(self, level: float) -> float:
        """The tolerance in loss units for a loss around ``level``."""
        return max(self.tolerance_absolute, self.tolerance_relative * abs(level))


def parse_tolerance(text: str) -> tuple[float, float]:
    """'0.5%' -> relative 0.005; '0.001' -> absolute 0.001 (loss units). Returns (relative,
    absolute); raises ValueError on anything else or a negative value."""
    text = str(text).strip()
    relative = text.endswith("%")
    value = float(text[:-1] if relative else text)
    if not np.isfinite(value) or value < 0:
        raise ValueError(text)
    return (value / 100.0, 0.0) if relative else (0.0, value)


def is_valid_window(window: float) -> bool:
    """A window is a fraction of the step range in (0, 1] or a whole number of final steps."""
    return 0 < window <= 1 or (window > 1 and float(window).is_integer())


WINDOW_SPELLINGS = ("a fraction of the step range with a decimal point or as a percentage (0.5, 1.0, 50%), "
                    "or a whole number >= 2 of final steps (20000)")


def parse_window(value: object) -> float:
    """A window as a user writes it (flag, environment, config file or API argument): '0.5',
    '1.0' or '50%' are fractions of the step range, '20000' a number of final steps. A bare 1
    (the TOML or Python integer too) is refused: it would read as the whole run and as the last
    step alike. Raises ValueError saying what is allowed."""
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        window = float(text[:-1] if percent else text) / (100.0 if percent else 1.0)
    except ValueError:
        raise ValueError(WINDOW_SPELLINGS) from None
    if window == 1 and not percent and not any(c in text for c in ".eE"):
        raise ValueError("1.0 or 100% for the whole run, or a whole number >= 2 of final steps "
                         "(a bare 1 is ambiguous)")
    if not is_valid_window(window) or (percent and window > 1):
        raise ValueError(WINDOW_SPELLINGS)
    return window


@dataclass(frozen=True)
class OrderedRun:
    """A run with strictly increasing steps; loss may hold non-finite values."""

    name: str
    source: str
    steps: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray | None
    extras: dict[str, np.ndarray]
    notes: tuple[str, ...]
    every_step_setting: str = ""   # RawRun's: how its logger logs every step, when known
    tracker: Tracker | None = None  # RawRun's: where its verdict can be written back


def last_per_step(metric: Metric) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Sort by step, keeping the last logged value of each step (a resumed run re-logs the
    steps after its checkpoint). Returns steps, values, duplicates dropped, whether the file
    order was not increasing."""
    steps, values = metric.steps, metric.values
    finite = np.isfinite(steps)
    if not finite.all():
        steps, values = steps[finite], values[finite]
    if len(steps) < 2 or np.all(steps[1:] > steps[:-1]):   # (no array of differences)
        return steps, values, 0, False
    order = np.argsort(steps, kind="stable")
    s, v = steps[order], values[order]
    keep = np.append(s[1:] != s[:-1], True)  # last of each run of equal steps = last in file
    return s[keep], v[keep], int(len(s) - keep.sum()), True


def align(target_steps: np.ndarray, metric: Metric | None) -> np.ndarray | None:
    """Values of ``metric`` at ``target_steps`` (NaN where it was not logged)."""
    if metric is None or len(metric.steps) == 0:
        return None
    if metric.steps is target_steps:   # the loss's own steps, which last_per_step left as they were
        return metric.values
    steps, values, _, _ = last_per_step(metric)
    if len(steps) == len(target_steps) and np.array_equal(steps, target_steps):
        return values   # logged at every step (one table row per step): no copy
    out = np.full(len(target_steps), np.nan)
    pos = np.clip(np.searchsorted(steps, target_steps), 0, len(steps) - 1)
    hit = steps[pos] == target_steps
    out[hit] = values[pos[hit]]
    return out


def order_run(raw: RawRun) -> OrderedRun:
    """Order and de-duplicate a run, saying what was done to it."""
    steps, loss, dropped, reordered = last_per_step(raw.metrics["loss"])
    notes = list(raw.notes)
    if dropped:
        notes.append(f"{dropped:,} steps were logged more than once (a resumed run?); "
                     "kept the last value of each")
    elif reordered:
        notes.append("steps were not in increasing order; sorted them")
    bad_steps = int((~np.isfinite(raw.metrics["loss"].steps)).sum())
    if bad_steps:
        notes.append(f"ignored {bad_steps:,} rows without a step value")
    extras = {k: align(steps, m) for k, m in raw.metrics.items() if k not in ("loss", "grad_norm")}
    return OrderedRun(name=raw.name, source=raw.source, steps=steps, loss=loss,
                      grad_norm=align(steps, raw.metrics.get("grad_norm")), extras=extras,
                      notes=tuple(notes), every_step_setting=raw.every_step_setting, tracker=raw.tracker)


@dataclass(frozen=True)
class Window:
    """The evaluation window and the aggregation used inside it.

    ``start`` is the index of the first window point in the run's finite-loss arrays;
    ``block`` the block length (1 = raw); ``agg_start`` the first window block.
    """

    start: int
    first_step: float
    last_step: float
    burn_in_step: float | None
    burn_in_method: str
    block: int
    agg_start: int

    def step_at(self, fraction: float) -> float:
        """The (rounded) step a fraction of the way through the window."""
        return float(round(self.first_step + fraction * (self.last_step - self.first_step)))


@dataclass(frozen=True)
class PreparedSeries:
    """Everything the checks read. ``window_loss`` is the raw window (finite values). The tests
    read the standardised series: (loss - window median) / ``scale``, where ``scale`` is a power
    of two near the window's robust spread, so that no square overflows or underflows at any
    magnitude (1e-200 or 1e160) and rescaling back is exact. ``agg`` holds block means of the
    whole standardised run, window part winsorised (so a spike cannot steer the burn-in);
    ``agg_window`` the window's blocks and ``within_window`` the variance of the raw points
    inside each of them (zero when blocks are single points). ``tolerance`` is the practical
    tolerance in standardised units; ``lr_change`` the step of the last learning-rate jump the
    window was moved past (``level_drop`` that of a drop in the loss itself when no lr was
    logged), and ``lr_period`` the period (in points) of lr restarts removed;
    ``asked_first_step`` is set when the window asked for reached into the learning transient and
    was moved past it."""

    window: Window
    sorted_window: SortedWindow   # the window's loss (``window_loss``), sorted once for its order statistics
    scale: float
    level: float
    spread: float          # robust sigma of the window, in loss units
    agg: np.ndarray
    agg_window: np.ndarray
    within_window: np.ndarray
    tolerance: float = 0.0
    lr_change: tuple[float, float] | None = None   # (step, lr ratio) of the last lr jump
    lr_period: int | None = None
    interval_change: tuple[float, float, float] | None = None   # (step, old, new logging interval)
    asked_first_step: float | None = None   # the window's first step as asked, when moved past the transient
    level_drop: float | None = None         # step of a drop in the loss (no lr logged) the window was moved past

    @property
    def window_loss(self) -> np.ndarray:
        return self.sorted_window.x


def window_start_index(steps: np.ndarray, options: Options) -> int:
    """First index of the evaluation window: a fixed first step, or the last fraction / the
    last N steps of the step range."""
    if options.burn_in is not None:
        return int(np.searchsorted(steps, options.burn_in, side="left"))
    span = steps[-1] - steps[0]
    width = options.window * span if options.window <= 1 else options.window
    return int(np.searchsorted(steps, steps[-1] - width, side="left"))


def past_warmup(steps: np.ndarray, loss: np.ndarray, start: int, options: Options) -> int:
    """The first index to judge of a window that begins before the default one (--window 0.99,
    or more steps than the run has) and inside the learning transient, which is not what the
    user asked to judge: past the transient's end (MSER-5) by WARMUP_TAIL of its length, for
    MSER weighs the bias left after its cut against the standard error of the mean, while the
    level-shift test resolves a tenth of a sigma. Never later than the default window's start (a
    transient reaching into the run's second half still counts as one in the window) nor than
    leaves ``min_points`` to judge. A fixed burn-in is honoured as given."""
    latest = min(window_start_index(steps, Options(window=DEFAULT_WINDOW)), len(loss) - options.min_points)
    if options.burn_in is not None or start >= latest:
        return start
    end = warmup_end(loss, latest)
    if end <= start or not fell(loss[start:end], loss[end:]):
        return start   # MSER cuts noise too: only a loss that came down is a transient
    return int(np.clip(end + WARMUP_TAIL * (end - start), start, latest))


def fell(head: np.ndarray, rest: np.ndarray) -> bool:
    """Whether ``head`` lies above ``rest`` by more than WARMUP_SES standard errors of its mean
    (the spread measured on ``rest``): a learning transient, not noise MSER happened to cut."""
    spread = robust_sigma(rest)
    return bool(len(head) and float(np.mean(head) - exact_median(rest)) > WARMUP_SES * spread / np.sqrt(len(head)))


def warmup_end(loss: np.ndarray, limit: int) -> int:
    """Index where the learning transient ends: MSER-5 on at most MAX_BLOCKS block means of the
    standardised loss (any magnitude), searched no further than index ``limit``."""
    block = max(1, -(-len(loss) // MAX_BLOCKS))
    agg = block_means((loss - median(loss)) / power_of_two_near(robust_sigma(loss)), block)
    skipped = len(loss) - len(agg) * block
    return skipped + mser_truncation(agg, search_limit=max(0, limit - skipped) // block) * block


def lr_jumps(lr: np.ndarray) -> np.ndarray:
    """Indices where the learning rate jumps (a step decay, a warm restart): it changes by a
    factor of LR_JUMP_RATIO or more from the previous logged value, and by at least 1 % of its
    largest value (the last steps of a cosine decay change by large factors, but by nothing)."""
    ok = np.isfinite(lr) & (lr > 0)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return np.array([], dtype=int)
    v = lr[idx]
    ratio = v[1:] / v[:-1]
    big = (np.maximum(ratio, 1 / ratio) >= LR_JUMP_RATIO) & (np.abs(np.diff(v)) >= LR_JUMP_OF_MAX * v.max())
    return idx[1:][big]


def interval_change(steps: np.ndarray) -> tuple[int, float, float] | None:
    """The last change of the logging interval that lasts to the end of the run (a run resumed
    logging every k steps instead of every step, or the other way round): (index of the first
    point at the new interval, old interval, new interval), when they differ by 2x or more."""
    spacing = np.diff(steps)
    if len(spacing) < 4:
        return None
    new = float(exact_median(spacing[-min(len(spacing), 50):]))
    # |spacing - new| is largest at the smallest or the largest spacing (rounding keeps the order)
    if not any(abs(extreme - new) > 0.25 * new for extreme in (spacing.min(), spacing.max())):
        return None
    differs = np.flatnonzero(np.abs(spacing - new) > 0.25 * new)
    last = int(differs[-1])   # spacing[last] is the last one at another interval
    old = float(exact_median(spacing[max(0, last - 50): last + 1]))
    if not (old > 0 and new > 0) or max(old / new, new / old) < 2:
        return None
    return last + 1, old, new


def match_noise(loss: np.ndarray, start: int, change: int) -> np.ndarray:
    """The window's points before a logging-interval change, their deviations from their median
    rescaled to the noise of the points after it: the logged noise changed with the logging, so
    only what differs beyond that is judged (used when too few points follow the change to judge
    them alone)."""
    out = loss.copy()
    before, after = out[start:change], out[change:]
    spread_before, spread_after = robust_sigma(before), robust_sigma(after)
    if spread_before > 0 and spread_after > 0:
        centre = float(exact_median(before))
        out[start:change] = centre + (before - centre) * (spread_after / spread_before)
    return out


def restart_period(jumps: np.ndarray, lr: np.ndarray) -> int | None:
    """The period in points of warm restarts (upward lr jumps at equal intervals, at least three),
    or None when the jumps are not periodic."""
    up = jumps[lr[jumps] > lr[jumps - 1]] if len(jumps) else jumps
    if len(up) < 3:
        return None
    gaps = np.diff(up)
    period = int(exact_median(gaps))
    return period if period >= 4 and np.all(np.abs(gaps - period) <= 1 + 0.02 * period) else None


def remove_cycle_profile(loss: np.ndarray, first: int, period: int) -> np.ndarray:
    """Subtract from each point after ``first`` the mean of its phase in the restart cycle (over
    all cycles), keeping the overall level: what is left is what differs between cycles."""
    out = loss.copy()
    tail = out[first:]
    phase = np.arange(len(tail)) % period
    sums = np.bincount(phase, weights=tail, minlength=period)
    counts = np.bincount(phase, minlength=period)
    profile = sums / np.maximum(counts, 1)
    out[first:] = tail - profile[phase] + tail.mean()
    return out


def prepare_series(steps: np.ndarray, loss: np.ndarray, options: Options,
                   lr: np.ndarray | None = None, level_drop: float | None = None) -> PreparedSeries | None:
    """Finite points only; None when the window holds fewer than ``min_points``.

    A window wider than the default one that reaches into the learning transient starts where
    the transient ends (``past_warmup``). With an automatic burn-in, a change of the logging
    interval inside the window (a resume that logs k-step means instead of every step changes the
    logged noise, not the training) moves the
    window past it, as an lr jump does, and so does ``level_drop`` (the step of a step-like drop
    of the loss the caller found in the window, with no lr logged). With a learning-rate column, the schedule explains what it causes:
    periodic warm restarts are removed as a cycle profile, and after a step decay (or any lr
    jump) inside the window only the segment after the last jump is judged, from where its own
    transient ends (MSER-5 on that segment)."""
    finite = np.isfinite(loss)
    if not finite.all():   # (nothing here writes into loss: a finite run is used without a copy)
        steps, loss = steps[finite], loss[finite]
        lr = None if lr is None else lr[finite]
    if len(loss) < options.min_points:
        return None
    asked = window_start_index(steps, options)
    start = past_warmup(steps, loss, asked, options)
    lr_change, lr_period, segment_start, interval, interval_noted = None, None, None, None, None
    if options.burn_in is None:
        change = interval_change(steps)
        if change is not None and change[0] > start and len(loss) - change[0] >= options.min_points:
            segment_start, interval = change[0], change[1:]
        elif change is not None and change[0] > start + 2:   # too few points after it: match the noise instead
            loss = match_noise(loss, start, change[0])
            interval_noted = (float(steps[change[0]]),) + change[1:]
    if lr is not None and options.burn_in is None:
        jumps = lr_jumps(lr)
        period = restart_period(jumps, lr)
        if period is not None:
            loss = remove_cycle_profile(loss, int(jumps[0]), period)
            lr_period = period
        elif (len(jumps) and jumps[-1] > start and len(loss) - jumps[-1] >= options.min_points
              and (segment_start is None or jumps[-1] > segment_start)):
            last = int(jumps[-1])
            lr_change = (float(steps[last]), float(lr[last] / lr[last - 1]))
            segment_start, interval = last, None
    dropped = None
    if level_drop is not None and options.burn_in is None:
        index = int(np.searchsorted(steps, level_drop))
        if len(loss) - index >= options.min_points and (segment_start is None or index > segment_start):
            segment_start, interval, lr_change, dropped = index, None, None, float(steps[index])
    if len(loss) - start < options.min_points:
        return None
    if segment_start is not None:
        segment = loss[segment_start:]
        cut = mser_truncation(block_means(segment, max(1, -(-len(segment) // MAX_BLOCKS))),
                              search_limit=None) * max(1, -(-len(segment) // MAX_BLOCKS))
        start = segment_start + min(cut, len(segment) - options.min_points)
    window_loss = loss[start:]
    ordered = SortedWindow(window_loss)
    level = ordered.median()
    spread = ordered.robust_sigma(level if abs(level) < HUGE else None)   # below HUGE it is np.median's
    scale = power_of_two_near(spread)
    # At most MAX_BLOCKS blocks over the run, and at least min_points blocks in the window.
    block = max(1, min(-(-len(loss) // MAX_BLOCKS), (len(loss) - start) // options.min_points))
    # Blocks are aligned to the end of the run, and the window is widened to whole blocks.
    agg_count_window = (len(loss) - start) // block
    # Centred on the window median and scaled: every test is location- and scale-invariant, and
    # sums of squares of a loss like 684.5 +- 2e-5 (or 1e160) would otherwise cancel or overflow.
    series = (loss - level) / scale
    standardised = series[start:]
    clip_in_place(standardised, ordered.mapped(lambda v: (v - level) / scale, standardised).winsor_bounds())
    agg = block_means(series, block)
    within = block_variances(series[len(series) - agg_count_window * block:], block)
    agg_start = len(agg) - agg_count_window
    if segment_start is not None:
        method = "level-drop" if dropped is not None else "lr-change" if interval is None else "interval-change"
        burn_in_step = float(steps[start])
    elif options.burn_in is None:
        search_limit = len(agg) - agg_count_window // 2
        cut = mser_truncation(agg, search_limit=search_limit)
        burn_in_step = float(steps[len(loss) - len(agg) * block + cut * block])
        method = "mser-5"
    else:
        burn_in_step, method = float(options.burn_in), "fixed"
    window = Window(start=start, first_step=float(steps[start]), last_step=float(steps[-1]),
                    burn_in_step=burn_in_step, burn_in_method=method, block=block, agg_start=agg_start)
    return PreparedSeries(window=window, sorted_window=ordered, scale=scale, level=level, spread=spread,
                          agg=agg, agg_window=agg[agg_start:], within_window=within,
                          tolerance=options.tolerance(level) / scale, lr_change=lr_change, lr_period=lr_period,
                          interval_change=(interval_noted if interval is None
                                           else (float(steps[segment_start]),) + tuple(interval)),
                          asked_first_step=(float(steps[asked]) if window.first_step > steps[asked]
                                            and segment_start is None else None),
                          level_drop=dropped)
