"""What the terminal gets besides the report: colour by the conventions users set (NO_COLOR, any
non-empty value, no-color.org, and TERM=dumb turn it off; a stream that is not a terminal never
gets it), and a progress bar on stderr for long readings."""
from __future__ import annotations

import contextlib
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


PROGRESS_MIN_INPUTS = 20            # a bar for many inputs ...
PROGRESS_MIN_BYTES = 50 * 2**20     # ... or for large ones


@contextlib.contextmanager
def input_progress(paths: list[str]):
    """Yields advance(), called once per input read and judged: a progress bar on stderr when
    stderr is a terminal and the inputs are many or large, otherwise nothing at all (a CI log
    gets no bar)."""
    console = stderr_console()
    if not console.is_terminal or (len(paths) < PROGRESS_MIN_INPUTS and sum(
            os.path.getsize(p) for p in paths if os.path.isfile(p)) < PROGRESS_MIN_BYTES):
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("judging"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("judging", total=len(paths))
        yield lambda: bar.advance(task)
