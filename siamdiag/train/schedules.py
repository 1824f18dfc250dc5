"""Learning-rate and margin schedules. The margin is a host-side float updated at epoch ends, so
it never costs a device synchronisation inside a step."""
from __future__ import annotations

import math

import torch

from .config import TrainConfig


def lr_factor(kind: str, step: int, total: int, warmup_fraction: float) -> float:
    """Multiplier on the base learning rate at ``step`` of ``total``."""
    if kind == "none":
        return 1.0
    if kind == "step":  # x0.1 at half and at three quarters of training
        return 0.1 ** ((step >= total // 2) + (step >= (3 * total) // 4))
    warmup = int(warmup_fraction * total) if kind == "warmup-cosine" else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int, total: int) -> float:
    """Set every group's learning rate for ``step``; a pure function of the step, so resuming needs
    no scheduler state."""
    lr = cfg.lr * lr_factor(cfg.lr_schedule, step, total, cfg.warmup_fraction)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


class MarginSchedule:
    """The triplet margin per epoch.

    fixed: constant. linear: from ``margin`` to ``margin_end`` (default 2 x margin) over training, the
    monotonically increasing baseline. adaptive: after each epoch, margin += gain * m0 * (easy - target),
    where ``easy`` is that epoch's fraction of triplets already satisfying the margin — raise the margin
    when training got easy, lower it when it got hard, so the difficulty stays near the target
    (after the margin scheduler of Tomchak et al.). The margin never goes below 0.
    """

    def __init__(self, cfg: TrainConfig, total_epochs: int):
        self.kind, self.start = cfg.margin_schedule, cfg.resolved_margin
        self.end = cfg.margin_end if cfg.margin_end is not None else (2 * self.start if self.start else 0.0)
        self.target, self.gain, self.total_epochs = cfg.easy_target, cfg.margin_gain, max(1, total_epochs)
        self.value = self.start

    def end_of_epoch(self, epoch: int, easy_fraction: float | None) -> float:
        """Margin for the epoch after ``epoch`` (0-based)."""
        if self.kind == "linear":
            self.value = self.start + (self.end - self.start) * min(1.0, (epoch + 1) / self.total_epochs)
        elif self.kind == "adaptive" and easy_fraction is not None and math.isfinite(easy_fraction):
            self.value = max(0.0, float(self.value + self.gain * self.start * (easy_fraction - self.target)))
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
