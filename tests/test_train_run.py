"""Training runs end to end on small synthetic data: the log's columns, determinism, resume,
non-finite stops, Ctrl-C, the verdicts the gate gives, and the CLI contract."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from siamdiag.cli.main import main  # noqa: E402
from siamdiag.train.config import TrainConfig  # noqa: E402
from siamdiag.train.distributed import Placement  # noqa: E402
from siamdiag.train.loop import Trainer  # noqa: E402
from siamdiag.train.metrics_file import COLUMNS  # noqa: E402
from .conftest import interruptible  # noqa: E402

FAST = dict(data="synthetic", synthetic_samples=400, synthetic_dim=8, hidden=32, embedding_dim=8,
            batch_size=32, steps=240, checkpoint_every=100)
CPU = Placement(torch.device("cpu"))


def train(run_dir, checkpoint=None, **changes):
    return Trainer(TrainConfig(**{**FAST, **changes}).validate(), str(run_dir), CPU, checkpoint).run()


def rows(path):
    with open(os.path.join(path, "metrics.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize("loss", ["contrastive", "triplet", "cosine", "infonce"])
def test_log_has_one_row_per_step_with_the_columns_that_apply(tmp_path, loss):
    outcome = train(tmp_path, loss=loss, steps=60)
    log = rows(tmp_path)
    assert outcome.stopped == "completed" and list(log[0]) == list(COLUMNS)
    assert [int(r["step"]) for r in log] == list(range(1, 61))
    assert all(float(r["grad_norm"]) > 0 and r["nonfinite"] == "0" for r in log)
    filled = {c for c in COLUMNS if all(r[c] != "" for r in log)}
    empty = {c for c in COLUMNS if all(r[c] == "" for r in log)}
    assert filled | empty == set(COLUMNS)
    expected_empty = {"contrastive": {"easy_fraction"}, "cosine": {"easy_fraction"},
                      "triplet": set(), "infonce": {"easy_fraction", "active_fraction", "margin"}}[loss]
    assert empty == expected_empty
    if loss == "triplet":
        # every triplet is either easy or active (ties aside): the two fractions sum to ~1
        assert all(abs(float(r["easy_fraction"]) + float(r["active_fraction"]) - 1) < 0.05 for r in log)


def test_logged_values_match_a_recomputation_of_the_step(tmp_path):
    """The recorder's sums/counts give the same numbers as computing the statistics directly."""
    cfg = TrainConfig(**{**FAST, "steps": 1, "augment_noise": 0.0}).validate()
    trainer = Trainer(cfg, str(tmp_path), CPU)
    batch = trainer.sampler.batch(1)
    with torch.no_grad():
        out, raw, _ = trainer.forward(batch, trainer.margin.value)
    trainer.run()
    row = rows(tmp_path)[0]
    s = batch.similar.bool()
    d = out.pos_dist
    assert float(row["loss"]) == pytest.approx(out.loss.item(), rel=1e-6)
    assert float(row["pos_dist"]) == pytest.approx(d[s].mean().item(), rel=1e-6)
    assert float(row["neg_dist"]) == pytest.approx(d[~s].mean().item(), rel=1e-6)
    assert float(row["active_fraction"]) == pytest.approx((out.terms > 0).double().mean().item(), rel=1e-6)
    assert float(row["embedding_norm"]) == pytest.approx(raw.norm(dim=1).mean().item(), rel=1e-6)


def test_same_seed_same_device_gives_identical_log(tmp_path):
    train(tmp_path / "a")
    train(tmp_path / "b")
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
    train(tmp_path / "c", seed=1)
    assert (tmp_path / "a" / "metrics.csv").read_bytes() != (tmp_path / "c" / "metrics.csv").read_bytes()


def test_train_in_process_after_torch_loaded_logs_what_the_shell_logs(tmp_path, capsys):
    # found: the CLI pins OMP_NUM_THREADS=1 when it loads, which torch reads only when it loads; a
    # caller (here pytest) that loaded torch first trained on every core, and SGD at lr 5 then took
    # another path from step 2 on and ended `nonstationary` instead of `degenerate`
    args = ["train", "--optimizer", "sgd", "--lr", "5", "--steps", "30", "--seed", "0", "--no-gate", "-q"]
    shell = subprocess.run([sys.executable, "-m", "siamdiag", *args, "--out", str(tmp_path / "shell")],
                           capture_output=True, text=True, timeout=300)
    assert shell.returncode == 0, shell.stderr
    torch.set_num_threads(2)
    try:
        code, _ = cli([*args, "--out", str(tmp_path / "here")], capsys)
    finally:
        torch.set_num_threads(1)
    assert code == 0
    assert (tmp_path / "here" / "metrics.csv").read_bytes() == (tmp_path / "shell" / "metrics.csv").read_bytes()


