"""torchrun with two CPU processes (gloo) logs what one process logs for the same global batch."""
import csv
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow   # two torchrun processes: the full run (-m 'not gpu') only

ARGS = ["train", "--data", "synthetic", "--synthetic-samples", "400", "--synthetic-dim", "8", "--hidden", "32",
        "--embedding-dim", "8", "--batch-size", "32", "--steps", "80", "--no-gate", "--device", "cpu"]
NUMERIC = ["loss", "grad_norm", "lr", "margin", "pos_dist", "neg_dist", "easy_fraction", "active_fraction",
           "embedding_norm"]


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run(cmd, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_two_gloo_processes_log_what_one_process_logs(tmp_path, loss):
    single, multi = tmp_path / "single", tmp_path / "ddp"
    run([sys.executable, "-m", "siamdiag", *ARGS, "--loss", loss, "--out", str(single)])
    done = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "siamdiag", *ARGS, "--loss", loss, "--out", str(multi)])
    assert done.stdout.count("gate:") == 1  # the verdict is printed once, by rank 0
    a, b = read(single / "metrics.csv"), read(multi / "metrics.csv")
    assert len(a) == len(b) == 80
    for ra, rb in zip(a, b):
        assert ra["step"] == rb["step"] and ra["nonfinite"] == rb["nonfinite"]
        for col in NUMERIC:
            if ra[col] == "":
                assert rb[col] == ""
            else:
                assert float(rb[col]) == pytest.approx(float(ra[col]), rel=2e-4, abs=1e-6), (ra["step"], col)
    assert '"world_size": 2' in (multi / "config.json").read_text()
