"""siamdiag train's per-step recorder (siamdiag/train/recorder.py). Oracles: every logged statistic
recomputed step by step in float64 from the tensors the step produced (gradients snapshotted
before clipping), rows whose values are known by construction, and the same steps drained in
different groupings, which must give the same rows bit for bit."""
import csv
import gc
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import siamdiag.train.loop as loop  # noqa: E402
from siamdiag.train.config import TrainConfig  # noqa: E402
from siamdiag.train.distributed import Placement  # noqa: E402
from siamdiag.train.gradients import GradientBuffer  # noqa: E402
from siamdiag.train.losses import LossOutput  # noqa: E402
from siamdiag.train.recorder import FOLD, ROW_KEYS, StepRecorder  # noqa: E402

CPU = Placement(torch.device("cpu"))
FAST = dict(data="synthetic", synthetic_samples=400, synthetic_dim=8, hidden=32, embedding_dim=8,
            batch_size=32, steps=40, checkpoint_every=1000, device="cpu")


def numpy64(tensor):
    return None if tensor is None else tensor.detach().double().numpy().copy()


def expected_row(out: dict, grads: list, norms) -> dict:
    """The row's statistics computed directly, in float64, from one step's tensors."""
    def mean(values, mask):
        if mask is None:
            return values.mean()
        return None if mask.sum() == 0 else (values * mask).sum() / mask.sum()

    finite = norms[np.isfinite(norms)]
    # the global norm in float32: it overflows once the norm passes sqrt(float32 max), ~1.8e19, as the
    # gradient buffer's norm and clip_grad_norm_ both do (a diverging run logs inf there)
    per_parameter = np.array([math.sqrt(float((g ** 2).sum())) for g in grads], dtype=np.float32)
    with np.errstate(over="ignore"):
        grad_norm = float(np.sqrt((per_parameter ** 2).sum(dtype=np.float32)))
    return {"loss": out["loss"], "grad_norm": grad_norm,
            "pos_dist": mean(out["pos_dist"], out["pos_mask"]), "neg_dist": mean(out["neg_dist"], out["neg_mask"]),
            "easy_fraction": None if out["easy"] is None else out["easy"].mean(),
            "active_fraction": (out["terms"] > 0).mean() if out["has_active"] else None,
            "embedding_norm": finite.mean() if len(finite) else math.nan,
            "nonfinite": int((~np.isfinite(norms)).sum()) + (0 if math.isfinite(out["loss"]) else 1)}


def train_and_recompute(tmp_path, monkeypatch, **changes):
    """Train a run, snapshotting each step's tensors and gradients (before any clipping); returns the
    metrics.csv rows and the rows expected from the snapshots."""
    trainer = loop.Trainer(TrainConfig(**{**FAST, **changes}).validate(), str(tmp_path), CPU)
    grads, steps = [], []

    def snapshot(parameters):
        grads.append([numpy64(p.grad) for p in parameters if p.grad is not None])

    def snapshot_norm(buffer, _norm=GradientBuffer.norm):
        snapshot(buffer.params)
        return _norm(buffer)

    def snapshot_clip(parameters, *args, _clip=torch.nn.utils.clip_grad_norm_, **kwargs):
        parameters = list(parameters)
        snapshot(parameters)
        return _clip(parameters, *args, **kwargs)

    monkeypatch.setattr(GradientBuffer, "norm", snapshot_norm)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", snapshot_clip)
    record = trainer.recorder.record

    def snapshot_step(step, epoch, lr, margin, out, norms, grad_norms):
        kept = {name: numpy64(getattr(out, name)) for name in
                ("terms", "pos_dist", "pos_mask", "neg_dist", "neg_mask", "easy")}
        steps.append(({**kept, "loss": out.loss.detach().item(), "has_active": out.has_active}, numpy64(norms)))
        record(step, epoch, lr, margin, out, norms, grad_norms)

    trainer.recorder.record = snapshot_step
    trainer.run()
    with open(os.path.join(tmp_path, "metrics.csv"), newline="") as fh:
        logged = list(csv.DictReader(fh))
    return logged, [expected_row(out, g, norms) for (out, norms), g in zip(steps, grads)]


def assert_cell(cell: str, expected, column):
    if expected is None:
        assert cell == "", column
    elif isinstance(expected, int):
        assert int(cell) == expected, column
    elif math.isnan(expected):
        assert cell == "nan", column
    elif math.isinf(expected):
        assert float(cell) == expected, column
    else:
        assert float(cell) == pytest.approx(float(expected), rel=2e-5, abs=1e-7), column


