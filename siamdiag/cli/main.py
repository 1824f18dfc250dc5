"""The commands and the exit-code contract.

Exit codes are an API: 0 gate passed, 1 gate failed, 2 usage, input or environment error
(including "no runs found", a full disk, a denied permission), 3 internal error, 130 Ctrl-C,
143 SIGTERM. An unexpected exception never exits 1.
"""
from __future__ import annotations

import errno
import gc
import importlib
import os
import signal
import sys
import threading

import click

from .. import __version__
from ..errors import SiamdiagError
from .exit_codes import EXIT_TERMINATED, ExitCodesGroup, Terminated, raise_terminated
from .options import (gate_options, judging, judging_options, many_runs_flags, read_options_flags, reading,
                      report_flags, resolve_settings)
from .outputs import (refuse_overwriting_inputs, rendered, report_targets, write_github_files, write_report,
                      write_verdicts_back)
from .terminal import colour_for, drawing_progress, input_progress, stderr_console

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
# Failures of the machine rather than of siamdiag or of the input: one line and exit 2.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
# Optional dependencies and the extra that installs each.
EXTRA_FOR_MODULE = {"torch": "train", "sklearn": "train", "matplotlib": "plot", "lightning": "lightning",
                    "mlflow": "mlflow", "transformers": "huggingface", "keras": "keras"}


class CommandGroup(ExitCodesGroup):
    """A group whose heavier commands load when they are asked for: `siamdiag analyze` never
    imports the training configuration (and `train` imports torch only once it runs)."""

    LAZY = {"train": ("siamdiag.cli.train_command", "train")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            module, attribute = self.LAZY[name]
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="siamdiag")
def cli() -> None:
    """Has this Siamese / metric-learning run's loss settled? A diagnostic and a CI gate."""


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE (atomically).")
@report_flags
@click.option("--github-summary/--no-github-summary", default=True,
              help="Under GitHub Actions, append the markdown report to $GITHUB_STEP_SUMMARY and the gate and "
                   "counts to $GITHUB_OUTPUT [default: on].")
@click.option("--plot", "plot_target", metavar="DIR|FILE",
              help="Also draw the runs: one PNG per run into DIR, or, when one run is judged, into FILE "
                   "ending in .png, .svg or .pdf (needs the 'plot' extra).")
@click.option("--write-back", is_flag=True,
              help="Once the report is out, also record each run's verdict, gate and reasons in the tracker that "
                   "keeps it: MLflow tags, a TensorBoard text summary, DVCLive's metrics.json, the W&B run summary. "
                   "A tracker that refuses is exit 2, naming the run.")
@gate_options
@read_options_flags
@many_runs_flags
def analyze(paths, output, reports, quiet, github_summary, plot_target, write_back, config_file, **params):
    """Judge every run in PATHS: files, directories, globs, '-' for stdin. Reads CSV/TSV
    (Lightning, Keras, W&B), JSON/JSONL (Hugging Face trainer_state.json), TensorBoard event
    files, MLflow stores (mlflow.db, mlruns/), DVCLive directories and plain-text logs; gzip ok.
    With --mlflow URI (or MLFLOW_TRACKING_URI and no PATHS), the runs of an MLflow tracking server too."""
    from ..pipeline import judge_paths
    from ..report.model import Report

    settings = resolve_settings(params, config_file)
    options, policy = judging(settings)
    read = reading(settings, paths)
    targets = report_targets(reports)
    refuse_overwriting_inputs(([("--output", output)] if output else []) + [(f"--report {f}", p) for f, p in targets],
                              list(paths), read)
    charts = "html" in (settings["format"], *(fmt for fmt, _path in targets))   # drawn from the series
    judged = judge_paths(list(paths), options, read, settings["jobs"], keep_runs=bool(plot_target) or charts,
                         progress=None if quiet else input_progress)
    report = Report(runs=tuple(result for _run, result in judged), policy=policy, alpha=options.alpha)
    runs = [run for run, _result in judged]
    if plot_target:
        from ..report.plot import plot_to

        for written in plot_to(judged, plot_target):
            if not quiet:
                click.echo(f"siamdiag: wrote {written}", err=True)
    text = rendered(settings["format"], report, output is None and colour_for(sys.stdout), runs)
    if output:
        write_report(output, text)
    elif not quiet:
        sys.stdout.write(text)
        sys.stdout.flush()
    for fmt, path in targets:
        write_report(path, rendered(fmt, report, False, runs), f"--report {fmt}={path}")
    if github_summary:
        write_github_files(report, os.environ)
    failures = write_verdicts_back(report, quiet, read.tracking_timeout) if write_back else []
    for failure in failures:
        click.echo(f"siamdiag: error: {failure}", err=True)
    leave_objects_to_exit()
    sys.exit(EXIT_USAGE if failures else EXIT_PASS if report.passed else EXIT_FAIL)


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Image to write, its format named by the extension: .png, .svg or .pdf. Runs go in a grid, "
                   "4 across and 12 to a page; more pages are written as FILE-1.png, FILE-2.png, ... "
                   "(a PDF holds every page).")
@judging_options
@read_options_flags
@many_runs_flags
def plot(paths, output, config_file, **params):
    """Draw the runs in PATHS as the analysis sees them: the loss with block means, the window
    zoomed, burn-in, change points, rolling variance, grad norm, verdict and reasons.
    Needs the 'plot' extra: pip install 'siamdiag[plot]'."""
    from ..pipeline import judge_paths
    from ..report.plot import image_format, plot_runs

    image_format(output, "-o")   # a wrong extension is a usage error before any judging
    settings = resolve_settings(params, config_file)
    options, _policy = judging(settings)
    read = reading(settings, paths)
    refuse_overwriting_inputs([("-o", output)], list(paths), read)
    judged = judge_paths(list(paths), options, read, settings["jobs"], progress=input_progress)
    written = plot_runs(judged, output, progress=drawing_progress)
    runs = f"{len(judged)} run{'s' if len(judged) != 1 else ''}"
    click.echo(f"siamdiag: wrote {', '.join(written)} ({runs})", err=True)


