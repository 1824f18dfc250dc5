"""Synthetic loss series whose true verdict is known by construction (research notes §7).

Used by the statistical benchmark, the tests and the sample-run generator. Each process takes
n and a numpy Generator and returns a float array of length n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import lfilter


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
    """A generator and the verdicts that count as right for it."""

    name: str
    make: Callable[[int, np.random.Generator], np.ndarray]
    truth: frozenset[str]
    group: str   # "stationary" (scores false alarms), "hard", "nonstationary" (scores detection)


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
