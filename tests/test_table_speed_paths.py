"""The verdict table drawn without rich's per-cell machinery (report/plain_table.py, issue #20
item 4) gives the same bytes as rich. Oracle: `rich_table` below, render_table as it was before,
drawing every report with rich; the property runs it on random reports (run names and reasons
with wide, combining and joined characters, control characters, newlines, long words, huge or
fractional steps) at random widths, with and without colour."""
import io
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamdiag.pipeline import analyze_paths
from siamdiag.report.plain_table import TableColumn, draw_table
from siamdiag.report.render import (FIXED_COLUMNS, NARROW_COLUMNS, VERDICT_STYLE, gate_text, print_run_block,
                                    render_table, sparkline, visible, why_text, window_text)

from .conftest import SAMPLES


def rich_table(report, color, width):
    """render_table before plain_table: rich draws the wide table and the narrow blocks."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width,
                      color_system="standard" if color else None)
    if width >= NARROW_COLUMNS:
        table = Table()
        table.add_column("run", overflow="fold", max_width=max(12, (width - FIXED_COLUMNS) * 2 // 5))
        table.add_column("verdict", no_wrap=True)
        table.add_column("gate", no_wrap=True)
        table.add_column("window (steps)", justify="right", no_wrap=True)
        table.add_column("loss", no_wrap=True)
        table.add_column("why", overflow="fold")
        for r in report.runs:
            table.add_row(Text(visible(r.run)), Text(r.verdict.value, style=VERDICT_STYLE[r.verdict.value]),
                          gate_text(report, r), window_text(r), sparkline(r.profile), Text(visible(why_text(r))))
        console.print(table)
    else:
        for r in report.runs:
            print_run_block(console, report, r)
    summary = "gate: PASS" if report.passed else "gate: FAIL"
    failing = sum(1 for r in report.runs if report.run_gate(r) == "fail")
    console.print(f"{summary} ({len(report.runs)} run{'s' if len(report.runs) != 1 else ''}, {failing} failing; "
                  f"family α={report.alpha:g} per run)")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def samples():
    return analyze_paths([SAMPLES])


# Characters a terminal measures differently: wide (2 cells), combining and zero-width (0), emoji
# joined by ZWJ or widened by VS16, the line and paragraph separators (which split lines for
# str.splitlines but not for "\n"), no-break space, tab and ESC (shown as \xNN), and what the
# reasons themselves use.
AWKWARD = list("界語ｱ😀👍\u200d\ufe0f\u0301\u200b\u2028\u2029\xa0\t\x1b\x07\r\x85…–σ±≥×█▁[]/:_-.,()")
PIECES = st.text(st.sampled_from(AWKWARD) | st.sampled_from(list("abcdefghij  ")) | st.characters(codec="utf-8"),
                 max_size=30)
TEXT = st.lists(PIECES | st.sampled_from(["x" * 70, "word " * 20, "\n", "a\n\nb\n", " " * 9, ""]),
                max_size=6).map("".join)
STEPS = st.sampled_from([0, 999, 1000, 1999, 2.5, 123456.789, -7, 10**12, 1e25, 1e60, 1e120, 2**63])
PROFILE = st.sampled_from([(), (1.0,), (1.0, 1.0, 1.0)]) | st.lists(
    st.floats(-1e6, 1e6), min_size=1, max_size=24).map(tuple)


@st.composite
def reports(draw, samples):
    runs = []
    for _ in range(draw(st.integers(0, 5))):
        base = draw(st.sampled_from(samples.runs))
        window = base.window
        if window is not None and draw(st.booleans()):
            window = replace(window, first_step=draw(STEPS), last_step=draw(STEPS))
        runs.append(replace(base, run=draw(TEXT), reasons=tuple(draw(st.lists(TEXT, max_size=3))),
                            notes=tuple(draw(st.lists(TEXT, max_size=2))), window=window, profile=draw(PROFILE)))
    return replace(samples, runs=tuple(runs))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), width=st.integers(NARROW_COLUMNS, 250), color=st.booleans())
def test_the_table_is_rich_s_byte_for_byte(samples, data, width, color):
    report = data.draw(reports(samples))
    assert render_table(report, color, width) == rich_table(report, color, width)


@pytest.mark.parametrize("width", [40, 80, 119, 120, 121, 140, 160, 200, 250])
@pytest.mark.parametrize("color", [False, True])
def test_the_samples_and_their_hostile_twins_are_rich_s_byte_for_byte(samples, width, color):
    hostile = 'run | <b>&"x"</b>, `tick`: 100%\n2nd\x07line [bold]界😀\u200d👍\ufe0f'
    twins = replace(samples, runs=samples.runs + tuple(replace(r, run=f"{r.verdict.value} {hostile}" * 3)
                                                       for r in samples.runs))
    for report in (samples, twins):
        assert render_table(report, color, width) == rich_table(report, color, width)


def rows_of(report):
    from siamdiag.report.render import wide_cells

    return [wide_cells(report, r) for r in report.runs]


@pytest.mark.parametrize("width", [120, 121, 140, 160, 200, 250])
def test_plain_text_draws_the_usual_tables(samples, width):
    # The properties above hold whichever path draws; this pins that plain_table draws the
    # samples, with reasons that must wrap and names that must fold (at 120 the "why" column
    # shrinks to fit, at 250 it does not), and that it draws them as rich does.
    from siamdiag.report.render import wide_columns

    long_reasons = replace(samples, runs=tuple(replace(r, run=r.source * 3, reasons=r.reasons + (r.source * 5,))
                                                for r in samples.runs))
    for report in (samples, long_reasons):
        drawn = draw_table(wide_columns(width), rows_of(report), width)
        assert drawn is not None and rich_table(report, False, width).startswith(drawn)


def test_squeezed_tables_are_left_to_rich(samples):
    # A window ending at step 10**120 (a column of 170 cells that cannot wrap) leaves no room at
    # 140 columns: rich squeezes every column, and draws the table itself.
    from siamdiag.report.render import wide_columns

    run = samples.runs[0]
    huge = replace(samples, runs=(replace(run, window=replace(run.window, last_step=1e120)),))
    assert draw_table(wide_columns(140), rows_of(huge), 140) is None
    assert render_table(huge, False, 140) == rich_table(huge, False, 140)


def test_every_width_as_a_long_window_squeezes_the_columns_that_wrap(samples):
    # A window of 83 cells (steps 0 to 10**60): as the width falls from 250 to 120, the name and
    # the reasons shrink to a few cells, then to none (rich leaves such cells blank), then nothing
    # fits; every width is drawn as rich draws it, and the roomy ones by plain_table.
    from siamdiag.report.render import wide_columns

    run = samples.runs[1]
    long_window = replace(samples, runs=(replace(run, window=replace(run.window, first_step=0, last_step=1e60)),))
    drawn = []
    for width in range(NARROW_COLUMNS, 251):
        assert render_table(long_window, False, width) == rich_table(long_window, False, width), width
        drawn.append(draw_table(wide_columns(width), rows_of(long_window), width) is not None)
    assert not drawn[0] and drawn[-1]


def test_the_last_row_uses_the_middle_rows_characters():
    # draw_table draws every run's row with the box's middle characters; rich draws the last one
    # with its "foot" characters, which this box makes the same.
    from rich.box import HEAVY_HEAD

    assert (HEAVY_HEAD.foot_left, HEAVY_HEAD.foot_vertical, HEAVY_HEAD.foot_right) == (
        HEAVY_HEAD.mid_left, HEAVY_HEAD.mid_vertical, HEAVY_HEAD.mid_right)


def test_column_options_behave_as_rich_s():
    # What the verdict table does not exercise but draw_table accepts, against rich.table with
    # the same options: right-justified wrapping columns, words cut with an ellipsis (and spaces
    # past the width dropped before the cut), a header that wraps (headers sit at the bottom).
    from rich.console import Console
    from rich.table import Table

    columns = [TableColumn("right", justify="right", max_width=9), TableColumn("cut", max_width=3),
               TableColumn("folded header", overflow="fold", max_width=5)]
    rows = [("a long line of words  ", "ab  cd", "abcdefghijkl"), ("", "unbreakable-word here", "x\ny"),
            ("right  ", "界界界界界界", "")]
    table = Table()
    for c in columns:
        table.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap, overflow=c.overflow, max_width=c.max_width)
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=80, no_color=True, color_system=None).print(table)
    assert draw_table(columns, rows, 80) == buffer.getvalue()
    # columns that may not wrap and do not fit: rich would squeeze them all; left to it
    assert draw_table([TableColumn("x" * 50, no_wrap=True)] * 2, [], 80) is None
    with pytest.raises(ValueError):
        draw_table([TableColumn("c", justify="center")], [], 80)


def test_a_thousand_runs_draw_the_same(samples):
    # 1,000 runs (the samples repeated, names made unique) through both paths: the same bytes
    # (the speed is measured by benchmarks/table.py, not asserted on a shared machine).
    runs = tuple(replace(samples.runs[k % len(samples.runs)], run=f"sweep/seed-{k}.csv") for k in range(1000))
    report = replace(samples, runs=runs)
    assert render_table(report, False, 140) == rich_table(report, False, 140)


def test_a_rich_without_the_private_helpers_still_draws_the_table(samples, monkeypatch):
    """plain_table imports rich's private wrapping helpers; a rich release without them must not
    break the table: render_table then lets rich draw it, the same text."""
    import sys

    import rich._wrap
    import rich.text   # rich's own use of the helper is bound already

    monkeypatch.delitem(sys.modules, "siamdiag.report.plain_table")
    monkeypatch.delattr(rich._wrap, "divide_line")   # as if a release renamed it
    assert render_table(samples, color=False, width=140) == rich_table(samples, False, 140)