@pytest.mark.parametrize("loss,schedule", [("contrastive", "fixed"), ("triplet", "adaptive")])
def test_interrupted_then_resumed_run_logs_what_an_uninterrupted_run_logs(tmp_path, loss, schedule):
    from siamdiag.train.checkpoint import load_checkpoint

    train(tmp_path / "whole", loss=loss, margin_schedule=schedule)
    calls = {"n": 0}

    def stop_after_a_while():
        calls["n"] += 1
        return calls["n"] > 130

    cfg = TrainConfig(**{**FAST, "loss": loss, "margin_schedule": schedule}).validate()
    first = Trainer(cfg, str(tmp_path / "part"), CPU).run(stop_requested=stop_after_a_while)
    assert first.stopped == "interrupted" and 0 < first.steps_done < 240
    assert len(rows(tmp_path / "part")) == first.steps_done
    # a crash after the checkpoint leaves extra rows behind: resume must drop and re-log them
    with open(tmp_path / "part" / "metrics.csv", "a") as fh:
        fh.write(f"{first.steps_done + 1},0,9.9,9.9,0.001,1,,,,,,0\n")
    resumed = train(tmp_path / "part", checkpoint=load_checkpoint(str(tmp_path / "part")), loss=loss,
                    margin_schedule=schedule)
    assert resumed.stopped == "completed"
    assert (tmp_path / "whole" / "metrics.csv").read_bytes() == (tmp_path / "part" / "metrics.csv").read_bytes()


def test_nonfinite_loss_stops_cleanly_and_is_diverged(tmp_path, capsys):
    code, out = cli(["train", "--data", "synthetic", "--synthetic-samples", "400", "--steps", "300",
                     "--optimizer", "sgd", "--lr", "1e30", "--no-normalize", "--out", str(tmp_path / "run")], capsys)
    log = rows(tmp_path / "run")
    assert code == 1 and "diverged" in out.out
    assert len(log) < 300 and log[-1]["loss"] in ("nan", "inf")
    assert f"stopped at step {len(log)}:" in out.err
    assert all(r["loss"] not in ("nan", "inf") for r in log[:-1])
    # the non-finite state is never checkpointed: any checkpoint predates the blow-up
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        assert state["step"] < len(log) and all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoint_loads_weights_only_and_config_is_complete(tmp_path):
    train(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 240 and set(state) >= {"model", "optimizer", "margin"}
    document = json.loads((tmp_path / "config.json").read_text())
    assert document["config"] == TrainConfig(**FAST).to_dict()
    assert document["seed"] == 0 and document["device"] == "cpu"
    assert {"torch", "siamdiag", "python", "numpy", "scikit-learn"} <= set(document["versions"])
    assert document["resolved"]["total_steps"] == 240 and document["resolved"]["model"] == "mlp"


SMALL = ["--data", "synthetic", "--synthetic-samples", "400", "--synthetic-dim", "8", "--hidden", "32",
         "--embedding-dim", "8", "--batch-size", "32"]


def test_cli_refuses_to_overwrite_a_run_and_resume_refuses_changes(tmp_path, capsys):
    run = str(tmp_path / "run")
    code, _ = cli(["train", *SMALL, "--steps", "30", "--out", run, "--no-gate"], capsys)
    assert code == 0
    code, out = cli(["train", *SMALL, "--steps", "30", "--out", run], capsys)
    assert code == 2 and "already holds a run" in out.err
    code, out = cli(["train", "--resume", run, "--lr", "0.1"], capsys)
    assert code == 2 and "--lr" in out.err
    code, out = cli(["train", "--resume", run, "--steps", "60", "--no-gate"], capsys)
    assert code == 0 and len(rows(run)) == 60


def test_resume_without_a_checkpoint_and_after_a_cut_row_logs_each_step_once(tmp_path, capsys):
    # found: killed before its first checkpoint, a resumed run started again at step 1 and
    # appended (steps 1-50 twice); after a full disk, the next row was glued onto a cut one
    whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
    args = [*SMALL, "--steps", "120", "--checkpoint-every", "1000", "--no-gate"]
    assert cli(["train", *args, "--out", whole], capsys)[0] == 0
    assert cli(["train", *args, "--out", part], capsys)[0] == 0
    os.remove(os.path.join(part, "checkpoint.pt"))   # as if killed before the first checkpoint
    with open(os.path.join(part, "metrics.csv"), encoding="utf-8") as fh:
        lines = fh.readlines()
    with open(os.path.join(part, "metrics.csv"), "w", encoding="utf-8") as fh:
        fh.writelines(lines[:51] + [lines[51][:9]])    # 50 rows, then a row cut short
    code, _ = cli(["train", "--resume", part, "--no-gate"], capsys)
    assert code == 0
    with open(os.path.join(whole, "metrics.csv"), "rb") as a, open(os.path.join(part, "metrics.csv"), "rb") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("args,fragment", [
    (["--data", "nothing.bin"], "--data"),
    (["--margin-schedule", "adaptive"], "triplet only"),
    (["--loss", "infonce", "--margin", "1"], "InfoNCE has no margin"),
    (["--steps", "0"], "--steps"),
    (["--grid", "bogus=1"], "unknown key"),
])
def test_cli_bad_options_exit_2_with_a_message(tmp_path, capsys, args, fragment):
    code, out = cli(["train", *SMALL, "--out", str(tmp_path / "r"), *args], capsys)
    assert code == 2 and fragment in out.err
    assert not (tmp_path / "r" / "metrics.csv").exists()


@pytest.mark.slow
def test_grid_trains_every_combination_and_reports_them_together(tmp_path, capsys):
    code, out = cli(["train", *SMALL, "--steps", "40", "--grid", "lr=0.001,0.003", "--grid", "loss=contrastive,triplet",
                     "--jobs", "2", "--out", str(tmp_path / "sweep"), "--format", "json", "--no-gate"], capsys)
    assert code == 0
    report = json.loads(out.out)
    names = sorted(r["run"] for r in report["runs"])
    assert names == sorted(f"lr={lr}-loss={loss}" for lr in ("0.001", "0.003") for loss in ("contrastive", "triplet"))
    for name in names:
        assert len(rows(tmp_path / "sweep" / name)) == 40


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_keeps_the_log_and_a_checkpoint(tmp_path, stop_signal, code):
    # found: SIGTERM (schedulers, CI, docker stop) killed the run at once, losing unflushed rows
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "siamdiag", "train", *SMALL, "--steps", "1000000", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.csv").exists():
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(stop_signal)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "--resume" in err
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    log = rows(run)
    assert int(log[-1]["step"]) == state["step"] > 0
    assert [int(r["step"]) for r in log] == list(range(1, state["step"] + 1))


def test_off_a_terminal_train_says_its_directory_and_its_progress(tmp_path):
    # found: with stderr not a terminal (CI) train said nothing for the whole run, and its
    # directory appeared nowhere (the table shows only the basename)
    run, json_report = tmp_path / "run", tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "siamdiag", "train", *SMALL, "--steps", "2000", "--out", str(run),
                           "--progress-every", "0.1", "--format", "json", "--report", f"json={json_report}"],
                          capture_output=True, text=True, timeout=600)
    report = json.loads(json_report.read_text())
    assert done.returncode == (0 if report["gate"] == "pass" else 1)
    lines = done.stderr.splitlines()
    assert lines[0] == f"siamdiag train: run directory {run}"
    progress = [re.fullmatch(r"siamdiag train: step [\d,]+/2,000, loss \S+, grad norm \S+(, [\d.]+ steps/s)?", line)
                for line in lines[1:]]
    assert all(progress) and any(line[1] for line in progress)  # a speed once there was a line before
    assert json.loads(done.stdout) == report
    assert [(r["run"], r["points"]) for r in report["runs"]] == [("run", 2000)]


