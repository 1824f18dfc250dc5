"""siamdiag: has this Siamese / metric-learning run's loss settled? A diagnostic and CI gate.

``siamdiag.analyze(...)`` judges runs and ``siamdiag.judge_frame(df)`` gives one row per run for
distributed engines (siamdiag.api); ``siamdiag.Recorder`` logs a training loop
of your own (siamdiag.integrations.recorder, needs torch). Both load on first use, so that ``import siamdiag``
stays light and the CLI can pin BLAS threads before numpy loads.
"""
import importlib

__version__ = "0.1.0"
SUBPACKAGES = ("api", "engine", "logs", "report", "schemas", "pipeline")


def __getattr__(name: str):
    if name in ("analyze", "judge_frame", "judge_frame_meta", "JUDGE_FRAME_COLUMNS", "JUDGE_FRAME_SCHEMA",
                "StopWhenStationary"):
        from . import api

        return getattr(api, name)
    if name == "Recorder":
        from .integrations.recorder import Recorder

        return Recorder
    if name == "SiamdiagTrainerCallback":   # needs transformers
        from .integrations.huggingface import SiamdiagTrainerCallback

        return SiamdiagTrainerCallback
    if name == "SiamdiagKerasCallback":     # needs keras 3
        from .integrations.keras import SiamdiagKerasCallback

        return SiamdiagKerasCallback
    if name in SUBPACKAGES:   # ``siamdiag.schemas.load_schema`` after a plain ``import siamdiag``
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'siamdiag' has no attribute {name!r}")
