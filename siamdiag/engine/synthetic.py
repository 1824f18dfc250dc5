"""Synthetic loss series whose true verdict is known by construction (research notes §7).

Used by the statistical benchmark, the tests and the sample-run generator. Each process takes
n and a numpy Generator and returns a float array of length n (the loss, one value per step), or
a SyntheticRun when the truth depends on what else the log carries (steps, lr, distances, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.signal import lfilter

from ..logs.tables import Metric, RawRun


@dataclass(frozen=True)
class SyntheticRun:
    """A whole log: the loss, its steps (default 0..n-1) and extra columns by role name."""

    loss: np.ndarray
    steps: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def as_raw_run(made, name: str = "run") -> RawRun:
    """A process's output (an array or a SyntheticRun) as the RawRun a reader would produce."""
    run = made if isinstance(made, SyntheticRun) else SyntheticRun(np.asarray(made, dtype=float))
    steps = np.arange(len(run.loss), dtype=float) if run.steps is None else np.asarray(run.steps, dtype=float)
    metrics = {"loss": Metric(steps, np.asarray(run.loss, dtype=float))}
    metrics.update({k: Metric(steps, np.asarray(v, dtype=float)) for k, v in run.extras.items()})
    return RawRun(name=name, source=name, metrics=metrics)


def ar1(n: int, rng: np.random.Generator, phi: float, burn: int = 500) -> np.ndarray:
    """Stationary AR(1) with unit innovations, started in equilibrium by a burn-in."""
    e = rng.standard_normal(n + burn)
    return lfilter([1.0], [1.0, -phi], e)[burn:]


def garch(n: int, rng: np.random.Generator, omega=0.05, alpha=0.1, beta=0.85, burn=500) -> np.ndarray:
    z = rng.standard_normal(n + burn)
    x = np.empty(n + burn)
    var = omega / (1 - alpha - beta)
    prev = 0.0
    for t in range(n + burn):
        var = omega + alpha * prev * prev + beta * var
        prev = np.sqrt(var) * z[t]
        x[t] = prev
    return x[burn:]


def white(n, rng):
    return 0.3 + 0.02 * rng.standard_normal(n)


def _t(n):
    return np.arange(n, dtype=float)


@dataclass(frozen=True)
class Process:
    """A generator, the verdicts that count as right for it, and why. ``options`` are the
    analysis options the cell is judged with (e.g. a tolerance), beyond the defaults."""

    name: str
    make: Callable[[int, np.random.Generator], "np.ndarray | SyntheticRun"]
    truth: frozenset[str]
    group: str   # "stationary" (scores false alarms), "hard", "nonstationary" (scores detection)
    why: str = ""
    options: dict = field(default_factory=dict)


S, H, N = "stationary", "hard", "nonstationary"
_OK = frozenset({"stationary"})
_OK_OR_UNSURE = frozenset({"stationary", "inconclusive"})

