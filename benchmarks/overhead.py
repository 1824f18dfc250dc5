"""What siamdiag train's per-step instrumentation costs, side by side in one process.

Instrumented: Trainer.run — every step measures loss, global grad norm, pair statistics, embedding
norm and non-finite count into the device buffer; rows are drained, formatted and fsynced to
metrics.csv every ~2 s; a checkpoint at the end. Plain: the same model, sampler, augmentation,
loss and optimiser in a bare loop (forward, backward, step) that records nothing.

Blocks of each alternate (plain, instrumented, plain, ...) so machine noise hits both alike;
the figure is the ratio of median steps per second.

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

import torch  # noqa: E402

from siamdiag.train.config import TrainConfig  # noqa: E402
from siamdiag.train.distributed import resolve_device, Placement  # noqa: E402
from siamdiag.train.loop import Trainer  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_trainer(cfg: TrainConfig, placement: Placement, steps: int, run_dir: str) -> Trainer:
    return Trainer(TrainConfig(**{**cfg.to_dict(), "steps": steps}), run_dir, placement)


def plain_block(trainer: Trainer, steps: int) -> float:
    """Seconds for ``steps`` bare training steps with the trainer's own parts."""
    margin = trainer.margin.value
    synchronize(trainer.placement.device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        out, _, _ = trainer.forward(trainer.sampler.batch(step), margin)
        trainer.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        trainer.optimizer.step()
    synchronize(trainer.placement.device)
    return time.perf_counter() - start


def instrumented_block(trainer: Trainer) -> float:
    """Seconds for a full Trainer.run: every step recorded, the log written, a final checkpoint."""
    synchronize(trainer.placement.device)
    start = time.perf_counter()
    trainer.run()
    synchronize(trainer.placement.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="auto")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--hidden", type=int, default=TrainConfig().hidden)
    parser.add_argument("--loss", default="contrastive")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=1500, help="steps per block")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    placement = Placement(resolve_device(args.device))
    cfg = TrainConfig(model=args.model, batch_size=args.batch_size, hidden=args.hidden, loss=args.loss, device=args.device,
                      checkpoint_every=10**9).validate()
    plain_rates, instrumented_rates = [], []
    with tempfile.TemporaryDirectory() as workdir:
        plain_block(fresh_trainer(cfg, placement, 100, workdir), 100)  # warm-up: allocator, kernels, caches
        instrumented_block(fresh_trainer(cfg, placement, 100, os.path.join(workdir, "warm")))
        for k in range(args.repeats):
            plain_rates.append(args.steps / plain_block(fresh_trainer(cfg, placement, args.steps, workdir), args.steps))
            trainer = fresh_trainer(cfg, placement, args.steps, os.path.join(workdir, f"run{k}"))
            instrumented_rates.append(args.steps / instrumented_block(trainer))
    plain, instrumented = statistics.median(plain_rates), statistics.median(instrumented_rates)
    print(f"device {placement.device} ({torch.cuda.get_device_name() if placement.device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); model={trainer.model_kind} "
          f"hidden={args.hidden} loss={args.loss} batch={args.batch_size}; {args.repeats} alternating blocks of {args.steps} steps")
    print(f"plain loop:    {plain:8.1f} steps/s (blocks: {', '.join(f'{r:.0f}' for r in plain_rates)})")
    print(f"siamdiag:      {instrumented:8.1f} steps/s (blocks: {', '.join(f'{r:.0f}' for r in instrumented_rates)})")
    print(f"overhead:      {100 * (1 - instrumented / plain):+.1f} % of steps per second")
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