@pytest.mark.parametrize("changes", [
    dict(loss="contrastive"), dict(loss="triplet"), dict(loss="cosine"), dict(loss="infonce"),
    dict(loss="contrastive", normalize=False, clip_grad=0.5),
    dict(loss="infonce", normalize=False, clip_grad=0.5),
    dict(loss="triplet", normalize=False, batch_norm=True, optimizer="adam"),
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_every_logged_statistic_matches_a_direct_recomputation(tmp_path, monkeypatch, changes):
    logged, expected = train_and_recompute(tmp_path, monkeypatch, **changes)
    assert len(logged) == len(expected) == FAST["steps"]
    for row, want in zip(logged, expected):
        for column, value in want.items():
            assert_cell(row[column], value, (row["step"], column))


def test_a_diverging_run_logs_its_nonfinite_embeddings_and_stops(tmp_path, monkeypatch):
    logged, expected = train_and_recompute(tmp_path, monkeypatch, loss="contrastive", normalize=False, lr=1e6,
                                           steps=200)
    assert 1 < len(logged) < 200 and int(logged[-1]["nonfinite"]) > 1
    for row, want in zip(logged, expected):
        for column, value in want.items():
            assert_cell(row[column], value, (row["step"], column))


def synthetic_step(rng, batch, *, pos_mask=None, easy=False, all_pairs=False, loss=None, norms=None):
    """A LossOutput whose statistics are known: distances drawn at random, masks as given."""
    terms = torch.tensor(rng.normal(size=batch), dtype=torch.float32)
    dist = torch.tensor(rng.uniform(0.1, 2.0, size=batch), dtype=torch.float32)
    neg = torch.tensor(rng.uniform(0.1, 2.0, size=batch * batch if all_pairs else batch), dtype=torch.float32)
    neg_mask = torch.tensor(rng.integers(0, 2, size=len(neg)), dtype=torch.float32) if all_pairs else None
    out = LossOutput(torch.tensor(terms.mean().item() if loss is None else loss), terms, dist,
                     None if pos_mask is None else torch.tensor(pos_mask, dtype=torch.float32), neg, neg_mask,
                     easy=torch.tensor(rng.integers(0, 2, size=batch), dtype=torch.float32) if easy else None,
                     has_active=not all_pairs)
    if norms is None:
        norms = rng.uniform(0.5, 1.5, size=2 * batch)
    grad_norm = torch.tensor(rng.uniform(0, 2), dtype=torch.float32)
    return out, torch.tensor(norms, dtype=torch.float32), grad_norm


def tensors(kept):
    """The tensors of one recorded step (an all-pairs reduction is a (sum, count) pair)."""
    for item in kept:
        if isinstance(item, torch.Tensor):
            yield item
        elif isinstance(item, tuple):
            yield from tensors(item)


def test_rows_hold_the_statistics_known_by_construction():
    rng = np.random.default_rng(3)
    recorder = StepRecorder(CPU)
    steps = [synthetic_step(rng, 4, pos_mask=[0, 0, 0, 0], easy=True),         # no positive pair: empty
             synthetic_step(rng, 4, pos_mask=[1, 0, 1, 0], easy=True),
             synthetic_step(rng, 4, pos_mask=[1, 1, 1, 1], easy=True, loss=math.inf,
                            norms=[1.0, math.nan, 2.0, math.inf, 3.0, 4.0, 5.0, 6.0])]
    for i, (out, norms, grad_norm) in enumerate(steps):
        recorder.record(i + 1, 0, 0.1, 0.5 if i else None, out, norms, grad_norm)
    assert recorder.pending == 3
    rows = recorder.drain()
    assert recorder.pending == 0 and recorder.drain() == []
    assert [list(r) for r in rows] == [list(ROW_KEYS)] * 3
    first, second, third = rows
    assert first["pos_dist"] is None and first["margin"] is None and second["margin"] == 0.5
    assert second["pos_dist"] == pytest.approx(float(steps[1][0].pos_dist[[0, 2]].mean()), rel=1e-6)
    assert second["easy_fraction"] == pytest.approx(float(steps[1][0].easy.mean()))
    assert second["easy_count"] == float(steps[1][0].easy.sum()) and second["items"] == 4
    assert first["grad_norm"] == float(steps[0][2])
    assert third["loss"] == math.inf and third["nonfinite"] == 2 + 1           # nan and inf norms, the loss
    assert third["embedding_norm"] == pytest.approx((1 + 2 + 3 + 4 + 5 + 6) / 6)
    assert [type(r[k]) for r in rows for k in ("step", "nonfinite", "items")] == [int] * 9


def test_an_all_pairs_matrix_is_reduced_to_its_sum_and_count_when_recorded():
    rng = np.random.default_rng(5)
    recorder = StepRecorder(CPU)
    out, norms, grad_norm = synthetic_step(rng, 6, all_pairs=True)
    recorder.record(1, 0, 0.1, None, out, norms, grad_norm)
    assert max(t.numel() for t in tensors(recorder.kept[0])) == 2 * 6  # the embedding norms; no 6 x 6 matrix
    (row,) = recorder.drain()
    mask = out.neg_mask.double()
    assert row["neg_dist"] == pytest.approx(float((out.neg_dist.double() * mask).sum() / mask.sum()), rel=1e-6)
    assert row["active_fraction"] is None and row["easy_fraction"] is None


def test_rows_do_not_depend_on_how_the_steps_are_grouped_into_drains(tmp_path):
    """Trainer.run drains every ~2 s, so how many steps a drain holds depends on the machine's
    speed: the rows must not. Two trainers of one seed train the same steps; one drains after every
    step, the other once, after more steps than one fold holds."""
    cfg = TrainConfig(**{**FAST, "loss": "triplet", "normalize": False}).validate()
    one_by_one, together = (loop.Trainer(cfg, str(tmp_path / name), CPU) for name in ("a", "b"))
    steps = 2 * FOLD + 5
    singles = []
    for step in range(1, steps + 1):
        for trainer in (one_by_one, together):
            trainer.train_step(step)
        singles += one_by_one.recorder.drain()
    grouped = together.recorder.drain()

    def same(a, b):
        return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))

    assert len(singles) == len(grouped) == steps
    assert all(same(a[k], b[k]) for a, b in zip(singles, grouped) for k in ROW_KEYS)


