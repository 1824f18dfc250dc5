"""The public import path of the Lightning callback, as documented in README:
``from siamdiag.lightning import SiamdiagCallback``. The callback lives in
``siamdiag.integrations.lightning``."""
from .integrations.lightning import SiamdiagCallback

__all__ = ["SiamdiagCallback"]
