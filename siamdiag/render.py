"""Renderers: one report, several formats. Registry keyed by the --format name; each takes a
Report and returns the text to write. They never print."""
from __future__ import annotations

import io
import json
from typing import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import fmt_step
from .report import Report, report_to_dict

VERDICT_STYLE = {
    "stationary": "green", "not_converged": "yellow", "nonstationary": "red", "diverged": "bold red",
    "degenerate": "magenta", "inconclusive": "cyan", "insufficient_data": "cyan",
}


def render_json(report: Report, color: bool = False) -> str:
    return json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n"


def render_table(report: Report, color: bool = False) -> str:
    table = Table()
    table.add_column("run", overflow="fold")
    table.add_column("verdict")
    table.add_column("gate")
    table.add_column("window (steps)", justify="right")
    table.add_column("why", overflow="fold")
    for r in report.runs:
        gate = report.run_gate(r)
        window = f"{fmt_step(r.window.first_step)}–{fmt_step(r.window.last_step)}" if r.window else "–"
        why = "\n".join(list(r.reasons) + [f"note: {n}" for n in r.notes])
        table.add_row(r.run, Text(r.verdict.value, style=VERDICT_STYLE[r.verdict.value]),
                      Text(gate, style="green" if gate == "pass" else "bold red"), window, why)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=140,
                      color_system="standard" if color else None)
    console.print(table)
    summary = "gate: PASS" if report.passed else "gate: FAIL"
    failing = sum(1 for r in report.runs if report.run_gate(r) == "fail")
    console.print(f"{summary} ({len(report.runs)} run{'s' if len(report.runs) != 1 else ''}, {failing} failing; "
                  f"family α={report.alpha:g} per run)")
    return buffer.getvalue()


RENDERERS: dict[str, Callable[[Report, bool], str]] = {
    "table": render_table,
    "json": render_json,
}
