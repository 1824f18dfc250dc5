"""The run directory's files other than the log: config.json and checkpoint.pt, both written
atomically (temporary file, then rename), so an interrupted write never leaves a broken file."""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from .. import __version__
from ..atomic import replacing
from ..errors import InputError, UsageError
from .config import TrainConfig

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE = "config.json", "metrics.csv", "checkpoint.pt"


def write_config(run_dir: str, cfg: TrainConfig, resolved: dict, device: str, world: int) -> None:
    """Everything needed to reproduce the run: the full configuration, what it resolved to on this
    data, the device, and the versions of the software that ran it."""
    import numpy
    import sklearn

    document = {
        "config": cfg.to_dict(),
        "resolved": resolved,
        "seed": cfg.seed,
        "device": device,
        "world_size": world,
        "versions": {"siamdiag": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
                     "scikit-learn": sklearn.__version__, "python": platform.python_version()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
    }
    text = json.dumps(document, indent=2) + "\n"
    with replacing(os.path.join(run_dir, CONFIG_FILE), "wb") as fh:
        fh.write(text.encode())


def read_config(run_dir: str) -> TrainConfig:
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"--resume {run_dir}: no {CONFIG_FILE} there; is it a siamdiag run directory?")
    try:
        with open(path, encoding="utf-8") as fh:
            document = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno)
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise InputError(path, "no 'config' object")
    return TrainConfig.from_dict(document["config"], path)


def save_checkpoint(run_dir: str, state: dict) -> None:
    with replacing(os.path.join(run_dir, CHECKPOINT_FILE), "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(run_dir: str) -> dict | None:
    """The last checkpoint, loaded with weights_only=True (tensors and plain data only)."""
    path = os.path.join(run_dir, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-facing input error
        raise InputError(path, f"cannot load checkpoint ({type(exc).__name__}: {exc})")
