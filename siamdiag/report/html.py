"""The HTML report (``--report html=report.html``): one self-contained page, the file a CI job
attaches as an artifact. The gate at the top; the verdict table, sortable by any column and
filterable by text (a small inline script); then each run with its reasons, notes and two inline
SVG charts drawn here from its series: the whole run (burn-in and window shaded) and the window
alone, on its own scale. Nothing is fetched at view time (the page's Content-Security-Policy
forbids it), matplotlib is not needed, every text read from a log is HTML-escaped, and the same
report gives the same bytes."""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape

import numpy as np

from .. import __version__
from ..engine.analysis import RunResult, fmt_step
from ..engine.decide import Verdict
from ..engine.prepare import OrderedRun
from .model import Report
from .render import summary_line, visible, window_text
from .series import change_points, envelope, finite_loss, in_window, padded_limits, wants_log_scale

CHART_BUCKETS = 300            # each chart carries at most this many min/max/mean triples
CHART_WIDTH, CHART_HEIGHT = 560, 190
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 12, 10, 24

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px 40px; color: #1d1d1f; }
header.gate { margin: 16px 0; padding: 12px 18px; border-radius: 6px; color: #fff; }
header.gate h1 { margin: 0 0 4px; font-size: 22px; }
header.gate p { margin: 2px 0; }
header.pass { background: #1a7f37; }
header.fail { background: #cf222e; }
ul.counts { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 6px; }
ul.counts li { background: rgba(255, 255, 255, 0.9); color: #1d1d1f; border-radius: 4px; padding: 1px 8px; }
.controls { display: flex; gap: 16px; align-items: center; margin: 12px 0; flex-wrap: wrap; }
.controls input[type=search] { font: inherit; padding: 4px 8px; min-width: 320px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #d0d7de; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
td.num { text-align: right; white-space: nowrap; }
td.run { overflow-wrap: anywhere; min-width: 14em; max-width: 340px; }
.verdict { font-weight: 600; white-space: nowrap; }
.v-stationary { color: #1a7f37; } .v-not_converged { color: #9a6700; } .v-nonstationary { color: #cf222e; }
.v-diverged { color: #82071e; } .v-degenerate { color: #8250df; }
.v-inconclusive, .v-insufficient_data { color: #0969da; }
.v-no_data { color: #57606a; }
.gate-fail { color: #cf222e; font-weight: 600; } .gate-pass { color: #1a7f37; }
section.run { border-top: 2px solid #d0d7de; margin-top: 28px; padding-top: 8px; }
section.run h2 { font-size: 16px; word-break: break-all; margin: 4px 0; }
section.run ul { margin: 4px 0; }
li.note { color: #57606a; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 6px 0; }
figcaption { font-size: 12px; color: #57606a; }
svg { max-width: 100%; height: auto; background: #fff; }
svg text { font: 10px system-ui, sans-serif; fill: #57606a; }
svg .frame { fill: none; stroke: #8c959f; }
svg .burn { fill: #d0d7de; opacity: 0.6; }
svg .window { fill: #2da44e; opacity: 0.1; }
svg .window-start { stroke: #2da44e; stroke-dasharray: 4 3; }
svg .band { fill: #afb8c1; }
svg .line { fill: none; stroke: #0969da; stroke-width: 1.2; }
svg .change { stroke: #cf222e; stroke-width: 1.5; }
svg .nonfinite { stroke: #82071e; stroke-width: 2; }
footer { margin-top: 32px; color: #57606a; font-size: 12px; }
"""

SCRIPT = """
"use strict";
(function () {
  var table = document.getElementById("verdicts");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function key(row, col, numeric) {
    var text = row.cells[col].getAttribute("data-key");
    return numeric ? parseFloat(text) : text;
  }
  heads.forEach(function (th, col) {
    th.querySelector("button").addEventListener("click", function () {
      var numeric = th.getAttribute("data-type") === "number";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = key(a, col, numeric), y = key(b, col, numeric);
        if (x < y) { return -dir; }
        if (x > y) { return dir; }
        return a.getAttribute("data-index") - b.getAttribute("data-index");
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  var filter = document.getElementById("filter");
  var failing = document.getElementById("failing-only");
  var shown = document.getElementById("shown");
  function apply() {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var count = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return text.indexOf(w) >= 0; }) &&
        (!failing.checked || row.getAttribute("data-gate") === "fail");
      row.hidden = !keep;
      count += keep ? 1 : 0;
    });
    shown.textContent = count + " of " + rows.length + " runs shown";
  }
  filter.addEventListener("input", apply);
  failing.addEventListener("change", apply);
})();
"""


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# Only the page's own style and script, identified by their hashes; no connection, no other source.
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src {csp_hash(STYLE)}; script-src {csp_hash(SCRIPT)}; "
                           "img-src data:")


def text(value: str) -> str:
    """Text from a log, safe in HTML content and in a quoted attribute: control characters
    shown as \\xNN, then &, <, >, " and ' escaped."""
    return escape(visible(value), quote=True)


def number(value: float) -> str:
    return f"{value:.1f}"


class Scale:
    """Data to pixels for one chart: steps across, values up (through log10 on a log scale)."""

    def __init__(self, steps: tuple[float, float], values: tuple[float, float], log: bool):
        self.log = log
        self.x0, self.x1 = steps
        self.y0, self.y1 = (np.log10(values[0]), np.log10(values[1])) if log else values
        self.width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        self.height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(self, steps) -> np.ndarray:
        span = self.x1 - self.x0 or 1.0
        return MARGIN_LEFT + (np.asarray(steps, dtype=float) - self.x0) / span * self.width

    def y(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        values = np.log10(values) if self.log else values
        span = self.y1 - self.y0 or 1.0
        return MARGIN_TOP + (1 - (values - self.y0) / span) * self.height

    def value_at(self, fraction: float) -> float:
        """The value a fraction of the way up the plotting area."""
        value = self.y0 + fraction * (self.y1 - self.y0)
        return float(10 ** value) if self.log else float(value)


def points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{number(x)},{number(y)}" for x, y in zip(xs, ys))


def label_digits(values: list[float]) -> int:
    """Significant digits that tell the axis labels ``values`` apart (3 at least)."""
    return next((d for d in range(3, 10) if len({f"{v:.{d}g}" for v in values}) == len(values)), 10)


def svg_chart(steps: np.ndarray, loss: np.ndarray, result: RunResult, label: str,
              span: tuple[float, float], nonfinite: np.ndarray, whole: bool) -> str:
    """One inline SVG chart of ``loss`` (finite) at ``steps`` over the steps ``span``: the band
    between each bucket's minimum and maximum, the bucket means as a line, the burn-in and window
    shaded (``whole``: the whole run), change points in red, non-finite steps as ticks at the
    bottom. A log scale when the values span two decades."""
    log = wants_log_scale(loss)
    series = envelope(steps, loss, CHART_BUCKETS)
    w = result.window
    scale = Scale(span, padded_limits(loss, log), log)
    ticks = [scale.value_at(fraction) for fraction in (0.0, 0.5, 1.0)]
    digits = label_digits(ticks)
    top, bottom = MARGIN_TOP, CHART_HEIGHT - MARGIN_BOTTOM
    size = f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" width="{CHART_WIDTH}" height="{CHART_HEIGHT}"'
    parts = [f'<svg {size} role="img">', f"<title>{text(label)}</title>"]

    def vertical_band(css: str, start: float, end: float) -> None:
        left, right = np.clip(scale.x([start, end]), MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT)
        if right > left:
            parts.append(f'<rect class="{css}" x="{number(left)}" y="{top}" width="{number(right - left)}" '
                         f'height="{bottom - top}"/>')

    def vertical_line(css: str, step: float, title: str = "") -> None:
        x = number(scale.x(step))
        tooltip = f"<title>{title}</title>" if title else ""
        parts.append(f'<line class="{css}" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}">{tooltip}</line>')

    if whole and w is not None:
        if w.burn_in_step is not None and w.burn_in_step > span[0]:
            vertical_band("burn", span[0], w.burn_in_step)
        vertical_band("window", w.first_step, w.last_step)
        vertical_line("window-start", w.first_step)
    if len(series) < len(loss):
        xs = scale.x(series.steps)
        outline = np.concatenate([xs, xs[::-1]]), np.concatenate([scale.y(series.low), scale.y(series.high)[::-1]])
        parts.append(f'<polygon class="band" points="{points(*outline)}"/>')
    parts.append(f'<polyline class="line" points="{points(scale.x(series.steps), scale.y(series.mean))}"/>')
    for step, what in change_points(result):
        vertical_line("change", step, f"{what} near step {fmt_step(step)}")
    inside = nonfinite[(nonfinite >= span[0]) & (nonfinite <= span[1])]
    for x in np.unique(np.round(scale.x(inside))):
        parts.append(f'<line class="nonfinite" x1="{number(x)}" y1="{bottom - 6}" x2="{number(x)}" y2="{bottom}"/>')
    parts.append(f'<rect class="frame" x="{MARGIN_LEFT}" y="{top}" width="{scale.width}" height="{scale.height}"/>')
    for fraction, value in zip((0.0, 0.5, 1.0), ticks):
        y = number(MARGIN_TOP + (1 - fraction) * scale.height)
        parts.append(f'<text x="{MARGIN_LEFT - 4}" y="{y}" text-anchor="end" dominant-baseline="middle">'
                     f"{value:.{digits}g}</text>")
    parts.append(f'<text x="{MARGIN_LEFT}" y="{CHART_HEIGHT - 8}">{fmt_step(span[0])}</text>')
    parts.append(f'<text x="{CHART_WIDTH - MARGIN_RIGHT}" y="{CHART_HEIGHT - 8}" text-anchor="end">'
                 f"{fmt_step(span[1])}</text>")
    if log:
        parts.append(f'<text x="{MARGIN_LEFT + 4}" y="{MARGIN_TOP + 12}">log scale</text>')
    parts.append("</svg>")
    return "".join(parts)


def charts(run: OrderedRun | None, result: RunResult) -> str:
    """The run's two figures (whole run, window), or a line saying why there are none."""
    if run is None:
        return '<p class="note">No chart: the series was not kept (charts come with <code>siamdiag analyze</code>).</p>'
    steps, loss, nonfinite = finite_loss(run)
    if len(loss) < 2:
        return '<p class="note">No chart: fewer than two finite loss values.</p>'
    name = visible(result.run)
    whole = (float(run.steps[0]), float(run.steps[-1]))
    figures = [(svg_chart(steps, loss, result, f"loss of {name}, whole run", whole, nonfinite, True),
                "whole run: burn-in grey, evaluation window green"
                + (f", non-finite losses as red ticks ({len(nonfinite):,})" if len(nonfinite) else ""))]
    window_steps, window_loss = in_window(steps, loss, result)
    if len(window_loss) >= 2:
        window = (result.window.first_step, result.window.last_step)
        figures.append((svg_chart(window_steps, window_loss, result, f"loss of {name}, evaluation window",
                                  window, nonfinite, False),
                        f"evaluation window, steps {window_text(result)}, on its own scale"
                        + (", change points red" if change_points(result) else "")))
    return '<div class="charts">' + "".join(f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"
                                            for svg, caption in figures) + "</div>"


def gate_header(report: Report) -> str:
    """PASS or FAIL, the counts, family α and the failing verdicts."""
    gate = "pass" if report.passed else "fail"
    counts = {v: sum(r.verdict is v for r in report.runs) for v in Verdict}
    items = "".join(f'<li><span class="verdict v-{v.value}">{v.value}</span> {n}</li>'
                    for v, n in counts.items() if n)
    failing = ", ".join(sorted(v.value for v in report.policy.failing))
    return (f'<header class="gate {gate}"><h1>siamdiag: gate {gate.upper()}</h1>'
            f"<p>{escape(summary_line(report))}</p>"
            f"<p>verdicts that fail the gate: {escape(failing)}</p>"
            f'<ul class="counts">{items}</ul></header>')


COLUMNS = (("#", "number"), ("run", "text"), ("verdict", "text"), ("gate", "text"),
           ("window (steps)", "number"), ("points", "number"), ("why", "text"))


def table_row(report: Report, index: int, r: RunResult) -> str:
    """One row; each cell's data-key is what the script sorts it by."""
    gate = report.run_gate(r)
    first = r.reasons[0] if r.reasons else ""
    more = len(r.reasons) - 1 + len(r.notes)
    why = text(first) + (f' <a href="#run-{index}">(+{more} more)</a>' if more > 0 else "")
    window_key = f"{r.window.first_step:.17g}" if r.window else "-Infinity"
    cells = [(str(index), str(index), "num"),
             (text(r.run), f'<a href="#run-{index}">{text(r.run)}</a>', "run"),
             (r.verdict.value, f'<span class="verdict v-{r.verdict.value}">{r.verdict.value}</span>', ""),
             (gate, f'<span class="gate-{gate}">{gate}</span>', ""),
             (window_key, window_text(r), "num"),
             (str(r.points), f"{r.points:,}", "num"),
             (text(first), why, "")]
    row = "".join(f'<td data-key="{key}"' + (f' class="{css}"' if css else "") + f">{shown}</td>"
                  for key, shown, css in cells)
    return f'<tr data-index="{index}" data-gate="{gate}">{row}</tr>'


def run_section(report: Report, index: int, r: RunResult, run: OrderedRun | None) -> str:
    """The run's heading, verdict, window and burn-in, all its reasons and notes, its charts."""
    gate = report.run_gate(r)
    w = r.window
    facts = [f'<span class="verdict v-{r.verdict.value}">{r.verdict.value}</span>',
             f'gate <span class="gate-{gate}">{gate}</span>', f"{r.points:,} points",
             f"source {text(r.source)}"]
    if w is not None:
        facts.append(f"window steps {window_text(r)} ({r.window_points:,} points)")
        if w.burn_in_step is not None:
            facts.append(f"burn-in to step {fmt_step(w.burn_in_step)} ({escape(w.burn_in_method)})")
    items = [f"<li>{text(reason)}</li>" for reason in r.reasons]
    items += [f'<li class="note">note: {text(note)}</li>' for note in r.notes]
    return (f'<section class="run" id="run-{index}"><h2>{index}. {text(r.run)}</h2>'
            f"<p>{' · '.join(facts)}</p><ul>{''.join(items)}</ul>{charts(run, r)}</section>")


def controls(runs: int) -> str:
    """The filter box, the failing-only switch and the count of rows shown (the script keeps it)."""
    return ('<div class="controls"><input type="search" id="filter" placeholder="filter runs: name, verdict, reason" '
            'aria-label="filter runs"><label><input type="checkbox" id="failing-only"> failing runs only</label>'
            f'<span id="shown">{runs} of {runs} runs shown</span></div>')


def render_html(report: Report, color: bool = False, runs: Sequence[OrderedRun | None] | None = None) -> str:
    """The whole page. ``runs``, in the order of ``report.runs``, carry the series the charts are
    drawn from (without them, the page has no charts); ``color`` is not used."""
    runs = list(runs) if runs is not None else [None] * len(report.runs)
    heads = "".join(f'<th data-type="{kind}"><button type="button">{name}</button></th>' for name, kind in COLUMNS)
    rows = "".join(table_row(report, k, r) for k, r in enumerate(report.runs, 1))
    sections = "".join(run_section(report, k, r, run) for k, (r, run) in enumerate(zip(report.runs, runs), 1))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>siamdiag: gate {'PASS' if report.passed else 'FAIL'}</title>",
        '<link rel="icon" href="data:,">',
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        gate_header(report),
        controls(len(report.runs)),
        f'<table id="verdicts"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>',
        sections,
        f"<footer>siamdiag {__version__}</footer>",
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
        "",
    ])
