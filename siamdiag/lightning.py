"""A PyTorch Lightning callback that logs a run in siamdiag's format through
``siamdiag.Recorder`` (install with ``pip install 'siamdiag[lightning]'``).

The gradient norm is taken in ``on_before_optimizer_step`` (gradients complete, before
Lightning clips them); the loss comes from what ``training_step`` returned, and, when that is a
dict, its ``embeddings``, ``pos_dist`` and ``neg_dist`` entries are logged too. Only the global
rank 0 writes.
"""
from __future__ import annotations

import os

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the standalone package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError:
        raise ImportError("siamdiag.lightning needs PyTorch Lightning: pip install 'siamdiag[lightning]'") from None

from .recorder import Recorder, gradient_norm


class SiamdiagCallback(Callback):
    """Writes ``path`` (default: ``<trainer.log_dir>/siamdiag_metrics.csv``) one row per
    optimisation step; judge it with ``siamdiag analyze`` or follow it with ``siamdiag watch``."""

    def __init__(self, path: str | os.PathLike | None = None, flush_every: int = 500):
        self.path, self.flush_every = path, flush_every
        self.recorder: Recorder | None = None
        self._grad_norm = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            path = self.path or os.path.join(trainer.log_dir or trainer.default_root_dir, "siamdiag_metrics.csv")
            self.recorder = Recorder(path, flush_every=self.flush_every)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.recorder is not None:
            self._grad_norm = gradient_norm(pl_module.parameters())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.recorder is None or outputs is None:
            return
        extras = outputs if isinstance(outputs, dict) else {}
        loss = extras.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        optimizers = trainer.optimizers
        lr = optimizers[0].param_groups[0]["lr"] if optimizers else None
        self.recorder.log(trainer.global_step, loss, grad_norm=self._grad_norm, lr=lr, epoch=trainer.current_epoch,
                          embeddings=extras.get("embeddings"), pos_dist=extras.get("pos_dist"),
                          neg_dist=extras.get("neg_dist"))
        self._grad_norm = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close()

    def _close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
