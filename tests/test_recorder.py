"""siamdiag.Recorder and the Lightning callback. Oracles: each logged statistic recomputed
directly from the same step's tensors (numpy), the analysis of a loss whose verdict is known by
construction, a count of host reads during log(), and a loop on the meta device, whose tensors
have no values to read."""
import csv
import math

import numpy as np
import pytest
import torch

import siamdiag
from siamdiag.train.metrics_file import COLUMNS


def read_rows(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))


def test_logged_values_match_a_direct_recomputation(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    expected = []
    path = tmp_path / "run" / "metrics.csv"
    with siamdiag.Recorder(path, flush_every=7) as rec:
        for step in range(20):
            g = torch.Generator().manual_seed(step)
            a, b = torch.randn(16, 6, generator=g), torch.randn(16, 6, generator=g)
            za, zb = model(a), model(b)
            dist = (za - zb).norm(dim=1)
            same = torch.arange(16) % 2 == 0
            loss = torch.where(same, dist ** 2, torch.relu(1.0 - dist) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            rec.log(step, loss, model=model, embeddings=(za, zb), pos_dist=dist[same], neg_dist=dist[~same],
                    lr=optimizer.param_groups[0]["lr"], margin=1.0, epoch=step // 10)
            grads = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
            emb = np.concatenate([za.detach().numpy(), zb.detach().numpy()])
            expected.append((loss.item(), math.sqrt(float((grads.astype(np.float64) ** 2).sum())),
                             float(np.linalg.norm(emb, axis=1).mean()), float(dist[same].mean().detach()), float(dist[~same].mean().detach())))
            optimizer.step()
    rows = read_rows(path)
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 20
    for step, (row, (loss, grad, emb, pos, neg)) in enumerate(zip(rows, expected)):
        assert int(row["step"]) == step and int(row["epoch"]) == step // 10
        assert float(row["loss"]) == pytest.approx(loss, rel=1e-6)
        assert float(row["grad_norm"]) == pytest.approx(grad, rel=1e-5)
        assert float(row["embedding_norm"]) == pytest.approx(emb, rel=1e-5)
        assert float(row["pos_dist"]) == pytest.approx(pos, rel=1e-6)
        assert float(row["neg_dist"]) == pytest.approx(neg, rel=1e-6)
        assert (row["lr"], row["margin"], row["nonfinite"], row["easy_fraction"]) == ("0.05", "1", "0", "")


def log_steps(model, x, rec, steps):
    """Backward passes of a toy loss, each logged with its gradient and embeddings."""
    for step in steps:
        z = model(x)
        loss = z.pow(2).mean()
        model.zero_grad()
        loss.backward()
        rec.log(step, loss, model=model, embeddings=z, lr=0.1)


class HostReadCounter:
    """Counts reads of tensor values on the host (item, tolist, numpy, cpu, float)."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("item", "tolist", "numpy", "cpu", "__float__", "__bool__"):
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)


def test_log_reads_nothing_back_and_a_flush_reads_once(tmp_path, monkeypatch):
    model = tiny_model()
    x = torch.randn(32, 6)
    rec = siamdiag.Recorder(tmp_path / "m.csv", flush_every=10)
    counter = HostReadCounter(monkeypatch)
    log_steps(model, x, rec, range(9))
    assert counter.calls == []  # nine steps, nothing read back
    log_steps(model, x, rec, [9])  # the tenth step flushes
    assert counter.calls.count("cpu") == 1 and "item" not in counter.calls
    rec.close()
    assert len(read_rows(tmp_path / "m.csv")) == 10


def test_log_works_on_tensors_that_hold_no_values(tmp_path):
    # a meta tensor refuses every read of its value (item, cpu, bool, ...), so any read back
    # in log(), also an implicit one such as `if tensor:`, fails this loop
    model = tiny_model().to("meta")
    x = torch.randn(32, 6, device="meta")
    rec = siamdiag.Recorder(tmp_path / "m.csv", flush_every=1000)
    for step in range(50):
        za, zb = model(x), model(x.flip(0))
        distance = (za - zb).norm(dim=1)
        loss = distance.pow(2).mean()
        model.zero_grad()
        loss.backward()
        rec.log(step, loss, model=model, embeddings=(za, zb), pos_dist=distance[:16], neg_dist=distance[16:], lr=0.1)
    assert len(rec.pending) == 50
    assert all(set(device) == {"loss", "grad_norm", "embedding_norm", "pos_dist", "neg_dist"} and
               all(t.device.type == "meta" for t in device.values()) for _host, device in rec.pending)
    with pytest.raises(NotImplementedError, match="meta"):
        rec.flush()  # the one read, at flush time, is refused: this device really holds no values
    rec.pending.clear()
    rec.close()


def test_recorded_logs_get_the_verdict_known_by_construction(tmp_path):
    rng = np.random.default_rng(11)
    flat = tmp_path / "flat.csv"
    with siamdiag.Recorder(flat) as rec:
        for step in range(3000):
            rec.log(step, torch.tensor(0.5 + 0.05 * rng.standard_normal()))
    assert siamdiag.analyze(str(flat)).runs[0].verdict.value == "stationary"
    blowup = tmp_path / "blowup.csv"
    with siamdiag.Recorder(blowup) as rec:
        for step in range(300):
            rec.log(step, torch.tensor(math.nan if step >= 290 else 0.5 + 0.05 * rng.standard_normal()))
    rows = read_rows(blowup)
    assert rows[-1]["nonfinite"] == "1" and rows[-1]["loss"] == "nan"
    assert siamdiag.analyze(str(blowup)).runs[0].verdict.value == "diverged"
    with siamdiag.Recorder(blowup) as rec:  # continuing a file appends, one header
        rec.log(300, 0.25)
    assert len(read_rows(blowup)) == 301


@pytest.mark.parametrize("accumulate", [1, 4])
def test_lightning_callback_logs_every_optimizer_step(tmp_path, accumulate):
    # 7 micro-batches per epoch: with accumulation, windows of 4 and 3 (Lightning steps at epoch end)
    pl = pytest.importorskip("lightning.pytorch")
    from siamdiag.lightning import SiamdiagCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = tiny_model()
            self.losses, self.norms, self.distances, self.step_ends, self.grad_norms = [], [], [], [], []

        def training_step(self, batch, batch_idx):
            (x,) = batch
            z = self.net(x)
            loss = z.pow(2).mean()
            distance = z.norm(dim=1)[: batch_idx % 3 + 1]  # a different number of pairs per micro-batch
            self.losses.append(loss.item())
            self.norms.append(z.detach().norm(dim=1).numpy().astype(np.float64))
            self.distances.append(distance.detach().numpy().astype(np.float64))
            return {"loss": loss, "embeddings": z.detach(), "pos_dist": distance.detach()}

        def on_before_optimizer_step(self, optimizer):
            self.step_ends.append(len(self.losses))
            grads = np.concatenate([p.grad.numpy().ravel() for p in self.parameters()]).astype(np.float64)
            self.grad_norms.append(math.sqrt(float((grads ** 2).sum())))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(56, 6)), batch_size=8)
    module = Module()
    path = tmp_path / "cb.csv"
    trainer = pl.Trainer(max_steps=12, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[SiamdiagCallback(path, flush_every=5)],
                         default_root_dir=str(tmp_path), accelerator="cpu", accumulate_grad_batches=accumulate)
    trainer.fit(module, data)
    rows = read_rows(path)
    windows = [slice(a, b) for a, b in zip([0] + module.step_ends[:-1], module.step_ends)]
    assert len(module.losses) == (12 if accumulate == 1 else 42)  # with accumulation: 6 epochs of 7 micro-batches
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [float(r["loss"]) for r in rows] == pytest.approx([np.mean(module.losses[w]) for w in windows], rel=1e-6)
    assert [float(r["grad_norm"]) for r in rows] == pytest.approx(module.grad_norms, rel=1e-5)
    assert [float(r["embedding_norm"]) for r in rows] == pytest.approx(
        [np.concatenate(module.norms[w]).mean() for w in windows], rel=1e-6)
    assert [float(r["pos_dist"]) for r in rows] == pytest.approx(
        [np.concatenate(module.distances[w]).mean() for w in windows], rel=1e-6)
    assert all(r["lr"] == "0.01" for r in rows)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recorder_never_synchronises_on_cuda(tmp_path):
    model = tiny_model().cuda()
    x = torch.randn(32, 6, device="cuda")
    rec = siamdiag.Recorder(tmp_path / "g.csv", flush_every=1000)
    torch.cuda.set_sync_debug_mode("error")
    try:
        log_steps(model, x, rec, range(200))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    rec.close()
    assert len(read_rows(tmp_path / "g.csv")) == 200


def test_a_row_is_written_as_each_cell_formats_by_its_own_rule():
    """metrics.csv's row formatting (the float test first, cells fetched together) against the
    rule written out cell by cell: None empty, integers (numpy's too) exact, other numbers to 8
    significant digits, over seeded rows of every kind of cell a logger hands over."""
    from siamdiag.train.metrics_file import format_row

    def by_rule(value):
        if value is None:
            return ""
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        return format(value, ".8g")

    kinds = [None, 0, -3, 2**70, True, np.int64(7), np.int32(-2), 0.1, -0.0, 1e-300, 1e300, math.nan, math.inf,
             -math.inf, np.float32(0.1), np.float64(2.5e-9), 123456789.123]
    rng = np.random.default_rng(0)
    for _ in range(2000):
        row = {c: kinds[int(rng.integers(len(kinds)))] if rng.random() < 0.5 else float(rng.standard_normal())
               for c in COLUMNS}
        row["easy_count"] = 1.0   # keys beyond the columns are not written
        assert format_row(row) == ",".join(by_rule(row[c]) for c in COLUMNS) + "\n"
