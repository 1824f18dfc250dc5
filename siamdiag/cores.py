"""The cores this process may run on, which siamdiag's thread and process pools are sized from."""
from __future__ import annotations

import os


def usable_cores() -> int | None:
    """The CPUs this process may run on (its affinity, which a container or taskset narrows), or
    None where the platform does not say (each caller then decides what to assume)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