PROCESSES: dict[str, Process] = {p.name: p for p in [
    Process("white_noise", white, _OK, S),
    Process("ar1_0.5", lambda n, r: ar1(n, r, 0.5), _OK_OR_UNSURE, S),
    Process("ar1_0.9", lambda n, r: ar1(n, r, 0.9), _OK_OR_UNSURE, S),
    Process("heavy_tails_t3", lambda n, r: r.standard_t(3, n), _OK_OR_UNSURE, S),
    Process("garch", lambda n, r: garch(n, r), _OK_OR_UNSURE, S),
    Process("rare_spikes", lambda n, r: white(n, r) + 0.5 * (r.random(n) < 0.002), _OK_OR_UNSURE, S),
    Process("epoch_periodic", lambda n, r: 0.3 + 0.02 * np.sin(2 * np.pi * _t(n) / (n / 20)) + 0.02 * r.standard_normal(n), _OK_OR_UNSURE, S),
    Process("fast_transient", lambda n, r: 1 + 2 * np.exp(-_t(n) / (n / 50)) + 0.1 * r.standard_normal(n), _OK_OR_UNSURE, S),
    Process("lr_drop_before_window", lambda n, r: 0.3 + 0.02 * r.standard_normal(n) - 0.1 * (_t(n) >= 0.3 * n), _OK_OR_UNSURE, S),
    Process("negative_valued", lambda n, r: -2.0 + 0.05 * ar1(n, r, 0.5), _OK_OR_UNSURE, S),
    Process("quantised", lambda n, r: np.round(white(n, r), 3), _OK_OR_UNSURE, S),
    Process("ar1_0.98", lambda n, r: ar1(n, r, 0.98), _OK_OR_UNSURE, H),
    Process("ema_smoothed", lambda n, r: ar1(n, r, 0.98) * 0.02 * 0.05 + 0.3, _OK_OR_UNSURE, H),
    Process("random_walk", lambda n, r: np.cumsum(r.standard_normal(n)), frozenset({"nonstationary", "not_converged"}), N),
    Process("slow_exp_decay", lambda n, r: 1 + 2 * np.exp(-_t(n) / (n / 5)) + 0.1 * r.standard_normal(n), frozenset({"not_converged"}), N),
    Process("power_law_decay", lambda n, r: 0.5 + 2 * (1 + _t(n) / 50) ** -0.5 + 0.05 * r.standard_normal(n), frozenset({"not_converged"}), N),
    Process("drift_down_3sigma", lambda n, r: ar1(n, r, 0.5) / np.sqrt(1 / 0.75) - 3 * _t(n) / n, frozenset({"not_converged"}), N),
    Process("drift_up_3sigma", lambda n, r: ar1(n, r, 0.5) / np.sqrt(1 / 0.75) + 3 * _t(n) / n, frozenset({"nonstationary"}), N),
    Process("level_shift_0.5sigma", lambda n, r: r.standard_normal(n) - 0.5 * (_t(n) >= 0.8 * n), frozenset({"nonstationary"}), N),
    Process("level_shift_1sigma_up", lambda n, r: r.standard_normal(n) + 1.0 * (_t(n) >= 0.8 * n), frozenset({"nonstationary"}), N),
    Process("variance_doubling", lambda n, r: r.standard_normal(n) * (1 + (_t(n) >= 0.8 * n)), frozenset({"nonstationary"}), N),
    Process("divergence_last_5pct", lambda n, r: white(n, r) + np.where(_t(n) >= 0.95 * n, 0.01 * np.exp((_t(n) - 0.95 * n) / (0.01 * n)), 0.0), frozenset({"diverged"}), N),
]}


