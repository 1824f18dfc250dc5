"""siamdiag: has this Siamese / metric-learning run's loss settled? A diagnostic and CI gate.

``siamdiag.analyze(...)`` judges runs (siamdiag.api); ``siamdiag.Recorder`` logs a training loop
of your own (siamdiag.integrations.recorder, needs torch). Both load on first use, so that ``import siamdiag``
stays light and the CLI can pin BLAS threads before numpy loads.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "analyze":
        from .api import analyze

        return analyze
    if name == "Recorder":
        from .integrations.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'siamdiag' has no attribute {name!r}")
