"""A Keras 3 callback (any backend) that writes a run in siamdiag's format: one row per batch
with that batch's own loss.

Keras reports, at each batch, the running mean of the loss since the epoch began: a log of those
looks like a loss that settles within every epoch and jumps at the next, and hides the batch
noise the tests read. The batch's own loss is recovered from two successive means, exactly up to
Keras' float32 arithmetic: x_i = i·m_i − (i−1)·m_(i−1) (an error of about i·|m|·6e-8 at batch i of
an epoch)."""
from __future__ import annotations

import os

import keras

from ..train.metrics_file import BufferedRows


class SiamdiagKerasCallback(keras.callbacks.Callback):
    """Writes ``path`` one row per training batch (step = batches seen since training began);
    judge it with ``siamdiag analyze`` or follow it with ``siamdiag watch``."""

    def __init__(self, path: str | os.PathLike, flush_every: int = 100):
        super().__init__()
        self.path, self.flush_every = os.fspath(path), flush_every
        self.rows: BufferedRows | None = None
        self.step, self.epoch, self.previous_mean = 0, 0, 0.0

    def on_train_begin(self, logs=None):
        self.rows = BufferedRows(self.path, self.flush_every)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.previous_mean = epoch, 0.0

    def on_train_batch_end(self, batch, logs=None):
        if self.rows is None or not logs or "loss" not in logs:
            return
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self.previous_mean   # this batch's own loss
        self.previous_mean = mean
        self.step += 1
        self.rows.add(step=self.step, epoch=self.epoch, loss=loss, lr=self._learning_rate())

    def _learning_rate(self) -> float | None:
        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return None   # a schedule object or no optimizer: not logged

    def on_train_end(self, logs=None):
        if self.rows is not None:
            self.rows.close()
            self.rows = None
