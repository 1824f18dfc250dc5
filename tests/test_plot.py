"""Plots and sparklines. Oracles: the sample runs' known construction (the nonstationary sample
has its level shift at step 1,500), the report's own numbers for the shaded window, and a
PNG's header read back at the size it was drawn; for the zoomed window and the titles, the drawn
figure's own axes limits and text extents."""
import contextlib
import io
import json
import os
import re
import struct
import sys

import numpy as np
import pytest

from siamdiag.cli.main import main
from siamdiag.errors import OutputError, UsageError
from siamdiag.pipeline import judge_paths
from siamdiag.report.render import render_table, sparkline
from siamdiag.report.model import GatePolicy, Report

from .conftest import SAMPLES, write_csv

plt = pytest.importorskip("matplotlib.pyplot")
from siamdiag.report import plot as plotting  # noqa: E402

NONSTATIONARY = os.path.join(SAMPLES, "nonstationary.csv")


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the format's fixed header)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def samples():
    return judge_paths([SAMPLES])


def test_sparkline_levels():
    assert sparkline(tuple(np.linspace(0, 1, 8))) == "▁▂▃▄▅▆▇█"
    assert sparkline((3.0, 3.0, 3.0)) == "▁▁▁"
    assert sparkline(()) == ""


def test_table_shows_each_runs_sparkline():
    judged = judge_paths([NONSTATIONARY])
    result = judged[0][1]
    assert len(result.profile) == 16
    finite = judged[0][0].loss
    assert result.profile[0] == pytest.approx(finite[:len(finite) // 16 + 1].mean(), rel=1e-2)
    text = render_table(Report(runs=(result,), policy=GatePolicy(), alpha=0.01))
    assert sparkline(result.profile) in text


def test_plot_draws_window_change_points_and_verdict(tmp_path):
    [(run, result)] = judge_paths([NONSTATIONARY])
    assert [round(step, -1) for step, _ in plotting.change_points(result)] == [1500]
    figure, axes = plt.subplots(4, 1)
    plotting.draw_run(axes, run, result)
    title = axes[0].get_title(loc="left")
    assert "nonstationary" in title and "level shift" in title
    xs = [(p.get_x(), p.get_x() + p.get_width()) for p in axes[0].patches]  # axvspan rectangles
    assert (result.window.first_step, result.window.last_step) in xs
    for ax in axes[1:3]:   # the zoomed window and the rolling variance
        red_lines = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_color() == "tab:red"]
        assert red_lines and abs(red_lines[0] - 1500) <= 20
    plt.close(figure)


def test_plot_command_writes_a_png_and_protects_inputs(tmp_path, capsys):
    out = tmp_path / "runs.png"
    with pytest.raises(SystemExit) as exc:
        main(["plot", NONSTATIONARY, os.path.join(SAMPLES, "diverged.csv"), "-o", str(out)])
    assert exc.value.code == 0
    assert png_size(out) == (2 * 560, 640)  # two runs side by side
    log = tmp_path / "log.csv"
    log.write_text(open(NONSTATIONARY).read())
    before = log.read_bytes()
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(log), "-o", str(log)])
    assert exc.value.code == 2 and log.read_bytes() == before


def test_analyze_plot_dir_one_file_per_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", os.path.join(SAMPLES, "sweep.csv.gz"), "--plot", str(tmp_path / "plots"), "--format", "json"])
    runs = json.loads(capsys.readouterr().out)["runs"]
    files = sorted(os.listdir(tmp_path / "plots"))
    assert exc.value.code in (0, 1) and len(files) == len(runs) == 3
    assert all(f.endswith(".png") for f in files)


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    judged = judge_paths([NONSTATIONARY])

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken)
    with pytest.raises(OutputError, match="cannot write .*keep.png: disk full"):   # one line, exit 2, in the CLI
        plotting.plot_runs(judged, str(target))
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["keep.png"]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"pip install 'siamdiag\[plot\]'"):
        plotting.plot_runs(judge_paths([NONSTATIONARY]), "x.png")


