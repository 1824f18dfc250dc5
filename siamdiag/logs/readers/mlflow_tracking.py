"""Runs on any MLflow tracking URI (a tracking server, Databricks, ...), read through
``MlflowClient`` (``search_runs`` and ``get_metric_history``). Needs the 'mlflow' extra
(mlflow-skinny). ``sqlite:///`` URIs and file stores are read without it (see ``ingest``)."""
from __future__ import annotations

import contextlib
import math
import os
import socket
import urllib.parse

import numpy as np

from ...errors import InputError
from ..tables import Metric
from .mlflow_db import RunFilter, TrackedRun, from_stored

PAGE = 1000


def _pages(fetch):
    """Every item of an MLflow paged search."""
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = page.token
        if not token:
            return


def require_reachable(uri: str, timeout: float) -> None:
    """An http(s) server that does not accept a connection within ``timeout`` is refused at once:
    MLflow's own retries would take minutes (7 retries with backoff) to say the same."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InputError(uri, f"cannot reach the MLflow tracking server within {timeout:g} s ({why}); "
                              "see --timeout") from None


@contextlib.contextmanager
def bounded_requests(timeout: float):
    """MLflow's HTTP settings for this read or write: each request waits at most ``timeout`` seconds, and
    a failed one is retried twice, a second apart, unless the environment says otherwise."""
    settings = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def read_tracking_uri(uri: str, wanted: RunFilter = RunFilter(), pick=None, timeout: float = 30.0) -> list[TrackedRun]:
    """The active runs on ``uri`` that ``wanted`` keeps and that logged any metric, with the
    metric histories ``pick`` keeps (metric names -> the names to fetch; all by default).
    ``timeout``: seconds to wait for the server to answer (see ``require_reachable``, ``bounded_requests``)."""
    from mlflow.tracking import MlflowClient

    require_reachable(uri, timeout)
    with bounded_requests(timeout):
        return _read_runs(MlflowClient(tracking_uri=uri), uri, wanted, pick)


def _read_runs(client, uri: str, wanted: RunFilter, pick) -> list[TrackedRun]:
    from mlflow.exceptions import MlflowException

    try:
        experiments = [e for e in _pages(lambda t: client.search_experiments(max_results=PAGE, page_token=t))
                       if wanted.experiment in (None, e.experiment_id, e.name)]
        found = []
        for experiment in experiments:
            for run in _pages(lambda t: client.search_runs([experiment.experiment_id], max_results=PAGE,
                                                           order_by=["attributes.start_time ASC"], page_token=t)):
                name = run.info.run_name or run.info.run_id
                if not wanted.keeps(experiment.experiment_id, experiment.name, name):
                    continue
                series = {}
                keys = sorted(run.data.metrics)
                for key in sorted(pick(keys)) if pick is not None and keys else keys:
                    history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
                    series[key] = Metric(steps=np.array([m.step for m in history], dtype=np.float64),
                                         values=from_stored(np.array([m.value for m in history], dtype=np.float64)))
                if series:
                    found.append(TrackedRun(name=name, run_id=run.info.run_id, experiment=experiment.name,
                                            series=series))
    except MlflowException as exc:
        raise InputError(uri, "MLflow tracking server: " + " ".join(str(exc.message).split())[:300]) from None
    except OSError as exc:   # the server cannot be reached
        raise InputError(uri, f"cannot reach the MLflow tracking server: {exc}") from None
    return found
