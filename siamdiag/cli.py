"""Command line: the only module that prints or exits.

Exit codes are an API: 0 gate passed, 1 gate failed, 2 usage or input error (including "no
runs found"), 3 internal error. An unexpected exception never exits 1.
"""
from __future__ import annotations

import os

# Pin BLAS threads before numpy loads: a multithreaded BLAS on a busy 2-core CI runner is
# 30-50x slower for these small least-squares problems (research notes §3.2).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
from .errors import SiamdiagError, UsageError  # noqa: E402
from .formats import FORMATS, INPUT_FORMAT_ALIASES, INPUT_FORMATS  # noqa: E402

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def parse_window(value: str) -> float:
    try:
        w = float(value)
    except ValueError:
        raise UsageError(f"--window: {value!r} is not a number; give a fraction (0.5) or a step count (20000)")
    from .prepare import is_valid_window

    if not is_valid_window(w):
        raise UsageError(f"--window: {value!r} must be a fraction in (0, 1] or a whole number of steps")
    return w


def parse_burn_in(value: str) -> float | None:
    if value.lower() == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"--burn-in: {value!r} must be 'auto' or a step number")


def one_of(col: str | None, tag: str | None, role: str) -> str | None:
    """--X-col and --X-tag name the same thing; giving two different names is a mistake."""
    if col and tag and col != tag:
        raise UsageError(f"--{role}-col {col!r} and --{role}-tag {tag!r} disagree; give one")
    return col or tag


def read_options(input_format: str, pattern: str | None, step: str | None, loss: str | None,
                 grad_norm: str | None, run: str | None):
    """How to read the logs, from the reading flags."""
    from .columns import ColumnOverrides
    from .ingest import ReadOptions
    from .readers.text import compile_pattern

    input_format = INPUT_FORMAT_ALIASES.get(input_format, input_format)
    if pattern:  # a pattern makes every input a plain-text log
        if input_format not in ("auto", "text"):
            raise UsageError(f"--pattern reads plain-text logs; it cannot be used with --input-format {input_format}")
        input_format = "text"
    return ReadOptions(overrides=ColumnOverrides(step=step, loss=loss, grad_norm=grad_norm, run=run),
                       input_format=input_format,
                       pattern=compile_pattern(pattern) if pattern else None)


def write_atomically(path: str, text: str, inputs: list[str]) -> None:
    """Write the whole report or nothing: a temporary file in the same directory, then an
    atomic rename. Refuses to overwrite one of the logs being analysed."""
    target = os.path.realpath(path)
    for p in inputs:
        if p != "-" and os.path.exists(p) and os.path.realpath(p) == target:
            raise UsageError(f"--output {path}: that is one of the input logs; refusing to overwrite it")
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise UsageError(f"--output {path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".siamdiag-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="siamdiag")
def cli() -> None:
    """Has this Siamese / metric-learning run's loss settled? A diagnostic and a CI gate."""


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE (atomically).")
@click.option("--fail-on", help="Comma-separated verdicts that fail the gate "
              "[default: not_converged,nonstationary,diverged,degenerate].")
@click.option("--strict", is_flag=True, help="Also fail inconclusive and insufficient_data.")
@click.option("--alpha", type=click.FloatRange(1e-6, 0.5), default=0.01, show_default=True,
              help="Family-wise false-alarm rate per run (Holm over the window tests).")
@click.option("--window", "window", default="0.5", show_default=True,
              help="Evaluation window: a fraction of the step range (0.5 = second half) or a number of final steps.")
@click.option("--burn-in", default="auto", show_default=True,
              help="'auto' (MSER-5 finds the end of the transient) or the first step to judge.")
@click.option("--step-col", help="Column holding the step (default: detected).")
@click.option("--loss-col", help="Column holding the training loss (default: detected).")
@click.option("--grad-norm-col", help="Column holding the gradient norm (default: detected).")
@click.option("--run-col", help="Column(s) identifying the run in a long-format log, e.g. 'run' or 'method,seed'.")
@click.option("--input-format", type=click.Choice(INPUT_FORMATS + tuple(INPUT_FORMAT_ALIASES)), default="auto",
              show_default=True, help="Read every input as this format instead of detecting it.")
@click.option("--loss-tag", help="TensorBoard tag or MLflow metric holding the training loss (same as --loss-col).")
@click.option("--grad-norm-tag", help="TensorBoard tag or MLflow metric holding the gradient norm.")
@click.option("--pattern", help="Plain-text logs: a regular expression with a (?P<loss>...) group, "
              "optionally (?P<step>...) and (?P<grad_norm>...), replacing the built-in patterns.")
def analyze(paths, fmt, output, fail_on, strict, alpha, window, burn_in, step_col, loss_col, grad_norm_col, run_col,
            input_format, loss_tag, grad_norm_tag, pattern):
    """Judge every run in PATHS: files, directories, globs, '-' for stdin. Reads CSV/TSV
    (Lightning, Keras, W&B), JSON/JSONL (Hugging Face trainer_state.json), TensorBoard event
    files, MLflow file stores and plain-text logs; gzip ok."""
    from .pipeline import analyze_paths
    from .prepare import Options
    from .render import RENDERERS
    from .report import GatePolicy

    options = Options(alpha=alpha, window=parse_window(window), burn_in=parse_burn_in(burn_in))
    policy = GatePolicy.from_options(fail_on, strict)
    read = read_options(input_format, pattern, step_col, one_of(loss_col, loss_tag, "loss"),
                        one_of(grad_norm_col, grad_norm_tag, "grad-norm"), run_col)
    report = analyze_paths(list(paths), options, read, policy)
    to_terminal = output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = RENDERERS[fmt](report, to_terminal)
    if output:
        write_atomically(output, text, list(paths))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    sys.exit(EXIT_PASS if report.passed else EXIT_FAIL)


from .train_command import train  # noqa: E402  (torch is imported only when `train` runs)

cli.add_command(train)


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps user errors to exit 2 and anything unexpected to exit 3."""
    try:
        cli.main(args=argv, prog_name="siamdiag", standalone_mode=False)
    except SiamdiagError as exc:
        click.echo(f"siamdiag: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("siamdiag: aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(EXIT_PASS)
    except Exception:  # noqa: BLE001 - the contract: unexpected errors exit 3, never 1
        click.echo("siamdiag: internal error (please report this with the log that caused it):", err=True)
        click.echo(traceback.format_exc(), err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(EXIT_PASS)
