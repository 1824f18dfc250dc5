"""Siamese losses over embeddings. Each returns the scalar to minimise plus the per-item terms and
distances it computed anyway, so instrumentation can summarise them without recomputing.

Distances: Euclidean for contrastive and triplet, cosine distance (1 - cos) for cosine and InfoNCE.
Masks are float 0/1 tensors (never boolean indexing), so nothing here synchronises a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    loss: torch.Tensor                 # scalar: mean of ``terms``
    terms: torch.Tensor                # per pair / triplet / anchor
    pos_dist: torch.Tensor             # distance of each positive pair
    pos_mask: torch.Tensor | None      # which entries of pos_dist count (None: all)
    neg_dist: torch.Tensor
    neg_mask: torch.Tensor | None
    easy: torch.Tensor | None = None   # triplets already satisfying the margin (float 0/1)
    has_active: bool = True            # whether "non-zero loss" is a meaningful activity measure


def contrastive(a, b, similar, margin: float, temperature: float, labels=None) -> LossOutput:
    """Hadsell et al. 2006: s * d^2 + (1 - s) * max(0, m - d)^2, halved."""
    d = torch.linalg.vector_norm(a - b, dim=1)
    terms = 0.5 * (similar * d.pow(2) + (1 - similar) * F.relu(margin - d).pow(2))
    return LossOutput(terms.mean(), terms, d, similar, d, 1 - similar)


def triplet(a, p, n, margin: float, temperature: float, labels=None) -> LossOutput:
    """max(0, d(a, p) - d(a, n) + m); easy when d(a, n) >= d(a, p) + m."""
    d_ap = torch.linalg.vector_norm(a - p, dim=1)
    d_an = torch.linalg.vector_norm(a - n, dim=1)
    terms = F.relu(d_ap - d_an + margin)
    easy = (d_an - d_ap >= margin).to(d_ap.dtype)
    return LossOutput(terms.mean(), terms, d_ap, None, d_an, None, easy=easy)


def cosine(a, b, similar, margin: float, temperature: float, labels=None) -> LossOutput:
    """Cosine embedding loss: similar pairs 1 - cos, dissimilar max(0, cos - m). Scale-invariant in
    each embedding, which is why it lets embedding norms grow (Draganov et al.)."""
    cos = F.cosine_similarity(a, b, dim=1)
    terms = similar * (1 - cos) + (1 - similar) * F.relu(cos - margin)
    return LossOutput(terms.mean(), terms, 1 - cos, similar, 1 - cos, 1 - similar)


def infonce(a, p, _unused, margin: float, temperature: float, labels=None) -> LossOutput:
    """InfoNCE over cosine similarities / temperature: each anchor must pick its own positive among
    the batch's positives. Other examples of the anchor's class are not counted as negatives."""
    a_n, p_n = F.normalize(a, dim=1), F.normalize(p, dim=1)
    cos = a_n @ p_n.T
    same_class = (labels[:, None] == labels[None, :]).to(cos.dtype)
    eye = torch.eye(len(a), dtype=cos.dtype, device=cos.device)
    logits = (cos / temperature).masked_fill((same_class - eye) > 0, float("-inf"))
    terms = F.cross_entropy(logits, torch.arange(len(a), device=a.device), reduction="none")
    neg = 1 - same_class
    return LossOutput(terms.mean(), terms, 1 - cos.diagonal(), None, (1 - cos).flatten(), neg.flatten(),
                      has_active=False)


LOSSES: dict[str, Callable[..., LossOutput]] = {
    "contrastive": contrastive,
    "triplet": triplet,
    "cosine": cosine,
    "infonce": infonce,
}
