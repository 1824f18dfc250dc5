"""What siamdiag train's instrumentation costs per step, from many short paired blocks in one process.

One trainer alternates two kinds of blocks of a few steps, their order swapped every pair, so
machine noise and slow drifts hit both alike, and both use the same model, optimiser and data in
memory (two trainers differ in where their tensors lie, which alone moved paired ratios by up
to 3 %). Plain blocks train as a user's own loop would: the learning-rate schedule, the sampler,
augmentation, forward, loss, zeroing the gradients, backward, clipping when configured, optimiser
step, nothing recorded. They zero the gradients as the trainer does, in its flat buffer
(``--plain-zeroing buffer``, the default: the difference is the instrumentation alone), or as
PyTorch's ``zero_grad()`` does by default, setting them to None (``--plain-zeroing none``: siamdiag
train against a typical loop; its instrumented steps then also put the gradients back in the buffer
each step). Instrumented blocks run ``Trainer.train_step`` (the grad norm; the step's loss,
distances and embedding norms kept on the device and reduced to sums every few dozen steps) and the
run loop's per-step check whether rows are due.

Rows are written (drain, formatting, append and fsync of metrics.csv) when ``Trainer.run`` would
write them: once the rows of about 2 s of training are pending. Each write is timed apart and
charged per row relative to a plain step, both in wall time (an fsync waits without using the CPU).

The figure: median over pairs of (instrumented block / plain block) - 1, plus the writing's share,
with a 95 % bootstrap interval (pairs and writes resampled). The ratio of summed block times is
shown beside the median: it also counts what comes now and then (a full garbage collection of the
objects held between writes), at the price of every burst of load on one side; the garbage
collector's own time in each phase is printed too. On the CPU blocks
are timed in process CPU time, which other processes on a shared machine disturb far less than
wall time (wall time is shown too); on a GPU in wall time, synchronised at the block ends.

    python benchmarks/overhead.py                        # default run (digits, CNN), CPU
    python benchmarks/overhead.py --pairs 1600           # +/-0.3 % on the shared 2-core machine
    python benchmarks/overhead.py --plain-zeroing none   # against a loop that sets gradients to None
    python benchmarks/overhead.py --model mlp --batch-size 128
    python benchmarks/overhead.py --device cuda          # on a GPU, also counts host synchronisations
"""
from __future__ import annotations