def test_file_names_are_safe_and_unique():
    taken = set()
    assert plotting.file_name_for("../a b/run:1", taken) == "a_b_run_1.png"
    assert plotting.file_name_for("../a b/run:1", taken) == "a_b_run_1-2.png"


# Issue #19 item 12: `plot` drew every run in one row (10 runs: 7,700×880 px; 200 runs: 154,000 px
# wide), wrote PNG bytes whatever the extension and listed gate flags it ignored.

def test_ten_runs_go_in_a_grid_of_bounded_size(tmp_path, samples):
    out = tmp_path / "runs.png"
    assert plotting.plot_runs(samples[:10], str(out)) == [str(out)]
    width, height = png_size(out)
    assert (width, height) == (4 * 560, 3 * 640)   # 4 across, 3 rows: 10 runs in a 4 × 3 grid
    assert width * height <= plotting.COLUMNS * 560 * plotting.ROWS * 640


def test_many_runs_go_on_pages_and_progress_counts_every_run(tmp_path, samples):
    judged = (samples * 2)[:13]   # one more than a page holds
    drawn = []

    @contextlib.contextmanager
    def progress(total):
        drawn.append(total)
        yield lambda: drawn.append("run")

    written = plotting.plot_runs(judged, str(tmp_path / "runs.png"), progress=progress)
    assert written == [str(tmp_path / "runs-1.png"), str(tmp_path / "runs-2.png")]
    assert sorted(os.listdir(tmp_path)) == ["runs-1.png", "runs-2.png"]
    assert png_size(written[0]) == (4 * 560, 3 * 640) and png_size(written[1]) == (560, 640)
    assert drawn == [13] + ["run"] * 13
    pdf = tmp_path / "runs.pdf"
    assert plotting.plot_runs(judged, str(pdf)) == [str(pdf)]   # a PDF holds every page
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == 2


@pytest.mark.parametrize("extension, magic", [(".svg", (b"<?xml", b"<svg")), (".pdf", (b"%PDF",)),
                                              (".PNG", (b"\x89PNG",))])
def test_the_extension_names_the_format(tmp_path, extension, magic):
    out = tmp_path / f"runs{extension}"
    with pytest.raises(SystemExit) as exc:
        main(["plot", NONSTATIONARY, "-o", str(out)])
    assert exc.value.code == 0
    data = out.read_bytes()
    assert data.startswith(magic[0]) and all(m in data[:400] for m in magic)


