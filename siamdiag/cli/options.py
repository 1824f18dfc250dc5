"""Command-line options shared by analyze, train and watch, and the step from flags to
settings: every judging flag defaults to "not given" so that ``config.resolve`` can layer it
over pyproject.toml, --config and SIAMDIAG_* variables."""
from __future__ import annotations

import os
from dataclasses import replace

import click

from ..errors import UsageError
from ..report import FORMATS
from ..logs import INPUT_FORMAT_ALIASES, INPUT_FORMATS

GATE_KEYS = ("format", "fail_on", "strict", "alpha", "tolerance")
READ_KEYS = ("window", "burn_in", "step_col", "loss_col", "grad_norm_col", "run_col", "input_format", "pattern",
             "mlflow", "experiment", "run_name", "timeout", "jobs")


def with_options(command, options: tuple):
    """``command`` with these click options, listed in the order --help shows them."""
    for option in reversed(options):
        command = option(command)
    return command


CONFIG_OPTION = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                             help="TOML file of settings (top-level keys or [tool.siamdiag]); see `siamdiag config show`.")
ALPHA_OPTION = click.option("--alpha", help="Family-wise false-alarm rate per run (Holm over the window tests) "
                            "[default: 0.01].")
TOLERANCE_OPTION = click.option("--tolerance", help="Changes smaller than this pass whatever the logged noise: a "
                                "percentage of the loss level ('0.5%') or a loss difference ('0.001') [default: 0].")


def gate_options(command):
    """--config, --format, --fail-on, --strict, --alpha, --tolerance."""
    return with_options(command, (
        CONFIG_OPTION,
        click.option("--format", "format", type=click.Choice(FORMATS), help="Report format [default: table]."),
        click.option("--fail-on", help="Comma-separated verdicts that fail the gate "
                     "[default: not_converged,nonstationary,diverged,degenerate]."),
        click.option("--strict/--no-strict", default=None, help="Also fail inconclusive and insufficient_data."),
        ALPHA_OPTION,
        TOLERANCE_OPTION,
    ))


def judging_options(command):
    """--config, --alpha, --tolerance: what changes a verdict, for a command that writes no report
    and has no gate (plot)."""
    return with_options(command, (CONFIG_OPTION, ALPHA_OPTION, TOLERANCE_OPTION))


def read_options_flags(command):
    """--window, --burn-in, the column/tag names, --input-format, --pattern."""
    return with_options(command, (
        click.option("--window", help="Evaluation window: a fraction of the step range, written with a decimal point "
                     "or as a percentage (0.5 or 50% = second half, 1.0 or 100% = whole run), or a whole number >= 2 "
                     "of final steps (20000); a bare 1 is refused as ambiguous. A window reaching into the learning "
                     "transient is judged from where it ends [default: 0.5]."),
        click.option("--burn-in", help="'auto' (MSER-5 finds the end of the transient) or the first step to judge "
                     "[default: auto]."),
        click.option("--step-col", help="Column holding the step (default: detected)."),
        click.option("--loss-col", help="Column holding the training loss (default: detected)."),
        click.option("--grad-norm-col", help="Column holding the gradient norm (default: detected)."),
        click.option("--run-col", help="Column(s) identifying the run in a long-format log, e.g. 'run' or 'method,seed'."),
        click.option("--input-format", type=click.Choice(INPUT_FORMATS + tuple(INPUT_FORMAT_ALIASES)),
                     help="Read every input as this format instead of detecting it [default: auto]."),
        click.option("--loss-tag", help="TensorBoard tag or MLflow metric holding the training loss (= --loss-col)."),
        click.option("--grad-norm-tag", help="TensorBoard tag or MLflow metric holding the gradient norm."),
        click.option("--pattern", help="Plain-text logs: a regular expression with a (?P<loss>...) group, "
                     "optionally (?P<step>...) and (?P<grad_norm>...), replacing the built-in patterns."),
    ))


def report_flags(command):
    """--report FORMAT=PATH (repeatable) and -q (analyze and train)."""
    return with_options(command, (
        click.option("--report", "reports", multiple=True, metavar="FORMAT=PATH",
                     help="Also write the report in FORMAT to PATH (repeatable: json=r.json --report junit=r.xml ...); "
                          "a bare PATH ending in .json, .xml (JUnit), .md, .txt or .html names its format."),
        click.option("-q", "--quiet", is_flag=True,
                     help="No report on stdout and no progress on stderr: the exit code and the files written "
                          "(-o, --report) only."),
    ))


