"""The Hugging Face and Keras callbacks, with the real libraries training tiny models built from
a config (nothing downloaded). Oracles: the Trainer's own log history (the callback writes what
the Trainer computed, at every step), and for Keras each batch's loss evaluated on its own by the
same (frozen) model, which the running means Keras reports must be turned back into."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

import siamdiag


def _hf_trainer(tmp_path, callback, steps=240, logging_steps=500):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 40, size=(512, 8))
    labels = (tokens[:, 0] > 20).astype(int)
    data = [{"input_ids": torch.tensor(t), "attention_mask": torch.ones(8, dtype=torch.long), "labels": int(y)}
            for t, y in zip(tokens, labels)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=16,
                                          learning_rate=5e-3, logging_steps=logging_steps, save_strategy="no",
                                          report_to=[], use_cpu=True, seed=0, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    return trainer


def test_hf_callback_writes_every_steps_own_loss(tmp_path):
    callback = siamdiag.SiamdiagTrainerCallback()
    trainer = _hf_trainer(tmp_path, callback)
    log = tmp_path / "out" / "siamdiag_metrics.csv"
    frame = pd.read_csv(log)
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert frame["step"].tolist() == [h["step"] for h in history] == list(range(1, 241))
    np.testing.assert_allclose(frame["loss"], [h["loss"] for h in history], rtol=1e-7)
    np.testing.assert_allclose(frame["grad_norm"], [h["grad_norm"] for h in history], rtol=1e-7)
    np.testing.assert_allclose(frame["lr"], [h["learning_rate"] for h in history], rtol=1e-7)
    report = siamdiag.analyze(str(log))
    assert report.runs[0].points == 240


def test_hf_callback_says_how_to_log_every_step(tmp_path):
    callback = siamdiag.SiamdiagTrainerCallback(path=tmp_path / "m.csv", every_step=False)
    with pytest.warns(UserWarning, match=r"logging_steps=100 steps; set TrainingArguments\(logging_steps=1\)"):
        _hf_trainer(tmp_path, callback, steps=200, logging_steps=100)
    assert pd.read_csv(tmp_path / "m.csv")["step"].tolist() == [100, 200]   # only what the Trainer logged
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _hf_trainer(tmp_path / "again", siamdiag.SiamdiagTrainerCallback(path=tmp_path / "n.csv", every_step=False),
                    steps=20, logging_steps=1)



def test_a_trainer_state_logged_every_10_steps_says_how_to_log_every_step(tmp_path):
    """issue #18: logging_steps=10 gave insufficient_data, which passes, with no hint. The
    trainer_state.json the Trainer itself writes (it carries logging_steps) is the input."""
    transformers = pytest.importorskip("transformers")
    trainer = _hf_trainer(tmp_path, transformers.TrainerCallback(), steps=100, logging_steps=10)   # the Trainer alone
    trainer.save_state()
    state = tmp_path / "out" / "trainer_state.json"
    assert json.loads(state.read_text())["logging_steps"] == 10
    [run] = siamdiag.analyze(str(state)).runs
    assert run.verdict.value == "insufficient_data" and run.points == 10
    assert run.reasons[0].endswith("; the loss was logged every 10 steps: set TrainingArguments(logging_steps=1) "
                                   "or use siamdiag.SiamdiagTrainerCallback")


LIGHTNING_SCRIPT = textwrap.dedent("""
    import sys, torch, lightning as L
    from lightning.pytorch.loggers import CSVLogger

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, index):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(2000, 4), torch.randn(2000, 1))
    trainer = L.Trainer(max_epochs=1, logger=CSVLogger(sys.argv[1]), enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)   # log_every_n_steps: 50
    trainer.fit(Model(), torch.utils.data.DataLoader(data, batch_size=4))
""")


def test_a_lightning_csv_log_every_50_steps_says_how_to_log_every_step(tmp_path):
    """issue #18: Lightning's default log_every_n_steps=50 gave insufficient_data with no hint;
    the CSVLogger's own metrics.csv, in its version_0 directory, is the input."""
    pytest.importorskip("lightning")
    (tmp_path / "fit.py").write_text(LIGHTNING_SCRIPT)
    subprocess.run([sys.executable, str(tmp_path / "fit.py"), str(tmp_path / "logs")], check=True, capture_output=True)
    log = tmp_path / "logs" / "lightning_logs" / "version_0" / "metrics.csv"
    [run] = siamdiag.analyze(str(log)).runs
    assert run.verdict.value == "insufficient_data" and run.points == 10
    assert run.reasons[0].endswith("; the loss was logged every 50 steps: set Trainer(log_every_n_steps=1) "
                                   "or use siamdiag.lightning.SiamdiagCallback")


KERAS_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np, keras, pandas as pd
    from siamdiag.integrations.keras import SiamdiagKerasCallback
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((640, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None] + 0.3
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=float(sys.argv[2])), loss="mse")
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=[SiamdiagKerasCallback(sys.argv[1])])
    if float(sys.argv[2]) == 0:   # frozen: each batch's loss is the model's loss on that batch alone
        own = [float(model.evaluate(x[i:i + 32], y[i:i + 32], verbose=0)) for i in range(0, 640, 32)] * 3
        pd.DataFrame({"own": own}).to_csv(sys.argv[1] + ".own.csv", index=False)
""")


def _keras(tmp_path, lr):
    if importlib.util.find_spec("keras") is None:   # (imported in the child, on its torch backend)
        pytest.skip("keras is not installed")
    log = tmp_path / f"keras_{lr}.csv"
    done = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(log), str(lr)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"})
    assert done.returncode == 0, done.stderr[-2000:]
    return log


def test_keras_callback_logs_each_batch_not_the_running_mean(tmp_path):
    log = _keras(tmp_path, 0.0)
    frame = pd.read_csv(log)
    own = pd.read_csv(str(log) + ".own.csv")["own"].to_numpy()
    assert frame["step"].tolist() == list(range(1, 61)) and frame["epoch"].tolist() == [0] * 20 + [1] * 20 + [2] * 20
    np.testing.assert_allclose(frame["loss"], own, rtol=1e-4)
    running = np.concatenate([np.cumsum(own[k:k + 20]) / np.arange(1, 21) for k in (0, 20, 40)])
    assert np.abs(frame["loss"].to_numpy() - running).max() > 0.1   # what Keras reported is not what was logged
    assert (frame["lr"] == 0).all()


def test_keras_callback_log_is_judged_without_a_running_mean_note(tmp_path):
    log = _keras(tmp_path, 0.05)
    report = siamdiag.analyze(str(log))
    assert report.runs[0].points == 60
    assert not any("running means" in n for n in report.runs[0].notes)