def test_an_unknown_extension_is_a_usage_error_before_judging(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("siamdiag.pipeline.judge_paths", lambda *a, **k: pytest.fail("judged"))
    with pytest.raises(SystemExit) as exc:
        main(["plot", NONSTATIONARY, "-o", str(tmp_path / "runs.jpg")])
    assert exc.value.code == 2 and os.listdir(tmp_path) == []
    err = capsys.readouterr().err
    assert "-o" in err and "runs.jpg" in err and ".png, .svg, .pdf" in err


@pytest.mark.parametrize("flag", [["--format", "json"], ["--fail-on", "diverged"], ["--strict"]])
def test_plot_has_no_gate_flags(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["plot", NONSTATIONARY, "-o", str(tmp_path / "x.png"), *flag])
    assert exc.value.code == 2 and "No such option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    assert flag[0] not in capsys.readouterr().out


# Issue #19 item 13: titles were cut at the right edge, the y-scale was set by the warm-up (a
# settled 1e-5 after 0.05 was a flat line), and `analyze --plot x.png` made a directory x.png/.

def settling_log(tmp_path, name, start, level, n=3000):
    """A loss decaying from ``start`` to ``level`` over the first 10 % of the run, with noise of
    3 % of the level after that: its window holds only the level."""
    rng = np.random.default_rng(3)
    steps = np.arange(n)
    loss = level * (1 + 0.03 * rng.standard_normal(n)) + (start - level) * np.exp(-steps / (n / 60))
    return write_csv(tmp_path / f"{name}.csv", ["step", "loss"], [(s, f"{v:.8g}") for s, v in zip(steps, loss)])


def drawn(path):
    [(run, result)] = judge_paths([path])
    figure, axes = plt.subplots(4, 1)
    plotting.draw_run(axes, run, result)
    return run, result, figure, axes


def test_the_window_panel_is_zoomed_on_the_window(tmp_path):
    run, result, figure, axes = drawn(settling_log(tmp_path, "tiny", start=0.05, level=1e-5))
    inside = (run.steps >= result.window.first_step) & (run.steps <= result.window.last_step)
    low, high = axes[1].get_ylim()
    assert low <= run.loss[inside].min() and run.loss[inside].max() <= high   # encloses the window
    assert high < run.loss.max() / 100   # and not the warm-up peak
    assert axes[1].get_xlim() == (result.window.first_step, result.window.last_step)
    plt.close(figure)


def test_log_scale_when_the_loss_spans_decades(tmp_path):
    _run, _result, figure, axes = drawn(settling_log(tmp_path, "tiny", start=0.05, level=1e-5))
    assert axes[0].get_yscale() == "log"
    plt.close(figure)
    _run, _result, figure, axes = drawn(settling_log(tmp_path, "mild", start=0.35, level=0.3))
    assert axes[0].get_yscale() == "linear" and axes[1].get_yscale() == "linear"
    plt.close(figure)


def test_long_titles_and_reasons_are_wrapped_inside_the_figure(tmp_path, samples):
    from dataclasses import replace

    run, result = next(pair for pair in samples if len(pair[1].reasons) >= 2)
    long_name = "experiments/" + "very_long_directory_name_" * 8 + "seed-1/metrics.csv"
    judged = [(run, replace(result, run=long_name, reasons=(result.reasons[0] + " and more words" * 12,
                                                              *result.reasons[1:])))] * 3
    plt_ = plotting._pyplot()
    figure = plotting.draw_page(plt_, judged, lambda: None)
    figure.savefig(io.BytesIO(), format="png", dpi=plotting.DPI)   # lay out the text
    renderer = figure.canvas.get_renderer()
    for cell in figure.subfigs:
        title = cell.axes[0]._left_title   # the Text that set_title(loc="left") writes
        box = title.get_window_extent(renderer)
        assert "very_long" in title.get_text() and title.get_text().count("\n") >= 4
        assert cell.bbox.x0 <= box.x0 and box.x1 <= cell.bbox.x1 and box.y1 <= cell.bbox.y1
        assert box.y0 >= cell.axes[0].get_window_extent(renderer).y1   # above the panel, not over it
    plt_.close(figure)


def test_analyze_plot_file_for_one_run(tmp_path, capsys):
    out = tmp_path / "x.png"
    with pytest.raises(SystemExit) as exc:
        main(["analyze", NONSTATIONARY, "--plot", str(out), "-q"])
    assert exc.value.code == 1 and out.is_file() and png_size(out) == (560, 640)
    with pytest.raises(SystemExit) as exc:
        main(["analyze", NONSTATIONARY, "--plot", str(tmp_path / "x.svg"), "-q"])
    assert (tmp_path / "x.svg").read_bytes().startswith(b"<?xml")


def test_analyze_plot_file_with_several_runs_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", os.path.join(SAMPLES, "sweep.csv.gz"), "--plot", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and os.listdir(tmp_path) == []
    assert "--plot" in err and "3 runs" in err and "directory" in err


@pytest.mark.parametrize("runs", [19, 20])
def test_a_progress_bar_for_many_runs_on_a_terminal(runs, monkeypatch):
    from rich.console import Console

    from siamdiag.cli import terminal

    screen = io.StringIO()
    monkeypatch.setattr(terminal, "stderr_console", lambda: Console(file=screen, force_terminal=True, width=80))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with terminal.drawing_progress(runs) as advance:
        for _ in range(runs):
            advance()
    assert ("drawing" in screen.getvalue()) == (runs >= terminal.PROGRESS_MIN_INPUTS)
