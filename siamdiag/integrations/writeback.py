"""The verdict written back from inside training (a callback's ``write_back=True``): at the end
of training the callback judges its own log, as ``siamdiag analyze`` would with its defaults, and
records the verdict, gate and reasons in the trackers that training logged to: the MLflow run it
logged to, the TensorBoard directories it wrote, the live W&B run (``wandb.run``). A tracker
that refuses is a warning: training has already succeeded, and the log is still there to judge."""
from __future__ import annotations

import os
import sys
import warnings

from ..engine.analysis import analyze_run
from ..engine.decide import DEFAULT_FAILING
from ..engine.prepare import Options, order_run
from ..logs.ingest import read_runs
from ..logs.readers import is_event_file
from ..logs.tables import Tracker
from ..logs.writeback import Judgement, WriteBackError, write_back


def judge_log(path: str) -> Judgement:
    """The verdict on a callback's own log, gated as ``siamdiag analyze``'s defaults gate it."""
    [raw] = read_runs([path])
    result = analyze_run(order_run(raw), Options())
    return Judgement.of(result, "fail" if result.verdict in DEFAULT_FAILING else "pass")


def active_mlflow_run() -> Tracker | None:
    """The MLflow run the training logs to (``mlflow.active_run()``), when MLflow is in use: the
    run may have ended by the time training ends, so it is noted while training runs."""
    mlflow = sys.modules.get("mlflow")   # never imported here: a training without MLflow has no run
    run = mlflow.active_run() if mlflow is not None else None
    return None if run is None else Tracker("mlflow", mlflow.get_tracking_uri(), run.info.run_id)


def tensorboard_dirs(root: str, since: float) -> list[Tracker]:
    """The directories under ``root`` whose event files were written since ``since`` (a Unix
    time): the TensorBoard runs of this training."""
    found = []
    for directory, _subdirs, files in os.walk(root):
        events = [os.path.join(directory, f) for f in files if is_event_file(f)]
        if any(os.path.getmtime(e) >= since for e in events):
            found.append(Tracker("tensorboard", directory))
    return sorted(found, key=lambda t: t.location)


def write_back_from_training(path: str, trackers: list[Tracker], wandb_run: bool = True) -> Judgement:
    """Judge ``path`` and write the verdict to ``trackers``, and to the live W&B run when
    ``wandb_run`` and there is one."""
    judgement = judge_log(path)
    for tracker in trackers:
        try:
            write_back(tracker, judgement)
        except WriteBackError as exc:
            warnings.warn(f"siamdiag: the verdict was not written back: {exc}", stacklevel=3)
    wandb = sys.modules.get("wandb")
    if wandb_run and wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.run.summary.update({"siamdiag": judgement.fields()})
    return judgement
