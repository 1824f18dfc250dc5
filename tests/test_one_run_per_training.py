"""Issue #18 items 4 and 5, with the real libraries: one training's directory is one run (the
callback's siamdiag_metrics.csv is read, the Trainer's or CSVLogger's own log of the same training
is not read again), and a log is never continued by another run (steps that start over move the
old file aside; a resume from a checkpoint continues it). Oracles: the steps each library trained."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import siamdiag
from siamdiag.logs.ingest import read_runs


def _hf_train(out, steps, resume=None, save_steps=None, report_to=()):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 40, size=(256, 8))
    data = [{"input_ids": torch.tensor(t), "attention_mask": torch.ones(8, dtype=torch.long), "labels": int(t[0] > 20)}
            for t in tokens]
    args = transformers.TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=16,
                                          learning_rate=5e-3, save_strategy="steps" if save_steps else "no",
                                          save_steps=save_steps or 500, report_to=list(report_to), use_cpu=True, seed=0,
                                          disable_tqdm=True)
    trainer = transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                                   train_dataset=data, callbacks=[siamdiag.SiamdiagTrainerCallback()])
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_hf_output_directory_is_one_run_read_from_the_callbacks_log(tmp_path):
    _hf_train(tmp_path / "out", 60, save_steps=25)
    assert sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*")) == ["checkpoint-25", "checkpoint-50",
                                                                               "checkpoint-60"]
    [run] = read_runs([str(tmp_path)])
    assert run.source == str(tmp_path / "out" / "siamdiag_metrics.csv")
    assert run.metrics["loss"].steps.tolist() == list(range(1, 61))
    [note] = [n for n in run.notes if "not read again" in n]
    assert "checkpoint-60/trainer_state.json" in note and "checkpoint-25/trainer_state.json" in note
    assert len(siamdiag.analyze(str(tmp_path)).runs) == 1


def test_hf_tensorboard_reporting_is_not_a_second_run(tmp_path):
    """report_to="tensorboard" (the Trainer's default where tensorboard is installed, before
    transformers 5) writes <output_dir>/runs/<stamp>/ beside the callback's log: the same
    training, judged twice until now. Oracle: those event files hold the same steps' losses."""
    pytest.importorskip("tensorboard")
    _hf_train(tmp_path / "out", 30, save_steps=25, report_to=["tensorboard"])
    [writer] = (tmp_path / "out" / "runs").iterdir()
    [reported] = read_runs([str(writer)])
    [run] = read_runs([str(tmp_path)])
    assert run.source == str(tmp_path / "out" / "siamdiag_metrics.csv")
    np.testing.assert_allclose(reported.metrics["loss"].values, run.metrics["loss"].values, rtol=1e-6)
    [note] = [n for n in run.notes if "not read again" in n]
    assert f"runs/{writer.name} (TensorBoard event files)" in note and "checkpoint-25/trainer_state.json" in note
    assert len(siamdiag.analyze(str(tmp_path)).runs) == 1


def test_lightning_version_directory_is_one_run_read_from_the_callbacks_log(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger
    from siamdiag.lightning import SiamdiagCallback

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch[0]).pow(2).mean()
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(320, 4)), batch_size=8)
    trainer = pl.Trainer(max_steps=40, logger=CSVLogger(str(tmp_path)), log_every_n_steps=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[SiamdiagCallback()])
    trainer.fit(Model(), data)
    version = tmp_path / "lightning_logs" / "version_0"
    assert {"metrics.csv", "siamdiag_metrics.csv"} <= {p.name for p in version.iterdir()}
    [run] = read_runs([str(tmp_path)])
    assert run.source == str(version / "siamdiag_metrics.csv") and len(run.metrics["loss"].values) == 40
    assert any("metrics.csv" in n and "not read again" in n for n in run.notes)


def test_hf_trained_twice_into_one_directory_is_two_runs_in_two_files(tmp_path):
    out = tmp_path / "out"
    _hf_train(out, 30)
    first = (out / "siamdiag_metrics.csv").read_text()
    with pytest.warns(UserWarning, match=r"holds another run \(its steps reach 30 and this run starts at step 1\)"):
        _hf_train(out, 20)
    assert (out / "siamdiag_metrics.1.csv").read_text() == first   # moved aside whole, not appended to
    assert pd.read_csv(out / "siamdiag_metrics.csv")["step"].tolist() == list(range(1, 21))
    assert sorted(len(r.metrics["loss"].values) for r in read_runs([str(out)])) == [20, 30]


