"""One judging, every output a CI needs: --report FORMAT=PATH (repeatable), --quiet, GitHub
Actions' step summary and outputs, and the progress bar (terminals only). The oracle for each
written report is the renderer run on the same report, as --format writes it to stdout."""
from __future__ import annotations

import io
import json
import os
import sys

import pytest
from rich.console import Console

from siamdiag.cli import terminal
from siamdiag.cli.main import main
from siamdiag.pipeline import judge_paths

from .conftest import SAMPLES


def _run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_one_run_writes_every_report(tmp_path, capsys):
    code, table, _ = _run(["analyze", SAMPLES, "--report", f"json={tmp_path / 'r.json'}",
                           "--report", f"junit={tmp_path / 'r.xml'}", "--report", f"markdown={tmp_path / 'r.md'}",
                           "--report", f"gitlab={tmp_path / 'gl.json'}"], capsys)
    assert code == 1 and "gate: FAIL" in table   # stdout still gets --format (table)
    for fmt, name in (("json", "r.json"), ("junit", "r.xml"), ("markdown", "r.md"), ("gitlab", "gl.json")):
        again, alone, _ = _run(["analyze", SAMPLES, "--format", fmt], capsys)
        assert again == code and (tmp_path / name).read_text() == alone


def test_quiet_prints_nothing_and_keeps_the_exit_code(tmp_path, capsys):
    code, out, err = _run(["analyze", SAMPLES, "-q", "--report", f"json={tmp_path / 'r.json'}"], capsys)
    assert (code, out, err) == (1, "", "")
    assert json.loads((tmp_path / "r.json").read_text())["gate"] == "fail"


def test_a_bare_report_path_names_its_format_by_its_extension(tmp_path, capsys):
    # issue #19: --report r.json was refused; .json, .xml (JUnit), .md and .txt name their format
    names = {"json": "r.json", "junit": "r.xml", "markdown": "r.md", "table": "r.txt"}
    argv = ["analyze", SAMPLES] + [arg for name in names.values() for arg in ("--report", str(tmp_path / name))]
    code, _, _ = _run(argv, capsys)
    for fmt, name in names.items():
        again, alone, _ = _run(["analyze", SAMPLES, "--format", fmt], capsys)
        assert again == code and (tmp_path / name).read_text() == alone


@pytest.mark.parametrize("value", ["json", "yaml=x.yml", "json=", "=x.json", "report.yml"])
def test_bad_report_targets_are_refused_before_anything_is_judged(value, capsys, tmp_path):
    code, out, err = _run(["analyze", SAMPLES, "--report", value], capsys)
    assert code == 2 and out == "" and "expected FORMAT=PATH" in err


def test_a_report_never_overwrites_an_input(tmp_path, capsys):
    log = tmp_path / "run.csv"
    log.write_bytes(open(os.path.join(SAMPLES, "stationary.csv"), "rb").read())
    before = log.read_bytes()
    code, _out, err = _run(["analyze", str(tmp_path), "--report", f"json={log}"], capsys)
    assert code == 2 and "one of the input logs" in err and log.read_bytes() == before


