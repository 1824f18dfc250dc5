"""`siamdiag train`: the command-line face of siamdiag.train (options, progress bar, verdict, exit).

Like main.py, this module prints and exits; torch is imported only once the command runs, so
`siamdiag analyze` never pays for it.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import fields, replace

import click
from click.core import ParameterSource

from ..errors import UsageError
from .exit_codes import ExitCodesCommand
from .options import gate_options, judging, resolve_settings
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
@gate_options
@click.pass_context
def train(ctx, out, grid, jobs, resume, no_gate, config_file, format, fail_on, strict, alpha, **params):
    """Train a Siamese network, log what a diagnosis needs, then judge its loss.

    Writes RUN_DIR/metrics.csv (one row per step), config.json and checkpoint.pt, prints the verdict
    and exits with the gate's code. Under torchrun, trains with DistributedDataParallel.
    """
    settings = resolve_settings({"format": format, "fail_on": fail_on, "strict": strict, "alpha": alpha}, config_file)
    options, policy = judging(settings)
    fmt = settings["format"]
    if resume:
        given = [k for k in params if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
        fixed = sorted(set(given) - RESUMABLE)
        if fixed or grid or out:
            what = ", ".join("--" + k.replace("_", "-") for k in fixed) or ("--grid" if grid else "--out")
            raise UsageError(f"--resume: {what} cannot change a run being resumed "
                             f"(only {', '.join('--' + k for k in sorted(RESUMABLE))} may)")
        cfg = resumed_config(resume, {k: params[k] for k in given})
        code = train_single(cfg, resume, True, policy, options, fmt)
    elif grid:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UsageError("--grid: run sweeps without torchrun (each grid run is a single process; use --jobs)")
        base = config_from(params)
        specs_dir = out or default_dir("sweep")
        code = train_grid(base, parse_grid(grid), specs_dir, jobs, policy, options, fmt)
    else:
        cfg = config_from(params)
        run_dir = out or default_dir(cfg.loss)
        refuse_existing_run(run_dir)
        code = train_single(cfg, run_dir, False, policy, options, fmt)
    sys.exit(0 if no_gate and code == 1 else code)


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


def train_single(cfg: TrainConfig, run_dir: str, resume: bool, policy, options, fmt: str) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..train.sweep import RunSpec, StopFlag, train_one

    console = stderr_console()
    progress = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("loss {task.fields[loss]}  grad norm {task.fields[grad]}"),
                        TimeRemainingColumn(), console=console, disable=not console.is_terminal,
                        transient=False)
    task = progress.add_task("train", total=None, loss="–", grad="–")

    def on_rows(step: int, total: int, row: dict) -> None:
        progress.update(task, completed=step, total=total, loss=f"{row['loss']:.4g}", grad=f"{row['grad_norm']:.3g}")

    with StopFlag() as stop, progress:
        outcome, is_main = train_one(RunSpec(os.path.basename(run_dir.rstrip("/")), cfg, run_dir),
                                     resume=resume, on_rows=on_rows, stop=stop)
    if not is_main:
        return 0
    if outcome.stopped == "interrupted":
        console.print(f"interrupted at step {outcome.steps_done:,} of {outcome.total_steps:,}; the log and a "
                      f"checkpoint are in {run_dir}. Continue with: siamdiag train --resume {run_dir}")
        return stop.exit_code
    if outcome.stopped == "nonfinite":
        console.print(f"stopped at step {outcome.steps_done:,}: the loss became non-finite")
    return report_runs([(os.path.basename(run_dir.rstrip("/")), run_dir)], policy, options, fmt)


def train_grid(base: TrainConfig, axes, sweep_dir: str, jobs: int, policy, options, fmt: str) -> int:
    from ..train.sweep import RunSpec, StopFlag, run_grid

    specs = [RunSpec(label, cfg, os.path.join(sweep_dir, label)) for label, cfg in expand_grid(base, axes)]
    for spec in specs:
        refuse_existing_run(spec.run_dir)
    console = stderr_console()
    console.print(f"training {len(specs)} runs into {sweep_dir} ({jobs} at a time)")

    def on_done(spec, outcome) -> None:
        console.print(f"  {spec.label}: {outcome.stopped} at step {outcome.steps_done:,}")

    with StopFlag() as stop:
        outcomes = run_grid(specs, jobs, on_done, stop)
    finished = [(s.label, s.run_dir) for s, o in zip(specs, outcomes) if o is not None and o.stopped != "interrupted"]
    if len(finished) < len(specs):
        console.print(f"interrupted: {len(specs) - len(finished)} of {len(specs)} runs did not finish; "
                      "each interrupted run can be continued with --resume RUN_DIR")
        if not finished:
            return stop.exit_code
    code = report_runs(finished, policy, options, fmt)
    return stop.exit_code if len(finished) < len(specs) else code


def report_runs(named_dirs: list[tuple[str, str]], policy, options, fmt: str) -> int:
    """Judge each run's metrics.csv with the analyze pipeline and print the verdict table."""
    from ..pipeline import analyze_named_logs
    from ..report.render import RENDERERS
    from ..train.checkpoint import METRICS_FILE

    report = analyze_named_logs([(name, os.path.join(d, METRICS_FILE)) for name, d in named_dirs], options,
                                policy)
    sys.stdout.write(RENDERERS[fmt](report, colour_for(sys.stdout)))
    sys.stdout.flush()
    return 0 if report.passed else 1
