"""StopWhenStationary: alpha spent over looks (arithmetic), runs known by construction (a loss
settled from the start must stop; one whose window still falls far beyond the margin must not),
and the three integrations (Recorder, Lightning, Hugging Face) stopping training for real. The
false-stop rate over 200 seeds is measured in benchmarks/stopping.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import siamdiag
from siamdiag.engine.stopping import StopWhenStationary

B = 8000


def _feed(monitor, loss, every=500):
    for start in range(0, len(loss), every):
        for step in range(start, min(start + every, len(loss))):
            monitor.add(step, loss[step])
        if monitor.check():
            return monitor.looks[-1].step
    return None


@pytest.mark.parametrize("max_steps", [None, B])
def test_alpha_spent_over_the_looks_never_exceeds_alpha(max_steps):
    rng = np.random.default_rng(0)
    still = 1 + 2 * np.exp(-np.arange(3 * B) / B) + 0.1 * rng.standard_normal(3 * B)   # never settles
    monitor = StopWhenStationary(check_every=250, alpha=0.02, max_steps=max_steps, min_steps=250)
    assert _feed(monitor, still, every=250) is None
    spent = sum(look.alpha for look in monitor.looks)
    assert len(monitor.looks) == 3 * B // 250
    if max_steps is None:   # alpha / (j (j + 1)) telescopes to alpha (1 - 1 / (J + 1))
        assert spent == pytest.approx(0.02 * (1 - 1 / (len(monitor.looks) + 1)), rel=1e-12)
    else:                   # in proportion to the budget covered, and nothing past it
        assert spent == pytest.approx(0.02, rel=1e-12)
        beyond = [look.alpha for look in monitor.looks if look.step > B]
        assert beyond[0] == pytest.approx(0.02 / B) and not any(beyond[1:])   # the budget's last step, then 0


def test_settled_runs_stop_and_still_learning_runs_do_not():
    stops_settled, stops_learning = [], []
    t = np.arange(B, dtype=float)
    for seed in range(20):
        rng = np.random.default_rng([seed, 1])
        settled = 0.3 + 0.02 * rng.standard_normal(B)
        learning = 1 + 2 * np.exp(-t / (B / 3)) + 0.1 * rng.standard_normal(B)   # window falls >> 0.25 sigma
        stops_settled.append(_feed(StopWhenStationary(check_every=500, max_steps=B, min_steps=500), settled))
        stops_learning.append(_feed(StopWhenStationary(check_every=500, max_steps=B, min_steps=500), learning))
    # equivalence within 0.25 sigma at alpha_j = 0.01 * 500 / 8000 needs about 5,000 white-noise steps
    assert all(s is not None for s in stops_settled) and np.mean(stops_settled) < 0.8 * B
    assert stops_learning == [None] * 20


def test_reason_and_argument_checks():
    monitor = StopWhenStationary(check_every=500, max_steps=B, min_steps=500)
    assert monitor.reason() == "siamdiag: not judged yet"
    _feed(monitor, 0.3 + 0.02 * np.random.default_rng(3).standard_normal(B))
    assert monitor.stopped and monitor.reason().startswith("siamdiag: the loss is stationary at step")
    assert monitor.check()   # stays stopped
    for bad in ({"check_every": 0}, {"alpha": 0}, {"alpha": 1.5}, {"max_steps": 0}):
        with pytest.raises(ValueError):
            StopWhenStationary(**bad)


def test_recorder_says_when_to_stop(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    path = tmp_path / "metrics.csv"
    with siamdiag.Recorder(path, flush_every=250, stop=StopWhenStationary(check_every=250, max_steps=B)) as recorder:
        for step in range(B):
            recorder.log(step, torch.tensor(0.3 + 0.02 * rng.standard_normal()))
            if recorder.should_stop:
                break
    assert step < B - 1 and (step + 1) % 250 == 0   # judged at a flush
    assert pd.read_csv(path)["step"].iloc[-1] == step


def _frozen_batches(torch, n=64 * 40):
    """A model with learning rate 0: the loss is the same function of fresh random batches at
    every step, stationary from the first step by construction."""
    return torch.utils.data.TensorDataset(torch.randn(n, 6))


def test_lightning_training_stops_once_settled(tmp_path):
    torch = pytest.importorskip("torch")
    pl = pytest.importorskip("lightning.pytorch")
    from siamdiag.lightning import SiamdiagCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(6, 3)

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(_frozen_batches(torch), batch_size=256, shuffle=True)
    stop = StopWhenStationary(check_every=200, min_steps=200, tolerance_relative=0.05)
    trainer = pl.Trainer(max_steps=3000, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path), accelerator="cpu",
                         callbacks=[SiamdiagCallback(tmp_path / "m.csv", flush_every=200, stop=stop)])
    trainer.fit(Module(), data)
    assert stop.max_steps == 3000 and stop.stopped   # the trainer's budget, taken when none was given
    assert trainer.global_step < 3000 and trainer.global_step == len(pd.read_csv(tmp_path / "m.csv"))


def test_hf_training_stops_once_settled(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    pytest.importorskip("accelerate")

    class Frozen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(6, 3)

        def forward(self, x):
            return {"loss": self.net(x).pow(2).mean()}

    torch.manual_seed(0)
    data = [{"x": x} for (x,) in _frozen_batches(torch)]
    stop = StopWhenStationary(check_every=200, min_steps=200, tolerance_relative=0.05)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=3000, per_device_train_batch_size=256,
                                          learning_rate=0.0, save_strategy="no", report_to=[], use_cpu=True,
                                          disable_tqdm=True, seed=0)
    trainer = transformers.Trainer(model=Frozen(), args=args, train_dataset=data,
                                   callbacks=[siamdiag.SiamdiagTrainerCallback(stop=stop)])
    trainer.train()
    assert stop.max_steps == 3000 and stop.stopped
    assert trainer.state.global_step == stop.looks[-1].step < 3000
