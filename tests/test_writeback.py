"""--write-back: each run's verdict, gate and reasons recorded in the tracker that keeps it, written
and read back with the trackers' own libraries (MLflow's client, TensorBoard's EventAccumulator,
DVC's `dvc exp show`, W&B's protobuf records); judging again afterwards gives the same report.
W&B runs are real offline runs (WANDB_MODE=offline), read by siamdiag's W&B reader."""
from __future__ import annotations

import glob
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from siamdiag.cli.main import main
from siamdiag.logs.tables import Tracker
from siamdiag.logs.writeback import Judgement, WriteBackError, write_back

STEPS = 400


def losses(kind: str, seed: int) -> list[float]:
    """A settled loss (stationary) or one that blows up to inf and NaN (diverged)."""
    noise = (0.3 + 0.02 * np.random.default_rng(seed).standard_normal(STEPS)).tolist()
    if kind == "blown":
        noise[-12:] = [10.0 ** k for k in range(1, 10)] + [math.inf, math.nan, math.nan]
    return noise


def analyze_json(capsys, *argv) -> tuple[int, dict, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", *argv, "--format", "json", "--no-github-summary"])
    out, err = capsys.readouterr()
    return exit_.value.code, json.loads(out), err


def judged(report: dict) -> dict:
    """What judging again must give: every run, its verdict, gate, reasons and points."""
    return {r["run"]: (r["verdict"], r["gate"], r["reasons"], r["points"]) for r in report["runs"]}


# --- MLflow -----------------------------------------------------------------------------------

def _mlflow_runs(uri: str) -> dict[str, str]:
    """A settled and a blown run logged with MlflowClient; run name -> run id."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("siamese")
    ids = {}
    for name, kind, seed in (("settled", "settled", 0), ("blown", "blown", 1)):
        run = client.create_run(experiment, run_name=name)
        metrics = [mlflow.entities.Metric("train/loss", v, 1_700_000_000_000 + s, s) for s, v in enumerate(losses(kind, seed))]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_mlflow_tags_written_and_read_back(store, tmp_path, capsys, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3.7+ opens a file store only when told
    path = tmp_path / ("mlflow.db" if store == "sqlite" else "mlruns")
    uri = f"sqlite:///{path}" if store == "sqlite" else path.as_uri()
    ids = _mlflow_runs(uri)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")   # siamdiag allows it for its own call
    code, report, err = analyze_json(capsys, str(path), "--write-back")
    assert code == 1   # the gate still says what the verdicts say
    assert "verdicts written to the trackers of 2 runs" in err
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    for run in report["runs"]:
        tags = client.get_run(ids[run["run"]]).data.tags
        assert tags["siamdiag.verdict"] == run["verdict"] and tags["siamdiag.gate"] == run["gate"]
        assert tags["siamdiag.reason"] == "; ".join(run["reasons"])
        assert tags["mlflow.runName"] == run["run"]   # nothing else changed
    assert {r["run"]: r["verdict"] for r in report["runs"]} == {"settled": "stationary", "blown": "diverged"}
    assert judged(analyze_json(capsys, str(path))[1]) == judged(report)


def test_mlflow_tag_value_cut_to_the_limit(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from siamdiag.logs.tables import Tracker
    from siamdiag.logs.writeback import TAG_VALUE_LIMIT, Judgement, write_back

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _mlflow_runs(uri)["settled"]
    write_back(Tracker("mlflow", uri, run_id), Judgement("nonstationary", "fail", ("x" * 3000, "y" * 3000)))
    reason = mlflow.tracking.MlflowClient(tracking_uri=uri).get_run(run_id).data.tags["siamdiag.reason"]
    assert len(reason) == TAG_VALUE_LIMIT and reason.endswith("…") and reason.startswith("x" * 3000 + "; y")


# --- TensorBoard ------------------------------------------------------------------------------

def test_tensorboard_text_summary_in_a_new_event_file(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for name, kind, seed in (("settled", "settled", 0), ("blown", "blown", 1)):
        writer = EventFileWriter(str(tmp_path / name))
        for step, value in enumerate(losses(kind, seed)):
            writer.add_event(Event(step=step, summary=Summary(value=[Summary.Value(tag="train/loss", simple_value=value)])))
        writer.close()
    originals = {p: pathlib.Path(p).read_bytes() for p in glob.glob(str(tmp_path / "*" / "*tfevents*"))}
    before = analyze_json(capsys, str(tmp_path))[1]
    code, report, _err = analyze_json(capsys, str(tmp_path), "--write-back")
    assert code == 1 and judged(report) == judged(before)
    assert all(pathlib.Path(p).read_bytes() == data for p, data in originals.items())   # never rewritten
    for run in report["runs"]:
        added = glob.glob(os.path.join(run["run"], "*.siamdiag"))
        assert len(added) == 1
        events = EventAccumulator(run["run"], size_guidance={"tensors": 0})
        events.Reload()
        [text] = events.Tensors("siamdiag/verdict")
        assert text.step == run["window"]["last_step"] if run["window"] else 0
        assert text.tensor_proto.string_val[0].decode().startswith(f"**{run['verdict']}** (gate: {run['gate']})")
        assert events.Scalars("train/loss")[-1].step == STEPS - 1   # the run's own scalars, as they were
    # judged again: the same runs (the new event file is the same writer's), the text not read as a series
    assert judged(analyze_json(capsys, str(tmp_path))[1]) == judged(before)


# --- DVC --------------------------------------------------------------------------------------

def _dvclive_run(root, kind: str, seed: int):
    from dvclive import Live

    with Live(str(root / "dvclive"), save_dvc_exp=False) as live:
        for value in losses(kind, seed)[:-3]:   # DVCLive refuses NaN in its summary: the blown run stops at inf
            live.log_metric("train/loss", value)
            live.next_step()
    return root / "dvclive"


def test_dvclive_metrics_json_keeps_its_keys_and_dvc_exp_shows_the_verdict(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dvclive")
    monkeypatch.chdir(tmp_path)
    directory = _dvclive_run(tmp_path, "settled", 0)
    original = json.loads((directory / "metrics.json").read_text())
    code, report, _err = analyze_json(capsys, "dvclive", "--write-back")
    assert code == 0 and report["runs"][0]["verdict"] == "stationary"
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics == {**original, "siamdiag": {"verdict": "stationary", "gate": "pass",
                                                "reason": "; ".join(report["runs"][0]["reasons"])}}
    assert judged(analyze_json(capsys, "dvclive")[1]) == judged(report)
    dvc, git = shutil.which("dvc"), shutil.which("git")
    if dvc and git:   # dvc exp show reads the metrics file DVCLive declared in dvc.yaml
        identity = ["-c", "user.name=siamdiag", "-c", "user.email=siamdiag@example.com"]
        for command in (["git", "init", "-q"], [dvc, "init", "-q"], ["git", "add", "-A"],
                        ["git", *identity, "commit", "-qm", "run"]):
            subprocess.run(command, check=True, capture_output=True)
        shown = json.loads(subprocess.run([dvc, "exp", "show", "--json"], check=True, capture_output=True,
                                          text=True, timeout=120).stdout)
        workspace = next(row for row in shown if row["rev"] == "workspace")
        assert workspace["data"]["metrics"]["dvclive/metrics.json"]["data"]["siamdiag"]["verdict"] == "stationary"


def test_a_tracker_that_refuses_is_exit_2_naming_the_run_after_the_report(tmp_path, capsys, monkeypatch):
    """A metrics.json that cannot be replaced (here a directory in its place): the report is still
    written, each failing run gets one line, and the exit code is 2."""
    pytest.importorskip("dvclive")
    monkeypatch.chdir(tmp_path)   # DVCLive writes dvc.yaml in the working directory's repository
    directory = _dvclive_run(tmp_path, "settled", 0)
    (directory / "metrics.json").unlink()
    (directory / "metrics.json").mkdir()
    code, report, err = analyze_json(capsys, str(directory), "--write-back")
    assert code == 2 and report["runs"][0]["verdict"] == "stationary"
    [line] = [line for line in err.splitlines() if "error" in line]
    assert line.startswith(f"siamdiag: error: write-back to {directory}: {directory / 'metrics.json'}")


# --- W&B --------------------------------------------------------------------------------------

@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """Two real offline W&B runs in tmp_path/wandb/: a settled and a blown loss."""
    wandb = pytest.importorskip("wandb")
    for name in ("WANDB_DIR", "WANDB_RUN_ID", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    ids = {}
    for name, kind, seed in (("settled", "settled", 0), ("blown", "blown", 1)):
        run = wandb.init(project="siamese", name=name, dir=str(tmp_path),
                         settings=wandb.Settings(console="off", x_disable_stats=True, disable_git=True))
        for step, value in enumerate(losses(kind, seed)):
            run.log({"train/loss": value, "lr": 0.1}, step=step)
        run.finish()
        ids[name] = run.id
    return tmp_path, ids


def _summary(directories) -> dict:
    """The run summary as the records of its transaction logs set it (later updates win)."""
    from siamdiag.logs.readers.wandb_run import records, run_log

    summary = {}
    for directory in sorted(directories, key=os.path.basename):
        for record in records(run_log(directory)):
            if record.WhichOneof("record_type") == "summary":
                summary.update({item.key or ".".join(item.nested_key): json.loads(item.value_json)
                                for item in record.summary.update})
    return summary


def test_wandb_offline_runs_read_and_summary_written_back(wandb_offline, capsys):
    root, ids = wandb_offline
    before = analyze_json(capsys, str(root / "wandb"))[1]
    verdicts = {os.path.basename(r["run"]).rsplit("-", 1)[1]: r["verdict"] for r in before["runs"]}
    assert verdicts == {ids["settled"]: "stationary", ids["blown"]: "diverged"}
    assert all(r["points"] == STEPS for r in before["runs"])
    code, report, _err = analyze_json(capsys, str(root / "wandb"), "--write-back")
    assert code == 1 and judged(report) == judged(before)
    for run in report["runs"]:
        run_id = run["run"].rsplit("-", 1)[1]
        directories = glob.glob(str(root / "wandb" / f"offline-run-*-{run_id}"))
        assert len(directories) == 2   # the run, and W&B's offline continuation of it
        assert _summary(directories)["siamdiag"] == {"verdict": run["verdict"], "gate": run["gate"],
                                                     "reason": "; ".join(run["reasons"])}
    # the continuation is the same run: no phantom run, the same verdicts, no note
    again = analyze_json(capsys, str(root / "wandb"))[1]
    assert judged(again) == judged(before) and [r["notes"] for r in again["runs"]] == [r["notes"] for r in before["runs"]]


def test_wandb_run_directory_without_the_package_names_the_extra(wandb_offline, capsys, monkeypatch):
    root, _ids = wandb_offline
    monkeypatch.setattr("siamdiag.logs.ingest.wandb_installed", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", str(root / "wandb")])
    assert exit_.value.code == 2
    assert "pip install 'siamdiag[wandb]'" in capsys.readouterr().err


# --- callbacks --------------------------------------------------------------------------------

def test_hf_callback_writes_the_verdict_to_the_mlflow_run_and_tensorboard_it_reported_to(tmp_path, monkeypatch):
    """A real Trainer reporting to MLflow (a file store) and TensorBoard: at the end of training the
    callback judges its own log and both trackers hold the verdict siamdiag analyze gives that log."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import siamdiag
    from tests.test_callbacks import _hf_trainer

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # the Trainer's own MLflow callback needs it
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hf")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    callback = siamdiag.SiamdiagTrainerCallback(write_back=True)
    _hf_trainer(tmp_path, callback, report_to=["mlflow", "tensorboard"])
    [expected] = siamdiag.analyze(str(tmp_path / "out" / "siamdiag_metrics.csv")).runs
    assert callback.verdict.verdict == expected.verdict.value and callback.verdict.reasons == expected.reasons
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("hf").experiment_id])
    assert run.data.tags["siamdiag.verdict"] == expected.verdict.value
    assert run.data.tags["siamdiag.gate"] == callback.verdict.gate
    assert "loss" in run.data.metrics   # the Trainer's own run, not a new one
    [tensorboard_dir] = glob.glob(str(tmp_path / "out" / "runs" / "*"))
    events = EventAccumulator(tensorboard_dir, size_guidance={"tensors": 0})
    events.Reload()
    [text] = events.Tensors("siamdiag/verdict")
    assert text.tensor_proto.string_val[0].decode().startswith(f"**{expected.verdict.value}**")
    assert text.step == expected.window.last_step