def ar1_pair(n: int, rng: np.random.Generator, phi: float, rho: float, burn: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Two AR(1) series whose innovations correlate at ``rho`` (truth: coupled iff rho != 0)."""
    e1 = rng.standard_normal(n + burn)
    e2 = rho * e1 + np.sqrt(1 - rho * rho) * rng.standard_normal(n + burn)
    return lfilter([1.0], [1.0, -phi], e1)[burn:], lfilter([1.0], [1.0, -phi], e2)[burn:]


def shared_trend_pair(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Loss and grad norm that share only a decaying trend (truth: not coupled)."""
    t = np.arange(n) / n
    loss = 1 + 2 * np.exp(-4 * t) + 0.2 * rng.standard_normal(n)
    grad = 0.5 + 3 * np.exp(-4 * t) + 0.3 * ar1(n, rng, 0.5)
    return loss, grad


# --------------------------------------------------------------------------------------------
# Realistic training shapes (issue #11): what schedules, batch mixtures, loggers and dead
# networks do to a loss log. Each cell states its truth and why.

def _smooth(n: int, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
    """Per-epoch-like persistent noise: AR(0.9) scaled to ``scale`` marginal standard deviation."""
    return scale * ar1(n, rng, 0.9) / np.sqrt(1 / (1 - 0.81))


def mixture(n, rng, share):
    """Two kinds of batch drawn independently each step; the harder kind costs 15 sigma more."""
    return white(n, rng) + 0.3 * (rng.random(n) < share)


def with_nonfinite(n, rng, fractions, value=np.nan):
    loss = white(n, rng)
    loss[[int(f * n) for f in fractions]] = value
    return loss


def step_decay(n, rng, at=0.6):
    """lr x0.1 at ``at`` of the run: the loss falls to a lower level within ~1 % of the run."""
    t = _t(n)
    after = t >= at * n
    loss = 0.5 + 0.02 * rng.standard_normal(n)
    loss[after] = 0.3 + 0.2 * np.exp(-(t[after] - at * n) / (0.01 * n)) + 0.02 * rng.standard_normal(after.sum())
    return SyntheticRun(loss, extras={"lr": np.where(after, 0.01, 0.1)})


def sgdr(n, rng, cycles=10):
    """Cosine annealing with warm restarts of equal length: the loss follows the lr in each
    cycle, and every cycle is alike."""
    phase = (_t(n) % (n / cycles)) / (n / cycles)
    lr = 0.05 * (1 + np.cos(np.pi * phase))
    return SyntheticRun(0.3 + 1.0 * lr + 0.02 * rng.standard_normal(n), extras={"lr": lr})


def noiseless_converged(n, rng):
    """Full-batch training: a deterministic decay in float32 that moves 2e-5 of its value over
    the window."""
    return (0.25 * (1 + 2e-4 * np.exp(-_t(n) / (n / 4)))).astype(np.float32).astype(float)


def settling(total, rng):
    """A per-step loss that has practically settled: its remaining drift over the second half is
    0.03 sigma of one step."""
    t = np.arange(total, dtype=float)
    return 0.3 + 0.004 * np.exp(-t / (0.3 * total)) + 0.02 * rng.standard_normal(total)


def block_mean_log(n, rng, per=50):
    """The settling loss logged as means of ``per`` steps (logging every ``per`` steps)."""
    return SyntheticRun(settling(n * per, rng).reshape(n, per).mean(axis=1), steps=(np.arange(n) + 1.0) * per)


def running_mean_log(n, rng, epoch=100):
    """The settling loss logged every step as Keras does: the running mean since the start of
    the epoch (``epoch`` steps per epoch)."""
    epochs = -(-n // epoch)
    x = settling(epochs * epoch, rng).reshape(epochs, epoch)
    return (np.cumsum(x, axis=1) / np.arange(1, epoch + 1)).ravel()[:n]


def interval_change_log(n, rng, per=5, at=0.85):
    """Logged every step until a resume at ``at`` of the logged points, then as means of ``per``
    steps: the logged noise shrinks by sqrt(per) though the training did not change. The change
    lies inside the window (the second half of the step range)."""
    first = int(at * n)
    head = 0.3 + 0.02 * rng.standard_normal(first)
    tail = (0.3 + 0.02 * rng.standard_normal((n - first) * per)).reshape(n - first, per).mean(axis=1)
    steps = np.concatenate([np.arange(first, dtype=float), first - 1 + per * np.arange(1, n - first + 1.0)])
    return SyntheticRun(np.concatenate([head, tail]), steps=steps)


def growing_oscillation(n, rng, period=5):
    """Too high a learning rate: an oscillation of a few steps whose amplitude grows from 0.2 to 4
    noise sigmas over the run."""
    amplitude = 0.02 * np.linspace(0.2, 4.0, n)
    return white(n, rng) + amplitude * np.sin(2 * np.pi * _t(n) / period + rng.uniform(0, 2 * np.pi))


def end_rise(n, rng, sigmas, last=0.03):
    """A rise of ``sigmas`` noise sigmas over the last ``last`` of the run."""
    return white(n, rng) + 0.02 * sigmas * (_t(n) >= (1 - last) * n)


def smooth_move(n, rng, kind):
    """A smooth per-epoch-like loss (persistent noise, sigma 0.01) with a move many times larger
    than that noise in the window: a rise of 0.23, a swing of 0.2 up and back, a drop at 5/6."""
    t = _t(n)
    x = 0.7 + _smooth(n, rng)
    in_window = np.clip((t - n / 2) / (n / 2), 0, 1)
    if kind == "rise":
        return x + 0.23 * in_window
    if kind == "swing":
        return x + 0.2 * np.sin(np.pi * in_window)
    return x - 0.2 * (t >= 5 * n / 6)


def short_strong_trend(n, rng):
    """150 epochs (whatever n) of a loss still falling by 50 noise sigmas over the second half."""
    t = np.arange(150, dtype=float)
    return 1 + 0.5 * np.exp(-t / 60) + 0.002 * rng.standard_normal(150)


def float32_pinned(n, rng, level=85.029):
    """A dead network: the loss is one float32 value give or take a few units of its last place."""
    ulp = np.spacing(np.float32(level))
    return (np.float32(level) + ulp * rng.integers(-3, 4, n)).astype(np.float32).astype(float)


def pinned_with_bumps(n, rng):
    """A dead network whose loss sits at 5.7135 exactly but for rare +0.004 bumps (3 % of steps)."""
    return 5.7135 + 0.004 * (rng.random(n) < 0.03)


def collapsed_distances(n, rng):
    """Collapsed embeddings: positive and negative distances between 1e-6 and 1e-2 for a margin of
    1, the contrastive loss hovering near margin^2/4."""
    pos = 10 ** rng.uniform(-6, -2, n)
    neg = 10 ** rng.uniform(-6, -2, n)
    return SyntheticRun(0.25 + 0.01 * rng.standard_normal(n),
                        extras={"pos_dist": pos, "neg_dist": neg, "margin": np.ones(n)})


def stalled(n, rng):
    """siamdiag train --optimizer sgd --lr 5 as reported: the loss falls from 0.16 to 0.10 by
    2.5 % of the run (step 150 of 6,000) and stays there, while the embedding norm jumps from 0.3
    to 300-600."""
    t = _t(n)
    loss = 0.10 + 0.06 * np.exp(-t / (n / 120)) + 0.01 * rng.standard_normal(n)
    norm = np.where(t < 3, 0.3, rng.uniform(300, 600, n))
    return SyntheticRun(loss, extras={"embedding_norm": norm, "grad_norm": 0.05 + 0.01 * rng.random(n)})


def cosine_growth_learning(n, rng):
    """A cosine-loss run that learns (0.30 -> 0.10) while its embedding norm grows x6: reported,
    not gating."""
    t = _t(n)
    loss = 0.10 + 0.20 * np.exp(-t / (n / 20)) + 0.01 * rng.standard_normal(n)
    return SyntheticRun(loss, extras={"embedding_norm": 1 + 5 * (1 - np.exp(-t / (n / 10)))})


_STATIONARY = frozenset({"stationary"})
TRAINING_SHAPES: dict[str, Process] = {p.name: p for p in [
    Process("mixture_20pct_hard", lambda n, r: mixture(n, r, 0.2), _OK_OR_UNSURE, S,
            "each step draws an easy or a hard batch independently: a stationary mixture"),
    Process("mixture_30pct_hard", lambda n, r: mixture(n, r, 0.3), _OK_OR_UNSURE, S,
            "each step draws an easy or a hard batch independently: a stationary mixture"),
    Process("recovered_nan_in_window", lambda n, r: with_nonfinite(n, r, [0.75]), _STATIONARY, S,
            "one skipped fp16 overflow: the same run as a NaN before the window"),
    Process("recovered_inf_x3_in_window", lambda n, r: with_nonfinite(n, r, [0.6, 0.7, 0.9], np.inf), _STATIONARY, S,
            "three isolated overflows the loss scaler skipped; the run recovered each time"),
    Process("step_decay_lr_in_window", step_decay, _OK_OR_UNSURE, S,
            "lr x0.1 at 60 % of the run (logged): the segment after the last lr change is flat"),
    Process("sgdr_restarts_lr", sgdr, _OK_OR_UNSURE, S,
            "ten equal cosine cycles with warm restarts (lr logged): every cycle is alike"),
    Process("quantised_4dp", lambda n, r: np.round(0.3 + 0.0001 * r.standard_normal(n), 4), _OK_OR_UNSURE, S,
            "white noise logged with 4 decimals, a quantum as large as the noise"),
    Process("noiseless_converged_tol", noiseless_converged, _STATIONARY, S,
            "a full-batch run moving 2e-5 of its value: within a 0.1 % tolerance", {"tolerance_relative": 0.001}),
    Process("block_means_50", block_mean_log, _OK_OR_UNSURE, S,
            "a settled run (drift 0.03 sigma of a step) logged as 50-step means: within 0.5 %",
            {"tolerance_relative": 0.005}),
    Process("epoch_means_500", lambda n, r: block_mean_log(n, r, 500), _OK_OR_UNSURE, S,
            "the same settled run logged as 500-step epoch means: within 0.5 %", {"tolerance_relative": 0.005}),
    Process("keras_running_means", running_mean_log, _OK_OR_UNSURE, S,
            "the same settled run logged as running means since the start of each 100-step epoch"),
    Process("logging_interval_change", interval_change_log, _OK_OR_UNSURE, S,
            "white noise logged per step, then as 5-step means after a resume inside the window"),
    Process("magnitude_1e160", lambda n, r: white(n, r) * 1e160, _STATIONARY, S,
            "white noise at 1e160: every test is scale-invariant"),
    Process("magnitude_1e-200", lambda n, r: white(n, r) * 1e-200, _STATIONARY, S,
            "white noise at 1e-200: every test is scale-invariant"),
    Process("growing_oscillation", growing_oscillation, frozenset({"nonstationary"}), N,
            "an lr too high: a 5-step oscillation growing from 0.2 to 4 sigma"),
    Process("end_rise_3sigma_last3pct", lambda n, r: end_rise(n, r, 3), frozenset({"nonstationary", "diverged"}), N,
            "the loss rises 3 sigma in the last 3 % of the run"),
    Process("end_rise_8sigma_last3pct", lambda n, r: end_rise(n, r, 8), frozenset({"nonstationary", "diverged"}), N,
            "the loss rises 8 sigma in the last 3 % of the run"),
    Process("smooth_rise", lambda n, r: smooth_move(n, r, "rise"), frozenset({"nonstationary"}), N,
            "a smooth per-epoch loss rising 23 noise sigmas over the window"),
    Process("smooth_swing", lambda n, r: smooth_move(n, r, "swing"), frozenset({"nonstationary", "not_converged"}), N,
            "a smooth loss swinging 20 noise sigmas up and back in the window (its falling half reads as learning)"),
    Process("smooth_late_drop", lambda n, r: smooth_move(n, r, "drop"), frozenset({"nonstationary", "not_converged"}), N,
            "a smooth loss dropping 20 noise sigmas at 5/6 of the run"),
    Process("short_log_strong_trend", short_strong_trend, frozenset({"not_converged"}), N,
            "150 epochs, still falling by 50 sigma over the second half"),
    Process("noiseless_converged", noiseless_converged, frozenset({"not_converged"}), N,
            "a full-batch run still decreasing smoothly (2e-5 of its value) without a tolerance"),
    Process("dead_float32_jitter", float32_pinned, frozenset({"degenerate"}), N,
            "a dead network: one float32 value +- 3 units in the last place"),
    Process("dead_pinned_with_bumps", pinned_with_bumps, frozenset({"degenerate"}), N,
            "a dead network pinned at 5.7135 with rare +0.004 bumps"),
    Process("collapsed_small_distances", collapsed_distances, frozenset({"degenerate"}), N,
            "distances of 1e-6 to 1e-2 against a margin of 1: collapsed embeddings"),
    Process("stalled_norm_growth", stalled, frozenset({"degenerate"}), N,
            "flat from step 10 at its starting level while the embedding norm grew x1000: never learned"),
    Process("cosine_norm_growth_learning", cosine_growth_learning, _STATIONARY, S,
            "learned (0.30 -> 0.10) and settled while the embedding norm grew x6: a finding, not a failure"),
]}

# --------------------------------------------------------------------------------------------
# Persistence, smoothing and late changes (issue #17): the shapes real logs showed that came out
# `inconclusive` ("too persistent") or wrong, each rebuilt by construction with its truth. Cells
# named with a length (``_320``) reproduce a reported log at its own length whatever n is.


def _transient(t: np.ndarray, span: float, height: float) -> np.ndarray:
    """A learning transient: ``height`` above the settled level at the start, decaying over ``span`` steps."""
    return height * np.exp(-t / span)


def _bridge(t: np.ndarray, knots: list[float], levels: list[float]) -> np.ndarray:
    """A smooth path through (knot, level) pairs: cosine-eased between consecutive knots."""
    out = np.full(len(t), float(levels[0]))
    for (k0, k1), (v0, v1) in zip(zip(knots, knots[1:]), zip(levels, levels[1:])):
        inside = (t >= k0) & (t <= k1)
        ease = 0.5 - 0.5 * np.cos(np.pi * (t[inside] - k0) / (k1 - k0))
        out[inside] = v0 + (v1 - v0) * ease
    out[t > knots[-1]] = levels[-1]
    return out


def epoch_swings_late_drop(n, rng):
    """A per-step log (noise 0.5) whose per-epoch level swings by up to +-1.5 around 9.5 (24 epochs),
    then drops abruptly to 1.7 for the last sixth of the run."""
    t = _t(n)
    epoch = np.minimum((t // (n / 24)).astype(int), 23)
    level = 9.5 + rng.uniform(-1.5, 1.5, 24)[epoch] + _transient(t, n / 30, 3.0)
    level[t >= 5 * n / 6] = 1.7
    return level + 0.5 * rng.standard_normal(n)


def gan_climb(n, rng, length=320):
    """A per-epoch GAN generator loss: settles at -0.30, then climbs smoothly to -0.07 over the
    window (epoch-mean noise 0.01, mildly persistent)."""
    t = _t(length)
    path = _bridge(t, [length / 2, length - 1], [-0.30, -0.07]) - _transient(t, length / 15, 0.2)
    return path + 0.008 * rng.standard_normal(length) + 0.5 * _smooth(length, rng, 0.01)


def gan_swing(n, rng, length=320):
    """A per-epoch GAN generator loss swinging -0.02 -> -0.47 -> -0.18 inside the window."""
    t = _t(length)
    path = _bridge(t, [length / 2, 0.72 * length, length - 1], [-0.02, -0.47, -0.18])
    return path + 0.008 * rng.standard_normal(length) + 0.5 * _smooth(length, rng, 0.01)


def contrastive_wander(n, rng):
    """A MoCo-like per-step loss (noise 0.1): after its transient the window falls 7.5 -> 7.2, rises
    to 7.32 and falls again to 7.15 (a 4 % wander of the level)."""
    t = _t(n)
    path = _bridge(t, [n / 2, 2 * n / 3, 5 * n / 6, n - 1], [7.5, 7.2, 7.32, 7.15]) + _transient(t, n / 20, 2.0)
    return path + 0.1 * rng.standard_normal(n)


def late_spike_recovering(n, rng, length=250):
    """A 250-epoch segmentation loss settled at 0.2 (epoch-mean noise 0.004): at 80 % of the run it
    jumps to 3x its level and recovers with a time constant of 25 epochs, still 27 % above at the end."""
    t = _t(length)
    spike_at = 0.8 * length
    excess = np.where(t >= spike_at, 0.4 * np.exp(-(t - spike_at) / 25.0), 0.0)
    return 0.2 + _transient(t, length / 20, 0.6) + excess + 0.004 * rng.standard_normal(length)


def slow_fall_heavy_noise(n, rng, length=51000):
    """An ArcFace-like per-step loss of 51,000 steps whose mean falls steadily by 3.6 % of its level
    over the window under heavy per-step noise (10 % of the level, partly persistent)."""
    t = _t(length)
    fall = -0.36 * np.clip((t - length / 2) / (length / 2), 0, 1)
    noise = 0.9 * rng.standard_normal(length) + 0.3 * ar1(length, rng, 0.95) * np.sqrt(1 - 0.95 ** 2)
    return 10.0 + fall + _transient(t, length / 20, 10.0) + noise


def level_wander(n, rng, share):
    """A per-step loss at 5.0 (noise 0.05) that wanders by +-``share`` of its level with a period of
    half the window: persistent whatever the share."""
    t = _t(n)
    return 5.0 * (1 + share * np.sin(2 * np.pi * t / (n / 4) + rng.uniform(0, 2 * np.pi))) + 0.05 * rng.standard_normal(n)


def fastai_smooth_loss(raw: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """fastai's ``Recorder.smooth_loss``: an exponential moving average of the batch losses with
    weight ``beta``, divided by 1 - beta^i to undo its start at 0 (``AvgSmoothLoss``)."""
    avg = lfilter([1.0 - beta], [1.0, -beta], raw)
    return avg / (1.0 - beta ** np.arange(1, len(raw) + 1))


def ema_converged(n, rng, beta=0.98):
    """A run that learned and settled (raw per-batch loss 0.3 +- 0.05 after a transient), logged as
    fastai's smoothed loss."""
    t = _t(n)
    return fastai_smooth_loss(0.3 + _transient(t, n / 20, 0.5) + 0.05 * rng.standard_normal(n), beta)


def ema_drifting(n, rng, beta=0.98):
    """The same logger on a run whose raw loss still rises by 15 % of its level (0.9 batch-noise sigmas) over the window."""
    t = _t(n)
    rise = 0.045 * np.clip((t - n / 2) / (n / 2), 0, 1)
    return fastai_smooth_loss(0.3 + _transient(t, n / 20, 0.5) + rise + 0.05 * rng.standard_normal(n), beta)


def sparse_decaying_log(n, rng):
    """Lightning's CSVLogger logging every 50 steps (3 rows per epoch, with an ``epoch`` column): the
    loss drops from 0.05 within a few rows, then decays as 1/t to 1e-5, its window mean still halving;
    each logged batch loss carries multiplicative noise, 30 % once the loss is small. The sharp first
    drop and the noise shrinking with the loss make it read as running means (of ~7 steps)."""
    t = _t(n)
    onset = n / 100
    late = 1e-5 * (n - 1 + onset) / (t + onset)
    loss = 0.05 * 0.3 ** t * np.exp(0.02 * rng.standard_normal(n)) + late * np.exp(0.3 * rng.standard_normal(n))
    return SyntheticRun(loss, steps=49.0 + 50.0 * t, extras={"epoch": t // 3})


def converged_noiseless(n, rng):
    """Full-batch (L-BFGS-like) training: falls from 2.0 to 0.5 in the first fifth, then sits at 0.5
    with relative jitter 1e-9."""
    t = _t(n)
    return 0.5 + 1.5 * np.exp(-t / (n / 40)) + 0.5e-9 * rng.standard_normal(n)


def step_decay_without_lr(n, rng):
    """lr x0.1 at 75 % of the run, not logged: the loss drops by 2 sigma (settling in 1 % of the run)
    and is flat after it."""
    t = _t(n)
    after = t >= 0.75 * n
    drop = np.where(after, 0.04 * (1 - np.exp(-(t - 0.75 * n) / (0.01 * n))), 0.0)
    return 0.5 + _transient(t, n / 20, 0.5) - drop + 0.02 * rng.standard_normal(n)


def geometric_blowup(n, rng):
    """A DQN-like loss growing x20 over the window (2e3 -> 4e4) without ever going non-finite."""
    t = _t(n)
    growth = np.exp(np.log(20.0) * np.clip((t - n / 2) / (n / 2), 0, 1))
    return 2e3 * growth * np.exp(0.2 * rng.standard_normal(n))


def late_linear_rise(n, rng, noise=0.01):
    """4,000 steps at 0.30 then a linear rise of +0.15 over the last 4 % (160 steps at n = 4,000)."""
    t = _t(n)
    start = 0.96 * n
    return 0.30 + 0.15 * np.clip((t - start) / (n - start), 0, 1) + noise * rng.standard_normal(n)


PERSISTENCE_SHAPES: dict[str, Process] = {p.name: p for p in [
    Process("epoch_swings_late_drop", epoch_swings_late_drop, frozenset({"nonstationary", "not_converged"}), N,
            "per-epoch level swings of +-1.5, then a drop of 80 % in the last sixth: too recent to call settled"),
    Process("gan_climb_320", gan_climb, frozenset({"nonstationary"}), N,
            "a smooth per-epoch loss climbing -0.30 -> -0.07 over a 160-epoch window"),
    Process("gan_swing_320", gan_swing, frozenset({"nonstationary", "not_converged"}), N,
            "a smooth per-epoch loss swinging -0.02 -> -0.47 -> -0.18 in the window"),
    Process("contrastive_wander_4pct", contrastive_wander, frozenset({"nonstationary", "not_converged"}), N,
            "a per-step loss wandering by 4 % of its level (7.5 -> 7.2 -> 7.32 -> 7.15) under noise 0.1"),
    Process("late_spike_recovering_250", late_spike_recovering, frozenset({"nonstationary"}), N,
            "a 3x spike at 80 % of a 250-epoch run, still 27 % above its level at the end"),
    Process("slow_fall_3.6pct_51000", slow_fall_heavy_noise, frozenset({"not_converged"}), N,
            "51,000 steps whose mean still falls by 3.6 % of its level over the window under heavy noise"),
    Process("wander_0.5pct_of_level", lambda n, r: level_wander(n, r, 0.005), _OK_OR_UNSURE, S,
            "a persistent wander of +-0.5 % of the level (1 % peak to peak): below the 2 % practical threshold"),
    Process("wander_5pct_of_level", lambda n, r: level_wander(n, r, 0.05), frozenset({"nonstationary", "not_converged"}), N,
            "a persistent wander of +-5 % of the level: above the 2 % practical threshold"),
    Process("ema_0.98_converged", ema_converged, _OK_OR_UNSURE, S,
            "a settled run logged as fastai's smooth_loss (EMA, beta 0.98)"),
    Process("ema_0.995_converged", lambda n, r: ema_converged(n, r, 0.995), _OK_OR_UNSURE, S,
            "a settled run logged as an EMA with beta 0.995"),
    Process("ema_0.98_rising_15pct", ema_drifting, frozenset({"nonstationary"}), N,
            "fastai's smooth_loss of a run whose raw loss still rises by 15 % of its level over the window"),
    Process("lightning_every_50_decaying", sparse_decaying_log, frozenset({"not_converged", "nonstationary"}), N,
            "logged every 50 steps (3 rows an epoch), still decaying: not running means"),
    Process("converged_noiseless_1e-9", converged_noiseless, _STATIONARY, S,
            "fell from 2.0 to 0.5, then flat with relative jitter 1e-9: converged, not dead"),
    Process("step_decay_no_lr_75pct", step_decay_without_lr, _OK_OR_UNSURE, S,
            "an unlogged lr decay at 75 %: a 2 sigma drop, then flat for half the window"),
    Process("geometric_growth_x20", geometric_blowup, frozenset({"diverged"}), N,
            "a loss growing geometrically x20 over the window: a rapid increase, divergence"),
    Process("late_linear_rise_0.01", late_linear_rise, frozenset({"nonstationary"}), N,
            "a linear rise of 15 sigma over the last 4 %: non-stationary, not explosive growth"),
    Process("window_0.99_settled", lambda n, r: 0.3 + _transient(_t(n), n / 20, 0.5) + 0.02 * r.standard_normal(n),
            _OK_OR_UNSURE, S, "a settled run judged with --window 0.99: the window reaches into the warm-up",
            {"window": 0.99}),
    Process("window_past_start_settled", lambda n, r: 0.3 + _transient(_t(n), n / 20, 0.5) + 0.02 * r.standard_normal(n),
            _OK_OR_UNSURE, S, "a settled run judged with --window 100000, more steps than it has", {"window": 100000}),
    Process("late_linear_rise_0.03", lambda n, r: late_linear_rise(n, r, 0.03), frozenset({"nonstationary"}), N,
            "the same rise under noise 0.03"),
]}

CELLS: dict[str, Process] = {**PROCESSES, **TRAINING_SHAPES, **PERSISTENCE_SHAPES}
