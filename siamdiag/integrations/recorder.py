"""``siamdiag.Recorder``: log a training loop of your own in siamdiag's format (the columns of
``siamdiag train``'s metrics.csv), ready for ``siamdiag analyze`` or ``watch``.

What ``log`` is given stays on the device: the loss, the gradient norm (computed with one
fused norm over the parameters' gradients), the mean embedding norm and the mean positive /
negative distances are kept as device scalars, and every ``flush_every`` steps they are stacked
and copied to the host in one transfer. Python numbers (lr, margin) stay on the host. So a step
never waits for the GPU on the recorder's account.
"""
from __future__ import annotations

import math
import os

import torch

from ..engine.stopping import StopWhenStationary
from ..train.metrics_file import COLUMNS, MetricsFile

DEVICE_FIELDS = ("loss", "grad_norm", "embedding_norm", "pos_dist", "neg_dist")


def gradient_norm(parameters) -> torch.Tensor | None:
    """L2 norm over every parameter's gradient, on the device; None when no gradient exists."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def mean_row_norm(embeddings) -> torch.Tensor:
    """Mean L2 norm of the embedding rows (one tensor, or several, e.g. both towers)."""
    parts = embeddings if isinstance(embeddings, (tuple, list)) else (embeddings,)
    norms = torch.cat([torch.linalg.vector_norm(e.detach().reshape(-1, e.shape[-1]), dim=1) for e in parts])
    return norms.mean()


class Recorder:
    """Appends one row per ``log`` call to ``path`` (created with a header, or continued).

    >>> rec = Recorder("runs/exp1/metrics.csv")
    >>> rec.log(step, loss, model=model, embeddings=(za, zb), lr=optimizer.param_groups[0]["lr"])
    >>> rec.close()   # or use it as a context manager

    Call ``log`` after ``loss.backward()`` and before ``optimizer.zero_grad()`` when passing
    ``model``, so the gradient norm is the step's (before any clipping that follows). With
    ``stop=StopWhenStationary(...)``, ``should_stop`` turns True once the loss has settled (looked
    at when a flush brings the values to the host: every ``max(flush_every, check_every)`` steps).
    ``resume_from``: the step of the checkpoint a resumed run starts from; the file's rows after
    it, which the run logs again, are dropped first (see MetricsFile).
    """

    def __init__(self, path: str | os.PathLike, flush_every: int = 500, stop: StopWhenStationary | None = None,
                 resume_from: int | None = None):
        if flush_every < 1:
            raise ValueError("flush_every must be >= 1")
        self.stop = stop   # judged at each flush, when the steps' values reach the host anyway
        self.path = os.fspath(path)
        self.flush_every = flush_every
        self.file = MetricsFile(self.path, resume_from)   # resume_from: a resumed run's checkpoint step
        self.pending: list[tuple[dict, dict[str, torch.Tensor]]] = []

    def log(self, step: int, loss, *, grad_norm=None, model: torch.nn.Module | None = None, embeddings=None,
            pos_dist=None, neg_dist=None, lr: float | None = None, margin: float | None = None,
            epoch: int | None = None) -> None:
        """Record one step. Tensors may live on any device; nothing is read back here."""
        host = {"step": int(step), "epoch": epoch, "lr": lr, "margin": margin}
        device: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if grad_norm is None and model is not None:
                grad_norm = gradient_norm(model.parameters())
            values = {"loss": loss, "grad_norm": grad_norm,
                      "embedding_norm": None if embeddings is None else mean_row_norm(embeddings),
                      "pos_dist": None if pos_dist is None else _mean(pos_dist),
                      "neg_dist": None if neg_dist is None else _mean(neg_dist)}
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    device[name] = value.detach().reshape(())
                elif value is not None:
                    host[name] = float(value)
        self.pending.append((host, device))
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the pending steps: one device-to-host copy for all their tensors."""
        if not self.pending:
            return
        tensors = [t.to(torch.float64) for _host, device in self.pending for t in device.values()]
        values = torch.stack(tensors).cpu().tolist() if tensors else []
        rows, k = [], 0
        for host, device in self.pending:
            row = dict.fromkeys(COLUMNS)
            row.update(host)
            for name in device:
                row[name] = values[k]
                k += 1
            loss = row["loss"]
            row["nonfinite"] = 0 if loss is None or math.isfinite(loss) else 1
            rows.append(row)
        self.file.append(rows)
        self.pending.clear()
        if self.stop is not None and not self.stop.stopped:
            for row in rows:
                if row["loss"] is not None:
                    self.stop.add(row["step"], row["loss"])
            self.stop.check()

    @property
    def should_stop(self) -> bool:
        """True once ``stop`` (a StopWhenStationary) says the loss has settled; checked at flushes."""
        return self.stop is not None and self.stop.stopped

    def close(self) -> None:
        self.flush()
        self.file.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mean(value) -> torch.Tensor | float:
    return value.detach().to(torch.float32).mean() if isinstance(value, torch.Tensor) else float(value)
