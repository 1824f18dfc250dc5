"""`siamdiag train`: the command-line face of siamdiag.train (options, progress, verdict, exit).

Like main.py, this module prints and exits; torch is imported only once the command runs, so
`siamdiag analyze` never pays for it.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, fields, replace

import click
from click.core import ParameterSource

from ..errors import UsageError
from .exit_codes import ExitCodesCommand
from .options import gate_options, judging, report_flags, resolve_settings
from .outputs import rendered, report_targets, write_report
from .terminal import colour_for, stderr_console
from ..train.config import (ACTIVATIONS, DEVICES, LOSSES, LR_SCHEDULES, MARGIN_SCHEDULES, MODELS, OPTIMIZERS,
                           TrainConfig, expand_grid, parse_grid)

# Options that may accompany --resume: they change how long or where the run continues, not what it is.
RESUMABLE = {"steps", "epochs", "device"}

D = TrainConfig()


def config_options(func):
    """One click option per TrainConfig field, defaults taken from the dataclass."""
    specs = [
        ("--data", dict(default=D.data, show_default=True,
                        help="'digits' (bundled 8x8 digits), 'synthetic' (Gaussian clusters), or a .csv/.npz file.")),
        ("--label-col", dict(default=D.label_col, show_default=True, help="Label column of a --data .csv file.")),
        ("--synthetic-dim", dict(type=int, default=D.synthetic_dim, show_default=True)),
        ("--synthetic-classes", dict(type=int, default=D.synthetic_classes, show_default=True)),
        ("--synthetic-samples", dict(type=int, default=D.synthetic_samples, show_default=True)),
        ("--synthetic-noise", dict(type=float, default=D.synthetic_noise, show_default=True,
                                   help="Within-class spread (class centres have standard deviation 2 per axis).")),
        ("--imbalance", dict(type=float, default=D.imbalance, show_default=True,
                             help="Ratio of similar to dissimilar pairs (pair losses).")),
        ("--augment-noise", dict(type=float, default=D.augment_noise, show_default=True,
                                 help="Gaussian noise added to every input, in units of the data's standard deviation.")),
        ("--model", dict(type=click.Choice(MODELS), default=D.model, show_default=True,
                         help="Encoder: CNN for images, MLP for vectors ('auto').")),
        ("--embedding-dim", dict(type=int, default=D.embedding_dim, show_default=True)),
        ("--hidden", dict(type=int, default=D.hidden, show_default=True, help="Hidden width.")),
        ("--batch-norm/--no-batch-norm", dict(default=D.batch_norm, show_default=True)),
        ("--activation", dict(type=click.Choice(ACTIVATIONS), default=D.activation, show_default=True)),
        ("--loss", dict(type=click.Choice(LOSSES), default=D.loss, show_default=True)),
        ("--margin", dict(type=float, default=None,
                          help="Margin [default: contrastive 1.0, triplet 0.2, cosine 0.0].")),
        ("--temperature", dict(type=float, default=D.temperature, show_default=True, help="InfoNCE temperature.")),
        ("--margin-schedule", dict(type=click.Choice(MARGIN_SCHEDULES), default=D.margin_schedule,
                                   show_default=True, help="Triplet margin per epoch.")),
        ("--margin-end", dict(type=float, default=None, help="Final margin of --margin-schedule linear "
                                                             "[default: 2 x margin].")),
        ("--easy-target", dict(type=float, default=D.easy_target, show_default=True,
                               help="Easy-triplet fraction that --margin-schedule adaptive aims for.")),
        ("--margin-gain", dict(type=float, default=D.margin_gain, show_default=True,
                               help="Adaptive margin step per epoch, in units of the initial margin.")),
        ("--normalize/--no-normalize", dict(default=D.normalize, show_default=True,
                                            help="L2-normalise embeddings before the loss.")),
        ("--cut-init", dict(type=float, default=D.cut_init, show_default=True,
                            help="Divide the initial weights by C (3 for contrastive, 9 for non-contrastive).")),
        ("--optimizer", dict(type=click.Choice(OPTIMIZERS), default=D.optimizer, show_default=True)),
        ("--lr", dict(type=float, default=D.lr, show_default=True)),
        ("--momentum", dict(type=float, default=D.momentum, show_default=True, help="SGD momentum.")),
        ("--weight-decay", dict(type=float, default=D.weight_decay, show_default=True)),
        ("--lr-schedule", dict(type=click.Choice(LR_SCHEDULES), default=D.lr_schedule, show_default=True)),
        ("--warmup-fraction", dict(type=float, default=D.warmup_fraction, show_default=True,
                                   help="Share of steps warmed up by warmup-cosine.")),
        ("--clip-grad", dict(type=float, default=None, help="Clip the global gradient norm to this value.")),
        ("--steps", dict(type=int, default=D.steps, show_default=True)),
        ("--epochs", dict(type=int, default=None, help="Train this many epochs instead of --steps.")),
        ("--batch-size", dict(type=int, default=D.batch_size, show_default=True,
                              help="Pairs / triplets per step (global, across processes).")),
        ("--seed", dict(type=int, default=D.seed, show_default=True)),
        ("--device", dict(type=click.Choice(DEVICES), default=D.device, show_default=True)),
        ("--checkpoint-every", dict(type=int, default=D.checkpoint_every, show_default=True,
                                    help="Steps between checkpoints.")),
    ]
    for name, kwargs in reversed(specs):
        func = click.option(name, **kwargs)(func)
    return func


def config_from(params: dict) -> TrainConfig:
    return TrainConfig(**{f.name: params[f.name] for f in fields(TrainConfig)}).validate()


@click.command(cls=ExitCodesCommand)
@config_options
@click.option("--out", type=click.Path(file_okay=False),
              help="Run directory [default: runs/<timestamp>-<loss>, or runs/<timestamp>-sweep with --grid].")
@click.option("--grid", multiple=True, help="KEY=V1,V2: train every combination (repeatable).")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Grid runs in parallel.")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in RUN_DIR from its checkpoint.")
@click.option("--no-gate", is_flag=True, help="Exit 0 after a successful training whatever the verdict.")
@click.option("--progress-every", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              metavar="SECONDS", help="When stderr is not a terminal (a CI log), a progress line this often "
                                      "(step, loss, grad norm, steps/s) instead of the bar.")
@report_flags
@gate_options
@click.pass_context
def train(ctx, out, grid, jobs, resume, no_gate, progress_every, reports, quiet, config_file, format, fail_on,
          strict, alpha, tolerance, **params):
    """Train a Siamese network, log what a diagnosis needs, then judge its loss.

    Writes RUN_DIR/metrics.csv (one row per step), config.json and checkpoint.pt, prints the verdict
    and exits with the gate's code. Under torchrun, trains with DistributedDataParallel.
    """
    settings = resolve_settings({"format": format, "fail_on": fail_on, "strict": strict, "alpha": alpha,
                                 "tolerance": tolerance}, config_file)
    options, policy = judging(settings)
    quiet = quiet or os.environ.get("RANK", "0") != "0"  # a torchrun job speaks through its rank 0
    output = Output(policy, options, settings["format"], report_targets(reports), quiet, progress_every)
    if resume:
        given = [k for k in params if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
        fixed = sorted(set(given) - RESUMABLE)
        if fixed or grid or out:
            what = ", ".join("--" + k.replace("_", "-") for k in fixed) or ("--grid" if grid else "--out")
            raise UsageError(f"--resume: {what} cannot change a run being resumed "
                             f"(only {', '.join('--' + k for k in sorted(RESUMABLE))} may)")
        cfg = resumed_config(resume, {k: params[k] for k in given})
        code = train_single(cfg, resume, True, output)
    elif grid:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UsageError("--grid: run sweeps without torchrun (each grid run is a single process; use --jobs)")
        base = config_from(params)
        specs_dir = out or default_dir("sweep")
        code = train_grid(base, parse_grid(grid), specs_dir, jobs, output)
    else:
        cfg = config_from(params)
        run_dir = out or default_dir(cfg.loss)
        refuse_existing_run(run_dir)
        code = train_single(cfg, run_dir, False, output)
    sys.exit(0 if no_gate and code == 1 else code)


@dataclass(frozen=True)
class Output:
    """What `train` reports and where: the gate, the report's format on stdout and its --report
    files, whether stderr says anything but errors, and how often it gives progress off a terminal."""

    policy: object
    options: object
    fmt: str
    targets: list[tuple[str, str]]
    quiet: bool
    progress_every: float

    def say(self, line: str) -> None:
        if not self.quiet:
            click.echo(f"siamdiag train: {line}", err=True)

    def refuse_reports_over(self, run_dirs: list[str]) -> None:
        """Before any training: a --report must not replace a file a run writes (its log, config,
        checkpoint), which would lose the run at the end."""
        from ..train.checkpoint import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE

        run_files = {os.path.realpath(os.path.join(d, name)) for d in run_dirs
                     for name in (METRICS_FILE, CONFIG_FILE, CHECKPOINT_FILE)}
        for fmt, path in self.targets:
            if os.path.realpath(path) in run_files:
                raise UsageError(f"--report {fmt}={path}: that is a file of the run; refusing to overwrite it")


class TrainingProgress:
    """What stderr shows while one run trains: a bar on a terminal; off one (a CI log, where a bar
    redrawn in place shows nothing) a line every ``every`` seconds, its speed measured since the
    line before; nothing when quiet. Fed each batch of rows as it reaches the log (~every 2 s)."""

    def __init__(self, every: float, quiet: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = stderr_console()
        self.lines, self.every = not quiet and not console.is_terminal, every
        self.bar = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                            TextColumn("loss {task.fields[loss]}  grad norm {task.fields[grad]}"),
                            TimeRemainingColumn(), console=console, disable=quiet or not console.is_terminal,
                            transient=False)
        self.task = self.bar.add_task("train", total=None, loss="–", grad="–")
        self.line_at, self.since = time.monotonic(), None  # last line's time; (step, time) speed is measured from

    def __enter__(self) -> "TrainingProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def on_rows(self, step: int, total: int, row: dict) -> None:
        loss, grad = f"{row['loss']:.4g}", f"{row['grad_norm']:.3g}"
        self.bar.update(self.task, completed=step, total=total, loss=loss, grad=grad)
        now = time.monotonic()
        if not self.lines or now - self.line_at < self.every:
            self.since = self.since or (step, now)
            return
        speed = ""
        if self.since and now > self.since[1]:
            speed = f", {(step - self.since[0]) / (now - self.since[1]):.1f} steps/s"
        click.echo(f"siamdiag train: step {step:,}/{total:,}, loss {loss}, grad norm {grad}{speed}", err=True)
        self.line_at, self.since = now, (step, now)


def default_dir(suffix: str) -> str:
    return os.path.join("runs", f"{time.strftime('%Y%m%d-%H%M%S')}-{suffix}")


def refuse_existing_run(run_dir: str) -> None:
    from ..train.checkpoint import METRICS_FILE

    if os.path.exists(os.path.join(run_dir, METRICS_FILE)):
        raise UsageError(f"--out {run_dir}: already holds a run; continue it with --resume {run_dir} "
                         "or choose another --out")


def resumed_config(run_dir: str, changes: dict) -> TrainConfig:
    from ..train.checkpoint import read_config

    cfg = read_config(run_dir)
    if "steps" in changes:
        changes.setdefault("epochs", None)
    return replace(cfg, **changes).validate()


def pinned_threads() -> int | None:
    """The intra-op thread count this package pinned in OMP_NUM_THREADS (or the user set), applied
    to torch explicitly: torch reads the variable only when it loads, so a caller that loaded torch
    first would otherwise train with every core, and the same seed would give other rows (a run at
    a chaotic learning rate then ends in another verdict) than from the shell."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def train_single(cfg: TrainConfig, run_dir: str, resume: bool, output: Output) -> int:
    import torch  # noqa: F401  (without torch: one error line, before anything else is said)

    from ..train.sweep import RunSpec, StopFlag, train_one

    output.refuse_reports_over([run_dir])
    output.say(f"run directory {os.path.abspath(run_dir)}")
    with StopFlag() as stop, TrainingProgress(output.progress_every, output.quiet) as progress:
        outcome, is_main = train_one(RunSpec(os.path.basename(run_dir.rstrip("/")), cfg, run_dir),
                                     threads=pinned_threads(), resume=resume, on_rows=progress.on_rows, stop=stop)
    if not is_main:
        return 0
    if outcome.stopped == "interrupted":  # said even with -q: the one place that tells how to continue
        click.echo(f"siamdiag train: interrupted at step {outcome.steps_done:,} of {outcome.total_steps:,}; the log "
                   f"and a checkpoint are in {run_dir}. Continue with: siamdiag train --resume {run_dir}", err=True)
        return stop.exit_code
    if outcome.stopped == "nonfinite":
        output.say(f"stopped at step {outcome.steps_done:,}: the loss became non-finite")
    return report_runs([(os.path.basename(run_dir.rstrip("/")), run_dir)], output)


