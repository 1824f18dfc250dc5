"""A Keras 3 callback (any backend) that writes a run in siamdiag's format: one row per batch
with that batch's own loss.

Keras reports, at each batch, the running mean of the loss since the epoch began, weighted by
each batch's samples: a log of those looks like a loss that settles within every epoch and jumps
at the next, and hides the batch noise the tests read. The batch's own loss is recovered from two
successive means m and their sample counts n (Keras' own loss tracker's): x_i = (n_i·m_i −
n_(i−1)·m_(i−1)) / (n_i − n_(i−1)), exactly up to Keras' float32 arithmetic (an error of about
i·|m|·6e-8 at batch i of an epoch). A short last batch is weighted as Keras weighted it.

With ``compile(steps_per_execution=k)`` (JAX, TensorFlow; Keras refuses it on torch) Keras runs k
batches per call and reports only the running mean after the k-th: the batches' own losses are
gone, and the same recovery over the k batches gives their mean loss, which is what is written,
one row per k batches (the step of the last), with a warning. Such a series is still judged
soundly: its points are independent like the batches', with less noise.

With ``write_back=True`` the log is judged when training ends and the verdict recorded in the MLflow
run active when training began (``mlflow.start_run()``, ``mlflow.keras.autolog()``) and in the live
W&B run (``wandb.run``); ``callback.verdict`` holds it."""
from __future__ import annotations

import os
import warnings

import keras

from ..train.metrics_file import BufferedRows
from .writeback import active_mlflow_run, write_back_from_training


class SiamdiagKerasCallback(keras.callbacks.Callback):
    """Writes ``path`` one row per training batch (step = batches seen since training began), or
    per k batches with ``steps_per_execution=k``; judge it with ``siamdiag analyze`` or follow
    it with ``siamdiag watch``."""

    def __init__(self, path: str | os.PathLike, flush_every: int = 100, write_back: bool = False):
        super().__init__()
        self.path, self.flush_every, self.write_back = os.fspath(path), flush_every, write_back
        self.verdict = None          # with write_back: the Judgement written back at the end of training
        self._mlflow_run = None      # the MLflow run active when training began
        self.rows: BufferedRows | None = None
        self.step, self.epoch = 0, 0
        self.batches, self.previous_mean = 0, 0.0   # the epoch's so far, at the last row written
        self.samples: float | None = 0.0            # and its samples (None: not known)

    def on_train_begin(self, logs=None):
        self.rows = BufferedRows(self.path, self.flush_every)
        if self.write_back:
            self._mlflow_run = active_mlflow_run()
        k = getattr(self.model, "steps_per_execution", 1) or 1
        if k > 1:
            warnings.warn(f"siamdiag: steps_per_execution={k}: Keras reports the loss once every {k} batches, so each "
                          f"row of {self.path} is the mean loss of those {k} batches (its step the last of them); "
                          "compile with steps_per_execution=1 for each batch's own loss", stacklevel=2)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.batches, self.samples, self.previous_mean = epoch, 0, 0.0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        if self.rows is None or not logs or "loss" not in logs:
            return
        mean = float(logs["loss"])
        steps = self.params.get("steps") if self.params else None
        batches = min(batch + 1, steps) if steps else batch + 1   # Keras numbers a short last group past the epoch
        samples = self._samples_seen()
        if samples is not None and self.samples is not None and samples > self.samples:
            weight, previous_weight = samples, self.samples
        else:   # no loss tracker counting samples (a custom train_step): batches weigh alike
            weight, previous_weight = batches, self.batches
        loss = (weight * mean - previous_weight * self.previous_mean) / (weight - previous_weight)
        self.step += batches - self.batches
        self.batches, self.samples, self.previous_mean = batches, samples, mean
        self.rows.add(step=self.step, epoch=self.epoch, loss=loss, lr=self._learning_rate())

    def _samples_seen(self) -> float | None:
        """The samples Keras' loss tracker has averaged this epoch, which weigh its running mean;
        None when the model has none. On JAX the tracker's value lives in the training state,
        not in its variable, until the epoch ends."""
        tracker = getattr(self.model, "_loss_tracker", None)
        if tracker is None:
            return None
        state = getattr(self.model, "_jax_state", None)
        try:
            if state:
                index = next(i for i, v in enumerate(self.model.metrics_variables) if v is tracker.count)
                return float(state["metrics_variables"][index])
            return float(keras.ops.convert_to_numpy(tracker.count))
        except (AttributeError, KeyError, IndexError, StopIteration, TypeError, ValueError):
            return None

    def _learning_rate(self) -> float | None:
        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return None   # a schedule object or no optimizer: not logged

    def on_train_end(self, logs=None):
        if self.rows is not None:
            self.rows.close()
            self.rows = None
            if self.write_back:
                trackers = [self._mlflow_run] if self._mlflow_run is not None else []
                self.verdict = write_back_from_training(self.path, trackers)
