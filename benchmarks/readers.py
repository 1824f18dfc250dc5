"""Reading speed of each log format on a long run: the same N-step loss (and grad norm) written
as CSV, JSON lines, a TensorBoard event file, an MLflow run and a plain-text log, then
`siamdiag analyze` end to end on each in a fresh interpreter (imports included). Figures are
seconds and the ratio to the CSV run, peak memory, and peak memory against the size of the log
(issue #12's bar: at most 3x), all from one invocation. The import floor is the peak of the same
interpreter analysing a 2,000-step CSV.
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
    """One TensorBoard scalar event's payload as torch.utils.tensorboard writes it."""
    val = b"\x0a" + varint(len(tag)) + tag + b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + varint(len(val)) + val
    return b"\x09" + struct.pack("<d", 1.7e9 + step) + (b"\x10" + varint(step) if step else b"") \
        + b"\x2a" + varint(len(summary)) + summary


def tfrecords(payloads: list[bytes]) -> bytes:
    """The payloads framed as TFRecords, with their masked CRC-32Cs (computed all at once)."""
    from siamdiag.logs.readers.crc32c import crc32c, crc32c_many, masked

    lengths = np.array([len(p) for p in payloads], dtype=np.int64)
    starts = 1 + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    crcs = masked(crc32c_many(np.frombuffer(b"\0" + b"".join(payloads), np.uint8), starts, lengths)).tolist()
    headers = {n: struct.pack("<Q", n) for n in set(lengths.tolist())}
    headers = {n: h + struct.pack("<I", int(masked(crc32c(h))[0])) for n, h in headers.items()}
    return b"".join(headers[len(p)] + p + struct.pack("<I", c) for p, c in zip(payloads, crcs))


def write_all(directory: str, n: int) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
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
        fh.write(tfrecords([e for s, v, g in zip(steps, loss, grad)
                            for e in (event(int(s), b"train/loss", float(v)), event(int(s), b"train/grad_norm", float(g)))]))
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


def write_training_log(path: str, target_mb: float) -> str:
    """A log with siamdiag train's twelve columns, about ``target_mb`` large (the size of the
    log in issue #12 whose reading peaked at 1.2 GB)."""
    from siamdiag.train.metrics_file import COLUMNS

    n = int(target_mb * 2**20 / 96)   # ~96 bytes a row
    rng = np.random.default_rng(1)
    t = np.arange(1, n + 1)
    columns = {"step": t, "epoch": t // 500, "loss": 0.3 + 0.02 * rng.standard_normal(n),
               "grad_norm": 1 + 0.1 * rng.standard_normal(n), "lr": np.full(n, 0.1), "margin": np.full(n, 1.0),
               "pos_dist": 0.2 + 0.01 * rng.standard_normal(n), "neg_dist": 0.9 + 0.01 * rng.standard_normal(n),
               "easy_fraction": rng.random(n), "active_fraction": rng.random(n),
               "embedding_norm": 1 + 0.01 * rng.standard_normal(n), "nonfinite": np.zeros(n, dtype=int)}
    with open(path, "w") as fh:
        fh.write(",".join(COLUMNS) + "\n")
        np.savetxt(fh, np.column_stack([columns[c] for c in COLUMNS]), delimiter=",",
                   fmt=["%d", "%d"] + ["%.8g"] * 9 + ["%d"])
    return path


def size_mb(path: str) -> float:
    """A file's size, or a directory's (every file in it), in MB."""
    if os.path.isfile(path):
        return os.path.getsize(path) / 2**20
    return sum(os.path.getsize(os.path.join(root, f)) for root, _dirs, files in os.walk(path) for f in files) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        floor = timed(analyze_code(write_all(os.path.join(directory, "small"), 2000)["csv"]))[1]
        paths = write_all(directory, args.steps)
        paths["csv, 12 columns, 169 MB"] = write_training_log(os.path.join(directory, "metrics.csv"), 169)
        sizes = {fmt: size_mb(path) for fmt, path in paths.items()}
        results = {fmt: timed(analyze_code(path)) for fmt, path in paths.items()}
    base = results["csv"][0]
    print(f"analyze end to end, {args.steps:,} steps (loss + grad norm), fresh interpreter each; "
          f"import floor {floor:.0f} MB:")
    print(f"{'format':<26} {'seconds':>8} {'x csv':>7} {'file MB':>8} {'peak MB':>8} {'peak/file':>10} "
          f"{'(peak-floor)/file':>18}")
    for fmt, (wall, peak) in results.items():
        print(f"{fmt:<26} {wall:8.2f} {wall / base:7.2f} {sizes[fmt]:8.0f} {peak:8.0f} {peak / sizes[fmt]:10.2f} "
              f"{(peak - floor) / sizes[fmt]:18.2f}")


if __name__ == "__main__":
    main()
