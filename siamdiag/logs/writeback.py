"""Verdicts written back where the run is kept, each tracker its own way of adding metadata to a
run, so that the verdict shows where users look: MLflow tags, a TensorBoard text summary in a
new event file, keys in DVCLive's ``metrics.json`` (what ``dvc exp show`` shows), a W&B run's
summary. No log file is ever rewritten. What is written: the verdict, the gate (pass/fail) and
the reasons (``siamdiag.verdict``, ``siamdiag.gate``, ``siamdiag.reason``; nested as
``siamdiag: {verdict, gate, reason}`` where the tracker nests keys).

Each writer needs its tracker's own package (mlflow, tensorboard, wandb; DVCLive's file is
JSON) and raises WriteBackError, naming what failed, when it cannot write."""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass

from ..atomic import replacing
from ..errors import InputError, SiamdiagError
from .tables import Tracker

TAG_VALUE_LIMIT = 5000   # MLflow's tag value limit before 2.x raised it to 8000: safe for both


class WriteBackError(SiamdiagError):
    """A tracker that would not take the verdict (a store gone read-only, a package missing)."""


@dataclass(frozen=True)
class Judgement:
    """What is written back: the verdict, the gate, the reasons, and the run's last step (where
    TensorBoard shows the text)."""

    verdict: str
    gate: str
    reasons: tuple[str, ...] = ()
    step: int = 0

    @classmethod
    def of(cls, result, gate: str) -> "Judgement":
        """A judged run's (an engine RunResult's) judgement under ``gate`` ('pass' or 'fail')."""
        last_step = int(result.window.last_step) if result.window is not None else 0
        return cls(result.verdict.value, gate, tuple(result.reasons), last_step)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def fields(self) -> dict[str, str]:
        return {"verdict": self.verdict, "gate": self.gate, "reason": self.reason}


def write_back(tracker: Tracker, judgement: Judgement, timeout: float = 30.0) -> None:
    """Write ``judgement`` to the tracker that keeps the run; ``timeout``: seconds to wait for a
    tracking server, retries included (every writer takes it; the trackers on disk need none)."""
    WRITERS[tracker.kind](tracker, judgement, timeout)


@contextlib.contextmanager
def _file_store_allowed():
    """MLflow 3.7+ refuses to open a file store (mlruns/) unless told to: the run is already
    kept there, so adding its tags is allowed for this call alone."""
    saved = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = saved


def to_mlflow(tracker: Tracker, judgement: Judgement, timeout: float = 30.0) -> None:
    """Tags ``siamdiag.verdict``, ``siamdiag.gate`` and ``siamdiag.reason`` (cut to MLflow's tag
    length) on the run, in one ``log_batch`` through MlflowClient: a SQLite store, a file store
    or a tracking server alike. A server is given ``timeout`` seconds, as when its runs are read:
    MLflow's own retries would take minutes to give up."""
    try:
        from mlflow.entities import RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise WriteBackError("writing MLflow tags needs mlflow: pip install 'siamdiag[mlflow]'") from None
    from .readers.mlflow_tracking import bounded_requests, require_reachable

    tags = [RunTag(f"siamdiag.{key}", value if len(value) <= TAG_VALUE_LIMIT else value[:TAG_VALUE_LIMIT - 1] + "…")
            for key, value in judgement.fields().items()]
    try:
        require_reachable(tracker.location, timeout)
        with _file_store_allowed(), bounded_requests(timeout):
            MlflowClient(tracking_uri=tracker.location).log_batch(tracker.run_id, tags=tags)
    except InputError as exc:   # the server does not answer
        raise WriteBackError(f"MLflow run {tracker.run_id} at {tracker.location}: {exc.message}") from None
    except ImportError as exc:   # mlflow-skinny has no database support
        raise WriteBackError(f"MLflow run {tracker.run_id} at {tracker.location}: needs {exc.name} "
                             "(the full mlflow package: pip install mlflow)") from None
    except MlflowException as exc:
        raise WriteBackError(f"MLflow run {tracker.run_id} at {tracker.location}: "
                             + " ".join(str(exc.message).split())[:300]) from None
    except OSError as exc:
        raise WriteBackError(f"MLflow run {tracker.run_id} at {tracker.location}: {exc.strerror or exc}") from None


