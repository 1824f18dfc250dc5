"""A PyTorch Lightning callback that logs a run in siamdiag's format through
``siamdiag.Recorder`` (install with ``pip install 'siamdiag[lightning]'``).

The gradient norm is taken in ``on_before_optimizer_step`` (gradients complete, before
Lightning clips them); the loss comes from what ``training_step`` returned, and, when that is a
dict, its ``embeddings``, ``pos_dist`` and ``neg_dist`` entries are logged too. With gradient
accumulation one row covers the micro-batches of one optimizer step: their mean loss, and their
embeddings and distances pooled. Only the global rank 0 writes. With ``stop=StopWhenStationary()``
training stops once the loss has settled (``trainer.max_steps`` is its budget when set). With
``write_back=True`` the log is judged when training ends and the verdict recorded in the trainer's
loggers: the MLflow run of an ``MLFlowLogger``, the directory of a ``TensorBoardLogger``, the run
of a ``WandbLogger``.
"""
from __future__ import annotations

import os

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the standalone package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError:
        raise ImportError("siamdiag.lightning needs PyTorch Lightning: pip install 'siamdiag[lightning]'") from None

from ..engine.stopping import StopWhenStationary
from ..logs.tables import Tracker
from .recorder import Recorder, gradient_norm
from .writeback import write_back_from_training


class SiamdiagCallback(Callback):
    """Writes ``path`` (default: ``<trainer.log_dir>/siamdiag_metrics.csv``) one row per
    optimisation step; judge it with ``siamdiag analyze`` or follow it with ``siamdiag watch``."""

    def __init__(self, path: str | os.PathLike | None = None, flush_every: int = 500,
                 stop: StopWhenStationary | None = None, write_back: bool = False):
        self.path, self.flush_every, self.stop, self.write_back = path, flush_every, stop, write_back
        self.verdict = None   # with write_back: the Judgement written back at the end of training
        self.recorder: Recorder | None = None
        self._window: list[dict] = []  # training_step outputs since the last optimizer step
        self._stepped = False
        self._grad_norm = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            path = self.path or os.path.join(trainer.log_dir or trainer.default_root_dir, "siamdiag_metrics.csv")
            if self.stop is not None and self.stop.max_steps is None and trainer.max_steps and trainer.max_steps > 0:
                self.stop.max_steps = trainer.max_steps   # the budget spends alpha best
            resumed = trainer.global_step if trainer.global_step > 0 else None   # from a checkpoint: its rows after it go
            self.recorder = Recorder(path, flush_every=self.flush_every, stop=self.stop, resume_from=resumed)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.recorder is not None:
            self._grad_norm = gradient_norm(pl_module.parameters())
            self._stepped = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.recorder is None:
            return
        output = outputs if isinstance(outputs, dict) else {"loss": outputs}
        if output.get("loss") is not None:
            self._window.append(output)
        if not self._stepped:
            return  # accumulating gradients: the optimizer has not stepped yet
        if self._window:
            self._log_window(trainer)
        self._window, self._stepped, self._grad_norm = [], False, None
        if self.recorder.should_stop and not trainer.should_stop:
            trainer.should_stop = True
            print(self.stop.reason(), flush=True)

    def _log_window(self, trainer) -> None:
        """One row for the micro-batches of one optimizer step. Lightning hands each loss over
        divided by ``accumulate_grad_batches``; the row has their undivided mean."""
        losses = torch.stack([torch.as_tensor(out["loss"]).detach().reshape(()) for out in self._window])
        embeddings = []  # every micro-batch's embeddings (a tensor, or one per tower)
        for out in self._window:
            part = out.get("embeddings")
            if isinstance(part, torch.Tensor):
                embeddings.append(part)
            elif part is not None:
                embeddings.extend(part)
        optimizers = trainer.optimizers
        self.recorder.log(trainer.global_step, losses.mean() * trainer.accumulate_grad_batches,
                          grad_norm=self._grad_norm, lr=optimizers[0].param_groups[0]["lr"] if optimizers else None,
                          epoch=trainer.current_epoch, embeddings=tuple(embeddings) or None,
                          pos_dist=_pooled([out.get("pos_dist") for out in self._window]),
                          neg_dist=_pooled([out.get("neg_dist") for out in self._window]))

    def on_train_end(self, trainer, pl_module) -> None:
        log = self.recorder.path if self.recorder is not None else None
        self._close()
        if self.write_back and log is not None:
            kinds = {type(logger).__name__ for logger in trainer.loggers}
            self.verdict = write_back_from_training(log, logger_trackers(trainer.loggers), "WandbLogger" in kinds)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close()

    def _close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None


def logger_trackers(loggers) -> list[Tracker]:
    """Where the trainer's MLflow and TensorBoard loggers keep this run (a W&B logger's run is
    the live ``wandb.run``)."""
    trackers = []
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "MLFlowLogger" and logger.run_id:
            trackers.append(Tracker("mlflow", logger.experiment.tracking_uri, logger.run_id))
        elif kind == "TensorBoardLogger":
            trackers.append(Tracker("tensorboard", logger.log_dir))
    return trackers


def _pooled(values: list):
    """One statistic's values over the micro-batches of a step, as one flat tensor (or one host
    number when they are not all tensors); None when no micro-batch gave it."""
    values = [v for v in values if v is not None]
    if len(values) <= 1:
        return values[0] if values else None
    if all(isinstance(v, torch.Tensor) for v in values):
        return torch.cat([v.detach().reshape(-1).float() for v in values])
    return sum(float(v) for v in values) / len(values)
