"""Instructions per run, counted by valgrind's callgrind: a yardstick that a shared machine's noise
cannot move. Wall times on these 2-core VMs swing by a third from one minute to the next, which
hides any change of a few per cent; an instruction count repeats to within a few parts in ten
thousand. It counts work, not time: it cannot see threads waiting on each other or memory stalls,
so a change it approves is then confirmed in seconds (parallel.py, speed.py).

One process reads (``--stage read``) or reads and judges (``--stage judge``, the default) --runs of
parallel.py's 2,000-step logs after one more (imports and first calls done); the same process
with none of the --runs is subtracted, and the difference divided by their number. With --tree DIR
the same is counted for another checkout (e.g. `git worktree add /tmp/base HEAD~1`) and the ratio
printed; --top K lists the K functions (C level: the interpreter, numpy, LAPACK, pandas' parser)
whose instructions per run changed most (with one tree: the K with the most).

With --log FORMAT (a format of readers.py: jsonl, text, csv, ...) it counts instead reading one
--steps-step log of that format (readers.py's run), after reading a 2,000-step one of the same
format (imports and first calls), less the same process without the long read.

Needs valgrind (apt-get install valgrind); one to two minutes per tree at the defaults.
Usage: python benchmarks/instructions.py [--runs 40] [--stage judge|read] [--tree DIR] [--top 0]
       python benchmarks/instructions.py --log jsonl [--steps 200000] [--tree DIR] [--top 0]
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parallel import write_runs  # noqa: E402
from readers import write_all  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CODE = """
import glob, os, sys
from siamdiag.engine.analysis import analyze_run
from siamdiag.engine.prepare import Options, order_run
from siamdiag.logs.ingest import ReadOptions, inputs_of, read_input
stage, runs, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logs = inputs_of(sorted(glob.glob(os.path.join(directory, "*.csv"))), ReadOptions())

def one(log):
    raws = read_input(log, ReadOptions(), True)
    if stage == "judge":
        for raw in raws:
            analyze_run(order_run(raw), Options())

one(logs[-1])   # imports and first calls, counted on both sides
for log in logs[:runs]:
    one(log)
"""

LOG_CODE = """
import sys
from siamdiag.logs.ingest import read_runs
short, long, count = sys.argv[1:]
read_runs([short])   # imports and first calls, counted on both sides
if count == "1":
    read_runs([long])
"""


def counted(tree: str, code: str, args: list[str], out: str) -> int:
    """Instructions one process executes, read from callgrind's summary line."""
    env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", code,
                           *args], cwd=tree, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"valgrind failed in {tree}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def by_function(out: str) -> collections.Counter:
    """Instructions per function (file:function, the library left out) in one callgrind output."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", out], capture_output=True, text=True,
                          check=True).stdout
    totals: collections.Counter = collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.+?)(?:\s+\[[^\]]*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            totals[re.sub(r"^.*?/Python-[\d.]+/", "", m.group(2))] += int(m.group(1).replace(",", ""))
    return totals


def difference(tree: str, code: str, with_args: list[str], without_args: list[str], directory: str
               ) -> tuple[int, collections.Counter]:
    """Instructions, and per function, that the checkout at ``tree`` executes with ``with_args``
    beyond ``without_args`` (callgrind's outputs are written in ``directory``)."""
    with_out, without_out = os.path.join(directory, "with.out"), os.path.join(directory, "without.out")
    total = counted(tree, code, with_args, with_out) - counted(tree, code, without_args, without_out)
    functions = by_function(with_out)
    functions.subtract(by_function(without_out))
    return total, functions


def per_run(tree: str, stage: str, runs: int, directory: str) -> tuple[float, collections.Counter]:
    """Instructions per run, and per function per run, for the checkout at ``tree``."""
    total, functions = difference(tree, CODE, [stage, str(runs), directory], [stage, "0", directory], directory)
    return total / runs, collections.Counter({k: v / runs for k, v in functions.items()})


def one_log(tree: str, short: str, long: str, directory: str) -> tuple[float, collections.Counter]:
    """Instructions, and per function, to read the log ``long`` after the log ``short``."""
    return difference(tree, LOG_CODE, [short, long, "1"], [short, long, "0"], directory)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--stage", choices=("judge", "read"), default="judge")
    parser.add_argument("--tree", help="another checkout to count, for the ratio")
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--log", help="count reading one long log of this readers.py format instead")
    parser.add_argument("--steps", type=int, default=200_000, help="the long log's steps, with --log")
    args = parser.parse_args()
    trees = [HERE] + ([os.path.abspath(args.tree)] if args.tree else [])
    with tempfile.TemporaryDirectory() as directory:
        if args.log:
            short, long = (write_all(os.path.join(directory, str(n)), n)[args.log] for n in (2000, args.steps))
            results = [one_log(tree, short, long, directory) for tree in trees]
        else:
            write_runs(directory, args.runs + 1, 2000)
            results = [per_run(tree, args.stage, args.runs, directory) for tree in trees]
    print(f"instructions to read one {args.steps:,}-step {args.log} log, callgrind:" if args.log else
          f"instructions per 2,000-step run ({args.stage}), {args.runs} runs, callgrind:")
    for tree, (total, _functions) in zip(trees, results):
        print(f"{total / 1e6:10.2f} M  {tree}")
    if args.tree:
        print(f"ratio {results[0][0] / results[1][0]:.4f} (this checkout / {trees[1]})")
    if args.top:
        functions = results[0][1]
        if args.tree:
            functions.subtract(results[1][1])
        print("functions whose instructions per run changed most:" if args.tree else
              "functions with the most instructions per run:")
        for name, count in sorted(functions.items(), key=lambda item: -abs(item[1]))[:args.top]:
            print(f"{count / 1e3:+10.0f} k  {name[:100]}" if args.tree else f"{count / 1e3:10.0f} k  {name[:100]}")


if __name__ == "__main__":
    main()
