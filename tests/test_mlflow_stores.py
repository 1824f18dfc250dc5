"""MLflow database stores and tracking URIs, written by MLflow itself (the 'dev' extra installs
mlflow; the stores are local files, the server runs on 127.0.0.1). The oracle for every series is
what MLflow's own client returns for it, with its NaN/inf encoding undone."""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from siamdiag import analyze
from siamdiag.cli.main import main
from siamdiag.logs.ingest import ReadOptions, read_runs
from siamdiag.logs.readers.mlflow_db import RunFilter, from_stored

mlflow = pytest.importorskip("mlflow")

STEPS = 400


def _losses(kind: str, seed: int) -> list[float]:
    """Loss series whose verdict is known by construction: i.i.d. noise around a level
    (stationary), and one that blows up to inf and NaN (diverged)."""
    rng = np.random.default_rng(seed)
    noise = 0.3 + 0.02 * rng.standard_normal(STEPS)
    if kind == "settled":
        return noise.tolist()
    blown = noise.tolist()
    blown[-12:] = [10.0 ** k for k in range(1, 10)] + [math.inf, math.nan, math.nan]
    return blown


RUNS = {("siamese", "settled-0"): ("settled", 0), ("siamese", "settled-1"): ("settled", 1),
        ("siamese", "blown-0"): ("blown", 2), ("baseline", "settled-9"): ("settled", 9)}


def _write_store(uri: str) -> None:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    for (experiment, name), (kind, seed) in RUNS.items():
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=name)
        metrics = [mlflow.entities.Metric("train/loss", v, 1_700_000_000_000 + s, s)
                   for s, v in enumerate(_losses(kind, seed))]
        metrics += [mlflow.entities.Metric("val/loss", 2.0 + s % 3, 1_700_000_000_000 + s, s) for s in range(STEPS)]
        for start in range(0, len(metrics), 500):
            client.log_batch(run.info.run_id, metrics=metrics[start:start + 500])
        client.set_terminated(run.info.run_id)
    deleted = client.create_run(client.get_experiment_by_name("siamese").experiment_id, run_name="deleted-run")
    client.log_metric(deleted.info.run_id, "train/loss", 1.0, step=0)
    client.delete_run(deleted.info.run_id)
    client.create_run(client.get_experiment_by_name("siamese").experiment_id, run_name="no-metrics")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    _write_store(f"sqlite:///{path}")
    return str(path)


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_sqlite_store_reads_the_runs_mlflow_logged(store):
    before = _digest(store)
    runs = {r.name: r for r in read_runs([store])}
    assert _digest(store) == before   # opened read-only
    # active runs with metrics only (a deleted run and a run without metrics are not runs to judge);
    # two experiments: names carry the experiment
    assert sorted(runs) == sorted(f"{e}/{n}" for e, n in RUNS)
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{store}")
    for (experiment, name), (kind, seed) in RUNS.items():
        run = runs[f"{experiment}/{name}"]
        [tracked] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                       filter_string=f"attributes.run_name = '{name}'")
        history = client.get_metric_history(tracked.info.run_id, "train/loss")
        np.testing.assert_array_equal(run.metrics["loss"].values, from_stored(np.array([m.value for m in history])))
        np.testing.assert_array_equal(run.metrics["loss"].values, _losses(kind, seed))  # inf and NaN come back
        assert run.metrics["loss"].steps.tolist() == list(range(STEPS))


def test_sqlite_store_verdicts_filters_and_walk(store, tmp_path):
    verdicts = {r.run: r.verdict for r in analyze([store]).runs}
    assert verdicts == {"siamese/settled-0": "stationary", "siamese/settled-1": "stationary",
                        "siamese/blown-0": "diverged", "baseline/settled-9": "stationary"}
    only = read_runs([store], ReadOptions(mlflow_runs=RunFilter(experiment="siamese", run_name="settled-*")))
    assert [r.name for r in only] == ["settled-0", "settled-1"]   # one experiment: plain run names
    experiment_id = mlflow.tracking.MlflowClient(f"sqlite:///{store}").get_experiment_by_name("baseline").experiment_id
    assert [r.name for r in read_runs([store], ReadOptions(mlflow_runs=RunFilter(experiment=experiment_id)))] \
        == ["settled-9"]
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(store, project / "mlflow.db")
    (project / "notes.db").write_bytes(b"not a database")   # a .db that is not MLflow's is passed over
    assert len(read_runs([str(project)])) == 4


def test_cli_tracking_uri_flag_setting_and_environment(store, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = lambda argv: pytest.raises(SystemExit, main, argv).value.code  # noqa: E731
    assert code(["analyze", "--mlflow", f"sqlite:///{store}", "--run-name", "blown-*", "--format", "json"]) == 1
    assert '"verdict": "diverged"' in capsys.readouterr().out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    assert code(["analyze", "--experiment", "baseline"]) == 0   # no PATHS: the environment's tracking URI
    assert "settled-9" in capsys.readouterr().out
    (tmp_path / "pyproject.toml").write_text(f'[tool.siamdiag]\nmlflow = "sqlite:///{store}"\nexperiment = "nope"\n')
    assert code(["analyze"]) == 2
    assert "no MLflow run with metrics matches the experiment / run-name filter" in capsys.readouterr().err
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "pyproject.toml").unlink()
    assert code(["analyze"]) == 2
    assert "nothing to read" in capsys.readouterr().err
    assert code(["analyze", "-o", store, store]) == 2   # never written over: it is an input
    assert "one of the input logs" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow   # starts an MLflow server
