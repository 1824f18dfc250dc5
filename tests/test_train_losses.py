"""Each Siamese loss against a slow, obvious loop over pairs / triplets (the
pytorch-metric-learning way of testing losses)."""
import math

import pytest

torch = pytest.importorskip("torch")

from siamdiag.train.losses import LOSSES  # noqa: E402


def dist(u, v):
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v)))


def cos(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


@pytest.fixture
def embeddings():
    g = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(24, 5, generator=g, dtype=torch.float64) for _ in range(3))
    similar = (torch.rand(24, generator=g) < 0.5).double()
    labels = torch.randint(0, 4, (24,), generator=g)
    return a, b, c, similar, labels


def test_contrastive_matches_loop(embeddings):
    a, b, _, s, _ = embeddings
    m = 2.5
    out = LOSSES["contrastive"](a, b, s, m, 0.1)
    expected = []
    for i in range(len(a)):
        d = dist(a[i].tolist(), b[i].tolist())
        expected.append(0.5 * d * d if s[i] == 1 else 0.5 * max(0.0, m - d) ** 2)
    assert out.loss.item() == pytest.approx(sum(expected) / len(expected), rel=1e-12)
    assert out.terms.tolist() == pytest.approx(expected, rel=1e-12)
    assert (out.pos_mask + out.neg_mask).tolist() == [1.0] * len(a)


def test_triplet_matches_loop_and_counts_easy(embeddings):
    a, p, n, _, _ = embeddings
    m = 0.5
    out = LOSSES["triplet"](a, p, n, m, 0.1)
    terms, easy = [], []
    for i in range(len(a)):
        d_ap, d_an = dist(a[i].tolist(), p[i].tolist()), dist(a[i].tolist(), n[i].tolist())
        terms.append(max(0.0, d_ap - d_an + m))
        easy.append(1.0 if d_an >= d_ap + m else 0.0)
    assert out.terms.tolist() == pytest.approx(terms, rel=1e-12)
    assert out.easy.tolist() == easy
    assert 0 < sum(easy) < len(easy)  # the fixture exercises both cases


def test_cosine_matches_loop_and_ignores_scale(embeddings):
    a, b, _, s, _ = embeddings
    m = 0.1
    out = LOSSES["cosine"](a, b, s, m, 0.1)
    expected = [(1 - cos(a[i].tolist(), b[i].tolist())) if s[i] == 1 else max(0.0, cos(a[i].tolist(), b[i].tolist()) - m)
                for i in range(len(a))]
    assert out.terms.tolist() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    scaled = LOSSES["cosine"](7.0 * a, 0.2 * b, s, m, 0.1)
    assert scaled.loss.item() == pytest.approx(out.loss.item(), rel=1e-12)


def test_infonce_matches_loop(embeddings):
    a, p, _, _, labels = embeddings
    t = 0.3
    out = LOSSES["infonce"](a, p, None, None, t, labels=labels)
    expected = []
    for i in range(len(a)):
        logits = [cos(a[i].tolist(), p[j].tolist()) / t for j in range(len(a))
                  if j == i or labels[j] != labels[i]]
        mine = cos(a[i].tolist(), p[i].tolist()) / t
        expected.append(-mine + math.log(sum(math.exp(v) for v in logits)))
    assert out.terms.tolist() == pytest.approx(expected, rel=1e-10)
    assert out.loss.item() == pytest.approx(sum(expected) / len(expected), rel=1e-10)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_differentiable_and_reports_distances(name, embeddings):
    """Registry contract: a scalar loss with gradients, and per-item distances for the log."""
    a, b, c, s, labels = embeddings
    a = a.clone().requires_grad_(True)
    third = c if name == "triplet" else s
    out = LOSSES[name](a, b, third, 0.2 if name != "infonce" else None, 0.2, labels=labels)
    out.loss.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    assert out.terms.shape[0] == len(a) and out.pos_dist.shape[0] == len(a)
    assert torch.isfinite(out.neg_dist).all()
