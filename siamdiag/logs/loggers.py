"""Which training library wrote a log, as far as its path says, and how to make that library log
the loss at every step: the advice for a run too short to judge because it was logged every k
steps (Hugging Face's Trainer logs every 500 by default, Lightning every 50)."""
from __future__ import annotations

import os
import re

TRAINER_STATE = "set TrainingArguments(logging_steps=1) or use siamdiag.SiamdiagTrainerCallback"
LIGHTNING_CSV = "set Trainer(log_every_n_steps=1) or use siamdiag.lightning.SiamdiagCallback"


def every_step_setting(path: str) -> str:
    """The setting, in the library's own words, for a Hugging Face ``trainer_state.json`` or a
    Lightning CSVLogger ``metrics.csv`` (in its ``version_<n>`` directory); '' for any other log."""
    name, folder = os.path.basename(path), os.path.basename(os.path.dirname(path))
    if name == "trainer_state.json":
        return TRAINER_STATE
    if name == "metrics.csv" and re.fullmatch(r"version_\d+", folder):
        return LIGHTNING_CSV
    return ""
