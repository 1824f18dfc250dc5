"""Renderers: one report, several formats. Registry keyed by the --format name; each takes a
Report and returns the text to write. They never print. The HTML page has its own module
(html.py). rich and ElementTree load only for the formats that need them: a CI gate asking for
JSON or GitHub annotations does not pay for them."""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sys
from typing import TYPE_CHECKING, Callable

from .. import __version__
from ..engine.analysis import RunResult, fmt_step
from ..engine.decide import Verdict
from . import indented_json
from .model import Report, report_to_dict

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .plain_table import TableColumn

# Verdicts that pass the gate but deserve a look (they fail under --strict).
WARNING_VERDICTS = frozenset({Verdict.INCONCLUSIVE, Verdict.INSUFFICIENT_DATA})

VERDICT_STYLE = {
    "stationary": "green", "not_converged": "yellow", "nonstationary": "red", "diverged": "bold red",
    "degenerate": "magenta", "inconclusive": "cyan", "insufficient_data": "cyan", "no_data": "bold red",
}


def render_json(report: Report, color: bool = False) -> str:
    return indented_json.dumps(report_to_dict(report)) + "\n"


# Below this many columns the table's six columns leave the "why" too narrow to read: each run
# becomes a heading line with its reasons wrapped underneath.
NARROW_COLUMNS = 120
# Width when neither COLUMNS nor a terminal says: CI log viewers are wide.
DEFAULT_COLUMNS = 140


def output_width() -> int:
    """The width to render for: $COLUMNS, else the terminal's, else DEFAULT_COLUMNS (never under 40)."""
    return max(40, shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns)


def render_table(report: Report, color: bool = False, width: int | None = None) -> str:
    """The verdict table fitted to `width` columns (default: the terminal's): a table with the
    reasons wrapped in their column, or, on a narrow terminal, one block per run. Without colour
    the wide table is drawn as plain text (plain_table: the same bytes as rich, about ten times faster
    for many runs), unless rich's box characters differ on this platform or the columns need
    rich's squeezing."""
    width = output_width() if width is None else width
    if width >= NARROW_COLUMNS and not color and sys.platform != "win32":
        from .plain_table import draw_table

        table = draw_table(wide_columns(width), [wide_cells(report, r) for r in report.runs], width)
        if table is not None:   # the gate line, under 90 cells, is never wrapped at these widths
            return table + gate_line(report) + "\n"
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width,
                      color_system="standard" if color else None)
    if width >= NARROW_COLUMNS:
        console.print(wide_table(report, width))
    else:
        for r in report.runs:
            print_run_block(console, report, r)
    console.print(gate_line(report))
    return buffer.getvalue()


def gate_line(report: Report) -> str:
    """The table's last line: the gate, how many runs failed, and the family level."""
    summary = "gate: PASS" if report.passed else "gate: FAIL"
    failing = sum(1 for r in report.runs if report.run_gate(r) == "fail")
    return (f"{summary} ({len(report.runs)} run{'s' if len(report.runs) != 1 else ''}, {failing} failing; "
            f"family α={report.alpha:g} per run)")


def why_lines(r: RunResult) -> list[str]:
    """A run's reasons, then its notes marked as such: the "why" every format shows."""
    return list(r.reasons) + [f"note: {n}" for n in r.notes]


def why_text(r: RunResult) -> str:
    return "\n".join(why_lines(r))


def gate_text(report: Report, r: RunResult) -> Text:
    from rich.text import Text

    gate = report.run_gate(r)
    return Text(gate, style="green" if gate == "pass" else "bold red")


# What the verdict, gate, window and sparkline columns and the borders take, at most.
FIXED_COLUMNS = 70


