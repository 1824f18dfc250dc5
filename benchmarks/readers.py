"""Reading speed of each log format on a long run: the same N-step loss (and grad norm) written
as CSV, JSON lines, a TensorBoard event file, an MLflow run and a plain-text log, then
`siamdiag analyze` end to end on each in a fresh interpreter (imports included). Figures are
seconds and the ratio to the CSV run, all from one invocation.
Usage: python benchmarks/readers.py [--steps 1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import analyze_code, timed  # noqa: E402


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def event(step: int, tag: bytes, value: float) -> bytes:
    """One TensorBoard scalar event as torch.utils.tensorboard frames it (CRCs zeroed: unread)."""
    val = b"\x0a" + varint(len(tag)) + tag + b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + varint(len(val)) + val
    body = b"\x09" + struct.pack("<d", 1.7e9 + step) + (b"\x10" + varint(step) if step else b"") \
        + b"\x2a" + varint(len(summary)) + summary
    return struct.pack("<Q", len(body)) + b"\0" * 4 + body + b"\0" * 4


def write_all(directory: str, n: int) -> dict[str, str]:
    rng = np.random.default_rng(0)
    steps = np.arange(n)
    loss = 0.3 + 2.0 * np.exp(-steps / (n / 20)) + 0.02 * rng.standard_normal(n)
    grad = 1.0 + 0.1 * rng.standard_normal(n)
    paths = {}
    paths["csv"] = os.path.join(directory, "log.csv")
    with open(paths["csv"], "w") as fh:
        fh.write("step,loss,grad_norm\n")
        fh.writelines(f"{s},{v:.6f},{g:.6f}\n" for s, v, g in zip(steps, loss, grad))
    paths["jsonl"] = os.path.join(directory, "log.jsonl")
    with open(paths["jsonl"], "w") as fh:
        fh.writelines(json.dumps({"step": int(s), "loss": round(float(v), 6), "grad_norm": round(float(g), 6)}) + "\n"
                      for s, v, g in zip(steps, loss, grad))
    tb = os.path.join(directory, "tb")
    os.makedirs(tb)
    with open(os.path.join(tb, "events.out.tfevents.0.host"), "wb") as fh:
        fh.writelines(event(int(s), b"train/loss", float(v)) + event(int(s), b"train/grad_norm", float(g))
                      for s, v, g in zip(steps, loss, grad))
    paths["tensorboard"] = tb
    run = os.path.join(directory, "mlruns", "0", "run1")
    os.makedirs(os.path.join(run, "metrics"))
    open(os.path.join(run, "meta.yaml"), "w").close()
    for name, values in (("loss", loss), ("grad_norm", grad)):
        with open(os.path.join(run, "metrics", name), "w") as fh:
            fh.writelines(f"1700000000000 {v:.6f} {s}\n" for s, v in zip(steps, values))
    paths["mlflow"] = os.path.join(directory, "mlruns")
    paths["text"] = os.path.join(directory, "train.log")
    with open(paths["text"], "w") as fh:
        fh.writelines(f"step {s} | loss: {v:.6f} | grad_norm: {g:.6f}\n" for s, v, g in zip(steps, loss, grad))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        paths = write_all(directory, args.steps)
        results = {fmt: timed(analyze_code(path)) for fmt, path in paths.items()}
    base = results["csv"][0]
    print(f"analyze end to end, {args.steps:,} steps (loss + grad norm), fresh interpreter each:")
    print(f"{'format':<12} {'seconds':>8} {'x csv':>7} {'peak MB':>8}")
    for fmt, (wall, peak) in results.items():
        print(f"{fmt:<12} {wall:8.2f} {wall / base:7.2f} {peak:8.0f}")


if __name__ == "__main__":
    main()
