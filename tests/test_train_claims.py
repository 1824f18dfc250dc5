"""The behaviours siamdiag train promises, end to end on the bundled digits: the default run
settles, a learning rate high enough to blow up fails the gate, cosine loss grows embedding norms,
and the adaptive margin holds the easy-triplet fraction nearer its target than a fixed margin.
Multi-seed figures are in benchmarks/train_figures.py; these tests guard the direction on a few
seeds each."""
import json
import os

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow   # minutes of training: the full run (-m 'not gpu') only

from siamdiag.cli.main import main  # noqa: E402


def train(tmp_path, name, *args):
    out = tmp_path / name
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(out), "--format", "json", *args])
    return exit_info.value.code, out


def test_default_run_reaches_stationary(tmp_path, capsys):
    code, _ = train(tmp_path, "default")
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["runs"][0]["verdict"] == "stationary"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learning_rate_that_blows_up_is_caught(tmp_path, capsys, seed):
    code, out = train(tmp_path, "hot", "--lr", "1", "--no-normalize", "--seed", str(seed))
    verdict = json.loads(capsys.readouterr().out)["runs"][0]["verdict"]
    # a run that blows up either ends non-finite, wanders, or kills every unit (a constant loss)
    assert code == 1 and verdict in ("diverged", "nonstationary", "degenerate")


def test_cosine_loss_grows_embedding_norms(tmp_path, capsys):
    for seed in (0, 1, 2):
        train(tmp_path, f"cos{seed}", "--loss", "cosine", "--no-normalize", "--weight-decay", "0",
              "--steps", "1000", "--seed", str(seed), "--no-gate")
        log = pd.read_csv(os.path.join(tmp_path, f"cos{seed}", "metrics.csv"))
        assert log["embedding_norm"].iloc[-100:].mean() > 1.5 * log["embedding_norm"].iloc[:20].mean()


def easy_gap(log: pd.DataFrame, target: float = 0.5) -> float:
    """Mean distance of the per-epoch easy-triplet fraction from its target, second half."""
    per_epoch = log.groupby("epoch")["easy_fraction"].mean()
    return float((per_epoch.iloc[len(per_epoch) // 2:] - target).abs().mean())


def test_adaptive_margin_holds_easy_fraction_nearer_its_target(tmp_path, capsys):
    gaps = {}
    for schedule in ("fixed", "adaptive"):
        train(tmp_path, schedule, "--loss", "triplet", "--margin-schedule", schedule, "--steps", "1500",
              "--easy-target", "0.5", "--no-gate")
        gaps[schedule] = easy_gap(pd.read_csv(os.path.join(tmp_path, schedule, "metrics.csv")))
    assert gaps["fixed"] > 0.3 and gaps["adaptive"] < gaps["fixed"] / 2


@pytest.mark.parametrize("seed", [0, 1])
def test_sgd_at_lr_5_fails_the_gate_with_a_reason_to_act_on(tmp_path, capsys, seed):
    # found: stationary at ~0.10 from step 150 with embedding norms of 300-600 passed the gate
    code, _ = train(tmp_path, "lr5", "--optimizer", "sgd", "--lr", "5", "--seed", str(seed))
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert code == 1 and run["verdict"] == "degenerate"
    stalled = next(f for f in run["findings"] if f["name"] == "stalled")
    assert stalled["gating"] and stalled["value"] >= 10   # the embedding norm's growth factor
    assert any("lower the learning rate" in r for r in run["reasons"])


def test_step_lr_schedule_is_judged_after_its_last_decay(tmp_path, capsys):
    # found: `--lr-schedule step` (x0.1 at 1/2 and 3/4 of training) was a level shift
    code, _ = train(tmp_path, "step", "--lr-schedule", "step")
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert code == 0 and run["verdict"] == "stationary"
    assert run["window"]["lr_change"] == {"step": 4501.0, "ratio": pytest.approx(0.1)}
    assert run["window"]["first_step"] >= 4501 and "last lr change" in run["notes"][0]