def test_pending_steps_leave_no_objects_for_the_garbage_collector(tmp_path):
    """Objects held from step to step get promoted and make CPython walk every object of the process;
    the recorder holds a fold's worth of steps at most, then one block of sums per fold."""
    trainer = loop.Trainer(TrainConfig(**{**FAST, "steps": 10 * FOLD}).validate(), str(tmp_path), CPU)

    def tracked_after(steps):
        for step in range(trainer.recorder.pending + 1, steps + 1):
            trainer.train_step(step)
        gc.collect()
        return len(gc.get_objects())

    before = tracked_after(FOLD)
    after = tracked_after(7 * FOLD)           # six more folds, no drain
    assert trainer.recorder.pending == 7 * FOLD and not trainer.recorder.kept
    assert after - before <= 6 + 10            # six blocks of sums; a step's tensors would be ~8 each


def test_recorded_steps_hold_no_autograd_graph(tmp_path):
    trainer = loop.Trainer(TrainConfig(**{**FAST, "loss": "infonce"}).validate(), str(tmp_path), CPU)
    for step in range(1, 4):
        trainer.train_step(step)
    kept = [t for step in trainer.recorder.kept for t in tensors(step)]
    assert kept and not any(t.requires_grad or t.grad_fn is not None for t in kept)


@pytest.mark.parametrize("changes", [dict(checkpoint_every=40, steps=130),
                                     dict(loss="triplet", margin_schedule="adaptive", checkpoint_every=1000, steps=90)])
def test_the_run_writes_at_the_steps_a_per_step_check_would_choose(tmp_path, changes):
    """Trainer.next_flush works out once per write what the run loop used to ask after every step."""
    trainer = loop.Trainer(TrainConfig(**{**FAST, **changes}).validate(), str(tmp_path), CPU)
    trainer.recorder.capacity = 25
    cfg, epoch = trainer.cfg, trainer.steps_per_epoch
    assert epoch < trainer.total_steps   # epoch ends fall inside the run

    def due_after(step, last_write, flush_every):
        pending = step - last_write
        return (pending >= min(flush_every, trainer.recorder.capacity) or step == trainer.total_steps
                or step % cfg.checkpoint_every == 0 or (cfg.margin_schedule == "adaptive" and step % epoch == 0))

    for flush_every in (1, 7, 50):
        for last_write in range(trainer.total_steps):
            first_due = next(s for s in range(last_write + 1, trainer.total_steps + 1)
                             if due_after(s, last_write, flush_every))
            assert trainer.next_flush(last_write, flush_every) == first_due, (flush_every, last_write)
