"""W&B run directories (``wandb/offline-run-<time>-<id>/`` and ``wandb/run-<time>-<id>/``), read
from the run's transaction log ``run-<id>.wandb``, the file ``wandb sync`` uploads. The log is
framed like a LevelDB log (a 7-byte file header ``:W&B`` 0xBEE1 0, then 32 KiB blocks of records,
each with a CRC-32 over its type byte and data, a length and a type: full, first, middle,
last); each record is one of W&B's protobuf ``Record`` messages, decoded with the ``wandb``
package's own classes (the 'wandb' extra: wandb 0.19 and later read the log only in their Go
core, so the framing is decoded here). A history record is one logged step.

Several directories with the same run id are one run (a resumed run, and what siamdiag's
write-back adds): their logs are read in start order, a step logged again keeping its last value."""
from __future__ import annotations

import json
import os
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ..tables import Metric

RUN_DIR = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-([0-9A-Za-z]+)")
HEADER = struct.Struct("<4sHB")     # ident, magic, version
RECORD = struct.Struct("<IHB")      # checksum, length, type
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
EXTRA = "reading a W&B run directory needs the wandb package: pip install 'siamdiag[wandb]'"


def run_log(directory: str) -> str | None:
    """The transaction log of a W&B run directory (``run-<id>.wandb`` in a directory named
    ``[offline-]run-<time>-<id>``), or None when ``directory`` is not one."""
    match = RUN_DIR.fullmatch(os.path.basename(os.path.normpath(directory)))
    if not match:
        return None
    path = os.path.join(directory, f"run-{match.group(2)}.wandb")
    return path if os.path.isfile(path) else None


def run_key(directory: str) -> tuple[str, str, str]:
    """(the folder the run directories are in, run id, start time): directories with the same
    first two are one run, read in start-time order."""
    match = RUN_DIR.fullmatch(os.path.basename(os.path.normpath(directory)))
    return os.path.dirname(os.path.normpath(directory)), match.group(2), match.group(1)


def wandb_installed() -> bool:
    try:
        import wandb.proto.wandb_internal_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def records(path: str):
    """The ``Record`` messages of a transaction log, in order. A damaged record is an error naming
    its byte offset; a last record cut short (a run still writing, or killed) ends the log."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise InputError(path, EXTRA) from None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    if len(data) < HEADER.size or HEADER.unpack_from(data)[:2] != (b":W&B", 0xBEE1):
        raise InputError(path, "not a W&B transaction log (no ':W&B' header)")
    pos, pending = HEADER.size, b""
    while pos + RECORD.size <= len(data):
        if BLOCK - pos % BLOCK < RECORD.size:   # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        checksum, length, kind = RECORD.unpack_from(data, pos)
        body = data[pos + RECORD.size:pos + RECORD.size + length]
        if len(body) < length:
            return
        if kind not in (FULL, FIRST, MIDDLE, LAST) or zlib.crc32(body, zlib.crc32(bytes([kind]))) != checksum:
            raise InputError(path, f"damaged record at byte {pos} (checksum or type does not match)")
        pos += RECORD.size + length
        pending = body if kind in (FULL, FIRST) else pending + body
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


@dataclass(frozen=True)
class RunInfo:
    """What the run record says of the run (needed to continue it: its id, project and entity)."""

    run_id: str
    project: str
    entity: str
    name: str


def _number(value_json: str) -> float | None:
    """A logged value as a float (NaN and ±Infinity as W&B writes them); None for anything else
    (media, tables, strings)."""
    try:
        value = json.loads(value_json)
    except ValueError:
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_wandb_run(paths: list[str]) -> tuple[dict[str, Metric], RunInfo | None, tuple[str, ...]]:
    """The numeric series logged to a run's history across its transaction logs (``paths``, in
    start order), keyed by their W&B names (nested keys joined with '.'; W&B's own ``_step``,
    ``_runtime``, ``_timestamp`` left out), the first run record, and notes (a log that added no
    history, as a write-back's, is not worth one)."""
    steps: dict[str, list[float]] = {}
    values: dict[str, list[float]] = {}
    info, logged = None, 0
    for path in paths:
        before = sum(map(len, steps.values()))
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run" and info is None:
                run = record.run
                info = RunInfo(run.run_id, run.project, run.entity, run.display_name)
            elif kind == "history":
                items = {item.key or ".".join(item.nested_key): item.value_json for item in record.history.item}
                step = _number(items.get("_step", "null"))
                step = float(record.history.step.num) if step is None else step
                for key, value_json in items.items():
                    value = None if key.startswith("_") else _number(value_json)
                    if value is not None:
                        steps.setdefault(key, []).append(step)
                        values.setdefault(key, []).append(value)
        logged += sum(map(len, steps.values())) > before
    series = {key: Metric(steps=np.asarray(steps[key]), values=np.asarray(values[key])) for key in steps}
    notes = ((f"read the history of run {info.run_id if info else '?'} from {logged} W&B run directories "
              "(a resumed run), in start order"),) if logged > 1 else ()
    return series, info, notes


def run_info(path: str) -> RunInfo:
    """The run record of a transaction log."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            run = record.run
            return RunInfo(run.run_id, run.project, run.entity, run.display_name)
    raise InputError(path, "no run record in this W&B transaction log")
