"""Where a report goes, all from one judging: stdout in ``--format`` (unless ``--quiet``), ``-o``,
each ``--report FORMAT=PATH``, and, under GitHub Actions, the step summary and step outputs.
Files are written whole or not at all (siamdiag.atomic); GitHub's own files are appended to."""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping

import click

from ..atomic import output_file
from ..errors import OutputError, UsageError
from ..report import FORMATS


def refuse_overwriting_inputs(targets: list[tuple[str, str]], paths: list[str], read) -> None:
    """No output file (``targets``: (flag, path) pairs) may be one of the logs being read:
    compared by device and inode with every file the reading opens (a log found inside a
    directory, a hard link to one). The inputs are listed once, and only when a target exists."""
    from ..logs.ingest import input_files

    inputs = None
    for what, path in targets:
        try:
            target = os.stat(path)
        except OSError:
            continue  # nothing there yet (or unreachable, which the write reports)
        if not stat.S_ISREG(target.st_mode):
            continue
        inputs = input_files(paths, read) if inputs is None else inputs
        if (target.st_dev, target.st_ino) in inputs:
            raise UsageError(f"{what} {path}: that is one of the input logs; refusing to overwrite it")


def rendered(fmt: str, report, color: bool, runs=None) -> str:
    """The report in ``fmt``; the HTML page also gets the runs' series (in report order), which
    its charts are drawn from."""
    from ..report.render import RENDERERS, render_html

    return render_html(report, color, runs) if fmt == "html" else RENDERERS[fmt](report, color)


def write_report(path: str, text: str, what: str = "--output") -> None:
    """Write the whole report or nothing (see siamdiag.atomic.output_file)."""
    with output_file(path, what, "w", encoding="utf-8") as fh:
        fh.write(text)


FORMAT_BY_EXTENSION = {".json": "json", ".xml": "junit", ".md": "markdown", ".markdown": "markdown",
                       ".txt": "table", ".html": "html", ".htm": "html"}


def report_targets(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """``--report FORMAT=PATH`` (or a bare PATH whose extension names the format: .json, .xml for
    JUnit, .md, .txt, .html) values as (format, path); two reports to one path are a mistake."""
    targets = []
    for value in values:
        fmt, sep, path = value.partition("=")
        extension = os.path.splitext(value)[1].lower()
        if not sep and extension in FORMAT_BY_EXTENSION:
            fmt, path = FORMAT_BY_EXTENSION[extension], value
        elif not sep or not path or fmt not in FORMATS:
            raise UsageError(f"--report {value!r}: expected FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}, "
                             f"or a PATH ending in {', '.join(FORMAT_BY_EXTENSION)}")
        targets.append((fmt, path))
    paths = [p for _f, p in targets]
    if len(set(paths)) < len(paths):
        raise UsageError("--report: two reports to the same path")
    return targets


def github_outputs(report) -> dict[str, str]:
    """The step outputs a workflow reads (``steps.<id>.outputs.gate``, ...): the gate, the number
    of runs and of failing runs, and the count of every verdict (zero included)."""
    from ..engine.decide import Verdict

    outputs = {"gate": "pass" if report.passed else "fail", "runs": str(len(report.runs)),
               "failing": str(sum(report.run_gate(r) == "fail" for r in report.runs))}
    outputs.update({v.value: str(sum(r.verdict is v for r in report.runs)) for v in Verdict})
    return outputs


def write_github_files(report, environ: Mapping[str, str]) -> None:
    """Under GitHub Actions: the markdown report appended to $GITHUB_STEP_SUMMARY and the step
    outputs to $GITHUB_OUTPUT (each file is shared by the job's steps: appended in one write,
    never replaced)."""
    from ..report.render import RENDERERS

    if environ.get("GITHUB_ACTIONS") != "true":
        return
    contents = {"GITHUB_STEP_SUMMARY": RENDERERS["markdown"](report, False),
                "GITHUB_OUTPUT": "".join(f"{k}={v}\n" for k, v in github_outputs(report).items())}
    for variable, text in contents.items():
        path = environ.get(variable)
        if not path:
            continue
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise OutputError(f"{path} (${variable})", exc) from None


def write_verdicts_back(report, quiet: bool, timeout: float = 30.0) -> list[str]:
    """``--write-back``: each run's verdict, gate and reasons into the tracker that keeps it
    (``logs.writeback``), once the report is out, a tracking server given ``timeout`` seconds
    (``--timeout``). Every run is tried; the failures come back as one line each, naming the run
    (the CLI then exits 2: the verdicts were asked for there)."""
    from ..logs.writeback import Judgement, WriteBackError, write_back

    failures, written = [], 0
    for run in report.runs:
        if run.tracker is None:
            continue
        try:
            write_back(run.tracker, Judgement.of(run, report.run_gate(run)), timeout)
            written += 1
        except WriteBackError as exc:
            failures.append(f"write-back to {run.run}: {exc}")
    untracked = sum(run.tracker is None for run in report.runs)
    if not quiet and (written or untracked):
        click.echo(f"siamdiag: --write-back: verdicts written to the trackers of {_runs(written)}"
                   + (f"; {_runs(untracked)} read from plain log files (no tracker) left as they are" if untracked else ""),
                   err=True)
    return failures


def _runs(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"
