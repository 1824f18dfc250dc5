"""Per-step measurements, kept on the training device and written in batches.

What is measured (loss, gradient norm, pair statistics, embedding norm, non-finite count) is
computed in ``record`` as a handful of tensor reductions stacked into one row of a device buffer;
nothing is read back to the host until ``drain``, which moves the whole buffer in one transfer
(and, under torchrun, sums it across ranks in one collective). Statistics are kept as sums and
counts so that a distributed run logs exactly what one process would for the same global batch.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from ..errors import InputError
from .distributed import Placement
from .losses import LossOutput

COLUMNS = ("step", "epoch", "loss", "grad_norm", "lr", "margin", "pos_dist", "neg_dist", "easy_fraction",
           "active_fraction", "embedding_norm", "nonfinite")
# Device row layout; loss and grad_norm are per-rank values (summed, then divided by world size).
LOSS, GRAD, POS_SUM, POS_N, NEG_SUM, NEG_N, EASY_N, ACTIVE_N, EMB_SUM, NONFINITE = range(10)


def count_nonfinite(*tensors: torch.Tensor) -> torch.Tensor:
    return sum((~torch.isfinite(t)).sum() for t in tensors)


def masked_sum(values: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if mask is None:
        return values.sum(), torch.full((), values.numel(), dtype=values.dtype, device=values.device)
    return (values * mask).sum(), mask.sum()


class StepRecorder:
    """Buffers one row per step on the device; ``drain`` returns finished CSV rows."""

    def __init__(self, placement: Placement, capacity: int = 4096):
        self.placement, self.capacity = placement, capacity
        self.buffer = torch.zeros((capacity, 10), dtype=torch.float32, device=placement.device)
        self.host: list[tuple[int, int, float, float | None, int, int]] = []

    @property
    def pending(self) -> int:
        return len(self.host)

    def record(self, step: int, epoch: int, lr: float, margin: float | None, out: LossOutput,
               raw_embeddings: torch.Tensor, inputs: torch.Tensor, grad_norm: torch.Tensor) -> None:
        with torch.no_grad():
            pos_sum, pos_n = masked_sum(out.pos_dist.detach(), out.pos_mask)
            neg_sum, neg_n = masked_sum(out.neg_dist.detach(), out.neg_mask)
            nan = torch.full((), math.nan, device=pos_sum.device)
            terms = out.terms.detach()
            row = [out.loss.detach(), grad_norm, pos_sum, pos_n, neg_sum, neg_n,
                   out.easy.sum() if out.easy is not None else nan,
                   (terms > 0).sum() if out.has_active else nan,
                   torch.linalg.vector_norm(raw_embeddings.detach(), dim=1).sum(),
                   count_nonfinite(inputs, raw_embeddings.detach(), out.loss.detach())]
            torch.stack([v.to(torch.float32) for v in row], out=self.buffer[self.pending])
        self.host.append((step, epoch, lr, margin, terms.numel(), raw_embeddings.shape[0]))

    def drain(self) -> list[dict]:
        """All pending rows as dicts of COLUMNS (one device->host transfer)."""
        n = self.pending
        if n == 0:
            return []
        block = self.placement.all_reduce_sum(self.buffer[:n].clone())
        values = block.cpu().double().numpy()
        world = self.placement.world
        rows = []
        for (step, epoch, lr, margin, items, embeddings), v in zip(self.host, values):
            rows.append({
                "step": step, "epoch": epoch, "loss": v[LOSS] / world, "grad_norm": v[GRAD] / world, "lr": lr,
                "margin": margin,
                "pos_dist": ratio(v[POS_SUM], v[POS_N]), "neg_dist": ratio(v[NEG_SUM], v[NEG_N]),
                "easy_fraction": None if math.isnan(v[EASY_N]) else v[EASY_N] / (items * world),
                "active_fraction": None if math.isnan(v[ACTIVE_N]) else v[ACTIVE_N] / (items * world),
                "embedding_norm": v[EMB_SUM] / (embeddings * world), "nonfinite": int(v[NONFINITE]),
                "easy_count": v[EASY_N], "items": items * world,
            })
        self.host.clear()
        return rows


def ratio(total: float, count: float) -> float | None:
    """Mean of a masked statistic; None when no item of that kind was in the batch."""
    return None if count == 0 else total / count


def format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.8g}"


class MetricsFile:
    """metrics.csv: one row per step, appended, flushed and fsynced on every write so a crash or
    Ctrl-C keeps every step written so far."""

    def __init__(self, path: str):
        self.path = path
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        self.handle = open(path, "a", encoding="utf-8", newline="")
        if fresh:
            self.handle.write(",".join(COLUMNS) + "\n")
            self.sync()

    def append(self, rows: list[dict]) -> None:
        if rows:
            self.handle.write("".join(",".join(format_cell(r[c]) for c in COLUMNS) + "\n" for r in rows))
            self.sync()

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def keep_steps_through(path: str, last_step: int) -> int:
    """Before resuming: drop logged rows after the checkpoint's step (they will be logged again,
    identically), rewriting the file atomically. Returns the number of rows dropped."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    if not lines or lines[0].rstrip("\n").split(",") != list(COLUMNS):
        raise InputError(path, "not a siamdiag metrics.csv (unexpected header)", line=1)
    kept = [lines[0]]
    for line in lines[1:]:
        cell = line.split(",", 1)[0]
        if line.endswith("\n") and cell.isdigit() and int(cell) <= last_step:
            kept.append(line)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(kept)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(lines) - len(kept)