def wide_columns(width: int) -> list[TableColumn]:
    """Six columns; the run name (at most 2/5 of what the fixed columns leave) and the reasons
    wrap, the rest keep their natural width."""
    from .plain_table import TableColumn

    return [TableColumn("run", overflow="fold", max_width=max(12, (width - FIXED_COLUMNS) * 2 // 5)),
            TableColumn("verdict", no_wrap=True), TableColumn("gate", no_wrap=True),
            TableColumn("window (steps)", justify="right", no_wrap=True), TableColumn("loss", no_wrap=True),
            TableColumn("why", overflow="fold")]


def wide_table(report: Report, width: int) -> Table:
    """The wide_columns table for rich to draw: with colour, on Windows (whose legacy consoles get
    other box characters), or when its columns must be squeezed."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for c in wide_columns(width):
        table.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap, overflow=c.overflow, max_width=c.max_width)
    for r in report.runs:
        run, verdict, _gate, window, loss, why = wide_cells(report, r)
        table.add_row(Text(run), Text(verdict, style=VERDICT_STYLE[verdict]), gate_text(report, r), window, loss,
                      Text(why))
    return table


def wide_cells(report: Report, r: RunResult) -> tuple[str, ...]:
    """A run's row of wide_columns, as text safe for a terminal."""
    return (visible(r.run), r.verdict.value, report.run_gate(r), window_text(r), sparkline(r.profile),
            visible(why_text(r)))


def print_run_block(console: Console, report: Report, r: RunResult) -> None:
    """Narrow layout: `gate verdict sparkline window run`, then the reasons indented and wrapped."""
    from rich.padding import Padding
    from rich.text import Text

    heading = Text.assemble(gate_text(report, r), " ", (r.verdict.value, VERDICT_STYLE[r.verdict.value]),
                            f"  {sparkline(r.profile)}  steps {window_text(r)}  ", visible(r.run), overflow="fold")
    console.print(heading)
    console.print(Padding(Text(visible(why_text(r)), overflow="fold"), (0, 0, 0, 4), expand=False))


CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """Text from a log (run names, column names) made safe for a terminal: control characters,
    ESC among them, shown as \\xNN instead of acting on the terminal. (Passed to rich as Text,
    so brackets are never read as markup.)"""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def sparkline(values: tuple[float, ...]) -> str:
    """One character per value, its height the value's place between the minimum and maximum."""
    if not values:
        return ""
    low, high = min(values) / 2, max(values) / 2   # halved: no difference of finite values overflows
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return SPARK_LEVELS[0] * len(values)
    top = len(SPARK_LEVELS) - 1
    return "".join(SPARK_LEVELS[round((v / 2 - low) / (high - low) * top)] for v in values)


def window_text(r: RunResult) -> str:
    return f"{fmt_step(r.window.first_step)}–{fmt_step(r.window.last_step)}" if r.window else "–"


def summary_line(report: Report) -> str:
    failing = sum(1 for r in report.runs if report.run_gate(r) == "fail")
    return (f"gate {'passed' if report.passed else 'FAILED'}: {len(report.runs)} run{'s' if len(report.runs) != 1 else ''}, "
            f"{failing} failing (family α={report.alpha:g} per run)")


def markdown_cell(text: str) -> str:
    """Safe inside a GitHub-flavoured markdown table cell: no HTML, no column breaks, no line breaks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return "<br>".join(text.splitlines())


def render_markdown(report: Report, color: bool = False) -> str:
    """A pull-request comment / $GITHUB_STEP_SUMMARY: a headline, one table row per run."""
    lines = [f"### siamdiag: {'✅' if report.passed else '❌'} {summary_line(report)}", "",
             "| run | verdict | gate | window (steps) | why |", "|---|---|---|---|---|"]
    for r in report.runs:
        why = why_text(r)
        gate = report.run_gate(r)
        lines.append(f"| {markdown_cell(r.run)} | **{r.verdict.value}** | {'✅ pass' if gate == 'pass' else '❌ fail'} "
                     f"| {window_text(r)} | {markdown_cell(why)} |")
    lines += ["", f"<sub>siamdiag {__version__}</sub>", ""]
    return "\n".join(lines)


# XML 1.0 forbids most control characters, which a run name read from a log could carry.
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    return XML_INVALID.sub("\ufffd", text)


def render_junit(report: Report, color: bool = False) -> str:
    """JUnit XML for CI test reports: one test case per run; a failing verdict is a <failure>,
    a warning verdict keeps its reasons in <system-out>."""
    import xml.etree.ElementTree as ET

    failing = [r for r in report.runs if report.run_gate(r) == "fail"]
    counts = {"tests": str(len(report.runs)), "failures": str(len(failing)), "errors": "0", "skipped": "0"}
    suites = ET.Element("testsuites", name="siamdiag", **counts)
    suite = ET.SubElement(suites, "testsuite", name="siamdiag", **counts)
    for r in report.runs:
        case = ET.SubElement(suite, "testcase", classname=xml_text(f"siamdiag.{r.source}"), name=xml_text(r.run))
        text = xml_text("\n".join([f"verdict: {r.verdict.value}", f"window (steps): {window_text(r)}"] + why_lines(r)))
        if report.run_gate(r) == "fail":
            first = r.reasons[0] if r.reasons else r.verdict.value
            failure = ET.SubElement(case, "failure", type=r.verdict.value, message=xml_text(f"{r.verdict.value}: {first}"))
            failure.text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def github_data(text: str) -> str:
    """Escaping for a workflow command's message (GitHub Actions toolkit rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report, color: bool = False) -> str:
    """GitHub Actions workflow annotations: ::error for a failing run, ::warning for a run that
    passes with a warning, ::notice for a stationary one; the log file as the annotated file."""
    lines = []
    for r in report.runs:
        if report.run_gate(r) == "fail":
            level = "error"
        elif r.verdict in WARNING_VERDICTS:
            level = "warning"
        else:
            level = "notice"
        message = "\n".join([f"{r.verdict.value} (window {window_text(r)} steps)"] + why_lines(r))
        props = f"title={github_property(f'siamdiag: {r.run}: {r.verdict.value}')}"
        if r.source != "<stdin>":
            props = f"file={github_property(r.source)}," + props
        lines.append(f"::{level} {props}::{github_data(message)}")
    lines.append(f"siamdiag {summary_line(report)}")
    return "\n".join(lines) + "\n"


def gitlab_severity(report: Report, r: RunResult) -> str:
    """Code Quality severities: a failing run is major (critical when it diverged), a passing
    run with a warning verdict minor, any other run info."""
    if report.run_gate(r) == "fail":
        return "critical" if r.verdict is Verdict.DIVERGED else "major"
    return "minor" if r.verdict in WARNING_VERDICTS else "info"


def render_gitlab(report: Report, color: bool = False) -> str:
    """A GitLab Code Quality report (``artifacts: reports: codequality``): one issue per run, at
    its log file. The fingerprint is the run and its verdict, so a merge request shows a run whose
    verdict changed as one issue resolved and one new."""
    issues = []
    for r in report.runs:
        first = r.reasons[0] if r.reasons else ""
        issues.append({
            "description": f"siamdiag: {r.run}: {r.verdict.value}" + (f": {first}" if first else ""),
            "check_name": f"siamdiag/{r.verdict.value}",
            "fingerprint": hashlib.sha256(f"{r.source}\0{r.run}\0{r.verdict.value}".encode()).hexdigest(),
            "severity": gitlab_severity(report, r),
            "location": {"path": r.source, "lines": {"begin": 1}},
        })
    return json.dumps(issues, indent=2) + "\n"


def render_html(report: Report, color: bool = False, runs=None) -> str:
    """The self-contained HTML page (report/html.py, loaded on first use); ``runs``, the series in
    the order of ``report.runs``, give it its charts."""
    from .html import render_html as render

    return render(report, color, runs)


RENDERERS: dict[str, Callable[[Report, bool], str]] = {
    "table": render_table,
    "json": render_json,
    "markdown": render_markdown,
    "junit": render_junit,
    "github": render_github,
    "gitlab": render_gitlab,
    "html": render_html,
}
