"""Runs on any MLflow tracking URI (a tracking server, Databricks, ...), read through
``MlflowClient`` (``search_runs`` and ``get_metric_history``). Needs the 'mlflow' extra
(mlflow-skinny). ``sqlite:///`` URIs and file stores are read without it (see ``ingest``)."""
from __future__ import annotations

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


def read_tracking_uri(uri: str, wanted: RunFilter = RunFilter()) -> list[TrackedRun]:
    """The active runs on ``uri`` that ``wanted`` keeps and that logged any metric."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
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
                for key in sorted(run.data.metrics):
                    history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
                    series[key] = Metric(steps=np.array([m.step for m in history], dtype=np.float64),
                                         values=from_stored(np.array([m.value for m in history], dtype=np.float64)))
                if series:
                    found.append(TrackedRun(name=name, run_id=run.info.run_id, experiment=experiment.name,
                                            series=series))
    except MlflowException as exc:
        raise InputError(uri, f"MLflow tracking server: {exc.message}") from None
    except OSError as exc:   # the server cannot be reached
        raise InputError(uri, f"cannot reach the MLflow tracking server: {exc}") from None
    return found
