"""siamdiag: has this Siamese / metric-learning run's loss settled? A diagnostic and CI gate.

``siamdiag.analyze(...)`` is the Python API (see siamdiag.api); it is loaded on first use, so that
``import siamdiag`` stays light and the CLI can pin BLAS threads before numpy loads.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "analyze":
        from .api import analyze

        return analyze
    raise AttributeError(f"module 'siamdiag' has no attribute {name!r}")
