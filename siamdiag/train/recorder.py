"""Per-step measurements, kept on the training device and written in batches.

``record`` keeps references to what the step computed anyway (detached distances, per-item terms,
each embedding's norm) and one small tensor of its two scalars (the loss and the global gradient
norm). Every FOLD steps those are reduced, on the device, to one block of per-step sums and counts
and let go: a step's half-dozen tensor objects, held until the rows are written (about 2 s),
outlived the garbage collector's young generations, and their promotion made it walk every object
of the process (hundreds of thousands once torch is imported) every few thousand steps. ``drain``
reads all the blocks back to the host in one transfer (under torchrun, summed across ranks in one
collective). Sums and counts make a distributed run log exactly what one process would for the
same global batch, and make a row the same whichever steps it was reduced with. Nothing here
synchronises the device inside a step.
"""
from __future__ import annotations

import numpy as np
import torch

from .distributed import Placement
from .losses import LossOutput
from .metrics_file import COLUMNS

# Per-step sums, in this order, in the block that drain() reads back.
SUMS = ("loss", "grad_norm", "pos_sum", "pos_n", "neg_sum", "neg_n", "easy_n", "active_n", "norm_sum", "finite_rows")
# The keys of each drained row: metrics.csv's columns, then what the adaptive margin counts.
ROW_KEYS = COLUMNS + ("easy_count", "items")
# Steps whose tensors are reduced to their sums together: few enough that their objects die young,
# enough that the reduction's dozen device operations are shared by many steps.
FOLD = 32


def masked_sums(values: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise sum of the masked values and of the mask, for a (steps, items) block."""
    if mask is None:
        return values.sum(1), torch.full_like(values[:, 0], values.shape[1])
    return (values * mask).sum(1), mask.sum(1)


def step_sums(kept: list[tuple]) -> torch.Tensor:
    """(steps, len(SUMS)) block of per-step sums and counts of recorded steps, on the device."""
    scalars, terms, pos_dist, pos_mask, neg_dist, neg_mask, easy, norms, has_active = zip(*kept)
    stack = lambda values: torch.stack(values).to(torch.float32)  # noqa: E731
    scalars = stack(scalars)   # (steps, 2): the loss and the global gradient norm
    nan = torch.full((len(scalars),), torch.nan, device=scalars.device)
    pos_sum, pos_n = masked_sums(stack(pos_dist), None if pos_mask[0] is None else stack(pos_mask))
    if isinstance(neg_dist[0], tuple):  # reduced by record(): (sum, count), each of shape (1,)
        neg_sum, neg_n = (torch.cat(part).to(torch.float32) for part in zip(*neg_dist))
    else:
        neg_sum, neg_n = masked_sums(stack(neg_dist), None if neg_mask[0] is None else stack(neg_mask))
    norms = stack(norms)
    finite = torch.isfinite(norms)
    columns = [scalars[:, 0], scalars[:, 1],
               pos_sum, pos_n, neg_sum, neg_n,
               stack(easy).sum(1) if easy[0] is not None else nan,
               (stack(terms) > 0).sum(1).to(torch.float32) if has_active[0] else nan,
               torch.where(finite, norms, 0.0).sum(1), finite.sum(1).to(torch.float32)]
    return torch.stack(columns, dim=1)


class StepRecorder:
    """Holds the steps not yet written; ``drain`` turns them into CSV rows."""

    def __init__(self, placement: Placement, capacity: int = 4096):
        self.placement, self.capacity = placement, capacity
        self.steps: list[int] = []     # host values of each pending step
        self.epochs: list[int] = []
        self.lrs: list[float] = []
        self.margins: list[float | None] = []
        self.kept: list[tuple] = []    # device tensors of the last steps, not yet folded, as step_sums reads them
        self.folded: list[torch.Tensor] = []   # step_sums blocks of the earlier pending steps
        self.items = self.embeddings = 0       # per-item terms and embeddings in this process's batch

    @property
    def pending(self) -> int:
        return len(self.steps)

    def record(self, step: int, epoch: int, lr: float, margin: float | None, out: LossOutput,
               embedding_norms: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Keep the step's tensors (detached: no graph is held) until the next fold. The loss and the
        gradient norm are stacked now, so that one object is held instead of two. Contrastive and
        cosine losses pass one distance tensor as both positive and negative: detached once."""
        pos_dist = out.pos_dist.detach()
        neg_dist = pos_dist if out.neg_dist is out.pos_dist else out.neg_dist.detach()
        neg_mask = out.neg_mask
        if neg_dist.numel() > out.terms.numel():  # an all-pairs matrix: keep two numbers, not B^2
            neg_dist = masked_sums(neg_dist[None], None if neg_mask is None else neg_mask[None])
            neg_mask = None
        self.kept.append((torch.stack((out.loss.detach(), grad_norm)), out.terms.detach(), pos_dist,
                          out.pos_mask, neg_dist, neg_mask, out.easy, embedding_norms.detach(), out.has_active))
        self.steps.append(step)
        self.epochs.append(epoch)
        self.lrs.append(lr)
        self.margins.append(margin)
        if len(self.kept) == FOLD:
            self.fold()

    def fold(self) -> None:
        """Reduce the kept steps to their block of sums and let their tensors go."""
        self.items, self.embeddings = self.kept[0][1].numel(), self.kept[0][7].numel()
        self.folded.append(step_sums(self.kept))
        self.kept.clear()

    def drain(self) -> list[dict]:
        """All pending steps as dicts of ROW_KEYS (one device->host transfer)."""
        if not self.steps:
            return []
        if self.kept:
            self.fold()
        sums = self.folded[0] if len(self.folded) == 1 else torch.cat(self.folded)
        values = self.placement.all_reduce_sum(sums).cpu().double().numpy()
        self.folded.clear()
        world = self.placement.world
        items, embeddings = self.items * world, self.embeddings * world
        loss, grad_norm, pos_sum, pos_n, neg_sum, neg_n, easy_n, active_n, norm_sum, finite_rows = values.T
        loss, grad_norm = loss / world, grad_norm / world
        with np.errstate(divide="ignore", invalid="ignore"):
            pos_dist, neg_dist = pos_sum / pos_n, neg_sum / neg_n
            embedding_norm = np.where(finite_rows != 0, norm_sum / finite_rows, np.nan)
        easy_fraction, active_fraction = easy_n / items, active_n / items
        nonfinite = (embeddings - finite_rows).astype(np.int64) + ~np.isfinite(loss)
        columns = (self.steps, self.epochs, loss.tolist(), grad_norm.tolist(), self.lrs, self.margins,
                   present(pos_dist, pos_n != 0), present(neg_dist, neg_n != 0),
                   present(easy_fraction, ~np.isnan(easy_n)), present(active_fraction, ~np.isnan(active_n)),
                   embedding_norm.tolist(), nonfinite.tolist(), easy_n.tolist(), [items] * len(self.steps))
        rows = [dict(zip(ROW_KEYS, cells)) for cells in zip(*columns)]
        for host in (self.steps, self.epochs, self.lrs, self.margins):
            host.clear()
        return rows


def present(values: np.ndarray, known: np.ndarray) -> list[float | None]:
    """``values`` as floats, None where ``known`` is False: a statistic of no item in the batch
    (no pair of that kind, or a loss without that notion)."""
    return [v if k else None for v, k in zip(values.tolist(), known.tolist())]
