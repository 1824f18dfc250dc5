"""The Siamese training loop: one run from configuration to run directory.

Each step embeds anchor, other (and negative) examples with one shared encoder, computes the loss,
measures the gradient norm before clipping, and records the step on the device. Rows reach
metrics.csv in batches: every ~2 s of training (rank 0 measures the pace and tells the other
ranks), at every epoch end when the margin adapts, before every checkpoint, and at the end.
A non-finite loss stops the run after logging that step; a stop request (Ctrl-C) finishes the
current step, writes the log and a checkpoint, and returns.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import UsageError
from .checkpoint import METRICS_FILE, save_checkpoint, write_config
from .config import TrainConfig
from .data import Batch, PairSampler, load_dataset
from .distributed import Placement
from .gradients import GradientBuffer
from .losses import LOSSES, LossOutput
from .models import build_encoder
from .metrics_file import MetricsFile, keep_steps_through
from .recorder import StepRecorder
from .schedules import MarginSchedule, build_optimizer, set_lr

FLUSH_SECONDS = 2.0
SAMPLER_KIND = {"contrastive": "pairs", "cosine": "pairs", "triplet": "triplet", "infonce": "infonce"}


@dataclass(frozen=True)
class Outcome:
    run_dir: str
    steps_done: int
    total_steps: int
    stopped: str  # "completed", "interrupted" or "nonfinite"


def rows_per_flush(rows: int, seconds: float, previous: int) -> int:
    """Rows to hold before the next write: about FLUSH_SECONDS of training at the pace of the last
    ``rows`` steps, which took ``seconds`` (``previous`` rows per second when no time was measured)."""
    pace = rows / seconds if seconds > 0 else previous
    return int(max(1, pace * FLUSH_SECONDS))


class Trainer:
    """Builds data, model and optimiser for ``cfg`` and trains them into ``run_dir``.

    ``checkpoint`` (from a previous run of the same configuration) continues that run: the
    sampler is a function of the step and the learning rate a function of the step, so
    model, optimiser and margin states are all a resumed run needs to log what an
    uninterrupted run would have logged.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str, placement: Placement, checkpoint: dict | None = None):
        self.cfg, self.run_dir, self.placement = cfg, run_dir, placement
        torch.manual_seed(cfg.seed)
        dataset = load_dataset(cfg)
        if cfg.batch_size % placement.world:
            raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes "
                             f"({placement.world})")
        self.dataset_name, self.examples, self.classes = dataset.name, len(dataset.y), dataset.classes
        self.x, self.y = dataset.x.to(placement.device), dataset.y.to(placement.device)
        self.noise_scale = cfg.augment_noise * float(dataset.x.std())
        self.sampler = PairSampler(dataset.y, SAMPLER_KIND[cfg.loss], cfg.batch_size, cfg.imbalance, cfg.seed,
                                   placement.device, tuple(dataset.x.shape[1:]) if cfg.augment_noise > 0 else None)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else cfg.steps
        self.encoder = build_encoder(cfg, tuple(dataset.x.shape[1:])).to(placement.device)
        self.model = self.encoder
        if placement.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(self.encoder)
        self.params = [p for p in self.encoder.parameters() if p.requires_grad]
        self.gradients = GradientBuffer(self.params)
        self.optimizer = build_optimizer(cfg, self.params)
        self.loss_fn = LOSSES[cfg.loss]
        self.margin = MarginSchedule(cfg, math.ceil(self.total_steps / self.steps_per_epoch))
        self.recorder = StepRecorder(placement)
        self.steps_done = 0
        self.epoch_easy = [0.0, 0.0]  # easy triplets and triplets seen in the current epoch
        if checkpoint is not None:
            self.encoder.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.margin.load_state_dict(checkpoint["margin"])
            self.steps_done = int(checkpoint["step"])
            self.epoch_easy = [float(v) for v in checkpoint["epoch_easy"]]

    @property
    def model_kind(self) -> str:
        return "cnn" if any(isinstance(m, torch.nn.Conv2d) for m in self.encoder.modules()) else "mlp"

    def resolved(self) -> dict:
        return {"margin": self.cfg.resolved_margin, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "model": self.model_kind, "dataset": self.dataset_name,
                "examples": self.examples, "classes": self.classes,
                "parameters": sum(p.numel() for p in self.params)}

    # ---------------------------------------------------------------------------------- one step

    def forward(self, batch: Batch, margin: float | None) -> tuple[LossOutput, torch.Tensor, torch.Tensor | None]:
        """Embed every example of the (sharded) batch in one pass and compute the loss. Returns the
        loss output, the raw embeddings and, when normalising, their norms (computed for the
        normalisation anyway, so the log reuses them)."""
        parts = [batch.anchor, batch.other] + ([batch.negative] if batch.negative is not None else [])
        index = torch.cat(parts)
        inputs = self.x[index]
        if batch.noise is not None:
            inputs = inputs + self.noise_scale * batch.noise.reshape(inputs.shape)
        raw = self.model(inputs)
        norms = None
        if self.cfg.normalize:  # as F.normalize: x / max(||x||, 1e-12)
            norms = torch.linalg.vector_norm(raw, dim=1, keepdim=True)
            z = raw / norms.clamp_min(1e-12)
        else:
            z = raw
        chunks = z.split(len(batch.anchor))
        third = chunks[2] if len(chunks) == 3 else batch.similar
        labels = self.y[index[:len(batch.anchor)]]
        out = self.loss_fn(chunks[0], chunks[1], third, margin, self.cfg.temperature, labels=labels)
        return out, raw, None if norms is None else norms.squeeze(1)

    def train_step(self, step: int) -> None:
        """Step ``step`` (1-based): sample, forward, backward, measure, clip, update, record."""
        cfg = self.cfg
        lr = set_lr(self.optimizer, cfg, step - 1, self.total_steps)
        margin = self.margin.value
        batch = self.sampler.batch(step).shard(self.placement.rank, self.placement.world)
        out, raw, norms = self.forward(batch, margin)
        self.gradients.zero()
        out.loss.backward()
        if cfg.clip_grad is not None:  # the returned norm is the one before clipping
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad)
        else:
            grad_norm = self.gradients.norm()
        self.optimizer.step()
        if norms is None:
            norms = torch.linalg.vector_norm(raw.detach(), dim=1)
        self.recorder.record(step, (step - 1) // self.steps_per_epoch, lr, margin, out, norms, grad_norm)

    # ------------------------------------------------------------------------------- the run

    def run(self, on_rows: Callable[[int, int, dict], None] | None = None,
            stop_requested: Callable[[], bool] = lambda: False) -> Outcome:
        """Train to ``total_steps`` and return how the run ended. Only rank 0 writes files."""
        main = self.placement.is_main
        metrics_path = os.path.join(self.run_dir, METRICS_FILE)
        log = None
        if main:
            os.makedirs(self.run_dir, exist_ok=True)
            write_config(self.run_dir, self.cfg, self.resolved(), str(self.placement.device), self.placement.world)
            if os.path.exists(metrics_path):  # a resume: keep what the checkpoint covers (nothing without one)
                keep_steps_through(metrics_path, self.steps_done)
            log = MetricsFile(metrics_path)
        flush_every, last_flush = 50, time.monotonic()
        next_flush = self.next_flush(self.steps_done, flush_every)
        asks_each_step = not self.placement.distributed   # under torchrun, rank 0 decides stops at flushes
        stopped = "completed"
        try:
            while self.steps_done < self.total_steps:
                step = self.steps_done + 1
                self.train_step(step)
                self.steps_done = step
                due = step >= next_flush or (asks_each_step and stop_requested())
                if due:
                    elapsed, last_flush, flushed = time.monotonic() - last_flush, time.monotonic(), self.recorder.pending
                    if not self.write_pending(log, on_rows):
                        stopped = "nonfinite"
                        break
                if step % self.steps_per_epoch == 0:
                    self.end_epoch((step - 1) // self.steps_per_epoch)
                if not due:
                    continue
                # rank 0 sizes the next batch of rows to ~FLUSH_SECONDS of training, and decides on stops
                flush_every = self.placement.broadcast_int(rows_per_flush(flushed, elapsed, flush_every))
                next_flush = self.next_flush(step, flush_every)
                stop = self.placement.broadcast_int(int(stop_requested()))
                if step % self.cfg.checkpoint_every == 0 or step == self.total_steps or stop:
                    self.save()
                if stop and step < self.total_steps:
                    stopped = "interrupted"
                    break
        finally:
            if log is not None:
                log.close()
        return Outcome(self.run_dir, self.steps_done, self.total_steps, stopped)

    def next_flush(self, step: int, flush_every: int) -> int:
        """The step after which the rows recorded since ``step`` (none pending) are written, unless a
        stop comes first: when ``flush_every`` of them are pending (at most the recorder's capacity),
        at the last step, at the next checkpoint, and at the next epoch end when the margin adapts
        (it needs the epoch's rows). Worked out once per write, so a step costs one comparison."""
        checkpoint, epoch = self.cfg.checkpoint_every, self.steps_per_epoch
        due = min(step + min(flush_every, self.recorder.capacity), self.total_steps,
                  (step // checkpoint + 1) * checkpoint)
        if self.cfg.margin_schedule == "adaptive":
            due = min(due, (step // epoch + 1) * epoch)
        return due

    def write_pending(self, log: MetricsFile | None, on_rows) -> bool:
        """Drain the recorded steps into the log, up to and including a first non-finite loss.
        Returns False when there was one (the run must stop; ``steps_done`` is set to that step)."""
        rows = self.recorder.drain()
        bad = next((i for i, r in enumerate(rows) if not math.isfinite(r["loss"])), None)
        if bad is not None:
            rows = rows[:bad + 1]
            self.steps_done = rows[-1]["step"]
        if log is not None:
            log.append(rows)
        if on_rows is not None and log is not None and rows:
            on_rows(rows[-1]["step"], self.total_steps, rows[-1])
        self.count_easy(rows)
        return bad is None

    def count_easy(self, rows: list[dict]) -> None:
        for r in rows:
            if r["easy_fraction"] is not None:
                self.epoch_easy[0] += float(r["easy_count"])
                self.epoch_easy[1] += float(r["items"])

    def end_epoch(self, epoch: int) -> None:
        """Next epoch's margin; the adaptive schedule reads this epoch's easy fraction (complete,
        because run() flushes at every epoch end when the margin adapts)."""
        easy = self.epoch_easy[0] / self.epoch_easy[1] if self.epoch_easy[1] else None
        self.margin.end_of_epoch(epoch, easy)
        self.epoch_easy = [0.0, 0.0]

    def save(self) -> None:
        if self.placement.is_main:
            save_checkpoint(self.run_dir, {
                "model": self.encoder.state_dict(), "optimizer": self.optimizer.state_dict(),
                "margin": self.margin.state_dict(), "step": self.steps_done, "epoch_easy": list(self.epoch_easy),
                "config": self.cfg.to_dict()})
