"""What siamdiag train's per-step instrumentation costs, in many short paired blocks in one process.

Instrumented: Trainer.train_step — every step measures loss, global grad norm, pair statistics,
embedding norm and non-finite count into the device buffer — and, at the end of each block, the
drain that formats the rows and appends them to metrics.csv (Trainer.run drains every ~2 s; a
drain per block charges the instrumented side more often than a real run does). Plain: the same
model, sampler, augmentation, loss and optimiser in a bare loop (forward, backward, step) that
records nothing, on a second trainer. The one-time costs of a run (config.json, the final
checkpoint) are timed on their own.

Each pair runs one block of each, in alternating order, so machine noise and slow drifts hit
both alike; the figure is the median over pairs of (instrumented time / plain time) - 1, with a
bootstrap 95 % interval of that median: with 40 pairs it resolves about ±1 %.

    python benchmarks/overhead.py                       # default run (digits, CNN), CPU
    python benchmarks/overhead.py --model mlp --batch-size 128
    python benchmarks/overhead.py --device cuda        # on a GPU, also checks no per-step sync
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from siamdiag.train.checkpoint import METRICS_FILE, write_config  # noqa: E402
from siamdiag.train.config import TrainConfig  # noqa: E402
from siamdiag.train.distributed import resolve_device, Placement  # noqa: E402
from siamdiag.train.loop import Trainer  # noqa: E402
from siamdiag.train.metrics_file import MetricsFile  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_trainer(cfg: TrainConfig, placement: Placement, steps: int, run_dir: str) -> Trainer:
    return Trainer(TrainConfig(**{**cfg.to_dict(), "steps": steps}), run_dir, placement)


def plain_block(trainer: Trainer, first: int, steps: int) -> float:
    """Seconds for ``steps`` bare training steps with the trainer's own parts."""
    margin = trainer.margin.value
    synchronize(trainer.placement.device)
    start = time.perf_counter()
    for step in range(first, first + steps):
        out, _, _ = trainer.forward(trainer.sampler.batch(step), margin)
        trainer.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        trainer.optimizer.step()
    synchronize(trainer.placement.device)
    return time.perf_counter() - start


def instrumented_block(trainer: Trainer, log: MetricsFile, first: int, steps: int) -> float:
    """Seconds for ``steps`` recorded steps and the drain that writes them to the log."""
    synchronize(trainer.placement.device)
    start = time.perf_counter()
    for step in range(first, first + steps):
        trainer.train_step(step)
    trainer.write_pending(log, None)
    synchronize(trainer.placement.device)
    return time.perf_counter() - start


def bootstrap_median(values: list[float], rounds: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of ``values``."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(rounds, len(values))), axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="auto")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--hidden", type=int, default=TrainConfig().hidden)
    parser.add_argument("--loss", default="contrastive")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=150, help="steps per block")
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    placement = Placement(resolve_device(args.device))
    cfg = TrainConfig(model=args.model, batch_size=args.batch_size, hidden=args.hidden, loss=args.loss, device=args.device,
                      checkpoint_every=10**9).validate()
    total = (args.pairs + 1) * args.steps
    ratios, plain_rates, instrumented_rates = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        plain = fresh_trainer(cfg, placement, total, os.path.join(workdir, "plain"))
        recorded = fresh_trainer(cfg, placement, total, os.path.join(workdir, "recorded"))
        os.makedirs(recorded.run_dir)
        log = MetricsFile(os.path.join(recorded.run_dir, METRICS_FILE))
        plain_block(plain, 1, args.steps)   # warm-up: allocator, kernels, caches
        instrumented_block(recorded, log, 1, args.steps)
        for k in range(1, args.pairs + 1):
            first = 1 + k * args.steps
            if k % 2:
                p = plain_block(plain, first, args.steps)
                i = instrumented_block(recorded, log, first, args.steps)
            else:
                i = instrumented_block(recorded, log, first, args.steps)
                p = plain_block(plain, first, args.steps)
            ratios.append(i / p - 1.0)
            plain_rates.append(args.steps / p)
            instrumented_rates.append(args.steps / i)
        log.close()
        start = time.perf_counter()
        write_config(recorded.run_dir, recorded.cfg, recorded.resolved(), str(placement.device), placement.world)
        recorded.save()
        once = time.perf_counter() - start
    low, high = bootstrap_median(ratios)
    print(f"device {placement.device} ({torch.cuda.get_device_name() if placement.device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); model={recorded.model_kind} "
          f"hidden={args.hidden} loss={args.loss} batch={args.batch_size}; {args.pairs} pairs of {args.steps}-step blocks")
    print(f"plain loop:    {statistics.median(plain_rates):8.1f} steps/s (median block)")
    print(f"siamdiag:      {statistics.median(instrumented_rates):8.1f} steps/s (median block)")
    print(f"overhead:      {100 * statistics.median(ratios):+.2f} % of the time per step, median of paired ratios "
          f"(95 % bootstrap interval {100 * low:+.2f} to {100 * high:+.2f} %; pairs from {100 * min(ratios):+.1f} "
          f"to {100 * max(ratios):+.1f} %)")
    print(f"once per run:  {once * 1000:.0f} ms (config.json and the final checkpoint)")
    if placement.device.type == "cuda":
        inside, flushes = count_synchronisations(cfg, placement, args.steps)
        print(f"host synchronisations: {inside} inside {args.steps} recorded steps, "
              f"{flushes} in the one drain that writes them (torch.cuda.set_sync_debug_mode)")


def count_synchronisations(cfg: TrainConfig, placement: Placement, steps: int) -> tuple[int, int]:
    """Synchronising CUDA calls made while recording ``steps`` steps, and while draining them."""
    import warnings

    trainer = fresh_trainer(cfg, placement, steps, "unused")
    trainer.train_step(1)
    trainer.recorder.drain()
    counts = []
    for phase in ("steps", "drain"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            if phase == "steps":
                for step in range(2, steps + 2):
                    trainer.train_step(step)
            else:
                trainer.recorder.drain()
            torch.cuda.set_sync_debug_mode(0)
        counts.append(sum("called a synchronizing CUDA operation" in str(w.message) for w in caught))
    return counts[0], counts[1]


if __name__ == "__main__":
    main()
