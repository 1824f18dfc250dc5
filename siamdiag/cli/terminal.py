"""Whether output may be coloured, by the conventions users set: NO_COLOR (any non-empty value,
no-color.org) and TERM=dumb turn colour off; a stream that is not a terminal never gets it."""
from __future__ import annotations

import os


def colour_allowed() -> bool:
    return os.environ.get("NO_COLOR", "") == "" and os.environ.get("TERM") != "dumb"


def colour_for(stream) -> bool:
    """Colour for text written to ``stream``."""
    return colour_allowed() and stream.isatty()


def stderr_console():
    """The console for progress and live panels (stderr)."""
    from rich.console import Console

    return Console(stderr=True, no_color=not colour_allowed())