@cli.command()
@click.argument("path")
@click.option("--every", "watch_every", help="Re-judge after this many new rows [default: 200].")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=1.0, show_default=True,
              help="Seconds between looks at the file.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Stop after this long in all, and judge what is there.")
@click.option("--idle-timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Stop once the file has not grown for this long (training ended or died), and judge what is there.")
@gate_options
@read_options_flags
def watch(path, interval, timeout, idle_timeout, config_file, **params):
    """Follow PATH while training writes it: re-judge every N new rows, in a live panel on a
    terminal (one line per judgement on stderr otherwise). Ctrl-C, SIGTERM, --timeout or
    --idle-timeout stops it; the report on the whole file goes to stdout and the exit code is its gate."""
    from ..pipeline import analyze_paths
    from ..report.render import RENDERERS
    from .watch import LivePanel, LogFollower, LogLines, follow

    settings = resolve_settings(params, config_file)
    options, policy = judging(settings)
    read = reading(settings, [path])
    follower = LogFollower(path)
    console = stderr_console()
    with LivePanel(console, path) if console.is_terminal else LogLines() as display:
        report, judged_rows, stopped_by = follow(follower, lambda: analyze_paths([path], options, read, policy),
                                                 settings["watch_every"], interval, display, timeout, idle_timeout)
    if stopped_by:
        click.echo(f"siamdiag watch: {stopped_by}; judging what is there", err=True)
    follower.poll()   # rows completed since the last look count in the final report
    if report is None or follower.rows > judged_rows:
        report = analyze_paths([path], options, read, policy)
    sys.stdout.write(RENDERERS[settings["format"]](report, colour_for(sys.stdout)))
    sys.stdout.flush()
    sys.exit(EXIT_PASS if report.passed else EXIT_FAIL)


@cli.group("config", cls=ExitCodesGroup)
def config_group() -> None:
    """Inspect the layered settings."""


@config_group.command("show")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings, as for analyze.")
def config_show(config_file):
    """Print every setting, its value and where it came from (default, pyproject.toml,
    --config, SIAMDIAG_* environment variable)."""
    from .settings import SETTINGS

    settings = resolve_settings({}, config_file)
    shown = {key: shown_value(key, settings.values[key]) for key in SETTINGS}
    key_width, value_width = max(map(len, shown)), max(map(len, shown.values()))
    for key, value in shown.items():
        click.echo(f"{key:<{key_width}}  {value:<{value_width}}  {settings.sources[key]}")


def shown_value(key: str, value) -> str:
    """A setting as a user would write it."""
    if isinstance(value, tuple):
        return ",".join(value)
    if value is None:
        return "auto" if key == "burn_in" else "-"
    if isinstance(value, float) and value > 1 and value.is_integer():
        return str(int(value))   # a number of steps, as written (a fraction keeps its point)
    return str(value).lower() if isinstance(value, bool) else str(value)


_process_ends_with_main = False   # set by console(): main is the whole process


def console() -> None:
    """The `siamdiag` executable and `python -m siamdiag`: main(), in a process that ends with it."""
    global _process_ends_with_main
    _process_ends_with_main = True
    main()


def leave_objects_to_exit() -> None:
    """In the executable, once a command has written and closed everything it writes: freeze the
    objects alive now (every module click, numpy and pandas loaded, and the results), so that the
    interpreter's last full garbage collections at exit do not scan them one by one, about 0.1 s
    at any log size (BENCHMARKS.md, "Speed and memory"). atexit handlers and the flush of stdout
    and stderr still run; what the collections would have finalised, objects in reference
    cycles, is left to the operating system. Never when main is called in-process (tests, a
    notebook): a frozen object is never collected."""
    if _process_ends_with_main:
        gc.freeze()


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps user and environment errors to exit 2, Ctrl-C to 130, SIGTERM to 143, and
    anything unexpected to exit 3. SIGTERM is raised as Terminated wherever the command is (training
    and watch handle it themselves), so that the command unwinds instead of dying mid-write and
    leaving its pool's workers behind."""
    on_main_thread = threading.current_thread() is threading.main_thread()  # where handlers can be set
    previous = signal.signal(signal.SIGTERM, raise_terminated) if on_main_thread else None
    try:
        cli.main(args=argv, prog_name="siamdiag", standalone_mode=False)
    except Terminated:
        click.echo("siamdiag: terminated by SIGTERM", err=True)
        sys.exit(EXIT_TERMINATED)
    except SiamdiagError as exc:
        click.echo(f"siamdiag: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("siamdiag: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(EXIT_PASS)
    except ModuleNotFoundError as exc:
        if exc.name not in EXTRA_FOR_MODULE:
            internal_error()
        click.echo(f"siamdiag: error: this needs {exc.name}, which is not installed: "
                   f"pip install 'siamdiag[{EXTRA_FOR_MODULE[exc.name]}]'", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            internal_error()
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"siamdiag: error: {where}{exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception:  # noqa: BLE001 - the contract: unexpected errors exit 3, never 1
        internal_error()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(EXIT_PASS)


def internal_error() -> None:
    """A bug: the traceback for the report, exit 3 (never 1, which means a failed gate)."""
    import traceback

    click.echo("siamdiag: internal error (please report this with the log that caused it):", err=True)
    click.echo(traceback.format_exc(), err=True)
    sys.exit(EXIT_INTERNAL)