def test_quiet_train_prints_nothing_and_writes_its_reports(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "siamdiag", "train", *SMALL, "--steps", "60", "--out", str(run),
                           "-q", "--progress-every", "0.1", "--report", f"json={tmp_path / 'r.json'}",
                           "--report", str(tmp_path / "r.xml")], capture_output=True, text=True, timeout=600)
    assert (done.stdout, done.stderr) == ("", "")
    report = json.loads((tmp_path / "r.json").read_text())
    assert done.returncode == (0 if report["gate"] == "pass" else 1)
    assert report["runs"][0]["run"] == "run" and "<testsuite" in (tmp_path / "r.xml").read_text()
    assert len(rows(run)) == 60


def test_a_report_over_a_file_of_the_run_is_refused_before_training(tmp_path, capsys):
    run = tmp_path / "run"
    code, out = cli(["train", *SMALL, "--steps", "30", "--out", str(run), "--report", f"json={run / 'metrics.csv'}"],
                    capsys)
    assert code == 2 and "file of the run" in out.err and not run.exists()


def test_every_configuration_field_is_a_cli_option():
    from dataclasses import fields

    from siamdiag.cli.train_command import train as train_command

    options = {p.name for p in train_command.params}
    assert {f.name for f in fields(TrainConfig)} <= options


def test_a_grid_run_logs_what_the_same_configuration_logs_alone(tmp_path):
    # found: a grid trained with cpu_count // jobs threads and a single run with the pinned one, so on
    # a machine of 2+ cores SGD at lr 5 (chaotic from step 2) logged other rows in a grid than alone
    args = ["train", "--optimizer", "sgd", "--steps", "30", "--seed", "0", "--no-gate", "-q"]
    alone = subprocess.run([sys.executable, "-m", "siamdiag", *args, "--lr", "5", "--out", str(tmp_path / "alone")],
                           capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr
    grid = subprocess.run([sys.executable, "-m", "siamdiag", *args, "--grid", "lr=5", "--jobs", "1",
                           "--out", str(tmp_path / "sweep")], capture_output=True, text=True, timeout=300)
    assert grid.returncode == 0, grid.stderr
    (log,) = (tmp_path / "sweep").glob("*/metrics.csv")
    assert log.read_bytes() == (tmp_path / "alone" / "metrics.csv").read_bytes()
