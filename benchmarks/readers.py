"""Reading speed of each log format on a long run: the same N-step loss (and grad norm) written
as CSV (with LF line ends, and with the CRLF of Keras' and Lightning's CSVLoggers), JSON lines, a
TensorBoard event file, an MLflow run, an MLflow SQLite store (when mlflow is installed: its
schema is MLflow's) and a plain-text log, plus siamdiag train's twelve-column log sized like
issue #12's. Two measures, each paired in one invocation (the formats alternate,
the order reversed every round; medians of the rounds, ratios the medians of paired ratios):

- reading alone, in one interpreter after its imports: ``read_runs`` on each log against a plain
  ``pandas.read_csv`` of the CSV (issue #18's bar: within 1.5x);
- ``siamdiag analyze`` end to end in a fresh interpreter each (imports included), against the
  CSV (issue #20's bar: every format within 2x), with its peak memory against the log's size
  (issue #12's bar: at most 3x). The import floor is the peak analysing a 2,000-step CSV that
  pandas reads (CRLF line ends: the plain-numbers reader leaves it to pandas), so that the
  libraries a long log loads are not counted against it.

Usage: python benchmarks/readers.py [--steps 1000000] [--repeats 5] [--formats csv,jsonl,...]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import ENV, analyze_code, paired, timed  # noqa: E402


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
    paths["csv (crlf)"] = os.path.join(directory, "crlf.csv")   # line ends as the csv module writes them (CSVLoggers)
    with open(paths["csv"], "rb") as lf, open(paths["csv (crlf)"], "wb") as crlf:
        crlf.write(lf.read().replace(b"\n", b"\r\n"))
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
    if importlib.util.find_spec("mlflow"):
        paths["mlflow sqlite"] = write_mlflow_db(os.path.join(directory, "mlflow.db"), {"loss": loss, "grad_norm": grad})
    return paths


def write_mlflow_db(path: str, metrics: dict[str, np.ndarray]) -> str:
    """An MLflow SQLite store with one run logging ``metrics`` at every step: MLflow creates the
    store and the run (its schema and indexes), the rows are inserted directly (logging millions of
    values through MLflow's client takes minutes), latest_metrics kept as MLflow keeps it."""
    import logging

    import mlflow

    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{path}")
    run = client.create_run(client.create_experiment("readers"), run_name="long").info.run_id
    client.log_metric(run, next(iter(metrics)), 0.0, step=0)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM metrics")
        db.execute("DELETE FROM latest_metrics")
        for key, values in metrics.items():
            n = len(values)
            db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
                           ((key, round(float(v), 6), 1_700_000_000_000 + s, run, s) for s, v in enumerate(values)))
            db.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, 0, ?)",
                       (key, round(float(values[-1]), 6), 1_700_000_000_000 + n - 1, n - 1, run))
    return path


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


READ_CODE = """
import gc, json, sys, time
import pandas
from siamdiag.logs.ingest import read_runs
paths, csv, repeats = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
read_runs([csv]), pandas.read_csv(csv)
names = ["read_csv", *paths]
times = {name: [] for name in names}
for round_ in range(repeats):
    for name in (names if round_ % 2 == 0 else names[::-1]):
        gc.collect()
        t0 = time.perf_counter()
        pandas.read_csv(csv) if name == "read_csv" else read_runs([paths[name]])
        times[name].append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def reading_times(paths: dict[str, str], csv: str, repeats: int) -> dict[str, list[float]]:
    """Seconds ``read_runs`` takes on each log, and plain ``pandas.read_csv`` on the CSV, each
    round in one interpreter after its imports."""
    out = subprocess.run([sys.executable, "-c", READ_CODE, json.dumps(paths), csv, str(repeats)], env=ENV,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def paired_ratio(ours: list[float], other: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(ours, other))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", help="comma-separated: only these (csv is always measured)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        floor = timed(analyze_code(write_all(os.path.join(directory, "small"), 2000)["csv (crlf)"]))[1]
        paths = write_all(directory, args.steps)
        paths["csv, 12 columns, 169 MB"] = write_training_log(os.path.join(directory, "metrics.csv"), 169)
        if args.formats:
            unknown = set(args.formats.split(",")) - set(paths)
            if unknown:
                parser.error(f"--formats: no format {', '.join(sorted(unknown))}; the formats are {', '.join(paths)}")
            paths = {fmt: path for fmt, path in paths.items() if fmt == "csv" or fmt in args.formats.split(",")}
        sizes = {fmt: size_mb(path) for fmt, path in paths.items()}
        reads = reading_times(paths, paths["csv"], args.repeats)
        runs = paired({fmt: analyze_code(path) for fmt, path in paths.items()}, args.repeats)
    print(f"{args.steps:,} steps (loss + grad norm); medians of {args.repeats} alternating rounds. Reading in-process "
          f"(read_runs) against plain pandas.read_csv of the CSV: {statistics.median(reads['read_csv']) * 1000:.0f} ms. "
          f"analyze end to end, fresh interpreter each; import floor {floor:.0f} MB:")
    print(f"{'format':<26} {'read ms':>8} {'x read_csv':>10} {'analyze s':>10} {'x csv':>6} {'file MB':>8} {'peak MB':>8} "
          f"{'peak/file':>10} {'(peak-floor)/file':>18}")
    for fmt, samples in runs.items():
        wall = statistics.median(w for w, _ in samples)
        peak = max(m for _, m in samples)
        print(f"{fmt:<26} {statistics.median(reads[fmt]) * 1000:8.0f} {paired_ratio(reads[fmt], reads['read_csv']):10.2f} "
              f"{wall:10.2f} {paired_ratio([w for w, _ in samples], [w for w, _ in runs['csv']]):6.2f} "
              f"{sizes[fmt]:8.0f} {peak:8.0f} {peak / sizes[fmt]:10.2f} {(peak - floor) / sizes[fmt]:18.2f}")


if __name__ == "__main__":
    main()