def to_tensorboard(tracker: Tracker, judgement: Judgement, timeout: float = 30.0) -> None:
    """A text summary, tag ``siamdiag/verdict``, at the run's last step, in a new event file of
    the writer's directory (``*.siamdiag``): the event files there are never rewritten, and
    siamdiag's reader, which reads scalars only, judges the directory as before."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.plugins.text.summary_v2 import text_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise WriteBackError("writing a TensorBoard text summary needs tensorboard: "
                             "pip install 'siamdiag[tensorboard]'") from None
    text = f"**{judgement.verdict}** (gate: {judgement.gate})" + "".join(f"\n\n- {r}" for r in judgement.reasons)
    try:
        writer = EventFileWriter(tracker.location, filename_suffix=".siamdiag")
        writer.add_event(Event(wall_time=time.time(), step=judgement.step, summary=text_pb("siamdiag/verdict", text)))
        writer.close()
    except OSError as exc:
        raise WriteBackError(f"TensorBoard directory {tracker.location}: {exc.strerror or exc}") from None


def to_dvclive(tracker: Tracker, judgement: Judgement, timeout: float = 30.0) -> None:
    """A ``siamdiag`` object (verdict, gate, reason) added to the DVCLive directory's
    ``metrics.json``, the summary DVCLive declares in dvc.yaml, so ``dvc exp show`` shows it as
    ``siamdiag.verdict``; every other key is kept. Written whole or not at all."""
    path = os.path.join(tracker.location, "metrics.json")
    try:
        with open(path, encoding="utf-8") as fh:
            metrics = json.load(fh)
    except FileNotFoundError:
        metrics = {}
    except (OSError, ValueError) as exc:
        raise WriteBackError(f"{path}: cannot add the verdict to it: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(metrics, dict):
        raise WriteBackError(f"{path}: not a JSON object; the verdict is not added to it")
    metrics["siamdiag"] = judgement.fields()
    try:
        with replacing(path, encoding="utf-8") as fh:
            json.dump(metrics, fh, indent=4)   # as DVCLive writes it
            fh.write("\n")
    except OSError as exc:
        raise WriteBackError(f"{path}: {exc.strerror or exc}") from None


def to_wandb(tracker: Tracker, judgement: Judgement, timeout: float = 30.0) -> None:
    """A ``siamdiag`` object (verdict, gate, reason) in the run's summary. A W&B run kept on disk
    is continued the way W&B continues one: an offline run with the same id, project and entity
    (``wandb.init(mode="offline", id=..., resume="allow")``) in a new directory beside it, which
    ``wandb sync`` uploads after the first, into the same run. siamdiag reads the directories of
    one run together, so judging again sees one run."""
    from .readers.wandb_run import run_info, run_log

    try:
        import wandb
    except ImportError:
        raise WriteBackError("writing a W&B run summary needs wandb: pip install 'siamdiag[wandb]'") from None
    folder = os.path.dirname(os.path.abspath(tracker.location))
    if os.path.basename(folder) not in ("wandb", ".wandb"):
        raise WriteBackError(f"W&B run {tracker.location}: not in a wandb/ folder, so W&B cannot continue it")
    info = run_info(run_log(tracker.location))
    _after_the_runs_last_second(folder, tracker.run_id)
    settings = wandb.Settings(silent=True, console="off", save_code=False, disable_git=True,
                              x_disable_stats=True, x_disable_meta=True)
    try:
        run = wandb.init(mode="offline", id=tracker.run_id, resume="allow", project=info.project or None,
                         entity=info.entity or None, dir=os.path.dirname(folder), settings=settings)
        run.summary.update({"siamdiag": judgement.fields()})
        run.finish()
    except (wandb.errors.Error, OSError) as exc:
        raise WriteBackError(f"W&B run {tracker.location}: {exc}") from None


def _after_the_runs_last_second(folder: str, run_id: str) -> None:
    """W&B names a run's directory after the second it starts in (local time): a continuation
    started in the same second as one of the run's directories would be written into it, over its
    log. So it starts no sooner than the next second."""
    while any(os.path.isdir(os.path.join(folder, f"{mode}-{time.strftime('%Y%m%d_%H%M%S')}-{run_id}"))
              for mode in ("offline-run", "run")):
        time.sleep(1.01 - time.time() % 1)


WRITERS = {"mlflow": to_mlflow, "tensorboard": to_tensorboard, "dvclive": to_dvclive, "wandb": to_wandb}