def many_runs_flags(command):
    """--mlflow, --experiment, --run-name, --jobs (analyze and plot)."""
    return with_options(command, (
        click.option("--mlflow", help="Also read the runs of this MLflow tracking URI: sqlite:///mlflow.db, a "
                     "file store, or a server (http://..., needs the 'mlflow' extra). Without PATHS, "
                     "MLFLOW_TRACKING_URI is read."),
        click.option("--experiment", help="MLflow: only the runs of this experiment (its name or id)."),
        click.option("--run-name", help="MLflow: only the runs whose name matches this glob, e.g. 'siam-*'."),
        click.option("--timeout", help="MLflow tracking server: seconds to wait for it, retries included, when "
                     "reading its runs and when writing verdicts back [default: 30]."),
        click.option("--jobs", help="Read and judge the inputs in this many processes ('auto': one per core); "
                     "the report is the same [default: 1]."),
    ))


def one_of(col: str | None, tag: str | None, role: str) -> str | None:
    """--X-col and --X-tag name the same thing; giving two different names is a mistake."""
    if col and tag and col != tag:
        raise UsageError(f"--{role}-col {col!r} and --{role}-tag {tag!r} disagree; give one")
    return col or tag


def resolve_settings(params: dict, config_file: str | None):
    """Layered settings from the flags in ``params`` (None = not given); the SIAMDIAG_*
    variables they ignored are said on stderr."""
    from .settings import resolve

    flags = {k: params.get(k) for k in GATE_KEYS + READ_KEYS + ("watch_every",)}
    if "loss_tag" in params:
        flags["loss_col"] = one_of(params.get("loss_col"), params.pop("loss_tag"), "loss")
        flags["grad_norm_col"] = one_of(params.get("grad_norm_col"), params.pop("grad_norm_tag"), "grad-norm")
    settings = resolve(flags, config_file)
    for warning in settings.warnings:
        click.echo(f"siamdiag: warning: {warning}", err=True)
    return settings


def judging(settings):
    """The analysis options and the gate policy the settings describe."""
    from ..engine.prepare import Options, parse_tolerance
    from ..report.model import GatePolicy

    fail_on = ",".join(settings["fail_on"]) if settings["fail_on"] else None
    relative, absolute = parse_tolerance(settings["tolerance"])
    options = Options(alpha=settings["alpha"], window=settings["window"], burn_in=settings["burn_in"],
                      tolerance_relative=relative, tolerance_absolute=absolute)
    return options, GatePolicy.from_options(fail_on, settings["strict"])


def reading(settings, paths):
    """How to read the logs the settings describe; ``paths`` are the PATHS given (none: an MLflow
    tracking URI must say what to read)."""
    from ..logs.columns import ColumnOverrides
    from ..logs.ingest import ReadOptions
    from ..logs.readers.mlflow_db import RunFilter

    pattern = settings["pattern"]
    overrides = ColumnOverrides(step=settings["step_col"], loss=settings["loss_col"],
                                grad_norm=settings["grad_norm_col"], run=settings["run_col"])
    read = ReadOptions(overrides=overrides, input_format=settings["input_format"],
                       mlflow_runs=RunFilter(settings["experiment"], settings["run_name"]),
                       tracking_timeout=settings["timeout"],
                       tracking_uri=settings["mlflow"] or (None if paths else os.environ.get("MLFLOW_TRACKING_URI")))
    if not paths and not read.tracking_uri:
        raise UsageError("nothing to read: give PATHS (files, directories, globs, '-' for stdin) "
                         "or an MLflow tracking URI (--mlflow, or MLFLOW_TRACKING_URI)")
    if pattern:  # a pattern makes every input a plain-text log
        if read.input_format not in ("auto", "text"):
            raise UsageError(f"--pattern reads plain-text logs; it cannot be used with --input-format {read.input_format}")
        from ..logs.readers.text import compile_pattern

        read = replace(read, input_format="text", pattern=compile_pattern(pattern))
    return read
