"""Output directories that hold one run in several files: a DVCLive directory written by dvclive
itself (one run, not one per metric TSV) and a Hugging Face output directory whose
checkpoint-*/trainer_state.json files are prefixes of one run (the newest is read). The oracle
is the series each library was given."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from siamdiag import analyze
from siamdiag.cli.main import main
from siamdiag.errors import InputError
from siamdiag.logs.ingest import ReadOptions, read_runs

STEPS = 300


def _settled(seed: int) -> np.ndarray:
    return 0.3 + 0.02 * np.random.default_rng(seed).standard_normal(STEPS)


def _dvclive_run(directory, loss, grad):
    dvclive = pytest.importorskip("dvclive")
    with dvclive.Live(str(directory), save_dvc_exp=False, dvcyaml=None) as live:
        for step in range(STEPS):
            live.log_metric("train/loss", float(loss[step]))
            live.log_metric("val/loss", 5.0 + step % 7, timestamp=True)   # higher, and periodic: never the loss
            live.log_metric("train/grad_norm", float(grad[step]))
            live.next_step()


def test_dvclive_directories_are_one_run_each(tmp_path):
    loss_a, grad_a = _settled(1), np.linspace(1.0, 2.0, STEPS)
    loss_b = 0.3 + 2.0 * np.exp(-np.arange(STEPS) / 400) + 0.01 * np.random.default_rng(2).standard_normal(STEPS)
    loss_b[-3:] = [1e9, math.inf, math.nan]
    _dvclive_run(tmp_path / "exp_a" / "dvclive", loss_a, grad_a)
    _dvclive_run(tmp_path / "exp_b" / "dvclive", loss_b, grad_a)
    runs = {r.name: r for r in read_runs([str(tmp_path)])}
    assert sorted(runs) == [str(tmp_path / "exp_a" / "dvclive"), str(tmp_path / "exp_b" / "dvclive")]
    a = runs[str(tmp_path / "exp_a" / "dvclive")]
    np.testing.assert_array_equal(a.metrics["loss"].values, loss_a)        # train/loss, not val/loss
    np.testing.assert_array_equal(a.metrics["grad_norm"].values, grad_a)
    assert a.metrics["loss"].steps.tolist() == list(range(STEPS))
    np.testing.assert_array_equal(runs[str(tmp_path / "exp_b" / "dvclive")].metrics["loss"].values, loss_b)
    verdicts = {r.run: r.verdict for r in analyze([str(tmp_path)]).runs}
    assert verdicts == {str(tmp_path / "exp_a" / "dvclive"): "stationary",
                        str(tmp_path / "exp_b" / "dvclive"): "diverged"}
    [named] = read_runs([str(tmp_path / "exp_a" / "dvclive")], ReadOptions(input_format="dvclive"))
    np.testing.assert_array_equal(named.metrics["loss"].values, loss_a)


def test_dvclive_bad_metric_file_is_located(tmp_path, capsys):
    _dvclive_run(tmp_path / "dvclive", _settled(3), _settled(4))
    tsv = tmp_path / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
    lines = tsv.read_text().split("\n")
    lines[5] = "4\tabc"
    tsv.write_text("\n".join(lines))
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(tmp_path)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"siamdiag: error: {tsv}:6:3: column 'loss': 'abc' is not a number\n"


def _trainer_state(step: int, losses: np.ndarray, logging_steps: int) -> dict:
    """What transformers' Trainer writes: log_history with a record per logging step (and
    evaluation records without 'loss')."""
    history = [{"step": s, "epoch": s / 100, "loss": float(losses[s - 1]), "grad_norm": 1.0, "learning_rate": 1e-4}
               for s in range(logging_steps, step + 1, logging_steps)]
    history.append({"step": step, "eval_loss": 9.0})
    return {"global_step": step, "log_history": history, "logging_steps": logging_steps}


def test_hf_checkpoints_are_one_run_read_from_the_newest(tmp_path, capsys):
    losses = _settled(5)
    out = tmp_path / "out"
    for step in (100, 200, 300):   # each checkpoint's state is the run up to its step
        (out / f"checkpoint-{step}").mkdir(parents=True)
        (out / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(_trainer_state(step, losses, 1)))
    [run] = read_runs([str(tmp_path)])
    assert run.name == str(out)
    np.testing.assert_array_equal(run.metrics["loss"].values, losses)     # all 300 steps: checkpoint-300's
    assert any("checkpoint-300/trainer_state.json, the last of 3 trainer states" in n for n in run.notes)
    # once training ends, the state beside the checkpoints is the whole run
    (out / "trainer_state.json").write_text(json.dumps(_trainer_state(300, losses, 1)))
    (out / "checkpoint-300" / "trainer_state.json").write_text(json.dumps(_trainer_state(250, losses, 1)))
    [run] = read_runs([str(tmp_path)])
    assert len(run.metrics["loss"].values) == 300
    assert any("read trainer_state.json, the last of 4" in n for n in run.notes)
    # a checkpoint named on the command line is read as given
    [one] = read_runs([str(out / "checkpoint-200" / "trainer_state.json")])
    assert len(one.metrics["loss"].values) == 200 and not any("trainer states" in n for n in one.notes)
    # two output directories: two runs
    other = tmp_path / "other" / "checkpoint-50"
    other.mkdir(parents=True)
    (other / "trainer_state.json").write_text(json.dumps(_trainer_state(50, losses, 1)))
    assert sorted(r.name for r in read_runs([str(tmp_path)])) == [str(other / "trainer_state.json"), str(out)]


def test_tensorboard_writer_layouts_are_one_run_each(tmp_path, capsys):
    """torch's SummaryWriter: add_scalars writes each series to a subdirectory of its own
    (`<main_tag>_<key>/`), add_hparams a timestamp subdirectory, and a writer that logs nothing
    an event file with no scalar, as does one that logs only histograms and text. One run per
    writer, its add_scalars series with it, the hparams folder never judged, the writers without
    scalars passed over with a note."""
    tensorboard = pytest.importorskip("torch.utils.tensorboard")
    loss, val = _settled(6), 1.0 + _settled(7)
    writer = tensorboard.SummaryWriter(str(tmp_path / "runs" / "exp"))
    for step in range(STEPS):
        writer.add_scalars("Loss", {"train": float(loss[step]), "val": float(val[step])}, step)
        writer.add_scalar("lr", 0.1, step)
    writer.add_hparams({"lr": 0.1}, {"hparam/final_loss": float(loss[-1])})
    writer.close()
    tensorboard.SummaryWriter(str(tmp_path / "runs" / "empty")).close()
    pictures = tensorboard.SummaryWriter(str(tmp_path / "runs" / "pictures"))   # records, but no scalar
    for step in range(3):
        pictures.add_histogram("weights", np.arange(10.0) * step, step)
        pictures.add_text("notes", f"step {step}", step)
    pictures.close()
    assert sorted(p.name for p in (tmp_path / "runs" / "exp").iterdir() if p.is_dir())[1:] == ["Loss_train", "Loss_val"]
    [run] = read_runs([str(tmp_path / "runs")])
    assert run.name == str(tmp_path / "runs" / "exp")
    np.testing.assert_allclose(run.metrics["loss"].values, loss.astype(np.float32))   # Loss/train, not Loss/val
    assert run.metrics["loss"].steps.tolist() == list(range(STEPS))
    assert any("Loss_train/ as Loss/train, Loss_val/ as Loss/val" in n for n in run.notes)
    assert any("add_hparams" in n for n in run.notes)
    assert any(f"skipped {tmp_path / 'runs' / 'empty'}" in n for n in run.notes)
    assert any(f"skipped {tmp_path / 'runs' / 'pictures'}" in n and "only histograms" in n for n in run.notes)
    assert [r.verdict for r in analyze([str(tmp_path / "runs")]).runs] == ["stationary"]
    with pytest.raises(SystemExit) as exc:   # nothing but an empty writer: nothing to judge, said why
        main(["analyze", str(tmp_path / "runs" / "empty")])
    assert exc.value.code == 2 and "logged nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(tmp_path / "runs" / "pictures")])
    assert exc.value.code == 2 and "hold no scalars" in capsys.readouterr().err


def test_a_writer_is_judged_when_any_record_holds_a_scalar_and_a_damaged_one_is_reported(tmp_path):
    """The walk passes over a writer only when none of its records holds a scalar: a scalar after
    many histograms keeps the run, and a damaged length field is left to the reader, which names
    the file and the offset (the directory is not quietly skipped)."""
    tensorboard = pytest.importorskip("torch.utils.tensorboard")
    writer = tensorboard.SummaryWriter(str(tmp_path / "late"))
    for step in range(50):
        writer.add_histogram("weights", np.arange(10.0) * step, step)
    for step in range(STEPS):
        writer.add_scalar("loss", float(_settled(3)[step]), 50 + step)
    writer.close()
    [run] = read_runs([str(tmp_path)])
    assert run.name == str(tmp_path / "late") and len(run.metrics["loss"].values) == STEPS
    [event_file] = (tmp_path / "late").iterdir()
    damaged = bytearray(event_file.read_bytes())
    damaged[3] ^= 0x40   # the first record's length field: its checksum no longer matches
    event_file.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match="corrupt TensorBoard record at byte 0"):
        read_runs([str(tmp_path)])
