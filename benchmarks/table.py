"""The verdict table for many runs (issue #20 item 4), two figures, each paired in one invocation
(the two sides alternate, round after round; medians):
1. render_table on the runs judged in this process, against rich drawing the same table (what
   render_table did before report/plain_table.py); the two texts must be identical.
2. End to end, `siamdiag analyze DIR --jobs 2` with the default table (COLUMNS=140, stdout not a
   terminal) against the same with --format json.
The logs are benchmarks/parallel.py's: 1,000 CSV logs of 2,000 steps by default.
Usage: python benchmarks/table.py [--runs 1000] [--steps 2000] [--rounds 5] [--width 140]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

# One BLAS thread in this process too (as the CLI pins it), set before numpy loads.
os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parallel import write_runs  # noqa: E402
from speed import ENV  # noqa: E402


def rich_drawn(report, width: int) -> str:
    """The table as render_table drew it before plain_table: rich's Console, no colour."""
    from rich.console import Console

    from siamdiag.report.render import gate_line, wide_table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, no_color=True, width=width, color_system=None)
    console.print(wide_table(report, width))
    console.print(gate_line(report))
    return buffer.getvalue()


def paired(sides: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each side, the sides called in turn every round."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def analyze(directory: str, width: int, *args: str) -> None:
    env = {**ENV, "COLUMNS": str(width)}
    out = subprocess.run([sys.executable, "-m", "siamdiag", "analyze", directory, "--jobs", "2", *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if out.returncode not in (0, 1):
        raise SystemExit(out.stderr.decode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=140)
    args = parser.parse_args()
    from siamdiag.pipeline import analyze_paths
    from siamdiag.report.render import render_table

    with tempfile.TemporaryDirectory() as directory:
        write_runs(directory, args.runs, args.steps)
        report = analyze_paths([directory], jobs=2)
        same = render_table(report, False, args.width) == rich_drawn(report, args.width)   # also loads rich
        drawing = paired({"rich": lambda: rich_drawn(report, args.width),
                          "plain_table": lambda: render_table(report, False, args.width)}, args.rounds)
        whole = paired({"table": lambda: analyze(directory, args.width),
                        "json": lambda: analyze(directory, args.width, "--format", "json")}, args.rounds)
    print(f"{args.runs:,} runs x {args.steps:,} steps, width {args.width}, {os.cpu_count()} cores, "
          f"medians of {args.rounds} paired rounds")
    print(f"render_table: rich {drawing['rich']:.3f} s, plain_table {drawing['plain_table']:.3f} s "
          f"({drawing['rich'] / drawing['plain_table']:.1f}x); identical text: {same}")
    print(f"analyze --jobs 2: table {whole['table']:.2f} s, json {whole['json']:.2f} s "
          f"(table/json {whole['table'] / whole['json']:.3f})")


if __name__ == "__main__":
    main()
