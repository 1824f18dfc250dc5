"""Every verdict in every output format: each renderer produces a well-formed document that names
every run, its verdict and its gate, with hostile run names escaped (DESIGN.md §6: a contract test
over the renderer registry)."""
import json
import re
import xml.etree.ElementTree as ET

import pytest

from siamdiag.engine.decide import Verdict
from siamdiag.report import FORMATS
from siamdiag.pipeline import analyze_paths
from siamdiag.report.render import RENDERERS

from .conftest import SAMPLES


@pytest.fixture(scope="module")
def report():
    """The samples (one log per verdict), with the runs renamed to names that break naive output."""
    from dataclasses import replace

    base = analyze_paths([SAMPLES])
    hostile = 'run | <b>&"x"</b>, `tick`: 100%\n2nd\x07line'
    runs = tuple(replace(r, run=f"{r.verdict.value} {hostile}") for r in base.runs)
    return replace(base, runs=runs)


def test_registry_and_cli_choices_agree():
    assert tuple(RENDERERS) == FORMATS


def test_samples_cover_every_verdict(report):
    assert {r.verdict for r in report.runs} == set(Verdict)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_every_verdict(report, fmt):
    text = RENDERERS[fmt](report, False)
    assert text.endswith("\n")
    for r in report.runs:
        assert r.verdict.value in text


def test_json_round_trips(report):
    doc = json.loads(RENDERERS["json"](report, False))
    assert [r["run"] for r in doc["runs"]] == [r.run for r in report.runs]


def test_junit_is_valid_xml_with_one_case_per_run_and_failures_for_failing_runs(report):
    root = ET.fromstring(RENDERERS["junit"](report, False).encode("utf-8"))
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(report.runs) == int(root.get("tests"))
    failing = {r.run.replace("\x07", "\ufffd") for r in report.runs if report.run_gate(r) == "fail"}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == failing and int(root.get("failures")) == len(failing)
    for case in cases:
        verdict = case.get("name").split(" ")[0]
        failure = case.find("failure")
        assert (failure.get("type") if failure is not None else verdict) == verdict


def test_markdown_keeps_one_table_row_per_run_and_escapes_html(report):
    text = RENDERERS["markdown"](report, False)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| run |")]
    assert len(rows) == len(report.runs)
    for row in rows:
        # five cells: unescaped pipes only at cell borders
        assert len(re.findall(r"(?<!\\)\|", row)) == 6
    assert "<b>" not in text and "&lt;b&gt;" in text
    assert ("❌" in text.splitlines()[0]) == (not report.passed)


def test_github_annotations_are_one_line_each_and_decode_back(report):
    lines = RENDERERS["github"](report, False).splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert len(commands) == len(report.runs)
    levels = {"fail": "error"}
    for r, line in zip(report.runs, commands):
        match = re.fullmatch(r"::(error|warning|notice) file=([^,]*),title=([^:]*)::(.*)", line)
        assert match, line
        expected = levels.get(report.run_gate(r)) or ("warning" if r.verdict in (Verdict.INCONCLUSIVE,
                                                                                Verdict.INSUFFICIENT_DATA) else "notice")
        assert match.group(1) == expected
        decode = lambda s: s.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")  # noqa: E731
        assert decode(match.group(3)) == f"siamdiag: {r.run}: {r.verdict.value}"
        assert decode(match.group(4)).splitlines()[1:] == list(r.reasons) + [f"note: {n}" for n in r.notes]


def test_gitlab_code_quality_has_the_required_fields_and_stable_fingerprints(report):
    # GitLab's Code Quality report: a JSON array of issues with description, check_name,
    # fingerprint, severity (info/minor/major/critical/blocker) and location.path + lines.begin
    issues = json.loads(RENDERERS["gitlab"](report, False))
    assert len(issues) == len(report.runs)
    severities = {"info", "minor", "major", "critical", "blocker"}
    for r, issue in zip(report.runs, issues):
        assert set(issue) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["description"].startswith(f"siamdiag: {r.run}: {r.verdict.value}")
        assert issue["location"] == {"path": r.source, "lines": {"begin": 1}}
        assert issue["severity"] in severities
        failing = report.run_gate(r) == "fail"
        assert (issue["severity"] in ("major", "critical")) == failing
        assert (issue["severity"] == "critical") == (failing and r.verdict is Verdict.DIVERGED)
    assert json.loads(RENDERERS["gitlab"](report, False)) == issues   # deterministic
    real = analyze_paths([SAMPLES])   # run names as logged: one issue each, told apart
    assert len({i["fingerprint"] for i in json.loads(RENDERERS["gitlab"](real, False))}) == len(real.runs)


@pytest.mark.parametrize("width", [50, 80, 119, 120, 140, 200])
def test_the_table_fits_the_width_and_keeps_every_reason(width):
    # issue #19: the table was drawn 140 columns wide whatever the terminal. Oracle: no line is
    # wider than asked, and the reasons read in order once the wrapping is taken out.
    from rich.cells import cell_len

    from siamdiag.report.render import NARROW_COLUMNS, render_table, why_text

    report = analyze_paths([SAMPLES])
    text = render_table(report, False, width)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    if width >= NARROW_COLUMNS:   # the last cell of every table row is the "why" column
        shown = "".join(line.split("│")[-2] for line in text.splitlines() if line.startswith("│"))
    else:                         # the reasons are the indented lines under each run's heading
        shown = "".join(line for line in text.splitlines() if line.startswith("    "))
    expected = "".join(why_text(r) for r in report.runs)
    assert "".join(shown.split()) == "".join(expected.split())


def test_the_table_follows_columns(monkeypatch):
    from siamdiag.report.render import render_table

    report = analyze_paths([SAMPLES])
    for columns in ("80", "160"):
        monkeypatch.setenv("COLUMNS", columns)
        assert render_table(report) == render_table(report, False, int(columns))