def test_hf_resume_from_a_checkpoint_continues_the_file(tmp_path):
    out = tmp_path / "out"
    _hf_train(out, 40, save_steps=20)   # then training "dies" after step 40; its checkpoint is step 20's
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _hf_train(out, 40, resume=str(out / "checkpoint-20"), save_steps=20)
    assert pd.read_csv(out / "siamdiag_metrics.csv")["step"].tolist() == list(range(1, 41))   # each step once
    assert not (out / "siamdiag_metrics.1.csv").exists()


def test_recorder_never_appends_another_run(tmp_path):
    path = tmp_path / "metrics.csv"

    def record(steps):
        with siamdiag.Recorder(path, flush_every=10) as recorder:
            for step in steps:
                recorder.log(step, 0.3 + 0.01 * step)

    record(range(50))
    record(range(50, 80))   # steps continue: a resume, appended
    assert pd.read_csv(path)["step"].tolist() == list(range(80))
    with pytest.warns(UserWarning, match="moved it to .*metrics.1.csv"):
        record(range(20))   # steps start over: another run
    with pytest.warns(UserWarning, match="moved it to .*metrics.2.csv"):
        record(range(10))   # and again: the next free number, nothing replaced
    assert [len(pd.read_csv(tmp_path / name)) for name in ("metrics.1.csv", "metrics.2.csv", "metrics.csv")] \
        == [80, 20, 10]


@pytest.mark.parametrize("resume_from", [None, 5])
def test_rows_never_join_a_last_row_cut_short(tmp_path, resume_from):
    # found in review: after a crash mid-row, the next run's first row was appended onto the cut
    # one (`3,0.36,,0.2,...`); oracle: the complete rows written, each step once
    from siamdiag.train.metrics_file import COLUMNS, MetricsFile

    path = tmp_path / "metrics.csv"
    cells = {"step": "{}", "loss": "0.3"}
    rows = [",".join(cells.get(column, "") for column in COLUMNS).format(step) for step in (1, 2, 3)]
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(rows)[:-6])   # a crash cut step 3's row
    log = MetricsFile(str(path), resume_from=resume_from)
    log.append([{column: None for column in COLUMNS} | {"step": 3, "loss": 0.4}])
    log.close()
    frame = pd.read_csv(path)
    assert frame["step"].tolist() == [1, 2, 3] and frame["loss"].tolist() == [0.3, 0.3, 0.4]
    assert path.read_text().endswith("\n") and not (tmp_path / "metrics.1.csv").exists()


def test_lightning_resume_from_a_checkpoint_continues_the_file(tmp_path):
    # found in review: the Lightning callback did not tell its file where the checkpoint was, so a
    # resume whose file ran past it (a crash after the checkpoint) moved the file aside: one run in
    # two files. Oracle: each step once, in one file, as with the Hugging Face callback.
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint
    from siamdiag.lightning import SiamdiagCallback

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    def fit(ckpt_path=None):
        torch.manual_seed(0)
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(320, 4)), batch_size=8)
        checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
        trainer = pl.Trainer(max_steps=40, logger=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[checkpoints, SiamdiagCallback(path=log, flush_every=10)])
        trainer.fit(Model(), data, ckpt_path=ckpt_path)

    log = tmp_path / "siamdiag_metrics.csv"
    fit()   # then training "dies" after step 40; the last checkpoint it can resume from is step 20's
    [step_20] = (tmp_path / "ckpt").glob("*step=20*.ckpt")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="siamdiag", category=UserWarning)   # no file moved aside
        fit(str(step_20))
    assert pd.read_csv(log)["step"].tolist() == list(range(1, 41))   # each step once
    assert not (tmp_path / "siamdiag_metrics.1.csv").exists()


def test_a_file_is_set_aside_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    # found in review: set_aside needed os.link, which exFAT and some network mounts refuse: the
    # callback would crash at its first write. Oracle: the old file moved whole, to the next free name.
    import os

    from siamdiag.train.metrics_file import set_aside

    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    path = tmp_path / "metrics.csv"
    (tmp_path / "metrics.1.csv").write_text("taken\n")
    path.write_text("step,loss\n1,0.5\n")
    monkeypatch.setattr(os, "link", no_links)
    assert set_aside(str(path)) == str(tmp_path / "metrics.2.csv")
    assert (tmp_path / "metrics.2.csv").read_text() == "step,loss\n1,0.5\n" and not path.exists()
    assert (tmp_path / "metrics.1.csv").read_text() == "taken\n"
