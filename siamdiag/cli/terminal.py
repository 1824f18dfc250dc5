"""What the terminal gets besides the report: colour by the conventions users set (NO_COLOR, any
non-empty value, no-color.org, and TERM=dumb turn it off; a stream that is not a terminal never
gets it), and a progress bar on stderr for long readings and drawings."""
from __future__ import annotations

import contextlib
import os
import sys


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
def progress_bar(what: str, total: int):
    """Yields advance(): a transient bar on stderr (``what``, done/total, time left) when stderr
    is a terminal, otherwise nothing at all (a CI log gets no bar, even with FORCE_COLOR set, and
    rich is not loaded for it)."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    console = stderr_console()
    if not console.is_terminal:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


@contextlib.contextmanager
def input_progress(paths: list[str]):
    """Yields advance(), called once per input read and judged: a bar when the inputs are many
    or large (see progress_bar)."""
    if len(paths) < PROGRESS_MIN_INPUTS and sum(
            os.path.getsize(p) for p in paths if os.path.isfile(p)) < PROGRESS_MIN_BYTES:
        yield lambda: None
        return
    with progress_bar("judging", len(paths)) as advance:
        yield advance


@contextlib.contextmanager
def drawing_progress(runs: int):
    """Yields advance(), called once per run drawn: a bar when the runs are many (see progress_bar)."""
    if runs < PROGRESS_MIN_INPUTS:
        yield lambda: None
        return
    with progress_bar("drawing", runs) as advance:
        yield advance
