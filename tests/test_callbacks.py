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


def _hf_trainer(tmp_path, callback, steps=240, logging_steps=500, report_to=()):
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
                                          report_to=list(report_to), use_cpu=True, seed=0, disable_tqdm=True)
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
    os.environ["KERAS_BACKEND"] = sys.argv[1]   # before keras is imported
    import numpy as np, keras, pandas as pd
    from siamdiag.integrations.keras import SiamdiagKerasCallback
    out = sys.argv[2]

    def fit(name, k, lr, x, y, batch_size, epochs, shuffle):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse", steps_per_execution=k)
        try:
            model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=shuffle, verbose=0,
                      callbacks=[SiamdiagKerasCallback(f"{out}/{name}_{k}.csv")])
        except ValueError as refused:   # Keras on torch: steps_per_execution must be 1
            open(f"{out}/{name}_{k}.refused", "w").write(str(refused))
        return model

    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5, 0.0], dtype="float32")
    x = rng.standard_normal((20 * 32 + 16, 4)).astype("float32")   # 20 batches of 32 and one of 16
    y = (x @ w)[:, None] + 0.3
    model = fit("frozen", 1, 0.0, x, y, 32, 3, False)   # frozen: each batch's loss is its own, evaluated alone
    fit("frozen", 4, 0.0, x, y, 32, 3, False)
    own = [float(model.evaluate(x[i:i + 32], y[i:i + 32], verbose=0)) for i in range(0, len(x), 32)]
    pd.DataFrame({"own": own, "samples": [32] * 20 + [16]}).to_csv(f"{out}/own.csv", index=False)
    x = rng.standard_normal((4096, 4)).astype("float32")   # a run that settles at its noise floor
    y = (x @ w)[:, None] + 0.3 + 0.5 * rng.standard_normal((4096, 1)).astype("float32")
    for k in (1, 4):
        fit("settled", k, 0.02, x, y, 8, 4, True)
""")


@pytest.fixture(scope="module", params=["torch", "jax"])
def keras_runs(request, tmp_path_factory):
    """The logs Keras wrote on one backend (in a child: the backend is chosen before keras is
    imported), with steps_per_execution 1 and 4: a frozen model on 21 batches (the last short) for
    3 epochs, with each batch's own loss; a model that settles, trained on 2,048 batches."""
    for module in ("keras", request.param):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    out = tmp_path_factory.mktemp(f"keras_{request.param}")
    done = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, request.param, str(out)], capture_output=True,
                          text=True, env={**os.environ, "KERAS_BACKEND": request.param})
    assert done.returncode == 0, done.stderr[-2000:]
    return request.param, out, done.stderr


@pytest.mark.slow   # Keras trains in a child process per backend
def test_keras_callback_logs_each_batch_not_the_running_mean(keras_runs):
    _backend, out, _stderr = keras_runs
    frame = pd.read_csv(out / "frozen_1.csv")
    own = pd.read_csv(out / "own.csv")
    assert frame["step"].tolist() == list(range(1, 64)) and frame["epoch"].tolist() == [0] * 21 + [1] * 21 + [2] * 21
    np.testing.assert_allclose(frame["loss"], np.tile(own["own"], 3), rtol=1e-4)   # the short batch too
    running = np.cumsum(own["own"] * own["samples"]) / np.cumsum(own["samples"])
    assert np.abs(frame["loss"].to_numpy()[:21] - running).max() > 0.1   # what Keras reported is not what was logged
    assert (frame["lr"] == 0).all()


@pytest.mark.slow   # Keras trains in a child process per backend
def test_keras_steps_per_execution_logs_each_groups_mean_once(keras_runs):
    """issue #18: on JAX with steps_per_execution=4 Keras reports one running mean per 4 batches;
    the rows were 4x the loss, then negative. Each row is the mean loss of its 4 batches (weighted
    by their samples, as Keras weighs them), every batch in exactly one row; on torch Keras itself
    refuses steps_per_execution > 1, before the callback writes anything."""
    backend, out, stderr = keras_runs
    if backend == "torch":
        assert "steps_per_execution` must be 1" in (out / "frozen_4.refused").read_text()
        assert not (out / "frozen_4.csv").exists()
        return
    frame = pd.read_csv(out / "frozen_4.csv")
    own = pd.read_csv(out / "own.csv")
    ends = [4, 8, 12, 16, 20, 21]   # the epoch's last group holds one batch
    assert frame["step"].tolist() == [21 * epoch + end for epoch in range(3) for end in ends]
    assert frame["epoch"].tolist() == [0] * 6 + [1] * 6 + [2] * 6
    means = [np.average(own["own"][a:b], weights=own["samples"][a:b]) for a, b in zip([0] + ends[:-1], ends)]
    np.testing.assert_allclose(frame["loss"], np.tile(means, 3), rtol=1e-4)
    assert "steps_per_execution=4: Keras reports the loss once every 4 batches, so each row of" in stderr


@pytest.mark.slow   # Keras trains in a child process per backend
def test_keras_steps_per_execution_is_judged_as_every_batch(keras_runs):
    """A settled run logged with steps_per_execution=4 gets the verdict of the same run logged
    batch by batch: its rows are the means of 4 consecutive rows of that log, and no row is read
    as a running mean."""
    backend, out, _stderr = keras_runs
    every = pd.read_csv(out / "settled_1.csv")
    runs = [siamdiag.analyze(str(out / "settled_1.csv")).runs[0]]
    if backend == "jax":
        groups = pd.read_csv(out / "settled_4.csv")
        assert groups["step"].tolist() == list(range(4, 2049, 4))
        np.testing.assert_allclose(groups["loss"], every["loss"].to_numpy().reshape(-1, 4).mean(axis=1), rtol=1e-5)
        runs.append(siamdiag.analyze(str(out / "settled_4.csv")).runs[0])
    assert [run.points for run in runs] == [2048, 512][:len(runs)]
    assert {run.verdict.value for run in runs} == {"stationary"}
    assert not any("running means" in note for run in runs for note in run.notes)
