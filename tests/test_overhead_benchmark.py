"""benchmarks/overhead.py, the training-overhead yardstick: its estimates on block times whose answer
is known by construction, and one tiny end-to-end run (the benchmark drives the real trainer, so
it breaks when the trainer's API moves)."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "overhead.py")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("overhead_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_estimates_recover_the_overhead_built_into_the_block_times():
    bench = load_benchmark()
    rng = np.random.default_rng(0)
    plain_wall = rng.uniform(0.03, 0.09, 400)          # 20-step blocks, the machine's speed drifting
    plain_cpu = plain_wall * 0.9
    times = np.column_stack([plain_wall, plain_wall * 1.04, plain_cpu, plain_cpu * 1.02])
    assert bench.per_step_overhead(times, bench.PLAIN_WALL) == pytest.approx(0.04)
    assert bench.per_step_overhead(times, bench.PLAIN_CPU) == pytest.approx(0.02)
    assert bench.summed_overhead(times, bench.PLAIN_CPU) == pytest.approx(0.02)
    times[0, bench.RECORDED_CPU] += plain_cpu.sum()      # one block twice as long as all the plain ones
    assert bench.per_step_overhead(times, bench.PLAIN_CPU) == pytest.approx(0.02)   # the median passes over it
    assert bench.summed_overhead(times, bench.PLAIN_CPU) == pytest.approx(1.02)     # the sum counts it
    writes = np.array([(0.004, 300), (0.002, 100)])     # 15 µs per row written
    step = np.median(plain_wall) / 20
    assert bench.writing_share(times, writes, 20) == pytest.approx(15e-6 / step)


def test_the_bootstrap_interval_covers_the_median_and_narrows_with_more_pairs():
    bench = load_benchmark()
    rng = np.random.default_rng(1)

    def interval(pairs):
        plain = rng.uniform(0.03, 0.09, pairs)
        ratio = 1.03 + rng.normal(0, 0.05, pairs)        # a noisy machine; the true median ratio is 1.03
        times = np.column_stack([plain, plain * ratio, plain, plain * ratio])
        low, high = bench.bootstrap(lambda t: bench.per_step_overhead(t, bench.PLAIN_CPU), [times])
        estimate = bench.per_step_overhead(times, bench.PLAIN_CPU)
        assert low <= estimate <= high
        return low, high

    few, many = interval(40), interval(1000)
    assert few[0] < 0.03 < few[1] and many[0] < 0.03 < many[1]
    assert (many[1] - many[0]) < (few[1] - few[0]) / 3  # sqrt(25) = 5 times narrower, give or take
    assert many[1] - many[0] < 0.02                      # +/-1 % resolved by 1,000 pairs at this noise


@pytest.mark.parametrize("zeroing", ["buffer", "none"])
def test_a_tiny_run_prints_every_figure(tmp_path, zeroing):
    done = subprocess.run([sys.executable, SCRIPT, "--pairs", "4", "--steps", "2", "--warmup", "4",
                           "--model", "mlp", "--hidden", "16", "--plain-zeroing", zeroing],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    labels = [line.split(":")[0] for line in done.stdout.splitlines() if ":" in line]
    for label in ("plain loop", "instrumented", "per step", "  summed blocks", "writing rows", "overhead",
                  "garbage collector", "once per run"):
        assert label in labels, done.stdout