def test_github_actions_summary_and_outputs_are_appended(tmp_path, capsys, monkeypatch):
    summary, outputs = tmp_path / "summary.md", tmp_path / "output.txt"
    summary.write_text("# an earlier step's summary\n")
    outputs.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code, _out, _err = _run(["analyze", SAMPLES], capsys)
    _code, markdown, _ = _run(["analyze", SAMPLES, "--format", "markdown", "--no-github-summary"], capsys)
    assert summary.read_text() == "# an earlier step's summary\n" + markdown   # appended, never replaced
    lines = outputs.read_text().splitlines()
    assert lines[0] == "earlier=1"
    values = dict(line.split("=", 1) for line in lines[1:])
    report = json.loads(_run(["analyze", SAMPLES, "--format", "json", "--no-github-summary"], capsys)[1])
    assert values["gate"] == report["gate"] == "fail" and code == 1
    assert int(values["runs"]) == len(report["runs"])
    assert int(values["failing"]) == sum(r["gate"] == "fail" for r in report["runs"])
    for verdict in ("stationary", "not_converged", "nonstationary", "diverged", "degenerate", "inconclusive",
                    "insufficient_data", "no_data"):
        assert int(values[verdict]) == sum(r["verdict"] == verdict for r in report["runs"])
    size = summary.stat().st_size, outputs.stat().st_size
    _run(["analyze", SAMPLES, "--no-github-summary"], capsys)   # opted out: nothing appended
    assert (summary.stat().st_size, outputs.stat().st_size) == size
    monkeypatch.delenv("GITHUB_ACTIONS")   # not under Actions: nothing appended either
    _run(["analyze", SAMPLES], capsys)
    assert (summary.stat().st_size, outputs.stat().st_size) == size


def _many_logs(directory, count):
    source = open(os.path.join(SAMPLES, "stationary.csv")).read()
    for k in range(count):
        (directory / f"run{k:02d}.csv").write_text(source)
    return [str(directory / f"run{k:02d}.csv") for k in range(count)]


@pytest.mark.parametrize("count, jobs", [(terminal.PROGRESS_MIN_INPUTS, 1), (terminal.PROGRESS_MIN_INPUTS, 2),
                                         (terminal.PROGRESS_MIN_INPUTS - 1, 1)])
def test_progress_bar_on_a_terminal_for_many_inputs_only(count, jobs, tmp_path, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(terminal, "stderr_console", lambda: Console(file=screen, force_terminal=True, width=80))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    advances = []

    def counting(paths):
        manager = terminal.input_progress(paths)

        class Counted:
            def __enter__(self):
                advance = manager.__enter__()
                return lambda: (advances.append(1), advance())

            def __exit__(self, *exc):
                return manager.__exit__(*exc)
        return Counted()

    judged = judge_paths(_many_logs(tmp_path, count), jobs=jobs, keep_runs=False, progress=counting)
    assert len(judged) == len(advances) == count
    assert ("judging" in screen.getvalue()) == (count >= terminal.PROGRESS_MIN_INPUTS)


@pytest.mark.parametrize("stderr_tty", [True, False])
def test_no_progress_bar_off_a_terminal(stderr_tty, tmp_path, monkeypatch):
    """No bar when rich sees no terminal, nor when stderr is not one (FORCE_COLOR in a CI log)."""
    screen = io.StringIO()
    monkeypatch.setattr(terminal, "stderr_console",
                        lambda: Console(file=screen, force_terminal=not stderr_tty, width=80))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: stderr_tty)
    judge_paths(_many_logs(tmp_path, terminal.PROGRESS_MIN_INPUTS + 5), keep_runs=False,
                progress=terminal.input_progress)
    assert screen.getvalue() == ""


def test_json_steps_are_integers_when_the_log_counts_whole_steps(tmp_path, capsys):
    # issue #19: "first_step": 2001.0 for a log whose steps are integers
    code, out, _ = _run(["analyze", os.path.join(SAMPLES, "stationary.csv"), "--format", "json"], capsys)
    run = json.loads(out)["runs"][0]
    window = run["window"]
    assert [type(window[k]) for k in ("first_step", "last_step", "burn_in_step")] == [int, int, int]
    assert type(run["level_shift"]["at_step"]) is int
    # a log counted in fractions of an epoch keeps its fractions
    log = tmp_path / "epochs.csv"
    log.write_text("epoch,loss\n" + "".join(f"{0.1 + i * 0.25},{0.3 + 0.01 * ((i * 7919) % 13 - 6)}\n"
                                            for i in range(1, 401)))
    code, out, _ = _run(["analyze", str(log), "--format", "json"], capsys)
    window = json.loads(out)["runs"][0]["window"]
    assert window["last_step"] == 100.1 and type(window["first_step"]) is float