def test_tracking_server_through_mlflow_client(store, tmp_path):
    """A real `mlflow server` on 127.0.0.1 serving the store: read through MlflowClient, the
    same runs and values as the database read directly."""
    if shutil.which("mlflow") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "mlflow")):
        pytest.skip("the mlflow server is not installed")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        served = read_runs([], ReadOptions(tracking_uri=f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    direct = {r.name: r for r in read_runs([store])}
    assert sorted(r.name for r in served) == sorted(direct)
    for run in served:
        for role in ("loss",):
            np.testing.assert_array_equal(run.metrics[role].values, direct[run.name].metrics[role].values)
            np.testing.assert_array_equal(run.metrics[role].steps, direct[run.name].metrics[role].steps)


def _write_contract_runs(uri: str) -> None:
    """Two experiments each with a run named seed-0, a diverged run, a deleted run and a deleted
    experiment's run: what every MLflow source must name and filter alike."""
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    ids = {name: client.create_experiment(name) for name in ("a", "b", "gone")}
    for experiment, name, kind, seed in (("a", "seed-0", "settled", 0), ("b", "seed-0", "settled", 1),
                                         ("a", "blown", "blown", 2), ("a", "deleted", "settled", 3),
                                         ("gone", "trashed", "settled", 4)):
        run = client.create_run(ids[experiment], run_name=name)
        client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric("loss", v, 1_700_000_000_000 + s, s)
                                                   for s, v in enumerate(_losses(kind, seed))])
        client.set_terminated(run.info.run_id)
        if name == "deleted":
            client.delete_run(run.info.run_id)
    client.delete_experiment(ids["gone"])   # the file store moves it to .trash/


def test_the_mlflow_sources_name_and_filter_runs_alike(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3 keeps its file store behind this switch
    _write_contract_runs(f"file://{tmp_path / 'mlruns'}")
    _write_contract_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert (tmp_path / "mlruns" / ".trash").is_dir()
    expected = {"a/seed-0": "stationary", "b/seed-0": "stationary", "a/blown": "diverged"}
    from siamdiag.logs.readers.mlflow_tracking import read_tracking_uri
    through_client = read_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")   # what a tracking server returns
    assert sorted(f"{r.experiment}/{r.name}" for r in through_client) == sorted(expected)
    for source in (str(tmp_path / "mlruns"), str(tmp_path / "mlflow.db"), str(tmp_path)):
        runs = read_runs([source]) if source != str(tmp_path) else \
            read_runs([], ReadOptions(tracking_uri=f"file://{tmp_path / 'mlruns'}"))
        assert sorted(r.name for r in runs) == sorted(expected), source
        assert {r.run: r.verdict for r in analyze([source] if source != str(tmp_path) else [str(tmp_path / "mlruns")]).runs} \
            == expected
        for run in runs:
            kind, seed = {"a/seed-0": ("settled", 0), "b/seed-0": ("settled", 1), "a/blown": ("blown", 2)}[run.name]
            np.testing.assert_array_equal(run.metrics["loss"].values, _losses(kind, seed))
    # one experiment read: plain run names, from every source
    for source in (str(tmp_path / "mlruns"), str(tmp_path / "mlflow.db")):
        assert sorted(r.name for r in read_runs([source], ReadOptions(mlflow_runs=RunFilter(experiment="a")))) \
            == ["blown", "seed-0"]


def test_a_store_without_latest_metrics_lists_a_runs_metrics_from_their_history(store, tmp_path):
    """The metric names come from MLflow's latest_metrics table (one row per run and metric);
    a store without it gives the same runs, its history scanned for the names."""
    bare = tmp_path / "bare.db"
    shutil.copy(store, bare)
    with contextlib.closing(sqlite3.connect(bare)) as db:
        db.execute("DROP TABLE latest_metrics")
        db.commit()
    got, expected = read_runs([str(bare)]), read_runs([store])
    assert [r.name for r in got] == [r.name for r in expected] and len(got) == 4
    for a, b in zip(got, expected):
        assert a.metrics.keys() == b.metrics.keys()
        for key in a.metrics:
            np.testing.assert_array_equal(a.metrics[key].steps, b.metrics[key].steps)
            np.testing.assert_array_equal(a.metrics[key].values, b.metrics[key].values)


def test_only_the_metrics_judged_are_fetched(store, monkeypatch):
    fetched = []
    original = mlflow.tracking.MlflowClient.get_metric_history
    monkeypatch.setattr(mlflow.tracking.MlflowClient, "get_metric_history",
                        lambda self, run_id, key: fetched.append(key) or original(self, run_id, key))
    from siamdiag.logs.ingest import read_tracking

    monkeypatch.setattr("siamdiag.logs.ingest.local_store", lambda uri: None)   # through MlflowClient, as a server is
    runs = read_tracking(f"sqlite:///{store}", ReadOptions())
    assert len(runs) == 4 and set(fetched) == {"train/loss"}   # val/loss is never fetched


def test_an_unreachable_tracking_server_fails_at_once_in_one_line(capsys):
    port = _free_port()   # nothing listens there
    started = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--mlflow", f"http://127.0.0.1:{port}", "--timeout", "5"])
    assert exc.value.code == 2 and time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"siamdiag: error: http://127.0.0.1:{port}: cannot reach the MLflow "
                                                   "tracking server within 5 s"), err
