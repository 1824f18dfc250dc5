"""Which column of a log holds the step, the loss, the gradient norm, the run id and the
Siamese extras. Loggers disagree on names; this module decides by a ranked alias list."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

# Ranked: the first alias present wins. Names are compared after normalise().
STEP_ALIASES = ("step", "global_step", "steps", "iteration", "iter", "it", "trainer_global_step",
                "train_step", "batch", "update", "updates", "epoch", "epochs")
LOSS_ALIASES = ("loss", "train_loss", "train_loss_step", "training_loss", "loss_train", "loss_step", "trn_loss",
                "train_loss_epoch", "loss_epoch", "objective")
GRAD_NORM_ALIASES = ("grad_norm", "gradient_norm", "grad_norm_total", "total_grad_norm",
                     "grad_l2_norm", "gradnorm", "grad_2_0_norm_total", "train_grad_norm", "gnorm")
RUN_ALIASES = ("run", "run_id", "run_name", "runid", "run_uuid", "trial", "trial_id", "experiment")
# Optional per-step statistics (siamdiag train, the Recorder, the callbacks), by role and ranked
# aliases: used by the degeneracy check, the Siamese findings, the lr-aware window and (epoch) the
# running-mean detector, which checks the epoch length it finds against the log's own.
EXTRA_COLUMNS = {"margin": ("margin",), "active_fraction": ("active_fraction",), "easy_fraction": ("easy_fraction",),
                 "pos_dist": ("pos_dist",), "neg_dist": ("neg_dist",), "embedding_norm": ("embedding_norm",),
                 "lr": ("lr", "learning_rate"), "epoch": ("epoch", "epochs")}
# A column whose name mentions loss but that is not the training loss.
NOT_TRAIN = re.compile(r"(^|_)(val|valid|validation|test|eval|dev)(_|$)")


def normalise(name: str) -> str:
    """'Train/Loss' -> 'train_loss', 'grad_2.0_norm_total' -> 'grad_2_0_norm_total'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


@dataclass(frozen=True)
class ColumnMap:
    """Column names (as written in the file) chosen for each role; None when absent."""

    loss: str
    step: str | None
    grad_norm: str | None
    run: tuple[str, ...]
    extras: dict[str, str]


@dataclass(frozen=True)
class ColumnOverrides:
    step: str | None = None
    loss: str | None = None
    grad_norm: str | None = None
    run: str | None = None  # comma-separated for composite run keys, e.g. "method,seed"


def _by_normalised_name(columns: list[str]) -> dict[str, str]:
    """Each normalised name with the first column that has it (the one an alias picks)."""
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(normalise(c), c)
    return by_norm


def _find(by_norm: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for alias in aliases:
        if alias in by_norm:
            return by_norm[alias]
    return None


def _resolve_override(columns: list[str], wanted: str, role: str, source: str) -> str:
    if wanted in columns:
        return wanted
    match = [c for c in columns if normalise(c) == normalise(wanted)]
    if match:
        return match[0]
    raise UsageError(f"{source}: no column {wanted!r} for --{role}-col; columns are: {', '.join(columns)}")


def _guess_loss(columns: list[str]) -> str | None:
    """Fallback: the only training-looking column whose name contains 'loss'."""
    candidates = [c for c in columns if "loss" in normalise(c) and not NOT_TRAIN.search(normalise(c))]
    return candidates[0] if len(candidates) == 1 else None


def detect_columns(columns: list[str], overrides: ColumnOverrides, source: str) -> ColumnMap:
    """Pick the column for each role, honouring explicit overrides; a missing loss column is
    a usage error that lists what the file does have. The names are normalised once, not once
    per role."""
    by_norm = _by_normalised_name(columns)
    pick = lambda wanted, role, aliases: (  # noqa: E731
        _resolve_override(columns, wanted, role, source) if wanted else _find(by_norm, aliases))
    loss = pick(overrides.loss, "loss", LOSS_ALIASES) or _guess_loss(columns)
    if loss is None:
        raise UsageError(f"{source}: cannot tell which column is the training loss; columns are: "
                         f"{', '.join(columns)}. Name it with --loss-col (--loss-tag for TensorBoard/MLflow).")
    step = pick(overrides.step, "step", STEP_ALIASES)
    grad = pick(overrides.grad_norm, "grad-norm", GRAD_NORM_ALIASES)
    if overrides.run:
        run = tuple(_resolve_override(columns, r.strip(), "run", source) for r in overrides.run.split(","))
    else:
        found = _find(by_norm, RUN_ALIASES)
        run = (found,) if found else ()
    taken = {loss, step, grad, *run}
    extras = {}
    for name, aliases in EXTRA_COLUMNS.items():
        col = _find(by_norm, aliases)
        if col is not None and col not in taken:
            extras[name] = col
    return ColumnMap(loss=loss, step=step, grad_norm=grad, run=run, extras=extras)
