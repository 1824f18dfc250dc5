"""The behaviours siamdiag train promises, end to end on the bundled digits: the default run
settles, a learning rate high enough to blow up is caught, cosine loss grows embedding norms,
and the adaptive margin holds the easy-triplet fraction nearer its target than a fixed margin.
Multi-seed figures are in benchmarks/train_figures.py; these tests guard the direction on a few
seeds each."""
import json
import os

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from siamdiag.cli import main  # noqa: E402


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
    assert code == 1 and verdict in ("diverged", "nonstationary")


def test_cosine_loss_grows_embedding_norms(tmp_path, capsys):
    for seed in (0, 1, 2):
        train(tmp_path, f"cos{seed}", "--loss", "cosine", "--no-normalize", "--weight-decay", "0",
              "--steps", "1000", "--seed", str(seed), "--no-gate")
        log = pd.read_csv(os.path.join(tmp_path, f"cos{seed}", "metrics.csv"))
        assert log["embedding_norm"].iloc[-100:].mean() > 1.5 * log["embedding_norm"].iloc[:20].mean()