def test_lightning_callback_writes_the_verdict_to_its_mlflow_and_tensorboard_loggers(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    pl = pytest.importorskip("lightning.pytorch")
    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import siamdiag
    from siamdiag.lightning import SiamdiagCallback

    class Encoder(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4000, 8), torch.randn(4000, 1)),
                                       batch_size=16)
    store = (tmp_path / "mlruns").as_uri()
    loggers = [TensorBoardLogger(str(tmp_path / "tb")), MLFlowLogger("lt", tracking_uri=store)]
    callback = SiamdiagCallback(str(tmp_path / "siamdiag_metrics.csv"), write_back=True)
    trainer = pl.Trainer(max_epochs=1, logger=loggers, callbacks=[callback], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(Encoder(), data)
    [expected] = siamdiag.analyze(str(tmp_path / "siamdiag_metrics.csv")).runs
    assert callback.verdict.verdict == expected.verdict.value
    tags = mlflow.tracking.MlflowClient(tracking_uri=store).get_run(loggers[1].run_id).data.tags
    assert tags["siamdiag.verdict"] == expected.verdict.value and tags["siamdiag.gate"] == callback.verdict.gate
    events = EventAccumulator(loggers[0].log_dir, size_guidance={"tensors": 0})
    events.Reload()
    [text] = events.Tensors("siamdiag/verdict")
    assert text.tensor_proto.string_val[0].decode().startswith(f"**{expected.verdict.value}**")


def test_a_wandb_continuation_never_lands_in_a_directory_of_the_run(tmp_path):
    """W&B names a run directory after its start second: a write-back in the second the run
    started would be written into the run's own directory, so it waits for the next second."""
    import time

    from siamdiag.logs.writeback import _after_the_runs_last_second

    now = time.strftime("%Y%m%d_%H%M%S")
    (tmp_path / f"offline-run-{now}-abc123").mkdir()
    _after_the_runs_last_second(str(tmp_path), "abc123")
    assert time.strftime("%Y%m%d_%H%M%S") != now


KERAS_WRITE_BACK = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import keras, mlflow, numpy as np
from siamdiag.integrations.keras import SiamdiagKerasCallback
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("keras")
rng = np.random.default_rng(0)
x = rng.standard_normal((2048, 4)).astype("float32")
y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None] + 0.5 * rng.standard_normal((2048, 1)).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.02), loss="mse")
callback = SiamdiagKerasCallback(sys.argv[2], write_back=True)
with mlflow.start_run():
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
print(callback.verdict.verdict, callback.verdict.gate)
"""


@pytest.mark.slow   # Keras trains in a child process
def test_keras_callback_writes_the_verdict_to_the_active_mlflow_run(tmp_path):
    """Real Keras (torch backend) inside mlflow.start_run() on a SQLite store: the run holds the verdict siamdiag
    analyze gives the callback's log."""
    import importlib.util

    mlflow = pytest.importorskip("mlflow")
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("needs keras and torch")   # (keras is imported in the child, on the torch backend)
    import siamdiag

    uri, log = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "keras.csv"
    done = subprocess.run([sys.executable, "-c", KERAS_WRITE_BACK, uri, str(log)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [expected] = siamdiag.analyze(str(log)).runs
    verdict, gate = done.stdout.split()
    assert verdict == expected.verdict.value
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("keras").experiment_id])
    assert (run.data.tags["siamdiag.verdict"], run.data.tags["siamdiag.gate"]) == (verdict, gate)


