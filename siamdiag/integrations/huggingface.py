"""A Hugging Face ``TrainerCallback`` that writes a run in siamdiag's format: one row per
optimizer step with that step's own loss (mean over its gradient-accumulation micro-batches),
the gradient norm before clipping and the learning rate, as the Trainer computes them.

The Trainer logs every ``logging_steps`` steps (500 by default) the mean loss since its last
log: one point per 500 steps is too few to judge, and a mean hides the step-to-step noise the
tests read. So by default the callback asks the Trainer to log at every step
(``control.should_log``), which is what ``TrainingArguments(logging_steps=1)`` does, and other
loggers (W&B, TensorBoard) then get every step too. With ``every_step=False`` the callback only
records what the Trainer logs, and warns when that is a mean over several steps. With
``stop=StopWhenStationary()`` training stops once the loss has settled (the Trainer's
``max_steps`` is its budget). With ``write_back=True`` the log is judged when training ends and the
verdict recorded where the Trainer reported to (``report_to``): the MLflow run, the TensorBoard
directories under ``<output_dir>/runs`` (or ``TENSORBOARD_LOGGING_DIR``), the W&B run."""
from __future__ import annotations

import os
import time
import warnings

from transformers import TrainerCallback

from ..engine.stopping import StopWhenStationary
from ..train.metrics_file import BufferedRows
from .writeback import active_mlflow_run, tensorboard_dirs, write_back_from_training


class SiamdiagTrainerCallback(TrainerCallback):
    """Writes ``path`` (default ``<output_dir>/siamdiag_metrics.csv``) on the main process;
    judge it with ``siamdiag analyze`` or follow it with ``siamdiag watch``. A resume from a
    checkpoint continues the file; a new training into the same directory moves the old file
    aside (``siamdiag_metrics.1.csv``) rather than append to it."""

    def __init__(self, path: str | os.PathLike | None = None, every_step: bool = True, flush_every: int = 100,
                 stop: StopWhenStationary | None = None, write_back: bool = False):
        self.path, self.every_step, self.flush_every, self.stop = path, every_step, flush_every, stop
        self.write_back = write_back
        self.rows: BufferedRows | None = None
        self.verdict = None   # with write_back: the Judgement written back at the end of training
        self._log, self._began, self._mlflow_run = "", 0.0, None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        path = os.fspath(self.path) if self.path else os.path.join(args.output_dir, "siamdiag_metrics.csv")
        resumed = state.global_step if state.global_step > 0 else None   # resuming from a checkpoint
        self.rows, self._log = BufferedRows(path, self.flush_every, resume_from=resumed), path
        if self.write_back:   # the report_to callbacks ran first: MLflow's run is active, TensorBoard's writer open
            self._began, self._mlflow_run = time.time() - 1, active_mlflow_run()
        if self.stop is not None and self.stop.max_steps is None and state.max_steps and state.max_steps > 0:
            self.stop.max_steps = state.max_steps   # the budget spends alpha best
        if not self.every_step and args.logging_steps != 1:
            warnings.warn(f"siamdiag: the Trainer logs the mean loss over logging_steps={args.logging_steps:g} steps; "
                          "set TrainingArguments(logging_steps=1) (or SiamdiagTrainerCallback(every_step=True)) "
                          "for the per-step losses a diagnosis needs", stacklevel=2)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_step:
            control.should_log = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.rows is None or not logs or "loss" not in logs:
            return   # evaluation logs, the end-of-training summary
        self.rows.add(step=int(state.global_step), epoch=None if state.epoch is None else int(state.epoch),
                      loss=float(logs["loss"]), grad_norm=logs.get("grad_norm"), lr=logs.get("learning_rate"))
        if self.stop is not None and not self.stop.stopped:
            self.stop.add(state.global_step, logs["loss"])
            if self.stop.check():
                control.should_training_stop = True
                print(self.stop.reason(), flush=True)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.rows is not None:
            self.rows.close()
            self.rows = None
            if self.write_back:
                self.verdict = write_back_from_training(self._log, self._trackers(args), "wandb" in args.report_to)

    def _trackers(self, args) -> list:
        """The MLflow run and the TensorBoard directories this training reported to."""
        trackers = [self._mlflow_run] if self._mlflow_run is not None and "mlflow" in args.report_to else []
        if "tensorboard" in args.report_to:
            root = os.getenv("TENSORBOARD_LOGGING_DIR") or os.path.join(args.output_dir, "runs")
            trackers += tensorboard_dirs(root, self._began)
        return trackers
