"""Per-step measurements, kept on the training device and written in batches.

``record`` only keeps references to what the step computed anyway (detached loss, distances,
per-item terms), each embedding's norm and each parameter's gradient norm;
the statistics are computed in ``drain``, for all pending steps at once, and read back to the
host in one transfer (under torchrun, summed across ranks in one collective). Statistics are
kept as sums and counts so that a distributed run logs exactly what one process would for the
same global batch. Nothing here synchronises the device inside a step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .distributed import Placement
from .losses import LossOutput

# Per-step sums, in this order, in the block that drain() reads back.
SUMS = ("loss", "grad_norm", "pos_sum", "pos_n", "neg_sum", "neg_n", "easy_n", "active_n", "norm_sum", "finite_rows")


@dataclass
class PendingStep:
    step: int
    epoch: int
    lr: float
    margin: float | None
    grad_norms: tuple[torch.Tensor, ...]  # per-parameter norms (or the global one when clipping)
    out: LossOutput             # detached; per-item vectors of length B
    row_norms: torch.Tensor     # each embedding's L2 norm before normalisation
    neg_reduced: tuple[torch.Tensor, torch.Tensor] | None  # (sum, count) when negatives form a B x B matrix


def masked_sums(values: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise sum of the masked values and of the mask, for a (steps, items) block."""
    if mask is None:
        return values.sum(1), torch.full_like(values[:, 0], values.shape[1])
    return (values * mask).sum(1), mask.sum(1)


class StepRecorder:
    """Holds the steps not yet written; ``drain`` turns them into CSV rows."""

    def __init__(self, placement: Placement, capacity: int = 4096):
        self.placement, self.capacity = placement, capacity
        self.steps: list[PendingStep] = []

    @property
    def pending(self) -> int:
        return len(self.steps)

    def record(self, step: int, epoch: int, lr: float, margin: float | None, out: LossOutput,
               embedding_norms: torch.Tensor, grad_norms: tuple[torch.Tensor, ...]) -> None:
        with torch.no_grad():
            kept = LossOutput(out.loss.detach(), out.terms.detach(), out.pos_dist.detach(), out.pos_mask,
                              out.neg_dist.detach(), out.neg_mask, out.easy, out.has_active)
            neg_reduced = None
            if kept.neg_dist.numel() > kept.terms.numel():  # an all-pairs matrix: keep two numbers, not B^2
                neg_sum, neg_n = masked_sums(kept.neg_dist[None], None if kept.neg_mask is None else kept.neg_mask[None])
                neg_reduced = (neg_sum[0], neg_n[0])
        self.steps.append(PendingStep(step, epoch, lr, margin, grad_norms, kept, embedding_norms.detach(), neg_reduced))

    def sums(self) -> torch.Tensor:
        """(steps, len(SUMS)) block of per-step sums and counts, on the device."""
        outs = [p.out for p in self.steps]
        first = self.steps[0]
        stack = lambda values: torch.stack(values).to(torch.float32)  # noqa: E731
        nan = torch.full((len(outs),), math.nan, device=self.placement.device)
        pos_sum, pos_n = masked_sums(stack([o.pos_dist for o in outs]),
                                     None if first.out.pos_mask is None else stack([o.pos_mask for o in outs]))
        if first.neg_reduced is None:
            neg_sum, neg_n = masked_sums(stack([o.neg_dist for o in outs]),
                                         None if first.out.neg_mask is None else stack([o.neg_mask for o in outs]))
        else:
            neg_sum, neg_n = stack([p.neg_reduced[0] for p in self.steps]), stack([p.neg_reduced[1] for p in self.steps])
        norms = stack([p.row_norms for p in self.steps])
        finite = torch.isfinite(norms)
        per_parameter = stack([n for p in self.steps for n in p.grad_norms]).reshape(len(outs), -1)
        columns = [stack([o.loss for o in outs]), torch.linalg.vector_norm(per_parameter, dim=1),
                   pos_sum, pos_n, neg_sum, neg_n,
                   stack([o.easy for o in outs]).sum(1) if first.out.easy is not None else nan,
                   (stack([o.terms for o in outs]) > 0).sum(1).to(torch.float32) if first.out.has_active else nan,
                   torch.where(finite, norms, 0.0).sum(1), finite.sum(1).to(torch.float32)]
        return torch.stack(columns, dim=1)

    def drain(self) -> list[dict]:
        """All pending steps as dicts of COLUMNS (one device->host transfer)."""
        if not self.steps:
            return []
        values = self.placement.all_reduce_sum(self.sums()).cpu().double().numpy()
        world = self.placement.world
        col = {name: values[:, i] for i, name in enumerate(SUMS)}
        rows = []
        for i, p in enumerate(self.steps):
            items = p.out.terms.numel() * world
            embeddings = p.row_norms.numel() * world
            loss = col["loss"][i] / world
            finite_rows = col["finite_rows"][i]
            rows.append({
                "step": p.step, "epoch": p.epoch, "loss": loss, "grad_norm": col["grad_norm"][i] / world,
                "lr": p.lr, "margin": p.margin,
                "pos_dist": ratio(col["pos_sum"][i], col["pos_n"][i]),
                "neg_dist": ratio(col["neg_sum"][i], col["neg_n"][i]),
                "easy_fraction": None if math.isnan(col["easy_n"][i]) else col["easy_n"][i] / items,
                "active_fraction": None if math.isnan(col["active_n"][i]) else col["active_n"][i] / items,
                "embedding_norm": col["norm_sum"][i] / finite_rows if finite_rows else math.nan,
                "nonfinite": int(embeddings - finite_rows) + (0 if math.isfinite(loss) else 1),
                "easy_count": col["easy_n"][i], "items": items,
            })
        self.steps.clear()
        return rows


def ratio(total: float, count: float) -> float | None:
    """Mean of a masked statistic; None when no item of that kind was in the batch."""
    return None if count == 0 else total / count
