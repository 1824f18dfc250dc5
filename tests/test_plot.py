"""Plots and sparklines. Oracles: the sample runs' known construction (the nonstationary sample
has its level shift at step 1,500), the report's own numbers for the shaded window, and a
PNG that matplotlib reads back at the size it was drawn."""
import json
import os
import sys

import numpy as np
import pytest

from siamdiag.cli.main import main
from siamdiag.errors import OutputError, UsageError
from siamdiag.pipeline import judge_paths
from siamdiag.report.render import render_table, sparkline
from siamdiag.report.model import GatePolicy, Report

from .conftest import SAMPLES

plt = pytest.importorskip("matplotlib.pyplot")
from siamdiag.report import plot as plotting  # noqa: E402

NONSTATIONARY = os.path.join(SAMPLES, "nonstationary.csv")


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
    figure, axes = plt.subplots(3, 1)
    plotting.draw_run(axes, run, result)
    title = axes[0].get_title(loc="left")
    assert "nonstationary" in title and "level shift" in title
    xs = [(p.get_x(), p.get_x() + p.get_width()) for p in axes[0].patches]  # axvspan rectangles
    assert (result.window.first_step, result.window.last_step) in xs
    red_lines = [ln.get_xdata()[0] for ln in axes[1].get_lines() if ln.get_color() == "tab:red"]
    assert red_lines and abs(red_lines[0] - 1500) <= 20
    plt.close(figure)


def test_plot_command_writes_a_png_and_protects_inputs(tmp_path, capsys):
    out = tmp_path / "runs.png"
    with pytest.raises(SystemExit) as exc:
        main(["plot", NONSTATIONARY, os.path.join(SAMPLES, "diverged.csv"), "-o", str(out)])
    assert exc.value.code == 0
    image = plt.imread(str(out))
    assert image.shape[1] > image.shape[0] > 500  # two runs side by side
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
