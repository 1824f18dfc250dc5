"""Following a log that is still being written: how many complete rows have arrived since the
last look, re-judging as they come, and what stderr shows of it. Reading only the appended bytes
keeps a poll cheap on a long log; the judging itself re-reads the file, whose incomplete last
line the readers set aside."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import click

from ..errors import SiamdiagError, UsageError
from .exit_codes import Terminated


@dataclass
class LogFollower:
    """Counts the newline-terminated rows of a growing file. A file that shrinks (rotated or
    rewritten) is counted again from its start. ``changed_at`` is when its size last changed
    (its appearance included), or when following began."""

    path: str
    offset: int = 0
    rows: int = 0
    size: int | None = None
    changed_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if os.path.isdir(self.path):
            raise UsageError(f"{self.path}: watch follows one log file (CSV, TSV, JSON lines or text), not a directory")
        if self.path.endswith(".gz"):
            raise UsageError(f"{self.path}: a gzip file cannot be followed while it is written")

    def poll(self) -> int:
        """New complete rows since the last poll (0 while the file does not exist yet)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return 0
        if size != self.size:
            self.size, self.changed_at = size, time.monotonic()
        if size < self.offset:
            self.offset, self.rows = 0, 0
        if size == self.offset:
            return 0
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(size - self.offset)
        complete = chunk.rfind(b"\n") + 1  # a partial last line waits for its newline
        new = chunk.count(b"\n", 0, complete)
        self.offset += complete
        self.rows += new
        return new


class LivePanel:
    """On a terminal: the latest verdict table, redrawn in place. It stays on screen after the
    watch unless stdout is a terminal too, where the final report takes its place (not twice)."""

    def __init__(self, console, path: str):
        from rich.live import Live
        from rich.text import Text

        self.console, self.text = console, Text
        self.live = Live(Text(f"waiting for {path} ..."), console=console, auto_refresh=False,
                         transient=sys.stdout.isatty(), redirect_stdout=False)

    def __enter__(self) -> "LivePanel":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def judged(self, report, rows: int) -> None:
        from ..report.render import RENDERERS

        table = RENDERERS["table"](report, True, self.console.width)
        self.live.update(self.text.from_ansi(table + f"judged at row {rows:,}; watching (Ctrl-C stops)"), refresh=True)

    def not_yet(self, rows: int, reason: str) -> None:
        self.live.update(self.text(f"{rows:,} rows; not judged yet: {reason}"), refresh=True)


class LogLines:
    """Off a terminal (a CI log, a pipe): one line on stderr per judgement, and one per new reason
    the log cannot be judged yet (not one per look); a panel redrawn in place would be garbage there."""

    def __init__(self):
        self.last = ""

    def __enter__(self) -> "LogLines":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def judged(self, report, rows: int) -> None:
        self.say(f"judged at row {rows:,}: " + ", ".join(f"{r.run}: {r.verdict.value}" for r in report.runs))

    def not_yet(self, rows: int, reason: str) -> None:
        self.say(f"not judged yet: {reason}")

    def say(self, line: str) -> None:
        if line != self.last:
            click.echo(f"siamdiag watch: {line}", err=True)
            self.last = line


# A log that has not grown for this long is judged with the rows it has: training paused or ended,
# and the last judgement should show where the run stands.
PAUSE_SECONDS = 2.0


def follow(follower: LogFollower, judge: Callable, every: int, interval: float, display,
           timeout: float | None = None, idle_timeout: float | None = None):
    """Look at the log every ``interval`` seconds and re-judge it every ``every`` new rows (as soon
    as it first has any, and when it stops growing with rows not yet judged), showing each
    judgement on ``display``, until Ctrl-C, SIGTERM or a timeout: ``timeout`` seconds in all, or
    ``idle_timeout`` seconds without the file growing. A log that cannot be judged yet is tried
    again only once more rows arrive. Returns the last report (None before the first), the rows it
    covered, and which timeout stopped the watch ('' for a signal)."""
    started = time.monotonic()
    report, judged_rows, pending = None, 0, 0
    try:
        while True:
            pending += follower.poll()
            paused = time.monotonic() - follower.changed_at >= PAUSE_SECONDS
            if pending >= every or (pending and (report is None or paused)):
                try:
                    report = judge()
                    judged_rows, pending = follower.rows, 0
                    display.judged(report, judged_rows)
                except SiamdiagError as exc:  # a header still being written, too few rows, ...
                    display.not_yet(follower.rows, str(exc))
                    pending = 0   # the same rows would fail the same way: wait for more
            now = time.monotonic()
            if timeout is not None and now - started >= timeout:
                return report, judged_rows, f"stopped after {timeout:g} s (--timeout)"
            if idle_timeout is not None and now - follower.changed_at >= idle_timeout:
                return report, judged_rows, f"{follower.path} has not grown for {idle_timeout:g} s (--idle-timeout)"
            time.sleep(interval)
    except (KeyboardInterrupt, Terminated):
        return report, judged_rows, ""