import argparse
import gc
import os
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
from siamdiag.train.loop import Trainer, rows_per_flush  # noqa: E402
from siamdiag.train.metrics_file import MetricsFile  # noqa: E402
from siamdiag.train.schedules import set_lr  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clocks:
    """Wall and process CPU seconds of one timed stretch (the device synchronised at both ends)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "Clocks":
        synchronize(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


class CollectorTime:
    """Seconds CPython's garbage collector runs in each timed phase (``phase``: "plain", "recorded",
    "write"; None between them), and its full collections there: held objects make it walk the whole
    process now and then, a cost the median of paired blocks passes over and that may land in
    either block."""

    def __init__(self):
        self.phase, self.seconds, self.full, self.started = None, {}, 0, 0.0

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            self.started = time.perf_counter()
            return
        if self.phase is not None:
            self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + time.perf_counter() - self.started
            self.full += info["generation"] == 2


def plain_steps(trainer: Trainer, first: int, steps: int, zeroing: str) -> None:
    """``steps`` training steps as a loop without siamdiag would run them, with the trainer's parts;
    ``zeroing``: "buffer" (the trainer's flat gradient buffer) or "none" (gradients set to None)."""
    cfg, placement = trainer.cfg, trainer.placement
    for step in range(first, first + steps):
        set_lr(trainer.optimizer, cfg, step - 1, trainer.total_steps)
        batch = trainer.sampler.batch(step).shard(placement.rank, placement.world)
        out, _, _ = trainer.forward(batch, trainer.margin.value)
        if zeroing == "buffer":
            trainer.gradients.zero()
        else:
            trainer.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(trainer.params, cfg.clip_grad)
        trainer.optimizer.step()


def never() -> bool:
    return False


def instrumented_steps(trainer: Trainer, first: int, steps: int, next_flush: int) -> bool:
    """``steps`` recorded steps, each with the check Trainer.run makes after it (is a write due, was a
    stop asked for); whether rows are due."""
    due = False
    for step in range(first, first + steps):
        trainer.train_step(step)
        due = step >= next_flush or never() or due
    return due


def bootstrap(estimate, samples: list[np.ndarray], rounds: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of ``estimate(*samples)``, each sample resampled by rows."""
    rng = np.random.default_rng(seed)
    values = [estimate(*(s[rng.integers(0, len(s), len(s))] for s in samples)) for _ in range(rounds)]
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


# Columns of the per-pair times: seconds of the plain and the instrumented block, by each clock.
PLAIN_WALL, RECORDED_WALL, PLAIN_CPU, RECORDED_CPU = range(4)


def per_step_overhead(times: np.ndarray, clock: int) -> float:
    """Median over pairs of instrumented / plain block time, minus 1 (``clock``: PLAIN_WALL or PLAIN_CPU)."""
    return float(np.median(times[:, clock + 1] / times[:, clock]) - 1.0)


def summed_overhead(times: np.ndarray, clock: int) -> float:
    """Summed instrumented over summed plain block time, minus 1: unlike the median, it counts costs
    that come now and then (a full garbage collection) but also every burst of load on one side."""
    return float(times[:, clock + 1].sum() / times[:, clock].sum() - 1.0)


def writing_share(times: np.ndarray, writes: np.ndarray, steps: int) -> float:
    """Wall seconds spent writing per row (``writes``: seconds and rows of each write) over the wall
    seconds of a plain step (median block)."""
    return float(writes[:, 0].sum() / writes[:, 1].sum() / (np.median(times[:, PLAIN_WALL]) / steps))


def measure(args, placement: Placement, cfg: TrainConfig, collector: CollectorTime
            ) -> tuple[np.ndarray, np.ndarray, int, float, str]:
    """Paired block times, (seconds, rows) of each write, the rows per write, the one-time cost in
    seconds, and the model kind; ``collector`` is told which phase runs."""
    device = placement.device
    with tempfile.TemporaryDirectory() as workdir:
        trainer = Trainer(TrainConfig(**{**cfg.to_dict(), "steps": args.warmup + 2 * args.pairs * args.steps}),
                          workdir, placement)
        log = MetricsFile(os.path.join(workdir, METRICS_FILE))
        plain_steps(trainer, 1, args.warmup // 2, args.plain_zeroing)   # warm-up: allocator, kernels, caches
        first = 1 + args.warmup // 2
        with Clocks(device) as warm:
            instrumented_steps(trainer, first, args.warmup - args.warmup // 2, 10**9)
        trainer.write_pending(log, None)
        flush_every = rows_per_flush(args.warmup - args.warmup // 2, warm.wall, 50)   # what Trainer.run would hold
        first, times, writes = 1 + args.warmup, [], []

        def write() -> None:
            rows, collector.phase = trainer.recorder.pending, "write"
            with Clocks(device) as clocks:
                trainer.write_pending(log, None)
            writes.append((clocks.wall, rows))

        for k in range(args.pairs):
            block = {}
            for side in (("plain", "recorded") if k % 2 else ("recorded", "plain")):
                if side == "recorded":   # the step at which Trainer.run would write, counting this side's rows only
                    next_flush = trainer.next_flush(first - 1, flush_every - trainer.recorder.pending)
                collector.phase = side
                with Clocks(device) as block[side]:
                    if side == "plain":
                        plain_steps(trainer, first, args.steps, args.plain_zeroing)
                    else:
                        due = instrumented_steps(trainer, first, args.steps, next_flush)
                first += args.steps
            times.append((block["plain"].wall, block["recorded"].wall, block["plain"].cpu, block["recorded"].cpu))
            if due:
                write()
            collector.phase = None
        if trainer.recorder.pending:   # the run's last write
            write()
        log.close()
        with Clocks(device) as once:
            write_config(workdir, trainer.cfg, trainer.resolved(), str(device), placement.world)
            trainer.save()
    return np.array(times), np.array(writes, dtype=float), flush_every, once.wall, trainer.model_kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="auto")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--hidden", type=int, default=TrainConfig().hidden)
    parser.add_argument("--loss", default="contrastive")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--clip-grad", type=float, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="steps per block")
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=200, help="untimed steps on each side first")
    parser.add_argument("--plain-zeroing", choices=("buffer", "none"), default="buffer",
                        help="how plain blocks zero the gradients: the trainer's buffer, or set to None")
    args = parser.parse_args()
    placement = Placement(resolve_device(args.device))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cfg = TrainConfig(model=args.model, batch_size=args.batch_size, hidden=args.hidden, loss=args.loss,
                      normalize=args.normalize, clip_grad=args.clip_grad, device=args.device,
                      checkpoint_every=10**9).validate()
    load_before, collector = os.getloadavg()[0], CollectorTime()
    gc.callbacks.append(collector)
    try:
        times, writes, flush_every, once, model_kind = measure(args, placement, cfg, collector)
    finally:
        gc.callbacks.remove(collector)
    load_after = os.getloadavg()[0]
    # CPU time leaves out the time other processes hold the CPU; it cannot see a GPU's work
    clock, clock_name = (PLAIN_CPU, "process CPU time") if placement.device.type == "cpu" else (PLAIN_WALL, "wall time")
    step_part = per_step_overhead(times, clock)
    step_interval = bootstrap(lambda t: per_step_overhead(t, clock), [times])
    wall_part = per_step_overhead(times, PLAIN_WALL)
    wall_interval = bootstrap(lambda t: per_step_overhead(t, PLAIN_WALL), [times], seed=1)
    summed_part = summed_overhead(times, clock)
    summed_interval = bootstrap(lambda t: summed_overhead(t, clock), [times], seed=4)
    write_part = writing_share(times, writes, args.steps)
    write_interval = bootstrap(lambda t, w: writing_share(t, w, args.steps), [times, writes], seed=2)
    interval = bootstrap(lambda t, w: per_step_overhead(t, clock) + writing_share(t, w, args.steps),
                         [times, writes], seed=3)
    pct = lambda x: f"{100 * x:+.2f} %"  # noqa: E731
    between = lambda pair: f"{pct(pair[0])} to {pct(pair[1])}"  # noqa: E731
    device = placement.device
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"model={model_kind} hidden={args.hidden} loss={args.loss} batch={args.batch_size} "
          f"normalize={args.normalize} clip_grad={args.clip_grad} plain zeroing={args.plain_zeroing}")
    print(f"{args.pairs} pairs of {args.steps}-step blocks after {args.warmup} warm-up steps; "
          f"load average {load_before:.2f} before, {load_after:.2f} after")
    for label, wall, cpu in (("plain loop:", PLAIN_WALL, PLAIN_CPU), ("instrumented:", RECORDED_WALL, RECORDED_CPU)):
        print(f"{label:17s} {args.steps / np.median(times[:, wall]):7.1f} steps/s wall, "
              f"{1e6 * np.median(times[:, cpu]) / args.steps:7.1f} µs CPU per step (median block)")
    print(f"per step:         {pct(step_part)} ({clock_name}, median of paired ratios; 95 % interval "
          f"{between(step_interval)}); in wall time {pct(wall_part)} ({between(wall_interval)})")
    print(f"  summed blocks:  {pct(summed_part)} ({clock_name}, all instrumented over all plain blocks; 95 % interval "
          f"{between(summed_interval)})")
    print(f"writing rows:     {pct(write_part)} ({len(writes)} writes of up to {flush_every} rows, "
          f"{1e6 * writes[:, 0].sum() / writes[:, 1].sum():.1f} µs per row; 95 % interval {between(write_interval)})")
    print(f"overhead:         {pct(step_part + write_part)} of the time per step (95 % bootstrap interval "
          f"{between(interval)})")
    gc_ms = {phase: 1000 * collector.seconds.get(phase, 0.0) for phase in ("plain", "recorded", "write")}
    print(f"garbage collector: {collector.full} full collections; {gc_ms['plain']:.0f} ms in plain blocks, "
          f"{gc_ms['recorded']:.0f} ms in instrumented blocks, {gc_ms['write']:.0f} ms in writes")
    print(f"once per run:     {once * 1000:.0f} ms (config.json and the final checkpoint)")
    if device.type == "cuda":
        inside, flushes = count_synchronisations(cfg, placement, args.steps)
        print(f"host synchronisations: {inside} inside {args.steps} recorded steps, "
              f"{flushes} in the one drain that writes them (torch.cuda.set_sync_debug_mode)")


def count_synchronisations(cfg: TrainConfig, placement: Placement, steps: int) -> tuple[int, int]:
    """Synchronising CUDA calls made while recording ``steps`` steps, and while draining them."""
    import warnings

    trainer = Trainer(TrainConfig(**{**cfg.to_dict(), "steps": steps + 1}), "unused", placement)
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