@pytest.mark.parametrize("server", ["nothing listens", "never answers"])
def test_writing_tags_to_an_mlflow_server_that_does_not_answer_gives_up_within_the_timeout(server):
    """The write-back is bounded by --timeout as reading is: MLflow's own retries (7, with backoff, each
    waiting 120 s for an answer) would hold a CI job for minutes after its report is out. A port where
    nothing listens is refused at once; a server that accepts connections and never answers is given
    the timeout per request and two retries."""
    pytest.importorskip("mlflow")
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if server == "nothing listens":
        listener.close()
    else:
        listener.listen(16)   # connections complete in the backlog; nothing is ever read or answered
    outcome = {}

    def write():
        started = time.monotonic()
        try:
            write_back(Tracker("mlflow", f"http://127.0.0.1:{port}", "0" * 32), Judgement("stationary", "pass"),
                       timeout=2)
        except WriteBackError as exc:
            outcome["error"] = str(exc)
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=write, daemon=True)
    worker.start()
    worker.join(60)
    listener.close()
    assert not worker.is_alive(), "the write-back was still waiting after 60 s"
    assert outcome["error"].startswith(f"MLflow run {'0' * 32} at http://127.0.0.1:{port}: "), outcome
    assert outcome["seconds"] < (1 if server == "nothing listens" else 20), outcome