def train_grid(base: TrainConfig, axes, sweep_dir: str, jobs: int, output: Output) -> int:
    import torch  # noqa: F401  (without torch: one error line, before anything else is said)

    from ..train.sweep import RunSpec, StopFlag, run_grid

    specs = [RunSpec(label, cfg, os.path.join(sweep_dir, label)) for label, cfg in expand_grid(base, axes)]
    for spec in specs:
        refuse_existing_run(spec.run_dir)
    output.refuse_reports_over([spec.run_dir for spec in specs])
    output.say(f"sweep directory {os.path.abspath(sweep_dir)}: {len(specs)} runs, {jobs} at a time")

    def on_done(spec, outcome) -> None:
        output.say(f"{spec.label}: {outcome.stopped} at step {outcome.steps_done:,}")

    with StopFlag() as stop:
        outcomes = run_grid(specs, jobs, on_done, stop, threads=pinned_threads())
    finished = [(s.label, s.run_dir) for s, o in zip(specs, outcomes) if o is not None and o.stopped != "interrupted"]
    if len(finished) < len(specs):
        click.echo(f"siamdiag train: interrupted: {len(specs) - len(finished)} of {len(specs)} runs did not finish; "
                   "each interrupted run can be continued with --resume RUN_DIR", err=True)
        if not finished:
            return stop.exit_code
    code = report_runs(finished, output)
    return stop.exit_code if len(finished) < len(specs) else code


def report_runs(named_dirs: list[tuple[str, str]], output: Output) -> int:
    """Judge each run's metrics.csv with the analyze pipeline; the report goes to stdout (unless
    quiet) and to each --report file."""
    from ..pipeline import analyze_named_logs
    from ..train.checkpoint import METRICS_FILE

    report = analyze_named_logs([(name, os.path.join(d, METRICS_FILE)) for name, d in named_dirs], output.options,
                                output.policy)
    if not output.quiet:
        sys.stdout.write(rendered(output.fmt, report, colour_for(sys.stdout)))
        sys.stdout.flush()
    for fmt, path in output.targets:
        write_report(path, rendered(fmt, report, False), f"--report {fmt}={path}")
    return 0 if report.passed else 1
